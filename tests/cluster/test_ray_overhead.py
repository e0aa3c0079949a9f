"""The Ray overhead benchmark runs end to end on small workloads (its answers checked equal to in-process)."""

from __future__ import annotations

import math

import pytest

from harness import ray_overhead
from workloads import catalog

pytestmark = pytest.mark.cluster


def test_faery_overhead_rows(ray_cluster):
    rows = ray_overhead.faery("gaussian-25k-d128-fp32", shards=3, batches=[1, 4], k=10, rounds=2, backend="cpu")
    assert [r["batch"] for r in rows] == [1, 4]
    for r in rows:
        assert r["in_process_ms"] > 0 and r["ray_ms"] > 0
        assert math.isclose(r["added_ms_per_call"], r["ray_ms"] - r["in_process_ms"])


def test_g2miner_overhead_rows(ray_cluster):
    rows = ray_overhead.g2miner("kron12", "triangle", partitions=[1, 3], rounds=1, backend="cpu")
    truth = catalog.get("kron12").ground_truth["triangle"]
    assert [r["partitions"] for r in rows] == [1, 3] and {r["count"] for r in rows} == {truth}
    assert all(r["in_process_s"] > 0 and r["ray_s"] > 0 for r in rows)


def test_bad_sizes_are_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ray_overhead.main(["faery", "--batches", "1,0"])
    assert exit_info.value.code == 2 and "--batches" in capsys.readouterr().err
