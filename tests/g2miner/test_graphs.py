"""workloads.graphs: the CSR type, loaders, preprocessing, generators and named workloads."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from workloads import catalog
from workloads.graphs import (CSRGraph, from_edges, kron, load, orient_by_degree, relabel_by_degree, save_graphminer,
                              save_npz, urand)
from workloads.graphs.named import CITESEER_PREFIX, KRON_SIZES, URAND_SIZES


def assert_clean(graph: CSRGraph) -> None:
    """Symmetric, sorted, no self loops, no duplicates."""
    src, dst = graph.arcs()
    assert graph.indptr.dtype == np.int64 and graph.indices.dtype == np.int32
    assert not np.any(src == dst)
    keys = src.astype(np.int64) * graph.num_vertices + dst
    assert np.all(np.diff(keys) > 0), "rows sorted, no duplicates"
    reverse = np.sort(dst.astype(np.int64) * graph.num_vertices + src)
    assert np.array_equal(keys, reverse), "symmetric"


def same_graph(a: CSRGraph, b: CSRGraph) -> bool:
    return np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)


@pytest.fixture(scope="module")
def citeseer() -> CSRGraph:
    return load(CITESEER_PREFIX.parent)


def test_citeseer_loads_clean_with_labels(citeseer: CSRGraph) -> None:
    assert (citeseer.num_vertices, citeseer.num_edges, citeseer.max_degree) == (3312, 4536, 99)
    assert_clean(citeseer)
    assert citeseer.vlabels is not None and citeseer.vlabels.dtype == np.uint8
    assert set(np.unique(citeseer.vlabels)) == set(range(6))
    assert sum(nx.triangles(to_networkx(citeseer)).values()) // 3 == 1166


def test_directory_and_prefix_paths_load_the_same(citeseer: CSRGraph) -> None:
    assert same_graph(load(CITESEER_PREFIX), citeseer)
    assert same_graph(load(str(CITESEER_PREFIX)), citeseer)


def test_formats_round_trip(citeseer: CSRGraph, tmp_path: Path) -> None:
    save_graphminer(citeseer, tmp_path / "copy")
    assert same_graph(load(tmp_path / "copy"), citeseer)
    assert np.array_equal(load(tmp_path / "copy").vlabels, citeseer.vlabels)
    save_npz(citeseer, tmp_path / "g.npz")
    assert same_graph(load(tmp_path / "g.npz"), citeseer)

    src, dst = citeseer.undirected_edges()
    # A directed SNAP list: one direction only, mixed separators, comments.
    lines = ["# Directed graph", "# FromNodeId\tToNodeId"]
    lines += [f"{u}\t{v}" if i % 2 else f"{v} {u}" for i, (u, v) in enumerate(zip(src, dst))]
    (tmp_path / "g.txt").write_text("\n".join(lines) + "\n")
    snap = load(tmp_path / "g.txt")
    # Isolated vertices at the top end are lost in an edge list: compare edges.
    assert np.array_equal(np.c_[snap.undirected_edges()], np.c_[src, dst])

    mtx = ["%%MatrixMarket matrix coordinate pattern symmetric", "% citeseer",
           f"{citeseer.num_vertices} {citeseer.num_vertices} {len(src)}"]
    mtx += [f"{v + 1} {u + 1}" for u, v in zip(src, dst)]
    (tmp_path / "g.mtx").write_text("\n".join(mtx) + "\n")
    assert same_graph(load(tmp_path / "g.mtx"), citeseer)


def test_from_edges_symmetrises_and_cleans() -> None:
    graph = from_edges(np.array([0, 1, 1, 2, 2, 3]), np.array([1, 0, 1, 0, 3, 2]), num_vertices=5, name="toy")
    assert (graph.num_vertices, graph.num_edges) == (5, 3)
    assert_clean(graph)
    assert graph.neighbors(0).tolist() == [1, 2] and graph.neighbors(4).tolist() == []
    assert graph.degrees.tolist() == [2, 1, 2, 1, 0] and graph.max_degree == 2


def test_orient_by_degree_keeps_each_edge_once_low_to_high(citeseer: CSRGraph) -> None:
    dag = orient_by_degree(citeseer)
    assert dag.directed and dag.num_edges == citeseer.num_edges
    src, dst = dag.arcs()
    deg = citeseer.degrees
    assert np.all((deg[src] < deg[dst]) | ((deg[src] == deg[dst]) & (src < dst)))
    for v in (0, 17, int(np.argmax(deg))):
        assert np.all(np.diff(dag.neighbors(v)) > 0)
    with pytest.raises(ValueError, match="already oriented"):
        orient_by_degree(dag)


def test_relabel_by_degree_is_an_isomorphism(citeseer: CSRGraph) -> None:
    relabelled = relabel_by_degree(citeseer)
    assert_clean(relabelled)
    assert np.all(np.diff(relabelled.degrees) >= 0)
    assert sorted(relabelled.degrees) == sorted(citeseer.degrees)
    assert np.bincount(relabelled.vlabels).tolist() == np.bincount(citeseer.vlabels).tolist()
    assert sum(nx.triangles(to_networkx(relabelled)).values()) == sum(nx.triangles(to_networkx(citeseer)).values())
    descending = relabel_by_degree(citeseer, descending=True)
    assert np.all(np.diff(descending.degrees) <= 0)


def test_generators_are_seeded_and_clean() -> None:
    a, b, c = kron(10, seed=1), kron(10, seed=1), kron(10, seed=2)
    assert same_graph(a, b) and not same_graph(a, c)
    assert a.num_vertices == 1024 and 0.85 * 16 * 1024 > a.num_edges > 0.6 * 16 * 1024
    assert a.max_degree > 10 * 2 * a.num_edges / a.num_vertices  # skewed, unlike urand
    assert_clean(a)
    u = urand(2000, 8, seed=3)
    assert_clean(u)
    assert u.num_vertices == 2000 and abs(2 * u.num_edges / 2000 - 8) < 0.2
    assert same_graph(u, urand(2000, 8, seed=3))


def test_named_workloads_sizes_match_their_data() -> None:
    workloads = catalog.all_workloads()
    for name, sizes in [("citeseer", (3312, 4536, 99)), ("kron16", KRON_SIZES[16]), ("urand16", URAND_SIZES[16])]:
        workload = workloads[name]
        graph = workload.load()
        assert (graph.num_vertices, graph.num_edges, graph.max_degree) == sizes
        assert (workload.size["vertices"], workload.size["edges"], workload.size["max_degree"]) == sizes
    assert {f"kron{s}" for s in range(16, 23)} <= set(workloads)
    assert workloads["citeseer"].tier == "quick" and workloads["kron21"].tier == "full"
    truth = workloads["citeseer"].ground_truth
    assert truth["triangle"] == 1166 and truth["4-motifs"]["3-star"] == 222630


@pytest.mark.parametrize("text, message", [
    ("0 1\n1 x\n", r"g\.txt, line 2: 'x' is not an integer"),
    ("0 1\n# c\n2 -3\n", r"g\.txt, line 3: negative vertex id -3"),
    ("0 1\n1 2 3\n", r"g\.txt, line 2: expected 2 columns per edge, found 3"),
    ("0 1\n4\n", r"g\.txt, line 2: expected 2 columns"),
    ("# only comments\n\n", r"g\.txt: .*empty graph"),
    ("3 3\n", r"g\.txt: .*empty graph \(only self loops\)"),
])
def test_bad_edge_lists_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "g.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        load(tmp_path / "g.txt")


def test_bad_matrix_market_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "g.mtx"
    path.write_text("%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n2 4\n")
    with pytest.raises(ValueError, match=r"g\.mtx, line 4: vertex id 4 is outside 1\.\.3"):
        load(path)
    path.write_text("%%MatrixMarket matrix coordinate pattern general\n3 3 3\n1 2\n2 3\n")
    with pytest.raises(ValueError, match=r"g\.mtx, line 2: size line announces 3 entries, file has 2"):
        load(path)
    path.write_text("1 2\n")
    with pytest.raises(ValueError, match=r"g\.mtx, line 1: not a Matrix Market file"):
        load(path)


def test_bad_graphminer_files_are_refused(citeseer: CSRGraph, tmp_path: Path) -> None:
    prefix = tmp_path / "graph"
    save_graphminer(citeseer, prefix)
    meta = Path(f"{prefix}.meta.txt")
    good_meta = meta.read_text()
    meta.write_text(good_meta.replace(f"{citeseer.num_arcs}\n", f"{citeseer.num_arcs + 2}\n", 1))
    with pytest.raises(ValueError, match=r"graph\.edge\.bin: 36288 bytes, but .*graph\.meta\.txt implies"):
        load(tmp_path)
    meta.write_text(good_meta.replace("4 8 1 2", "4 4 1 2"))
    with pytest.raises(ValueError, match=r"graph\.meta\.txt, line 3: type sizes"):
        load(tmp_path)
    meta.write_text(good_meta)
    indices = citeseer.indices.copy()
    indices[5] = citeseer.num_vertices + 7
    indices.tofile(f"{prefix}.edge.bin")
    with pytest.raises(ValueError, match=r"graph\.edge\.bin: vertex id 3319 is outside 0\.\.3311"):
        load(tmp_path)
    with pytest.raises(ValueError, match=r"nope: no such graph file"):
        load(tmp_path / "nope")


def test_from_edges_refusals() -> None:
    with pytest.raises(ValueError, match="vertex id 5 is beyond"):
        from_edges(np.array([0, 1]), np.array([5, 2]), num_vertices=5)
    with pytest.raises(ValueError, match="empty graph"):
        from_edges(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="negative vertex id"):
        from_edges(np.array([0, -1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="outside"):
        from_edges(np.array([0]), np.array([1])).neighbors(2)


def to_networkx(graph: CSRGraph) -> nx.Graph:
    result = nx.Graph()
    result.add_nodes_from(range(graph.num_vertices))
    result.add_edges_from(zip(*(a.tolist() for a in graph.undirected_edges())))
    return result


@pytest.mark.parametrize("name,content,message", [("bin.txt", b"\x00\xff\xfe 1 2\n", "not a text file"),
                                                  ("junk.npz", b"junk", "not a readable .npz")])
def test_unreadable_graph_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        load(path)
