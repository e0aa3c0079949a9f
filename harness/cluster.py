"""`recmine reproduce --ray ADDRESS`: each experiment a Ray task on a node of a cluster that can run it.

The driver (the `reproduce` process) is the only writer of the results store:

- it joins the cluster (`auto`: a running one, `local`: one started for this run, else an address);
- a census task pinned to each node reports that node's machine, code state and library versions,
  which of the experiments' backends and modules it can run, and what it offers Ray (CPUs, GPUs, a
  custom `opencl` resource); a node whose code state differs from the driver's is left out, and an
  experiment that no node can run is skipped with the reason, as on one machine;
- it claims each experiment (`Session.claim`) just before dispatching it, runs it on the node through
  `harness.runner` (the same trial lifecycle as on one machine), records the row the node sends back
  with that node's provenance (machine, device, threads), and releases the claim;
- a timed experiment takes all of its node's CPUs, so two timed experiments never share a node's
  cores (a timing is only as good as the quiet around it); modelled and simulated ones take one CPU
  each.  With `pack`, every experiment takes one CPU;
- an experiment whose node is lost is tried once more on another node that can run it, else stored
  as failed, naming the node;
- on Ctrl-C every outstanding task is cancelled and its claim released; every row stored stays.

Ray is optional (the `cluster` extra): it is imported only here, and only when asked for.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import devices
from harness.measure import Settings
from harness.registry import Experiment
from harness.runner import Outcome, Session, Summary, progress_bar
from harness.store import ALREADY_STORED

INSTALL_HINT = "pip install 'recmine[cluster]'"
# The custom resource a node offers when its OpenCL device is to be shared out by Ray.
OPENCL_RESOURCE = "opencl"
# How often the driver wakes from waiting on tasks, so that Ctrl-C is handled at once.
POLL_S = 0.25
# An experiment whose node was lost is dispatched this many times more, to another node.
RETRIES_ON_NODE_LOSS = 1
# After a task fails, how long to wait for the cluster to call its node dead (Ray's health check takes
# a few periods of a few seconds) before taking the failure for the worker's alone.
NODE_DEATH_WAIT_S = 20.0


def require_ray() -> Any:
    """The ray module, or a ValueError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ValueError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def _ctrl_c_between_ray_calls() -> Iterator[threading.Event]:
    """Ctrl-C sets the event instead of raising, so the driver loop stops between Ray calls.

    A KeyboardInterrupt raised inside `ray.wait` or `ray.cancel` can leave Ray's core worker in
    a state it aborts on ("An unexpected system state has occurred"), which loses the clean
    exit 130 and the claims' release.  Only the main thread can install the handler.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def joined(address: str) -> Iterator[Any]:
    """Connect to the cluster at `address` (`auto`, `local` or HOST:PORT) for the block; the ray module."""
    ray = require_ray()
    if ray.is_initialized():  # the caller joined one already (tests, a notebook): use it, leave it up
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                               "log_to_driver": False}
    if address == "local":
        if devices.probe("opencl").available:
            options["resources"] = {OPENCL_RESOURCE: 1}
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except ConnectionError as exc:
        hint = "start one with `ray start --head`, or use --ray local" if address == "auto" else "is it running?"
        raise ValueError(f"--ray {address}: cannot join a Ray cluster ({hint}): {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------- on the nodes

def _census(needs: list[tuple[str, tuple[str, ...]]]) -> dict[str, Any]:
    """This node's provenance and which of `needs` (backend, requires) it can run (runs on the node)."""
    import ray

    from harness import machine

    return {"node_id": ray.get_runtime_context().get_node_id(), "machine_id": machine.machine_id(),
            "machine": machine.machine(), "versions": machine.library_versions(), "commit": machine.git_commit(),
            "can_run": [devices.can_run(backend, requires) for backend, requires in needs]}


def _measure(experiment_id: str, settings: Settings, debug: bool) -> dict[str, Any]:
    """Run one experiment on this node through the single-machine path; the row's figures and provenance."""
    from harness import machine, registry
    from harness.runner import device_name, or_error, run

    exp = registry.get(experiment_id)
    outcome = or_error(lambda: run(exp, settings), debug)
    node = {"machine_id": machine.machine_id(), "machine": machine.machine(), "versions": machine.library_versions(),
            "device": device_name(exp)}
    if isinstance(outcome, str):
        return {"node": node, "error": outcome}
    # Only what the row stores travels back: the experiment object and the raw result stay here.
    return {"node": node, "value": outcome.value, "samples": outcome.samples, "stats": outcome.stats,
            "metrics": outcome.metrics, "peak_memory_bytes": outcome.peak_memory_bytes}


# ---------------------------------------------------------------------------- on the driver

@dataclass
class Node:
    """One node of the cluster, as the census found it."""

    node_id: str
    hostname: str
    cpus: int
    gpus: int
    opencl_slots: int
    free_cpus: int
    can_run: dict[tuple[str, tuple[str, ...]], tuple[bool, str]]
    alive: bool = True

    @property
    def label(self) -> str:
        return f"{self.hostname} (node {self.node_id[:8]})"

    def reason_against(self, exp: Experiment) -> str | None:
        """Why this node cannot run `exp`, or None."""
        ok, why = self.can_run[(exp.backend, exp.requires)]
        if not ok:
            return why
        if _needs_gpu(exp) and self.gpus < 1:
            return "the node offers Ray no GPU"
        return None


@dataclass
class ClusterSummary(Summary):
    """A run's summary, plus where each experiment ran and which ones were on a node that was lost."""

    nodes: dict[str, str] = field(default_factory=dict)    # experiment id -> node label
    lost: dict[str, str] = field(default_factory=dict)     # experiment id -> the node lost while measuring it
    left_out: dict[str, str] = field(default_factory=dict)  # node label -> why no experiment went to it


@dataclass
class _Dispatch:
    exp: Experiment
    node: Node
    cpus: int
    lost_on: list[str]


def run_all_on_ray(address: str, session: Session, exps: Iterable[Experiment], settings: Settings,
                   force: bool = False, pack: bool = False, progress: bool = True,
                   debug: bool = False) -> ClusterSummary:
    """Run experiments on the cluster at `address`, storing each row on the driver as it arrives; resumable."""
    exps = list(exps)
    with joined(address) as ray:
        return _Dispatcher(ray, session, exps, settings, force, pack, debug).run(progress)


class _Dispatcher:
    def __init__(self, ray: Any, session: Session, exps: list[Experiment], settings: Settings, force: bool,
                 pack: bool, debug: bool) -> None:
        self.ray, self.session, self.exps, self.settings = ray, session, exps, settings
        self.force, self.pack, self.debug = force, pack, debug
        self.summary = ClusterSummary()
        self.nodes = self._take_census()
        # Resume: a row stored by any of the cluster's machines counts (one machine's nodes share its id).
        self.machine_ids = {session.machine_id} | self._node_machine_ids
        self.in_flight: dict[Any, _Dispatch] = {}
        # Every claim this run holds, by experiment id: whatever stops the run gives each one back,
        # wherever it is (dispatched, being settled, or waiting to be retried).
        self.claimed: dict[str, Experiment] = {}

    # -------------------------------------------------------------- census
    def _take_census(self) -> list[Node]:
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        needs = sorted({(e.backend, e.requires) for e in self.exps})
        alive = [n for n in ray.nodes() if n.get("Alive")]
        refs = []
        for n in alive:
            gpus = int(n["Resources"].get("GPU", 0))
            # A GPU task sees only the GPUs Ray gives it: the census asks for one to probe it.
            refs.append(_remote(ray, _census, gpu=bool(gpus)).options(
                num_cpus=0, num_gpus=1 if gpus else 0, max_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(needs))
        reports = ray.get(refs)
        nodes, self._node_machine_ids = [], set()
        for n, report in zip(alive, reports):
            resources = n["Resources"]
            node = Node(n["NodeID"], str(report["machine"].get("hostname", n.get("NodeManagerAddress"))),
                        cpus=int(resources.get("CPU", 0)), gpus=int(resources.get("GPU", 0)),
                        opencl_slots=int(resources.get(OPENCL_RESOURCE, 0)), free_cpus=int(resources.get("CPU", 0)),
                        can_run=dict(zip(needs, (tuple(r) for r in report["can_run"]))))
            if report["commit"] != self.session.commit:
                self.summary.left_out[node.label] = (f"its code state {report['commit']} differs from the "
                                                     f"driver's {self.session.commit}")
            elif node.cpus < 1:
                self.summary.left_out[node.label] = "it offers Ray no CPU"
            else:
                nodes.append(node)
                self._node_machine_ids.add(report["machine_id"])
        for label, why in self.summary.left_out.items():
            print(f"recmine: node {label} left out: {why}", file=sys.stderr, flush=True)
        if not nodes:
            why = "; ".join(f"{label}: {reason}" for label, reason in self.summary.left_out.items())
            raise ValueError(f"no node of the Ray cluster can run experiments ({why or 'it has no live node'})")
        return nodes

    # -------------------------------------------------------------- the loop
    def run(self, progress: bool) -> ClusterSummary:
        bar = progress_bar(len(self.exps), progress)
        waiting: deque[tuple[Experiment, list[str]]] = deque()
        for exp in self.exps:
            why = self._nowhere(exp)
            if why is None:
                waiting.append((exp, []))
            else:
                self.summary.skipped[exp.id] = why
                bar.update(1)
        with _ctrl_c_between_ray_calls() as stop:
            try:
                while waiting or self.in_flight:
                    if stop.is_set():  # only here, between Ray calls: a Ctrl-C inside them can crash Ray's core
                        raise KeyboardInterrupt
                    waiting = self._dispatch(waiting, bar)
                    if not self.in_flight:
                        continue
                    ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=POLL_S)
                    for ref in ready:
                        retry = self._settle(ref, self.in_flight.pop(ref))
                        if retry is not None:
                            waiting.appendleft(retry)
                        else:
                            bar.update(1)
            finally:  # on Ctrl-C or any error: stop what is running, give back every claim; stored rows stay
                for ref in self.in_flight:
                    self.ray.cancel(ref, force=True)
                self.in_flight.clear()
                for exp in list(self.claimed.values()):
                    self._release(exp)
                bar.close()
        return self.summary

    def _nowhere(self, exp: Experiment) -> str | None:
        """Why no live node can run `exp` (the first node's reason), or None."""
        reasons = [node.reason_against(exp) for node in self.nodes if node.alive]
        if any(r is None for r in reasons):
            return None
        if not reasons:
            return "every node that could run it was lost"
        return reasons[0] if len(set(reasons)) == 1 else "no node can run it: " + "; ".join(
            f"{n.label}: {r}" for n, r in zip([n for n in self.nodes if n.alive], reasons))

    def _dispatch(self, waiting: deque, bar: Any) -> deque:
        """Start every waiting experiment that a node has room for now; the rest keep waiting, in order."""
        still: deque = deque()
        for exp, lost_on in waiting:
            node = self._room_for(exp)
            if node is None:
                why = self._nowhere(exp)
                if why is not None:  # its nodes were lost while it waited
                    self._fail(exp, lost_on, why)
                    bar.update(1)
                else:
                    still.append((exp, lost_on))
                continue
            if not lost_on:  # a retry still holds its claim
                busy = self._claim(exp)
                if busy is not None:
                    bar.update(1)
                    continue
            self._submit(exp, node, lost_on)
        return still

    def _claim(self, exp: Experiment) -> str | None:
        busy = self.session.claim(exp, self.force)
        if busy is None:
            self.claimed[exp.id] = exp
        if busy is None and not self.force and any(
                self.session.store.done(exp.id, self.session.commit, m) for m in self.machine_ids):
            self._release(exp)
            busy = ALREADY_STORED
        if busy == ALREADY_STORED:
            self.summary.resumed.append(exp.id)
        elif busy is not None:
            self.summary.skipped[exp.id] = busy
        return busy

    def _cpus_for(self, exp: Experiment, node: Node) -> int:
        timed = exp.kind == "measured"
        return node.cpus if timed and not self.pack else 1

    def _room_for(self, exp: Experiment) -> Node | None:
        """The live node able to run `exp` with the most free CPUs, if it has enough for it now."""
        able = [n for n in self.nodes if n.alive and n.reason_against(exp) is None]
        able = [n for n in able if n.free_cpus >= self._cpus_for(exp, n)]
        return max(able, key=lambda n: n.free_cpus, default=None)

    def _submit(self, exp: Experiment, node: Node, lost_on: list[str]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        cpus = self._cpus_for(exp, node)
        gpu = _needs_gpu(exp)
        options: dict[str, Any] = {
            "num_cpus": cpus, "num_gpus": 1 if gpu else 0, "max_retries": 0,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node.node_id, soft=False)}
        if exp.backend == "opencl" and node.opencl_slots:
            options["resources"] = {OPENCL_RESOURCE: 1}
        ref = _remote(self.ray, _measure, gpu).options(**options).remote(exp.id, self.settings, self.debug)
        node.free_cpus -= cpus
        self.in_flight[ref] = _Dispatch(exp, node, cpus, lost_on)
        self.summary.nodes[exp.id] = node.label

    def _settle(self, ref: Any, d: _Dispatch) -> tuple[Experiment, list[str]] | None:
        """Store what came back for one task; the experiment to dispatch again when its node was lost."""
        d.node.free_cpus += d.cpus
        try:
            reply = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # the task itself catches experiment errors: this is Ray's
            if not self._still_alive(d.node):
                d.node.alive = False
                lost_on = d.lost_on + [d.node.label]
                self.summary.lost[d.exp.id] = d.node.label
                if len(lost_on) <= RETRIES_ON_NODE_LOSS and self._nowhere(d.exp) is None:
                    return d.exp, lost_on
                self._fail(d.exp, lost_on, f"node {d.node.label} was lost while measuring it")
            else:
                self._fail(d.exp, d.lost_on, f"the Ray worker on {d.node.label} failed: {type(exc).__name__}: "
                                             f"{_first_line(exc)}", node=None)
            return None
        try:
            outcome = None
            if "error" not in reply:
                outcome = Outcome(d.exp, reply["value"], reply["samples"], reply["stats"], reply["metrics"],
                                  reply["peak_memory_bytes"])
            self.session.record(d.exp, outcome, error=reply.get("error"), node=reply["node"])
            if outcome is None:
                self.summary.failed[d.exp.id] = f"{reply['error']} (on {d.node.label})"
            else:
                self.summary.measured.append(d.exp.id)
                if outcome.stats.get("unstable"):
                    self.summary.unstable.append(d.exp.id)
        finally:
            self._release(d.exp)
        return None

    def _fail(self, exp: Experiment, lost_on: list[str], why: str, node: dict | None = None) -> None:
        """Store `exp` as failed (with every node it was lost on) and give back its claim."""
        if lost_on and not why.startswith("node "):
            why = f"{why} (lost on {', '.join(lost_on)})"
        try:
            self.session.record(exp, error=why, node=node)
            self.summary.failed[exp.id] = why
        finally:
            self._release(exp)

    def _release(self, exp: Experiment) -> None:
        if self.claimed.pop(exp.id, None) is not None:
            self.session.release(exp)

    def _still_alive(self, node: Node) -> bool:
        """Whether the cluster still lists `node` as alive (a failed task on a lost node says otherwise)."""
        deadline = time.monotonic() + NODE_DEATH_WAIT_S
        while True:
            state = next((n for n in self.ray.nodes() if n["NodeID"] == node.node_id), None)
            if state is None or not state.get("Alive"):
                return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.5)


def _remote(ray: Any, fn: Any, gpu: bool) -> Any:
    """`fn` as a Ray task; a GPU task gets a fresh worker, whose CUDA context sees the GPU Ray gave it."""
    return ray.remote(max_calls=1)(fn) if gpu else ray.remote(fn)


def _needs_gpu(exp: Experiment) -> bool:
    return exp.backend == "gpu" or "backend:gpu" in exp.requires


def _first_line(exc: BaseException) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), "")


