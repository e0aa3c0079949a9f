"""The sans-IO protocol against a plain last-writer-wins reference."""

from __future__ import annotations

import numpy as np
import pytest

from impls.ekko.core import (CACHE, FULL, UNCHANGED, EkkoServer, ProtocolConfig, PullRequest, PullResponse,
                             Send, ShardDeltas, ShardGroup, make_version)


def _reference_state(writes: list[tuple[int, int, np.ndarray]]) -> dict[int, tuple[int, bytes]]:
    """Last-writer-wins over every write: key -> (version, value bytes)."""
    out: dict[int, tuple[int, bytes]] = {}
    for key, version, value in writes:
        if key not in out or version > out[key][0]:
            out[key] = (version, value.tobytes())
    return out


def _state(replica: ShardGroup) -> dict[int, tuple[int, bytes]]:
    return {int(replica.keys[i]): (int(replica.versions[i]), replica.values[i].tobytes()) for i in range(replica.size)}


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_pulls_converge_to_lww_reference(use_cache: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    config = ProtocolConfig(n_origins=4, cache_capacity=5, use_cache=use_cache)
    replicas = [ShardGroup([0], config) for _ in range(4)]
    writes = []
    for step in range(400):
        r = int(rng.integers(4))
        if rng.random() < 0.6:
            key, value = int(rng.integers(40)), rng.standard_normal(config.dim).astype(np.float32)
            version = replicas[r].write(0, key, value, step, origin=r)
            writes.append((key, version, value))
        else:
            peer = int((r + rng.integers(1, 4)) % 4)
            replicas[r].apply(replicas[peer].answer(replicas[r].pull_for(peer)), peer)
    for _ in range(2):   # two full all-pairs passes spread everything everywhere
        for r in range(4):
            for peer in range(4):
                if peer != r:
                    replicas[r].apply(replicas[peer].answer(replicas[r].pull_for(peer)), peer)
    ref = _reference_state(writes)
    for replica in replicas:
        assert _state(replica) == ref
    assert len({r.digest(0) for r in replicas}) == 1


def test_cache_path_compares_only_cached_keys() -> None:
    config = ProtocolConfig(n_origins=2, cache_capacity=3, keys_per_shard=1000)
    a, b = ShardGroup([0], config), ShardGroup([0], config)
    for k in range(10):
        a.write(0, k, np.ones(config.dim, np.float32), k + 1, origin=0)
    first = a.answer(b.pull_for(0))
    assert first.paths.tolist() == [FULL] and first.keys_compared.tolist() == [1000] and len(first.keys) == 10
    b.apply(first, 0)
    a.write(0, 3, np.zeros(config.dim, np.float32), 100, origin=0)
    second = a.answer(b.pull_for(0))
    # b's vector dominates a's DVV (it holds every evicted key): only the 3 cached keys are compared.
    assert second.paths.tolist() == [CACHE] and second.keys_compared.tolist() == [3]
    assert second.keys.tolist() == [3]
    b.apply(second, 0)
    assert a.answer(b.pull_for(0)).paths.tolist() == [UNCHANGED]


def test_restart_forgets_cache_but_not_data() -> None:
    config = ProtocolConfig(n_origins=2, cache_capacity=4)
    a = ShardGroup([0], config)
    for k in range(3):
        a.write(0, k, np.full(config.dim, k, np.float32), k + 1, origin=1)
    digest = a.digest(0)
    a.restart()
    assert a.digest(0) == digest and len(a.caches.members(0)) == 0
    np.testing.assert_array_equal(a.dvv, a.vv)   # everything held is summarised by the DVV
    assert a.answer(ShardGroup([0], config).pull_for(0)).paths.tolist() == [FULL]


def test_restart_summarises_rows_that_ran_ahead_of_the_vector() -> None:
    """Rows applied from an answer still waiting for its base are newer than the vector; after a
    restart (cache empty) no answer may claim them in its top without sending them."""
    config = ProtocolConfig(n_origins=3, cache_capacity=4)
    r = ShardGroup([0], config)

    def delta(base: list[int]) -> ShardDeltas:   # one full answer of key 7, top [3, 5, 0], partial
        return ShardDeltas(np.array([0]), np.array([FULL], np.int8), np.array([0]), np.array([7]),
                           np.array([make_version(3, 0)]), np.ones((1, config.dim), np.float32), np.array([base]),
                           np.array([[3, 5, 0]]), 0, np.array([-1]), np.array([1]))

    r.apply(delta([0, 5, 0]), 1)   # origin 1 up to 5 is not held yet: the row is stored, the vector waits
    assert r.vv.tolist() == [[0, 0, 0]] and r.version_of(7) == make_version(3, 0)
    r.restart()
    # Later the base arrives, and a repeat of the row, which is not newer: no cache touch.
    r.apply(delta([0, 0, 0]), 1)
    assert r.vv.tolist() == [[3, 5, 0]]
    answer = r.answer(ShardGroup([0], config).pull_for(0))
    assert answer.vv[0, 0] >= 3 and 7 in answer.keys.tolist()
    assert r.dvv[0, 0] == 3


def test_versions_order_by_time_then_origin() -> None:
    assert make_version(5, 1) > make_version(5, 0) > make_version(4, 9)


def test_server_round_trip_and_applied_actions() -> None:
    config = ProtocolConfig(n_origins=2, fanout=1)
    a = EkkoServer(0, 0, [0], {0: 0, 1: 1}, config)
    b = EkkoServer(1, 1, [0], {0: 0, 1: 1}, config)
    a.write(0, 7, np.ones(config.dim, np.float32), 1.0)
    (req,) = b.on_tick(1.0)
    assert isinstance(req.message, PullRequest) and req.dst == 0
    (resp,) = a.on_message(req.message, 1.0)
    assert isinstance(resp.message, PullResponse) and resp.payload_bytes == config.row_bytes
    (applied,) = b.on_message(resp.message, 1.1)
    assert applied.keys.tolist() == [7]
    assert a.digests() == b.digests()


def _sync(servers: dict[int, EkkoServer], now: float, ticks: int) -> float:
    """`ticks` sync rounds, every message delivered at once, in order."""
    for _ in range(ticks):
        now += 0.05
        queue = [send for s in servers.values() for send in s.on_tick(now)]
        while queue:
            send = queue.pop(0)
            queue += [a for a in servers[send.dst].on_message(send.message, now) if isinstance(a, Send)]
    return now


def test_a_server_that_comes_back_with_less_than_it_had_is_sent_it_again(fresh_rng) -> None:
    # A process whose replicated rows were not durable restarts empty, in a new incarnation.  Its peer
    # remembers the tops of its answers from before ("it holds at least that"): trusted for the new
    # incarnation, they would raise the base of its pulls and the lost rows would never come again.
    config = ProtocolConfig(n_origins=2, fanout=1)
    written: set[int] = set()   # random keys may repeat: a rewrite adds no row

    def write(origin: EkkoServer, n: int, now: float) -> None:
        for key in fresh_rng.integers(0, 10**6, n).tolist():
            origin.write(0, key, fresh_rng.standard_normal(config.dim).astype(np.float32), now)
            written.add(key)
        origin.release(now)

    servers = {0: EkkoServer(0, 0, [0], {0: 0, 1: 1}, config), 1: EkkoServer(1, 1, [0], {0: 0, 1: 1}, config)}
    write(servers[0], 200, 0.0)
    now = _sync(servers, 0.0, 40)
    assert servers[0].digests() == servers[1].digests() and servers[0].group.peer_top[1][1].max() > 0
    servers[1] = EkkoServer(1, 1, [0], {0: 0, 1: 1}, config)
    servers[1].group.incarnation = 1
    write(servers[0], 200, now)
    _sync(servers, now, 40)
    assert servers[1].group.size == servers[0].group.size == len(written)
    assert servers[0].digests() == servers[1].digests()


def test_protocol_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="cache_capacity"):
        ProtocolConfig(n_origins=2, cache_capacity=0)
    with pytest.raises(ValueError, match="fanout"):
        ProtocolConfig(n_origins=2, fanout=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_hot_key_cache_matches_a_sequential_lru(seed: int) -> None:
    from collections import OrderedDict

    from impls.ekko.core import HotKeyCaches

    rng = np.random.default_rng(seed)
    cache, reference = HotKeyCaches(1, 8, 30), OrderedDict()
    versions, dvv = np.zeros(30, np.int64), np.zeros((1, 1), np.int64)
    for _ in range(200):
        batch = rng.choice(30, size=int(rng.integers(1, 12)), replace=False)
        left = set(cache.touch(np.zeros(len(batch), np.int64), batch, versions, dvv).tolist())
        expected_left = set()
        for slot in batch.tolist():
            reference.pop(slot, None)
            reference[slot] = None
            if len(reference) > 8:
                expected_left.add(reference.popitem(last=False)[0])
        assert cache.members(0).tolist() == list(reference)   # the same keys, oldest first
        assert left == expected_left - set(reference)


def test_write_batch_gives_the_versions_of_one_by_one_writes() -> None:
    rng = np.random.default_rng(3)
    config = ProtocolConfig(n_origins=3, cache_capacity=6)
    one, batch = ShardGroup([0], config), ShardGroup([0], config)
    for round_ in range(5):
        keys = rng.integers(0, 15, 20)
        values = rng.standard_normal((20, config.dim)).astype(np.float32)
        stamps = np.sort(rng.integers(0, 50, 20)) + round_ * 10   # with ties and clock skew
        expected = [one.write(0, int(k), v, int(t), origin=2) for k, v, t in zip(keys, values, stamps)]
        np.testing.assert_array_equal(batch.write_batch(0, keys, values, stamps, origin=2), expected)
        assert batch.digest(0) == one.digest(0)
        np.testing.assert_array_equal(batch.vv, one.vv)
        np.testing.assert_array_equal(batch.dvv, one.dvv)
        assert set(batch.keys[batch.caches.members(0)].tolist()) == set(one.keys[one.caches.members(0)].tolist())


def _reference_base(replica: ShardGroup, pull, requester: int, outstanding: tuple[int, ...]):
    """Shard 0's effective base and seen shard version, maxed over every promised answer the pull awaits."""
    base = pull.vv[0].copy()
    if requester in replica.peer_top:
        base = np.maximum(base, replica.peer_top[requester][1][0])
    seen = int(pull.seen_shard_version[0]) if pull.seen_incarnation[0] == replica.incarnation else -1
    promised = replica.promised.get(requester)
    for e, pull_id in enumerate(promised.ids[:promised.n].tolist() if promised else []):
        if pull_id in outstanding and promised.sent[e, 0]:
            base, seen = np.maximum(base, promised.tops[e, 0]), max(seen, int(promised.sv[e, 0]))
    return base, seen


def test_pipelined_answers_match_a_full_comparison_and_held_checks_miss_no_news(fresh_rng) -> None:
    """Random writes, overlapping pulls (capped, own-writes-only), answers applied out of order or lost, restarts."""
    from impls.ekko.core import NO_CAP, ORIGIN_BITS, ORIGIN_MASK, is_empty

    rng = fresh_rng
    config = ProtocolConfig(n_origins=3, cache_capacity=4, keys_per_shard=60)
    replicas = [ShardGroup([0], config) for _ in range(3)]
    awaiting: dict[tuple[int, int], list[int]] = {(r, p): [] for r in range(3) for p in range(3) if r != p}
    in_flight: list[tuple[int, int, int, object]] = []   # (requester, responder, pull id, answer)
    pull_ids = iter(range(10**6))
    for step in range(1, 800):
        r, action = int(rng.integers(3)), rng.random()
        if action < 0.35:
            replicas[r].write(0, int(rng.integers(30)), rng.standard_normal(config.dim).astype(np.float32), step,
                              origin=r)
        elif action < 0.75:
            p = int((r + rng.integers(1, 3)) % 3)
            responder, pull = replicas[p], replicas[r].pull_for(p)
            cap = NO_CAP if rng.random() < 0.6 else int(rng.integers(0, step + 1))
            only = p if rng.random() < 0.2 else None
            outstanding = tuple(awaiting[(r, p)])
            ref_base, ref_seen = _reference_base(responder, pull, r, outstanding)
            held = responder.answer(pull, r, outstanding, cap, only, hold=True)
            delta = responder.answer(pull, r, outstanding, cap, only)
            np.testing.assert_array_equal(delta.base[0], ref_base)
            if ref_seen == responder.shard_version[0]:
                assert delta.paths.tolist() == [UNCHANGED]
            else:
                def newer_keys(slots: np.ndarray, up_to_top: bool = False) -> list[int]:
                    vers = responder.versions[slots]
                    ts, origin = vers >> ORIGIN_BITS, vers & ORIGIN_MASK
                    newer = (ts > ref_base[origin]) & ((ts <= cap) | (cap == NO_CAP)) & ((origin == only) | (only is None))
                    return sorted(responder.keys[slots][newer & ((ts <= delta.vv[0, origin]) | (not up_to_top))].tolist())

                # Exactly the rows its path compares and selects, and every row the top claims.
                compared = responder.caches.members(0) if delta.paths[0] == CACHE else np.arange(responder.size)
                assert sorted(delta.keys.tolist()) == newer_keys(compared)
                assert set(newer_keys(np.arange(responder.size), up_to_top=True)) <= set(delta.keys.tolist())
            assert (held is None) == is_empty(delta)   # a long poll is held exactly when it would tell nothing
            pull_id = next(pull_ids)
            responder.promise(r, pull_id, outstanding, delta)
            awaiting[(r, p)].append(pull_id)
            in_flight.append((r, p, pull_id, delta))
        elif action < 0.97 and in_flight:
            r, p, pull_id, delta = in_flight.pop(int(rng.integers(len(in_flight))))
            if pull_id in awaiting[(r, p)]:
                awaiting[(r, p)].remove(pull_id)
                if rng.random() < 0.9:   # else lost
                    replicas[r].apply(delta, p)
        else:
            replicas[r].restart()
            for key in awaiting:
                if r in key:
                    awaiting[key].clear()
    for _ in range(2):   # settle: plain pulls everywhere
        for r in range(3):
            for p in range(3):
                if p != r:
                    replicas[r].apply(replicas[p].answer(replicas[r].pull_for(p)), p)
    assert len({replica.digest(0) for replica in replicas}) == 1


def test_a_key_is_of_one_shard_only() -> None:
    config = ProtocolConfig(n_origins=2, cache_capacity=4)
    g = ShardGroup([0, 1], config)
    g.write(0, 5, np.ones(config.dim, np.float32), 1, origin=0)
    with pytest.raises(ValueError, match="key 5 is of shard 0, not of shard 1"):
        g.write(1, 5, np.ones(config.dim, np.float32), 2, origin=0)
    with pytest.raises(ValueError, match="key 5 is of shard 0, not of shard 1"):
        g.write_batch(1, np.array([6, 5]), np.ones((2, config.dim), np.float32), np.array([3, 4]), origin=0)
    other = ShardGroup([0, 1], config)
    other.write(1, 5, np.ones(config.dim, np.float32), 1, origin=1)   # the same key under shard 1
    with pytest.raises(ValueError, match="key 5 is of shard 0, not of shard 1"):
        g.apply(other.answer(g.pull_for(1)), 1)
    assert g.digest(1) == ShardGroup([0, 1], config).digest(1)   # nothing of the refused writes was stored


def test_a_group_of_shards_answers_and_merges_as_its_shards_would_one_by_one(fresh_rng) -> None:
    """Three shards in one group against three one-shard groups, under the same random writes, overlapping
    capped or own-writes-only pulls, answers applied out of order or lost, and restarts."""
    from impls.ekko.core import NO_CAP

    rng, shards = fresh_rng, [0, 1, 2]
    config = ProtocolConfig(n_origins=3, cache_capacity=3, keys_per_shard=40)
    group = [ShardGroup(shards, config) for _ in range(3)]
    alone = [[ShardGroup([s], config) for s in shards] for _ in range(3)]
    awaiting: dict[tuple[int, int], list[int]] = {(r, p): [] for r in range(3) for p in range(3) if r != p}
    in_flight: list[tuple[int, int, int, object, list]] = []
    for step in range(1, 600):
        r, action = int(rng.integers(3)), rng.random()
        if action < 0.35:
            key, value = int(rng.integers(60)), rng.standard_normal(config.dim).astype(np.float32)
            version = group[r].write(key % 3, key, value, step, origin=r)
            assert version == alone[r][key % 3].write(key % 3, key, value, step, origin=r)
        elif action < 0.75:
            p = int((r + rng.integers(1, 3)) % 3)
            cap = NO_CAP if rng.random() < 0.6 else int(rng.integers(0, step + 1))
            only = p if rng.random() < 0.2 else None
            out = tuple(awaiting[(r, p)])
            both = group[p].answer(group[r].pull_for(p), r, out, cap, only)
            each = [alone[p][s].answer(alone[r][s].pull_for(p), r, out, cap, only) for s in shards]
            for s, one in zip(shards, each):
                assert both.paths[s] == one.paths[0] and both.keys_compared[s] == one.keys_compared[0]
                assert both.shard_versions[s] == one.shard_versions[0]
                np.testing.assert_array_equal(both.base[s], one.base[0])
                np.testing.assert_array_equal(both.vv[s], one.vv[0])
                assert both.keys[both.row_shard == s].tolist() == one.keys.tolist()   # the same rows, in order
            held = group[p].answer(group[r].pull_for(p), r, out, cap, only, hold=True)
            assert (held is None) == all(alone[p][s].answer(alone[r][s].pull_for(p), r, out, cap, only, hold=True)
                                         is None for s in shards)
            pull_id = step
            group[p].promise(r, pull_id, out, both)
            for s, one in zip(shards, each):
                alone[p][s].promise(r, pull_id, out, one)
            awaiting[(r, p)].append(pull_id)
            in_flight.append((r, p, pull_id, both, each))
        elif action < 0.97 and in_flight:
            r, p, pull_id, both, each = in_flight.pop(int(rng.integers(len(in_flight))))
            if pull_id in awaiting[(r, p)]:
                awaiting[(r, p)].remove(pull_id)
                if rng.random() < 0.9:   # else lost
                    changed = group[r].apply(both, p)[0]
                    changed_alone = [k for s in shards for k in alone[r][s].apply(each[s], p)[0].tolist()]
                    assert sorted(changed.tolist()) == sorted(changed_alone)
        else:
            group[r].restart()
            for one in alone[r]:
                one.restart()
            for key in awaiting:
                if r in key:
                    awaiting[key].clear()
        for r in range(3):
            for s in shards:
                one = alone[r][s]
                assert group[r].digest(s) == one.digest(s)
                np.testing.assert_array_equal(group[r].vv[s], one.vv[0])
                np.testing.assert_array_equal(group[r].dvv[s], one.dvv[0])
                assert group[r].shard_version[s] == one.shard_version[0]
                assert group[r].caches.members(s).size == one.caches.members(0).size
