"""The FAERY accelerator's one description: `FpgaConfig`, how embeddings travel from HBM
(`layout`), and SNARY's closed-form latency L = M/B + C.

The cycle model (`cycles`) and the RTL (`impls/faery/rtl/`, through `rtl.params`) both derive
their parameters from it, so the two cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# SNARY (USENIX ATC 2025), Alveo U50: kernel clock by K-selection size.  A larger
# K-selector has longer wires, so the clock falls as K grows.
SNARY_CLOCK_MHZ = {512: 302.0, 1024: 285.0, 2048: 279.0, 4096: 235.0}

# Floating-point latencies of a fully pipelined fp32 multiplier and adder, in cycles:
# assumed, of the order the Xilinx Floating-Point Operator (PG060) reports at full speed.
FP_MUL_CYCLES = 6
FP_ADD_CYCLES = 8

# Score arithmetic: "float" (fp32/fp16 operators, latencies above) or "int8" (SNARY's U50
# build: int8 products, int32 sums, one register after the multiplies and after each
# adder-tree level, as the RTL's score units are built).
ARITHMETIC = ("float", "int8")
# K-selector structure: "mni" (Matsumoto, Nakano & Ito, ISPDC 2015, the sorter FAERY and
# SNARY cite: log2 K + 1 pipeline stages) or "shift-register" (the RTL's insertion sorter:
# a score lands in its place in the cycle it is taken, so no stages beyond the loop's).
SELECTORS = ("mni", "shift-register")

# SNARY's Alveo U50 build: 16 HBM pseudo-channels read 32 bytes per beat each; the U50's
# HBM2 gives 316 GB/s over 32 pseudo-channels (AMD DS965), 9.875 GB/s each, more than
# 32 B at SNARY's clocks, so the 32-byte port is what bounds a channel.
U50_CHANNELS = 16
U50_PORT_BYTES = 32
U50_CHANNEL_BYTES_PER_S = 316e9 / 32


@dataclass(frozen=True)
class FpgaConfig:
    """The accelerator's parameters: FAERY's VU35P HBM, and SNARY's measured clocks
    (FAERY's own clock is not public)."""

    # VU35P HBM2: 32 pseudo-channels x 14.375 GB/s = 460 GB/s (AMD UG1393, the same HBM
    # subsystem as the U280/U55C).
    hbm_channels: int = 32
    channel_bytes_per_s: float = 14.375e9
    # Kernel-side AXI port per channel: 512 bits = 64 bytes per cycle (UG1393: the HBM
    # ports are 256-bit at up to 450 MHz; a 2:1 width converter gives 512 bits at the
    # kernel clock).  The port caps a channel's bytes per cycle at high kernel clocks.
    port_bytes: int = 64
    # FAERY: HBM needs accesses of >= 64 bytes for > 90% of its bandwidth, so small
    # embeddings are packed several per access and large ones span several accesses.
    access_bytes: int = 64
    # Kernel clock in Hz; None takes SNARY's measured U50 clock for this K (above).
    clock_hz: float | None = None
    # Score units N_E (one embedding each per cycle); None matches HBM bandwidth:
    # ceil(embeddings delivered per cycle).
    score_units: int | None = None
    # The K-selector's size, a power of two (SNARY's design point: 1024).  A query's k
    # must not exceed it; the filter compares against the query's own k-th best.
    k_max: int = 1024
    # Filter buffer depth in scores; None gives 2K, the size SNARY gives its filter FIFOs.
    filter_depth: int | None = None
    # Read buffer: 64 entries of one access per channel (assumed: a shallow AXI data FIFO).
    read_buffer_accesses: int = 64
    # HBM read latency: assumed about 100 ns, the order Shuhai (FCCM 2020) measured on
    # the U280's HBM.  It is a few dozen cycles, negligible against a scan.
    hbm_latency_s: float = 100e-9
    # Every `hbm_stall_period`-th cycle of the scan HBM delivers nothing (as a refresh
    # would); 0: never.  Assumed, for studying stalls; no source gives a figure.
    hbm_stall_period: int = 0
    # Score arithmetic and K-selector structure (ARITHMETIC, SELECTORS above).
    arithmetic: str = "float"
    selector: str = "mni"

    def __post_init__(self) -> None:
        for name in ("hbm_channels", "port_bytes", "access_bytes", "k_max", "read_buffer_accesses"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FpgaConfig.{name} must be positive, got {getattr(self, name)}")
        if self.k_max & (self.k_max - 1):
            raise ValueError(f"FpgaConfig.k_max must be a power of two, got {self.k_max}")
        if self.clock_hz is None and self.k_max > max(SNARY_CLOCK_MHZ):
            raise ValueError(f"FpgaConfig.k_max={self.k_max} has no measured clock (SNARY's "
                             f"largest K is {max(SNARY_CLOCK_MHZ)}); give clock_hz")
        if self.clock_hz is not None and self.clock_hz <= 0:
            raise ValueError(f"FpgaConfig.clock_hz must be positive, got {self.clock_hz}")
        if self.score_units is not None and self.score_units <= 0:
            raise ValueError(f"FpgaConfig.score_units must be positive, got {self.score_units}")
        if self.channel_bytes_per_s <= 0 or self.hbm_latency_s < 0:
            raise ValueError("FpgaConfig.channel_bytes_per_s must be positive and hbm_latency_s >= 0")
        if self.filter_depth is not None and self.filter_depth <= 0:
            raise ValueError(f"FpgaConfig.filter_depth must be positive, got {self.filter_depth}")
        if self.hbm_stall_period < 0 or self.hbm_stall_period == 1:
            raise ValueError(f"FpgaConfig.hbm_stall_period must be 0 (none) or at least 2, got {self.hbm_stall_period}")
        if self.arithmetic not in ARITHMETIC:
            raise ValueError(f"FpgaConfig.arithmetic must be one of {', '.join(ARITHMETIC)}, got {self.arithmetic!r}")
        if self.selector not in SELECTORS:
            raise ValueError(f"FpgaConfig.selector must be one of {', '.join(SELECTORS)}, got {self.selector!r}")

    @classmethod
    def snary_u50(cls, k_max: int = 1024, **changes) -> "FpgaConfig":
        """SNARY's U50 configuration (16 channels x 32 B, int8 scores; 128-d int8 embeddings
        then arrive 4 per cycle), with the RTL's shift-register K-selector."""
        return cls(**{"hbm_channels": U50_CHANNELS, "port_bytes": U50_PORT_BYTES, "access_bytes": U50_PORT_BYTES,
                      "channel_bytes_per_s": U50_CHANNEL_BYTES_PER_S, "k_max": k_max, "arithmetic": "int8",
                      "selector": "shift-register", **changes})

    @property
    def clock(self) -> float:
        """Kernel clock in Hz."""
        if self.clock_hz is not None:
            return self.clock_hz
        # A K below SNARY's smallest design (512) is assumed to close timing at 512's clock.
        return 1e6 * SNARY_CLOCK_MHZ[max(self.k_max, min(SNARY_CLOCK_MHZ))]

    @property
    def bytes_per_cycle(self) -> float:
        """B: bytes HBM delivers per kernel cycle, over all channels."""
        return self.hbm_channels * min(self.port_bytes, self.channel_bytes_per_s / self.clock)

    @property
    def buffer_depth(self) -> int:
        return self.filter_depth if self.filter_depth is not None else 2 * self.k_max

    @property
    def selection_depth(self) -> int:
        """Pipeline stages of the K-selector beyond the cycle the loop takes a score in:
        O(log K) for Matsumoto, Nakano & Ito's sorter, none for the shift-register one."""
        return int(math.log2(self.k_max)) + 1 if self.selector == "mni" else 0

    @property
    def hbm_latency_cycles(self) -> int:
        return math.ceil(self.hbm_latency_s * self.clock)

    def score_pipeline_cycles(self, dim: int) -> int:
        """Register stages of one score unit: the multiply, then a balanced adder tree."""
        levels = math.ceil(math.log2(max(dim, 1)))
        if self.arithmetic == "int8":
            return 1 + levels
        return FP_MUL_CYCLES + FP_ADD_CYCLES * levels


@dataclass(frozen=True)
class Layout:
    """How embeddings of one size travel from HBM: packing, bytes read, arrival rate."""

    embedding_bytes: int
    access_bytes: int
    per_access: int           # embeddings packed in one access (1 when an embedding spans several)
    accesses_per_item: int    # accesses one embedding spans (1 when packed)
    items_per_cycle: float    # embeddings HBM delivers per cycle
    score_units: int          # N_E
    read_capacity: int        # read buffer, in embeddings

    def bytes_read(self, n: int) -> int:
        """M: bytes read to scan n embeddings, the padding of packed accesses included."""
        return -(-n // self.per_access) * self.accesses_per_item * self.access_bytes


def layout(config: FpgaConfig, embedding_bytes: int) -> Layout:
    """The packing and rates for embeddings of `embedding_bytes` under `config`."""
    if embedding_bytes <= 0:
        raise ValueError(f"embedding_bytes must be positive, got {embedding_bytes}")
    access = config.access_bytes
    per_access = max(1, access // embedding_bytes)
    accesses_per_item = -(-embedding_bytes // access)
    items_per_cycle = config.bytes_per_cycle / access * per_access / accesses_per_item
    units = config.score_units if config.score_units is not None else math.ceil(items_per_cycle)
    read_capacity = max(units, config.hbm_channels * config.read_buffer_accesses * per_access // accesses_per_item)
    return Layout(embedding_bytes, access, per_access, accesses_per_item, items_per_cycle, units, read_capacity)


def fixed_latency_cycles(config: FpgaConfig, dim: int, k: int) -> int:
    """C: cycles outside the scan loop (HBM latency, score pipeline, K-selection, read-out).

    The loop itself already spends one cycle per stage on the first item; these are the
    pipeline depths beyond that, plus k cycles to read the sorted top-k out one per cycle.
    """
    return config.hbm_latency_cycles + config.score_pipeline_cycles(dim) + config.selection_depth + k


def closed_form_cycles(config: FpgaConfig, n: int, dim: int, itemsize: int, k: int) -> float:
    """SNARY's latency model L = M/B + C, in cycles, for a scan of n embeddings."""
    lay = layout(config, dim * itemsize)
    return lay.bytes_read(n) / config.bytes_per_cycle + fixed_latency_cycles(config, dim, k)
