"""The gate must catch a real slowdown: FAERY-CPU planted `--factor` times slower, it must fail.

`Index.search` spins after each call for (factor - 1) times what the call took, busy as real
work would be, and the gate's own `run_gate` measures the figures of ci/reference.json whose
numerator is FAERY-CPU.  A figure with no reference for this CPU kind is first measured
unplanted, and that ratio is its reference for this check.  Exit 0 when every one of them
regressed (the gate caught the plant), 1 otherwise, 2 when the reference gates no FAERY-CPU figure.

    .venv/bin/python ci/planted_gate.py [--factor 2.0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from harness import compare
from impls.faery.index import Index

REFERENCE = Path(__file__).resolve().parent / "reference.json"


def plant(factor: float) -> None:
    search = Index.search

    def slower(self, queries, k):
        began = time.perf_counter()
        out = search(self, queries, k)
        spent = time.perf_counter() - began
        while time.perf_counter() - began < factor * spent:
            pass
        return out

    Index.search = slower


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=2.0, help="how many times slower FAERY-CPU is made")
    factor = parser.parse_args().factor
    if not factor > 1:
        parser.error(f"--factor must be above 1, not {factor}")
    figures, threshold = compare.load_reference(REFERENCE)
    faery = [f for f in figures if f.numerator.startswith("faery/faery/cpu/")]
    if not faery:
        print(f"planted gate: {REFERENCE} gates no FAERY-CPU figure: nothing to plant in", file=sys.stderr)
        return 2
    unrecorded = [f for f in faery if f.reference is None]
    if unrecorded:
        print(f"planted gate: no reference on this CPU for {'; '.join(f.name for f in unrecorded)}: "
              "measuring unplanted first, as this check's reference", file=sys.stderr)
        unplanted = compare.measure_ratios(unrecorded)
        faery = [f if f.reference is not None
                 else replace(f, reference=unplanted[f.name]) for f in faery]
    plant(factor)
    results = compare.run_gate(faery, threshold)
    for r in results:
        print(f"planted {factor}x: {r.figure.name}  ratio {r.ratio:.3f} (limit {r.limit:.3f})  "
              f"{'caught' if r.regressed else 'MISSED'}")
    missed = [r for r in results if not r.regressed]
    print(f"planted gate: {len(results) - len(missed)} of {len(results)} FAERY-CPU figures caught "
          f"(load average {os.getloadavg()[0]:.2f})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
