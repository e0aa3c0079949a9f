"""Ekko on the simulated WAN: convergence after faults, no acknowledged update lost; baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baselines.adam_push import simulate_adam
from baselines.checkpoint_broadcast import broadcast_time_s, simulate_checkpoint_broadcast
from impls.ekko.core import ProtocolConfig
from impls.ekko.scheduler import SchedulerConfig
from impls.ekko.sim import cover_times, simulate_ekko
from wan.network import FaultEvent, FaultSchedule, WanConfig, random_fault_schedule
from workloads.ekko_updates import generate_updates

STREAM = generate_updates(1500, 3000, 1.0, simulated_hours=3.0, seed=11)
WAN = WanConfig(n_dcs=4, servers_per_dc=2, topology="geo")
PROTO = ProtocolConfig(n_origins=WAN.n_servers, cache_capacity=16, sync_interval_s=0.02)


@pytest.fixture(scope="module")
def fault_free():
    return simulate_ekko(STREAM, WAN, PROTO, n_shards=8, seed=0)


def _assert_same_as_fault_free(result, fault_free) -> None:
    assert result.converged
    assert result.digests == fault_free.digests          # same keys, values and versions everywhere
    assert all(d == result.digests[0] for d in result.digests)
    assert np.isfinite(result.latencies).all()            # every acknowledged update reached every DC


def test_fault_free_run_converges(fault_free) -> None:
    assert fault_free.converged
    assert all(d == fault_free.digests[0] for d in fault_free.digests)
    assert np.isfinite(fault_free.latencies).all()
    assert fault_free.figures["wan_payload_bytes"] > 0 and fault_free.figures["wan_meta_bytes"] > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_fault_schedule_converges_to_fault_free_state(seed: int, fault_free) -> None:
    faults = random_fault_schedule(WAN, until_s=1.0, seed=seed, n_events=6, loss=0.1, duplication=0.1,
                                   reorder_jitter_s=0.05)
    result = simulate_ekko(STREAM, WAN, PROTO, n_shards=8, faults=faults, seed=seed)
    _assert_same_as_fault_free(result, fault_free)
    assert result.figures["dropped_messages"] > 0


def test_origin_crash_holds_writes_until_restart(fault_free) -> None:
    faults = FaultSchedule([FaultEvent(0.2, "crash", 0), FaultEvent(0.6, "restart", 0),
                            FaultEvent(0.3, "partition", 0, 1), FaultEvent(0.8, "heal", 0, 1)])
    result = simulate_ekko(STREAM, WAN, PROTO, n_shards=8, faults=faults)
    _assert_same_as_fault_free(result, fault_free)
    assert result.latencies.max() >= 0.3   # updates for the crashed origin waited for its restart


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), loss=st.floats(0, 0.3), dup=st.floats(0, 0.3), n_events=st.integers(0, 8))
def test_any_fault_mix_converges(seed: int, loss: float, dup: float, n_events: int, fault_free) -> None:
    faults = random_fault_schedule(WAN, until_s=1.0, seed=seed, n_events=n_events, loss=loss, duplication=dup,
                                   reorder_jitter_s=0.03)
    _assert_same_as_fault_free(simulate_ekko(STREAM, WAN, PROTO, n_shards=8, faults=faults, seed=seed), fault_free)


def test_no_cache_ablation_same_state_more_keys_compared(fault_free) -> None:
    from dataclasses import replace

    result = simulate_ekko(STREAM, WAN, replace(PROTO, use_cache=False), n_shards=8)
    assert result.digests == fault_free.digests
    assert result.figures["keys_compared_per_sync"] > fault_free.figures["keys_compared_per_sync"]


def test_priority_scheduler_coalesces_and_still_delivers_everything() -> None:
    sched = SchedulerConfig(percentile=80.0, low_flush_s=0.3)
    result = simulate_ekko(STREAM, WAN, PROTO, n_shards=8, scheduler=sched)
    fifo = simulate_ekko(STREAM, WAN, PROTO, n_shards=8)
    assert result.converged and np.isfinite(result.latencies).all()
    assert result.figures["writes"] < fifo.figures["writes"]
    # The newest value of every key is the same as without the scheduler.
    assert result.digests != [] and len({tuple(sorted(d.items())) for d in result.digests}) == 1


def test_cover_times_against_loop() -> None:
    rng = np.random.default_rng(0)
    wk = rng.integers(0, 5, 50)
    wv = np.arange(50) * 3 + 1
    ek, ev = wk[::2].copy(), wv[::2].copy()
    et = np.arange(len(ek), dtype=float)
    got = cover_times(wk, wv, ek, ev, et)
    for i in range(50):
        cands = [et[j] for j in range(len(ek)) if ek[j] == wk[i] and ev[j] >= wv[i]]
        assert got[i] == (min(cands) if cands else np.inf)


def test_adam_latency_grows_with_dcs_and_commits_everything() -> None:
    lat = []
    for n in (2, 6):
        r = simulate_adam(STREAM, WanConfig(n_dcs=n, servers_per_dc=2), row_bytes=256, n_shards=8)
        assert r.figures["unreplicated_updates"] == 0
        lat.append(r.figures["latency_p50_s"])
    assert lat[1] > lat[0]


def test_checkpoint_broadcast_waits_for_the_next_checkpoint() -> None:
    wan = WanConfig(n_dcs=3, servers_per_dc=1)
    r = simulate_checkpoint_broadcast(STREAM, wan, period_s=60.0, validate_s=5.0, row_bytes=100)
    expected = 60.0 - STREAM.times + 5.0 + broadcast_time_s(wan, r.figures["model_bytes"])
    np.testing.assert_allclose(r.latencies, expected)


def test_bad_wan_inputs_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="topology"):
        WanConfig(topology="ring")
    with pytest.raises(ValueError, match="nic_bandwidth_bps"):
        WanConfig(nic_bandwidth_bps=-1)
    with pytest.raises(ValueError, match="lan_latency_s"):
        WanConfig(lan_latency_s=-0.1)
    with pytest.raises(ValueError, match="row 1, column 2 is inf"):
        WanConfig(n_dcs=2, latency_matrix=((0.0, float("inf")), (0.01, 0.0)))
    with pytest.raises(ValueError, match="row 1, column 2 is -0.01.*positive"):
        WanConfig(n_dcs=2, latency_matrix=((0.0, -0.01), (0.01, 0.0)))
    with pytest.raises(ValueError, match="loss"):
        FaultSchedule(loss=1.5)


def _uniform_run(n_dcs: int, offered_load: float, seed: int, **proto):
    """A fault-free run on a uniform 50 ms matrix at `offered_load` of one NIC, 64 KB rows."""
    row = 65536
    wan = WanConfig(n_dcs=n_dcs, servers_per_dc=3, topology="uniform", uniform_latency_s=0.05)
    rate = offered_load * wan.nic_bandwidth_bps / (row * 8)
    stream = generate_updates(600, 50_000, 600 / rate, seed=seed)
    config = ProtocolConfig(n_origins=wan.n_servers, cache_capacity=20, sync_interval_s=0.02, row_bytes=row, **proto)
    return simulate_ekko(stream, wan, config, n_shards=12, seed=seed)


def test_overlapping_pipelined_pulls_send_no_row_twice(fresh_rng) -> None:
    seed = int(fresh_rng.integers(1 << 16))
    result = _uniform_run(6, 0.1, seed)
    assert result.converged
    # Every write crosses into each other DC at most once (fewer when a key is overwritten before a pull).
    assert 0.5 < result.figures["wan_payload_over_min"] <= 1.0
    assert result.figures["pulls_held"] > 0   # long polls were held and released by writes


def test_light_load_latency_stays_near_the_floor(fresh_rng) -> None:
    seed = int(fresh_rng.integers(1 << 16))
    result = _uniform_run(4, 0.1, seed)
    f = result.figures
    assert f["floor_s"] == pytest.approx(0.05 + 65536 * 8 / 5e9 + 2 * 0.0002)
    assert 1.0 <= f["p50_over_floor"] < 2.0     # one hop from the origin, no round to wait for
    adam = simulate_adam(generate_updates(600, 50_000, 600 / (0.1 * 5e9 / (65536 * 8)), seed=seed),
                         WanConfig(n_dcs=4, servers_per_dc=3, topology="uniform", uniform_latency_s=0.05),
                         row_bytes=65536, n_shards=12)
    assert adam.figures["p50_over_floor"] >= 3.0   # prepare, vote, commit: three one-way trips
