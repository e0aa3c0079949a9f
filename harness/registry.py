"""The one registry of experiments.

An experiment is system x implementation x backend x workload x parameters,
declared once, in the grids of `harness/systems/<system>.toml` built by the
builders of `harness/systems/<system>.py`.  The CLI, the asv suite, the
pytest-benchmark suite and the report all read this registry.

Each system module ends with `SYSTEM = harness.systems.System(...)`: its
experiments, CLI group, plots and report tables (see `harness.systems`).
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from harness.systems import System

KINDS = ("measured", "modelled", "simulated")


@dataclass
class Trial:
    """What an experiment's `build` returns: the work, ready to run.

    - measured: `run()` is the timed call; the harness warms up and repeats it.
    - modelled / simulated: `run()` is called once and returns a dict of figures
      (it must hold "time_s", the modelled or simulated latency, when the
      experiment has a time; other figures go beside it).
    `metrics(result)` adds figures taken from the last result (counts, pass rates).
    `check(result)` raises AssertionError when the result is wrong; the harness
    calls it once per experiment, outside the timed region.
    """

    run: Callable[[], Any]
    metrics: Callable[[Any], Mapping[str, float]] | None = None
    check: Callable[[Any], None] | None = None
    teardown: Callable[[], None] | None = None


@dataclass(frozen=True)
class Experiment:
    system: str
    impl: str
    backend: str
    workload: str
    param_items: tuple[tuple[str, Any], ...]   # sorted (name, value) pairs: hashable, and the id's order
    build: Callable[[Any, dict[str, Any]], Trial] = field(repr=False, compare=False)
    kind: str = "measured"
    tiers: frozenset[str] = frozenset({"quick", "full"})
    requires: tuple[str, ...] = ()
    description: str = ""
    repeats: int | None = None   # timed repeats for slow experiments (after one warm-up); None: the tier's rule

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"experiment {self.id}: kind must be one of {KINDS}")

    @property
    def params(self) -> dict[str, Any]:
        """The experiment's parameters by name (what its builder receives)."""
        return dict(self.param_items)

    @property
    def id(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.param_items)
        return f"{self.system}/{self.impl}/{self.backend}/{self.workload}" + (f"/{params}" if params else "")

    def fields(self) -> dict[str, Any]:
        """The fields a claim selector matches on: the dimensions plus the parameters."""
        return {"system": self.system, "impl": self.impl, "backend": self.backend,
                "workload": self.workload, "kind": self.kind, **self.params}


def experiment(system: str, impl: str, backend: str, workload: str,
               build: Callable[[Any, dict[str, Any]], Trial], **kw: Any) -> Experiment:
    """Declare one experiment; `params=` takes a plain dict."""
    params = kw.pop("params", {}) or {}
    tiers = kw.pop("tiers", ("quick", "full"))
    return Experiment(system, impl, backend, workload, tuple(sorted(params.items())), build,
                      tiers=frozenset([tiers] if isinstance(tiers, str) else tiers), **kw)


def matches(fields: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    """Whether `fields` satisfies every key of `selector` (strings may be globs; lists mean any-of)."""
    for key, want in selector.items():
        have = fields.get(key)
        options = want if isinstance(want, list) else [want]
        if not any(_match_one(have, w) for w in options):
            return False
    return True


def _match_one(have: Any, want: Any) -> bool:
    if isinstance(want, str) and isinstance(have, str):
        return fnmatch.fnmatchcase(have, want)
    return have == want


@functools.cache
def declared_systems() -> dict[str, System]:
    """Every `harness.systems.<name>` module's `SYSTEM`, by system name."""
    import harness.systems

    out = {}
    for info in pkgutil.iter_modules(harness.systems.__path__):
        system = importlib.import_module(f"harness.systems.{info.name}").SYSTEM
        if not isinstance(system, System) or system.name != info.name:
            raise TypeError(f"harness/systems/{info.name}.py: SYSTEM must be a System named {info.name!r}")
        out[info.name] = system
    return out


@functools.cache
def _all() -> tuple[Experiment, ...]:
    seen: dict[str, Experiment] = {}
    for system in declared_systems().values():
        for exp in system.experiments():
            if exp.id in seen:
                raise ValueError(f"experiment {exp.id} is declared twice")
            seen[exp.id] = exp
    return tuple(seen.values())


def experiments(system: str | None = None, tier: str | None = None,
                selector: Mapping[str, Any] | None = None) -> list[Experiment]:
    """Registered experiments, filtered by system, tier and a field selector."""
    out: Iterable[Experiment] = _all()
    if system is not None:
        if system not in systems():
            raise ValueError(f"unknown system {system!r}; known systems: {', '.join(systems())}")
        out = (e for e in out if e.system == system)
    if tier is not None:
        out = (e for e in out if tier in e.tiers)
    if selector:
        out = (e for e in out if matches(e.fields(), selector))
    return list(out)


def systems() -> list[str]:
    return sorted({e.system for e in _all()})


def get(experiment_id: str) -> Experiment:
    for exp in _all():
        if exp.id == experiment_id:
            return exp
    raise ValueError(f"unknown experiment {experiment_id!r}; `recmine list` shows them all")
