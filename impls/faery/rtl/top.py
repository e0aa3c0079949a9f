"""The accelerator: the blocks joined as the cycle model's dataflow, with its counters.

    HBM channels -> score units -> read buffer -> filter -> filter buffer -> sorter -> read-out
    (source)        (N_E, int8)    (beats)        (> K-th)  (FIFO)           (1/cycle)  (k cycles)

`Accelerator` is what is synthesised: the beat memory is outside it (`mem_addr` out,
`mem_data` in).  While `done` (idle), a query starts with `start` held for one cycle
with `query` and `n_beats` set; `cycle` counts cycles from the start (1 in the first), and the k results
appear on `out_*` with `out_last` on the k-th, in the cycle whose number `cycle` then
holds: the run's total cycles.  `stalls`, `passed` and `peak_fill` are the filter's
stall cycles, scores passed and the filter buffer's peak occupancy.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Signal, signed

from impls.faery.rtl.fifo import Fifo
from impls.faery.rtl.filter import Filter
from impls.faery.rtl.params import EMBEDDING_BITS, SCORE_BITS, RtlParams
from impls.faery.rtl.readout import Readout
from impls.faery.rtl.score import ScoreUnits
from impls.faery.rtl.sorter import Sorter
from impls.faery.rtl.source import CorpusSource

COUNTER_BITS = 32


class Accelerator(Elaboratable):
    def __init__(self, p: RtlParams) -> None:
        self.p = p
        self.start = Signal()
        self.query = Signal(p.dim * EMBEDDING_BITS)
        self.n_beats = Signal(p.beat_bits)
        self.source = CorpusSource(p, COUNTER_BITS)
        self.mem_addr = self.source.mem_addr
        self.mem_data = self.source.mem_data
        self.out_valid = Signal()
        self.out_last = Signal()
        self.out_score = Signal(signed(SCORE_BITS))
        self.out_id = Signal(p.id_bits)
        self.done = Signal()
        self.cycle = Signal(COUNTER_BITS)
        self.stalls = Signal(COUNTER_BITS)
        self.passed = Signal(COUNTER_BITS)
        self.peak_fill = Signal(range(p.filter_depth + 1))

    def ports(self) -> list[Signal]:
        return [self.start, self.query, self.n_beats, self.mem_addr, self.mem_data, self.out_valid, self.out_last,
                self.out_score, self.out_id, self.done, self.cycle, self.stalls, self.passed, self.peak_fill]

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self.p
        m.submodules.source = source = self.source
        m.submodules.score = score = ScoreUnits(p.lanes, p.dim, p.beat_bits)
        meta_bits = p.lanes + p.beat_bits
        m.submodules.read_buffer = reads = Fifo(p.lanes * SCORE_BITS + meta_bits, p.read_beats)
        m.submodules.filter = filt = Filter(p)
        m.submodules.sorter = sorter = Sorter(p.k, p.id_bits)
        m.submodules.readout = readout = Readout(p.k, p.id_bits)

        query = Signal.like(self.query)
        with m.If(self.start):
            m.d.sync += query.eq(self.query)

        # The memory side (source and score pipeline) advances when the read buffer, after
        # this cycle's read by the filter, has room for a beat, and HBM does not hold.
        advance = Signal()
        m.d.comb += [
            source.start.eq(self.start), source.n_beats.eq(self.n_beats), source.cycle.eq(self.cycle),
            advance.eq(~self.start & ~readout.done & (reads.level - filt.take < p.read_beats) & ~source.hold),
            source.enable.eq(advance),
            score.enable.eq(advance), score.in_valid.eq(source.out_valid), score.in_data.eq(source.out_data),
            score.in_live.eq(source.out_live), score.in_beat.eq(source.out_beat), score.query.eq(query),
            reads.w_en[0].eq(advance & score.out_valid),
            reads.w_data[0].eq(Cat(*score.out_scores, score.out_live, score.out_beat)),
            reads.r_en.eq(filt.take),
            filt.beat_ready.eq(reads.level > 0),
            filt.live.eq(reads.r_data[p.lanes * SCORE_BITS:p.lanes * SCORE_BITS + p.lanes]),
            filt.beat.eq(reads.r_data[p.lanes * SCORE_BITS + p.lanes:]),
            *(filt.scores[lane].eq(reads.r_data[lane * SCORE_BITS:(lane + 1) * SCORE_BITS].as_signed())
              for lane in range(p.lanes)),
            sorter.in_valid.eq(filt.pop), sorter.in_score.eq(filt.head_score), sorter.in_id.eq(filt.head_id),
            filt.threshold.eq(sorter.threshold), filt.threshold_valid.eq(sorter.threshold_valid),
        ]

        # The scan is over once every beat has been filtered and the filter buffer is empty.
        taken = Signal(p.beat_bits)
        with m.If(filt.take):
            m.d.sync += taken.eq(taken + 1)
        m.d.comb += [readout.start.eq(self.start), readout.go.eq((taken == source.total_beats) & filt.empty),
                     readout.head_score.eq(sorter.head_score), readout.head_id.eq(sorter.head_id),
                     sorter.shift_out.eq(readout.shift_out),
                     self.out_valid.eq(readout.out_valid), self.out_last.eq(readout.out_last),
                     self.out_score.eq(readout.out_score), self.out_id.eq(readout.out_id), self.done.eq(readout.done)]

        # Counters.
        with m.If(self.start):
            m.d.sync += [self.cycle.eq(1), self.stalls.eq(0), self.passed.eq(0), self.peak_fill.eq(0), taken.eq(0)]
        with m.Elif(~readout.done):
            m.d.sync += [self.cycle.eq(self.cycle + 1), self.stalls.eq(self.stalls + filt.stall),
                         self.passed.eq(self.passed + filt.kept)]
            with m.If(filt.take & (filt.fill_next > self.peak_fill)):
                m.d.sync += self.peak_fill.eq(filt.fill_next)
        return m
