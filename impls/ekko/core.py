"""Ekko's dissemination protocol, sans-IO.

Nothing here owns a socket or a clock: `EkkoServer` takes messages and the current
time in, and gives back `Send` actions (message, destination, size) and `Applied`
actions (which key versions became visible, for latency accounting).  The
discrete-event WAN (`impls.ekko.sim`) and the real-process transport
(`impls.ekko.process`) drive this same code.

Versions.  A write gets the version (timestamp in microseconds, origin server id),
packed into one int64 as `ts << 16 | origin` so that versions order totally
(last-writer-wins) and compare as plain integers.  An origin's timestamps for one
shard strictly increase, so a replica's *version vector* (per origin, the largest
timestamp seen) summarises exactly the writes it holds: a pull answer carries every
key whose version is newer than the requester's vector entry for its origin, and the
requester then holds a prefix of every origin's writes.

Cost of a sync.  Three checks, cheapest first:
1. shard version: a counter bumped on every local change; if the requester already
   pulled everything at the responder's current (incarnation, shard version), the
   answer is "unchanged" and no key is compared;
2. hot-key cache plus dominator version vector (DVV): the cache holds recently
   updated keys; evicting a key merges its version into the DVV.  If the requester's
   vector dominates the responder's DVV it already has every uncached key, so only
   cached keys are compared: O(cached keys), not O(keys);
3. otherwise a full scan of the shard (vectorised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ORIGIN_BITS = 16
ORIGIN_MASK = (1 << ORIGIN_BITS) - 1
MAX_ORIGINS = 1 << ORIGIN_BITS

#: Wire sizes used for byte accounting (bytes): a key, a packed version, a vector entry,
#: a message header and a per-shard entry header.
KEY_BYTES, VERSION_BYTES, VV_ENTRY_BYTES, HEADER_BYTES, SHARD_ENTRY_BYTES = 8, 8, 12, 32, 16


def make_version(ts_us: int, origin: int) -> int:
    return (int(ts_us) << ORIGIN_BITS) | int(origin)


@dataclass(frozen=True)
class ProtocolConfig:
    """Knobs of the dissemination protocol.

    `cache_capacity` is in keys per shard replica; `use_cache=False` is the
    "P2P without cache/DVV" ablation (every changed shard is fully scanned).
    `fanout` is how many peer DCs each replica pulls from per round.
    `row_bytes` is the wire size of one parameter row (the payload).
    A pull unanswered after `pull_timeout_s` counts as lost and a new round may start.
    `keys_per_shard` is the shard's full key count (keys never updated in the run are
    not materialised, but a full scan still has to compare them); 0 means the keys held.
    `prefer_ahead_peer` makes the first pull of a round go to the peer that looked most
    up to date; otherwise every peer of a round is random.
    """

    n_origins: int
    dim: int = 4
    cache_capacity: int = 256
    use_cache: bool = True
    fanout: int = 2
    sync_interval_s: float = 0.05
    row_bytes: int = 256
    pull_timeout_s: float = 1.0
    keys_per_shard: int = 0
    prefer_ahead_peer: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.n_origins <= MAX_ORIGINS:
            raise ValueError(f"n_origins must be in 1..{MAX_ORIGINS}, got {self.n_origins}")
        if self.cache_capacity < 1:
            raise ValueError(f"cache_capacity must be >= 1, got {self.cache_capacity}")
        if self.fanout < 1:
            raise ValueError(f"fanout must be >= 1, got {self.fanout}")
        if not self.sync_interval_s > 0:
            raise ValueError(f"sync_interval_s must be positive, got {self.sync_interval_s}")
        if not self.pull_timeout_s > 0:
            raise ValueError(f"pull_timeout_s must be positive, got {self.pull_timeout_s}")
        if self.row_bytes < 0:
            raise ValueError(f"row_bytes must be >= 0, got {self.row_bytes}")


# ------------------------------------------------------------------------------ messages


@dataclass
class ShardPull:
    shard: int
    vv: np.ndarray            # requester's version vector (timestamps per origin)
    seen_incarnation: int     # responder incarnation at the requester's last full pull
    seen_shard_version: int   # responder shard version at that pull (-1: none)


@dataclass
class ShardDelta:
    shard: int
    path: str                 # "unchanged" | "cache" | "full"
    keys: np.ndarray
    versions: np.ndarray
    values: np.ndarray
    vv: np.ndarray
    incarnation: int
    shard_version: int
    keys_compared: int


@dataclass
class PullRequest:
    src: int
    shards: list[ShardPull]


@dataclass
class PullResponse:
    src: int
    shards: list[ShardDelta]


@dataclass
class Send:
    dst: int
    message: Any
    payload_bytes: int
    meta_bytes: int


@dataclass
class Applied:
    """Key versions that became visible at `server` for `shard` (for latency accounting)."""

    server: int
    shard: int
    keys: np.ndarray
    versions: np.ndarray


def _vv_bytes(vv: np.ndarray) -> int:
    return int(np.count_nonzero(vv)) * VV_ENTRY_BYTES


def request_bytes(req: PullRequest) -> tuple[int, int]:
    return 0, HEADER_BYTES + sum(SHARD_ENTRY_BYTES + _vv_bytes(s.vv) for s in req.shards)


def response_bytes(resp: PullResponse, row_bytes: int) -> tuple[int, int]:
    payload = sum(len(d.keys) for d in resp.shards) * row_bytes
    meta = HEADER_BYTES + sum(SHARD_ENTRY_BYTES + _vv_bytes(d.vv) + len(d.keys) * (KEY_BYTES + VERSION_BYTES)
                              for d in resp.shards)
    return payload, meta


# ------------------------------------------------------------------------------ replica


class HotKeyCache:
    """The hot-key cache: the `capacity` most recently updated slots, touched in batches.

    Members sit in a flat array (so an answer reads them without a Python loop), each
    with the stamp of its last touch; when a batch does not fit, one argpartition keeps
    the most recently touched of members and newcomers (what a one-by-one LRU keeps).
    `touch` returns the evicted slots, which the replica folds into its DVV.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.slots = np.empty(capacity, dtype=np.int64)
        self.stamps = np.empty(capacity, dtype=np.int64)
        self.position: dict[int, int] = {}
        self.n = 0
        self.clock = 0

    def __len__(self) -> int:
        return self.n

    def members(self) -> np.ndarray:
        return self.slots[:self.n]

    def _place(self, slots: np.ndarray, stamps: np.ndarray, places: np.ndarray) -> None:
        self.slots[places] = slots
        self.stamps[places] = stamps
        self.position.update(zip(slots.tolist(), places.tolist()))

    def touch(self, slots: np.ndarray) -> np.ndarray:
        """Mark `slots` (distinct) as just updated; returns the slots that left (or never entered) the cache."""
        k = len(slots)
        stamps = np.arange(self.clock, self.clock + k, dtype=np.int64)
        self.clock += k
        get = self.position.get
        pos = np.fromiter((get(x, -1) for x in slots.tolist()), dtype=np.int64, count=k)
        hit = pos >= 0
        self.stamps[pos[hit]] = stamps[hit]
        new, new_stamps = slots[~hit], stamps[~hit]
        if len(new) <= self.capacity - self.n:
            self._place(new, new_stamps, np.arange(self.n, self.n + len(new)))
            self.n += len(new)
            return np.zeros(0, dtype=np.int64)
        # Full: keep the `capacity` most recent of members and newcomers, drop the rest.
        n = self.n
        n_drop = n + len(new) - self.capacity
        drop = np.argpartition(np.concatenate([self.stamps[:n], new_stamps]), n_drop - 1)[:n_drop]
        drop_old = drop[drop < n]
        drop_new = np.zeros(len(new), dtype=bool)
        drop_new[drop[drop >= n] - n] = True
        evicted = self.slots[drop_old].copy()
        for x in evicted.tolist():
            del self.position[x]
        self._place(new[~drop_new], new_stamps[~drop_new], np.concatenate([np.arange(n, self.capacity), drop_old]))
        self.n = self.capacity
        return np.concatenate([evicted, new[drop_new]])


class ShardReplica:
    """One replica of one shard: keys, versions, values, version vector, cache, DVV.

    Keys, versions and values are durable (they survive a crash, as a parameter
    server's store would); the cache and the per-peer sync memory are volatile.
    """

    def __init__(self, shard: int, config: ProtocolConfig):
        self.shard = shard
        self.config = config
        self.slot_of: dict[int, int] = {}
        self.keys = np.zeros(64, dtype=np.int64)
        self.versions = np.zeros(64, dtype=np.int64)
        self.values = np.zeros((64, config.dim), dtype=np.float32)
        self.size = 0
        self.vv = np.zeros(config.n_origins, dtype=np.int64)
        self.shard_version = 0
        self.incarnation = 0
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.cache = HotKeyCache(self.config.cache_capacity)
        # After a restart nothing is cached, so the DVV must summarise everything held.
        self.dvv = self.vv.copy()
        self.peer_seen: dict[int, tuple[int, int]] = {}

    def restart(self) -> None:
        self.incarnation += 1
        self._reset_volatile()

    # -- storage
    def _reserve(self, extra: int) -> None:
        need = self.size + extra
        if need > len(self.keys):
            grow = max(need, 2 * len(self.keys))
            self.keys = np.resize(self.keys, grow)
            self.versions = np.concatenate([self.versions, np.zeros(grow - len(self.versions), np.int64)])
            self.values = np.concatenate([self.values, np.zeros((grow - len(self.values), self.config.dim),
                                                                np.float32)])

    def _new_slots(self, keys: np.ndarray) -> np.ndarray:
        """Slots for keys not held yet (each key once)."""
        self._reserve(len(keys))
        slots = np.arange(self.size, self.size + len(keys))
        self.keys[slots] = keys
        self.slot_of.update(zip(keys.tolist(), slots.tolist()))
        self.size += len(keys)
        return slots

    def _slot(self, key: int) -> int:
        slot = self.slot_of.get(key)
        if slot is None:
            slot = int(self._new_slots(np.array([key], dtype=np.int64))[0])
        return slot

    def _touch_cache(self, slots: np.ndarray) -> None:
        if not self.config.use_cache:
            return
        evicted = self.cache.touch(slots)
        if len(evicted):
            v = self.versions[evicted]
            np.maximum.at(self.dvv, v & ORIGIN_MASK, v >> ORIGIN_BITS)

    def version_of(self, key: int) -> int:
        slot = self.slot_of.get(key)
        return 0 if slot is None else int(self.versions[slot])

    def write(self, key: int, value: np.ndarray, now_us: int, origin: int) -> int:
        """A local commit by `origin` (this replica's server); returns the new version."""
        current = self.version_of(key)
        ts = max(int(now_us), int(self.vv[origin]) + 1, (current >> ORIGIN_BITS) + 1)
        version = make_version(ts, origin)
        slot = self._slot(key)
        self.versions[slot] = version
        self.values[slot] = value
        self.vv[origin] = ts
        self.shard_version += 1
        self._touch_cache(np.array([slot], dtype=np.int64))
        return version

    def write_batch(self, keys: np.ndarray, values: np.ndarray, now_us: np.ndarray, origin: int) -> np.ndarray:
        """Local commits of many keys at once, with the versions `write` would give one by one.

        `write` gives ts_i = max(now_i, ts_(i-1) + 1, current_ts(key_i) + 1); unrolled,
        ts_i = i + max(vv + 1, running max of (max(now_j, current_ts(key_j) + 1) - j)).
        A key written twice in the batch keeps its last write.
        """
        keys = np.asarray(keys, dtype=np.int64)
        n = len(keys)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        get = self.slot_of.get
        slots = np.fromiter((get(k, -1) for k in keys.tolist()), dtype=np.int64, count=n)
        current_ts = np.where(slots >= 0, self.versions[np.maximum(slots, 0)] >> ORIGIN_BITS, 0)
        floor = np.maximum(np.asarray(now_us, dtype=np.int64), current_ts + 1)
        steps = np.arange(n, dtype=np.int64)
        ts = steps + np.maximum(int(self.vv[origin]) + 1, np.maximum.accumulate(floor - steps))
        versions = (ts << ORIGIN_BITS) | origin
        # The last write of each key wins; its position also sets the key's cache recency.
        last = n - 1 - np.unique(keys[::-1], return_index=True)[1]
        last.sort()
        fresh = last[slots[last] < 0]
        if len(fresh):
            slots[fresh] = self._new_slots(keys[fresh])
        target = slots[last]
        self.versions[target] = versions[last]
        self.values[target] = values[last]
        self.vv[origin] = ts[-1]
        self.shard_version += n
        self._touch_cache(target)
        return versions

    # -- anti-entropy
    def pull_for(self, peer: int) -> ShardPull:
        inc, sv = self.peer_seen.get(peer, (-1, -1))
        return ShardPull(self.shard, self.vv.copy(), inc, sv)

    def answer(self, pull: ShardPull) -> ShardDelta:
        empty_i = np.zeros(0, np.int64)
        if pull.seen_incarnation == self.incarnation and pull.seen_shard_version == self.shard_version:
            return ShardDelta(self.shard, "unchanged", empty_i, empty_i, np.zeros((0, self.config.dim), np.float32),
                              np.zeros(0, np.int64), self.incarnation, self.shard_version, 0)
        if self.config.use_cache and bool(np.all(pull.vv >= self.dvv)):
            path = "cache"
            slots = self.cache.members()
            compared = len(slots)
        else:
            path = "full"
            slots = np.arange(self.size)
            compared = max(self.size, self.config.keys_per_shard)
        vers = self.versions[slots]
        newer = (vers >> ORIGIN_BITS) > pull.vv[vers & ORIGIN_MASK]
        slots = slots[newer]
        return ShardDelta(self.shard, path, self.keys[slots].copy(), self.versions[slots].copy(),
                          self.values[slots].copy(), self.vv.copy(), self.incarnation, self.shard_version, compared)

    def apply(self, delta: ShardDelta, peer: int) -> tuple[np.ndarray, np.ndarray]:
        """Merge a peer's answer (last-writer-wins); returns the keys and versions that changed here."""
        changed_k = changed_v = np.zeros(0, dtype=np.int64)
        if delta.path != "unchanged":
            if len(delta.keys):
                keys, versions = delta.keys, delta.versions   # each key at most once per answer
                get = self.slot_of.get
                slots = np.fromiter((get(k, -1) for k in keys.tolist()), dtype=np.int64, count=len(keys))
                held = slots >= 0
                current = np.zeros(len(keys), dtype=np.int64)
                current[held] = self.versions[slots[held]]
                newer = versions > current
                fresh = newer & ~held
                if fresh.any():
                    slots[fresh] = self._new_slots(keys[fresh])
                target = slots[newer]
                self.versions[target] = versions[newer]
                self.values[target] = delta.values[newer]
                changed_k, changed_v = keys[newer], versions[newer]
                self._touch_cache(target)
            np.maximum(self.vv, delta.vv, out=self.vv)
            if len(changed_k):
                self.shard_version += 1
        inc, sv = self.peer_seen.get(peer, (-1, -1))
        if delta.incarnation > inc or (delta.incarnation == inc and delta.shard_version > sv):
            self.peer_seen[peer] = (delta.incarnation, delta.shard_version)
        return changed_k, changed_v

    def digest(self) -> str:
        """A hash of (key, version, value) over the shard, independent of insertion order."""
        import hashlib

        order = np.argsort(self.keys[:self.size], kind="stable")
        h = hashlib.blake2b(digest_size=16)
        h.update(self.keys[:self.size][order].tobytes())
        h.update(self.versions[:self.size][order].tobytes())
        h.update(self.values[:self.size][order].tobytes())
        return h.hexdigest()


# ------------------------------------------------------------------------------ server


@dataclass
class SyncStats:
    rounds: int = 0
    paths: dict[str, int] = field(default_factory=lambda: {"unchanged": 0, "cache": 0, "full": 0})
    keys_compared: int = 0


class EkkoServer:
    """A parameter server holding replicas of some shards; pulls from its peers in other DCs.

    `peers_by_dc[d]` is the server in DC `d` that holds the same shards (placement
    puts shard s on server `s % servers_per_dc` of every DC).
    """

    def __init__(self, server_id: int, dc: int, shards: list[int], peers_by_dc: dict[int, int],
                 config: ProtocolConfig, seed: int = 0):
        self.id = server_id
        self.dc = dc
        self.config = config
        self.replicas = {s: ShardReplica(s, config) for s in shards}
        self.peers_by_dc = peers_by_dc
        self.rng = np.random.default_rng((seed, server_id))
        self.stats = SyncStats()
        self.up = True
        self._round: list[int] = []   # peers still to pull from in this round
        self._awaiting = -1           # the peer whose answer the round waits for
        self._sent_at = 0.0
        self.peer_progress: dict[int, int] = {}   # peer -> version-vector sum in its last answer

    # -- lifecycle
    def crash(self) -> None:
        self.up = False

    def restart(self) -> None:
        self.up = True
        self._round, self._awaiting, self.peer_progress = [], -1, {}
        for replica in self.replicas.values():
            replica.restart()

    # -- writes from training
    def write(self, shard: int, key: int, value: np.ndarray, now_s: float) -> int:
        return self.replicas[shard].write(key, value, int(now_s * 1e6), self.id)

    def write_batch(self, shard: int, keys: np.ndarray, values: np.ndarray, now_s: np.ndarray) -> np.ndarray:
        stamps = (np.asarray(now_s, dtype=float) * 1e6).astype(np.int64)
        return self.replicas[shard].write_batch(keys, values, stamps, self.id)

    # -- anti-entropy
    def on_tick(self, now_s: float) -> list[Send]:
        """Start a sync round: pull every shard from `fanout` peer DCs, one after another.

        With `prefer_ahead_peer`, the first peer is the one that looked most up to date in
        earlier answers (the largest version-vector sum), so fresh writes travel one hop
        from where they were made; the others are random, which keeps every pair of DCs
        in touch and spreads the load.  Each pull
        leaves when the previous answer has been applied, so it carries the newer
        version vector and the next peer does not resend what just arrived.  A round
        whose answer is lost for `pull_timeout_s` is replaced by the next one.
        """
        others = [s for d, s in self.peers_by_dc.items() if d != self.dc]
        if not others:
            return []
        if self._awaiting >= 0 and now_s - self._sent_at < self.config.pull_timeout_s:
            return []   # the previous round is still in flight; a second would resend the same rows
        self.stats.rounds += 1
        order = list(self.rng.permutation(others))
        if self.config.prefer_ahead_peer and self.peer_progress:
            best = max(others, key=lambda p: self.peer_progress.get(p, -1))
            order.remove(best)
            order.insert(0, best)
        self._round = [int(p) for p in order[:self.config.fanout]]
        return self._next_pull(now_s)

    def _next_pull(self, now_s: float) -> list[Send]:
        if not self._round:
            return []
        peer = self._round.pop(0)
        self._awaiting, self._sent_at = peer, now_s
        req = PullRequest(self.id, [r.pull_for(peer) for r in self.replicas.values()])
        return [Send(peer, req, *request_bytes(req))]

    def on_message(self, message: Any, now_s: float) -> list[Send | Applied]:
        if isinstance(message, PullRequest):
            deltas = [self.replicas[p.shard].answer(p) for p in message.shards if p.shard in self.replicas]
            for d in deltas:
                self.stats.paths[d.path] += 1
                self.stats.keys_compared += d.keys_compared
            resp = PullResponse(self.id, deltas)
            return [Send(message.src, resp, *response_bytes(resp, self.config.row_bytes))]
        if isinstance(message, PullResponse):
            out: list[Send | Applied] = []
            for delta in message.shards:
                keys, versions = self.replicas[delta.shard].apply(delta, message.src)
                if len(keys):
                    out.append(Applied(self.id, delta.shard, keys, versions))
            self.peer_progress[message.src] = sum(int(d.vv.sum()) for d in message.shards)
            if message.src == self._awaiting:
                self._awaiting = -1
                out.extend(self._next_pull(now_s))
            return out
        raise ValueError(f"server {self.id}: unknown message type {type(message).__name__}")

    def digests(self) -> dict[int, str]:
        return {s: r.digest() for s, r in self.replicas.items()}
