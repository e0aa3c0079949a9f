"""Embedding corpora for exact top-K inner-product retrieval.

- `EmbeddingSet`: a corpus (N x d, float32 or float16) and its queries (B x d, float32).
- Validation shared by every retrieval implementation (`as_corpus`, `as_queries`, `check_k`,
  `check_score_range`: scores are float32, so inputs whose inner products could
  overflow it are refused rather than ranked as Inf).
- Seeded generators (Gaussian, clustered mixture of Gaussians) and the named workloads.
- Loaders for `.npy`, TEXMEX `.fvecs`/`.bvecs`/`.ivecs` and ann-benchmarks HDF5.
- The plain reference (`reference_topk`) and the agreement check (`check_topk`).
"""

from __future__ import annotations

import os
import tokenize
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.catalog import Workload, register
from workloads.limits import quote, require_memory

FLOAT_DTYPES = (np.float32, np.float16)
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Scores are accumulated in float32.  By Cauchy-Schwarz every partial sum of q . c
# is at most |q| |c|; half of float32's range leaves room for rounding in the
# accumulation (relative error below d * 2^-24, under 1/16 for d <= 2^20).
SCORE_LIMIT = FLOAT32_MAX / 2


@dataclass(frozen=True)
class EmbeddingSet:
    """A corpus to search and the queries to search it with."""

    corpus: np.ndarray
    queries: np.ndarray
    name: str = ""

    @property
    def n(self) -> int:
        return self.corpus.shape[0]

    @property
    def d(self) -> int:
        return self.corpus.shape[1]


# --------------------------------------------------------------------------- validation

def as_corpus(array: object, name: str = "corpus") -> np.ndarray:
    """A C-contiguous float32/float16 (N, d) array with N >= 1, or ValueError.

    float64 and integer input is converted to float32; NaN and Inf, and values
    beyond float32's range, are refused.
    """
    arr = _as_float_matrix(array, name)
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no embeddings")
    return arr


def as_queries(array: object, dim: int, name: str = "queries") -> np.ndarray:
    """A C-contiguous float32 (B, dim) array; a single 1-D query becomes (1, dim)."""
    arr = np.asarray(array) if not isinstance(array, np.ndarray) else array
    if arr.ndim == 1:
        arr = arr[None, :]
    arr = _as_float_matrix(arr, name)
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no query vectors")
    if arr.shape[1] != dim:
        raise ValueError(f"{name} have dimension {arr.shape[1]}, but the corpus has dimension {dim}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def max_row_norm(rows: np.ndarray) -> float:
    """The largest Euclidean norm of a row of a 2-D array.

    Summed in float32 where no square can overflow it (|x| <= 2^50: d * 2^100 fits
    for any d up to 2^20), in float64 beyond, so it is cheap on ordinary embeddings.
    """
    peak = max(float(rows.max()), -float(rows.min()))
    wide = np.float64 if peak > 2.0**50 else np.promote_types(rows.dtype, np.float32)
    return max(float(np.sqrt(np.einsum("ij,ij->i", chunk, chunk, dtype=wide).max())) for chunk in _row_chunks(rows))


def check_score_range(corpus_norm: float, queries: np.ndarray, corpus_name: str = "corpus",
                      queries_name: str = "queries") -> None:
    """ValueError when a score (or a partial sum of one) could exceed float32's range.

    `corpus_norm` is the largest row norm of the corpus (`max_row_norm`), an upper
    bound on it for a corpus that changes; the bound is |q| |c| (Cauchy-Schwarz).
    """
    query_norm = max_row_norm(queries)
    if corpus_norm * query_norm > SCORE_LIMIT:
        raise ValueError(f"scores would exceed float32's range: the largest row norm of {corpus_name} "
                         f"({corpus_norm:.3g}) times that of {queries_name} ({query_norm:.3g}) is "
                         f"{corpus_norm * query_norm:.3g}, beyond {SCORE_LIMIT:.3g}; scale the embeddings down")


def check_k(k: object, n: int, limit: int | None = None, who: str = "") -> int:
    """k as an int with 1 <= k <= n (and k <= limit, naming it), or ValueError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, not {k!r}")
    k = int(k)
    if k <= 0:
        raise ValueError(f"k must be positive, got k={k}")
    if k > n:
        raise ValueError(f"k={k} is larger than the corpus (N={n})")
    if limit is not None and k > limit:
        raise ValueError(f"k={k} exceeds the limit of {who or 'this backend'}: k <= {limit}")
    return k


def _as_float_matrix(array: object, name: str) -> np.ndarray:
    try:
        arr = np.asarray(array)
    except Exception as exc:  # e.g. ragged nested lists
        raise ValueError(f"{name} cannot be read as an array: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows of embeddings), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has dimension 0")
    if arr.dtype not in FLOAT_DTYPES:
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name} has dtype {arr.dtype}, which cannot be converted to float32")
        if np.issubdtype(arr.dtype, np.floating):
            _check_finite(arr, name)  # before the cast, which would turn large values into Inf
            _check_float32_range(arr, name)
        arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    _check_finite(arr, name)
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    if not _all_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} holds NaN or Inf (first at row {bad[0]}, column {bad[1]})")


def _check_float32_range(arr: np.ndarray, name: str) -> None:
    for start in range(0, arr.shape[0], 1 << 16):
        beyond = np.abs(arr[start:start + (1 << 16)]) > FLOAT32_MAX
        if beyond.any():
            row, column = np.argwhere(beyond)[0]
            value = arr[start + row, column]
            raise ValueError(f"{name} exceeds float32's range: {value:.6g} at row {start + row}, column {column} "
                             f"(float32 holds magnitudes up to {FLOAT32_MAX:.6g})")


def _all_finite(arr: np.ndarray, rows_per_chunk: int = 1 << 16) -> bool:
    # Chunked so a 10M-row corpus is checked without a 10M-row boolean temporary.
    return all(np.isfinite(arr[i:i + rows_per_chunk]).all() for i in range(0, arr.shape[0], rows_per_chunk))


# --------------------------------------------------------------------------- reference and agreement

def reference_topk(corpus: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product in float64, ties broken by lower id. Plain and slow on purpose."""
    corpus = as_corpus(corpus)
    queries = as_queries(queries, corpus.shape[1])
    k = check_k(k, corpus.shape[0])
    scores = np.empty((queries.shape[0], k))
    ids = np.empty((queries.shape[0], k), dtype=np.int64)
    ids_all = np.arange(corpus.shape[0])
    for row, q in enumerate(queries.astype(np.float64)):
        s = np.concatenate([chunk.astype(np.float64) @ q for chunk in _row_chunks(corpus)])
        order = np.lexsort((ids_all, -s))[:k]
        scores[row], ids[row] = s[order], order
    return scores, ids


def check_topk(corpus: np.ndarray, queries: np.ndarray, scores: np.ndarray, ids: np.ndarray,
               k: int, rtol: float | None = None) -> None:
    """Assert that (scores, ids) is an exact top-k of `queries` against `corpus`.

    Ids may differ from the reference only between near-equal scores ("ties aside"):
    each returned id must be distinct, its true score must equal the returned score,
    and the returned score list must equal the reference's, all within a tolerance
    scaled to the scores' magnitude and the storage precision.
    """
    corpus = np.asarray(corpus)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    ref_scores, _ = reference_topk(corpus, queries, k)
    assert scores.shape == ids.shape == (queries.shape[0], k), f"shape {scores.shape}, {ids.shape}"
    if rtol is None:
        rtol = 2e-3 if corpus.dtype == np.float16 else 1e-5
    scale = max(np.abs(chunk.astype(np.float64)).sum(axis=1).max() for chunk in _row_chunks(corpus))
    scale *= np.abs(queries).max()
    atol = rtol * max(scale, 1e-30)
    for row in range(queries.shape[0]):
        row_ids = ids[row]
        assert len(np.unique(row_ids)) == k, f"query {row}: duplicate ids in the result"
        assert np.all((row_ids >= 0) & (row_ids < corpus.shape[0])), f"query {row}: id out of range"
        true = corpus[row_ids].astype(np.float64) @ queries[row].astype(np.float64)
        assert np.all(np.diff(scores[row]) <= atol), f"query {row}: scores not sorted descending"
        np.testing.assert_allclose(scores[row], true, rtol=0, atol=atol,
                                   err_msg=f"query {row}: returned scores are not the ids' scores")
        np.testing.assert_allclose(scores[row], ref_scores[row], rtol=0, atol=atol,
                                   err_msg=f"query {row}: not the exact top-{k}")


def _row_chunks(corpus: np.ndarray, rows: int = 1 << 18):
    """Row blocks, so float64 work on a 10M-row corpus never holds a float64 copy of all of it."""
    return (corpus[i:i + rows] for i in range(0, corpus.shape[0], rows))


# --------------------------------------------------------------------------- generators

def gaussian(n: int, d: int, dtype: str = "float32", queries: int = 256, seed: int = 0) -> EmbeddingSet:
    """i.i.d. standard-normal corpus and queries."""
    rng = np.random.default_rng(seed)
    corpus = _normal_rows(rng, n, d, dtype)
    q = rng.standard_normal((queries, d), dtype=np.float32)
    return EmbeddingSet(corpus, q, f"gaussian-{n}x{d}-{dtype}")


def clustered(n: int, d: int, dtype: str = "float32", clusters: int = 256, spread: float = 0.35,
              queries: int = 256, seed: int = 0) -> EmbeddingSet:
    """A mixture of Gaussians: `clusters` unit-norm centres, each point a centre plus noise.

    Items near one another have near-equal scores, so the running K-th best rises
    in steps rather than smoothly, as it does on real embeddings.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    corpus = np.empty((n, d), dtype=np.dtype(dtype))
    noise = spread / np.sqrt(d)
    for start in range(0, n, 1 << 18):  # chunked: bounded temporaries at 10M rows
        stop = min(n, start + (1 << 18))
        label = rng.integers(0, clusters, stop - start)
        corpus[start:stop] = centres[label] + noise * rng.standard_normal((stop - start, d), dtype=np.float32)
    label = rng.integers(0, clusters, queries)
    q = (centres[label] + noise * rng.standard_normal((queries, d), dtype=np.float32)).astype(np.float32)
    return EmbeddingSet(corpus, q, f"clustered-{n}x{d}-{dtype}")


def _normal_rows(rng: np.random.Generator, n: int, d: int, dtype: str) -> np.ndarray:
    out = np.empty((n, d), dtype=np.dtype(dtype))
    for start in range(0, n, 1 << 18):
        stop = min(n, start + (1 << 18))
        out[start:stop] = rng.standard_normal((stop - start, d), dtype=np.float32)
    return out


# --------------------------------------------------------------------------- loaders

def load_embeddings(path: str | os.PathLike, dataset: str = "train") -> np.ndarray:
    """Load a matrix of embeddings from `.npy`, `.fvecs`, `.bvecs`, `.ivecs` or ann-benchmarks `.hdf5`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = _load_npy(path)
    elif suffix in (".fvecs", ".bvecs", ".ivecs"):
        arr = load_vecs(path)
    elif suffix in (".hdf5", ".h5"):
        arr = load_hdf5(path, dataset)
    else:
        raise ValueError(f"{path}: unknown embedding format {suffix!r} (expected .npy, .fvecs, .bvecs, .ivecs, .hdf5)")
    return as_corpus(arr, name=str(path))


def _load_npy(path: Path) -> np.ndarray:
    try:  # mapped, so a header that declares more than the file holds fails here, before any allocation
        return np.load(path, mmap_mode="r", allow_pickle=False)
    # numpy re-tokenises a damaged header as Python, so a tokenizer or syntax error means the same
    except (ValueError, EOFError, OSError, SyntaxError, tokenize.TokenError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc or type(exc).__name__})") from None


_VECS_ELEMENT = {".fvecs": np.dtype("<f4"), ".bvecs": np.dtype("u1"), ".ivecs": np.dtype("<i4")}


def load_vecs(path: str | os.PathLike) -> np.ndarray:
    """Read a TEXMEX file: each record is a little-endian int32 dimension, then the vector."""
    path = Path(path)
    elem = _VECS_ELEMENT.get(path.suffix.lower())
    if elem is None:
        raise ValueError(f"{path}: not a .fvecs, .bvecs or .ivecs file")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < 4:
        raise ValueError(f"{path}: truncated: {raw.size} bytes is shorter than one record header")
    dim = int(raw[:4].view("<i4")[0])
    if dim <= 0 or dim > 1 << 20:
        raise ValueError(f"{path}: record 0 declares dimension {dim}, which is not a valid dimension")
    record = 4 + dim * elem.itemsize
    if raw.size % record:
        raise ValueError(f"{path}: truncated or malformed: {raw.size} bytes is not a whole number of "
                         f"{record}-byte records (dimension {dim})")
    records = raw.reshape(-1, record)
    dims = records[:, :4].copy().view("<i4").ravel()
    bad = np.flatnonzero(dims != dim)
    if bad.size:
        raise ValueError(f"{path}: record {bad[0]} declares dimension {dims[bad[0]]}, but record 0 declares {dim}")
    return records[:, 4:].copy().view(elem).reshape(-1, dim)


def load_hdf5(path: str | os.PathLike, dataset: str = "train") -> np.ndarray:
    """Read one dataset ("train", "test", "neighbors") of an ann-benchmarks HDF5 file."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                raise ValueError(f"{path}: no dataset {dataset!r} (it has {quote(', '.join(f.keys()), 200)})")
            data = f[dataset]
            nbytes = data.size * data.dtype.itemsize
            # A dataset with no chunk written reads as its fill value, whatever shape it declares.
            if nbytes and data.id.get_storage_size() == 0:
                raise ValueError(f"{path}: dataset {dataset!r} declares shape {data.shape} but holds no data")
            require_memory(nbytes, f"{path}: dataset {dataset!r}")
            return np.asarray(data)
    except (OSError, RuntimeError) as exc:  # not HDF5, or damaged inside
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None


def load_embedding_set(corpus_path: str | os.PathLike, queries_path: str | os.PathLike | None = None,
                       queries: int = 256, seed: int = 0) -> EmbeddingSet:
    """A user's corpus file, with queries from a second file (or ann-benchmarks' "test"), or sampled rows."""
    corpus_path = Path(corpus_path)
    corpus = load_embeddings(corpus_path)
    if queries_path is not None:
        q = load_embeddings(queries_path, dataset="test")
    elif corpus_path.suffix.lower() in (".hdf5", ".h5"):
        q = load_embeddings(corpus_path, dataset="test")
    else:
        rows = np.random.default_rng(seed).choice(corpus.shape[0], min(queries, corpus.shape[0]), replace=False)
        q = corpus[np.sort(rows)]
    queries_name = str(queries_path or corpus_path)
    q = as_queries(q, corpus.shape[1], name=queries_name)
    check_score_range(max_row_norm(corpus), q, str(corpus_path), queries_name)
    return EmbeddingSet(corpus, q, corpus_path.stem)


# --------------------------------------------------------------------------- named workloads

def _size_label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def _register_synthetic(kind: str, n: int, d: int, dtype: str, tier: str) -> None:
    short = {"float32": "fp32", "float16": "fp16"}[dtype]
    name = f"{kind}-{_size_label(n)}-d{d}-{short}"
    make = gaussian if kind == "gaussian" else clustered
    what = ("i.i.d. standard normal" if kind == "gaussian"
            else "mixture of 256 Gaussians around unit-norm centres")
    register(Workload(
        name=name, kind="embeddings", tier=tier,
        description=f"{n:,} x {d} {dtype} corpus, {what}; 256 float32 queries from the same distribution",
        load=lambda: make(n, d, dtype, seed=n + d),
        size={"n": n, "d": d, "bytes": n * d * np.dtype(dtype).itemsize},
    ))


for _kind in ("gaussian", "clustered"):
    for _n in (25_000, 100_000, 400_000):
        _register_synthetic(_kind, _n, 128, "float32", "quick")
    _register_synthetic(_kind, 100_000, 128, "float16", "quick")
    for _n in (1_000_000, 4_000_000, 10_000_000):
        for _d in (64, 128):
            for _dtype in ("float32", "float16"):
                _register_synthetic(_kind, _n, _d, _dtype, "full")
