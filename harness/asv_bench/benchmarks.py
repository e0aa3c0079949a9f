"""asv benchmarks generated from the experiment registry (quick tier).

One class per system:
- `Time<System>.time_run(experiment)`: measured experiments, timed by asv;
- `Track<System>.track_time_s(experiment)`: modelled or simulated experiments,
  whose figure is tracked (the unit says which).
An experiment whose backend is unavailable is skipped by asv (NotImplementedError).
Pick a subset with `asv run --bench 'TimeFaery.time_run.*numpy/cpu/gaussian-25k'`.
"""

import devices
from harness import registry
from workloads import catalog


def _prepare(self, experiment_id):
    exp = registry.get(experiment_id)
    ok, why = devices.can_run(exp.backend, exp.requires)
    if not ok:
        raise NotImplementedError(why)
    self.trial = exp.build(catalog.load(exp.workload), exp.p)


def _teardown(self, experiment_id):
    if getattr(self, "trial", None) is not None and self.trial.teardown is not None:
        self.trial.teardown()


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
