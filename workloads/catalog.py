"""The registry of named workloads.

Every data module in this package registers its named workloads here when it is
imported; `all_workloads()` imports them all, so a new module needs no other
wiring.  A workload is seeded and sized: loading it twice gives the same data.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

TIERS = ("quick", "full")


@dataclass(frozen=True)
class Workload:
    """A named, seeded, sized data set.

    `kind` names the data type `load` returns ("embeddings", "graph", "updates");
    `size` holds the numbers a plot may put on an axis (n, d, vertices, ...);
    `ground_truth` holds known answers (counts, ...) where they exist.
    """

    name: str
    kind: str
    tier: str
    description: str
    load: Callable[[], Any] = field(repr=False, compare=False)
    size: dict[str, float] = field(default_factory=dict, compare=False)
    ground_truth: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str = "generated (seeded)"

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"workload {self.name!r}: tier must be one of {TIERS}, not {self.tier!r}")


_REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    """Add a workload to the registry; a name may be registered once."""
    if workload.name in _REGISTRY:
        raise ValueError(f"workload {workload.name!r} is registered twice")
    _REGISTRY[workload.name] = workload
    return workload


@functools.cache
def _import_data_modules() -> None:
    import workloads

    for info in pkgutil.walk_packages(workloads.__path__, prefix="workloads."):
        if info.name != __name__:
            importlib.import_module(info.name)


def all_workloads() -> dict[str, Workload]:
    """Every registered workload, by name."""
    _import_data_modules()
    return dict(_REGISTRY)


def get(name: str) -> Workload:
    """The workload called `name`; ValueError naming the known ones otherwise."""
    known = all_workloads()
    if name not in known:
        names = sorted(known)
        shown = ", ".join(names[:15]) + (f", ... ({len(names) - 15} more: `recmine list` shows them)" if len(names) > 15 else "")
        raise ValueError(f"unknown workload {name!r}; known workloads: {shown}")
    return known[name]


@functools.lru_cache(maxsize=4)
def load(name: str) -> Any:
    """The data of workload `name`, built once per process (a few are kept)."""
    return get(name).load()
