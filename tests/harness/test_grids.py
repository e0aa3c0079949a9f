"""Experiment grids as data: expansion, the builder contract, clear errors; registration never asks the machine."""

from __future__ import annotations

import pytest

import devices
from harness import grids, registry
from harness.systems import System

GRID = """
[vars]
sizes = [1, 2]

[[grid]]
build = "plain"
impl = "x"
backend = ["cpu", "gpu"]
workload = "w"
tiers = ["quick"]
requires = ["gpus:{size}"]
params = { size = "$sizes", mode = "fast" }
description = "{impl} on {backend}, size {size}, {mode}"

[[grid]]
build = "knowing"
impl = "y"
backend = "cpu"
workload = ["v", "w"]
kind = "simulated"
params = { load = 0.25 }
description = "{workload} at {load:.0%}"
"""


def _plain(data, params):
    return ("plain", data, params)


def _knowing(data, params, workload, backend):
    return ("knowing", workload, backend)


def _load(tmp_path, text: str, given: dict | None = None) -> grids.Grids:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return grids.load(path, given=given)


def test_every_list_is_a_dimension_in_the_order_written(tmp_path) -> None:
    exps = _load(tmp_path, GRID).experiments("s", {"plain": _plain, "knowing": _knowing})
    assert [e.id for e in exps] == ["s/x/cpu/w/mode=fast,size=1", "s/x/cpu/w/mode=fast,size=2",
                                    "s/x/gpu/w/mode=fast,size=1", "s/x/gpu/w/mode=fast,size=2",
                                    "s/y/cpu/v/load=0.25", "s/y/cpu/w/load=0.25"]
    assert exps[1].description == "x on cpu, size 2, fast" and exps[1].requires == ("gpus:2",)
    assert exps[1].tiers == frozenset({"quick"}) and exps[1].kind == "measured"
    assert exps[4].description == "v at 25%" and exps[4].tiers == frozenset({"quick", "full"})
    assert exps[4].kind == "simulated"


def test_a_builder_receives_the_dimensions_it_names(tmp_path) -> None:
    exps = _load(tmp_path, GRID).experiments("s", {"plain": _plain, "knowing": _knowing})
    assert exps[0].build("data", exps[0].params) == ("plain", "data", {"mode": "fast", "size": 1})
    assert exps[5].build("data", exps[5].params) == ("knowing", "w", "cpu")


ENTRY = '[[grid]]\nbuild = "plain"\nimpl = "x"\nbackend = "cpu"\n'


@pytest.mark.parametrize("text, message", [
    (ENTRY + 'workload = "w"\nparam = {}\n', r"\[\[grid\]\] 1: unknown key\(s\) param"),
    ('[[grid]]\nimpl = "x"\nbackend = "cpu"\nworkload = "w"\n', r"\[\[grid\]\] 1: build is missing"),
    (ENTRY + 'workload = "$nowhere"\n', r"\$nowhere names no entry of \[vars\]"),
    ('[grids]\n', "unknown table"),
    ('[[grid]]\nbuild = plain\n', "not valid TOML"),
])
def test_a_bad_grid_names_the_file_and_the_entry(tmp_path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        _load(tmp_path, text)
    assert "s.toml" in str(raised.value)


def test_an_unknown_builder_names_the_entry_and_the_choices(tmp_path) -> None:
    loaded = _load(tmp_path, '[[grid]]\nbuild = "other"\nimpl = "x"\nbackend = "cpu"\nworkload = "w"\n')
    choices = r"s.toml \[\[grid\]\] 1: build 'other' is not one of the module's BUILDERS \(plain\)"
    with pytest.raises(ValueError, match=choices):
        loaded.experiments("s", {"plain": _plain})


def test_registration_never_asks_the_machine(monkeypatch) -> None:
    def no_machine(*args, **kwargs):
        raise AssertionError("registration asked the machine")

    for name in ("probe", "probe_all", "can_run", "gpu_count"):
        monkeypatch.setattr(devices, name, no_machine)
    systems = registry.declared_systems()
    assert set(systems) == {"ekko", "faery", "g2miner"}
    assert all(isinstance(s, System) for s in systems.values())
    counts = {name: len(s.experiments()) for name, s in systems.items()}
    assert all(n > 0 for n in counts.values()), counts


def test_values_the_module_owns_are_given_and_cannot_be_defined_again(tmp_path) -> None:
    entry = ENTRY + 'workload = "w"\nparams = { size = "$sizes" }\n'
    [one, two] = _load(tmp_path, entry, {"sizes": [1, 2]}).experiments("s", {"plain": _plain})
    assert (one.params, two.params) == ({"size": 1}, {"size": 2})
    with pytest.raises(ValueError, match=r"s.toml: \[vars\] defines sizes, which its module gives"):
        _load(tmp_path, "[vars]\nsizes = [3]\n" + entry, {"sizes": [1, 2]})
