"""Checkpoint-and-broadcast: the usual way a recommender ships a new model to its replicas.

Every `period_s` the training DC checkpoints the whole model, validates it for
`validate_s`, then broadcasts it: each of the DC's servers holds 1/M of the model and
sends its part to every other DC in turn through its NIC, so DC j (in sending order)
has the checkpoint after j transfers plus the one-way latency.  An update is visible
everywhere once the first checkpoint taken after it has reached the last DC.
This is the same link model as `wan.network`, in closed form.  All figures are simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wan.metrics import latency_summary, physical_floor_s
from wan.network import WanConfig
from workloads.ekko_updates import UpdateStream


@dataclass
class CheckpointResult:
    latencies: np.ndarray
    figures: dict[str, float]


def broadcast_time_s(wan: WanConfig, model_bytes: float) -> float:
    """Seconds from the start of a broadcast until the last DC holds the whole checkpoint."""
    if model_bytes < 0:
        raise ValueError(f"model_bytes must be >= 0, got {model_bytes}")
    if wan.n_dcs == 1:
        return 0.0
    per_dc = model_bytes / wan.servers_per_dc * 8 / min(wan.nic_bandwidth_bps, wan.dc_link_bandwidth_bps)
    latency = wan.latency()[0]
    arrivals = [j * per_dc + latency[d] for j, d in enumerate(range(1, wan.n_dcs), start=1)]
    return float(max(arrivals))


def simulate_checkpoint_broadcast(stream: UpdateStream, wan: WanConfig, *, period_s: float = 600.0,
                                  validate_s: float = 60.0, row_bytes: int = 256) -> CheckpointResult:
    """Per-update latency when the model reaches replicas only through periodic checkpoints."""
    if not period_s > 0:
        raise ValueError(f"period_s must be positive, got {period_s}")
    if validate_s < 0:
        raise ValueError(f"validate_s must be >= 0, got {validate_s}")
    n_keys = max(stream.n_keys, int(stream.keys.max()) + 1 if len(stream) else 0)
    model_bytes = float(n_keys) * row_bytes
    broadcast = broadcast_time_s(wan, model_bytes)
    checkpoint_at = np.floor(stream.times / period_s) * period_s + period_s
    lat = checkpoint_at + validate_s + broadcast - stream.times
    figures = {**latency_summary(lat, physical_floor_s(wan, row_bytes)), "model_bytes": model_bytes, "broadcast_s": broadcast,
               "wan_bytes": model_bytes * (wan.n_dcs - 1) * max(1.0, np.ceil(stream.duration_s / period_s))}
    return CheckpointResult(lat, figures)
