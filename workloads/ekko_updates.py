"""Model-update workloads for Ekko: update streams, a geo latency matrix, a small online CTR model.

Three pieces live here, shared by `impls/ekko` and its baselines:

* `UpdateStream` and `generate_updates`: the training side's stream of sparse
  embedding-row updates.  Key popularity is Zipf; about 3% of the keys are touched
  per (simulated) hour, rescaled to the run's length; a share of updates creates new
  keys; several models receive updates in proportion to their inference-traffic share.
  `load_update_trace` reads the same stream from a CSV file.
* `geo_latency_matrix`: one-way WAN latencies between data centres, derived from the
  great-circle distance between real cities (see `DATA_CENTRES`); `wan.latency` checks
  it, and other matrices, the same way.
* `at_rate`: a stream stretched or squeezed to a given mean update rate (the offered load).
* `CtrModel` and `ClickStream`: an embedding + logistic-regression click-through-rate
  model trained online on a synthetic click stream whose item popularity drifts, so
  that update significance and inference quality (logloss) are real numbers.  Harmful
  updates (gradient overflow, a biased-data burst) can be injected on purpose.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.catalog import Workload, register
from workloads.limits import quote

# --------------------------------------------------------------------------------------
# Geo latency matrix
# --------------------------------------------------------------------------------------

#: (name, latitude, longitude).  The first ten are the default 10-DC deployment;
#: the rest extend experiments beyond ten data centres.
DATA_CENTRES: tuple[tuple[str, float, float], ...] = (
    ("shanghai", 31.23, 121.47),
    ("beijing", 39.90, 116.40),
    ("shenzhen", 22.54, 114.06),
    ("hong-kong", 22.32, 114.17),
    ("singapore", 1.35, 103.82),
    ("tokyo", 35.68, 139.69),
    ("mumbai", 19.08, 72.88),
    ("frankfurt", 50.11, 8.68),
    ("virginia", 38.95, -77.45),
    ("california", 37.39, -121.96),
    ("london", 51.51, -0.13),
    ("sao-paulo", -23.55, -46.63),
    ("sydney", -33.87, 151.21),
    ("seoul", 37.57, 126.98),
    ("dubai", 25.20, 55.27),
    ("chicago", 41.88, -87.63),
)

#: Light in fibre covers about 200 km/ms; real routes are about twice the great-circle
#: distance, so one-way latency is distance / 100 km per ms, plus a fixed 5 ms for
#: switching, clipped to the 10-150 ms band measured between public cloud regions.
_KM_PER_MS = 100.0
_FIXED_MS = 5.0
_MIN_MS, _MAX_MS = 10.0, 150.0


def _great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def geo_latency_matrix(n_dcs: int) -> np.ndarray:
    """One-way WAN latency in seconds between the first `n_dcs` entries of DATA_CENTRES.

    The diagonal is 0 (traffic inside a DC uses the LAN, modelled separately).
    """
    if not 1 <= n_dcs <= len(DATA_CENTRES):
        raise ValueError(f"n_dcs must be in 1..{len(DATA_CENTRES)}, got {n_dcs}")
    lat = np.zeros((n_dcs, n_dcs))
    for i in range(n_dcs):
        for j in range(n_dcs):
            if i != j:
                km = _great_circle_km(DATA_CENTRES[i][1:], DATA_CENTRES[j][1:])
                lat[i, j] = min(max(_FIXED_MS + km / _KM_PER_MS, _MIN_MS), _MAX_MS) / 1e3
    return lat


# --------------------------------------------------------------------------------------
# Update stream
# --------------------------------------------------------------------------------------


@dataclass
class UpdateStream:
    """Sparse embedding-row updates from training, in commit order.

    `times` are seconds since the start; `keys` are global parameter keys; `models`
    index `model_shares`; `magnitudes` is the update's significance (norm of the
    applied gradient step); `is_new` marks the first update of a key; `values` are
    the new rows (float32, `dim` wide).
    """

    times: np.ndarray
    keys: np.ndarray
    models: np.ndarray
    magnitudes: np.ndarray
    is_new: np.ndarray
    values: np.ndarray
    model_shares: tuple[float, ...]
    n_keys: int

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration_s(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0


def generate_updates(n_updates: int, n_keys: int, duration_s: float, *, dim: int = 4,
                     zipf_alpha: float = 1.05, touched_per_hour: float = 0.03,
                     simulated_hours: float = 1.0, new_key_fraction: float = 0.01,
                     model_shares: tuple[float, ...] = (0.6, 0.3, 0.1), seed: int = 0) -> UpdateStream:
    """A seeded update stream (see the module docstring for its shape).

    `simulated_hours` is how much training time the run stands for: the number of
    distinct existing keys touched is `touched_per_hour * simulated_hours * n_keys`.
    """
    if n_updates < 0 or n_keys <= 0:
        raise ValueError(f"n_updates must be >= 0 and n_keys > 0, got {n_updates}, {n_keys}")
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    shares = np.asarray(model_shares, dtype=float)
    if (shares <= 0).any() or not math.isclose(shares.sum(), 1.0, rel_tol=1e-6):
        raise ValueError(f"model_shares must be positive and sum to 1, got {model_shares}")
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, duration_s, n_updates))
    models = rng.choice(len(shares), size=n_updates, p=shares).astype(np.int16)
    # Existing keys: a Zipf draw over a pool of the keys touched in this run.
    pool_size = max(1, min(n_keys, round(touched_per_hour * simulated_hours * n_keys)))
    pool = rng.permutation(n_keys)[:pool_size]
    ranks = np.arange(1, pool_size + 1, dtype=float)
    popularity = ranks ** -zipf_alpha
    keys = pool[rng.choice(pool_size, size=n_updates, p=popularity / popularity.sum())].astype(np.int64)
    # New keys (fresh embedding rows) get ids beyond the existing key space.
    new = rng.random(n_updates) < new_key_fraction
    keys[new] = n_keys + np.arange(int(new.sum()))
    is_new = np.zeros(n_updates, dtype=bool)
    _, first = np.unique(keys, return_index=True)
    is_new[first] = True
    is_new &= new  # an existing key touched for the first time in the run is not new
    magnitudes = rng.lognormal(mean=-2.0, sigma=1.0, size=n_updates).astype(np.float32)
    values = rng.standard_normal((n_updates, dim)).astype(np.float32)
    return UpdateStream(times, keys, models, magnitudes, is_new, values, tuple(float(s) for s in shares), n_keys)


def at_rate(stream: UpdateStream, updates_per_s: float) -> UpdateStream:
    """The same updates, in the same order and spacing, stretched or squeezed to a mean of `updates_per_s`."""
    if not (math.isfinite(updates_per_s) and updates_per_s > 0):
        raise ValueError(f"updates_per_s must be positive and finite, got {updates_per_s}")
    if len(stream) == 0:
        return stream
    span = stream.duration_s or 1.0 / updates_per_s
    scale = len(stream) / updates_per_s / span
    return UpdateStream(stream.times * scale, stream.keys, stream.models, stream.magnitudes, stream.is_new,
                        stream.values, stream.model_shares, stream.n_keys)


_TRACE_COLUMNS = ("time_s", "key", "model", "magnitude")
_TRACE_KEY_MAX = 2**63 - 1   # keys are int64
_TRACE_MODEL_MAX = 2**15 - 1  # models are int16
_DIGITS = re.compile(r"[0-9]+")


def load_update_trace(path: str | Path, *, dim: int = 4, n_models: int | None = None,
                      seed: int = 0) -> UpdateStream:
    """Read an update trace: CSV with header `time_s,key,model,magnitude` (extra columns ignored).

    Times must be non-decreasing and non-negative, keys integers in 0..2^63-1 and
    models in 0..32767 (ASCII digits), magnitudes finite and non-negative.  Model
    traffic shares are taken as each model's share of the updates.  Row values are
    seeded random (traces carry keys, not embeddings).  A malformed line raises
    ValueError naming file and line; a file that is not CSV text, naming the file.
    """
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"update trace {path}: cannot open ({exc.strerror})") from None
    times: list[float] = []
    keys: list[int] = []
    models: list[int] = []
    mags: list[float] = []
    with fh:
        reader = csv.reader(fh)
        try:
            _read_trace_rows(path, reader, n_models, times, keys, models, mags)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a text CSV file (it holds bytes that are not UTF-8)") from None
        except csv.Error as exc:
            raise ValueError(f"{path}:{reader.line_num}: not a readable CSV line ({exc})") from None
    if not times:
        raise ValueError(f"{path}: no updates after the header")
    keys_a = np.asarray(keys, dtype=np.int64)
    models_a = np.asarray(models, dtype=np.int16)
    counts = np.bincount(models_a, minlength=n_models or 0).astype(float)
    counts = np.maximum(counts, 1e-9)
    is_new = np.zeros(len(keys_a), dtype=bool)
    rng = np.random.default_rng(seed)
    return UpdateStream(np.asarray(times), keys_a, models_a, np.asarray(mags, dtype=np.float32), is_new,
                        rng.standard_normal((len(keys_a), dim)).astype(np.float32),
                        tuple(float(c) for c in counts / counts.sum()), int(keys_a.max()) + 1)


def _read_trace_rows(path: Path, reader, n_models: int | None, times: list[float], keys: list[int],
                     models: list[int], mags: list[float]) -> None:
    """Append each row of the trace to the four columns, refusing a bad one with its line."""
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:4]] != list(_TRACE_COLUMNS):
        raise ValueError(f"{path}:1: header must start with {','.join(_TRACE_COLUMNS)}, "
                         f"got {quote(','.join(header or []))}")
    last = 0.0
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip():
            continue
        if len(row) < 4:
            raise ValueError(f"{path}:{line}: expected 4 columns, got {len(row)}")
        try:
            t, g = float(row[0]), float(row[3])
        except ValueError:
            raise ValueError(f"{path}:{line}: cannot parse {quote(','.join(row[:4]))} as "
                             f"time_s,key,model,magnitude") from None
        k = _trace_int(path, line, row, 1, _TRACE_KEY_MAX)
        m = _trace_int(path, line, row, 2, _TRACE_MODEL_MAX)
        if not (math.isfinite(t) and t >= 0) or t < last:
            raise ValueError(f"{path}:{line}: time_s {quote(row[0])} must be finite, >= 0 and non-decreasing")
        if n_models is not None and m >= n_models:
            raise ValueError(f"{path}:{line}: model {m} out of range (n_models={n_models})")
        if not (math.isfinite(g) and g >= 0):
            raise ValueError(f"{path}:{line}: magnitude {quote(row[3])} must be finite and >= 0")
        last = t
        times.append(t), keys.append(k), models.append(m), mags.append(g)


def _trace_int(path: Path, line: int, row: list[str], index: int, largest: int) -> int:
    """A trace's key (index 1) or model (index 2): ASCII digits, at most `largest`."""
    column, text = _TRACE_COLUMNS[index], row[index].strip()
    if text.startswith("-") and _DIGITS.fullmatch(text[1:]):
        raise ValueError(f"{path}:{line}: key and model must be non-negative, got {column} {quote(text, 30)}")
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"{path}:{line}: cannot parse {quote(','.join(row[:4]))} as time_s,key,model,magnitude: "
                         f"{column} {quote(text)} is not an integer (digits 0-9)")
    if len(text) > len(str(largest)) or int(text) > largest:
        raise ValueError(f"{path}:{line}: {column} {quote(text, 30)} is larger than {largest:,}, "
                         f"the largest {column} a trace may hold")
    return int(text)


# --------------------------------------------------------------------------------------
# A small real CTR model trained online
# --------------------------------------------------------------------------------------


@dataclass
class ClickStream:
    """Synthetic impressions (user, item) and clicks, in steps; item popularity drifts.

    The true click logit is `user_true[u] . item_true[i] + item_bias[i](t)`, where the
    item bias does a random walk, so an online model must keep updating to stay good.
    """

    n_users: int = 2000
    n_items: int = 5000
    dim: int = 8
    batch: int = 2000
    zipf_alpha: float = 1.1
    drift: float = 0.08
    seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._rng = rng
        self.user_true = rng.normal(0, 0.6, (self.n_users, self.dim))
        self.item_true = rng.normal(0, 0.6, (self.n_items, self.dim))
        self.item_bias = rng.normal(-1.5, 0.5, self.n_items)
        ranks = np.arange(1, self.n_items + 1, dtype=float) ** -self.zipf_alpha
        self.item_popularity = ranks / ranks.sum()

    def step(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Next batch: users, items, clicks (0/1).  Drift moves every item bias a little."""
        rng = self._rng
        self.item_bias += rng.normal(0, self.drift, self.n_items)
        users = rng.integers(0, self.n_users, self.batch)
        items = rng.choice(self.n_items, size=self.batch, p=self.item_popularity)
        logit = np.einsum("ij,ij->i", self.user_true[users], self.item_true[items]) + self.item_bias[items]
        clicks = (rng.random(self.batch) < 1 / (1 + np.exp(-logit))).astype(np.float64)
        return users, items, clicks


class CtrModel:
    """Embedding + logistic-regression CTR model: p = sigmoid(u_emb . i_emb + i_bias).

    Item rows (embedding plus bias) are the parameters that change online and are
    disseminated; user rows are trained alongside.  `train_step` returns the touched
    item keys and the norm of each row's update (its significance).
    """

    def __init__(self, n_users: int, n_items: int, dim: int, lr: float = 0.05, seed: int = 0):
        rng = np.random.default_rng(seed + 1)
        self.user_emb = rng.normal(0, 0.1, (n_users, dim))
        self.item_rows = np.concatenate([rng.normal(0, 0.1, (n_items, dim)), np.full((n_items, 1), -1.5)], axis=1)
        self.lr = lr

    @staticmethod
    def predict_with(item_rows: np.ndarray, user_emb: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        rows = item_rows[items]
        logit = np.einsum("ij,ij->i", user_emb[users], rows[:, :-1]) + rows[:, -1]
        return 1 / (1 + np.exp(-np.clip(logit, -30, 30)))

    def train_step(self, users: np.ndarray, items: np.ndarray, clicks: np.ndarray,
                   grad_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """One SGD step; `grad_scale` > 1 injects a gradient overflow.  Returns (items, |delta|)."""
        p = self.predict_with(self.item_rows, self.user_emb, users, items)
        err = (p - clicks) * grad_scale
        rows = self.item_rows[items]
        g_item = np.concatenate([err[:, None] * self.user_emb[users], err[:, None]], axis=1)
        g_user = err[:, None] * rows[:, :-1]
        # Average each row's gradient over its impressions in the batch: summing them would
        # make the step of a popular item hundreds of times larger, and training diverge.
        touched, inverse, counts = np.unique(items, return_inverse=True, return_counts=True)
        step = np.zeros((len(touched), g_item.shape[1]))
        np.add.at(step, inverse, g_item)
        step *= -self.lr / counts[:, None]
        self.item_rows[touched] += step
        np.add.at(self.user_emb, users, -self.lr * g_user)
        return touched, np.linalg.norm(step, axis=1)


def logloss(p: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy, with probabilities clipped away from 0 and 1."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# --------------------------------------------------------------------------------------
# Named workloads
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CtrRun:
    """How long to train the online CTR model, and from which seed."""

    steps: int
    seed: int = 0


# Update rate: 5000 updates/s, each a 64 KB block of embedding rows in the experiments,
# enough that central push loads its leaders' NICs at 10 DCs on 5 Gbps links.
register(Workload(
    name="ekko-updates-quick", kind="updates", tier="quick",
    description="Zipf update stream: 5k updates over 2M keys in 1 s, 3 models (60/30/10% traffic)",
    load=lambda: generate_updates(5_000, 2_000_000, 1.0, simulated_hours=1.0, seed=5),
    size={"n_updates": 5_000, "n_keys": 2_000_000}))
register(Workload(
    name="ekko-updates-full", kind="updates", tier="full",
    description="Zipf update stream: 20k updates over 1M keys in 4 s, 3 models (60/30/10% traffic)",
    load=lambda: generate_updates(20_000, 1_000_000, 4.0, simulated_hours=1.0, seed=5),
    size={"n_updates": 20_000, "n_keys": 1_000_000}))
register(Workload(
    name="ekko-updates-paper", kind="updates", tier="full",
    description="Paper-scale stream: 1M updates over 10M keys in 200 s, 3 models",
    load=lambda: generate_updates(1_000_000, 10_000_000, 200.0, simulated_hours=1.0, seed=5),
    size={"n_updates": 1_000_000, "n_keys": 10_000_000}))
register(Workload(
    name="ekko-ctr-quick", kind="clickstream", tier="quick",
    description="online CTR model (2k users, 5k items, dim 8) on a drifting click stream, 150 steps of 2k impressions",
    load=lambda: CtrRun(steps=150, seed=0), size={"steps": 150}))
register(Workload(
    name="ekko-ctr-full", kind="clickstream", tier="full",
    description="online CTR model (2k users, 5k items, dim 8) on a drifting click stream, 600 steps of 2k impressions",
    load=lambda: CtrRun(steps=600, seed=0), size={"steps": 600}))
