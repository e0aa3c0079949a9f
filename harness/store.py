"""The results store: an embedded SQLite file, one row per measurement with full provenance.

Each row is committed in its own transaction as soon as it is measured, so an
interrupted run loses nothing already stored, and the next run resumes.

A file is checked, read-only, before anything is written to it: a file that is not
a recmine store this version can use (another application's, a newer schema's, a
damaged one) is refused and left byte-identical. Concurrent runs into one store
claim each experiment before measuring it, so none is measured twice.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

# v2 added the claims table; a v1 store is upgraded in place when opened.
SCHEMA_VERSION = 2
DEFAULT_PATH = Path("results/recmine.sqlite")

# How long one attempt waits for another process's write lock before the wait is announced and retried.
BUSY_TIMEOUT_S = 2.0
# While waiting for a write lock, the user hears again this often.
WAIT_MESSAGE_INTERVAL_S = 30.0
# A claim from another host is honoured this long; its process cannot be checked from here.
STALE_CLAIM_S = 6 * 3600.0
# Store.claim's reason when a successful result is already stored.
ALREADY_STORED = "already stored"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL NOT NULL, command TEXT NOT NULL, tier TEXT,
    git_commit TEXT NOT NULL, machine_id TEXT NOT NULL, machine TEXT NOT NULL,
    backends TEXT NOT NULL, versions TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    experiment_id TEXT NOT NULL, system TEXT NOT NULL, impl TEXT NOT NULL, backend TEXT NOT NULL,
    workload TEXT NOT NULL, params TEXT NOT NULL, kind TEXT NOT NULL, tier TEXT,
    status TEXT NOT NULL, error TEXT,
    value REAL, samples TEXT NOT NULL, stats TEXT NOT NULL, metrics TEXT NOT NULL,
    peak_memory_bytes INTEGER, threads INTEGER, device TEXT NOT NULL,
    git_commit TEXT NOT NULL, machine_id TEXT NOT NULL, machine TEXT NOT NULL, versions TEXT NOT NULL,
    created REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS results_by_experiment ON results(experiment_id, git_commit, machine_id)",
    # One row per experiment being measured now: which run holds it, and the process to ask whether it lives.
    """CREATE TABLE IF NOT EXISTS claims (
    experiment_id TEXT NOT NULL, git_commit TEXT NOT NULL, machine_id TEXT NOT NULL,
    run_id TEXT NOT NULL, hostname TEXT NOT NULL, pid INTEGER NOT NULL, claimed REAL NOT NULL,
    PRIMARY KEY (experiment_id, git_commit, machine_id))""",
)
_RECMINE_TABLES = {"meta", "runs", "results"}  # what every schema version has

_JSON_COLUMNS = ("params", "samples", "stats", "metrics", "machine", "versions", "backends")
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Row:
    """A stored result, with JSON columns decoded."""

    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def metric(self, name: str) -> float | None:
        if name == "time_s" and self.data["value"] is not None:
            return self.data["value"]
        value = self.data["metrics"].get(name)
        return None if value is None else float(value)

    def fields(self) -> dict[str, Any]:
        """The fields claim selectors match on (the same as Experiment.fields())."""
        d = self.data
        return {"system": d["system"], "impl": d["impl"], "backend": d["backend"],
                "workload": d["workload"], "kind": d["kind"], **d["params"]}


def _names_the_store(method: Callable) -> Callable:
    """SQLite errors inside a Store method become one ValueError naming the file."""

    @functools.wraps(method)
    def wrapper(self: "Store", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from exc

    return wrapper


class Store:
    """A results store at `path`.

    `busy_timeout_s` is how long one attempt to take the write lock waits; writes then
    keep retrying for as long as another process holds the lock, and `on_wait(message)`
    (by default: a line on stderr) is told when the wait starts and every
    WAIT_MESSAGE_INTERVAL_S after, so that a measured result is never dropped.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH, create: bool = True,
                 busy_timeout_s: float = BUSY_TIMEOUT_S, on_wait: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        if not busy_timeout_s > 0:
            raise ValueError(f"busy_timeout_s must be a positive number of seconds, got {busy_timeout_s}")
        self._on_wait = on_wait or _tell_stderr
        try:
            if self.path.is_dir():
                raise ValueError(f"cannot use results store {self.path}: it is a directory")
            if not self.path.exists():
                if not create:
                    raise ValueError(f"results store {self.path} does not exist (run `recmine reproduce` first, "
                                     f"or name another with --store)")
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif self.path.stat().st_size > 0:
                _check_before_writing(self.path)
            self.conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise ValueError(f"cannot use results store {self.path}: {exc}") from None
        try:
            self._prepare()
        except BaseException:
            self.conn.close()
            raise

    @_names_the_store
    def _prepare(self) -> None:
        """WAL mode, then the tables: created in a new store, the missing ones added to an older one."""
        self._execute_waiting("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        with self._write_transaction():
            for statement in _SCHEMA:
                self.conn.execute(statement)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.conn.execute("UPDATE meta SET value=? WHERE key='schema_version' AND CAST(value AS INTEGER) < ?",
                              (str(SCHEMA_VERSION), SCHEMA_VERSION))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the write lock
    def _execute_waiting(self, sql: str) -> sqlite3.Cursor:
        """Execute a statement that takes the write lock, retrying for as long as another process holds it."""
        first_try = time.monotonic()
        next_message = None
        while True:
            try:
                return self.conn.execute(sql)
            except sqlite3.OperationalError as exc:
                if _sqlite_code(exc) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
            # Each failed attempt has already waited busy_timeout_s inside SQLite: no sleep needed here.
            now = time.monotonic()
            if next_message is None or now >= next_message:
                waited = "" if next_message is None else f" (waited {now - first_try:.0f} s)"
                self._on_wait(f"waiting for {self.path}: another process holds its write lock{waited}")
                next_message = now + WAIT_MESSAGE_INTERVAL_S

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE takes the write lock up front, so that a busy store is waited for here, not mid-way."""
        self._execute_waiting("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self._execute_waiting("COMMIT")

    # ------------------------------------------------------------------ writing
    @_names_the_store
    def begin_run(self, command: str, tier: str | None, git_commit: str, machine_id: str,
                  machine: dict, backends: dict, versions: dict) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        with self._write_transaction():
            self.conn.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                              (run_id, time.time(), command, tier, git_commit, machine_id,
                               json.dumps(machine), json.dumps(backends), json.dumps(versions)))
        return run_id

    @_names_the_store
    def add(self, **row: Any) -> int:
        """Insert one result row in its own transaction; returns its id."""
        row = dict(row)
        row.setdefault("created", time.time())
        for col in _JSON_COLUMNS:
            if col in row and not isinstance(row[col], str):
                row[col] = json.dumps(row[col], default=_json_default)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._write_transaction():
            cur = self.conn.execute(f"INSERT INTO results ({cols}) VALUES ({marks})", tuple(row.values()))
        return int(cur.lastrowid)

    @_names_the_store
    def claim(self, experiment_id: str, git_commit: str, machine_id: str, run_id: str,
              even_if_stored: bool = False) -> str | None:
        """Claim an experiment for this run before measuring it; call once per experiment, just before measuring.

        Returns None when this run now holds the claim: measure, `add` the row, then `release`.
        Otherwise returns why not to measure it: ALREADY_STORED (a successful result exists for this
        commit and machine; `even_if_stored=True`, for --force, measures it again), or
        "being measured by run <id> (pid N)" while another run's claim is live. A claim is live while
        its process runs, for a holder on this host, or for STALE_CLAIM_S, for a holder on another
        host. The check and the claim are one transaction, so two runs never both get None.
        """
        hostname, now = socket.gethostname(), time.time()
        with self._write_transaction():
            if not even_if_stored and self._has_ok_result(experiment_id, git_commit, machine_id):
                return ALREADY_STORED
            holder = self.conn.execute(
                "SELECT run_id, hostname, pid, claimed FROM claims "
                "WHERE experiment_id=? AND git_commit=? AND machine_id=?",
                (experiment_id, git_commit, machine_id)).fetchone()
            if holder is not None and holder[0] != run_id and _claim_is_live(*holder[1:], hostname, now):
                where = "" if holder[1] == hostname else f" on {holder[1]}"
                return f"being measured by run {holder[0]} (pid {holder[2]}{where})"
            self.conn.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?,?,?,?)",
                              (experiment_id, git_commit, machine_id, run_id, hostname, os.getpid(), now))
        return None

    @_names_the_store
    def release(self, experiment_id: str, git_commit: str, machine_id: str, run_id: str) -> None:
        """Drop this run's claim on an experiment; call after its row is stored, after a failure,
        and on interrupt. A claim held by another run is left alone."""
        with self._write_transaction():
            self.conn.execute("DELETE FROM claims WHERE experiment_id=? AND git_commit=? AND machine_id=? "
                              "AND run_id=?", (experiment_id, git_commit, machine_id, run_id))

    # ------------------------------------------------------------------ reading
    @_names_the_store
    def done(self, experiment_id: str, git_commit: str, machine_id: str) -> bool:
        """Whether a successful result for this experiment, commit and machine is already stored."""
        return self._has_ok_result(experiment_id, git_commit, machine_id)

    def _has_ok_result(self, experiment_id: str, git_commit: str, machine_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM results WHERE experiment_id=? AND git_commit=? AND machine_id=? AND status='ok' LIMIT 1",
            (experiment_id, git_commit, machine_id)).fetchone()
        return row is not None

    @_names_the_store
    def rows(self, where: str = "1", args: tuple = ()) -> list[Row]:
        cur = self.conn.execute(f"SELECT * FROM results WHERE {where} ORDER BY id", args)
        return [Row(self._decode(dict(zip([c[0] for c in cur.description], r)))) for r in cur.fetchall()]

    def latest(self, run_id: str | None = None) -> list[Row]:
        """The newest successful row per experiment and machine (or of one run)."""
        if run_id is not None:
            return self.rows("status='ok' AND run_id=?", (run_id,))
        return self.rows("status='ok' AND id IN (SELECT MAX(id) FROM results WHERE status='ok' "
                         "GROUP BY experiment_id, machine_id)")

    def failures(self) -> list[Row]:
        return self.rows("status!='ok' AND id IN (SELECT MAX(id) FROM results GROUP BY experiment_id, machine_id)")

    @_names_the_store
    def runs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY started")
        return [self._decode(dict(zip([c[0] for c in cur.description], r))) for r in cur.fetchall()]

    def _decode(self, d: dict[str, Any]) -> dict[str, Any]:
        for col in _JSON_COLUMNS:
            if col in d and isinstance(d[col], str):
                try:
                    d[col] = json.loads(d[col])
                except json.JSONDecodeError as exc:
                    which = f"result {d['id']}" if "id" in d else f"run {d.get('run_id')}"
                    raise ValueError(f"results store {self.path} is damaged (column {col} of {which} is not JSON: "
                                     f"{exc})" + _WHAT_TO_DO.format(path=self.path)) from exc
        return d


# ---------------------------------------------------------------------- checks before writing

_WHAT_TO_DO = ("; move it aside to start a new store (or name another with --store), "
               "and salvage its rows with `sqlite3 {path} .recover`")


def _check_before_writing(path: Path) -> None:
    """Refuse a file that is not a recmine store this version can use, without writing a byte to it."""
    with path.open("rb") as f:
        header = f.read(100)
    if not header.startswith(_SQLITE_MAGIC):
        raise ValueError(f"results store {path} is not a SQLite database: name another file with --store")
    if len(header) < 100:
        raise ValueError(f"results store {path} is damaged (truncated to {len(header)} bytes)"
                         + _WHAT_TO_DO.format(path=path))
    # Byte 18 is 2 in WAL mode. A read-only connection to a WAL database creates -wal and -shm files
    # beside it; while no process has it open (no -wal file), read it as immutable so none are made.
    immutable = header[18] == 2 and not Path(f"{path}-wal").exists()
    uri = f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise _store_error(path, exc) from exc
    try:
        # quick_check reads every page once (no index cross-checks). Measured on a 50 MB store of
        # 25,000 rows on a 2-core machine: 0.04 s from the page cache, 0.44 s from a cold cache. That
        # is small beside any run, so it runs at every open: a damaged store is refused before a run
        # begins, not half-way through it.
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise ValueError(f"results store {path} is damaged ({'; '.join(problems)})"
                             + _WHAT_TO_DO.format(path=path))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        tables.discard("sqlite_sequence")  # SQLite's own bookkeeping for AUTOINCREMENT
        if not tables:
            return  # an empty SQLite database holds nothing to keep
        version = None
        if _RECMINE_TABLES <= tables:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row and str(row[0]).isdigit() else None
        if version is None or version < 1:
            raise ValueError(f"results store {path} is another application's SQLite database "
                             f"(tables: {', '.join(sorted(tables)[:6])}), not a recmine store: "
                             f"name another with --store")
        if version > SCHEMA_VERSION:
            raise ValueError(f"results store {path} was written by a newer recmine (schema v{version}); "
                             f"this recmine reads up to schema v{SCHEMA_VERSION}: "
                             f"upgrade recmine or use another --store")
    except sqlite3.Error as exc:
        raise _store_error(path, exc) from exc
    finally:
        conn.close()


def _sqlite_code(exc: sqlite3.Error) -> int | None:
    """The primary SQLite result code of an error (SQLite reports extended codes, e.g. SQLITE_BUSY_SNAPSHOT)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _store_error(path: Path, exc: sqlite3.Error) -> ValueError:
    if _sqlite_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return ValueError(f"results store {path} is damaged ({exc})" + _WHAT_TO_DO.format(path=path))
    return ValueError(f"cannot use results store {path}: {exc}")


def _claim_is_live(holder_host: str, holder_pid: int, claimed: float, hostname: str, now: float) -> bool:
    if holder_host != hostname:
        return now - claimed < STALE_CLAIM_S
    if holder_pid <= 0:  # os.kill(0, …) would signal our own process group
        return False
    try:
        os.kill(holder_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and another user's
        pass
    return True


def _tell_stderr(message: str) -> None:
    print(f"recmine: {message}", file=sys.stderr, flush=True)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
