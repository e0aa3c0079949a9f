"""The one trial lifecycle: every path runs an experiment under the same thread settings; Ctrl-C exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from harness import compare, lifecycle, registry
from harness.measure import Settings
from harness.registry import Trial, experiment

WORKLOAD = "citeseer"  # any small registered workload: the trial below ignores its data


def _blas_threads() -> int:
    return min(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


@pytest.fixture
def probe_experiment(monkeypatch):
    """An experiment whose run records the thread settings it runs under, registered for the test."""
    seen: list[tuple[int, int]] = []

    def build(data, params):
        def run():
            seen.append((numba.get_num_threads(), _blas_threads()))
            return len(seen)
        return Trial(run, check=lambda result: None)

    exp = experiment("probe", "threads", "cpu", WORKLOAD, build, params={"threads": 1})
    everything = registry._all()
    monkeypatch.setattr(registry, "_all", lambda: (*everything, exp))
    return exp, seen


def test_every_path_runs_under_the_experiments_threads(probe_experiment):
    from harness import runner
    from harness.asv_bench import benchmarks as asv_suite
    from tests.benchmarks.test_registry_benchmarks import bench_experiment

    exp, seen = probe_experiment
    assert numba.get_num_threads() != 1 or os.cpu_count() == 1  # the default differs from the pinned 1
    paths = {}

    def ran_under(path, action):
        seen.clear()
        action()
        paths[path] = set(seen)

    ran_under("runner", lambda: runner.run(exp, Settings(warmup=1, min_repeats=2, min_time_s=0)))
    ran_under("gate", lambda: compare.measure_ratios(
        [compare.GateFigure("x", exp.id, (exp.id,), None)], min_rounds=2, min_time_s=0))

    def asv():
        bench = type("Bench", (), {})()
        asv_suite._prepare(bench, exp.id)
        try:
            asv_suite._time_run(bench, exp.id)
        finally:
            asv_suite._teardown(bench, exp.id)
    ran_under("asv", asv)
    ran_under("pytest-benchmark", lambda: bench_experiment(lambda fn: fn(), exp.id))
    assert paths == {path: {(1, 1)} for path in paths}, paths
    outcome = runner.run(exp, Settings(warmup=0, min_repeats=1, min_time_s=0))
    assert outcome.stats["numba_threads"] == 1 and outcome.stats["blas_threads"] == 1
    assert numba.get_num_threads() == lifecycle.default_threads()  # restored after the experiment


def test_run_all_spreads_each_experiments_setups_over_the_run(tmp_path, monkeypatch):
    """Every experiment's earlier setup comes before any last one, so a slow spell falls on one setup only."""
    from harness.runner import Session, run_all
    from harness.store import Store

    events: list[tuple[str, int]] = []

    def build(data, params):
        events.append((params["name"], id(data)))
        return Trial(lambda: params["name"], check=lambda result: None)

    exps = [experiment("probe", "setups", "cpu", WORKLOAD, build, params={"name": name}) for name in "ab"]
    failing = experiment("probe", "setups", "cpu", WORKLOAD, lambda d, p: 1 / 0, params={"name": "broken"})
    with Store(tmp_path / "s.sqlite") as store:
        summary = run_all(Session(store, "test", "quick"), [*exps, failing],
                          Settings(warmup=0, min_repeats=2, min_time_s=0, setups=2), progress=False)
        rows = store.rows()
    assert [name for name, _ in events] == ["a", "b", "a", "b"]
    assert events[0][1] != events[2][1]  # the earlier setup built on a copy of the data of its own
    assert summary.measured == [e.id for e in exps] and list(summary.failed) == [failing.id]
    assert "ZeroDivisionError" in summary.failed[failing.id]
    assert {r["experiment_id"]: len(r["stats"]["setup_medians"]) for r in rows if r["status"] == "ok"} == \
        {e.id: 2 for e in exps}
    assert all(r["stats"]["wall_s"] > 0 for r in rows if r["status"] == "ok")  # both setups' cost, for harness.plan


@numba.njit(nogil=True, cache=True)
def _spin(iterations, flags):
    """A thread's busy work outside the GIL, as a pool's idle spin is: flags[0] set at its start, flags[1] at its end."""
    flags[0] = 1
    x = np.uint64(88172645463325252)
    for _ in range(iterations):  # xorshift: no closed form for the compiler to skip the loop with
        x ^= x << np.uint64(13)
        x ^= x >> np.uint64(7)
        x ^= x << np.uint64(17)
    flags[1] = 1
    return x


def _spinner(seconds: float) -> tuple[threading.Thread, np.ndarray]:
    """A thread busy for about `seconds` (calibrated here), started and seen running."""
    _spin(10, np.zeros(2, np.uint8))  # compiled before anything is timed
    began = time.perf_counter()
    _spin(10**7, np.zeros(2, np.uint8))
    per_iteration = (time.perf_counter() - began) / 10**7
    flags = np.zeros(2, np.uint8)
    thread = threading.Thread(target=_spin, args=(max(1, int(seconds / per_iteration)), flags))
    thread.start()
    while not flags[0]:
        time.sleep(0.001)
    return thread, flags


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to see threads' states")
def test_trials_are_timed_only_once_the_processs_other_threads_sleep(monkeypatch):
    """A pool's thread spinning after a call (OpenBLAS's, 0.1 s after a GEMM) took a core from the next timed kernel."""
    monkeypatch.setattr(lifecycle, "_working_threads", set())
    thread, flags = _spinner(0.3)
    assert not lifecycle.settle_threads(limit_s=0.05)  # it runs: the wait gives up at its limit
    thread.join()
    monkeypatch.setattr(lifecycle, "_working_threads", set())
    thread, flags = _spinner(0.2)
    assert lifecycle.settle_threads(limit_s=10) and flags[1]  # it returned once the thread was done
    thread.join()

    monkeypatch.setattr(lifecycle, "SETTLE_LIMIT_S", 10.0)  # generous: a loaded machine stretches the spin
    spun = []

    def build(data, params):  # a build that leaves a thread spinning, as a BLAS call does
        spun.append(_spinner(0.1))
        return Trial(lambda: None)

    with lifecycle.open_trial(experiment("probe", "spin", "cpu", WORKLOAD, build)) as opened:
        [(thread, flags)] = spun
        assert flags[1] and opened.settled  # handed over for timing only after the spin
    thread.join()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to see threads' states")
def test_a_thread_that_runs_through_a_wait_is_not_waited_for_again(monkeypatch):
    """A thread doing work of its own (a Ray client's, say) costs one wait, not one per trial."""
    monkeypatch.setattr(lifecycle, "_working_threads", set())
    thread, flags = _spinner(2.0)
    assert not lifecycle.settle_threads(limit_s=0.05)
    began = time.perf_counter()
    assert lifecycle.settle_threads(limit_s=1.5) and not flags[1]  # it still runs, and is not waited for
    assert time.perf_counter() - began < 1.0
    thread.join()


def test_a_bad_threads_parameter_is_refused(monkeypatch):
    exp = experiment("probe", "threads", "cpu", WORKLOAD, lambda d, p: Trial(lambda: 0), params={"threads": 0})
    with pytest.raises(ValueError, match="threads parameter"):
        lifecycle.threads_for(exp)


def test_interrupted_sees_through_numbas_system_error():
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher returned a result with an exception set") from exc
    except SystemError as wrapped:
        assert lifecycle.interrupted(wrapped)
    assert not lifecycle.interrupted(ValueError("x"))


DRIVER = textwrap.dedent('''
    import sys, numba, numpy as np
    from harness import registry
    from harness.registry import Trial, experiment

    @numba.njit({options})
    def spin(n):
        total = 0.0
        for i in {loop}(n):
            total += np.sqrt(i + 1.0)
        return total

    spin(10)  # compiled before the run starts

    def build(data, params):
        def run():
            print("kernel", flush=True)
            return spin(10**11)  # minutes: only a Ctrl-C ends it
        return Trial(run)

    exp = experiment("probe", "spin", "cpu", "citeseer", build)
    everything = registry._all()
    registry._all = lambda: (*everything, exp)
    from harness.cli import main
    sys.argv = ["recmine", "reproduce", "--system", "probe", "--store", sys.argv[1], "--no-report"]
    main()
''')


@pytest.mark.parametrize("parallel", [False, True], ids=["njit", "parallel"])
def test_ctrl_c_inside_a_numba_kernel_exits_130_and_stores_nothing(tmp_path: Path, parallel: bool):
    from harness.store import Store

    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(options="parallel=True" if parallel else "",
                                    loop="numba.prange" if parallel else "range"))
    store = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, str(script), str(store)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if line.strip() == "kernel" or time.monotonic() > deadline:
                break
        time.sleep(0.5)  # inside the kernel now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "SystemError" not in err, err
    with Store(store, create=False) as s:
        assert s.rows() == []  # no failed row for the interrupted experiment
