"""One module per system, `harness/systems/<name>.py`, beside its grids file `<name>.toml`.

The module keeps the builders (functions `build(data, params)` returning a `harness.registry.Trial`),
and ends with `SYSTEM = System(...)`: everything the harness reads from it, and nothing else.

- `experiments`: the registry's experiments, usually `harness.grids.load(<name>.toml).experiments(...)`
  over the module's `BUILDERS`.  The list never depends on the machine: an experiment whose backend
  is absent here is skipped when it runs.
- `cli`: a click group mounted as `recmine <name> ...`.
- `plots`: plot specs for the report (see `harness.report`).
- `speedup`: the report's speedup table against the system's baseline (a `SpeedupTable`); without
  one, the report lists each implementation's figures.
- `baseline_strength`: pairs of (the real library, our baseline), whose time ratio says whether our
  baseline is as strong as what the paper compared against (see `harness.claims.weak_baselines`).
- `report_tables`: rows of the store -> further report tables, by name ({"title", "note",
  "columns", "rows"}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import click

    from harness.registry import Experiment


@dataclass(frozen=True)
class SpeedupTable:
    """`baseline`'s median time over each other implementation's, on the parameters both share."""

    baseline: str                                # the baseline's impl name
    pair_on: tuple[str, ...] | None = None       # the parameters a pair must share (default: all that both have)
    # backend -> the baseline's backends to pair with, in order of preference (default: the same backend)
    baseline_backends: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class BaselineStrength:
    """The real library (`real`, a selector) against our baseline (`ours`), paired on `pair_on`."""

    label: str
    real: Mapping[str, Any]
    ours: Mapping[str, Any]
    pair_on: tuple[str, ...] = ("workload",)


@dataclass(frozen=True)
class System:
    name: str
    experiments: Callable[[], list[Experiment]]
    cli: click.Group | None = None
    plots: Sequence[Mapping[str, Any]] = ()
    speedup: SpeedupTable | None = None
    baseline_strength: Sequence[BaselineStrength] = ()
    report_tables: Callable[[list[dict[str, Any]]], dict[str, dict[str, Any]]] = lambda rows: {}
