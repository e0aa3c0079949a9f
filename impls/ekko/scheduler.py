"""The SLO-aware model-update scheduler, sans-IO.

Each update from training gets a priority

    priority = w_fresh * freshness + w_significance * significance + w_importance * importance

where freshness is 1 for a new key (or an update flagged urgent) and 0 otherwise,
significance is the update's magnitude divided by the running mean magnitude, and
importance is the model's inference-traffic share divided by the largest share.
An online estimator tracks the k-th percentile of recent priorities; updates above
it take the high path (written at once, so disseminated on the next sync), the rest
take the low path, where they are coalesced per key (only the newest row is kept)
and flushed every `low_flush_s`.  Weights, percentile and flush period are configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class PercentileEstimator:
    """The k-th percentile of the last `window` observations, refreshed every `window // 8`.

    Before the first refresh the estimate is -inf, so early updates go on the high path.
    """

    def __init__(self, percentile: float, window: int = 2048):
        if not 0.0 < percentile < 100.0:
            raise ValueError(f"percentile must be in (0, 100), got {percentile}")
        if window < 8:
            raise ValueError(f"window must be >= 8, got {window}")
        self.percentile = percentile
        self._buf = np.zeros(window)
        self._n = 0
        self._refresh_every = window // 8
        self.value = -np.inf

    def add(self, x: float) -> None:
        self._buf[self._n % len(self._buf)] = x
        self._n += 1
        if self._n % self._refresh_every == 0:
            self.value = float(np.percentile(self._buf[:min(self._n, len(self._buf))], self.percentile))


@dataclass(frozen=True)
class SchedulerConfig:
    w_fresh: float = 1.0
    w_significance: float = 1.0
    w_importance: float = 1.0
    percentile: float = 90.0
    window: int = 2048
    low_flush_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.percentile < 100.0:
            raise ValueError(f"percentile must be in (0, 100), got {self.percentile}")
        if min(self.w_fresh, self.w_significance, self.w_importance) < 0:
            raise ValueError("scheduler weights must be >= 0")
        if not self.low_flush_s > 0:
            raise ValueError(f"low_flush_s must be positive, got {self.low_flush_s}")


class SloScheduler:
    """Splits updates into a high path and a coalesced low path."""

    def __init__(self, config: SchedulerConfig, model_shares: tuple[float, ...]):
        self.config = config
        shares = np.asarray(model_shares, dtype=float)
        self.importance = shares / shares.max()
        self.estimator = PercentileEstimator(config.percentile, config.window)
        self._mean_magnitude = 0.0
        self._count = 0
        self.low: dict[int, list[int]] = {}   # key -> update ids carried by the next flush
        self.next_flush_s = config.low_flush_s

    def priority(self, magnitude: float, model: int, fresh: bool) -> float:
        self._count += 1
        self._mean_magnitude += (magnitude - self._mean_magnitude) / self._count
        significance = magnitude / self._mean_magnitude if self._mean_magnitude > 0 else 1.0
        c = self.config
        return c.w_fresh * float(fresh) + c.w_significance * significance + c.w_importance * self.importance[model]

    def submit(self, update_id: int, key: int, magnitude: float, model: int, fresh: bool) -> list[int] | None:
        """Returns the update ids to write now (high path), or None when the update was coalesced."""
        p = self.priority(magnitude, model, fresh)
        high = p > self.estimator.value
        self.estimator.add(p)
        carried = self.low.pop(key, [])
        carried.append(update_id)
        if high:
            return carried
        self.low[key] = carried
        return None

    def flush_due(self, now_s: float) -> dict[int, list[int]]:
        """Coalesced low-path keys to write now (empty unless the flush period has passed)."""
        if now_s < self.next_flush_s:
            return {}
        self.next_flush_s = now_s + self.config.low_flush_s
        out, self.low = self.low, {}
        return out

    def flush_all(self) -> dict[int, list[int]]:
        out, self.low = self.low, {}
        return out
