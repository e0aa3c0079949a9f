"""FAERY's experiments: exact top-K retrieval on every backend, its baselines, LoadGen scenarios, the FPGA model.

Scenarios (the `scenario` parameter), following MLPerf LoadGen (harness.loadgen):
- single-stream: time_s is one batch-1 query (median of the harness's repeats);
  p50_s/p99_s come from LoadGen's single-stream run over >= 100 queries.
- offline: time_s is one batch of `batch` queries; qps from LoadGen's offline run.
- server: time_s is one batch-1 query; qps_at_p99_10ms is the highest Poisson
  arrival rate whose p99 latency stays within 10 ms (FAERY's bound), with dynamic
  batching of waiting queries up to `max_batch`.
- phases: the Faiss-like GPU pipeline's GEMM vs k-selection time (topk_fraction).
- fpga-model rows are kind="modelled": time_s is the modelled latency of the VU35P
  design (hbm="vu35p") or of the same design given this GPU's measured copy
  bandwidth (hbm="gpu-matched"); sweeps vary channels, N_E and K.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np

import devices
from harness import grids, loadgen
from harness.registry import Experiment, Trial
from harness.systems import BaselineStrength, SpeedupTable, System
from workloads.embeddings import EmbeddingSet, check_topk

GRIDS = grids.load(Path(__file__).with_suffix(".toml"))
K = GRIDS.vars["k"]
GEMM_CEILING_SIZE = GRIDS.vars["gemm_ceiling_size"]
LATENCY_BOUND_S = 0.010
LOADGEN_QUERIES = 100
FPGA_MODEL_QUERIES = 2  # modelled latency is the mean over these queries' scans


# ---------------------------------------------------------------------------- the systems under test

@dataclass(frozen=True)
class _FaerySearch:
    """FAERY on one backend as a system under test: `search(queries, k)`; its index's searcher
    holds the filter's pass rate of the last search."""

    index: Any

    def __call__(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)


def _faery(data: EmbeddingSet, backend: str) -> _FaerySearch:
    from impls.faery import Index

    return _FaerySearch(Index(data.corpus, backend))


def _faiss_topk(data: EmbeddingSet, backend: str):
    from baselines.faiss_topk import FlatIndex

    return FlatIndex(data.corpus, backend=backend).search


def _faiss_cpu(data: EmbeddingSet):
    import faiss

    index = faiss.IndexFlatIP(data.d)
    index.add(np.ascontiguousarray(data.corpus, dtype=np.float32))
    return lambda queries, k: index.search(queries, k)


def _numpy(data: EmbeddingSet):
    corpus = np.ascontiguousarray(data.corpus, dtype=np.float32)

    def search(queries: np.ndarray, k: int):
        scores = queries @ corpus.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -top), axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)
    return search


def _torch_topk(data: EmbeddingSet):
    import torch

    corpus = torch.as_tensor(data.corpus, device="cuda")

    def search(queries: np.ndarray, k: int):
        q = torch.as_tensor(queries, device="cuda").to(corpus.dtype)
        scores, ids = torch.topk(q @ corpus.T, k, dim=1)
        return scores.float().cpu().numpy(), ids.cpu().numpy()
    return search


# (impl, backend) -> (make(data) -> search(queries, k), what it requires)
SUTS: dict[tuple[str, str], tuple[Callable, tuple[str, ...]]] = {
    ("faery", "cpu"): (functools.partial(_faery, backend="cpu"), ()),
    ("faery", "opencl"): (functools.partial(_faery, backend="opencl"), ("pyopencl",)),
    ("faery", "gpu"): (functools.partial(_faery, backend="gpu"), ()),
    ("faiss_topk", "cpu"): (functools.partial(_faiss_topk, backend="cpu"), ()),
    ("faiss_topk", "gpu"): (functools.partial(_faiss_topk, backend="gpu"), ()),
    ("faiss-cpu", "cpu"): (_faiss_cpu, ("faiss",)),
    ("numpy", "cpu"): (_numpy, ()),
    ("torch-topk", "gpu"): (_torch_topk, ("torch",)),
}


def _host(result: Any) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = result
    as_np = lambda a: a.get() if hasattr(a, "get") else np.asarray(a)  # noqa: E731  cupy arrays too
    return as_np(scores), as_np(ids)


def _checker(data: EmbeddingSet, queries: np.ndarray, k: int) -> Callable[[Any], None]:
    rows = slice(0, min(4, queries.shape[0]))  # float64 brute force over a few rows: cheap at 10M items

    def check(result: Any) -> None:
        scores, ids = _host(result)
        check_topk(data.corpus, queries[rows], scores[rows], ids[rows], k)
    return check


def _work(data: EmbeddingSet, batch: int) -> dict[str, float]:
    """The roofline's two sides for one search: flops (2 N d B) and corpus bytes read once.

    Divided by the compute ceiling (scenario=ceiling) and the read floor (scenario=floor)
    of the same run, they give the least time this machine allows for the search.
    """
    return {"flops": 2.0 * data.n * data.d * batch, "bytes_read": float(data.corpus.nbytes)}


def _pass_rate(search: Any) -> dict[str, float]:
    """FAERY's filter pass rate of the last search (`Searcher.last_pass_rate`), where its backend counts it."""
    if not isinstance(search, _FaerySearch):
        return {}
    rate = search.index.searcher.last_pass_rate
    return {} if math.isnan(rate) else {"pass_rate": rate}


# ---------------------------------------------------------------------------- measured scenarios

def build_single_stream(data: EmbeddingSet, p: dict[str, Any], impl: str, backend: str) -> Trial:
    search = SUTS[(impl, backend)][0](data)
    k = p["k"]
    cursor = iter(range(1 << 62))
    pool = data.queries

    def run():
        i = next(cursor) % pool.shape[0]
        return search(pool[i:i + 1], k)

    def metrics(_result: Any) -> dict[str, float]:
        stats = loadgen.single_stream(lambda q: search(q, k), pool, min_queries=LOADGEN_QUERIES)
        return {"p50_s": stats.p50_s, "p99_s": stats.p99_s, "loadgen_queries": stats.queries,
                **_work(data, 1), **_pass_rate(search)}

    def check(result: Any) -> None:
        # `run` rotates through the pool: check a fresh first query instead of the last one.
        _checker(data, pool[:1], k)(search(pool[:1], k))
    return Trial(run=run, metrics=metrics, check=check)


def build_offline(data: EmbeddingSet, p: dict[str, Any], impl: str, backend: str) -> Trial:
    search = SUTS[(impl, backend)][0](data)
    k, batch = p["k"], p["batch"]
    queries = np.resize(data.queries, (batch, data.d))  # pools smaller than the batch are repeated

    def metrics(_result: Any) -> dict[str, float]:
        res = loadgen.offline(lambda q: search(q, k), data.queries, batch, warmup=0)
        return {"qps": res.qps, **_work(data, batch), **_pass_rate(search)}
    return Trial(run=lambda: search(queries, k), metrics=metrics, check=_checker(data, queries, k))


def build_server(data: EmbeddingSet, p: dict[str, Any], impl: str, backend: str) -> Trial:
    search = SUTS[(impl, backend)][0](data)
    k = p["k"]
    pool = data.queries

    def metrics(_result: Any) -> dict[str, float]:
        res = loadgen.server(lambda q: search(q, k), pool, LATENCY_BOUND_S, max_batch=p["max_batch"],
                             min_queries=LOADGEN_QUERIES, step_seconds=0.3)
        return {"qps_at_p99_10ms": res.qps_at_bound, "p99_at_qps_s": res.p99_at_bound_s,
                "server_steps": float(len(res.steps)), "unloaded_p99_s": res.unloaded_p99_s}
    return Trial(run=lambda: search(pool[:1], k), metrics=metrics, check=_checker(data, pool[:1], k))


def build_phases(data: EmbeddingSet, p: dict[str, Any], backend: str) -> Trial:
    """The Faiss-like pipeline's time split, GEMM vs k-selection (device events on the GPU, host clock on the CPU)."""
    import importlib

    module = importlib.import_module(f"baselines.faiss_topk.{backend}")
    searcher = module.Searcher(np.ascontiguousarray(data.corpus))
    queries = data.queries[:p["batch"]]

    def run() -> dict[str, float]:
        phases = searcher.phase_times(queries, p["k"])
        total = sum(phases.values())
        return {"time_s": total, **phases, "topk_fraction": (total - phases["gemm_s"]) / total}
    # time_s stays the harness's median of `run`; the phase figures come from the last run.
    return Trial(run=run, metrics=lambda figures: {k: v for k, v in figures.items() if k != "time_s"})


# ---------------------------------------------------------------------------- modelled (FPGA)

def _gpu_copy_bandwidth() -> float:
    """This GPU's device-to-device copy bandwidth (read + write bytes / s), measured now."""
    import cupy as cp

    src = cp.empty(1 << 28, dtype=cp.uint8)
    dst = cp.empty_like(src)
    cp.copyto(dst, src)
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(10):
        cp.copyto(dst, src)
    stop.record()
    stop.synchronize()
    return 2 * 10 * src.nbytes / (cp.cuda.get_elapsed_time(start, stop) / 1e3)


def _bandwidth_config(bytes_per_s: float):
    """FAERY's design with its HBM replaced by `bytes_per_s` (channels of 64-byte ports added as needed)."""
    from impls.faery.fpga_model import FpgaConfig

    base = FpgaConfig()
    channels = max(base.hbm_channels, math.ceil(bytes_per_s / (base.port_bytes * base.clock)))
    return replace(base, hbm_channels=channels, channel_bytes_per_s=bytes_per_s / channels)


def build_fpga_single(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    from impls.faery.fpga_model import FpgaConfig, model_queries

    config = FpgaConfig() if p["hbm"] == "vu35p" else _bandwidth_config(_gpu_copy_bandwidth())
    queries = data.queries[:FPGA_MODEL_QUERIES]
    last: dict[str, Any] = {}

    def run() -> dict[str, float]:
        scores, ids, stats = model_queries(data.corpus, queries, p["k"], config)
        last["result"] = (scores, ids)
        figures = {name: float(np.mean([s.figures()[name] for s in stats])) for name in stats[0].figures()}
        return {"time_s": float(np.mean([s.latency_s for s in stats])),
                "modelled_bandwidth_gb_s": config.bytes_per_cycle * config.clock / 1e9, **figures}
    return Trial(run=run, check=lambda _figures: _checker(data, queries, p["k"])(last["result"]))


def build_fpga_sweep(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    from impls.faery.fpga_model import FpgaConfig, sweep

    def run() -> dict[str, float]:
        (row,) = sweep(data.corpus, data.queries[0], channels=(p["channels"],),
                       score_units=(p["score_units"] or None,), ks=(p["k"],), base=FpgaConfig())
        return {"time_s": row["modelled_latency_us"] / 1e6,
                **{name: value for name, value in row.items() if name != "kind"}}
    return Trial(run=run)


def build_read_floor(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    """One pass over the corpus's bytes: the least time any exact top-K needs on this machine."""
    from harness.floors import corpus_words, read_floor

    words = corpus_words(data.corpus)
    return Trial(run=lambda: read_floor(words),
                 metrics=lambda _: {"bytes": float(words.nbytes)})


def build_score_scan(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    """Exact top-K's arithmetic in the simplest numba loop, memory-bound: one of the two floors
    the gate divides FAERY-CPU by (with `build_resident_scan`)."""
    from harness.floors import plain_score_scan

    corpus, query = np.ascontiguousarray(data.corpus), np.ascontiguousarray(data.queries[0])

    def check(best: float) -> None:
        exact = float((corpus.astype(np.float64) @ query.astype(np.float64)).max())
        assert abs(best - exact) <= 1e-4 * max(1.0, abs(exact)), f"best score {best}, exact {exact}"

    return Trial(run=lambda: plain_score_scan(corpus, query), check=check)


def build_resident_scan(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    """One plain scan's multiply-adds over rows held in cache: what the cores compute with
    memory out of it, for a gate figure that a neighbour's memory traffic does not move."""
    from harness.floors import resident_queries, resident_rows, resident_score_scan

    rows, passes = resident_rows(data.corpus)
    queries = np.ascontiguousarray(data.queries)

    def check(best: float) -> None:
        used = resident_queries(queries, passes).astype(np.float64)
        exact = float((rows.astype(np.float64) @ used.T).max())
        assert abs(best - exact) <= 1e-4 * max(1.0, abs(exact)), f"best score {best}, exact {exact}"

    return Trial(run=lambda: resident_score_scan(rows, queries, passes), check=check)


def build_gemm_ceiling(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    """A square fp32 GEMM through numpy's BLAS: the most flops per second this machine's
    cores give (BLAS threads pinned by the harness), the compute side of FAERY's roofline."""
    size = p["size"]
    rng = np.random.default_rng(size)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    flops = 2.0 * size ** 3
    return Trial(run=lambda: np.matmul(a, b, out=out), metrics=lambda _: {"flops": flops})


# ---------------------------------------------------------------------------- RTL (simulated, synthesised)

def _int8(data: EmbeddingSet) -> tuple[np.ndarray, np.ndarray]:
    """The corpus and queries scaled to int8, as SNARY's U50 build stores them (one scale for both)."""
    scale = 127.0 / float(np.abs(data.corpus).max())
    as_int8 = lambda a: np.clip(np.round(a.astype(np.float32) * scale), -128, 127).astype(np.int8)  # noqa: E731
    return as_int8(data.corpus), as_int8(data.queries)


def build_fpga_rtl(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    """One query through the RTL (simulated) and the cycle model (modelled) on the same int8 data."""
    from impls.faery.fpga_model import FpgaConfig, simulate_scan
    from impls.faery.rtl.sim import simulate

    corpus, queries = _int8(data)
    query = queries[:1]
    config = FpgaConfig.snary_u50(k_max=1 << math.ceil(math.log2(p["k"])))
    exact = corpus.astype(np.int64) @ query[0].astype(np.int64)

    last: dict[str, Any] = {}

    def run() -> dict[str, float]:
        rtl = last["run"] = simulate(corpus, query, p["k"], config, engine=p["engine"])
        _, _, model, _ = simulate_scan(exact.astype(np.float32), p["k"], data.d, data.d, config)
        st = rtl.stats[0]
        return {"time_s": st.cycles / config.clock, "simulated_cycles": st.cycles,
                "simulated_stall_cycles": st.stall_cycles, "simulated_passed": st.passed,
                "simulated_max_buffer_fill": st.max_buffer_fill, "modelled_cycles": model.cycles,
                "modelled_stall_cycles": model.stall_cycles, "modelled_passed": model.passed,
                "modelled_max_buffer_fill": model.max_buffer_fill, "clock_mhz": config.clock / 1e6,
                "rtl_build_s": rtl.build_s, "rtl_run_s": rtl.run_s}

    def check(_figures: dict[str, float]) -> None:
        order = np.lexsort((np.arange(exact.shape[0]), -exact))[:p["k"]]
        rtl = last["run"]
        assert np.array_equal(rtl.ids[0], order) and np.array_equal(rtl.scores[0], exact[order]), \
            "the RTL's top-k differs from the exact integer top-k"
    return Trial(run=run, check=check)


def build_fpga_synthesis(_data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    """yosys synth_xilinx of SNARY's U50 configuration at K (counts before place and route)."""
    from impls.faery.rtl.synth import synthesise

    return Trial(run=lambda: {f"synth_{name}": value for name, value in synthesise(p["k"]).items() if name != "k"})


# ---------------------------------------------------------------------------- the registry

BUILDERS = {"single_stream": build_single_stream, "offline": build_offline, "server": build_server,
            "phases": build_phases, "fpga_single": build_fpga_single, "fpga_sweep": build_fpga_sweep,
            "read_floor": build_read_floor, "score_scan": build_score_scan, "resident_scan": build_resident_scan,
            "gemm_ceiling": build_gemm_ceiling,
            "fpga_rtl": build_fpga_rtl, "fpga_synthesis": build_fpga_synthesis}


def experiments() -> list[Experiment]:
    """The grids' experiments; a system under test's also require what its SUTS entry needs."""
    return [replace(e, requires=(*SUTS[(e.impl, e.backend)][1], *e.requires)) if (e.impl, e.backend) in SUTS else e
            for e in GRIDS.experiments("faery", BUILDERS)]


SYNTH_COMMAND = "recmine reproduce --full --system faery --where scenario=synthesis"


def report_tables(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The report's FAERY RTL tables: its cycles beside the model's, and its resources beside SNARY's."""
    from impls.faery.rtl.synth import SNARY, U50, recorded

    def newest(scenario: str) -> list[dict[str, Any]]:
        picked: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["system"] == "faery" and r["backend"] == "fpga-rtl" and r["params"].get("scenario") == scenario:
                if r["experiment_id"] not in picked or r["id"] > picked[r["experiment_id"]]["id"]:
                    picked[r["experiment_id"]] = r
        return sorted(picked.values(), key=lambda r: (r["params"].get("k"), r["experiment_id"]))

    cycles = [{"workload": r["workload"], "k": r["params"]["k"], "engine": r["params"]["engine"],
               **{f"{what} ({src})": int(r["metrics"][f"{src}_{name}"]) for name, what in
                  (("cycles", "cycles"), ("stall_cycles", "stalls"), ("passed", "passed"))
                  for src in ("simulated", "modelled")},
               "_rows": (r["id"],)} for r in newest("rtl")]
    stored = [({"k": r["params"]["k"], **{name: r["metrics"][f"synth_{name}"] for name in U50}}, (r["id"],))
              for r in newest("synthesis")]
    if stored:
        resources_title, source = "", f"produced by `{SYNTH_COMMAND}`"
    else:  # synthesis is full-tier only (17-78 min of CPU per K): show the last full run's figures, labelled
        record = recorded()
        stored = [(row, ()) for row in record["rows"]]
        resources_title = " (recorded: not synthesised in this store)"
        source = (f"figures from {record['source']}, made by `{record['command']}` with {record['yosys']}"
                  + ("" if record["current"] else "; THE DESIGN HAS CHANGED SINCE: these figures may be stale")
                  + f"; to synthesise here and store them: `{SYNTH_COMMAND}`")
    pct = lambda v: f"{v:.1f}%"  # noqa: E731
    resources = []
    for counts, row_ids in stored:
        snary = SNARY.get(counts["k"], {})
        resources.append({"K": counts["k"],
                          **{f"{name.upper()} here": f"{pct(100 * counts[name] / U50[name])} ({counts[name]:,.0f})"
                             for name in U50},
                          **{f"{name.upper()} SNARY": pct(snary[name]) if name in snary else "—"
                             for name in ("lut", "ff", "bram")},
                          "_rows": row_ids})
    cycle_columns = ["workload", "k", "engine"] + [f"{what} ({src})" for what in ("cycles", "stalls", "passed")
                                                   for src in ("simulated", "modelled")]
    return {
        "faery-rtl-cycles": {
            "title": "FAERY RTL (simulated) beside the cycle model (modelled): one query, same int8 data",
            "note": "SNARY's U50 configuration; the RTL's counters come from simulating it cycle by cycle",
            "columns": cycle_columns, "rows": cycles},
        "faery-resources": {
            "title": "FAERY resources: yosys synth_xilinx -family xcup, SNARY's U50 configuration, share of the U50"
                     + resources_title,
            "note": f"counts before place and route, which is not available here, so no clock frequency is given; "
                    f"{source}",
            "columns": ["K", "LUT here", "LUT SNARY", "FF here", "FF SNARY", "BRAM here", "BRAM SNARY", "DSP here"],
            "rows": resources},
    }


# ---------------------------------------------------------------------------- command line

@click.group("faery")
def cli() -> None:
    """FAERY: exact top-K search on your own files, and LoadGen scenarios on named workloads."""


@cli.command("search")
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option("--queries", type=click.Path(dir_okay=False),
              help="query file (default: an ann-benchmarks file's 'test' set, or 16 rows of the corpus)")
@click.option("-k", "k", default=10, show_default=True, help="results per query")
@click.option("--impl", default="faery", show_default=True, type=click.Choice(sorted({i for i, _ in SUTS})))
@click.option("--backend", default="cpu", show_default=True, type=click.Choice(sorted({b for _, b in SUTS})))
@click.option("--out", type=click.Path(dir_okay=False), help="write ids and scores to this .npz")
def search_command(corpus: str, queries: str | None, k: int, impl: str, backend: str, out: str | None) -> None:
    """Top-K of each query in CORPUS (.npy, .fvecs, .bvecs, .hdf5), with the median time of 5 runs."""
    from devices.timers import timer_for
    from harness.measure import Settings, measure
    from workloads.embeddings import check_k, load_embedding_set

    search = _runnable(impl, backend)
    output = None if out is None else _reserve_output(out)  # an unwritable --out fails before any work
    try:
        data = load_embedding_set(corpus, queries, queries=16)
        check_k(k, data.n)
        run = search(data)
        m = measure(lambda: run(data.queries, k), Settings(min_repeats=5, min_time_s=0.0), timer_for(backend))
        scores, ids = _host(m.result)
        click.echo(f"{impl} on {backend}: {data.queries.shape[0]} queries against {data.n:,} x {data.d} "
                   f"{data.corpus.dtype} in {m.median * 1e3:.2f} ms (median of {len(m.samples)}, "
                   f"IQR {m.iqr * 1e3:.2f} ms)")
        for row in range(min(3, ids.shape[0])):
            click.echo(f"  query {row}: ids {ids[row][:10].tolist()}{' ...' if k > 10 else ''}")
        if output is not None:
            path, reserved = output
            with reserved.open("wb") as fh:
                np.savez(fh, ids=ids, scores=scores)
            reserved.replace(path)  # atomic: an earlier file of that name is whole until then
            click.echo(f"wrote {path}")
    finally:
        if output is not None:
            output[1].unlink(missing_ok=True)


def _reserve_output(out: str) -> tuple[Path, Path]:
    """The .npz path for --out and a new temporary file beside it, created now to prove the folder writable."""
    path = Path(out if out.endswith(".npz") else out + ".npz")  # numpy adds the suffix itself
    if path.is_dir():
        raise ValueError(f"--out {out}: {path} is a directory")
    if not path.parent.is_dir():
        raise ValueError(f"--out {out}: its folder does not exist")
    reserved = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        reserved.open("xb").close()
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot write in {path.parent} ({exc.strerror})") from None
    return path, reserved


def _runnable(impl: str, backend: str) -> Callable:
    """The SUT factory for impl on backend, or ValueError saying why it cannot run here."""
    if (impl, backend) not in SUTS:
        raise ValueError(f"{impl} has no {backend} backend; choose from "
                         f"{', '.join(f'{i}/{b}' for i, b in SUTS)}")
    ok, why = devices.can_run(backend, SUTS[(impl, backend)][1])
    if not ok:
        raise ValueError(why)
    return SUTS[(impl, backend)][0]


@cli.command("loadgen")
@click.option("--workload", required=True, help="a named embeddings workload (recmine list shows them)")
@click.option("--impl", default="faery", show_default=True, type=click.Choice(sorted({i for i, _ in SUTS})))
@click.option("--backend", default="cpu", show_default=True, type=click.Choice(sorted({b for _, b in SUTS})))
@click.option("--scenario", default="single-stream", show_default=True,
              type=click.Choice(["single-stream", "offline", "server"]))
@click.option("-k", "k", default=K, show_default=True, help="results per query")
@click.option("--batch", default=256, show_default=True, help="offline: queries per batch")
@click.option("--max-batch", default=16, show_default=True, help="server: most waiting queries served as one batch")
@click.option("--bound-ms", default=1e3 * LATENCY_BOUND_S, show_default=True, help="server: p99 latency bound")
def loadgen_command(workload: str, impl: str, backend: str, scenario: str, k: int, batch: int,
                    max_batch: int, bound_ms: float) -> None:
    """Measure one system under a LoadGen scenario and print its figures."""
    from workloads import catalog

    make = _runnable(impl, backend)
    data = catalog.load(workload)
    if not isinstance(data, EmbeddingSet):
        raise ValueError(f"workload {workload!r} is not an embeddings workload")
    search = make(data)
    run = lambda q: search(q, k)  # noqa: E731
    if scenario == "single-stream":
        stats = loadgen.single_stream(run, data.queries, min_queries=LOADGEN_QUERIES)
        click.echo(f"single-stream  {stats.queries} queries  p50 {stats.p50_s * 1e3:.3f} ms  "
                   f"p90 {stats.p90_s * 1e3:.3f} ms  p99 {stats.p99_s * 1e3:.3f} ms")
    elif scenario == "offline":
        res = loadgen.offline(run, data.queries, batch)
        click.echo(f"offline  batch {res.batch}  {res.queries} queries in {res.seconds:.3f} s  {res.qps:.1f} QPS")
    else:
        res = loadgen.server(run, data.queries, bound_ms / 1e3, max_batch=max_batch, min_queries=LOADGEN_QUERIES)
        for step in res.steps:
            click.echo(f"  target {step.target_qps:9.1f} QPS  achieved {step.achieved_qps:9.1f}  "
                       f"p99 {step.latency.p99_s * 1e3:8.3f} ms  mean batch {step.mean_batch:5.1f}  "
                       f"{'meets' if step.met_bound else 'breaks'} the bound")
        click.echo(f"server  highest QPS with p99 <= {bound_ms:g} ms: {res.qps_at_bound:.1f}")


BENCH_IMPLS = ("faery", "faiss_topk", "faiss-cpu", "torch-topk")  # those of them with a SUT on the backend
_BENCH_FIGURES = ("faery_over_floor", "faiss_topk_select_share", "faery_over_roofline", "faery_gflops",
                  "read_gb_s", "read_gb_s_1_thread", "gemm_gflops")  # printed after each batch's times


@cli.command("bench")
@click.option("--workload", "workloads", required=True, multiple=True,
              help="a named embeddings workload (repeat for several), e.g. gaussian-4m-d128-fp32")
@click.option("--backend", default="cpu", show_default=True, type=click.Choice(["cpu", "gpu", "opencl"]))
@click.option("--impl", "impls", multiple=True, type=click.Choice(sorted({i for i, _ in SUTS})),
              help=f"systems to time (repeat; default: {', '.join(BENCH_IMPLS)}, where they run on the backend)")
@click.option("-k", "k", default=K, show_default=True, help="results per query")
@click.option("--batches", default="1,16,256", show_default=True, help="comma-separated batch sizes")
@click.option("--repeats", default=3, show_default=True, help="rounds; each system runs once a round")
@click.option("--roofline", is_flag=True,
              help="cpu: also one-call search(), the read floor on one thread and the GEMM ceiling")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="also write the rows to this file")
def bench_command(workloads: tuple[str, ...], backend: str, impls: tuple[str, ...], k: int, batches: str,
                  repeats: int, roofline: bool, json_path: str | None) -> None:
    """Time systems under test in turns on named workloads, beside this machine's floors.

    Each round runs every system once (after a warm-up whose result is checked against float64
    brute force), so a change in the machine's load falls on all of them alike; each figure is
    the median over the rounds.  The floor is the corpus's bytes at this machine's read rate:
    one numba pass over them on the CPU (harness.floors, timed in the same rounds), this GPU's
    device copy rate measured at the start on the gpu.
    """
    import json

    from devices.timers import timer_for
    from harness.floors import corpus_words, read_floor
    from harness.machine import cpu_model
    from harness.measure import interleaved_medians
    from workloads import catalog

    sizes = _batch_sizes(batches)
    if repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {repeats}")
    if roofline and backend != "cpu":
        raise ValueError("--roofline bounds the cpu backend; drop it or use --backend cpu")
    names = [i for i in (impls or BENCH_IMPLS) if (i, backend) in SUTS]
    runnable = [i for i in names if _runs_here(i, backend)]
    if "faery" not in runnable:
        raise ValueError(f"faery cannot run on the {backend} backend here: {devices.can_run(backend)[1]}")
    timer = timer_for(backend)
    gpu_read_rate = _gpu_copy_bandwidth() if backend == "gpu" else None
    click.echo(f"cpu {cpu_model()}, {_numba_threads()} threads; load average {os.getloadavg()}")
    rows = []
    for workload in workloads:
        data = catalog.load(workload)
        if not isinstance(data, EmbeddingSet):
            raise ValueError(f"--workload {workload}: not an embeddings workload")
        systems = {name: SUTS[(name, backend)][0](data) for name in runnable}
        if roofline:
            systems["faery-one-call"] = functools.partial(_one_call_search, data.corpus)
        bounds = {}
        if backend != "gpu":
            words = corpus_words(data.corpus)
            bounds["floor"] = lambda: read_floor(words)
            if roofline:
                bounds["floor 1 thread"] = _on_one_thread(lambda: read_floor(words))
                bounds["gemm ceiling"] = build_gemm_ceiling(data, {"size": GEMM_CEILING_SIZE}).run
        click.echo(f"{workload}: {data.n:,} x {data.d} {data.corpus.dtype} = {data.corpus.nbytes / 1e9:.2f} GB, k = {k}")
        for batch in sizes:
            queries = np.resize(data.queries, (batch, data.d))  # pools smaller than the batch are repeated
            check = _checker(data, queries, k)
            for name, search in systems.items():
                check(search(queries, k))  # the warm-up: compilation, caches, memory pools; a wrong answer stops here
            runs = {**{name: (lambda s=search: s(queries, k)) for name, search in systems.items()}, **bounds}
            times = interleaved_medians(runs, repeats, {name: timer for name in systems})
            floor_s = data.corpus.nbytes / gpu_read_rate if gpu_read_rate else times["floor"]
            row = {"workload": workload, "backend": backend, "batch": batch, "k": k, "floor_s": floor_s,
                   **{f"{name}_s": seconds for name, seconds in times.items()},
                   "faery_over_floor": times["faery"] / floor_s,
                   **{f"{name}_over_faery": times[name] / times["faery"] for name in systems if name != "faery"}}
            if "faiss_topk" in systems:
                phases = build_phases(data, {"batch": batch, "k": k}, backend).run()
                row["faiss_topk_select_share"] = phases["topk_fraction"]
            if roofline:
                row.update(_roofline(data, batch, times))
            row["load_average"] = os.getloadavg()[0]
            rows.append(row)
            click.echo(f"  B={batch:<4d} " + "  ".join(f"{name} {s * 1e3:.1f} ms" for name, s in times.items()))
            click.echo("         " + ", ".join(f"{name} {row[name]:.3g}" for name in row if name in _BENCH_FIGURES
                                                or name.endswith("_over_faery")))
    click.echo(f"load average after {os.getloadavg()}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(rows, f, indent=2)


def _batch_sizes(batches: str) -> list[int]:
    try:
        sizes = [int(b) for b in batches.split(",")]
    except ValueError:
        raise ValueError(f"--batches must be comma-separated positive integers, got {batches!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--batches must be comma-separated positive integers, got {batches!r}")
    return sizes


def _runs_here(impl: str, backend: str) -> bool:
    """Whether `impl` can run on `backend` here; a line saying why not when it cannot."""
    ok, why = devices.can_run(backend, SUTS[(impl, backend)][1])
    if not ok:
        click.echo(f"skipping {impl} on {backend}: {why}")
    return ok


def _numba_threads() -> int:
    import numba

    return numba.get_num_threads()


def _one_call_search(corpus: np.ndarray, queries: np.ndarray, k: int):
    from impls.faery import search

    return search(corpus, queries, k)


def _on_one_thread(run: Callable[[], Any]) -> Callable[[], Any]:
    """`run` with numba and BLAS limited to one thread (the single-core read floor)."""
    def on_one() -> Any:
        import numba
        from threadpoolctl import threadpool_limits

        before = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            with threadpool_limits(1, user_api="blas"):
                return run()
        finally:
            numba.set_num_threads(before)
    return on_one


def _roofline(data: EmbeddingSet, batch: int, times: dict[str, float]) -> dict[str, float]:
    """The least time this machine allows: max(bytes at the read rate, flops at the GEMM ceiling's rate)."""
    work = _work(data, batch)
    read_rate = work["bytes_read"] / times["floor"]
    flop_rate = 2.0 * GEMM_CEILING_SIZE ** 3 / times["gemm ceiling"]
    roofline_s = max(times["floor"], work["flops"] / flop_rate)   # the floor read these very bytes
    return {"read_gb_s": read_rate / 1e9, "read_gb_s_1_thread": work["bytes_read"] / times["floor 1 thread"] / 1e9,
            "gemm_gflops": flop_rate / 1e9, "roofline_s": roofline_s,
            "faery_over_roofline": times["faery"] / roofline_s, "faery_gflops": work["flops"] / times["faery"] / 1e9}


# Our baselines beside the real libraries they stand for, on the same data in the same run.
BASELINE_STRENGTH = [
    BaselineStrength(f"{label} / baselines.faiss_topk on the {backend.upper()}, {what}",
                     real={"system": "faery", "impl": real, "scenario": scenario},
                     ours={"system": "faery", "impl": "faiss_topk", "backend": backend, "scenario": scenario},
                     pair_on=pair_on)
    for real, label, backend in (("faiss-cpu", "faiss-cpu", "cpu"), ("torch-topk", "torch.topk(Q @ C.T)", "gpu"))
    for scenario, what, pair_on in (("single-stream", "one query at a time", ("workload", "k")),
                                    ("offline", "offline batches", ("workload", "k", "batch")))
]

_LATENCY = "latency of one top-100 query (s)"
_MODELLED_LATENCY = "modelled latency of one top-100 query (s)"
PLOTS = [
    {"title": "FAERY: one top-100 query vs corpus size, per backend (d = 128, fp32)",
     "select": {"system": "faery", "impl": "faery", "scenario": "single-stream", "workload": "gaussian-*-fp32",
                "hbm": [None, "vu35p"]},
     "x": "size.n", "y": "time_s", "hue": "backend", "series": "FAERY on {}",
     "xlabel": "corpus size (embeddings of d = 128, fp32)", "ylabel": _LATENCY,
     "style": "line", "logx": True, "logy": True},
    {"title": "Exact top-100 on the CPU: FAERY against the baselines, by corpus size",
     "select": {"system": "faery", "backend": "cpu", "scenario": "single-stream", "workload": "gaussian-*-fp32"},
     "x": "size.n", "y": "time_s", "hue": "impl", "series": "{}",
     "xlabel": "corpus size (embeddings of d = 128, fp32)", "ylabel": _LATENCY,
     "style": "line", "logx": True, "logy": True},
    {"title": "FAERY's filter pass rate (share of scores reaching K-selection), per corpus, on the CPU",
     "select": {"system": "faery", "impl": "faery", "backend": "cpu", "scenario": "single-stream"},
     "x": "workload", "y": "pass_rate", "hue": "impl", "series": "FAERY on the CPU",
     "xlabel": "corpus", "ylabel": "filter pass rate (fraction of scores)",
     "style": "points", "logx": False, "logy": True},
    {"title": "FAERY fpga-model (modelled): latency vs HBM channels",
     "select": {"system": "faery", "scenario": "sweep", "sweep": "channels"},
     "x": "channels", "y": "time_s", "hue": "k", "series": "K = {}",
     "xlabel": "HBM channels", "ylabel": _MODELLED_LATENCY, "style": "line", "logx": True, "logy": True},
    {"title": "FAERY fpga-model (modelled): filter stall cycles vs score units N_E",
     "select": {"system": "faery", "scenario": "sweep", "sweep": "score_units"},
     "x": "score_units", "y": "modelled_stall_cycles", "hue": "k", "series": "K = {}",
     "xlabel": "score units N_E", "ylabel": "filter stall cycles per query (modelled)",
     "style": "line", "logx": True, "logy": False},
    {"title": "FAERY fpga-model (modelled): latency vs K",
     "select": {"system": "faery", "scenario": "sweep", "sweep": "k"},
     "x": "k", "y": "time_s", "hue": "channels", "series": "{} HBM channels",
     "xlabel": "K (results per query)", "ylabel": "modelled latency of one query (s)",
     "style": "line", "logx": True, "logy": False},
]


SYSTEM = System(
    "faery", experiments, cli=cli, plots=PLOTS, report_tables=report_tables, baseline_strength=BASELINE_STRENGTH,
    # Every other implementation against the Faiss-like baseline on the parameters both share: on its
    # own backend, and for the FPGA model on the GPU (else the CPU); PoCL runs on the CPU cores.
    speedup=SpeedupTable("faiss_topk", baseline_backends={"fpga-model": ("gpu", "cpu"), "opencl": ("cpu",)}))
