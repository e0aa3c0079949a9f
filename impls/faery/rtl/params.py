"""The RTL's elaboration parameters, derived from the one accelerator description
(`impls.faery.fpga_model.FpgaConfig` and its `layout`), so the RTL and the cycle model
cannot drift apart.  Anything the RTL cannot build is refused here with the parameter's name."""

from __future__ import annotations

import math
from dataclasses import dataclass

from impls.faery.fpga_model.config import FpgaConfig, layout

SCORE_BITS = 32          # int32 accumulation, as SNARY's int8 U50 build
EMBEDDING_BITS = 8       # int8 embeddings and queries
# The model carries scores as float32, exact below 2**24: int8 dot products of up to
# 1024 dimensions stay within it (1024 * 128 * 128 = 2**24).
MAX_DIM = 1024
MIN_CAPACITY = 1 << 16
MAX_ITEMS = 1 << 32      # ids are at most 32 bits


@dataclass(frozen=True)
class RtlParams:
    lanes: int            # N_E: embeddings per beat = score units
    dim: int              # int8 elements per embedding
    k: int                # results (sorter cells)
    channels: int         # HBM channels of the stream source
    channel_bytes: int    # W: bytes per cycle per channel
    filter_depth: int     # filter buffer, in scores
    read_beats: int       # read buffer, in beats of `lanes` scores
    hbm_latency: int      # cycles before the first beat arrives
    stall_period: int     # every stall_period-th scan cycle HBM delivers nothing (0: never)
    score_stages: int     # register stages of a score unit
    id_bits: int          # width of an item id
    beat_bits: int        # width of a beat index

    @property
    def lead_cycles(self) -> int:
        """RTL cycle t is the model's scan-loop cycle t - lead_cycles.  The model's HBM
        delivers into the read buffer in its loop cycle 1; in the RTL the first beat leaves
        the source in cycle hbm_latency + 1, is in the score pipeline's last register
        score_stages cycles later and enters the read buffer at the end of that cycle."""
        return self.hbm_latency + self.score_stages


def rtl_params(config: FpgaConfig, dim: int, k: int, n_items: int) -> RtlParams:
    """The RTL for int8 embeddings of `dim` under `config`, top-`k`, ids for `n_items` items."""
    if config.arithmetic != "int8":
        raise ValueError(f"the RTL scores int8 embeddings: FpgaConfig.arithmetic must be 'int8', got {config.arithmetic!r}")
    if config.selector != "shift-register":
        raise ValueError("the RTL's K-selector is a shift-register sorter: FpgaConfig.selector must be "
                         f"'shift-register', got {config.selector!r}")
    if not 1 <= dim <= MAX_DIM:
        raise ValueError(f"the RTL takes embeddings of 1 to {MAX_DIM} int8 dimensions, got dim={dim}")
    if not 1 <= k <= config.k_max:
        raise ValueError(f"k={k} must be between 1 and the K-selector's size {config.k_max}")
    per_channel = config.channel_bytes_per_s / config.clock
    if per_channel < config.port_bytes:
        raise ValueError(f"the RTL's channels deliver whole {config.port_bytes}-byte words each cycle: "
                         f"FpgaConfig.channel_bytes_per_s={config.channel_bytes_per_s:g} gives only "
                         f"{per_channel:.2f} bytes per cycle at {config.clock / 1e6:g} MHz")
    beat_bytes = config.hbm_channels * config.port_bytes
    lay = layout(config, dim)
    if beat_bytes % dim or lay.items_per_cycle != beat_bytes // dim:
        raise ValueError(f"the RTL needs whole embeddings per beat: {config.hbm_channels} channels x "
                         f"{config.port_bytes} bytes do not hold a whole number of {dim}-byte embeddings "
                         f"the way FpgaConfig.access_bytes={config.access_bytes} packs them")
    lanes = beat_bytes // dim
    if lay.score_units != lanes:
        raise ValueError(f"the RTL has one score unit per embedding of a beat: FpgaConfig.score_units must be "
                         f"None or {lanes}, got {config.score_units}")
    if config.buffer_depth % lanes or lay.read_capacity % lanes:
        raise ValueError(f"the RTL's buffers hold whole beats of {lanes} scores: the filter depth "
                         f"({config.buffer_depth}) and read buffer ({lay.read_capacity}) must be multiples of {lanes}")
    if not 1 <= n_items <= MAX_ITEMS:
        raise ValueError(f"the RTL takes 1 to {MAX_ITEMS} items, got {n_items}")
    # Ids and beat counters are sized for a power-of-two capacity of at least
    # MIN_CAPACITY items, so corpora of similar size elaborate the same design.
    capacity = max(MIN_CAPACITY, 1 << math.ceil(math.log2(n_items)))
    beats = -(-capacity // lanes)
    return RtlParams(lanes=lanes, dim=dim, k=k, channels=config.hbm_channels, channel_bytes=config.port_bytes,
                     filter_depth=config.buffer_depth, read_beats=lay.read_capacity // lanes,
                     hbm_latency=config.hbm_latency_cycles, stall_period=config.hbm_stall_period,
                     score_stages=config.score_pipeline_cycles(dim),
                     id_bits=math.ceil(math.log2(beats * lanes)), beat_bits=max(1, math.ceil(math.log2(beats + 1))))
