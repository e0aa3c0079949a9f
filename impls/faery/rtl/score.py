"""N_E score units: int8 dot products with int32 accumulation, pipelined.

Each unit multiplies its embedding's int8 elements by the query's (one register stage),
then sums the products in a balanced adder tree with a register after every level: for
d dimensions, 1 + ceil(log2 d) stages (`FpgaConfig.score_pipeline_cycles`).  The beat's
index and live bits travel beside the scores.  The whole pipeline advances only on
`enable`, so a full read buffer (or an HBM stall) holds it, as it holds the memory side.
"""

from __future__ import annotations

import math

from amaranth.hdl import Elaboratable, Module, Signal, signed

from impls.faery.rtl.params import EMBEDDING_BITS, SCORE_BITS


class ScoreUnits(Elaboratable):
    def __init__(self, lanes: int, dim: int, beat_bits: int) -> None:
        self.lanes, self.dim = lanes, dim
        self.enable = Signal()
        self.in_valid = Signal()
        self.in_data = Signal(lanes * dim * EMBEDDING_BITS)   # lane l, element j at byte l*dim + j
        self.in_live = Signal(lanes)
        self.in_beat = Signal(beat_bits)
        self.query = Signal(dim * EMBEDDING_BITS)
        self.out_valid = Signal()
        self.out_scores = [Signal(signed(SCORE_BITS), name=f"score{l}") for l in range(lanes)]
        self.out_live = Signal(lanes)
        self.out_beat = Signal(beat_bits)
        self.stages = 1 + math.ceil(math.log2(dim))   # the pipeline depth

    def _element(self, bus: Signal, index: int):
        return bus[index * EMBEDDING_BITS:(index + 1) * EMBEDDING_BITS].as_signed()

    def elaborate(self, platform) -> Module:
        m = Module()
        en = self.enable
        for lane in range(self.lanes):
            level = []
            for j in range(self.dim):
                product = Signal(signed(2 * EMBEDDING_BITS), name=f"p{lane}_{j}")
                with m.If(en):
                    m.d.sync += product.eq(self._element(self.in_data, lane * self.dim + j)
                                           * self._element(self.query, j))
                level.append(product)
            depth = 1
            while len(level) > 1:
                summed = []
                for pair in range(0, len(level), 2):
                    total = Signal(signed(SCORE_BITS), name=f"s{lane}_{depth}_{pair}")
                    # An odd one out is registered alone, so every path has the same depth.
                    value = level[pair] if pair + 1 == len(level) else level[pair] + level[pair + 1]
                    with m.If(en):
                        m.d.sync += total.eq(value)
                    summed.append(total)
                level = summed
                depth += 1
            m.d.comb += self.out_scores[lane].eq(level[0])
            assert depth == self.stages
        # The beat's valid flag, index and live bits, delayed by the same stages.
        valid, beat, live = self.in_valid, self.in_beat, self.in_live
        for stage in range(self.stages):
            v, b, lv = Signal(name=f"valid_d{stage}"), Signal.like(self.in_beat, name=f"beat_d{stage}"), \
                Signal.like(self.in_live, name=f"live_d{stage}")
            with m.If(en):
                m.d.sync += [v.eq(valid), b.eq(beat), lv.eq(live)]
            valid, beat, live = v, b, lv
        m.d.comb += [self.out_valid.eq(valid), self.out_beat.eq(beat), self.out_live.eq(live)]
        return m
