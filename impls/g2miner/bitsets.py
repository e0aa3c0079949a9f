"""The CPU bitset library of the local-graph rewrite (`analyser.LocalGraph`), for numba kernels.

A clique search's level-2 set S (the common out-neighbours of v0 and v1, in
ascending order) becomes a local graph: row a is a bitset over S's indices
holding the elements of S that S[a] points to.  On the degree-ordered DAG
every arc points to a lower id, so row a's bits all lie below a.  Deeper
levels are then ANDs of rows, and the last level is a popcount.

Rows are uint64 words, row a in `rows[a, :(a >> 6) + 1]`; `popcount` and
`lowest_bit` are LLVM's ctpop and cttz (one instruction each on x86-64).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from impls.g2miner.setops import _SEARCH_RATIO, gallop


@intrinsic
def popcount(typingctx, x):
    """Set bits of a uint64 (an int64)."""
    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, [args[0]])
    return types.int64(types.uint64), codegen


@intrinsic
def lowest_bit(typingctx, x):
    """Index of the lowest set bit of a non-zero uint64 (an int64)."""
    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.cttz", [ir.IntType(64), ir.IntType(1)])
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])
    return types.int64(types.uint64), codegen


def words_for(num_bits: int) -> int:
    """uint64 words a row of num_bits bits takes."""
    return (num_bits + 63) >> 6


@njit(cache=True, inline="always")
def _set_bit(row: np.ndarray, bit: int) -> None:
    row[bit >> 6] |= np.uint64(1) << np.uint64(bit & 63)


@njit(cache=True)
def build_rows(s: np.ndarray, indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> None:
    """Row a of `rows` = the indices b < a with s[b] in N+(s[a]), for every a of s.

    Each row is the intersection of s[:a] with an out-list, by merge or, for
    lengths more than _SEARCH_RATIO apart, by galloping search in the longer
    list, so each match's index in s is known where it is found.
    """
    for a in range(s.shape[0]):
        row = rows[a]
        for w in range((a >> 6) + 1):
            row[w] = 0
        x = s[a]
        lo, hi = indptr[x], indptr[x + 1]
        nb = hi - lo
        if a == 0 or nb == 0:
            continue
        if nb > _SEARCH_RATIO * a:  # search each s[b] in the out-list
            j = lo
            for b in range(a):
                j = gallop(indices, j, hi, s[b])
                if j == hi:
                    break
                if indices[j] == s[b]:
                    _set_bit(row, b)
        elif a > _SEARCH_RATIO * nb:  # search each out-neighbour in s[:a]
            b = 0
            for j in range(lo, hi):
                b = gallop(s, b, a, indices[j])
                if b == a:
                    break
                if s[b] == indices[j]:
                    _set_bit(row, b)
        else:
            b, j = 0, lo
            while b < a and j < hi:
                y, z = s[b], indices[j]
                if y == z:
                    _set_bit(row, b)
                b += y <= z
                j += z <= y


@njit(cache=True, inline="always")
def and_count(left: np.ndarray, right: np.ndarray, num_words: int) -> int:
    """Set bits of left & right over their first num_words words."""
    n = 0
    for w in range(num_words):
        n += popcount(left[w] & right[w])
    return n


@njit(cache=True, inline="always")
def and_into(left: np.ndarray, right: np.ndarray, num_words: int, out: np.ndarray) -> None:
    """out[:num_words] = left & right, word by word."""
    for w in range(num_words):
        out[w] = left[w] & right[w]
