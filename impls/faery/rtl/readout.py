"""The sorted read-out: from the cycle after the scan's last insertion, the k results
leave one per cycle, best first.

In each cycle of the read-out the output is the sorter's head (cell 0, a register) and
the sorter's cells shift up by one; `out_last` marks the k-th result.  The first cycle
is the one in which the scan is seen to be over, so the read-out takes k cycles.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Signal, signed

from impls.faery.rtl.params import SCORE_BITS


class Readout(Elaboratable):
    def __init__(self, k: int, id_bits: int) -> None:
        self.k = k
        self.start = Signal()                 # a new query: wait for its scan
        self.go = Signal()                    # the scan is over (every score is in the sorter)
        self.head_score = Signal(signed(SCORE_BITS))
        self.head_id = Signal(id_bits)
        self.shift_out = Signal()
        self.out_valid = Signal()
        self.out_last = Signal()
        self.out_score = Signal(signed(SCORE_BITS))
        self.out_id = Signal(id_bits)
        self.done = Signal()                  # idle: before the first query and after each

    def elaborate(self, platform) -> Module:
        m = Module()
        count = Signal(range(self.k))         # results already out
        m.d.comb += [self.out_score.eq(self.head_score), self.out_id.eq(self.head_id),
                     self.out_valid.eq(self.shift_out), self.out_last.eq(self.shift_out & (count == self.k - 1))]
        with m.FSM(name="readout"):
            with m.State("IDLE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.start):
                    m.next = "SCAN"
            with m.State("SCAN"):
                with m.If(self.go & ~self.start):
                    m.d.comb += self.shift_out.eq(1)
                    m.d.sync += count.eq(1)
                    m.next = "IDLE" if self.k == 1 else "READ"
            with m.State("READ"):
                m.d.comb += self.shift_out.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If(count == self.k - 1):
                    m.next = "IDLE"
        return m
