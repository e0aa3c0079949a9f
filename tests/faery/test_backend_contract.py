"""Adding a FAERY backend, shown from a test: a trivial numpy `Searcher`, registered here, runs
under `Index`, one-call `search`, `Cluster` and the harness's experiments with no other file
touched.  In the tree the same backend is a module plus one line in `impls/faery/backend.py`
(`_SEARCHER_MODULES`), and, for its experiments, one line in `SUTS` of `harness/systems/faery.py` and its name in the
`backend` lists of `harness/systems/faery.toml`.
Also: `RowStore` in device memory, on a stand-in device array."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import impls.faery as faery_lib
from harness import grids
from harness.systems import faery as faery_system
from impls.faery import backend
from impls.faery.backend import RowStore, StoredRows
from topk import sort_topk
from workloads.embeddings import check_topk, gaussian, reference_topk


class NumpySearcher(StoredRows):
    """Every score by one numpy product, then the best k: no filter, so every score passes."""

    k_limit: int | None = None

    def __init__(self, corpus: np.ndarray) -> None:
        self._store = RowStore(corpus)
        self.last_pass_rate = float("nan")

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ self._store.rows.astype(np.float32).T
        if live is not None:
            scores[:, ~live] = -np.inf
        ids = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        self.last_pass_rate = 1.0
        return sort_topk(scores, ids, k)


@pytest.fixture
def numpy_backend(monkeypatch) -> str:
    monkeypatch.setattr(backend, "_REGISTERED", {})  # the registration ends with the test
    backend.register_backend("numpy-scan", NumpySearcher)
    return "numpy-scan"


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_registered_backend_serves_index_search_and_cluster(numpy_backend: str, dtype: str, fresh_rng) -> None:
    corpus = fresh_rng.standard_normal((3000, 24)).astype(dtype)
    queries = fresh_rng.standard_normal((5, 24)).astype(np.float32)
    assert numpy_backend in backend.backends()
    scores, ids = faery_lib.search(corpus, queries, 20, backend=numpy_backend)
    check_topk(corpus, queries, scores, ids, 20)

    index = faery_lib.Index(corpus, numpy_backend)
    new = index.insert(fresh_rng.standard_normal((500, 24)).astype(dtype))
    index.update(new[:3], fresh_rng.standard_normal((3, 24)).astype(dtype))
    index.delete([0, 7, int(new[-1])])
    scores, ids = index.search(queries, 20)
    rows = np.concatenate([corpus, index.searcher._store.rows[3000:]])  # what the index holds now
    live = np.ones(rows.shape[0], dtype=bool)
    live[[0, 7, int(new[-1])]] = False
    assert live[ids].all()
    ref_scores, _ = reference_topk(rows[live], queries, 20)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-3)
    assert index.searcher.last_pass_rate == 1.0

    cluster = faery_lib.Cluster(corpus, instances=3, mode="sharded", backend=numpy_backend)
    try:
        np.testing.assert_array_equal(cluster.search(queries, 20)[1], faery_lib.search(corpus, queries, 20)[1])
    finally:
        cluster.close()


def test_a_registered_backend_runs_the_harness_experiments(numpy_backend: str, monkeypatch, tmp_path) -> None:
    sut = functools.partial(faery_system._faery, backend=numpy_backend)
    monkeypatch.setitem(faery_system.SUTS, ("faery", numpy_backend), (sut, ()))
    grid = tmp_path / "faery.toml"  # what the backend's name in harness/systems/faery.toml declares
    grid.write_text(f'[[grid]]\nbuild = "single_stream"\nimpl = "faery"\nbackend = "{numpy_backend}"\n'
                    'workload = "gaussian-25k-d128-fp32"\nparams = { scenario = "single-stream", k = 10, batch = 1 }\n')
    [exp] = grids.load(grid).experiments("faery", faery_system.BUILDERS)
    assert exp.id == f"faery/faery/{numpy_backend}/gaussian-25k-d128-fp32/batch=1,k=10,scenario=single-stream"
    data = gaussian(2000, 16, queries=8, seed=2)
    trial = exp.build(data, exp.params)
    result = trial.run()
    trial.check(result)
    assert trial.metrics(result)["pass_rate"] == 1.0


def test_registering_refuses_a_built_in_name_and_an_unknown_backend_names_the_choices(numpy_backend: str) -> None:
    with pytest.raises(ValueError, match="built in"):
        backend.register_backend("cpu", NumpySearcher)
    with pytest.raises(ValueError, match="numpy-scan"):
        faery_lib.Index(np.ones((4, 2), np.float32), "no-such-backend")


class _DeviceArray:
    """A stand-in for a cupy/pyopencl array: numpy slicing, `.set` of host rows, no index arrays."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, rows: slice) -> "_DeviceArray":
        assert isinstance(rows, slice), "device arrays here take slices only"
        return _DeviceArray(self.data[rows])

    def __setitem__(self, rows: slice, other: "_DeviceArray") -> None:
        assert isinstance(rows, slice) and isinstance(other, _DeviceArray)
        self.data[rows] = other.data

    def set(self, host: np.ndarray) -> None:
        assert host.dtype == self.dtype and host.shape == self.shape and host.flags.c_contiguous
        self.data[...] = host


def test_a_device_row_store_grows_by_doubling_and_writes_runs_of_rows(fresh_rng) -> None:
    corpus = fresh_rng.standard_normal((10, 4)).astype(np.float16)
    allocations: list[int] = []

    def allocate(capacity: int) -> _DeviceArray:
        allocations.append(capacity)
        return _DeviceArray(np.zeros((capacity, 4), dtype=np.uint16))  # fp16 held as its bits

    store = RowStore(corpus, allocate=allocate)
    expected = corpus.copy()
    for _ in range(6):
        more = fresh_rng.standard_normal((7, 4)).astype(np.float16)
        store.append(more)
        expected = np.concatenate([expected, more])
    ids = np.array([40, 3, 4, 5, 41, 0])
    vectors = fresh_rng.standard_normal((6, 4)).astype(np.float16)
    store.set_rows(ids, vectors)
    expected[ids] = vectors
    assert store.n_rows == 52
    np.testing.assert_array_equal(store.rows.data.view(np.float16), expected)
    assert allocations == [10, 20, 34, 62]  # the exact corpus, then twice the rows held at each growth
