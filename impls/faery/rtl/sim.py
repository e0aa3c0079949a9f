"""Run the RTL on real data: Amaranth's simulator for small cases, Verilator for larger ones.

`simulate(corpus, queries, k, config)` builds the accelerator from the shared description,
streams the int8 corpus through it once per query and returns the top-k it reads out
(int scores, ids) with its counters.  Both engines drive the same design the same way:
the beat memory answers `mem_addr` within the cycle, and a query runs from `start` to
the k-th result.  Verilator builds are cached by the Verilog's hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impls.faery.fpga_model.config import FpgaConfig
from impls.faery.rtl.params import EMBEDDING_BITS, RtlParams, rtl_params
from impls.faery.rtl.top import Accelerator

ENGINES = ("amaranth", "verilator")
TESTBENCH = Path(__file__).with_name("verilator_tb.cpp")
CACHE_DIR = Path(os.environ.get("RECMINE_RTL_CACHE", Path.home() / ".cache" / "recmine" / "rtl"))


@dataclass(frozen=True)
class RtlStats:
    """One query's run on the RTL (simulated, cycle by cycle)."""

    items: int
    k: int
    cycles: int            # start to the k-th result
    stall_cycles: int      # cycles a beat waited for room in the filter buffer
    passed: int            # scores the filter let through
    max_buffer_fill: int   # the filter buffer's peak occupancy


@dataclass(frozen=True)
class RtlRun:
    scores: np.ndarray     # (B, k) int64, descending
    ids: np.ndarray        # (B, k) int64
    stats: list[RtlStats]
    engine: str
    build_s: float         # elaboration (and Verilator compile; 0 when cached)
    run_s: float           # simulation


def _words(values: list[int], bits: int) -> np.ndarray:
    """Little-endian uint32 words of each value, max(1, ceil(bits/32)) per value."""
    n = max(1, -(-bits // 32))
    out = np.zeros((len(values), n), dtype=np.uint32)
    for row, v in enumerate(values):
        for w in range(n):
            out[row, w] = (v >> (32 * w)) & 0xFFFFFFFF
    return out


def _beats(corpus: np.ndarray, live: np.ndarray, p: RtlParams) -> list[int]:
    """Each beat as one integer: lanes x dim bytes, then one live bit per lane (0 for padding)."""
    n = corpus.shape[0]
    n_beats = -(-n // p.lanes)
    data = np.zeros((n_beats * p.lanes, p.dim), dtype=np.uint8)
    data[:n] = corpus.view(np.uint8)
    alive = np.zeros(n_beats * p.lanes, dtype=bool)
    alive[:n] = live
    raw = data.reshape(n_beats, p.lanes * p.dim)
    bits = np.packbits(alive.reshape(n_beats, p.lanes), axis=1, bitorder="little")
    data_bits = p.lanes * p.dim * EMBEDDING_BITS
    return [int.from_bytes(raw[b].tobytes(), "little") | (int.from_bytes(bits[b].tobytes(), "little") << data_bits)
            for b in range(n_beats)]


def _query_word(query: np.ndarray) -> int:
    return int.from_bytes(np.ascontiguousarray(query, dtype=np.int8).view(np.uint8).tobytes(), "little")


def simulate(corpus: np.ndarray, queries: np.ndarray, k: int, config: FpgaConfig,
             live: np.ndarray | None = None, engine: str = "amaranth") -> RtlRun:
    """Run each query through the RTL.  corpus (N, d) and queries (B, d) are int8."""
    if engine not in ENGINES:
        raise ValueError(f"unknown RTL simulation engine {engine!r}; choose one of {', '.join(ENGINES)}")
    corpus = np.ascontiguousarray(corpus, dtype=np.int8)
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.int8)
    n, dim = corpus.shape
    p = rtl_params(config, dim, k, n)
    live = np.ones(n, dtype=bool) if live is None else np.asarray(live, dtype=bool)
    beats = _beats(corpus, live, p)
    run = _amaranth if engine == "amaranth" else _verilator
    started = time.perf_counter()
    results, build_s = run(p, beats, [_query_word(q) for q in queries])
    total = time.perf_counter() - started
    scores = np.array([[s for s, _ in r[0]] for r in results], dtype=np.int64).reshape(len(results), k)
    ids = np.array([[i for _, i in r[0]] for r in results], dtype=np.int64).reshape(len(results), k)
    stats = [RtlStats(n, k, *r[1]) for r in results]
    return RtlRun(scores, ids, stats, engine, build_s, total - build_s)


# ----------------------------------------------------------------------------- Amaranth's simulator

def _amaranth(p: RtlParams, beats: list[int], queries: list[int]):
    from amaranth.hdl import Elaboratable, Module
    from amaranth.lib.memory import Memory
    from amaranth.sim import Simulator

    started = time.perf_counter()
    accel = Accelerator(p)

    class Bench(Elaboratable):
        def elaborate(self, platform) -> Module:
            m = Module()
            m.submodules.accel = accel
            m.submodules.memory = memory = Memory(shape=len(accel.mem_data), depth=len(beats), init=beats)
            port = memory.read_port(domain="comb")
            m.d.comb += [port.addr.eq(accel.mem_addr), accel.mem_data.eq(port.data)]
            return m

    sim = Simulator(Bench())
    sim.add_clock(1e-8)
    results: list = []

    async def bench(ctx) -> None:
        for query in queries:
            ctx.set(accel.query, query)
            ctx.set(accel.n_beats, len(beats))
            ctx.set(accel.start, 1)
            await ctx.tick()
            ctx.set(accel.start, 0)
            top: list[tuple[int, int]] = []
            while True:
                await ctx.tick()
                if ctx.get(accel.out_valid):
                    top.append((ctx.get(accel.out_score), ctx.get(accel.out_id)))
                    if ctx.get(accel.out_last):
                        break
            results.append((top, (ctx.get(accel.cycle), ctx.get(accel.stalls), ctx.get(accel.passed),
                                  ctx.get(accel.peak_fill))))
            await ctx.tick()   # the accelerator is idle (done) again: the next query may start

    sim.add_testbench(bench)
    build_s = time.perf_counter() - started
    sim.run()
    return results, build_s


# ----------------------------------------------------------------------------- Verilator

def verilog(p: RtlParams) -> str:
    """The accelerator as Verilog, written by yosys from Amaranth's RTLIL."""
    from amaranth.back import rtlil

    accel = Accelerator(p)
    text = rtlil.convert(accel, name="top", ports=accel.ports())
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "top.il").write_text(text)
        _run(["yosys", "-q", "-p", "read_rtlil top.il; proc; memory_collect; opt_clean; write_verilog -noattr top.v"],
             tmp)
        return Path(tmp, "top.v").read_text()


def _run(cmd: list[str], cwd: str | Path) -> None:
    if shutil.which(cmd[0]) is None:
        raise ValueError(f"{cmd[0]} is not installed (Debian: apt-get install {cmd[0]})")
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed: {(done.stderr or done.stdout).strip()[-2000:]}")


def verilator_binary(p: RtlParams) -> tuple[Path, float]:
    """The compiled testbench for `p` (built on first use, then cached), and the seconds spent building it."""
    started = time.perf_counter()
    source = verilog(p)
    key = hashlib.sha256((source + TESTBENCH.read_text()).encode()).hexdigest()[:16]
    binary = CACHE_DIR / key / "Vtop"
    if not binary.exists():
        build = CACHE_DIR / f"{key}.build-{os.getpid()}"
        build.mkdir(parents=True, exist_ok=True)
        (build / "top.v").write_text(source)
        shutil.copy(TESTBENCH, build / "tb.cpp")
        _run(["verilator", "--cc", "--exe", "--build", "-O2", "-Wno-fatal", "-Wno-lint", "-Wno-style",
              "--x-assign", "0", "--x-initial", "0", "-j", "2", "--top-module", "top", "-Mdir", "obj",
              "-CFLAGS", "-O1", "top.v", "tb.cpp", "-o", "Vtop"], build)
        (CACHE_DIR / key).mkdir(parents=True, exist_ok=True)
        os.replace(build / "obj" / "Vtop", binary)
        shutil.rmtree(build, ignore_errors=True)
    return binary, time.perf_counter() - started


def _verilator(p: RtlParams, beats: list[int], queries: list[int]):
    binary, build_s = verilator_binary(p)
    data_bits = p.lanes * p.dim * EMBEDDING_BITS + p.lanes
    beat_words, query_words = _words(beats, data_bits), _words(queries, p.dim * EMBEDDING_BITS)
    header = np.array([len(queries), len(beats), beat_words.shape[1], query_words.shape[1]], dtype=np.uint32)
    stdin = header.tobytes() + beat_words.tobytes() + query_words.tobytes()
    done = subprocess.run([str(binary)], input=stdin, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"the Verilator testbench failed: {done.stderr.decode()[-2000:]}")
    lines = done.stdout.decode().split("\n")
    results, pos = [], 0
    for _ in queries:
        top = [tuple(int(x) for x in lines[pos + j].split()) for j in range(p.k)]
        counters = tuple(int(x) for x in lines[pos + p.k].split())
        results.append((top, counters))
        pos += p.k + 1
    return results, build_s
