"""K-selection: a shift-register insertion sorter taking one score per cycle.

Cell 0 holds the best score, cell k-1 the k-th best; empty cells sit at the end.  Each
cycle the incoming score is compared with every cell at once; the cells below the point
where it belongs shift down by one and it takes that place, so the cells stay sorted and
the insertion completes in the cycle the score is taken.  Scores arrive in scan order
(increasing id), so a score equal to a kept one goes after it: ties keep the lower id
without comparing ids.  The next k-th best (cell k-1 after this cycle's insertion) is
given to the filter within the cycle.  Read-out shifts the cells up, best first.

This is not Matsumoto, Nakano & Ito's O(log K)-stage sorter (which keeps most of its
4.5K words in block RAM): it spends one comparator and one multiplexer per cell, in
registers and LUTs, and needs no pipeline stages.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Signal, signed

from impls.faery.rtl.params import SCORE_BITS


class Sorter(Elaboratable):
    def __init__(self, k: int, id_bits: int) -> None:
        self.k = k
        self.in_valid = Signal()
        self.in_score = Signal(signed(SCORE_BITS))
        self.in_id = Signal(id_bits)
        self.shift_out = Signal()            # read-out: cell i takes cell i+1
        self.threshold = Signal(signed(SCORE_BITS))   # the k-th best after this cycle
        self.threshold_valid = Signal()               # ... once k scores are kept
        self.head_valid = Signal()
        self.head_score = Signal(signed(SCORE_BITS))
        self.head_id = Signal(id_bits)
        self._id_bits = id_bits

    def elaborate(self, platform) -> Module:
        m = Module()
        k = self.k
        valid = [Signal(name=f"valid{i}") for i in range(k)]
        score = [Signal(signed(SCORE_BITS), name=f"score{i}") for i in range(k)]
        ident = [Signal(self._id_bits, name=f"id{i}") for i in range(k)]
        # before[i]: the new score belongs at or above cell i (monotone over i: cells are sorted).
        before = [Signal(name=f"before{i}") for i in range(k)]
        for i in range(k):
            m.d.comb += before[i].eq(self.in_valid & (~valid[i] | (self.in_score > score[i])))
        nxt_valid = [Signal(name=f"next_valid{i}") for i in range(k)]
        nxt_score = [Signal(signed(SCORE_BITS), name=f"next_score{i}") for i in range(k)]
        nxt_id = [Signal(self._id_bits, name=f"next_id{i}") for i in range(k)]
        for i in range(k):
            cell = Cat(nxt_valid[i], nxt_score[i], nxt_id[i])
            with m.If(self.shift_out):
                if i + 1 < k:
                    m.d.comb += cell.eq(Cat(valid[i + 1], score[i + 1], ident[i + 1]))
                else:
                    m.d.comb += cell.eq(0)
            if i > 0:
                with m.Elif(before[i - 1]):
                    m.d.comb += cell.eq(Cat(valid[i - 1], score[i - 1], ident[i - 1]))
            with m.Elif(before[i]):
                m.d.comb += cell.eq(Cat(1, self.in_score, self.in_id))
            with m.Else():
                m.d.comb += cell.eq(Cat(valid[i], score[i], ident[i]))
            m.d.sync += [valid[i].eq(nxt_valid[i]), score[i].eq(nxt_score[i]), ident[i].eq(nxt_id[i])]
        m.d.comb += [self.threshold.eq(nxt_score[k - 1]), self.threshold_valid.eq(nxt_valid[k - 1]),
                     self.head_valid.eq(valid[0]), self.head_score.eq(score[0]), self.head_id.eq(ident[0])]
        return m
