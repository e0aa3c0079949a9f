"""Ekko (OSDI 2022): low-latency model-update dissemination for geo-distributed recommenders.

- `impls.ekko.core`: the sans-IO protocol (versions, version vectors, shard version,
  hot-key cache, dominator version vector, pull anti-entropy).
- `impls.ekko.scheduler`: the SLO-aware update scheduler.
- `impls.ekko.state`: the inference model-state manager (detect, redirect, roll back).
- `impls.ekko.compression`: compressed dissemination (quantised row deltas, error feedback).
- `impls.ekko.sim`: Ekko on the discrete-event WAN of the shared `wan` package.
"""
