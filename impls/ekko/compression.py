"""Compressed update dissemination: quantised embedding-row deltas with error feedback.

A switchable stage between the trainer's table and the wire, apart from the scheduler,
so that what each saves can be measured alone and together.  The sender ships, per
row, the trainer's change since the row's last shipment plus the quantisation error it
left out last time (error feedback), quantised to fp16 or to int8 with one fp32 scale
per row.  The error it leaves out now is kept for the row's next shipment, so
quantisation error does not accumulate: the replica's row differs from the trainer's
row at its last shipment by exactly the residual, one quantisation step at most.
Without error feedback the errors of successive deltas add up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CODECS = ("none", "fp16", "int8")


@dataclass(frozen=True)
class Compression:
    codec: str = "int8"
    error_feedback: bool = True

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {self.codec!r}")

    def wire_fraction(self, dim: int) -> float:
        """Bytes on the wire per row, as a fraction of the fp32 row of `dim` values."""
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if self.codec == "none":
            return 1.0
        if self.codec == "fp16":
            return 0.5
        return (dim + 4) / (4 * dim)   # one byte per value plus a 4-byte scale


def quantise(delta: np.ndarray, codec: str) -> np.ndarray:
    """What the receiver decodes from `delta` (rows of float values) under `codec`."""
    if codec == "none":
        return delta.astype(np.float64)
    if codec == "fp16":
        return delta.astype(np.float16).astype(np.float64)
    scale = np.abs(delta).max(axis=1, keepdims=True) / 127.0
    safe = np.where(scale > 0, scale, 1.0)
    return np.clip(np.rint(delta / safe), -127, 127) * safe


class DeltaEncoder:
    """The sender's side for one table: per-row residuals of the error left out so far."""

    def __init__(self, compression: Compression, initial: np.ndarray):
        self.compression = compression
        self.last = np.array(initial, dtype=np.float64)     # the trainer's rows at their last shipment
        self.residual = np.zeros_like(self.last)

    def ship(self, rows: np.ndarray, target: np.ndarray, held: np.ndarray) -> np.ndarray:
        """The replica's new values for `rows`, given the trainer's `target` and the replica's `held` rows."""
        c = self.compression
        delta = target - self.last[rows] + self.residual[rows]
        sent = quantise(delta, c.codec)
        if c.error_feedback:
            self.residual[rows] = delta - sent
        self.last[rows] = target
        return held + sent
