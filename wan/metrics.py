"""Figures every system on the WAN reports the same way: latency beside its physical floor, NIC spread."""

from __future__ import annotations

import numpy as np

from wan.network import WanConfig


def physical_floor_s(wan: WanConfig, update_bytes: int, origin_dc: int = 0) -> float:
    """The least time one update can take to reach every DC from `origin_dc` on this network.

    The latest-arriving DC's one-way propagation from the origin, plus one serialisation
    of the update at the path's rate (cut-through: it is serialised once), plus the two
    LAN hops of a cross-DC transfer (server to the DC's border, border to server).
    0 with a single DC: the origin holds its own write at once.
    """
    if wan.n_dcs == 1:
        return 0.0
    lat = wan.latency()
    rate = min(wan.nic_bandwidth_bps, wan.dc_link_bandwidth_bps)
    return float(lat[origin_dc].max() + update_bytes * 8 / rate + 2 * wan.lan_latency_s)


def latency_summary(lat: np.ndarray, floor_s: float) -> dict[str, float]:
    """p50, p99, max and mean of the finite latencies, the floor, and p50/floor, p99/floor."""
    finite = lat[np.isfinite(lat)]
    out = {"floor_s": float(floor_s), "unreplicated_updates": float(len(lat) - len(finite))}
    if len(finite) == 0:
        nan = float("nan")
        return {**out, "latency_p50_s": nan, "latency_p99_s": nan, "latency_max_s": nan, "latency_mean_s": nan,
                "p50_over_floor": nan, "p99_over_floor": nan, "time_s": nan}
    p50, p99 = float(np.percentile(finite, 50)), float(np.percentile(finite, 99))
    ratio = (lambda x: x / floor_s) if floor_s > 0 else (lambda x: float("nan"))
    return {**out, "latency_p50_s": p50, "latency_p99_s": p99, "latency_max_s": float(finite.max()),
            "latency_mean_s": float(finite.mean()), "p50_over_floor": ratio(p50), "p99_over_floor": ratio(p99),
            "time_s": p50}


def nic_spread(tx_bytes: np.ndarray, rx_bytes: np.ndarray) -> dict[str, float]:
    """Bytes sent and received per NIC: max, mean, min, and max/mean (1.0 = perfectly even)."""
    out = {}
    for name, b in (("tx", tx_bytes), ("rx", rx_bytes)):
        mean = float(b.mean()) if len(b) else 0.0
        out.update({f"nic_{name}_bytes_max": float(b.max()) if len(b) else 0.0, f"nic_{name}_bytes_mean": mean,
                    f"nic_{name}_bytes_min": float(b.min()) if len(b) else 0.0,
                    f"nic_{name}_max_over_mean": float(b.max()) / mean if mean > 0 else float("nan")})
    return out
