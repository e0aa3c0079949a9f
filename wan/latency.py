"""The testbed's one-way latency matrix: `geo`, `uniform:MS` or a CSV file of N x N milliseconds.

Every matrix is checked the same way, whatever its source: square, finite, a zero
diagonal (traffic inside a DC uses the LAN, modelled apart), positive off the diagonal
(two DCs at zero distance would be one DC) and symmetric (the model has one propagation
delay per DC pair).  A fault names the cell, counting rows and columns from 1 as a user
reads a CSV file.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from workloads.ekko_updates import DATA_CENTRES, geo_latency_matrix

MAX_DCS = 64                      # a latency file of more DCs than this is refused before it is read whole
MAX_FILE_BYTES = 1 << 20
SYMMETRY_RTOL = 1e-6


def validate_latency_matrix(latency: np.ndarray, name: str = "latency matrix") -> np.ndarray:
    """The matrix (seconds) if it is a valid one-way latency matrix; ValueError naming the bad cell otherwise."""
    lat = np.asarray(latency, dtype=float)
    if lat.ndim != 2 or lat.shape[0] != lat.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {lat.shape}")
    n = lat.shape[0]
    for i in range(n):
        for j in range(n):
            x = lat[i, j]
            cell = f"{name}: row {i + 1}, column {j + 1}"
            if not math.isfinite(x):
                raise ValueError(f"{cell} is {x}: latencies must be finite (every DC must reach every other)")
            if i == j and x != 0:
                raise ValueError(f"{cell} is {x}: the diagonal must be 0 (a DC to itself)")
            if i != j and not x > 0:
                raise ValueError(f"{cell} is {x}: latencies between DCs must be positive")
    for i in range(n):
        for j in range(i + 1, n):
            if not math.isclose(lat[i, j], lat[j, i], rel_tol=SYMMETRY_RTOL):
                raise ValueError(f"{name}: row {i + 1}, column {j + 1} is {lat[i, j]} but row {j + 1}, "
                                 f"column {i + 1} is {lat[j, i]}: the matrix must be symmetric")
    return lat


def uniform_latency_matrix(n_dcs: int, one_way_s: float) -> np.ndarray:
    if n_dcs < 1:
        raise ValueError(f"n_dcs must be >= 1, got {n_dcs}")
    if not (math.isfinite(one_way_s) and one_way_s > 0):
        raise ValueError(f"uniform latency must be positive and finite, got {one_way_s} s")
    return np.full((n_dcs, n_dcs), float(one_way_s)) * (1 - np.eye(n_dcs))


def read_latency_csv(path: str | Path) -> np.ndarray:
    """An N x N CSV of one-way latencies in milliseconds (no header) -> seconds, validated."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"latency file {path}: {size} bytes, more than the {MAX_FILE_BYTES} allowed "
                             f"(at most {MAX_DCS} DCs)")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"latency file {path}: not a UTF-8 text file") from None
    except IsADirectoryError:
        raise ValueError(f"latency file {path}: is a directory") from None
    except OSError as exc:
        raise ValueError(f"latency file {path}: cannot read ({exc.strerror})") from None
    rows: list[list[float]] = []
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(rows) >= MAX_DCS or len(row) > MAX_DCS:
            raise ValueError(f"latency file {path}:{line_no}: more than {MAX_DCS} DCs")
        values = []
        for col, cell in enumerate(row, start=1):
            try:
                values.append(float(cell))
            except ValueError:
                raise ValueError(f"latency file {path}:{line_no}: column {col} is {cell.strip()!r}, "
                                 "not a number of milliseconds") from None
        if rows and len(values) != len(rows[0]):
            raise ValueError(f"latency file {path}:{line_no}: {len(values)} columns, but line 1 of the "
                             f"matrix has {len(rows[0])}")
        rows.append(values)
    if not rows:
        raise ValueError(f"latency file {path}: no rows")
    if len(rows) != len(rows[0]):
        raise ValueError(f"latency file {path}: {len(rows)} rows of {len(rows[0])} columns; "
                         "an N x N matrix is needed")
    return validate_latency_matrix(np.asarray(rows) / 1e3, f"latency file {path}")


def latency_matrix(spec: str, n_dcs: int) -> np.ndarray:
    """One-way latencies in seconds for `n_dcs` DCs from `geo`, `uniform:MS` or a CSV FILE (ms).

    A FILE must hold exactly `n_dcs` DCs.
    """
    if spec == "geo":
        if not 1 <= n_dcs <= len(DATA_CENTRES):
            raise ValueError(f"the geo matrix has {len(DATA_CENTRES)} cities; {n_dcs} DCs asked")
        return geo_latency_matrix(n_dcs)
    if spec.startswith("uniform:"):
        text = spec.split(":", 1)[1]
        try:
            ms = float(text)
        except ValueError:
            raise ValueError(f"latency uniform:MS needs a number of milliseconds, got {text!r}") from None
        if not (math.isfinite(ms) and ms > 0):
            raise ValueError(f"latency uniform:MS must be positive and finite, got {text!r}")
        return uniform_latency_matrix(n_dcs, ms / 1e3)
    lat = read_latency_csv(spec)
    if lat.shape[0] != n_dcs:
        raise ValueError(f"latency file {spec}: {lat.shape[0]} DCs, but {n_dcs} DCs asked")
    return lat


def dcs_in(spec: str) -> int | None:
    """How many DCs a latency spec fixes (a FILE does; geo and uniform fit any count)."""
    if spec == "geo" or spec.startswith("uniform:"):
        return None
    return read_latency_csv(spec).shape[0]
