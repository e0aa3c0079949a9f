"""Fuzzing what users hand recmine: every case succeeds, or is refused with one clear line.

- In this process (most examples, fast): the graph loaders (edge lists, Matrix
  Market, GraphMiner binary prefixes), the embedding loaders (.fvecs/.bvecs/.ivecs,
  .npy, .hdf5), patterns and Ekko update traces either return their result or raise
  ValueError naming the file; nothing else escapes, each message is one short line,
  and tracemalloc (which numpy reports to) bounds what a case allocates.  Edge lists
  are also checked against a plain reference parser, and loaded corpora against
  brute-force top-K.
- Through the CLI (fewer examples): `recmine faery search`, `g2miner plan`/`count`
  and `ekko simulate` with drawn options run in one worker process whose address
  space is limited to 2 GB (RLIMIT_AS, set with setrlimit before it starts).  The
  worker calls `harness.cli.main` for each case with its stdout and stderr file
  descriptors on temporary files, so native libraries' output is caught too.  Each
  case exits 0, or exits 2 with exactly one line on stderr, and never prints a
  traceback.

Examples are bounded (`max_examples`, no deadline) so the whole file takes about
a minute on 2 cores.  `python tests/harness/test_fuzz_inputs.py --worker` is the worker.
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import select
import subprocess
import sys
import tempfile
import traceback
import tracemalloc
from pathlib import Path

import numpy as np

AS_LIMIT = 2 * 2**30  # a normal run needs under 1 GB of address space, numba's compiler included
CASE_TIMEOUT_S = 120


def _serve_cli_cases() -> None:
    """The worker: read one JSON list of CLI arguments per line, answer {code, stdout, stderr} per line."""
    import harness.cli

    answers = os.fdopen(os.dup(1), "w")
    saved = os.dup(1), os.dup(2)
    for request in sys.stdin:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
            sys.argv = ["recmine", *json.loads(request)]
            try:
                harness.cli.main()
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
            except BaseException:  # escaped main(): recorded as a failure, with its traceback
                traceback.print_exc()
                code = -1
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            out.seek(0), err.seek(0)
            answers.write(json.dumps({"code": code, "stdout": out.read()[-20000:], "stderr": err.read()[-20000:]})
                          + "\n")
            answers.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _serve_cli_cases()
    sys.exit(0)

import h5py  # noqa: E402  (the worker above needs none of the test's imports)
import pytest  # noqa: E402
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.systems.g2miner import _pattern_spec  # noqa: E402
from impls import faery, g2miner  # noqa: E402
from workloads.ekko_updates import UpdateStream, load_update_trace  # noqa: E402
from workloads.embeddings import EmbeddingSet, check_topk, load_embedding_set  # noqa: E402
from workloads.graphs import CSRGraph, from_edges, load, save_graphminer  # noqa: E402

IN_PROCESS = settings(max_examples=50, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
THROUGH_CLI = settings(IN_PROCESS, max_examples=25)
ALLOCATION_LIMIT = 64 << 20  # bytes one in-process case may allocate: every input here is a few KB
MESSAGE_LIMIT = 600


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder for the module; each example overwrites its files there."""
    folder = tmp_path_factory.mktemp("fuzz")
    load(_write(folder / "warm.txt", b"0 1\n1 2\n"))  # compile the loader before allocations are measured
    return folder


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def refused_or_loaded(call, path: Path, kind: type):
    """call()'s result, of type `kind`, or None when it raised one short ValueError naming `path`."""
    tracemalloc.start()
    try:
        result = call()
    except ValueError as error:
        message = str(error)
        assert path.name in message, f"the message does not name the file: {message}"
        assert "\n" not in message and len(message) <= MESSAGE_LIMIT, message[:2000]
        result = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= ALLOCATION_LIMIT, f"{peak:,} bytes allocated for a {path.stat().st_size:,}-byte input"
    assert result is None or isinstance(result, kind), type(result)
    return result


# ----------------------------------------------------------------------------- edge lists

ID_TOKENS = st.one_of(st.integers(0, 12).map(str), st.integers(0, 2**64).map(str),
                      st.sampled_from(["9223372036854775807", "9223372036854775808", "2.0", "1_0", "+1", "-3",
                                       "x", "0x1", "\u0661", "1e3", "007", "#", "%"]))
BLANKS = st.sampled_from([" ", "\t", "  ", " \t ", "\r", "\v"])
EDGE_LINES = st.one_of(
    st.tuples(ID_TOKENS, BLANKS, ID_TOKENS).map("".join),
    st.tuples(ID_TOKENS, BLANKS, ID_TOKENS).map("".join),
    st.sampled_from(["", "# FromNodeId\tToNodeId", "% comment", "   # indented comment", " "]),
    st.lists(ID_TOKENS, max_size=4).map(" ".join),
    st.text(max_size=12),
)
EDGE_FILES = st.one_of(st.lists(EDGE_LINES, max_size=25).map(lambda lines: "\n".join(lines).encode()),
                       st.binary(max_size=120))


def reference_edges(data: bytes) -> set[frozenset[int]] | None:
    """The edges of an edge list by the format's rules, plainly; None when the file must be refused."""
    edges = set()
    for line in data.split(b"\n"):
        tokens = [t for t in re.split(rb"[ \t\r\v\f]+", line) if t]
        if not tokens or tokens[0][:1] in (b"#", b"%"):
            continue
        if len(tokens) != 2 or not all(re.fullmatch(rb"[0-9]+", t) and int(t) < 2**63 for t in tokens):
            return None
        u, v = int(tokens[0]), int(tokens[1])
        if u != v:
            edges.add(frozenset((u, v)))
    return edges or None


@IN_PROCESS
@given(data=EDGE_FILES)
def test_edge_lists_load_as_the_reference_parser_reads_them(scratch, data):
    path = _write(scratch / "edges.txt", data)
    graph = refused_or_loaded(lambda: load(path), path, CSRGraph)
    expected = reference_edges(data)
    if graph is None:
        assert expected is None, f"refused a valid edge list with {len(expected)} edges"
        return
    assert expected is not None, "loaded a file the format refuses"
    original = np.arange(graph.num_vertices) if graph.original_ids is None else graph.original_ids
    src, dst = graph.undirected_edges()
    assert {frozenset((int(original[u]), int(original[v]))) for u, v in zip(src, dst)} == expected


# ----------------------------------------------------------------------------- Matrix Market

MTX_HEADERS = st.sampled_from(["%%MatrixMarket matrix coordinate pattern general",
                               "%%MatrixMarket matrix coordinate real symmetric",
                               "%%MatrixMarket matrix coordinate integer general",
                               "%%MatrixMarket matrix array real general", "%%MatrixMarket", "1 2", ""])
MTX_VALUES = st.sampled_from(["1.5", "-2", "1e3", "nan", "x"])


@IN_PROCESS
@given(header=MTX_HEADERS, size=st.lists(ID_TOKENS, min_size=0, max_size=4),
       entries=st.lists(st.lists(st.one_of(ID_TOKENS, MTX_VALUES), min_size=1, max_size=4), max_size=12))
def test_matrix_market_files_load_or_are_refused(scratch, header, size, entries):
    text = "\n".join([header, "% comment", " ".join(size), *(" ".join(row) for row in entries)]) + "\n"
    path = _write(scratch / "graph.mtx", text.encode())
    refused_or_loaded(lambda: load(path), path, CSRGraph)


# ----------------------------------------------------------------------------- GraphMiner binary prefixes

GRAPHMINER_FILES = ("meta.txt", "vertex.bin", "edge.bin", "vlabel.bin")


@IN_PROCESS
@given(seed=st.integers(0, 2**32 - 1), target=st.sampled_from(GRAPHMINER_FILES),
       mutation=st.sampled_from(["meta line", "truncate", "extend", "overwrite", "delete"]),
       line=st.integers(0, 6), value=st.one_of(ID_TOKENS, st.text(max_size=10)),
       where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64))
def test_graphminer_prefixes_load_or_are_refused(scratch, seed, target, mutation, line, value, where, junk):
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, 12, (20, 2))
    folder = scratch / "graphminer"
    folder.mkdir(exist_ok=True)
    save_graphminer(from_edges(edges[:, 0], edges[:, 1], 12, rng.integers(0, 4, 12)), folder / "graph")
    path = folder / f"graph.{target}"
    raw = path.read_bytes()
    at = int(where * len(raw))
    if mutation == "meta line":
        path = folder / "graph.meta.txt"
        lines = path.read_text().splitlines()
        lines[min(line, len(lines) - 1)] = value
        path.write_text("\n".join(lines) + "\n")
    elif mutation == "truncate":
        path.write_bytes(raw[:at])
    elif mutation == "extend":
        path.write_bytes(raw + junk)
    elif mutation == "overwrite":
        path.write_bytes(raw[:at] + junk + raw[at + len(junk):])
    else:
        path.unlink()
        path = folder / "graph.meta.txt" if target != "meta.txt" else folder / "graph"
    refused_or_loaded(lambda: load(folder), path, CSRGraph)


# ----------------------------------------------------------------------------- embedding files

VALUES = st.one_of(st.floats(-3, 3, width=32), st.sampled_from([0.0, 1e19, -1e19, 3e38, 1e-40, np.nan, np.inf]))


def _matrix(draw, dtype: str) -> np.ndarray:
    rows, dim = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    values = np.array(draw(st.lists(VALUES, min_size=rows * dim, max_size=rows * dim)), dtype=np.float64)
    if dtype.startswith("f"):
        with np.errstate(over="ignore", invalid="ignore"):
            return values.reshape(rows, dim).astype(dtype)
    return np.nan_to_num(values, posinf=0, neginf=0).clip(-100, 100).reshape(rows, dim).astype(dtype)


@st.composite
def vecs_files(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".fvecs", ".bvecs", ".ivecs"]))
    element = {".fvecs": "<f4", ".bvecs": "u1", ".ivecs": "<i4"}[suffix]
    matrix = _matrix(draw, "f4" if suffix == ".fvecs" else "i4").astype(element)
    dims = np.full((matrix.shape[0], 1), matrix.shape[1], "<i4")
    if draw(st.booleans()):  # one record's header disagrees, or is absurd
        dims[draw(st.integers(0, len(dims) - 1))] = draw(st.sampled_from([0, -1, 7, 2**31 - 1, matrix.shape[1] + 1]))
    raw = b"".join(d.tobytes() + row.tobytes() for d, row in zip(dims, matrix))
    cut = draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw))))
    return suffix, raw[:cut] + draw(st.one_of(st.just(b""), st.binary(max_size=8)))


@st.composite
def npy_files(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["f4", "f2", "f8", "i8", "u1", "c8", "b1", "U3"]))
    matrix = _matrix(draw, "f8")
    shape = draw(st.sampled_from([matrix.shape, (matrix.size,), (1, *matrix.shape), (0, 4)]))
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.resize(matrix, shape).astype(kind)
    buffer = io.BytesIO()
    np.save(buffer, array)
    raw = buffer.getvalue()
    cut = draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw))))
    flip = draw(st.one_of(st.just(None), st.integers(0, max(0, cut - 1))))
    raw = bytearray(raw[:cut])
    if flip is not None and raw:
        raw[flip] ^= draw(st.integers(1, 255))
    return ".npy", bytes(raw)


@st.composite
def hdf5_files(draw, scratch: Path) -> tuple[str, bytes]:
    path = scratch / "build.hdf5"
    with h5py.File(path, "w") as f:
        for name in draw(st.lists(st.sampled_from(["train", "test", "neighbors"]), unique=True, max_size=3)):
            if draw(st.booleans()):
                f.create_dataset(name, data=_matrix(draw, draw(st.sampled_from(["f4", "f8", "f2", "i4"]))))
            else:  # declared but never written: reads as its fill value, whatever its size
                f.create_dataset(name, shape=draw(st.sampled_from([(10, 4), (10**6, 10**4)])), dtype="f4",
                                 chunks=True)
    raw = path.read_bytes()
    cut = draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw))))
    return ".hdf5", raw[:cut]


@IN_PROCESS
@given(data=st.data())
def test_embedding_files_load_and_search_exactly_or_are_refused(scratch, data):
    suffix, raw = data.draw(st.one_of(vecs_files(), npy_files(), hdf5_files(scratch)))
    path = _write(scratch / f"corpus{suffix}", raw)
    loaded = refused_or_loaded(lambda: load_embedding_set(path, queries=3), path, EmbeddingSet)
    if loaded is None:
        return
    k = min(3, loaded.n)
    scores, ids = faery.search(loaded.corpus, loaded.queries, k)  # the loader refused what FAERY would
    assert np.isfinite(scores).all()
    check_topk(loaded.corpus, loaded.queries, scores, ids, k)


# ----------------------------------------------------------------------------- patterns

PATTERN_TEXT = st.one_of(
    st.text(alphabet="0123456789-, x", max_size=30),
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=10)
      .map(lambda edges: ",".join(f"{u}-{v}" for u, v in edges)),
    st.sampled_from(["triangle", "diamond", "8-clique", "9-clique", "99999999999999-clique", "rectangle",
                     "0-1,1-2,2-99999999999", "0-1,1-2,2-1000000", "0-1,1-2,2-0", "x" * 5000]),
)
PATTERN_OBJECTS = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True),
    st.lists(st.one_of(st.tuples(st.integers(-2, 2**70), st.integers(-2, 12)),
                       st.tuples(st.floats(0, 9), st.integers(0, 9)), st.tuples(st.integers(0, 9)),
                       st.text(max_size=3), st.none()), max_size=10),
)


def _refused_with_one_line(call) -> None:
    try:
        call()
    except ValueError as error:
        assert "\n" not in str(error) and len(str(error)) <= MESSAGE_LIMIT, str(error)[:2000]


@IN_PROCESS
@given(text=PATTERN_TEXT, induced=st.booleans())
def test_pattern_text_plans_or_is_refused_in_one_short_line(text, induced):
    _refused_with_one_line(lambda: g2miner.plan(_pattern_spec(text), induced=induced))


@IN_PROCESS
@given(spec=PATTERN_OBJECTS, k=st.one_of(st.integers(-2, 12), st.floats(0, 9), st.none(), st.text(max_size=2)))
def test_pattern_objects_and_clique_sizes_are_value_errors_when_wrong(spec, k):
    graph = from_edges(np.array([0, 1, 2, 2]), np.array([1, 2, 0, 3]))
    _refused_with_one_line(lambda: g2miner.plan(spec))
    _refused_with_one_line(lambda: g2miner.cliques(graph, k))


# ----------------------------------------------------------------------------- Ekko update traces

TRACE_FIELDS = st.one_of(st.integers(0, 40).map(str), st.floats(0, 100).map(repr), ID_TOKENS,
                         st.sampled_from(["nan", "inf", "-1", "", "32767", "32768", "1e400", "\x00"]))
TRACE_HEADERS = st.sampled_from(["time_s,key,model,magnitude", "time_s,key,model,magnitude,extra",
                                 "time,key,model,magnitude", ""])


@IN_PROCESS
@given(header=TRACE_HEADERS, rows=st.lists(st.lists(TRACE_FIELDS, min_size=3, max_size=5), max_size=15),
       junk=st.one_of(st.just(b""), st.binary(max_size=40)))
def test_update_traces_load_or_are_refused_naming_file_and_line(scratch, header, rows, junk):
    text = "\n".join([header, *(",".join(row) for row in rows)]) + "\n"
    path = _write(scratch / "trace.csv", text.encode() + junk)
    refused_or_loaded(lambda: load_update_trace(path), path, UpdateStream)


# ----------------------------------------------------------------------------- the CLI, in a memory-limited worker

class CliWorker:
    """One `--worker` process under RLIMIT_AS; restarted if a case kills it."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None

    def run(self, args: list[str]) -> dict:
        if self._process is None or self._process.poll() is not None:
            self._start()
        process = self._process
        process.stdin.write(json.dumps(args) + "\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], CASE_TIMEOUT_S)
        answer = process.stdout.readline() if ready else ""
        if not answer:
            self.close()
            pytest.fail(f"recmine {' '.join(args)}: the worker {'hung' if not ready else 'died'} "
                        f"(memory limit {AS_LIMIT >> 30} GB)")
        return json.loads(answer)

    def _start(self) -> None:
        def limit_memory() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))

        # Each thread's stack and BLAS buffers are address space: pin the pools so the limit means memory.
        env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
        self._process = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env, preexec_fn=limit_memory,
                                         cwd=Path(__file__).resolve().parents[2])

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture(scope="module")
def worker():
    cli = CliWorker()
    yield cli
    cli.close()


def succeeds_or_one_line(worker: CliWorker, args: list[str]) -> dict:
    """Run a case; it must exit 0, or exit 2 with one stderr line, and never show a traceback."""
    result = worker.run(args)
    shown = f"recmine {' '.join(args)}: exit {result['code']}, stderr:\n{result['stderr'][-3000:]}"
    assert "Traceback" not in result["stderr"] + result["stdout"], shown
    assert result["code"] in (0, 2), shown
    if result["code"] == 2:
        assert result["stderr"].count("\n") == 1 and result["stderr"].startswith("recmine: "), shown
    return result


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory) -> dict[str, str]:
    """Files the CLI cases point at: good, garbage, overflowing, a directory, a missing path."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(7)
    np.save(folder / "corpus.npy", rng.standard_normal((300, 8)).astype(np.float32))
    np.save(folder / "queries.npy", rng.standard_normal((4, 8)).astype(np.float32))
    np.save(folder / "wide.npy", rng.standard_normal((4, 9)).astype(np.float32))
    np.save(folder / "huge.npy", np.full((50, 8), 1e19, np.float32))
    corpus = rng.standard_normal((100, 8)).astype("<f4")
    (folder / "corpus.fvecs").write_bytes(b"".join(np.int32(8).tobytes() + row.tobytes() for row in corpus))
    (folder / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    (folder / "edges.txt").write_bytes(b"0 1\n1 2\n2 0\n2 3\n3 0\n")
    (folder / "sparse.txt").write_bytes(b"1 2\n2 9223372036854775807\n9223372036854775807 1\n")
    (folder / "bad-edges.txt").write_bytes(b"0 1\n1 2.0\n")
    (folder / "dir").mkdir()
    return {"folder": str(folder), **{p.name: str(p) for p in folder.iterdir()}, "missing": str(folder / "nope")}


def _option(name: str, values: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.just([]), values.map(lambda value: [name, value]))


@THROUGH_CLI
@given(data=st.data())
def test_faery_search_options(worker, cli_files, data):
    draw = data.draw
    corpus = draw(st.sampled_from(["corpus.npy", "corpus.fvecs", "garbage.npy", "huge.npy", "dir", "missing"]))
    args = ["faery", "search", cli_files[corpus]]
    args += draw(_option("-k", st.sampled_from(["1", "5", "0", "-1", "abc", "1e3", "301", "2049", "9" * 30])))
    args += draw(_option("--impl", st.sampled_from(["faery", "faiss_topk", "numpy", "faiss-cpu", "bogus"])))
    args += draw(_option("--backend", st.sampled_from(["cpu", "gpu", "fpga-model", "bogus"])))
    args += draw(_option("--queries", st.sampled_from([cli_files[n] for n in ("queries.npy", "wide.npy", "dir")])))
    out = draw(st.sampled_from(["result.npz", "result", "/proc/x.npz", "dir", "missing/x.npz"]))
    args += draw(_option("--out", st.just(out if out.startswith("/") else str(Path(cli_files["folder"]) / out))))
    succeeds_or_one_line(worker, args)


@THROUGH_CLI
@given(pattern=PATTERN_TEXT, induced=st.booleans())
def test_g2miner_plan_patterns(worker, pattern, induced):
    assume(not pattern.startswith("-"))  # an argument starting with '-' is read as an option: a usage error
    succeeds_or_one_line(worker, ["g2miner", "plan", "--", pattern, *(["--induced"] if induced else [])])


@settings(THROUGH_CLI, max_examples=12)
@given(data=st.data())
def test_g2miner_count_options(worker, cli_files, data):
    draw = data.draw
    graph = draw(st.sampled_from([cli_files[n] for n in ("edges.txt", "sparse.txt", "bad-edges.txt", "dir",
                                                         "garbage.npy", "missing")] + ["kron99"]))
    pattern = draw(st.one_of(st.sampled_from(["triangle", "4-cycle", "diamond", "0-1,1-2,2-0", "5-clique"]),
                             PATTERN_TEXT.filter(lambda text: not text.startswith("-"))))
    backend = draw(_option("--backend", st.sampled_from(["cpu", "gpu", "bogus"])))
    result = succeeds_or_one_line(worker, ["g2miner", "count", *backend, graph, pattern])
    if result["code"] == 0:
        assert re.fullmatch(r"[0-9]+\n", result["stdout"]), result["stdout"]


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@settings(THROUGH_CLI, max_examples=12)
@given(data=st.data())
def test_ekko_simulate_options(worker, data):
    draw = data.draw
    args = ["ekko", "simulate", "--dcs", draw(st.sampled_from(["1", "2", "3", "0", "17", "-1", "abc"]))]
    args += draw(_option("--workload", st.sampled_from(["ekko-updates-quick", "citeseer", "gaussian-25k-d128-fp32",
                                                         "nope"])))
    args += draw(_option("--bandwidth-gbps", st.sampled_from(["5", "1", "0.5", "inf", "-inf", "nan", "-5", "0",
                                                             "abc", "1e300"])))
    args += draw(_option("--row-bytes", st.sampled_from(["0", "64", "65536", "-1", "16777217", "abc"])))
    args += draw(_option("--impl", st.sampled_from(["ekko", "adam_push", "bogus"])))
    result = succeeds_or_one_line(worker, args)
    if result["code"] == 0:
        figures = _strict_json(result["stdout"])
        assert figures["kind"] == "simulated"


def test_ekko_simulate_on_a_bandwidth_too_low_to_converge(worker):
    """The slow case the strategy leaves out: the simulation runs out of simulated time."""
    succeeds_or_one_line(worker, ["ekko", "simulate", "--dcs", "2", "--bandwidth-gbps", "1e-9"])
