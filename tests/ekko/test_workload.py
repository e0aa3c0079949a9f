"""The update-stream generator, the trace loader, the geo latency matrix and the CTR model."""

from __future__ import annotations

import numpy as np
import pytest

from wan.latency import validate_latency_matrix
from workloads.ekko_updates import (ClickStream, CtrModel, at_rate, generate_updates, geo_latency_matrix,
                                    load_update_trace, logloss)


def test_stream_shape_popularity_and_new_keys() -> None:
    s = generate_updates(20_000, 100_000, 10.0, touched_per_hour=0.03, simulated_hours=1.0,
                         new_key_fraction=0.02, model_shares=(0.5, 0.5), seed=3)
    assert len(s) == 20_000 and np.all(np.diff(s.times) >= 0)
    existing = s.keys[s.keys < s.n_keys]
    assert len(np.unique(existing)) <= 0.03 * 100_000            # at most 3% of the keys touched
    counts = np.sort(np.bincount(existing))[::-1]
    assert counts[0] > 20 * np.median(counts[counts > 0])      # Zipf: a few keys are very hot
    assert 0.01 < s.is_new.mean() < 0.03 and np.all(s.keys[s.is_new] >= s.n_keys)
    assert abs(np.mean(s.models == 0) - 0.5) < 0.02
    again = generate_updates(20_000, 100_000, 10.0, new_key_fraction=0.02, model_shares=(0.5, 0.5), seed=3)
    np.testing.assert_array_equal(s.keys, again.keys)


def test_generator_rejects_bad_shares() -> None:
    with pytest.raises(ValueError, match="model_shares"):
        generate_updates(10, 10, 1.0, model_shares=(0.5, 0.6))


def test_trace_round_trip(tmp_path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("time_s,key,model,magnitude\n0.0,5,0,0.1\n0.5,7,1,0.2\n\n1.0,5,1,0.3\n")
    s = load_update_trace(path)
    assert s.keys.tolist() == [5, 7, 5] and s.models.tolist() == [0, 1, 1]
    assert s.model_shares == pytest.approx((1 / 3, 2 / 3))


@pytest.mark.parametrize("body,message", [
    ("time,key,model,magnitude\n", ":1: header"),
    ("time_s,key,model,magnitude\n0.0,5,0\n", ":2: expected 4 columns"),
    ("time_s,key,model,magnitude\n0.0,x,0,0.1\n", ":2: cannot parse"),
    ("time_s,key,model,magnitude\n1.0,5,0,0.1\n0.5,5,0,0.1\n", ":3: time_s"),
    ("time_s,key,model,magnitude\n0.0,-5,0,0.1\n", ":2: key and model"),
    ("time_s,key,model,magnitude\n0.0,5,0,nan\n", ":2: magnitude"),
    ("time_s,key,model,magnitude\n", "no updates"),
])
def test_malformed_trace_names_file_and_line(tmp_path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match="bad.csv" + ".*" if message == "no updates" else "bad.csv" + message):
        load_update_trace(path)


def test_missing_trace_file_is_a_value_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot open"):
        load_update_trace(tmp_path / "absent.csv")


def test_geo_matrix_is_symmetric_and_in_band() -> None:
    lat = geo_latency_matrix(12)
    np.testing.assert_allclose(lat, lat.T)
    off = lat[~np.eye(12, dtype=bool)]
    assert off.min() >= 0.010 and off.max() <= 0.150
    assert lat[0, 1] < lat[0, 8]    # Shanghai-Beijing is nearer than Shanghai-Virginia
    with pytest.raises(ValueError, match="n_dcs"):
        geo_latency_matrix(0)
    with pytest.raises(ValueError, match="square"):
        validate_latency_matrix(np.zeros((2, 3)))


def test_ctr_model_learns() -> None:
    clicks = ClickStream(n_users=300, n_items=500, batch=1000, drift=0.0, seed=1)
    model = CtrModel(clicks.n_users, clicks.n_items, clicks.dim, lr=0.2)
    losses = []
    for _ in range(60):
        u, i, y = clicks.step()
        losses.append(logloss(CtrModel.predict_with(model.item_rows, model.user_emb, u, i), y))
        touched, delta = model.train_step(u, i, y)
        assert len(touched) == len(delta) and np.all(delta >= 0)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_at_rate_keeps_order_and_spacing(fresh_rng) -> None:
    s = generate_updates(500, 1000, 2.0, seed=int(fresh_rng.integers(1 << 16)))
    rate = float(fresh_rng.uniform(10, 10_000))
    r = at_rate(s, rate)
    assert len(r) / r.duration_s == pytest.approx(rate)
    np.testing.assert_allclose(r.times / r.duration_s, s.times / s.duration_s)
    np.testing.assert_array_equal(r.keys, s.keys)
    with pytest.raises(ValueError, match="updates_per_s"):
        at_rate(s, 0.0)
