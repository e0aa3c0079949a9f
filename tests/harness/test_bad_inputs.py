"""Inputs that once crashed, hung or misled: each now gives one clear line (exit 2) or the right result.

The CLI cases run `recmine` as a user does, in a fresh process with its address
space limited to 2 GB, and check that stderr is exactly one line.  Allocation
bounds in-process are measured with tracemalloc, which numpy reports to.
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import click
import numpy as np
import pytest

from baselines import faiss_topk
from harness import cli as cli_module
from impls import faery, g2miner
from impls.g2miner import pattern as patterns
from workloads.ekko_updates import load_update_trace
from workloads.embeddings import as_corpus, load_embedding_set
from workloads.graphs import from_edges, load, save_graphminer

INT64_MAX = 2**63 - 1
AS_LIMIT = 2 * 2**30  # a normal run needs well under 1 GB of address space, numba's compiler included


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def recmine(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m harness.cli ARGS` under the memory limit; threads pinned, as each stack is address space."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_limit_memory, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, longest: int = 400) -> str:
    line = result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert line.count("\n") == 1 and line.startswith("recmine: error: "), line[-2000:]
    assert len(line) <= longest and "Traceback" not in line, line[:2000]
    for fragment in fragments:
        assert fragment in line, line
    return line


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """harness.cli.main() in this process, as the console script calls it: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["recmine", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def peak_bytes(call) -> tuple[object, int]:
    """call()'s result and the peak bytes it allocated (numpy arrays included)."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module", autouse=True)
def compiled_loader(tmp_path_factory) -> None:
    """Load one small edge list first, so allocation bounds measure the loader, not numba's compiler."""
    load(write(tmp_path_factory.mktemp("warm") / "g.txt", "0 1\n1 2\n"))


# ----------------------------------------------------------------------------- graph files

@pytest.mark.parametrize("suffix, text, line", [
    (".txt", "1 2\n2 9223372036854775808\n", 2),
    (".txt", "1 2\n2 99999999999999999999999999999\n", 2),
    (".mtx", "%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n2 9223372036854775808\n", 4),
])
def test_a_vertex_id_beyond_int64_is_one_clear_error(tmp_path, suffix, text, line):
    path = write(tmp_path / f"g{suffix}", text)
    with pytest.raises(ValueError, match=rf"g\{suffix}, line {line}: vertex id \d+ is larger than 2\^63 - 1"):
        load(path)
    assert_one_line_error(recmine("g2miner", "count", str(path), "triangle"), f"g{suffix}, line {line}")


def test_the_largest_int64_id_loads(tmp_path):
    graph = load(write(tmp_path / "g.txt", f"0 {INT64_MAX}\n{INT64_MAX} 5\n5 0\n"))
    assert graph.original_ids.tolist() == [0, 5, INT64_MAX] and g2miner.triangles(graph) == 1


@pytest.mark.parametrize("line", ["1 2.0", "1_0 2", "+1 2", "1 2e3", "0x1 2", "\u0661 2", "1 -2"])
def test_ids_that_are_not_plain_digits_are_refused_naming_file_and_line(tmp_path, line):
    path = write(tmp_path / "g.txt", f"# header\n0 1\n{line}\n")
    with pytest.raises(ValueError, match=r"g\.txt, line 3: .*(not an integer vertex id|negative vertex id)"):
        load(path)


def test_sparse_ids_are_compacted_and_nothing_scales_with_the_largest_id(tmp_path):
    path = write(tmp_path / "g.txt", "1 2\n2 1000000000\n1000000000 1\n")
    graph, peak = peak_bytes(lambda: load(path))
    assert peak < 1 << 20, f"{peak:,} bytes allocated for a 3-line file"
    assert graph.num_vertices == 3 and graph.original_ids.tolist() == [1, 2, 10**9]
    assert g2miner.triangles(graph) == 1


def test_a_snap_file_with_gaps_keeps_every_edge_under_its_original_ids(tmp_path, fresh_rng):
    ids = np.unique(fresh_rng.integers(0, INT64_MAX, 300, dtype=np.int64, endpoint=True))
    pairs = ids[fresh_rng.integers(0, len(ids), (2000, 2))]
    lines = ["# Nodes: sparse", *(f"{u}\t{v}" for u, v in pairs)]
    graph, peak = peak_bytes(lambda: load(write(tmp_path / "snap.txt", "\n".join(lines) + "\n")))
    assert peak < 4 << 20, f"{peak:,} bytes allocated for a {len(pairs)}-edge file"
    expected = {frozenset((int(u), int(v))) for u, v in pairs if u != v}
    src, dst = graph.undirected_edges()
    found = {frozenset((int(graph.original_ids[u]), int(graph.original_ids[v]))) for u, v in zip(src, dst)}
    assert found == expected
    assert np.all(np.diff(graph.original_ids) > 0)


def test_dense_ids_keep_their_numbering(tmp_path):
    graph = load(write(tmp_path / "g.txt", "0 1\n1 2\n2 0\n3 5\n"))
    assert graph.original_ids is None and graph.num_vertices == 6 and graph.degrees[4] == 0


def test_a_sparse_matrix_market_size_is_compacted_with_its_one_based_ids(tmp_path):
    text = ("%%MatrixMarket matrix coordinate real general\n1000000000 1000000000 3\n"
            "1 2 0.5\n2 1000000000 1e3\n1000000000 1 -2\n")
    graph, peak = peak_bytes(lambda: load(write(tmp_path / "g.mtx", text)))
    assert peak < 1 << 20 and graph.original_ids.tolist() == [1, 2, 10**9] and g2miner.triangles(graph) == 1


def test_an_npz_edge_list_with_a_sparse_declared_size_is_compacted(tmp_path):
    path = tmp_path / "g.npz"
    np.savez(path, src=np.array([0, 1, 2]), dst=np.array([1, 2, 0]), num_vertices=np.array(10**9))
    graph, peak = peak_bytes(lambda: load(path))
    assert peak < 1 << 20 and graph.num_vertices == 3 and graph.original_ids is None


def test_an_npz_member_that_declares_more_than_it_holds_is_refused_before_allocating(tmp_path):
    path = tmp_path / "g.npz"
    with zipfile.ZipFile(path, "w") as archive:  # a valid zip whose array header lies about its shape
        for name, values in (("src", np.arange(4)), ("dst", np.arange(1, 5))):
            member = io.BytesIO()
            np.lib.format.write_array_header_1_0(member, {"descr": "<i8", "fortran_order": False,
                                                          "shape": (9,) if name == "src" else (4,)})
            archive.writestr(f"{name}.npy", member.getvalue() + values.astype("<i8").tobytes())
    with pytest.raises(ValueError, match=r"g\.npz: .*declares shape \(9,\).* but holds 32 bytes"):
        load(path)


@pytest.mark.parametrize("line, value, message", [
    (0, "1000000000000000", r"graph\.vertex\.bin: .* bytes, but .*graph\.meta\.txt implies"),
    (1, "999999999999999999", r"graph\.edge\.bin: .* bytes, but .*graph\.meta\.txt implies"),
    (0, "1_0", r"graph\.meta\.txt, line 1: \|V\| must be a non-negative integer"),
    (1, "9" * 40, r"graph\.meta\.txt, line 2: CSR entries must be a non-negative integer, not '9{40}'"),
])
def test_graphminer_declared_sizes_are_checked_against_the_files(tmp_path, line, value, message):
    graph = from_edges(np.array([0, 1, 2]), np.array([1, 2, 0]))
    save_graphminer(graph, tmp_path / "graph")
    meta = tmp_path / "graph.meta.txt"
    lines = meta.read_text().splitlines()
    lines[line] = value
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        load(tmp_path)
    _, peak = peak_bytes(lambda: pytest.raises(ValueError, load, tmp_path))
    assert peak < 1 << 20, f"{peak:,} bytes allocated before refusing"


def test_a_huge_graphminer_meta_file_is_not_read(tmp_path):
    save_graphminer(from_edges(np.array([0, 1, 2]), np.array([1, 2, 0])), tmp_path / "graph")
    with open(tmp_path / "graph.meta.txt", "ab") as meta:
        meta.truncate(1 << 30)  # sparse: a gigabyte that costs no disk
    with pytest.raises(ValueError, match=r"graph\.meta\.txt: 1,073,741,824 bytes is not a GraphMiner meta file"):
        load(tmp_path)


@pytest.mark.parametrize("labels", [np.array([0.5, 1.0, 2.0]), np.array([np.nan, 1.0, 2.0]), np.array([1, 2, 256])])
def test_float_nan_or_out_of_range_vertex_labels_are_refused_not_truncated(labels):
    with pytest.raises(ValueError, match="vertex labels must"):
        from_edges(np.array([0, 1]), np.array([1, 2]), vlabels=labels)


# ----------------------------------------------------------------------------- patterns and the G2Miner API

@pytest.mark.parametrize("pattern", ["0-1,1-2,2-99999999999", "0-1,1-2,2-1000000", "0-1,1-2,2-8"])
def test_a_pattern_with_a_huge_vertex_id_is_one_short_line(pattern):
    assert_one_line_error(recmine("g2miner", "plan", pattern), "at most 8 vertices", longest=200)


def test_pattern_messages_quote_user_text_cut_short():
    with pytest.raises(ValueError) as error:
        patterns.get("x" * 100_000)
    assert len(str(error.value)) < 500 and "100,000 characters" in str(error.value)
    with pytest.raises(ValueError, match="at most 8 vertices"):
        patterns.get([(0, 1), (1, 2), (2, 10**12)])


@pytest.fixture(scope="module")
def triangle_graph():
    return from_edges(np.array([0, 1, 2]), np.array([1, 2, 0]))


@pytest.mark.parametrize("call, parameter", [
    (lambda g: g2miner.count(g, None), "pattern"),
    (lambda g: g2miner.cliques(g, 4.0), "k="),
    (lambda g: g2miner.cliques(g, "4"), "k="),
    (lambda g: g2miner.count(None, "triangle"), "graph"),
    (lambda g: g2miner.count(g, "triangle", backend=None), "backend"),
    (lambda g: g2miner.count(g, "triangle", induced="yes"), "induced"),
    (lambda g: g2miner.motifs(g, 3.5), "motif size k"),
    (lambda g: g2miner.fsm(None, 1), "graph"),
    (lambda g: g2miner.plan([(0, 1), (1, 2.0), (2, 0)]), "edge 1"),
])
def test_wrong_argument_types_are_value_errors_naming_the_parameter(triangle_graph, call, parameter):
    with pytest.raises(ValueError, match=parameter):
        call(triangle_graph)


# ----------------------------------------------------------------------------- FAERY and faiss_topk

def _huge(shape):
    return np.full(shape, 1e19, np.float32)  # finite float32, but every score overflows it


@pytest.mark.parametrize("search", [
    lambda c, q: faery.search(c, q, 3),
    lambda c, q: faiss_topk.search(c, q, 3),
    lambda c, q: faery.Cluster(c, 2).search(q, 3),
])
def test_scores_beyond_float32_are_refused_not_ranked_as_inf(search, fresh_rng):
    normal = fresh_rng.standard_normal((50, 8)).astype(np.float32)
    for corpus, queries in ((_huge((50, 8)), _huge((2, 8))), (normal, normal[:2] * np.float32(3e37))):
        with pytest.raises(ValueError, match="scores would exceed float32's range"):
            search(corpus, queries)
    scores, _ = search(_huge((50, 8)), normal[:2])  # large rows, ordinary queries: scores fit, and are exact
    assert np.isfinite(scores).all()


def test_an_index_refuses_queries_once_an_insert_makes_scores_overflow(fresh_rng):
    index = faery.Index(fresh_rng.standard_normal((20, 4)).astype(np.float32))
    queries = np.full((1, 4), 1e19, np.float32)
    index.search(queries, 2)
    index.insert(np.full((1, 4), 1e19, np.float32))
    with pytest.raises(ValueError, match="scores would exceed float32's range"):
        index.search(queries, 2)


def test_float64_beyond_float32_is_named_as_such_not_as_nan():
    with pytest.raises(ValueError, match=r"corpus exceeds float32's range: 1e\+39 at row 1, column 0"):
        as_corpus(np.array([[1.0, 2.0], [1e39, 0.0]]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        as_corpus(np.array([[1.0, np.inf]]))


def test_faery_search_refuses_a_file_whose_scores_overflow(tmp_path):
    np.save(tmp_path / "c.npy", np.full((100, 8), 1e19, np.float32))
    with pytest.raises(ValueError, match="scores would exceed float32's range"):
        load_embedding_set(tmp_path / "c.npy")
    assert_one_line_error(recmine("faery", "search", str(tmp_path / "c.npy")), "c.npy", "float32's range")


def test_an_npy_header_that_is_not_a_python_literal_is_refused_naming_the_file(tmp_path):
    # The header's declared length cuts its dict short; numpy then re-reads it with Python's
    # tokenizer, whose own error must not escape.
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (9, 3), }"[:54]
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
                                     + b" " * 58 + b"\n" + bytes(108))
    with pytest.raises(ValueError, match=r"c\.npy: not a readable \.npy array"):
        load_embedding_set(tmp_path / "c.npy")


# ----------------------------------------------------------------------------- the CLI

@pytest.fixture
def corpus_file(tmp_path, fresh_rng) -> Path:
    path = tmp_path / "c.npy"
    np.save(path, fresh_rng.standard_normal((200, 8)).astype(np.float32))
    return path


@pytest.mark.parametrize("make_args, fragment", [
    (lambda p: ["faery", "search", str(p.parent)], "is a directory"),
    (lambda p: ["faery", "search", str(p), "-k", "abc"], "'abc' is not a valid integer"),
    (lambda p: ["faery", "search", str(p), "--queries", str(p.parent)], "is a directory"),
    (lambda p: ["g2miner", "count", "citeseer"], "Missing argument 'PATTERN'"),
    (lambda p: ["nosuch"], "No such command 'nosuch'"),
])
def test_click_usage_errors_are_one_line(corpus_file, make_args, fragment):
    assert_one_line_error(recmine(*make_args(corpus_file)), fragment)


def test_an_unwritable_out_fails_before_any_timed_run(corpus_file, monkeypatch, capsys):
    import harness.measure

    def no_timing(*args, **kwargs):
        raise AssertionError("a timed run started before --out was checked")

    monkeypatch.setattr(harness.measure, "measure", no_timing)
    code, _, err = run_main(monkeypatch, capsys, "faery", "search", str(corpus_file), "--out", "/proc/x.npz")
    assert code == 2 and err.count("\n") == 1 and "--out /proc/x.npz: cannot write in /proc" in err


def test_a_failed_search_leaves_an_earlier_out_file_whole(tmp_path):
    out = tmp_path / "result.npz"
    out.write_bytes(b"earlier result")
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    assert_one_line_error(recmine("faery", "search", str(tmp_path / "bad.npy"), "--out", str(out)), "bad.npy")
    assert out.read_bytes() == b"earlier result" and sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy",
                                                                                                    "result.npz"]


def _failing_command(exc: Exception) -> click.Command:
    @click.command("fail")
    def fail() -> None:
        raise exc
    return fail


def test_an_opencl_error_is_one_line_with_exit_2(monkeypatch, capsys):
    cl = pytest.importorskip("pyopencl")
    error = cl.RuntimeError("clBuildProgram failed: BUILD_PROGRAM_FAILURE\n\nerror: unknown target CPU 'generic'")
    monkeypatch.setitem(cli_module.cli.commands, "fail", _failing_command(error))
    code, _, err = run_main(monkeypatch, capsys, "fail")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("recmine: error: OpenCL: clBuildProgram failed") and "unknown target CPU" in err


def test_an_unexpected_exception_is_one_line_with_exit_1_and_a_traceback_under_debug(monkeypatch, capsys):
    monkeypatch.setitem(cli_module.cli.commands, "fail", _failing_command(KeyError("boom")))
    code, _, err = run_main(monkeypatch, capsys, "fail")
    assert code == 1 and err.count("\n") == 1 and "internal error: KeyError" in err and "--debug" in err
    code, _, err = run_main(monkeypatch, capsys, "--debug", "fail")
    assert code == 1 and "Traceback" in err


def test_an_empty_memory_error_still_says_what_happened(monkeypatch, capsys):
    monkeypatch.setitem(cli_module.cli.commands, "fail", _failing_command(MemoryError()))
    code, _, err = run_main(monkeypatch, capsys, "fail")
    assert (code, err) == (2, "recmine: error: out of memory\n")


# ----------------------------------------------------------------------------- Ekko update traces

@pytest.mark.parametrize("row, message", [
    ("0.1,9223372036854775808,0,1", r"t\.csv:2: key '9223372036854775808' is larger than"),
    ("0.1,5,32768,1", r"t\.csv:2: model '32768' is larger than 32,767"),
    ("0.1,1_0,0,1", r"t\.csv:2: cannot parse .* key '1_0' is not an integer"),
])
def test_trace_keys_and_models_beyond_their_types_name_file_and_line(tmp_path, row, message):
    path = write(tmp_path / "t.csv", f"time_s,key,model,magnitude\n{row}\n")
    with pytest.raises(ValueError, match=message):
        load_update_trace(path)


def test_a_binary_trace_names_the_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"time_s,key,model,magnitude\n\xff\xfe\x00\x81" * 100)
    with pytest.raises(ValueError, match=r"t\.csv: not a text CSV file"):
        load_update_trace(path)
