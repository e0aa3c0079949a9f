"""The results store refuses what it must not write to, names its file on every SQLite error,
waits out another process's write lock, and lets concurrent runs claim experiments."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import store as store_mod
from harness.store import ALREADY_STORED, SCHEMA_VERSION, STALE_CLAIM_S, Store

REPO = Path(__file__).resolve().parents[2]
PAGE = 4096  # SQLite's default page size, which the store keeps


def add_row(store, run_id, experiment_id, status="ok", device="cpu"):
    return store.add(run_id=run_id, experiment_id=experiment_id, system="s", impl="i", backend="cpu", workload="w",
                     params={}, kind="measured", tier="quick", status=status, value=1.0, samples=[0.5] * 50,
                     stats={"n": 50}, metrics={}, threads=1, device=device, git_commit="abc", machine_id="m1",
                     machine={"cpu": "x"}, versions={})


def make_store(path, rows=60):
    """A closed store of several pages; row i's device is 'device-marker-<i>', which only its table page holds."""
    with Store(path) as s:
        run = s.begin_run("test", "quick", "abc", "m1", {}, {}, {})
        for i in range(rows):
            add_row(s, run, f"e{i}", device=f"device-marker-{i:04d}")
    return run


def damage_results_page(path, row=30):
    """Overwrite the header of the results-table page that holds one row, as a failing disk would."""
    data = path.read_bytes()
    page = data.index(f"device-marker-{row:04d}".encode()) // PAGE
    assert 0 < page < len(data) // PAGE - 1, "the row must sit on a middle page"
    with path.open("r+b") as f:
        f.seek(page * PAGE)
        f.write(b"\xff" * 64)


def side_files(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path)


# ---------------------------------------------------------------------- refused files stay byte-identical

def newer_schema(path):
    make_store(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()


def other_application(path, wal=False, tables=("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)",)):
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    for sql in tables:
        conn.execute(sql)
    conn.commit()
    conn.close()


REFUSED = {
    "newer schema": (newer_schema, "newer recmine"),
    "another application's SQLite file": (other_application, "another application's SQLite database"),
    "another application's SQLite file in WAL mode": (lambda p: other_application(p, wal=True),
                                                       "another application's SQLite database"),
    "a meta table that is not recmine's": (
        lambda p: other_application(p, tables=("CREATE TABLE meta (key TEXT, value TEXT)", "CREATE TABLE runs (x)",
                                               "CREATE TABLE results (y)")),
        "another application's SQLite database"),
    "a non-SQLite file": (lambda p: p.write_text("experiment,time\nfaery,0.1\n" * 200), "is not a SQLite database"),
    "a damaged data page": (lambda p: (make_store(p), damage_results_page(p)), "is damaged"),
    "a truncated header": (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x10\x00"), "is damaged"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_file_stays_byte_identical(tmp_path, case):
    make, message = REFUSED[case]
    path = tmp_path / "r.sqlite"
    make(path)
    before = path.read_bytes()
    assert side_files(path) == []
    with pytest.raises(ValueError, match=message) as refused:
        Store(path)
    assert str(path) in str(refused.value)
    assert path.read_bytes() == before
    assert side_files(path) == []


def empty_sqlite_database(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=7")  # writes the header: a real, table-less SQLite file
    conn.close()


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.write_bytes(b""), empty_sqlite_database],
                         ids=["new path", "empty file", "SQLite file with no tables"])
def test_a_new_or_empty_file_becomes_a_store(tmp_path, make):
    path = tmp_path / "r.sqlite"
    make(path)
    with Store(path) as s:
        add_row(s, s.begin_run("t", None, "abc", "m1", {}, {}, {}), "e")
    with Store(path) as s:
        assert [r["experiment_id"] for r in s.rows()] == ["e"]


def test_a_v1_store_is_upgraded_in_place_and_keeps_its_rows(tmp_path):
    path = tmp_path / "r.sqlite"
    run = make_store(path, rows=3)
    with sqlite3.connect(path) as conn:  # what schema v1 was: the same tables less claims
        conn.execute("DROP TABLE claims")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    conn.close()
    with Store(path) as s:
        assert [r["experiment_id"] for r in s.rows()] == ["e0", "e1", "e2"]
        assert s.claim("e9", "abc", "m1", run) is None
        assert s.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        Store(tmp_path)


def test_the_busy_timeout_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="busy_timeout_s"):
        Store(tmp_path / "r.sqlite", busy_timeout_s=0)


# ---------------------------------------------------------------------- damage found while reading

def test_damage_found_while_reading_names_the_file(tmp_path):
    path = tmp_path / "r.sqlite"
    make_store(path)
    with Store(path) as s:  # opened while sound; the disk fails afterwards
        damage_results_page(path)
        for read in (s.rows, s.latest, s.failures, lambda: s.done("e30", "abc", "m1")):
            with pytest.raises(ValueError, match=f"results store {path} is damaged .*malformed.*move it aside"):
                read()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_every_command_reading_a_damaged_store_prints_one_line(tmp_path):
    path = tmp_path / "r.sqlite"
    make_store(path)
    damage_results_page(path)
    before = path.read_bytes()
    for args in (["claims"], ["report", "--out", str(tmp_path / "rep")], ["compare", "previous", "latest"],
                 ["reproduce", "--system", "ekko", "--no-report"]):
        done = cli(*args, "--store", str(path))
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith(f"recmine: error: results store {path} is damaged"), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        # reproduce wrote no run row: nothing at all was written
        assert path.read_bytes() == before and side_files(path) == [], args


# ---------------------------------------------------------------------- waiting for the write lock

def hold_write_lock(path, seconds, held):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


WRITES = {
    "begin_run": lambda s: s.begin_run("t", None, "abc", "m1", {}, {}, {}),
    "add": lambda s: add_row(s, "r", "e-new"),
    "claim": lambda s: s.claim("e-new", "abc", "m1", "r"),
    "release": lambda s: s.release("e-new", "abc", "m1", "r"),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_waits_for_the_lock_with_one_message(tmp_path, write):
    path = tmp_path / "r.sqlite"
    make_store(path, rows=1)
    messages = []
    with Store(path, busy_timeout_s=0.2, on_wait=messages.append) as s:
        held = threading.Event()
        holder = threading.Thread(target=hold_write_lock, args=(path, 1.0, held))
        holder.start()
        held.wait()
        WRITES[write](s)
        holder.join()
        assert messages == [f"waiting for {path}: another process holds its write lock"]
        if write == "add":
            assert [r["experiment_id"] for r in s.rows("experiment_id='e-new'")] == ["e-new"]
        if write == "claim":
            assert s.claim("e-new", "abc", "m1", "another run") is not None


def test_opening_waits_for_the_lock_and_a_long_wait_repeats_its_message(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "WAIT_MESSAGE_INTERVAL_S", 0.3)
    path = tmp_path / "r.sqlite"
    make_store(path, rows=1)
    messages = []
    held = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, 1.5, held))
    holder.start()
    held.wait()
    with Store(path, busy_timeout_s=0.2, on_wait=messages.append) as s:
        holder.join()
        assert len(s.rows()) == 1
    assert len(messages) >= 2 and "waited" in messages[-1], messages


def test_the_default_wait_message_goes_to_stderr(tmp_path, capsys):
    path = tmp_path / "r.sqlite"
    make_store(path, rows=1)
    held = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, 0.6, held))
    holder.start()
    held.wait()
    with Store(path, busy_timeout_s=0.2) as s:
        add_row(s, "r", "e-new")
    holder.join()
    assert capsys.readouterr().err == f"recmine: waiting for {path}: another process holds its write lock\n"


# ---------------------------------------------------------------------- claims

@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        yield s


def test_a_claim_is_held_until_released(store):
    assert store.claim("e", "abc", "m1", "run-a") is None
    assert store.claim("e", "abc", "m1", "run-a") is None  # the holder may claim again
    assert store.claim("e", "abc", "m1", "run-b") == f"being measured by run run-a (pid {os.getpid()})"
    assert store.claim("e", "def", "m1", "run-b") is None  # another commit is another experiment
    store.release("e", "abc", "m1", "run-b")  # not run-b's: left alone
    assert store.claim("e", "abc", "m1", "run-b") is not None
    store.release("e", "abc", "m1", "run-a")
    assert store.claim("e", "abc", "m1", "run-b") is None


def test_a_stored_result_is_not_claimed_again_unless_forced(store):
    run = store.begin_run("t", None, "abc", "m1", {}, {}, {})
    add_row(store, run, "failed-once", status="failed")
    assert store.claim("failed-once", "abc", "m1", run) is None
    add_row(store, run, "e")
    assert store.claim("e", "abc", "m1", "run-b") == ALREADY_STORED
    assert store.claim("e", "abc", "m1", "run-b", even_if_stored=True) is None


def plant_claim(store, hostname, pid, age_s):
    store.conn.execute("INSERT OR REPLACE INTO claims VALUES ('e', 'abc', 'm1', 'old-run', ?, ?, ?)",
                       (hostname, pid, time.time() - age_s))


def test_a_claim_whose_process_has_ended_is_taken_over(store):
    import socket

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    plant_claim(store, socket.gethostname(), int(ended.stdout), age_s=1)
    assert store.claim("e", "abc", "m1", "run-b") is None


def test_a_claim_from_another_host_is_honoured_until_stale(store):
    plant_claim(store, "other-host", 1234, age_s=60)
    assert store.claim("e", "abc", "m1", "run-b") == "being measured by run old-run (pid 1234 on other-host)"
    plant_claim(store, "other-host", 1234, age_s=STALE_CLAIM_S + 60)
    assert store.claim("e", "abc", "m1", "run-b") is None


WORKER = """
import json, sys, time
from harness.store import Store

path, run_id, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
measured, refused = [], []
with Store(path) as store:
    time.sleep(max(0.0, start_at - time.time()))  # both workers begin together
    for i in range(20):
        exp = f"exp-{i}"
        reason = store.claim(exp, "abc", "m1", run_id)
        if reason is not None:
            refused.append(reason)
            continue
        time.sleep(0.05)  # the measurement
        store.add(run_id=run_id, experiment_id=exp, system="s", impl="i", backend="cpu", workload="w", params={},
                  kind="measured", tier="quick", status="ok", value=1.0, samples=[1.0], stats={}, metrics={},
                  threads=1, device="cpu", git_commit="abc", machine_id="m1", machine={}, versions={})
        store.release(exp, "abc", "m1", run_id)
        measured.append(exp)
print(json.dumps({"measured": measured, "refused": refused}))
"""


def test_two_concurrent_runs_measure_each_experiment_once(tmp_path):
    path = tmp_path / "r.sqlite"
    Store(path).close()
    start_at = str(time.time() + 2.0)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), run_id, start_at], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for run_id in ("run-a", "run-b")]
    outputs = [w.communicate(timeout=120) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
    measured = [exp for out, _ in outputs for exp in json.loads(out)["measured"]]
    assert sorted(measured) == sorted(f"exp-{i}" for i in range(20))  # each once, by one run or the other
    with Store(path) as s:
        assert sorted(r["experiment_id"] for r in s.rows()) == sorted(measured)
        assert s.conn.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
