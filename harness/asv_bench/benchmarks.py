"""asv benchmarks generated from the experiment registry (quick tier).

One class per system:
- `Time<System>.time_run(experiment)`: measured experiments, timed by asv;
- `Track<System>.track_time_s(experiment)`: modelled or simulated experiments,
  whose figure is tracked (the unit says which).
An experiment whose backend is unavailable is skipped by asv (NotImplementedError).
Pick a subset with `asv run --bench 'TimeFaery.time_run.*numpy/cpu/gaussian-25k'`.
"""

import contextlib

from harness import registry
from harness.lifecycle import BackendUnavailable, open_trial


def _prepare(self, experiment_id):
    """Open the experiment through the harness's trial lifecycle, pinned for asv's whole timing loop."""
    self._stack = contextlib.ExitStack()
    try:
        self.opened = self._stack.enter_context(open_trial(registry.get(experiment_id)))
    except BackendUnavailable as exc:
        raise NotImplementedError(str(exc)) from None
    self._stack.enter_context(self.opened.pinned())
    self.trial = self.opened.trial


def _teardown(self, experiment_id):
    if getattr(self, "_stack", None) is not None:
        self._stack.close()


def _time_run(self, experiment_id):
    self.trial.run()


def _track_time_s(self, experiment_id):
    return self.trial.run().get("time_s", float("nan"))


def _suite():
    classes = {}
    for system in registry.systems():
        exps = registry.experiments(system=system, tier="quick")
        measured = [e.id for e in exps if e.kind == "measured"]
        other = [e.id for e in exps if e.kind != "measured"]
        name = system.replace("-", "_").title().replace("_", "")
        common = {"param_names": ["experiment"], "setup": _prepare, "teardown": _teardown, "timeout": 600}
        if measured:
            classes[f"Time{name}"] = type(f"Time{name}", (), {**common, "params": [measured],
                                                               "time_run": _time_run})
        if other:
            track = lambda self, exp_id: _track_time_s(self, exp_id)  # noqa: E731
            track.unit = "seconds (modelled or simulated)"
            classes[f"Track{name}"] = type(f"Track{name}", (), {**common, "params": [other],
                                                                 "track_time_s": track})
    return classes


globals().update(_suite())
