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

Layout.  The replicas of the shards one server holds are one `ShardGroup`: every
per-shard array has a row per shard, and all shards share one key store.  So a pull
asks, and an answer carries, all of a server's shards at once (`ShardPulls`,
`ShardDeltas`), and the loops over shards and rows run compiled (`impls.ekko.kernels`),
one call per message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from impls.ekko import kernels
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

UNCHANGED, CACHE, FULL = 0, 1, 2
PATHS = ("unchanged", "cache", "full")   # an answer's path per shard, by code


@dataclass
class ShardPulls:
    """What a requester asks one peer, for each shard it holds (one entry or row per shard)."""

    shards: np.ndarray               # (S,) shard ids
    vv: np.ndarray                   # (S, origins): the requester's version vectors, the answers' bases
    seen_incarnation: np.ndarray     # (S,) responder incarnation at the requester's last merged answer
    seen_shard_version: np.ndarray   # (S,) responder shard version at that answer (-1: none)
    incarnation: int                 # the requester's: what it claimed before a restart may be gone


@dataclass
class ShardDeltas:
    """A responder's answers for the shards of one pull: per shard a path, a base and a top; rows of all shards."""

    shards: np.ndarray          # (S,) shard ids
    paths: np.ndarray           # (S,) UNCHANGED | CACHE | FULL
    row_shard: np.ndarray       # (R,) which shard (index into `shards`) each row is of; rows grouped by shard
    keys: np.ndarray            # (R,)
    versions: np.ndarray        # (R,)
    values: np.ndarray          # (R, dim)
    base: np.ndarray            # (S, origins): every newer version (up to the cap) is in this answer
    vv: np.ndarray              # (S, origins): the tops (zero, and not sent, for unchanged shards)
    incarnation: int
    shard_versions: np.ndarray  # (S,)
    keys_compared: np.ndarray   # (S,)


@dataclass
class PullRequest:
    src: int
    pulls: ShardPulls
    pull_id: int = 0
    cap_us: int = NO_CAP                        # answer only versions with timestamp <= cap
    outstanding: tuple[int, ...] = ()           # earlier pulls to this responder still unanswered here
    may_hold: bool = False                      # long poll: hold until something newer arrives
    own_writes_only: bool = False               # answer only with the responder's own writes


@dataclass
class PullResponse:
    src: int
    deltas: ShardDeltas
    pull_id: int = 0


@dataclass
class Send:
    dst: int
    message: Any
    payload_bytes: int
    meta_bytes: int


@dataclass
class Applied:
    """Key versions that became visible at `server` (for latency accounting)."""

    server: int
    keys: np.ndarray
    versions: np.ndarray


def request_bytes(req: PullRequest) -> tuple[int, int]:
    """Wire size of a pull; of version vectors only the nonzero entries are sent."""
    p = req.pulls
    return 0, (HEADER_BYTES + 8 * len(req.outstanding) + SHARD_ENTRY_BYTES * len(p.shards)
               + int(np.count_nonzero(p.vv)) * VV_ENTRY_BYTES)


def response_bytes(resp: PullResponse, row_bytes: int) -> tuple[int, int]:
    d = resp.deltas
    n_rows = len(d.keys)
    meta = (HEADER_BYTES + SHARD_ENTRY_BYTES * len(d.shards)
            + (int(np.count_nonzero(d.vv)) + int(np.count_nonzero(d.base))) * VV_ENTRY_BYTES
            + n_rows * (KEY_BYTES + VERSION_BYTES))
    return n_rows * row_bytes, meta


def is_empty(delta: ShardDeltas) -> bool:
    """Whether answers would tell the requester nothing: no rows and no top above its base."""
    return len(delta.keys) == 0 and bool((delta.vv <= delta.base).all())


# ------------------------------------------------------------------------------ replicas


class HotKeyCaches:
    """The hot-key caches of a group's shards: per shard, the `capacity` most recently updated slots.

    Each shard's cache is a list, oldest first, linked through slot-indexed arrays, so a
    touch or a listing is one compiled loop (`kernels.touch`, `kernels.members`).  A batch
    of touches keeps what a one-by-one LRU keeps; the slots that leave have their versions
    folded into the shard's DVV.
    """

    def __init__(self, n_shards: int, capacity: int, n_slots: int):
        self.capacity = capacity
        self.prev = np.full(n_slots, -1, dtype=np.int64)
        self.next = np.full(n_slots, -1, dtype=np.int64)
        self.cached = np.zeros(n_slots, dtype=bool)
        self.head = np.full(n_shards, -1, dtype=np.int64)
        self.tail = np.full(n_shards, -1, dtype=np.int64)
        self.count = np.zeros(n_shards, dtype=np.int64)

    def grow(self, n_slots: int) -> None:
        pad = n_slots - len(self.cached)
        self.prev = np.concatenate([self.prev, np.full(pad, -1, np.int64)])
        self.next = np.concatenate([self.next, np.full(pad, -1, np.int64)])
        self.cached = np.concatenate([self.cached, np.zeros(pad, bool)])

    def touch(self, rows: np.ndarray, slots: np.ndarray, versions: np.ndarray, dvv: np.ndarray) -> np.ndarray:
        """Mark `slots` (distinct, grouped by shard `rows`) as just updated; returns the slots that left."""
        return kernels.touch(rows, slots, self.capacity, self.prev, self.next, self.cached, self.head, self.tail,
                             self.count, versions, dvv)

    def members(self, row: int) -> np.ndarray:
        return kernels.members(row, self.head, self.next, self.count)


class Promised:
    """A responder's sent answers that one requester still awaited at its last pull, oldest first.

    Rows of preallocated arrays (a requester has at most `max_outstanding_per_peer` pulls
    out to one peer), grown if a requester names more.
    """

    def __init__(self, n_shards: int, n_origins: int, room: int):
        self.n = 0
        self.ids = np.zeros(room, dtype=np.int64)                # pull ids
        self.sent = np.zeros((room, n_shards), dtype=bool)       # per answer and shard: answered (not unchanged)
        self.sv = np.zeros((room, n_shards), dtype=np.int64)     # shard versions (-1: partial)
        self.tops = np.zeros((room, n_shards, n_origins), dtype=np.int64)

    def keep(self, outstanding: tuple[int, ...]) -> None:
        """Forget the answers the requester no longer awaits (received, or given up)."""
        kept = [k for k, i in enumerate(self.ids[:self.n].tolist()) if i in outstanding]
        if len(kept) < self.n:
            self.n = len(kept)
            for a in (self.ids, self.sent, self.sv, self.tops):
                a[:self.n] = a[kept]

    def add(self, pull_id: int, rows: np.ndarray, live: np.ndarray, shard_versions: np.ndarray,
            tops: np.ndarray) -> None:
        n = self.n
        if n == len(self.ids):
            self.ids, self.sent, self.sv, self.tops = (np.concatenate([a, np.zeros_like(a)])
                                                       for a in (self.ids, self.sent, self.sv, self.tops))
        self.ids[n] = pull_id
        self.sent[n] = False
        self.sent[n, rows[live]] = True
        self.sv[n] = -1
        self.sv[n, rows] = shard_versions
        self.tops[n] = 0
        self.tops[n, rows] = tops
        self.n += 1


class ShardGroup:
    """The replicas of the shards one server holds, one row per shard in every per-shard array.

    Per shard: version vector, newest timestamps, DVV, shard version, hot-key cache, and per
    peer the tops and shard versions seen.  The rows of all shards share one key store (a
    key belongs to one shard), so one pull's answers, and one answer's merge, are one compiled
    call for all shards (`impls.ekko.kernels`) instead of a dozen numpy calls per shard.

    Keys, versions, values and the vectors are durable (they survive a crash, as a
    parameter server's store would); caches, the stash of answers waiting for their base
    and the per-peer memory are volatile.  A crash takes the whole server, so the shards
    share one incarnation.
    """

    def __init__(self, shards: list[int], config: ProtocolConfig):
        self.config = config
        self.shards = np.asarray(shards, dtype=np.int64)
        self.row_of = {int(s): i for i, s in enumerate(self.shards.tolist())}
        self._shard_bytes = self.shards.tobytes()   # a message names a peer's shards: the same ones, in order
        self._all_rows = np.arange(len(self.shards))
        n, o = len(self.shards), config.n_origins
        self.slot_of: dict[int, int] = {}
        self.keys = np.zeros(64, dtype=np.int64)
        self.versions = np.zeros(64, dtype=np.int64)
        self.values = np.zeros((64, config.dim), dtype=np.float32)
        self.slot_row = np.zeros(64, dtype=np.int64)           # the shard (row) of each slot
        self.no_values = np.zeros((0, config.dim), dtype=np.float32)   # the values of an answer without rows
        self.size = 0
        self.sizes = np.zeros(n, dtype=np.int64)               # keys held, per shard
        self.vv = np.zeros((n, o), dtype=np.int64)
        # Per shard and origin, the newest timestamp held: of the vector and of every row (rows can
        # run ahead of the vector while their answer waits for its base).  A base at or above it
        # is answered with no rows, whatever the path, without comparing any.
        self.newest = np.zeros((n, o), dtype=np.int64)
        self.shard_version = np.zeros(n, dtype=np.int64)
        self.incarnation = 0
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        n = len(self.shards)
        self.caches = HotKeyCaches(n, self.config.cache_capacity, len(self.keys))
        # After a restart nothing is cached, so the DVV must summarise everything held: the
        # newest timestamps, since rows can run ahead of the vector while their answer waits.
        self.dvv = self.newest.copy()
        # Per peer, per shard, (incarnation, shard version) of its latest merged uncapped answer.
        self.peer_seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # Per peer, per shard, the top of its latest answer: the peer held at least that then, and
        # a vector only grows, so a pull it holds here (long poll) is not answered with rows that
        # came from it meanwhile.  Zero (nothing claimed) until an answer arrives.  A vector grows
        # within one incarnation only (a server may come back with less than it had: a process
        # whose replicated rows were not durable), so the tops are kept with the peer's incarnation
        # they came from, and trusted only for pulls of that incarnation: peer -> (incarnation, tops).
        self.peer_top: dict[int, tuple[int, np.ndarray]] = {}
        self.stash: list[list[tuple[np.ndarray, np.ndarray, int, int, int]]] = [[] for _ in range(n)]
        self.waiting = np.zeros(n, dtype=bool)   # per shard: the stash is not empty
        # Responder side: per requester, the answers sent to it that it had not received when it last
        # pulled, oldest first: their pull ids, and per answer and shard whether it answered (not
        # unchanged), its shard version and its top.
        self.promised: dict[int, Promised] = {}
        self._none_promised = Promised(n, self.config.n_origins, 0)

    def restart(self) -> None:
        self.incarnation += 1
        self._reset_volatile()

    # -- storage
    def _reserve(self, extra: int) -> None:
        need = self.size + extra
        if need > len(self.keys):
            grow = max(need, 2 * len(self.keys))
            pad = grow - len(self.keys)
            self.keys = np.concatenate([self.keys, np.zeros(pad, np.int64)])
            self.versions = np.concatenate([self.versions, np.zeros(pad, np.int64)])
            self.values = np.concatenate([self.values, np.zeros((pad, self.config.dim), np.float32)])
            self.slot_row = np.concatenate([self.slot_row, np.zeros(pad, np.int64)])
            self.caches.grow(grow)

    def _new_slots(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Slots for keys not held yet (each key once), of the shards at `rows`."""
        self._reserve(len(keys))
        slots = np.arange(self.size, self.size + len(keys))
        self.keys[slots] = keys
        self.slot_row[slots] = rows
        np.add.at(self.sizes, rows, 1)
        self.slot_of.update(zip(keys.tolist(), slots.tolist()))
        self.size += len(keys)
        return slots

    def _lookup(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The slots of `keys` (-1: not held); each key held must be of the shard at its row in `rows`."""
        get = self.slot_of.get
        slots = np.fromiter((get(k, -1) for k in keys.tolist()), dtype=np.int64, count=len(keys))
        wrong = (slots >= 0) & (self.slot_row[np.maximum(slots, 0)] != rows)
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            self._wrong_shard(int(keys[i]), int(slots[i]), int(rows[i]))
        return slots

    def _wrong_shard(self, key: int, slot: int, row: int) -> None:
        # A key in two shards would corrupt both shards' caches and vectors.
        raise ValueError(f"key {key} is of shard {int(self.shards[self.slot_row[slot]])}, "
                         f"not of shard {int(self.shards[row])}")

    def _touch_caches(self, rows: np.ndarray, slots: np.ndarray) -> None:
        if self.config.use_cache and len(slots):
            self.caches.touch(rows, slots, self.versions, self.dvv)

    def row(self, shard: int) -> int:
        row = self.row_of.get(shard)
        if row is None:
            raise ValueError(f"shard {shard} is not held here")
        return row

    def vv_of(self, shard: int) -> np.ndarray:
        return self.vv[self.row(shard)]

    def _rows(self, shards: np.ndarray) -> np.ndarray:
        """The rows of `shards` here (-1: not held)."""
        if shards.tobytes() == self._shard_bytes:
            return self._all_rows
        get = self.row_of.get
        return np.fromiter((get(s, -1) for s in shards.tolist()), dtype=np.int64, count=len(shards))

    def version_of(self, key: int) -> int:
        slot = self.slot_of.get(key)
        return 0 if slot is None else int(self.versions[slot])

    def write(self, shard: int, key: int, value: np.ndarray, now_us: int, origin: int) -> int:
        """A local commit by `origin` (this group's server); returns the new version."""
        row = self.row(shard)
        slot = self.slot_of.get(key, -1)
        if slot >= 0 and self.slot_row[slot] != row:
            self._wrong_shard(key, slot, row)
        current = int(self.versions[slot]) if slot >= 0 else 0
        ts = max(int(now_us), int(self.vv[row, origin]) + 1, (current >> ORIGIN_BITS) + 1)
        version = make_version(ts, origin)
        if slot < 0:
            slot = int(self._new_slots(np.array([key], dtype=np.int64), np.array([row]))[0])
        self.versions[slot] = version
        self.values[slot] = value
        self.vv[row, origin] = ts
        self.newest[row, origin] = max(int(self.newest[row, origin]), ts)
        self.shard_version[row] += 1
        self._touch_caches(np.array([row]), np.array([slot], dtype=np.int64))
        return version

    def write_batch(self, shard: int, keys: np.ndarray, values: np.ndarray, now_us: np.ndarray,
                    origin: int) -> np.ndarray:
        """Local commits of many keys of one shard at once, with the versions `write` would give one by one.

        `write` gives ts_i = max(now_i, ts_(i-1) + 1, current_ts(key_i) + 1); unrolled,
        ts_i = i + max(vv + 1, running max of (max(now_j, current_ts(key_j) + 1) - j)).
        A key written twice in the batch keeps its last write.
        """
        row = self.row(shard)
        keys = np.asarray(keys, dtype=np.int64)
        n = len(keys)
        if n == 0:
            return NONE
        slots = self._lookup(keys, np.full(n, row))
        current_ts = np.where(slots >= 0, self.versions[np.maximum(slots, 0)] >> ORIGIN_BITS, 0)
        floor = np.maximum(np.asarray(now_us, dtype=np.int64), current_ts + 1)
        steps = np.arange(n, dtype=np.int64)
        ts = steps + np.maximum(int(self.vv[row, origin]) + 1, np.maximum.accumulate(floor - steps))
        versions = (ts << ORIGIN_BITS) | origin
        # The last write of each key wins; its position also sets the key's cache recency.
        last = n - 1 - np.unique(keys[::-1], return_index=True)[1]
        last.sort()
        fresh = last[slots[last] < 0]
        if len(fresh):
            slots[fresh] = self._new_slots(keys[fresh], np.full(len(fresh), row))
        target = slots[last]
        self.versions[target] = versions[last]
        self.values[target] = values[last]
        self.vv[row, origin] = ts[-1]
        self.newest[row, origin] = max(int(self.newest[row, origin]), int(ts[-1]))
        self.shard_version[row] += n
        self._touch_caches(np.full(len(target), row), target)
        return versions

    # -- anti-entropy, requester side
    def pull_for(self, peer: int) -> ShardPulls:
        seen = self.peer_seen.get(peer)
        if seen is None:
            none = np.full(len(self.shards), -1, dtype=np.int64)
            return ShardPulls(self.shards, self.vv.copy(), none, none, self.incarnation)
        return ShardPulls(self.shards, self.vv.copy(), seen[0].copy(), seen[1].copy(), self.incarnation)

    def apply(self, delta: ShardDeltas, peer: int) -> tuple[np.ndarray, np.ndarray]:
        """Merge a peer's answers (last-writer-wins); returns the keys and versions that changed here.

        Rows are stored at once (each key at most once per answer).  A shard's vector rises to
        the answer's top only once it covers the answer's base; until then the answer waits in
        the shard's stash, with any earlier ones.
        """
        rows = self._rows(delta.shards)
        if (rows < 0).any():
            raise ValueError(f"an answer names shard {int(delta.shards[rows < 0][0])}, which is not held here")
        slots = self._lookup(delta.keys, rows[delta.row_shard])
        fresh = slots < 0   # not held: any version is newer
        if fresh.any():
            slots[fresh] = self._new_slots(delta.keys[fresh], rows[delta.row_shard[fresh]])
        peer_top = self._peer_top(peer, delta.incarnation)
        if peer_top is None:
            peer_top = np.zeros_like(self.vv)
            self.peer_top[peer] = (delta.incarnation, peer_top)
        seen_inc, seen_sv = self._seen(peer)
        c = self.caches
        newer, wait, changed = kernels.apply(
            rows, delta.row_shard, slots, delta.versions, delta.values, delta.paths, delta.base, delta.vv,
            delta.shard_versions, delta.incarnation, self.versions, self.values, self.newest, self.vv, peer_top,
            seen_inc, seen_sv, self.waiting, self.config.use_cache, c.capacity, c.prev, c.next, c.cached, c.head, c.tail,
            c.count, self.dvv)
        for i in wait.tolist():
            row = int(rows[i])
            stash = self.stash[row]
            stash.append((delta.base[i], delta.vv[i], peer, delta.incarnation, int(delta.shard_versions[i])))
            changed[row] |= self._merge_stash(row)
            if len(stash) > STASH_LIMIT:
                del stash[0]
            self.waiting[row] = bool(stash)
        self.shard_version += changed
        return delta.keys[newer], delta.versions[newer]

    def _peer_top(self, peer: int, incarnation: int) -> np.ndarray | None:
        """The tops of the peer's answers in `incarnation`; None if none came in it (or only in an earlier one)."""
        inc, tops = self.peer_top.get(peer, (None, None))
        return tops if inc == incarnation else None

    def _seen(self, peer: int) -> tuple[np.ndarray, np.ndarray]:
        """Per shard, (incarnation, shard version) of the peer's latest merged uncapped answer (-1: none)."""
        seen = self.peer_seen.get(peer)
        if seen is None:
            n = len(self.shards)
            seen = self.peer_seen[peer] = (np.full(n, -1, np.int64), np.full(n, -1, np.int64))
        return seen

    def _merge_stash(self, row: int) -> bool:
        """Raise a shard's vector to every waiting answer's top whose base it covers, until none is left.

        Returns whether the vector rose.
        """
        raised = False
        stash = self.stash[row]
        merged = True
        while merged:
            merged = False
            for i, (base, top, peer, inc, sv) in enumerate(stash):
                if (self.vv[row] >= base).all():
                    raised |= kernels.merge(row, top, inc, sv, self.vv, self.newest, *self._seen(peer))
                    del stash[i]
                    merged = True
                    break
        return raised

    # -- anti-entropy, responder side
    def answer(self, pulls: ShardPulls, requester: int = -1, outstanding: tuple[int, ...] = (),
               cap_us: int = NO_CAP, only_origin: int | None = None, hold: bool = False) -> ShardDeltas | None:
        """Per shard held of `pulls`: every key newer than the effective base (not newer than the cap), and the top.

        With `only_origin`, only that origin's versions are answered, and the tops claim
        nothing for the other origins (they keep their base entries).  With `hold` (a long
        poll), None instead of answers that would tell the requester nothing (`is_empty`).

        The effective base is the pull's vector raised to the top of the requester's
        latest answer here, and to the tops of answers sent to the requester that it was
        still awaiting when it pulled.  Per shard, three checks, cheapest first: the shard
        version the requester holds or is being sent (unchanged: nothing compared), the base
        against the DVV (cache: only cached keys compared), else a full scan; and no row is
        compared where nothing held is newer than the base.
        """
        rows, pulls = self._held(pulls)
        peer_top = self._peer_top(requester, pulls.incarnation)
        p = self.promised.get(requester) or self._none_promised
        c = self.caches
        paths, base, top, sv, compared, slots, row_shard, news = kernels.answer(
            rows, pulls.vv, pulls.seen_incarnation, pulls.seen_shard_version, self.incarnation,
            self.vv if peer_top is None else peer_top, peer_top is not None, p.ids[:p.n], p.sent, p.sv, p.tops,
            np.array(outstanding, dtype=np.int64),
            self.vv, self.newest, self.dvv, self.shard_version, self.sizes, c.head, c.next, c.count, self.slot_row,
            self.size, self.versions, cap_us, -1 if only_origin is None else only_origin, self.config.use_cache,
            self.config.keys_per_shard, hold)
        if hold and not news:
            return None   # what `is_empty` would find, without selecting rows
        deltas = ShardDeltas(pulls.shards, paths, row_shard, self.keys[slots], self.versions[slots],
                             self.values[slots], base, top, self.incarnation, sv, compared)
        return None if hold and is_empty(deltas) else deltas

    def _held(self, pulls: ShardPulls) -> tuple[np.ndarray, ShardPulls]:
        """The rows of the shards of `pulls` held here, and the pulls of those shards."""
        if pulls.shards.tobytes() == self._shard_bytes:
            return self._all_rows, pulls
        rows = self._rows(pulls.shards)
        if (rows >= 0).all():
            return rows, pulls
        mine = rows >= 0
        return rows[mine], ShardPulls(pulls.shards[mine], pulls.vv[mine], pulls.seen_incarnation[mine],
                                      pulls.seen_shard_version[mine], pulls.incarnation)

    def promise(self, requester: int, pull_id: int, outstanding: tuple[int, ...], delta: ShardDeltas) -> None:
        """Remember sent answers until the requester says it received them (or gave them up)."""
        promised = self.promised.get(requester)
        if promised is None:
            promised = self.promised[requester] = Promised(len(self.shards), self.config.n_origins,
                                                           self.config.max_outstanding_per_peer + 1)
        promised.keep(outstanding)
        live = delta.paths != UNCHANGED   # a partial answer's top raises bases too; its version is -1
        if live.any():
            promised.add(pull_id, self._rows(delta.shards), live, delta.shard_versions, delta.vv)

    def digest(self, shard: int) -> str:
        """A hash of (key, version, value) over one shard, independent of insertion order."""
        slots = np.flatnonzero(self.slot_row[:self.size] == self.row(shard))
        slots = slots[np.argsort(self.keys[slots], kind="stable")]
        h = hashlib.blake2b(digest_size=16)
        h.update(self.keys[slots].tobytes())
        h.update(self.versions[slots].tobytes())
        h.update(self.values[slots].tobytes())
        return h.hexdigest()


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
        self.group = ShardGroup(shards, config)
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
        self.group.restart()

    # -- writes from training (the driver calls `release` after a batch of them)
    def write(self, shard: int, key: int, value: np.ndarray, now_s: float) -> int:
        return self.group.write(shard, key, value, int(now_s * 1e6), self.id)

    def write_batch(self, shard: int, keys: np.ndarray, values: np.ndarray, now_s: np.ndarray) -> np.ndarray:
        stamps = (np.asarray(now_s, dtype=float) * 1e6).astype(np.int64)
        return self.group.write_batch(shard, keys, values, stamps, self.id)

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
        latest = self.group.vv.max(axis=0, initial=0)
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
        req = PullRequest(self.id, self.group.pull_for(peer), pull_id, cap_us, earlier, may_hold, own_only)
        return Send(peer, req, *request_bytes(req))

    def _answer(self, req: PullRequest, force: bool) -> Send | None:
        """The answer to `req`, or None to hold it (long poll) when it would tell nothing and `force` is off."""
        only = self.id if req.own_writes_only else None
        group = self.group
        deltas = group.answer(req.pulls, req.src, req.outstanding, req.cap_us, only, hold=req.may_hold and not force)
        if deltas is None:
            return None
        group.promise(req.src, req.pull_id, req.outstanding, deltas)
        for path, n in zip(PATHS, np.bincount(deltas.paths, minlength=len(PATHS)).tolist()):
            self.stats.paths[path] += n
        self.stats.keys_compared += int(deltas.keys_compared.sum())
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
            deltas = message.deltas
            keys, versions = self.group.apply(deltas, message.src)
            out: list[Send | Applied] = [Applied(self.id, keys, versions)] if len(keys) else []
            live = deltas.paths != UNCHANGED
            if live.any():
                newest = int(deltas.vv[live].max())
                self.peer_fresh[message.src] = max(self.peer_fresh.get(message.src, 0), newest)
                out.extend(self.release(now_s))
            return out
        raise ValueError(f"server {self.id}: unknown message type {type(message).__name__}")

    def digests(self) -> dict[int, str]:
        return {s: self.group.digest(s) for s in self.group.shards.tolist()}
