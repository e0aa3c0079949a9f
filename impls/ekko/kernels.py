"""The per-row loops of a shard group, compiled: cache touches, answers and merges.

A server's pull answer or merge covers all its shards at once (`core.ShardGroup`).  In
numpy that is still about a dozen small calls per shard, and at paper scale (millions of
shard answers) their fixed cost is most of the simulator's time; here each is one call
per message.  The loops do what the docstrings of `core` describe, nothing more: the
semantics live there, and `tests/ekko/test_core.py` checks them against plain
references.

Hot-key caches are linked lists through slot-indexed arrays (`prev`, `nxt`, `cached`),
one list per shard (`head`, `tail`, `count`), oldest first: a touch moves a slot to the
tail in O(1), an eviction takes the head.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ORIGIN_BITS = 16
ORIGIN_MASK = (1 << ORIGIN_BITS) - 1
NO_CAP = -1
UNCHANGED, CACHE, FULL = 0, 1, 2


@njit(cache=True, nogil=True)
def _unlink(slot, row, prev, nxt, head, tail):
    p, q = prev[slot], nxt[slot]
    if p >= 0:
        nxt[p] = q
    else:
        head[row] = q
    if q >= 0:
        prev[q] = p
    else:
        tail[row] = p


@njit(cache=True, nogil=True)
def _append(slot, row, prev, nxt, head, tail):
    last = tail[row]
    prev[slot] = last
    nxt[slot] = -1
    if last >= 0:
        nxt[last] = slot
    else:
        head[row] = slot
    tail[row] = slot


@njit(cache=True, nogil=True)
def touch(rows, slots, capacity, prev, nxt, cached, head, tail, count, versions, dvv):
    """Mark `slots` (distinct, grouped by shard `rows`) as just updated; returns the slots that left.

    A batch is one touch per shard: every slot of it moves to its list's tail in batch
    order, then while the shard caches more than `capacity` its oldest slot leaves, and
    that slot's version goes into the shard's DVV.  So the cache keeps what a one-by-one
    LRU keeps, and a slot touched again in the batch is never evicted in between.
    """
    out = np.empty(len(slots), np.int64)
    n_out = 0
    i = 0
    while i < len(slots):
        row = rows[i]
        while i < len(slots) and rows[i] == row:
            s = slots[i]
            if cached[s]:
                _unlink(s, row, prev, nxt, head, tail)
            else:
                cached[s] = True
                count[row] += 1
            _append(s, row, prev, nxt, head, tail)
            i += 1
        while count[row] > capacity:
            h = head[row]
            _unlink(h, row, prev, nxt, head, tail)
            cached[h] = False
            count[row] -= 1
            v = versions[h]
            origin, ts = v & ORIGIN_MASK, v >> ORIGIN_BITS
            if ts > dvv[row, origin]:
                dvv[row, origin] = ts
            out[n_out] = h
            n_out += 1
    return out[:n_out]


@njit(cache=True, nogil=True)
def members(row, head, nxt, count):
    """A shard's cached slots, oldest first."""
    out = np.empty(count[row], np.int64)
    s = head[row]
    for k in range(count[row]):
        out[k] = s
        s = nxt[s]
    return out


@njit(cache=True, nogil=True)
def _among(value, values):
    for v in values:
        if v == value:
            return True
    return False


@njit(cache=True, nogil=True)
def _selects(version, base, cap, only):
    """Whether an answer with this base (and cap, and origin filter) carries a row of this version."""
    ts, origin = version >> ORIGIN_BITS, version & ORIGIN_MASK
    return ts > base[origin] and (cap == NO_CAP or ts <= cap) and (only < 0 or origin == only)


@njit(cache=True, nogil=True)
def answer(rows, pull_vv, seen_inc, seen_sv, incarnation, peer_top, use_peer_top, p_ids, p_sent, p_sv, p_tops,
           outstanding, vv, newest, dvv, shard_version, sizes, head, nxt, count, slot_row, size, versions,
           cap, only, use_cache, keys_per_shard, hold):
    """The answers of one pull for the shards at `rows` (see `core.ShardGroup.answer`).

    `p_*` are the answers promised to the requester, oldest first; those whose pull id is
    among `outstanding` it still awaits.  `only` < 0 means every origin.  Returns paths, bases, tops, shard versions, keys compared, the selected slots and
    the shard (index into `rows`) of each, and whether any shard may have news; with `hold`,
    an answer without news stops before selecting rows.
    """
    n, n_origins = len(rows), vv.shape[1]
    base = np.empty((n, n_origins), np.int64)
    top = np.zeros((n, n_origins), np.int64)
    sv = np.empty(n, np.int64)
    paths = np.empty(n, np.int8)
    compared = np.zeros(n, np.int64)
    search = np.zeros(n, np.bool_)
    partial = cap != NO_CAP or only >= 0
    news = False
    n_candidates = 0
    for i in range(n):
        r = rows[i]
        for o in range(n_origins):
            b = pull_vv[i, o]
            if use_peer_top and peer_top[r, o] > b:
                b = peer_top[r, o]
            base[i, o] = b
        seen = seen_sv[i] if seen_inc[i] == incarnation else -1
        # Newest promised answer first; a full one (shard version >= 0) covers every earlier one.
        for e in range(len(p_ids) - 1, -1, -1):
            if p_sent[e, r] and _among(p_ids[e], outstanding):
                for o in range(n_origins):
                    if p_tops[e, r, o] > base[i, o]:
                        base[i, o] = p_tops[e, r, o]
                if p_sv[e, r] > seen:
                    seen = p_sv[e, r]
                if p_sv[e, r] >= 0:
                    break
        if seen == shard_version[r]:
            paths[i] = UNCHANGED
            sv[i] = shard_version[r]
            continue
        covers = use_cache
        if covers:
            for o in range(n_origins):
                if base[i, o] < dvv[r, o]:
                    covers = False
                    break
        if covers:
            paths[i] = CACHE
            compared[i] = count[r]
        else:
            paths[i] = FULL
            compared[i] = max(sizes[r], keys_per_shard)
        sv[i] = -1 if partial else shard_version[r]
        nothing_above = True
        for o in range(n_origins):
            t = vv[r, o]
            if cap != NO_CAP and t > cap:
                t = cap
            if only >= 0 and o != only and t > base[i, o]:
                t = base[i, o]
            top[i, o] = t
            if only < 0 or o == only:
                held = newest[r, o]
                if cap != NO_CAP and held > cap:
                    held = cap
                if held > base[i, o]:
                    nothing_above = False
        if not nothing_above:
            search[i] = True
            news = True
            n_candidates += count[r] if covers else sizes[r]
    if hold and not news:
        none = np.empty(0, np.int64)
        return paths, base, top, sv, compared, none, none, news
    selected = np.empty(n_candidates, np.int64)
    of = np.empty(n_candidates, np.int64)
    k = 0
    for i in range(n):
        if not search[i]:
            continue
        r = rows[i]
        if paths[i] == CACHE:
            s = head[r]
            while s >= 0:
                if _selects(versions[s], base[i], cap, only):
                    selected[k], of[k] = s, i
                    k += 1
                s = nxt[s]
        else:
            for s in range(size):
                if slot_row[s] == r and _selects(versions[s], base[i], cap, only):
                    selected[k], of[k] = s, i
                    k += 1
    return paths, base, top, sv, compared, selected[:k], of[:k], news


@njit(cache=True, nogil=True)
def merge(row, top, incarnation, shard_version, vv, newest, seen_inc, seen_sv):
    """Raise a shard's vector to an answer's top (its base is covered); returns whether the vector rose.

    An uncapped answer (shard version >= 0) also means the requester now has everything of
    the responder at (incarnation, shard version).
    """
    if shard_version >= 0 and (incarnation > seen_inc[row]
                               or (incarnation == seen_inc[row] and shard_version > seen_sv[row])):
        seen_inc[row] = incarnation
        seen_sv[row] = shard_version
    rose = False
    for o in range(vv.shape[1]):
        t = top[o]
        if t > vv[row, o]:
            vv[row, o] = t
            rose = True
        if t > newest[row, o]:
            newest[row, o] = t
    return rose


@njit(cache=True, nogil=True)
def apply(rows, row_shard, slots, in_versions, in_values, paths, d_base, d_top, d_sv, incarnation,
          versions, values, newest, vv, peer_top, seen_inc, seen_sv, waiting,
          use_cache, capacity, prev, nxt, cached, head, tail, count, dvv):
    """Merge one peer's answers (see `core.ShardGroup.apply`) into the shards at `rows`.

    `slots` are the rows' storage slots (new keys already given one).  Stores the newer
    rows, touches the caches, raises the peer's tops, and for each answer whose base is
    covered and that nothing waits before raises the vector to its top.  Returns which
    rows were newer, the answers (indices into `rows`) that must wait for their base, and
    per shard of the group whether it changed.
    """
    n_rows = len(slots)
    changed = np.zeros(vv.shape[0], np.bool_)
    newer = np.zeros(n_rows, np.bool_)
    touched_rows = np.empty(n_rows, np.int64)
    touched = np.empty(n_rows, np.int64)
    n_touched = 0
    for j in range(n_rows):
        s, v = slots[j], in_versions[j]
        if v > versions[s]:
            versions[s] = v
            values[s, :] = in_values[j, :]
            newer[j] = True
            r = rows[row_shard[j]]
            origin, ts = v & ORIGIN_MASK, v >> ORIGIN_BITS
            if ts > newest[r, origin]:
                newest[r, origin] = ts
            changed[r] = True
            touched_rows[n_touched] = r
            touched[n_touched] = s
            n_touched += 1
    if use_cache and n_touched:
        touch(touched_rows[:n_touched], touched[:n_touched], capacity, prev, nxt, cached, head, tail, count,
              versions, dvv)
    wait = np.empty(len(rows), np.int64)
    n_wait = 0
    for i in range(len(rows)):
        if paths[i] == UNCHANGED:
            continue
        r = rows[i]
        for o in range(vv.shape[1]):
            if d_top[i, o] > peer_top[r, o]:
                peer_top[r, o] = d_top[i, o]
        covered = not waiting[r]
        if covered:
            for o in range(vv.shape[1]):
                if vv[r, o] < d_base[i, o]:
                    covered = False
                    break
        if not covered:
            wait[n_wait] = i
            n_wait += 1
            continue
        if merge(r, d_top[i], incarnation, d_sv[i], vv, newest, seen_inc, seen_sv):
            changed[r] = True
    return newer, wait[:n_wait], changed
