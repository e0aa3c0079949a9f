"""Embedding workloads: loaders, validation, generators and the reference."""

import h5py
import numpy as np
import pytest

from workloads import catalog
from workloads.embeddings import (as_corpus, as_queries, check_k, check_topk, clustered, gaussian,
                                  load_embeddings, load_vecs, reference_topk)


def write_vecs(path, rows, dtype):
    with open(path, "wb") as f:
        for row in rows:
            f.write(np.array([len(row)], "<i4").tobytes() + np.asarray(row, dtype).tobytes())


@pytest.mark.parametrize("suffix,dtype", [(".fvecs", "<f4"), (".bvecs", "u1"), (".ivecs", "<i4")])
def test_vecs_round_trip(tmp_path, suffix, dtype):
    rows = np.random.default_rng(1).integers(0, 200, (7, 5)).astype(dtype)
    write_vecs(tmp_path / f"x{suffix}", rows, dtype)
    np.testing.assert_array_equal(load_vecs(tmp_path / f"x{suffix}"), rows)


def test_truncated_fvecs_names_the_file(tmp_path):
    path = tmp_path / "cut.fvecs"
    write_vecs(path, np.ones((3, 4)), "<f4")
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="cut.fvecs: truncated"):
        load_embeddings(path)


def test_fvecs_with_inconsistent_dimension_names_the_record(tmp_path):
    path = tmp_path / "mixed.fvecs"
    with open(path, "wb") as f:  # two records of equal byte length but declaring different dimensions
        f.write(np.array([2], "<i4").tobytes() + np.ones(2, "<f4").tobytes())
        f.write(np.array([3], "<i4").tobytes() + np.ones(2, "<f4").tobytes())
    with pytest.raises(ValueError, match="record 1 declares dimension 3"):
        load_embeddings(path)


def test_nan_in_file_is_refused_with_its_position(tmp_path):
    arr = np.ones((4, 3), np.float32)
    arr[2, 1] = np.inf
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(ValueError, match=r"bad.npy holds NaN or Inf \(first at row 2, column 1\)"):
        load_embeddings(tmp_path / "bad.npy")


def test_hdf5_ann_benchmarks_layout(tmp_path):
    train = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    with h5py.File(tmp_path / "glove.hdf5", "w") as f:
        f["train"], f["test"] = train, train[:5]
    np.testing.assert_array_equal(load_embeddings(tmp_path / "glove.hdf5"), train)
    with pytest.raises(ValueError, match="no dataset 'nope'"):
        load_embeddings(tmp_path / "glove.hdf5", dataset="nope")


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unknown embedding format"):
        load_embeddings(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="no such file"):
        load_embeddings(tmp_path / "absent.npy")


def test_validation_messages():
    with pytest.raises(ValueError, match="empty"):
        as_corpus(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        as_corpus(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="cannot be converted"):
        as_corpus(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="dimension 3, but the corpus has dimension 4"):
        as_queries(np.zeros((2, 3)), 4)
    assert as_corpus(np.ones((2, 2), np.float64)).dtype == np.float32
    assert as_corpus(np.ones((4, 4), np.float32)[:, ::2]).flags.c_contiguous
    for bad, msg in ((0, "positive"), (-1, "positive"), (11, "larger than the corpus"), (2.5, "integer")):
        with pytest.raises(ValueError, match=msg):
            check_k(bad, 10)
    with pytest.raises(ValueError, match="k <= 4"):
        check_k(5, 10, limit=4, who="x")


def test_generators_are_seeded_and_shaped():
    a, b = gaussian(1000, 16, seed=3), gaussian(1000, 16, seed=3)
    np.testing.assert_array_equal(a.corpus, b.corpus)
    c = clustered(1000, 16, "float16", clusters=8, queries=5)
    assert c.corpus.shape == (1000, 16) and c.corpus.dtype == np.float16 and c.queries.shape == (5, 16)


def test_named_workloads_have_both_tiers():
    embeddings = [w for w in catalog.all_workloads().values() if w.kind == "embeddings"]
    assert {w.tier for w in embeddings} == {"quick", "full"}
    assert any(w.size["n"] == 10_000_000 and w.size["d"] == 128 for w in embeddings)


def test_reference_breaks_ties_by_lower_id_and_check_catches_wrong_answers():
    corpus = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # ids 0-3 tie, 4-7 tie, ...
    scores, ids = reference_topk(corpus, corpus[4:5], 3)
    assert ids.tolist() == [[4, 5, 6]]
    check_topk(corpus, corpus[4:5], scores.astype(np.float32), ids, 3)
    with pytest.raises(AssertionError):
        check_topk(corpus, corpus[4:5], np.array([[1.0, 1.0, 1.0]]), np.array([[4, 5, 0]]), 3)
