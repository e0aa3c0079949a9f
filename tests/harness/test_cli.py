"""The recmine command line, end to end on the CPU top-K slice."""

import functools
import html
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from harness import claims, runner
from harness.cli import cli
from harness.store import Store

SMALL = ["--system", "faery", "--backend", "cpu", "--workload", "gaussian-25k-d128-fp32",
         "--where", "scenario=single-stream"]  # faery, faiss_topk, faiss-cpu and numpy, one query at a time


def recmine(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=300)


def test_env_json_reports_every_backend():
    out = recmine("env", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert set(info["backends"]) == {"cpu", "gpu", "opencl", "fpga-model", "fpga-rtl"}
    assert info["backends"]["fpga-model"]["modelled"] is True
    assert info["read_bandwidth_gb_s"] > 0 and info["machine"]["cores"] >= 1
    for name, b in info["backends"].items():
        assert b["available"] or b["reason"], f"{name} is unavailable without a reason"


@pytest.mark.parametrize("args,message", [
    (["run", "no/such/experiment"], "unknown experiment"),
    (["list", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["list", "--workload", "nope"], "unknown workload 'nope'"),
    (["list", "--system", "nope"], "unknown system 'nope'"),
    (["report", "--store", "/nonexistent/r.sqlite"], "does not exist"),
    (["reproduce", "--out", "/proc/version/x"], "--out /proc/version/x: not writable"),
    (["gate", "--reference", "/nonexistent.json"], "no such reference file"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    out = recmine(*args)
    assert out.returncode == 2, out
    assert message in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "Traceback" in recmine("--debug", *args).stderr


def test_reproduce_is_resumable_after_an_interrupt(tmp_path, monkeypatch):
    store = tmp_path / "r.sqlite"
    real_run, calls = runner.run, []

    def interrupted(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run(*a, **kw)

    monkeypatch.setattr(runner, "run", interrupted)
    result = CliRunner().invoke(cli, ["reproduce", *SMALL, "--store", str(store), "--no-report"])
    assert result.exit_code == 130
    with Store(store) as s:
        assert len(s.latest()) == 2
    monkeypatch.setattr(runner, "run", real_run)
    result = CliRunner().invoke(cli, ["reproduce", *SMALL, "--store", str(store), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert "2 already stored" in result.output and "2 measured" in result.output
    with Store(store) as s:
        rows = s.latest()
    assert len(rows) == 4 and all(r["git_commit"] and r["versions"]["numpy"] for r in rows)
    index = next((tmp_path / "rep").glob("*/index.html"))
    page = html.unescape(index.read_text())
    for c in claims.load():
        assert c.compares in page and c.paper_value in page, c.id
    assert "faiss-cpu" in page and (index.parent / "report.md").exists()
    claims_out = CliRunner().invoke(cli, ["claims", "--store", str(store), "--json"])
    verdicts = json.loads(claims_out.output)
    assert {v["verdict"] for v in verdicts} <= set(claims.VERDICTS)
    assert len(verdicts) == sum(len(c.measurements) for c in claims.load())


class VirtualClock:
    """Deterministic time for the gate's tests: every run costs one virtual second plus any
    delay planted in it, so the tests check the gate's logic rather than the machine's load."""

    def __init__(self) -> None:
        self.planted = 0.0

    def time(self, fn):
        self.planted = 0.0
        out = fn()
        return 1.0 + self.planted, out


def test_gate_passes_on_its_reference_and_fails_on_a_planted_2x_slowdown(tmp_path, monkeypatch):
    from baselines.faiss_topk import cpu
    from harness import compare, lifecycle

    clock = VirtualClock()
    monkeypatch.setattr(lifecycle, "timer_for", lambda backend: clock)
    # On the virtual clock every setup and round reads the same ratio: one setup of three rounds is enough.
    monkeypatch.setattr(compare, "measure_ratios", functools.partial(compare.measure_ratios, setups=1, min_rounds=3))
    ref = tmp_path / "reference.json"
    exp = "faery/{}/cpu/gaussian-100k-d128-fp32/batch=16,k=100,scenario=offline"
    ref.write_text(json.dumps({"figures": [  # the default threshold, 1.25
        {"name": "faiss_topk/faiss-cpu", "numerator": exp.format("faiss_topk"), "denominator": exp.format("faiss-cpu")}]}))
    result = CliRunner().invoke(cli, ["gate", "--reference", str(ref), "--write"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(ref.read_text())["figures"][0]["ratios"].values()) == [1.0]
    result = CliRunner().invoke(cli, ["gate", "--reference", str(ref)])
    assert result.exit_code == 0 and "ok" in result.output, result.output

    search = cpu.Searcher.search

    def twice_as_slow(self, queries, k):  # every faiss_topk run then costs two virtual seconds
        clock.planted += 1.0
        return search(self, queries, k)

    monkeypatch.setattr(cpu.Searcher, "search", twice_as_slow)
    result = CliRunner().invoke(cli, ["gate", "--reference", str(ref)])
    assert result.exit_code == 1 and "REGRESSED" in result.output, result.output
    assert "re-measur" in result.output  # a regression is confirmed by a second measurement before failing
