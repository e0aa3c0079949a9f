"""The one trial lifecycle: probe, load, pin the thread pools, build, run, check, tear down.

`reproduce` and `run` (harness.runner), the gate (harness.compare), the asv suite and
the pytest-benchmark suite all open an experiment through `open_trial`, so it runs
under the same thread settings whichever path measures it.

Thread pools: numba's (the CPU kernels) and the BLAS library's (numpy's GEMM, which
the numpy and Faiss-like baselines use) are both pinned to the experiment's thread
count, `threads=` among its parameters or every core this process may use.  Left
alone, the two pools were sized independently and a BLAS call's threads could find
their cores taken; one figure moved 40x between paths.  The settings are recorded
with every result.

Spinning pools: after a call, a pool's idle threads spin for a while before they sleep
(OpenBLAS's about 0.1 s; libgomp's, numba's and Faiss's OpenMP shorter).  On a 2-core machine
such a thread takes a core from the next kernel timed: a numba scan of 0.6 ms took 15 ms
per call for 0.1 s after a BLAS call, so a result check (a float64 GEMM) spoiled the first
setup of the experiment after it.  Every trial is therefore handed over for timing once this
process's other threads have gone to sleep, or at most 0.5 s on (`settle_threads`; whether they
had is stored with the result as `threads_settled`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import devices
from devices.timers import Timer, timer_for
from harness.registry import Experiment, Trial
from workloads import catalog


class BackendUnavailable(RuntimeError):
    """The experiment's backend (or a module it needs) cannot run here; the message says why."""


def default_threads() -> int:
    """Every core this process may run on."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Threads:
    """The thread counts an experiment runs under."""

    numba: int
    blas: int

    def provenance(self) -> dict[str, Any]:
        return {"numba_threads": self.numba, "blas_threads": self.blas, "blas_library": _blas_library(),
                "numba_threading_layer": os.environ.get("NUMBA_THREADING_LAYER", "default")}


def threads_for(exp: Experiment) -> Threads:
    wanted = exp.params.get("threads", default_threads())
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise ValueError(f"{exp.id}: the threads parameter must be a positive integer, not {wanted!r}")
    import numba

    count = min(wanted, numba.config.NUMBA_NUM_THREADS)  # numba cannot grow its pool after start-up
    return Threads(numba=count, blas=count)


@functools.cache
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@functools.cache
def _blas_library() -> str:
    infos = [i for i in _controller().info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i['internal_api']} {i.get('version') or ''} ({i.get('architecture') or 'generic'})".strip()
                     for i in infos) or "none loaded"


@contextlib.contextmanager
def pinned(threads: Threads) -> Iterator[None]:
    """numba and BLAS limited to `threads` inside the block; both restored after."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(threads.numba)
    try:
        with _controller().limit(limits=threads.blas, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(before)


@dataclass
class OpenTrial:
    """An experiment built and ready: time it with `timed_call`, or pin it for a loop of calls."""

    experiment: Experiment
    trial: Trial
    threads: Threads
    timer: Timer
    settled: bool = True   # no other thread of the process ran when it was handed over (`settle_threads`)

    def pinned(self) -> contextlib.AbstractContextManager:
        return pinned(self.threads)

    def timed_call(self) -> tuple[float, Any]:
        """One pinned call of the trial's work; pinning stays outside the timed region."""
        with self.pinned():
            return self.timer.time(self.trial.run)

    def check(self, result: Any) -> None:
        """Raise AssertionError when `result` is wrong (a fast wrong answer must never pass).

        A check is often a float64 GEMM, whose BLAS threads spin a while after it: the pools are
        left settled, so a timing that follows (the gate's rounds, the next trial) has its cores."""
        if self.trial.check is not None:
            with self.pinned():
                self.trial.check(result)
            settle_threads()


def fresh_workload(name: str) -> Any:
    """A copy of a loaded workload in memory of its own (the loaded one stays cached for the
    experiments that follow): a new trial setup places its data afresh."""
    return copy.deepcopy(catalog.load(name))


@contextlib.contextmanager
def open_trial(exp: Experiment, data: Any = None) -> Iterator[OpenTrial]:
    """Probe the backend, load the workload, build the trial under the pinned pools; tear down on exit.

    `data` is the workload to build on (default: the loaded one; see `fresh_workload`)."""
    ok, why = devices.can_run(exp.backend, exp.requires)
    if not ok:
        raise BackendUnavailable(f"{exp.id} cannot run here: {why}")
    threads = threads_for(exp)
    data = catalog.load(exp.workload) if data is None else data
    with pinned(threads):
        trial = exp.build(data, exp.params)
    try:
        settled = settle_threads()  # the build's, or an earlier experiment's, spinning pools must not share the timing
        yield OpenTrial(exp, trial, threads, timer_for(exp.backend), settled)
    finally:
        if trial.teardown is not None:
            trial.teardown()


SETTLE_LIMIT_S = 0.5   # a thread that runs for longer is work of its own, not a pool's idle spin
_working_threads: set[str] = set()   # threads that ran through a whole wait: not waited for again


def settle_threads(limit_s: float | None = None) -> bool:
    """Wait until no other thread of this process is running (a pool's idle threads spin before
    they sleep), seen twice a few milliseconds apart, for at most `limit_s` (default
    SETTLE_LIMIT_S).  True once none runs; False at the limit, or where Linux's /proc cannot
    tell.  A thread still running at the limit does work of its own (a Ray client's, say): it
    is remembered and not waited for again, so it costs one wait, not one per trial."""
    tasks = Path("/proc/self/task")
    ignored = {str(threading.get_native_id())} | _working_threads
    deadline = time.perf_counter() + (SETTLE_LIMIT_S if limit_s is None else limit_s)
    quiet_looks = 0
    while True:
        try:
            running = {t for t in os.listdir(tasks) if t not in ignored and _thread_state(tasks / t) == "R"}
        except OSError:
            return False
        quiet_looks = 0 if running else quiet_looks + 1
        if quiet_looks == 2:  # one look can fall between two spins of a thread that yields as it spins
            return True
        if time.perf_counter() >= deadline:
            _working_threads.update(running)
            return False
        time.sleep(0.002)


def _thread_state(task: Path) -> str:
    """A thread's scheduler state from /proc ("R" running, "S" asleep, ...; "" if gone or unreadable)."""
    try:
        stat = (task / "stat").read_text()
        return stat[stat.rindex(")") + 2:].split(" ", 1)[0]  # the name, in parentheses, may hold spaces
    except (OSError, ValueError):
        return ""


INTERRUPTED_MESSAGE = b"\nrecmine: interrupted; every finished result is stored. Run the same command to resume.\n"
INTERRUPTED_EXIT = 130


@functools.cache
def _exit_on_sigint() -> tuple[Any, Any]:
    """A C signal handler that writes the message and ends the process with exit 130, and libc's signal().

    Compiled with numba.cfunc: it runs at the moment the signal arrives, in C, needing neither
    the GIL nor a return from the kernel, so even a single-threaded nopython loop stops at once.
    Not cached on disk: the message's address is baked into the code.
    """
    import ctypes

    import numba
    import numpy as np

    libc = ctypes.CDLL(None)
    write, exit_now, install = libc.write, libc._exit, libc.signal
    write.argtypes, write.restype = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t), ctypes.c_ssize_t
    exit_now.argtypes, exit_now.restype = (ctypes.c_int,), None
    install.argtypes, install.restype = (ctypes.c_int, ctypes.c_void_p), ctypes.c_void_p
    message = np.frombuffer(INTERRUPTED_MESSAGE, dtype=np.uint8).copy()
    address, length = message.ctypes.data, message.size

    @numba.cfunc(numba.types.void(numba.types.int32))
    def handler(signum):
        write(2, address, length)
        exit_now(INTERRUPTED_EXIT)

    handler.keep_alive = message  # type: ignore[attr-defined]  # the buffer the handler writes from
    return handler, install


@contextlib.contextmanager
def ctrl_c_stops_at_once() -> Iterator[None]:
    """Inside the block (an experiment's work, never a store write), Ctrl-C ends the process at once, exit 130.

    A Python signal handler only runs when the interpreter gets control back, which a numba
    kernel may not give for minutes.  Nothing is stored for the interrupted experiment, and
    every row stored before it is already committed.  Outside the block, Ctrl-C raises
    KeyboardInterrupt as usual.  Only the main thread can install handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    handler, install = _exit_on_sigint()
    install(signal.SIGINT, handler.address)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def interrupted(exc: BaseException | None) -> bool:
    """Whether `exc` is, or was raised because of, a Ctrl-C.

    A SIGINT that lands inside a numba kernel surfaces when the kernel returns, as
    `SystemError: CPUDispatcher ... returned a result with an exception set`, with
    the KeyboardInterrupt as its cause.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
