"""The corpus stream source, standing in for the HBM channels.

Each cycle `channels` channels deliver W bytes each, together one beat of N_E whole int8
embeddings (channel c carries bytes [cW, (c+1)W) of the beat: an embedding spans
dim / W channels, or a channel carries several), plus one live bit per embedding, which
the corpus manager clears for deleted rows (they are still read).  The beat memory
itself is outside the block: the source puts out the index of the next beat
(`mem_addr`) and takes its bits (`mem_data`) in the same cycle.

The first beat arrives `hbm_latency` cycles after the start.  With a stall period P,
every P-th cycle of the scan (numbered as the cycle model numbers its loop) the memory
side holds (`hold`): no beat is delivered and the score pipeline does not advance.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Signal

from impls.faery.rtl.params import EMBEDDING_BITS, RtlParams


class CorpusSource(Elaboratable):
    def __init__(self, p: RtlParams, cycle_bits: int) -> None:
        self.p = p
        data_bits = p.channels * p.channel_bytes * 8
        assert data_bits == p.lanes * p.dim * EMBEDDING_BITS
        self.start = Signal()
        self.n_beats = Signal(p.beat_bits)
        self.cycle = Signal(cycle_bits)       # cycles since the start (1 in the first)
        self.enable = Signal()                # the memory side advances this cycle
        self.mem_addr = Signal(p.beat_bits)
        self.mem_data = Signal(data_bits + p.lanes)
        self.hold = Signal()
        self.total_beats = Signal(p.beat_bits)    # n_beats, as latched at the start
        self.out_valid = Signal()
        self.out_data = Signal(data_bits)
        self.out_live = Signal(p.lanes)
        self.out_beat = Signal(p.beat_bits)

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self.p
        data_bits = len(self.out_data)
        n_beats = self.total_beats
        with m.If(self.start):
            m.d.sync += [n_beats.eq(self.n_beats), self.mem_addr.eq(0)]
        m.d.comb += [self.out_valid.eq((self.cycle > p.hbm_latency) & (self.mem_addr < n_beats)),
                     self.out_data.eq(self.mem_data[:data_bits]), self.out_live.eq(self.mem_data[data_bits:]),
                     self.out_beat.eq(self.mem_addr)]
        with m.If(self.enable & self.out_valid & ~self.start):
            m.d.sync += self.mem_addr.eq(self.mem_addr + 1)
        if p.stall_period:
            # phase = (scan cycle) mod P, where scan cycle = cycle - lead_cycles.
            phase = Signal(range(p.stall_period))
            with m.If(self.start):
                m.d.sync += phase.eq((1 - p.lead_cycles) % p.stall_period)
            with m.Else():
                m.d.sync += phase.eq(phase + 1 if p.stall_period > 1 else 0)
                with m.If(phase == p.stall_period - 1):
                    m.d.sync += phase.eq(0)
            m.d.comb += self.hold.eq((self.cycle > p.lead_cycles) & (phase == 0))
        return m
