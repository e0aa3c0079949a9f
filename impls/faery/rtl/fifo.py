"""A FIFO that takes up to `lanes` entries a cycle and gives one, first-word-fall-through.

Entries are interleaved over `lanes` memory banks (entry i in bank i mod lanes), so each
bank takes at most one write a cycle and maps to a simple dual-port block RAM.  The head
is read synchronously at the address it will have next cycle, transparently for that
cycle's write, so the head entry is ready in the cycle after it was written.
"""

from __future__ import annotations

from amaranth.hdl import Array, Elaboratable, Module, Mux, Signal
from amaranth.lib.memory import Memory


class Fifo(Elaboratable):
    def __init__(self, width: int, depth: int, lanes: int = 1) -> None:
        if depth % lanes:
            raise ValueError(f"FIFO depth {depth} must be a multiple of its {lanes} lanes")
        self.width, self.depth, self.lanes = width, depth, lanes
        self.w_en = [Signal(name=f"w_en{j}") for j in range(lanes)]        # lanes with an entry, in order
        self.w_data = [Signal(width, name=f"w_data{j}") for j in range(lanes)]
        self.r_en = Signal()                 # take the head (only when level > 0)
        self.r_data = Signal(width)          # the head entry, valid when level > 0
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform) -> Module:
        m = Module()
        lanes, rows = self.lanes, self.depth // self.lanes
        row_shape = range(rows)
        tail_bank, tail_row = Signal(range(lanes)), Signal(row_shape)
        head_bank, head_row = Signal(range(lanes)), Signal(row_shape)

        def next_row(row):
            return Mux(row == rows - 1, 0, row + 1)

        # Head after this cycle's read: every bank reads that row, the head bank's word is kept.
        head_bank_next, head_row_next = Signal.like(head_bank), Signal.like(head_row)
        m.d.comb += [head_bank_next.eq(head_bank), head_row_next.eq(head_row)]
        with m.If(self.r_en):
            with m.If(head_bank == lanes - 1):
                m.d.comb += [head_bank_next.eq(0), head_row_next.eq(next_row(head_row))]
            with m.Else():
                m.d.comb += head_bank_next.eq(head_bank + 1)
        m.d.sync += [head_bank.eq(head_bank_next), head_row.eq(head_row_next)]

        # Lane j's entry goes to slot tail + (entries in the lanes before j).
        offsets, count = [], 0
        for j in range(lanes):
            offsets.append(count)
            count = count + self.w_en[j]
        reads = []
        for b in range(lanes):
            mem = Memory(shape=self.width, depth=rows, init=[])
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(domain="sync", transparent_for=(wp,))
            m.d.comb += rp.addr.eq(head_row_next)
            reads.append(rp.data)
            for j in range(lanes):
                slot = tail_bank + offsets[j]                # 0 .. 2 lanes - 2
                hits = self.w_en[j] & ((slot == b) | (slot == b + lanes))
                with m.If(hits):
                    m.d.comb += [wp.en.eq(1), wp.data.eq(self.w_data[j]),
                                 wp.addr.eq(Mux(slot >= lanes, next_row(tail_row), tail_row))]
        m.d.comb += self.r_data.eq(Array(reads)[head_bank])

        end = tail_bank + count
        with m.If(end >= lanes):
            m.d.sync += [tail_bank.eq(end - lanes), tail_row.eq(next_row(tail_row))]
        with m.Else():
            m.d.sync += tail_bank.eq(end)
        m.d.sync += self.level.eq(self.level + count - self.r_en)
        return m
