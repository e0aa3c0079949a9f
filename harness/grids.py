"""Experiment grids as data: `harness/systems/<system>.toml`, expanded into the registry's experiments.

A grids file holds `[vars]`, named values (the system module may give more, those it owns:
`load(path, given=...)`), and `[[grid]]` entries.  Each entry declares the experiments of one
builder:

    [[grid]]
    build = "single_stream"             # a function in the system module's BUILDERS
    impl = "faery"                      # impl, backend, workload: a value or a list
    backend = ["cpu", "opencl"]
    workload = "$quick_single_stream"   # "$name" is [vars].name
    tiers = ["quick", "full"]           # default both
    kind = "measured"                   # default measured
    requires = ["pyopencl"]             # default none; strings are formatted like description
    repeats = 3                         # optional: timed repeats for a slow experiment
    params = { scenario = "offline", k = "$k", batch = [16, 256] }
    description = "offline throughput, batches of {batch}, {impl} on {backend}"

Every list, whether in impl, backend, workload or a parameter, is a dimension: the entry
declares one experiment per combination (the cartesian product, in the order written).
`description` and `requires` are formatted with the experiment's impl, backend, workload
and parameters (`{offered_load:.0%}` works).  A builder is called as `build(data, params)`,
and also receives, by keyword, whichever of `impl`, `backend` and `workload` it names, so
no builder needs a closure to know what it builds.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.registry import Experiment, experiment

ENTRY_KEYS = {"build", "impl", "backend", "workload", "tiers", "kind", "requires", "repeats", "params", "description"}
DIMENSIONS = ("impl", "backend", "workload")


@dataclass(frozen=True)
class Grids:
    """A system's grids file, loaded: its [vars] and its entries, with `$name` references resolved."""

    path: Path
    vars: Mapping[str, Any]
    entries: tuple[Mapping[str, Any], ...]

    def experiments(self, system: str, builders: Mapping[str, Callable[..., Any]]) -> list[Experiment]:
        return [exp for number, entry in enumerate(self.entries, 1)
                for exp in _expand(system, entry, builders, f"{self.path.name} [[grid]] {number}")]


def load(path: str | Path, given: Mapping[str, Any] | None = None) -> Grids:
    """The grids of `path`; `given` are more [vars], values the system module owns (so that they are
    written once), which the file may not define again."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    twice = set(doc.get("vars", {})) & set(given or {})
    if twice:
        raise ValueError(f"{path}: [vars] defines {', '.join(sorted(twice))}, which its module gives")
    names = {**(given or {}), **doc.get("vars", {})}
    unknown_top = set(doc) - {"vars", "grid"}
    if unknown_top:
        raise ValueError(f"{path}: unknown table(s) {', '.join(sorted(unknown_top))}; a grids file holds vars and grid")
    entries = []
    for number, entry in enumerate(doc.get("grid", []), 1):
        where = f"{path.name} [[grid]] {number}"
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("build", *DIMENSIONS):
            if key not in entry:
                raise ValueError(f"{where}: {key} is missing")
        entries.append(_resolve(entry, names, where))
    return Grids(path, names, tuple(entries))


def _resolve(value: Any, names: Mapping[str, Any], where: str) -> Any:
    """`value` with every "$name" string replaced by [vars].name."""
    if isinstance(value, str) and value.startswith("$"):
        if value[1:] not in names:
            raise ValueError(f"{where}: {value} names no entry of [vars]")
        return names[value[1:]]
    if isinstance(value, dict):
        return {k: _resolve(v, names, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, names, where) for v in value]
    return value


def _options(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _expand(system: str, entry: Mapping[str, Any], builders: Mapping[str, Callable[..., Any]],
            where: str) -> list[Experiment]:
    if entry["build"] not in builders:
        raise ValueError(f"{where}: build {entry['build']!r} is not one of the module's BUILDERS "
                         f"({', '.join(sorted(builders))})")
    build = builders[entry["build"]]
    takes = set(inspect.signature(build).parameters)
    params = entry.get("params", {})
    names = [*DIMENSIONS, *params]
    values = [_options(entry[d]) for d in DIMENSIONS] + [_options(v) for v in params.values()]
    out = []
    for combination in itertools.product(*values):
        fields = dict(zip(names, combination))
        dims = {d: fields[d] for d in DIMENSIONS}
        own = {name: fields[name] for name in params}
        given = {d: v for d, v in dims.items() if d in takes}
        out.append(experiment(
            system, dims["impl"], dims["backend"], dims["workload"],
            functools.partial(build, **given) if given else build,
            params=own, kind=entry.get("kind", "measured"), tiers=entry.get("tiers", ("quick", "full")),
            requires=tuple(r.format(**fields) for r in entry.get("requires", ())),
            repeats=entry.get("repeats"), description=entry.get("description", "").format(**fields)))
    return out
