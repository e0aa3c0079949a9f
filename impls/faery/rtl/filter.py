"""The filter against the running K-th best, with its buffer.

Each cycle it takes one beat of N_E scores from the read buffer, keeps the live scores
strictly above the K-th best the sorter will hold after this cycle (all of them while
fewer than k are kept), and writes the survivors, in lane order, into its buffer (a
`Fifo` of `filter_depth` scores, N_E writes and one read a cycle).  When the buffer,
after this cycle's read by the sorter, has fewer than N_E free slots, it takes no beat
and counts a stall: so a score is never dropped for want of room.  The sorter takes the
buffer's head every cycle it is not empty.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Signal, signed

from impls.faery.rtl.fifo import Fifo
from impls.faery.rtl.params import SCORE_BITS, RtlParams


class Filter(Elaboratable):
    def __init__(self, p: RtlParams) -> None:
        self.p = p
        self.beat_ready = Signal()                     # the read buffer holds a beat
        self.scores = [Signal(signed(SCORE_BITS), name=f"in_score{l}") for l in range(p.lanes)]
        self.live = Signal(p.lanes)
        self.beat = Signal(p.beat_bits)
        self.threshold = Signal(signed(SCORE_BITS))
        self.threshold_valid = Signal()
        self.take = Signal()                           # this cycle the beat is filtered
        self.stall = Signal()                          # a beat waits for room in the buffer
        self.kept = Signal(range(p.lanes + 1))         # scores kept this cycle
        self.fill_next = Signal(range(p.filter_depth + 1))
        self.pop = Signal()                            # the sorter takes the head this cycle
        self.head_score = Signal(signed(SCORE_BITS))
        self.head_id = Signal(p.id_bits)
        self.empty = Signal()
        self.fifo = Fifo(SCORE_BITS + p.id_bits, p.filter_depth, p.lanes)

    def elaborate(self, platform) -> Module:
        m = Module()
        p, fifo = self.p, self.fifo
        m.submodules.buffer = fifo
        m.d.comb += [self.pop.eq(fifo.level > 0), fifo.r_en.eq(self.pop), self.empty.eq(fifo.level == 0),
                     self.head_score.eq(fifo.r_data[:SCORE_BITS]), self.head_id.eq(fifo.r_data[SCORE_BITS:])]
        room = Signal()
        m.d.comb += [room.eq(p.filter_depth - fifo.level + self.pop >= p.lanes),
                     self.take.eq(self.beat_ready & room), self.stall.eq(self.beat_ready & ~room)]
        kept = 0
        for lane in range(p.lanes):
            keep = Signal(name=f"keep{lane}")
            m.d.comb += [keep.eq(self.take & self.live[lane]
                                 & (~self.threshold_valid | (self.scores[lane] > self.threshold))),
                         fifo.w_en[lane].eq(keep),
                         fifo.w_data[lane].eq(Cat(self.scores[lane], self.beat * p.lanes + lane))]
            kept = kept + keep
        m.d.comb += [self.kept.eq(kept), self.fill_next.eq(fifo.level - self.pop + kept)]
        return m
