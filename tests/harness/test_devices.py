"""The backend layer: a device that lists but cannot build is unavailable, with the compiler's message."""

from __future__ import annotations

import types

import numpy as np
import pytest
from click.testing import CliRunner

import devices
from devices import opencl
from devices.probes import probe

PIP_POCL_ERROR = ("clBuildProgram failed: BUILD_PROGRAM_FAILURE - clBuildProgram failed: BUILD_PROGRAM_FAILURE\n\n"
                  "Build on <pyopencl.Device 'pthread-generic' on 'Portable Computing Language'>:\n\n"
                  "error: unknown target CPU 'generic'\nnote: valid target CPU values are: x86-64, znver3\n")


class FakeError(Exception):
    pass


def fake_cl(platforms: list[tuple[str, str, bool]]) -> types.SimpleNamespace:
    """A pyopencl stand-in: (platform name, device name, whether its compiler works) per platform."""

    class Device:
        def __init__(self, name: str, works: bool) -> None:
            self.name, self.works = name, works

    class Platform:
        def __init__(self, name: str, device: Device) -> None:
            self.name, self._device = name, device

        def get_devices(self):
            return [self._device]

    class Context:
        def __init__(self, devices):
            self.devices = devices

    class Program:
        def __init__(self, context, source):
            self.context = context

        def build(self):
            if not self.context.devices[0].works:
                raise FakeError(PIP_POCL_ERROR)
            return self

        def recmine_probe(self, queue, global_size, local_size, buffer):
            buffer.data = 3 * np.arange(global_size[0], dtype=np.int32) + 1

    class Buffer:
        def __init__(self, context, flags, size):
            self.data = None

    def enqueue_copy(queue, out, buffer):
        out[:] = buffer.data

    return types.SimpleNamespace(
        get_platforms=lambda: [Platform(p, Device(d, ok)) for p, d, ok in platforms],
        Context=Context, CommandQueue=lambda context: types.SimpleNamespace(finish=lambda: None),
        Program=Program, Buffer=Buffer, mem_flags=types.SimpleNamespace(WRITE_ONLY=1), enqueue_copy=enqueue_copy)


PIP_POCL = ("Portable Computing Language", "pthread-generic", False)
DEBIAN_POCL = ("Portable Computing Language", "pthread-skylake-avx512-AMD EPYC", True)


def test_a_device_that_cannot_build_is_unavailable_with_the_compiler_message():
    found = opencl.survey(fake_cl([PIP_POCL]))
    assert found.chosen is None
    assert "unknown target CPU 'generic'" in found.reason
    assert len(found.rejected) == 1 and "cannot build a kernel" in found.rejected[0].reason


def test_the_next_device_is_tried_and_the_rejected_one_kept():
    found = opencl.survey(fake_cl([PIP_POCL, DEBIAN_POCL]))
    assert found.chosen is not None and found.chosen.index == "1:0"
    assert "skylake" in found.chosen.label
    assert [c.index for c in found.rejected] == ["0:0"]
    assert "unknown target CPU" in found.rejected[0].reason


def test_the_environment_variable_picks_a_device(monkeypatch):
    cl = fake_cl([DEBIAN_POCL, DEBIAN_POCL])
    monkeypatch.setenv(opencl.ENV_DEVICE, "1:0")
    assert opencl.survey(cl).chosen.index == "1:0"
    monkeypatch.setenv(opencl.ENV_DEVICE, "no such device")
    found = opencl.survey(cl)
    assert found.chosen is None and "names no device" in found.reason


@pytest.mark.parametrize("platforms, available", [([PIP_POCL], False), ([PIP_POCL, DEBIAN_POCL], True)])
def test_recmine_env_reports_the_fake_platforms(monkeypatch, platforms, available):
    from harness.cli import cli

    monkeypatch.setattr(opencl, "selection", lambda: opencl.survey(fake_cl(platforms)))
    monkeypatch.setattr("harness.machine.read_bandwidth", lambda seconds: 1.0)
    probe.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["env", "--require", "opencl"], obj={})
    finally:
        probe.cache_clear()
    line = next(line for line in result.output.splitlines() if line.strip().startswith("opencl"))
    if available:
        assert result.exit_code == 0 and "available" in line and "skylake" in line
        assert "rejected 0:0" in result.output and "unknown target CPU 'generic'" in result.output
    else:
        assert result.exit_code == 1
        assert "unavailable" in line and "unknown target CPU 'generic'" in line


def test_setup_installs_debian_pocl_only_where_no_device_builds(monkeypatch):
    calls = []
    monkeypatch.setattr(opencl, "survey", lambda: opencl.Selection(None, reason="cannot build a kernel: x"))
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    line = opencl.ensure(run=lambda cmd, **kw: calls.append(cmd) or types.SimpleNamespace(returncode=0))
    assert calls[-1][:3] == ["apt-get", "install", "-y"] and opencl.DEBIAN_POCL in calls[-1]
    assert "installed" in line
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    calls.clear()
    line = opencl.ensure(run=lambda cmd, **kw: calls.append(cmd))
    assert not calls and f"apt-get install {opencl.DEBIAN_POCL}" in line
    monkeypatch.setattr(opencl, "survey", lambda: opencl.Selection(opencl.Candidate("0:0", "ok")))
    assert opencl.ensure(run=lambda cmd, **kw: calls.append(cmd)) == "" and not calls


def test_every_backend_is_probed_through_one_layer():
    assert set(devices.probe_all()) == set(devices.BACKENDS)
    assert devices.probe("cpu").available
    with pytest.raises(ValueError, match="unknown backend"):
        devices.probe("tpu")


def test_nothing_outside_the_backend_layer_probes_on_its_own():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    probing = ("get_platforms(", "getDeviceCount(", "cl.Context(", "import cuda_common")
    offenders = [f"{path.relative_to(root)}: {needle}"
                 for top in ("harness", "impls", "baselines", "workloads", "tests")
                 for path in (root / top).rglob("*.py") if path.name != "test_devices.py"
                 for needle in probing if needle in path.read_text()]
    assert not offenders, offenders


def test_a_gpu_count_requirement_is_judged_at_run_time(monkeypatch):
    from devices import probes

    monkeypatch.setattr(probes, "probe", lambda name: probes.BackendInfo(name, True))
    monkeypatch.setattr(probes, "gpu_count", lambda: 2)
    assert probes.can_run("gpu", ("gpus:2",)) == (True, "")
    assert probes.can_run("gpu", ("gpus:8",)) == (False, "needs 8 GPUs, this machine has 2")
