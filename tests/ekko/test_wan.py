"""The shared WAN floor: latency matrices, pass-through transfers, the physical floor, NIC bytes."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from wan.latency import latency_matrix, read_latency_csv, validate_latency_matrix
from wan.metrics import latency_summary, physical_floor_s
from wan.network import Network, WanConfig

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "lat.csv"
    path.write_text(text)
    return path


def test_latency_file_round_trip_in_ms(tmp_path) -> None:
    lat = read_latency_csv(_write(tmp_path, "0,10,20\n10,0,30\n20,30,0\n"))
    np.testing.assert_allclose(lat, np.array([[0, 10, 20], [10, 0, 30], [20, 30, 0]]) / 1e3)


@pytest.mark.parametrize("text,message", [
    ("0,10\n11,0\n", r"row 1, column 2 is 0.01 but row 2, column 1 is 0.011: the matrix must be symmetric"),
    ("0,nan\nnan,0\n", r"row 1, column 2 is nan: latencies must be finite"),
    ("0,inf\ninf,0\n", r"row 1, column 2 is inf"),
    ("1,10\n10,0\n", r"row 1, column 1 is 0.001: the diagonal must be 0"),
    ("0,0\n0,0\n", r"row 1, column 2 is 0.0: latencies between DCs must be positive"),
    ("0,-5\n-5,0\n", r"row 1, column 2 is -0.005"),
    ("0,10\n10\n", r":2: 1 columns, but line 1 of the matrix has 2"),
    ("0,10,5\n10,0,5\n", r"2 rows of 3 columns"),
    ("0,ten\n10,0\n", r":1: column 2 is 'ten'"),
    ("\n", r"no rows"),
])
def test_bad_latency_file_names_the_cell(tmp_path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"lat\.csv.*" + message):
        read_latency_csv(_write(tmp_path, text))


def test_binary_or_missing_latency_file_is_named(tmp_path) -> None:
    path = tmp_path / "lat.csv"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ValueError, match="lat.csv: not a UTF-8 text file"):
        read_latency_csv(path)
    with pytest.raises(ValueError, match="absent.csv: cannot read"):
        read_latency_csv(tmp_path / "absent.csv")


@pytest.mark.parametrize("spec,message", [("uniform:abc", "milliseconds"), ("uniform:0", "positive"),
                                          ("uniform:inf", "positive and finite"), ("uniform:-3", "positive")])
def test_bad_uniform_spec(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        latency_matrix(spec, 3)


def test_latency_specs_and_dc_count(tmp_path) -> None:
    np.testing.assert_allclose(latency_matrix("uniform:50", 3), 0.05 * (1 - np.eye(3)))
    assert latency_matrix("geo", 4).shape == (4, 4)
    path = _write(tmp_path, "0,10\n10,0\n")
    with pytest.raises(ValueError, match="2 DCs, but 3 DCs asked"):
        latency_matrix(str(path), 3)
    with pytest.raises(ValueError, match="square"):
        validate_latency_matrix(np.zeros((2, 3)))


def test_pass_through_serialises_once_and_queues_on_the_sender_nic(fresh_rng) -> None:
    one_way = float(fresh_rng.uniform(0.01, 0.1))
    nbytes = int(fresh_rng.integers(10_000, 1_000_000))
    wan = WanConfig(n_dcs=2, servers_per_dc=2, topology="uniform", uniform_latency_s=one_way,
                    nic_bandwidth_bps=1e9, lan_latency_s=0.001)
    arrivals = []
    net = Network(wan, lambda dst, msg: arrivals.append((msg, dst, net.now)))
    net.send(0, 2, "a", nbytes, 0)
    net.send(0, 3, "b", nbytes, 0)      # behind "a" on server 0's NIC
    net.send(1, 2, "c", nbytes, 0)      # server 1's own NIC, but server 2's receiving NIC is busy with "a"
    net.run(10.0)
    ser = nbytes * 8 / 1e9
    got = {m: (d, t) for m, d, t in arrivals}
    assert got["a"] == (2, pytest.approx(one_way + 2 * 0.001 + ser))
    assert got["b"] == (3, pytest.approx(one_way + 2 * 0.001 + 2 * ser))
    assert got["c"] == (2, pytest.approx(one_way + 2 * 0.001 + 2 * ser))
    np.testing.assert_array_equal(net.tx_bytes, [2 * nbytes, nbytes, 0, 0])
    np.testing.assert_array_equal(net.rx_bytes, [0, 0, 2 * nbytes, nbytes])
    assert net.traffic.wan_payload_bytes == 3 * nbytes
    # The floor of one such update is what "a" took, alone on the network.
    assert physical_floor_s(wan, nbytes) == pytest.approx(got["a"][1])


def test_floor_takes_the_farthest_dc_and_ratios_follow(fresh_rng) -> None:
    wan = WanConfig(n_dcs=5, topology="geo")
    floor = physical_floor_s(wan, 4096)
    assert floor == pytest.approx(wan.latency()[0].max() + 4096 * 8 / wan.nic_bandwidth_bps + 2 * wan.lan_latency_s)
    lat = floor * (1 + fresh_rng.exponential(size=1000))
    s = latency_summary(lat, floor)
    assert s["p50_over_floor"] == pytest.approx(np.percentile(lat, 50) / floor)
    assert s["p99_over_floor"] == pytest.approx(np.percentile(lat, 99) / floor)
    assert physical_floor_s(WanConfig(n_dcs=1), 4096) == 0.0
    assert math.isnan(latency_summary(lat, 0.0)["p50_over_floor"])


def test_bandwidth_must_be_finite_and_positive() -> None:
    for bad in (0.0, -5e9, math.inf, math.nan):
        with pytest.raises(ValueError, match="nic_bandwidth_bps"):
            WanConfig(nic_bandwidth_bps=bad)


@pytest.mark.parametrize("package", ["baselines/adam_push", "baselines/checkpoint_broadcast", "wan"])
def test_wan_and_baselines_do_not_import_impls(package: str) -> None:
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("impls", "harness") for n in names), f"{path} imports {names}"
