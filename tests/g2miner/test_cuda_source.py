"""Every generated CUDA source compiles with nvcc for sm_90 (skipped only where nvcc is absent)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from impls import g2miner
from impls.g2miner import pattern as patterns
from impls.g2miner.emit_c import CUDA, module_source

ALL_PLANS = [(name, induced) for name in sorted(patterns.LIBRARY) for induced in (False, True)]
ALL_PLANS += [(f"{k}-clique", False) for k in range(4, 9)]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_every_generated_cuda_kernel_compiles(tmp_path):
    # One translation unit holding every kernel (one shared device library) keeps
    # this to a single nvcc run; each kernel is the exact text a standalone source holds.
    kernels = [(f"g2m_{i}", g2miner.plan(name, induced)) for i, (name, induced) in enumerate(ALL_PLANS)]
    source = tmp_path / "g2miner_kernels.cu"
    source.write_text(module_source(kernels, CUDA))
    result = subprocess.run(["nvcc", "-arch=sm_90", "-Werror", "all-warnings", "-c", str(source),
                             "-o", str(tmp_path / "g2miner_kernels.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]


def test_standalone_source_holds_one_kernel():
    from impls.g2miner.gpu import source

    text = source(g2miner.plan("diamond"))
    assert text.count("KERNEL g2m_count(") == 1 and "__ballot_sync" in text and "atomicAdd" in text


def test_plans_with_a_twin_aggregation_also_emit_the_twin_kernel():
    from impls.g2miner.gpu import source

    plan = g2miner.plan("4-cycle")
    assert plan.twin_aggregate is not None
    text = source(plan)
    # The levels (for parts of an edge list) and the twin kernel (for whole ones), in one module.
    assert "/* level 3: v3 in N(v0) ∩ N(v2), < v1 */" in text
    assert text.count("KERNEL g2m_count_twin(") == 1 and "ATOMIC_INC(&wedges[v2])" in text
    assert "g2m_count_twin" not in source(g2miner.plan("diamond"))
