#!/usr/bin/env bash
# The GPU checks that CI cannot run (it has no GPU), in one go on a machine with a CUDA GPU and cupy:
# GPU correctness tests, the FAERY and G2Miner GPU benchmarks, and the GPU rows of the claims table.
#
#   bash ci/gpu_checks.sh OUTDIR
#
# Run from the repository root with a Python that has the project's dependencies (or the project
# on PYTHONPATH). Every log, the JSON timings, the results store and the report land in OUTDIR;
# record the figures, with this command, in impls/faery/PERFORMANCE.md and impls/g2miner/PERFORMANCE.md.
set -uo pipefail
out=${1:?usage: bash ci/gpu_checks.sh OUTDIR}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
status=0
step() {  # run one step, keep its log, remember a failure but go on to the next step
    local name=$1; shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "== $name FAILED"; status=1; }
}
step nvidia-smi nvidia-smi
step env "$py" -m harness.cli env
step pytest-gpu "$py" -m pytest -q -m gpu tests/faery tests/g2miner tests/benchmarks
step faery-bench-gpu "$py" -m harness.cli faery bench --backend gpu --workload gaussian-10m-d128-fp32 --workload gaussian-10m-d128-fp16 -k 100 --batches 1,256 --repeats 20 --json "$out/faery-bench-gpu.json"
step g2miner-kron21 "$py" -m harness.cli g2miner bench --backend gpu --workload kron21 --repeat 3 triangle 4-clique diamond
step g2miner-kron21-long "$py" -m harness.cli g2miner bench --backend gpu --workload kron21 --repeat 1 5-clique 4-cycle
step reproduce "$py" -m harness.cli reproduce --quick --store "$out/gpu.sqlite" --out "$out/report"
step claims "$py" -m harness.cli claims --store "$out/gpu.sqlite"
exit $status
