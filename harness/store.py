"""The results store: an embedded SQLite file, one row per measurement with full provenance.

Each row is committed in its own transaction as soon as it is measured, so an
interrupted run loses nothing already stored, and the next run resumes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
DEFAULT_PATH = Path("results/recmine.sqlite")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL NOT NULL, command TEXT NOT NULL, tier TEXT,
    git_commit TEXT NOT NULL, machine_id TEXT NOT NULL, machine TEXT NOT NULL,
    backends TEXT NOT NULL, versions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    experiment_id TEXT NOT NULL, system TEXT NOT NULL, impl TEXT NOT NULL, backend TEXT NOT NULL,
    workload TEXT NOT NULL, params TEXT NOT NULL, kind TEXT NOT NULL, tier TEXT,
    status TEXT NOT NULL, error TEXT,
    value REAL, samples TEXT NOT NULL, stats TEXT NOT NULL, metrics TEXT NOT NULL,
    peak_memory_bytes INTEGER, threads INTEGER, device TEXT NOT NULL,
    git_commit TEXT NOT NULL, machine_id TEXT NOT NULL, machine TEXT NOT NULL, versions TEXT NOT NULL,
    created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS results_by_experiment ON results(experiment_id, git_commit, machine_id);
"""

_JSON_COLUMNS = ("params", "samples", "stats", "metrics", "machine", "versions", "backends")


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


class Store:
    def __init__(self, path: str | os.PathLike = DEFAULT_PATH, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise ValueError(f"results store {self.path} does not exist (run `recmine reproduce` first, "
                             f"or name another with --store)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._check_schema()
            with self.conn:
                self.conn.executescript(_SCHEMA)
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except (sqlite3.Error, OSError) as exc:
            raise ValueError(f"cannot use results store {self.path}: {exc}") from None

    def _check_schema(self) -> None:
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row and int(row[0]) > SCHEMA_VERSION:
            raise ValueError(f"results store {self.path} was written by a newer recmine (schema v{row[0]}); "
                             f"this recmine reads up to schema v{SCHEMA_VERSION}: upgrade recmine or use another --store")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def begin_run(self, command: str, tier: str | None, git_commit: str, machine_id: str,
                  machine: dict, backends: dict, versions: dict) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        with self.conn:
            self.conn.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                              (run_id, time.time(), command, tier, git_commit, machine_id,
                               json.dumps(machine), json.dumps(backends), json.dumps(versions)))
        return run_id

    def add(self, **row: Any) -> int:
        """Insert one result row in its own transaction; returns its id."""
        row = dict(row)
        row.setdefault("created", time.time())
        for col in _JSON_COLUMNS:
            if col in row and not isinstance(row[col], str):
                row[col] = json.dumps(row[col], default=_json_default)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.conn:
            cur = self.conn.execute(f"INSERT INTO results ({cols}) VALUES ({marks})", tuple(row.values()))
        return int(cur.lastrowid)

    # ------------------------------------------------------------------ reading
    def done(self, experiment_id: str, git_commit: str, machine_id: str) -> bool:
        """Whether a successful result for this experiment, commit and machine is already stored."""
        row = self.conn.execute(
            "SELECT 1 FROM results WHERE experiment_id=? AND git_commit=? AND machine_id=? AND status='ok' LIMIT 1",
            (experiment_id, git_commit, machine_id)).fetchone()
        return row is not None

    def rows(self, where: str = "1", args: tuple = ()) -> list[Row]:
        cur = self.conn.execute(f"SELECT * FROM results WHERE {where} ORDER BY id", args)
        return [Row(_decode(dict(zip([c[0] for c in cur.description], r)))) for r in cur.fetchall()]

    def latest(self, run_id: str | None = None) -> list[Row]:
        """The newest successful row per experiment and machine (or of one run)."""
        if run_id is not None:
            return self.rows("status='ok' AND run_id=?", (run_id,))
        return self.rows("status='ok' AND id IN (SELECT MAX(id) FROM results WHERE status='ok' "
                         "GROUP BY experiment_id, machine_id)")

    def failures(self) -> list[Row]:
        return self.rows("status!='ok' AND id IN (SELECT MAX(id) FROM results GROUP BY experiment_id, machine_id)")

    def runs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY started")
        return [_decode(dict(zip([c[0] for c in cur.description], r))) for r in cur.fetchall()]


def _decode(d: dict[str, Any]) -> dict[str, Any]:
    for col in _JSON_COLUMNS:
        if col in d and isinstance(d[col], str):
            d[col] = json.loads(d[col])
    return d


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
