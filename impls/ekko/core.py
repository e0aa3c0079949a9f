"""Ekko's dissemination protocol, sans-IO.

Nothing here owns a socket or a clock: `EkkoServer` takes messages and the current
time in, and gives back `Send` actions (message, destination, size) and `Applied`
actions (which key versions became visible, for latency accounting).  The
discrete-event WAN (`impls.ekko.sim`) and the real-process transport
(`impls.ekko.process`) drive this same code.

Versions.  A write gets the version (timestamp in microseconds, origin server id),
packed into one int64 as `ts << 16 | origin` so that versions order totally
(last-writer-wins) and compare as plain integers.  An origin's timestamps for one
shard strictly increase.  A replica's *version vector* (per origin, a timestamp)
is a claim: for every origin o, the newest write of every key among o's writes up to
vv[o] is held here (or a newer version of that key is).

Pulls.  A pull carries the requester's vector as the answer's *base*; the answer
carries every key whose version is newer than the base entry of its origin (and not
newer than an optional timestamp cap), and the responder's vector (capped) as its
*top*.  The requester applies the rows at once (last writer wins) and raises its
vector to the top only once its own vector covers the base: that keeps the claim
true when answers overlap, arrive out of order or are lost.  Answers whose base is
not covered yet wait in a small stash.

Pipelining.  Pulls to different peers are independent, and up to
`max_outstanding_per_peer` may be outstanding to one peer.  The responder
remembers the tops of answers it sent that the requester still awaits, and raises
the base of the next answer to them, so overlapping pulls do not carry the same rows
twice.  A pull that finds nothing new is held (long poll) until something newer
arrives or `hold_s` passes, so a write leaves on a pull that is already waiting.

Cost of an answer.  Three checks, cheapest first:
1. shard version: a counter bumped on every local change; if the requester already
   has (or is being sent) everything at the responder's current (incarnation, shard
   version), nothing is compared;
2. hot-key cache plus dominator version vector (DVV): the cache holds recently
   updated keys; evicting a key merges its version into the DVV.  If the base
   dominates the DVV, only cached keys are compared: O(cached keys), not O(keys);
3. otherwise a full scan of the shard (vectorised).
Each replica also keeps, per origin, the newest timestamp it holds (vector and rows): an
answer whose base is at or above it selects no row on any path, so its comparison is
skipped (the answer and its `keys_compared` stay what the path gives), and a held long
poll is rechecked with that test alone, without building its answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wan.wire import HEADER_BYTES, KEY_BYTES, SHARD_ENTRY_BYTES, VERSION_BYTES, VV_ENTRY_BYTES

ORIGIN_BITS = 16
ORIGIN_MASK = (1 << ORIGIN_BITS) - 1
MAX_ORIGINS = 1 << ORIGIN_BITS
NO_CAP = -1
NONE = np.zeros(0, dtype=np.int64)   # shared empty key/version list (read-only)
NONE.flags.writeable = False
STASH_LIMIT = 32      # answers waiting for their base; dropping one only costs a later re-pull


def make_version(ts_us: int, origin: int) -> int:
    return (int(ts_us) << ORIGIN_BITS) | int(origin)


@dataclass(frozen=True)
class ProtocolConfig:
    """Knobs of the dissemination protocol.

    `cache_capacity` is in keys per shard replica; `use_cache=False` is the
    "P2P without cache/DVV" ablation (every changed shard is fully scanned).
    Every `sync_interval_s` a server pulls from its primary peer and from `fanout - 1`
    random others, each while fewer than `max_outstanding_per_peer` pulls to it are
    unanswered.  Pulls to the others are capped at `secondary_grace_s` ago: they repair
    what the primary should have delivered by now, and do not duplicate it.
    A pull unanswered after `pull_timeout_s` counts as lost.  A pull that finds nothing
    new is held up to `hold_s` (`long_poll=False` answers at once).
    `row_bytes` is the wire size of one parameter row (the payload).
    `keys_per_shard` is the shard's full key count (keys never updated in the run are
    not materialised, but a full scan still has to compare them); 0 means the keys held.
    """

    n_origins: int
    dim: int = 4
    cache_capacity: int = 256
    use_cache: bool = True
    fanout: int = 2
    sync_interval_s: float = 0.05
    max_outstanding_per_peer: int = 8
    long_poll: bool = True
    hold_s: float = 0.4
    secondary_grace_s: float = 1.0
    row_bytes: int = 256
    pull_timeout_s: float = 1.0
    keys_per_shard: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.n_origins <= MAX_ORIGINS:
            raise ValueError(f"n_origins must be in 1..{MAX_ORIGINS}, got {self.n_origins}")
        if self.cache_capacity < 1:
            raise ValueError(f"cache_capacity must be >= 1, got {self.cache_capacity}")
        if self.fanout < 1:
            raise ValueError(f"fanout must be >= 1, got {self.fanout}")
        if self.max_outstanding_per_peer < 1:
            raise ValueError(f"max_outstanding_per_peer must be >= 1, got {self.max_outstanding_per_peer}")
        for name in ("sync_interval_s", "pull_timeout_s", "hold_s", "secondary_grace_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.hold_s >= self.pull_timeout_s:
            raise ValueError(f"hold_s ({self.hold_s}) must be below pull_timeout_s ({self.pull_timeout_s})")
        if self.row_bytes < 0:
            raise ValueError(f"row_bytes must be >= 0, got {self.row_bytes}")


# ------------------------------------------------------------------------------ messages


@dataclass
class ShardPull:
    shard: int
    vv: np.ndarray            # requester's version vector: the base of the answer
    seen_incarnation: int     # responder incarnation at the requester's last merged answer
    seen_shard_version: int   # responder shard version at that answer (-1: none)


@dataclass
class ShardDelta:
    shard: int
    path: str                 # "unchanged" | "cache" | "full"
    keys: np.ndarray
    versions: np.ndarray
    values: np.ndarray
    base: np.ndarray          # every newer version (up to the cap) is in this answer
    vv: np.ndarray            # the top: what the requester holds once its vector covers `base`
    incarnation: int
    shard_version: int
    keys_compared: int


@dataclass
class PullRequest:
    src: int
    shards: list[ShardPull]
    pull_id: int = 0
    cap_us: int = NO_CAP                        # answer only versions with timestamp <= cap
    outstanding: tuple[int, ...] = ()           # earlier pulls to this responder still unanswered here
    may_hold: bool = False                      # long poll: hold until something newer arrives
    own_writes_only: bool = False               # answer only with the responder's own writes


@dataclass
class PullResponse:
    src: int
    shards: list[ShardDelta]
    pull_id: int = 0


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


def _vv_bytes(vectors: list[np.ndarray]) -> int:
    """Wire size of version vectors: only the nonzero entries are sent."""
    return int(np.count_nonzero(np.concatenate(vectors))) * VV_ENTRY_BYTES if vectors else 0


def request_bytes(req: PullRequest) -> tuple[int, int]:
    return 0, (HEADER_BYTES + 8 * len(req.outstanding) + SHARD_ENTRY_BYTES * len(req.shards)
               + _vv_bytes([s.vv for s in req.shards]))


def response_bytes(resp: PullResponse, row_bytes: int) -> tuple[int, int]:
    n_rows = sum(len(d.keys) for d in resp.shards)
    meta = (HEADER_BYTES + SHARD_ENTRY_BYTES * len(resp.shards) + _vv_bytes([x for d in resp.shards for x in (d.vv, d.base)])
            + n_rows * (KEY_BYTES + VERSION_BYTES))
    return n_rows * row_bytes, meta


# ------------------------------------------------------------------------------ replica


class HotKeyCache:
    """The hot-key cache: the `capacity` most recently updated slots, touched in batches.

    Members sit in a flat array (so an answer reads them without a Python loop), each
    with the stamp of its last touch; when a batch does not fit, one argpartition keeps
    the most recently touched of members and newcomers (what a one-by-one LRU keeps).
    `touch` returns the evicted slots, which the replica folds into its DVV.  Slots are
    a replica's dense storage indices, so `position` is an array indexed by slot (-1:
    not cached), grown as slots appear: a touch looks its slots up without a Python loop.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.slots = np.empty(capacity, dtype=np.int64)
        self.stamps = np.empty(capacity, dtype=np.int64)
        self.position = np.full(64, -1, dtype=np.int64)
        self.n = 0
        self.clock = 0

    def __len__(self) -> int:
        return self.n

    def members(self) -> np.ndarray:
        return self.slots[:self.n]

    def _place(self, slots: np.ndarray, stamps: np.ndarray, places: np.ndarray) -> None:
        self.slots[places] = slots
        self.stamps[places] = stamps
        self.position[slots] = places

    def touch(self, slots: np.ndarray) -> np.ndarray:
        """Mark `slots` (distinct, >= 0) as just updated; returns the slots that left (or never entered) the cache."""
        k = len(slots)
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        stamps = np.arange(self.clock, self.clock + k, dtype=np.int64)
        self.clock += k
        top = int(slots.max()) + 1
        if top > len(self.position):
            grown = np.full(max(top, 2 * len(self.position)), -1, dtype=np.int64)
            grown[:len(self.position)] = self.position
            self.position = grown
        pos = self.position[slots]
        hit = pos >= 0
        self.stamps[pos[hit]] = stamps[hit]
        miss = ~hit
        new, new_stamps = slots[miss], stamps[miss]
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
        self.position[evicted] = -1
        self._place(new[~drop_new], new_stamps[~drop_new], np.concatenate([np.arange(n, self.capacity), drop_old]))
        self.n = self.capacity
        return np.concatenate([evicted, new[drop_new]])


class ShardReplica:
    """One replica of one shard: keys, versions, values, version vector, cache, DVV.

    Keys, versions, values and the vector are durable (they survive a crash, as a
    parameter server's store would); the cache, the stash of answers waiting for their
    base and the per-peer memory are volatile.
    """

    def __init__(self, shard: int, config: ProtocolConfig):
        self.shard = shard
        self.config = config
        self.slot_of: dict[int, int] = {}
        self.keys = np.zeros(64, dtype=np.int64)
        self.versions = np.zeros(64, dtype=np.int64)
        self.values = np.zeros((64, config.dim), dtype=np.float32)
        self.no_values = np.zeros((0, config.dim), dtype=np.float32)   # the values of an answer without rows
        self.size = 0
        self.vv = np.zeros(config.n_origins, dtype=np.int64)
        # Per origin, the newest timestamp held: of the vector and of every row (rows can run
        # ahead of the vector while their answer waits for its base).  A base at or above it
        # is answered with no rows, whatever the path, without comparing any.
        self.newest = np.zeros(config.n_origins, dtype=np.int64)
        self.shard_version = 0
        self.incarnation = 0
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.cache = HotKeyCache(self.config.cache_capacity)
        # After a restart nothing is cached, so the DVV must summarise everything held: the
        # newest timestamps, since rows can run ahead of the vector while their answer waits.
        self.dvv = self.newest.copy()
        self.peer_seen: dict[int, tuple[int, int]] = {}
        # Per peer, the top of its latest answer: the peer held at least that then, and a
        # vector only grows, so a pull it holds here (long poll) is not answered with rows
        # that came from it meanwhile.
        self.peer_top: dict[int, np.ndarray] = {}
        self.stash: list[tuple[np.ndarray, np.ndarray, int, int, int]] = []   # (base, top, peer, inc, sv)
        # Responder side: per requester, pull id -> (shard version, top) of answers sent to it
        # that it had not received when it last pulled.
        self.promised: dict[int, dict[int, tuple[int, np.ndarray]]] = {}

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
        self.newest[origin] = max(int(self.newest[origin]), ts)
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
        self.newest[origin] = max(int(self.newest[origin]), int(ts[-1]))
        self.shard_version += n
        self._touch_cache(target)
        return versions

    # -- anti-entropy, requester side
    def pull_for(self, peer: int) -> ShardPull:
        inc, sv = self.peer_seen.get(peer, (-1, -1))
        return ShardPull(self.shard, self.vv.copy(), inc, sv)

    def apply(self, delta: ShardDelta, peer: int) -> tuple[np.ndarray, np.ndarray]:
        """Merge a peer's answer (last-writer-wins); returns the keys and versions that changed here."""
        changed_k = changed_v = NONE
        if delta.path == "unchanged":
            return changed_k, changed_v
        if len(delta.keys):
            keys, versions = delta.keys, delta.versions   # each key at most once per answer
            get = self.slot_of.get
            slots = np.fromiter((get(k, -1) for k in keys.tolist()), dtype=np.int64, count=len(keys))
            held = slots >= 0
            current = np.where(held, self.versions[slots], 0)   # slot -1 reads a valid entry, then discarded
            newer = versions > current
            fresh = newer & ~held
            if fresh.any():
                slots[fresh] = self._new_slots(keys[fresh])
            target = slots[newer]
            self.versions[target] = versions[newer]
            self.values[target] = delta.values[newer]
            changed_k, changed_v = keys[newer], versions[newer]
            self._touch_cache(target)
            np.maximum.at(self.newest, changed_v & ORIGIN_MASK, changed_v >> ORIGIN_BITS)
        self.peer_top[peer] = np.maximum(self.peer_top.get(peer, delta.vv), delta.vv)
        entry = (delta.base, delta.vv, peer, delta.incarnation, delta.shard_version)
        if not self.stash and (self.vv >= delta.base).all():
            raised = self._merge(entry)   # nothing waits: what `_merge_stash` would do with this one alone
        else:
            self.stash.append(entry)
            raised = self._merge_stash()
            if len(self.stash) > STASH_LIMIT:
                del self.stash[0]
        if len(changed_k) or raised:
            self.shard_version += 1
        return changed_k, changed_v

    def _merge_stash(self) -> bool:
        """Raise the vector to every waiting answer's top whose base it covers, until none is left.

        Returns whether the vector rose.
        """
        raised = False
        merged = True
        while merged:
            merged = False
            for i, entry in enumerate(self.stash):
                if (self.vv >= entry[0]).all():
                    raised |= self._merge(entry)
                    del self.stash[i]
                    merged = True
                    break
        return raised

    def _merge(self, entry: tuple[np.ndarray, np.ndarray, int, int, int]) -> bool:
        """Raise the vector to an answer's top (its base is covered); returns whether the vector rose."""
        _, top, peer, inc, sv = entry
        if sv >= 0:   # an uncapped answer: the requester now has everything at (inc, sv)
            seen_inc, seen_sv = self.peer_seen.get(peer, (-1, -1))
            if inc > seen_inc or (inc == seen_inc and sv > seen_sv):
                self.peer_seen[peer] = (inc, sv)
        if (top > self.vv).any():
            np.maximum(self.vv, top, out=self.vv)
            np.maximum(self.newest, top, out=self.newest)
            return True
        return False

    # -- anti-entropy, responder side
    def answer(self, pull: ShardPull, requester: int = -1, outstanding: tuple[int, ...] = (),
               cap_us: int = NO_CAP, only_origin: int | None = None) -> ShardDelta:
        """Every key newer than the effective base (and not newer than the cap), and the (capped) top.

        With `only_origin`, only that origin's versions are answered, and the top claims
        nothing for the other origins (it keeps their base entries).

        The effective base is the pull's vector raised to the top of the requester's
        latest answer here, and to the tops of answers this replica sent to the requester
        that it was still awaiting when it pulled.
        """
        base, seen = self._effective_base(pull, requester, outstanding)
        if seen == self.shard_version:
            return ShardDelta(self.shard, "unchanged", NONE, NONE, self.no_values, base, NONE, self.incarnation,
                              self.shard_version, 0)
        if self.config.use_cache and (base >= self.dvv).all():
            path = "cache"
            slots = self.cache.members()
            compared = len(slots)
        else:
            path = "full"
            slots = None
            compared = max(self.size, self.config.keys_per_shard)
        top, sv = self.vv.copy(), self.shard_version
        if cap_us != NO_CAP:
            top, sv = np.minimum(top, cap_us), -1   # a partial answer does not cover a shard version
        if only_origin is not None:
            top, sv = np.where(np.arange(len(top)) == only_origin, top, np.minimum(top, base)), -1
        if self._nothing_above(base, cap_us, only_origin):   # the comparison would select no row
            return ShardDelta(self.shard, path, NONE, NONE, self.no_values, base, top, self.incarnation, sv, compared)
        if slots is None:
            slots = np.arange(self.size)
        vers = self.versions[slots]
        ts = vers >> ORIGIN_BITS
        newer = ts > base[vers & ORIGIN_MASK]
        if cap_us != NO_CAP:
            newer &= ts <= cap_us
        if only_origin is not None:
            newer &= (vers & ORIGIN_MASK) == only_origin
        slots = slots[newer]
        return ShardDelta(self.shard, path, self.keys[slots], self.versions[slots],
                          self.values[slots], base, top, self.incarnation, sv, compared)

    def _effective_base(self, pull: ShardPull, requester: int, outstanding: tuple[int, ...]) -> tuple[np.ndarray, int]:
        """The pull's base raised to what this replica knows the requester holds or is being sent, and the
        newest shard version of this replica that the requester holds or is being sent (-1: none)."""
        top = self.peer_top.get(requester)
        base = pull.vv if top is None else np.maximum(pull.vv, top)
        seen = pull.seen_shard_version if pull.seen_incarnation == self.incarnation else -1
        promised = self.promised.get(requester)
        if promised:
            # Newest answer first.  A full answer's top is this replica's vector when it was sent,
            # which covers every earlier answer's top (the vector only grows), and its shard
            # version every earlier one: older entries cannot raise base or seen further.
            for pull_id in reversed(promised):
                if pull_id in outstanding:
                    sv, top = promised[pull_id]
                    base = np.maximum(base, top)
                    seen = max(seen, sv)
                    if sv >= 0:
                        break
        return base, seen

    def _nothing_above(self, base: np.ndarray, cap_us: int, only_origin: int | None) -> bool:
        """Whether nothing held, of the origins and times an answer covers, is newer than `base`.

        Then the answer selects no row, and its top (the vector, capped, or kept at the base
        outside `only_origin`) does not rise above the base.
        """
        if only_origin is not None:
            newest = int(self.newest[only_origin])
            return (newest if cap_us == NO_CAP else min(newest, cap_us)) <= int(base[only_origin])
        if cap_us == NO_CAP:
            return bool((self.newest <= base).all())
        return bool((np.minimum(self.newest, cap_us) <= base).all())

    def may_have_news(self, pull: ShardPull, requester: int = -1, outstanding: tuple[int, ...] = (),
                      cap_us: int = NO_CAP, only_origin: int | None = None) -> bool:
        """False when `answer` with these arguments would surely tell nothing (`is_empty`); cheap, for held pulls."""
        base, seen = self._effective_base(pull, requester, outstanding)
        return seen != self.shard_version and not self._nothing_above(base, cap_us, only_origin)

    def promise(self, requester: int, pull_id: int, outstanding: tuple[int, ...], delta: ShardDelta) -> None:
        """Remember a sent answer until the requester says it received it (or gave it up)."""
        kept = {p: e for p, e in self.promised.get(requester, {}).items() if p in outstanding}
        if delta.path != "unchanged":   # a partial answer's top raises bases too; its version is -1
            kept[pull_id] = (delta.shard_version, delta.vv)   # last: entries stay in the order sent
        self.promised[requester] = kept

    def digest(self) -> str:
        """A hash of (key, version, value) over the shard, independent of insertion order."""
        order = np.argsort(self.keys[:self.size], kind="stable")
        h = hashlib.blake2b(digest_size=16)
        h.update(self.keys[:self.size][order].tobytes())
        h.update(self.versions[:self.size][order].tobytes())
        h.update(self.values[:self.size][order].tobytes())
        return h.hexdigest()


def is_empty(delta: ShardDelta) -> bool:
    """Whether an answer would tell the requester nothing: no rows and no vector above its base."""
    return delta.path == "unchanged" or (len(delta.keys) == 0 and bool((delta.vv <= delta.base).all()))


# ------------------------------------------------------------------------------ server


@dataclass
class SyncStats:
    pulls: int = 0
    held: int = 0
    timeouts: int = 0
    timeouts_by_peer: dict[int, int] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=lambda: {"unchanged": 0, "cache": 0, "full": 0})
    keys_compared: int = 0


class EkkoServer:
    """A parameter server holding replicas of some shards; pulls from its peers in other DCs.

    `peers_by_dc[d]` is the server in DC `d` that holds the same shards (placement
    puts shard s on server `s % servers_per_dc` of every DC); origin server `o` is in
    DC `o // servers_per_dc`.
    """

    def __init__(self, server_id: int, dc: int, shards: list[int], peers_by_dc: dict[int, int],
                 config: ProtocolConfig, seed: int = 0, servers_per_dc: int = 1):
        self.id = server_id
        self.dc = dc
        self.config = config
        self.servers_per_dc = servers_per_dc
        self.replicas = {s: ShardReplica(s, config) for s in shards}
        self.peers_by_dc = peers_by_dc
        self.others = [p for d, p in sorted(peers_by_dc.items()) if d != dc]
        self.rng = np.random.default_rng((seed, server_id))
        self.stats = SyncStats()
        self.up = True
        self.next_pull_id = 0
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.outstanding: dict[int, dict[int, float]] = {p: {} for p in self.others}   # peer -> pull id -> sent at
        self.held: dict[int, list[tuple[PullRequest, float]]] = {}   # requester -> held pulls, oldest first
        self.peer_fresh: dict[int, int] = {}     # peer -> newest timestamp (µs) its last answer carried
        self.lost_at: dict[int, float] = {}      # peer -> when a pull to it was last given up

    # -- lifecycle
    def crash(self) -> None:
        self.up = False

    def restart(self) -> None:
        """Back from a crash: the store survived, everything volatile is gone; pull ids never repeat."""
        self.up = True
        self.next_pull_id = (self.next_pull_id >> 32) + 1 << 32
        self._reset_volatile()
        for replica in self.replicas.values():
            replica.restart()

    # -- writes from training (the driver calls `release` after a batch of them)
    def write(self, shard: int, key: int, value: np.ndarray, now_s: float) -> int:
        return self.replicas[shard].write(key, value, int(now_s * 1e6), self.id)

    def write_batch(self, shard: int, keys: np.ndarray, values: np.ndarray, now_s: np.ndarray) -> np.ndarray:
        stamps = (np.asarray(now_s, dtype=float) * 1e6).astype(np.int64)
        return self.replicas[shard].write_batch(keys, values, stamps, self.id)

    # -- peer choice
    def primaries(self) -> list[int]:
        """The peers to pull from without a cap, chosen on information whose age is known.

        Versions carry the writer's timestamp, so this server knows how old its newest
        news from each origin is.  Every origin heard from within `secondary_grace_s` of
        the newest news is active, and its DC (when it is not this one) is a primary:
        its server holds those writes first.  A peer whose pull was lost within
        `pull_timeout_s` is passed over; failing all that, the peer whose last answer
        carried the newest timestamp.
        """
        latest = np.maximum.reduce([r.vv for r in self.replicas.values()]) if self.replicas else np.zeros(1, np.int64)
        newest = int(latest.max())
        if newest == 0:
            return []
        active = np.flatnonzero((latest > 0) & (latest >= newest - int(self.config.secondary_grace_s * 1e6)))
        out = []
        for dc in sorted({int(o) // self.servers_per_dc for o in active}):
            peer = self.peers_by_dc.get(dc)
            if dc != self.dc and peer is not None and peer not in self.lost_at and peer not in out:
                out.append(peer)
        if not out:
            fresh = [p for p in self.others if p in self.peer_fresh and p not in self.lost_at]
            if fresh:
                out.append(max(fresh, key=lambda p: self.peer_fresh[p]))
        return out

    # -- anti-entropy
    def on_tick(self, now_s: float) -> list[Send]:
        """Give up lost pulls, answer pulls held too long, and send this tick's pulls.

        The primaries get uncapped pulls, which they may hold (long poll); `fanout - 1`
        random others get pulls capped at `secondary_grace_s` ago.  While this server has
        no news at all, it asks every peer for its own writes only (so that no row comes
        twice, from its writer and from a peer that got it first) to find where the news
        is.  A peer with `max_outstanding_per_peer` unanswered pulls gets none.
        """
        c = self.config
        for peer, pending in self.outstanding.items():
            if pending and now_s - min(pending.values()) >= c.pull_timeout_s:
                # A lost pull: the answers to later ones may have been based on it, so give
                # them all up; the next pull names none, and the peer answers from scratch.
                pending.clear()
                self.lost_at[peer] = now_s
                self.stats.timeouts += 1
                self.stats.timeouts_by_peer[peer] = self.stats.timeouts_by_peer.get(peer, 0) + 1
        self.lost_at = {p: t for p, t in self.lost_at.items() if now_s - t < c.pull_timeout_s}
        out = self._release(now_s, expire_before=now_s - c.hold_s)
        if not self.others:
            return out
        primaries = self.primaries()
        if primaries:
            rest = [p for p in self.others if p not in primaries]
            n_random = min(len(rest), c.fanout - 1)
            cap = max(0, int((now_s - c.secondary_grace_s) * 1e6))
            chosen = [(p, NO_CAP, c.long_poll, False) for p in primaries]
            chosen += [(int(p), cap, False, False)
                       for p in self.rng.choice(rest, n_random, replace=False)] if n_random else []
        else:
            chosen = [(p, NO_CAP, c.long_poll, True) for p in self.others]
        for peer, cap_us, may_hold, own_only in chosen:
            if len(self.outstanding[peer]) < c.max_outstanding_per_peer:
                out.append(self._pull(peer, now_s, cap_us, may_hold, own_only))
        return out

    def _pull(self, peer: int, now_s: float, cap_us: int, may_hold: bool, own_only: bool) -> Send:
        pull_id = self.next_pull_id
        self.next_pull_id += 1
        earlier = tuple(self.outstanding[peer])
        self.outstanding[peer][pull_id] = now_s
        self.stats.pulls += 1
        req = PullRequest(self.id, [r.pull_for(peer) for r in self.replicas.values()], pull_id, cap_us, earlier,
                          may_hold, own_only)
        return Send(peer, req, *request_bytes(req))

    def _answer(self, req: PullRequest, force: bool) -> Send | None:
        """The answer to `req`, or None to hold it (long poll) when it would tell nothing and `force` is off."""
        only = self.id if req.own_writes_only else None
        mine = [p for p in req.shards if p.shard in self.replicas]
        if not force and req.may_hold and not any(
                self.replicas[p.shard].may_have_news(p, req.src, req.outstanding, req.cap_us, only) for p in mine):
            return None   # what the check below would find, without building the answers
        deltas = [self.replicas[p.shard].answer(p, req.src, req.outstanding, req.cap_us, only) for p in mine]
        if not force and req.may_hold and all(map(is_empty, deltas)):
            return None
        for d in deltas:
            self.replicas[d.shard].promise(req.src, req.pull_id, req.outstanding, d)
            self.stats.paths[d.path] += 1
            self.stats.keys_compared += d.keys_compared
        resp = PullResponse(self.id, deltas, req.pull_id)
        return Send(req.src, resp, *response_bytes(resp, self.config.row_bytes))

    def release(self, now_s: float) -> list[Send]:
        """Answer held pulls that something new has arrived for (call after local writes)."""
        return self._release(now_s, expire_before=-np.inf)

    def _release(self, now_s: float, expire_before: float) -> list[Send]:
        out = []
        for requester, queue in self.held.items():
            # Only the oldest can gain: a later one's base is raised to the answer just sent.
            while queue:
                req, since = queue[0]
                send = self._answer(req, force=since <= expire_before)
                if send is None:
                    break
                queue.pop(0)
                out.append(send)
        return out

    def on_message(self, message: Any, now_s: float) -> list[Send | Applied]:
        if isinstance(message, PullRequest):
            queue = self.held.setdefault(message.src, [])
            if queue:   # answer in order: this one waits behind the pulls already held
                queue.append((message, now_s))
                return []
            send = self._answer(message, force=False)
            if send is None:
                self.stats.held += 1
                queue.append((message, now_s))
                return []
            return [send]
        if isinstance(message, PullResponse):
            self.outstanding.get(message.src, {}).pop(message.pull_id, None)
            out: list[Send | Applied] = []
            changed = False
            for delta in message.shards:
                keys, versions = self.replicas[delta.shard].apply(delta, message.src)
                changed |= delta.path != "unchanged"
                if len(keys):
                    out.append(Applied(self.id, delta.shard, keys, versions))
            tops = [d.vv for d in message.shards if len(d.vv)]
            if tops:
                newest = int(np.concatenate(tops).max())
                self.peer_fresh[message.src] = max(self.peer_fresh.get(message.src, 0), newest)
            if changed:
                out.extend(self.release(now_s))
            return out
        raise ValueError(f"server {self.id}: unknown message type {type(message).__name__}")

    def digests(self) -> dict[int, str]:
        return {s: r.digest() for s, r in self.replicas.items()}
