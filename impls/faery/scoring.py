"""FAERY's score stage on the CPU, written once for the CPU backend and the FPGA model.

- `score_rows(block, queries, q0, q1, out)`: one row block against queries q0..q1, in
  register blocks of 2 rows x 4 queries (PERFORMANCE.md shows the kernels this beat);
- `widen_half(bits, r0, r1, out)`: fp16 rows (given as their uint16 bits: numba has no
  float16 on the CPU) widened to fp32 exactly, subnormals, Inf and NaN included: with F16C's
  vcvtph2ps where the CPU has it (an LLVM `fpext half` that the loop vectoriser turns into
  the vector instruction), else with a bit-level conversion;
- `float32_rows(...)`: a block of rows as float32, widened or as they are;
- `score_matrix(corpus, queries)`: every score, (B, N) float32, in parallel, for the FPGA
  model, which needs the whole score stream of a query before its cycle loop.

The kernels are compiled without fastmath's no-NaN/no-Inf assumptions (`FASTMATH`), so a
NaN or Inf score reaches the CPU scan's check as IEEE arithmetic makes it.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# fastmath without its no-NaN/no-Inf assumptions: the scan must see NaN and Inf scores.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}
HAS_F16C = bool(llvm_binding.get_host_cpu_features().get("f16c", False))
WIDEN_BLOCK = 64  # rows `score_matrix` widens and scores at once: a block that stays in L1/L2
MATRIX_BLOCK = 4096  # rows per parallel work item of `score_matrix`
_HALF_TO_FLOAT_SCALE = np.float32(2.0 ** 112)  # re-biases a half's exponent field inside a float32


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def score_rows(block, queries, q0, q1, out):
    """out[q - q0, r] = block[r] . queries[q], a register block of 2 rows x 4 queries at a time.

    Each step of the dimension loop loads 2 row values and 4 query values for 8 FMAs,
    so loads stay below FMAs; LLVM vectorises the loop over the dimension.
    """
    rows, d = block.shape
    r = 0
    while r + 2 <= rows:
        q = q0
        while q + 4 <= q1:
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = np.float32(0.0)
            for j in range(d):
                x = block[r, j]
                y = block[r + 1, j]
                c0 = queries[q, j]
                c1 = queries[q + 1, j]
                c2 = queries[q + 2, j]
                c3 = queries[q + 3, j]
                a0 += x * c0
                a1 += x * c1
                a2 += x * c2
                a3 += x * c3
                b0 += y * c0
                b1 += y * c1
                b2 += y * c2
                b3 += y * c3
            o = q - q0
            out[o, r], out[o + 1, r], out[o + 2, r], out[o + 3, r] = a0, a1, a2, a3
            out[o, r + 1], out[o + 1, r + 1], out[o + 2, r + 1], out[o + 3, r + 1] = b0, b1, b2, b3
            q += 4
        for q in range(q, q1):  # the last 1-3 queries of the tile
            out[q - q0, r] = dot(block[r], queries[q])
            out[q - q0, r + 1] = dot(block[r + 1], queries[q])
        r += 2
    if r < rows:  # an odd last row
        for q in range(q0, q1):
            out[q - q0, r] = dot(block[r], queries[q])


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def dot(a, b):
    acc = np.float32(0.0)
    for j in range(a.shape[0]):
        acc += a[j] * b[j]
    return acc


@intrinsic
def _half_bits_to_float(typingctx, bits):
    """float32 of a float16 given as its uint16 bits: LLVM's exact `fpext half` (vcvtph2ps with F16C)."""
    if bits != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.uint16), codegen


@numba.njit(cache=True, nogil=True)
def widen_half_f16c(src_bits, r0, r1, out):
    """float16 rows r0..r1 (as uint16 bits) -> out (float32), vectorised into vcvtph2ps."""
    d = src_bits.shape[1]
    for i in range(r1 - r0):
        for j in range(d):
            out[i, j] = _half_bits_to_float(src_bits[r0 + i, j])


@numba.njit(cache=True, nogil=True)
def widen_half_bits(src_bits, r0, r1, out):
    """The same conversion without F16C, from the bits (LLVM would call a runtime routine).

    Moving a half's exponent+mantissa up 13 bits gives a float32 whose value is the
    half's times 2**-112 (normal and subnormal alike); one multiply restores it.
    An all-ones exponent (Inf, NaN) is set to float32's all-ones exponent instead.
    """
    d = src_bits.shape[1]
    bits = out.view(np.uint32)
    for i in range(r1 - r0):
        for j in range(d):
            h = np.uint32(src_bits[r0 + i, j])
            w = ((h & np.uint32(0x7FFF)) << np.uint32(13)) | ((h & np.uint32(0x8000)) << np.uint32(16))
            if h & np.uint32(0x7C00) == np.uint32(0x7C00):
                w |= np.uint32(0x7F800000)
            bits[i, j] = w
    for i in range(r1 - r0):
        for j in range(d):
            out[i, j] *= _HALF_TO_FLOAT_SCALE


widen_half = widen_half_f16c if HAS_F16C else widen_half_bits


@numba.njit(cache=True, nogil=True)
def float32_rows(corpus32, corpus16, is_half, r0, r1, widened):
    """Rows r0..r1 of the corpus as float32: a view of corpus32, or (is_half) the uint16 bits of
    corpus16's rows widened into `widened`, which holds at least r1 - r0 rows."""
    if is_half:
        widen_half(corpus16, r0, r1, widened)
        return widened[:r1 - r0]
    return corpus32[r0:r1]


def split_by_dtype(corpus: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(corpus32, corpus16, is_half) for `float32_rows`: the corpus on its side, an empty array on the other."""
    empty = np.empty((0, corpus.shape[1]), dtype=np.float32 if corpus.dtype == np.float16 else np.uint16)
    if corpus.dtype == np.float16:
        return empty, corpus.view(np.uint16), True
    return corpus, empty, False


@numba.njit(cache=True, parallel=True)
def _score_matrix(corpus32, corpus16, is_half, queries, out):
    """out[q, i] = corpus[i] . queries[q] (the corpus as `float32_rows` takes it)."""
    n = corpus16.shape[0] if is_half else corpus32.shape[0]
    b, d = queries.shape
    for task in numba.prange((n + MATRIX_BLOCK - 1) // MATRIX_BLOCK):
        widened = np.empty((WIDEN_BLOCK, d), dtype=np.float32)
        for r0 in range(task * MATRIX_BLOCK, min(n, (task + 1) * MATRIX_BLOCK), WIDEN_BLOCK):
            r1 = min(n, r0 + WIDEN_BLOCK)
            score_rows(float32_rows(corpus32, corpus16, is_half, r0, r1, widened), queries, 0, b, out[:, r0:r1])


def score_matrix(corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Every score of float32 `queries` (B, d) against a float32 or float16 corpus (N, d): (B, N) float32."""
    out = np.empty((queries.shape[0], corpus.shape[0]), dtype=np.float32)
    _score_matrix(*split_by_dtype(corpus), queries, out)
    return out
