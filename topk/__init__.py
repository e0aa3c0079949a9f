"""Exact top-K selection primitives, shared by FAERY (`impls/faery`) and the Faiss-like baseline
(`baselines/faiss_topk`).

They live in a package of their own, below both, because implementations and baselines must not
import each other; what both need is written once here.  The name says what every piece does: it
keeps or orders the k best (score, id) pairs, with the one order every searcher returns (higher
score first, then lower id).

- `kbest.heap_replace_root`: the sift-down of a k-best min-heap (numba);
- `kbest.sort_topk`: the best k of candidate lists, sorted (numpy);
- `bitonic.cuh`: that order and the bitonic sorting network in shared memory (CUDA), included by
  `impls/faery/faery_gpu.cu` and `baselines/faiss_topk/block_select.cu`; `cuda_source` gives a
  kernel file's text with the header pasted in.
"""

from __future__ import annotations

from pathlib import Path

from topk.kbest import heap_replace_root, sort_topk

CUDA_INCLUDE_DIR = Path(__file__).parent
_HEADERS = ("bitonic.cuh",)

__all__ = ["CUDA_INCLUDE_DIR", "cuda_source", "heap_replace_root", "sort_topk"]


def cuda_source(path: Path) -> str:
    """The CUDA source at `path` with each `#include "<header of this package>"` replaced by the header's text.

    NVRTC then needs no include path, and cupy's kernel cache, keyed by the source text it is
    given, sees a change to the header (it does not read included files).  nvcc compiles the
    files themselves with `-I CUDA_INCLUDE_DIR`.
    """
    text = path.read_text()
    for header in _HEADERS:
        text = text.replace(f'#include "{header}"', (CUDA_INCLUDE_DIR / header).read_text())
    return text
