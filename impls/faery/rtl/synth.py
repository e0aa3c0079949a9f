"""Resource figures: the accelerator synthesised by yosys for UltraScale+ (`synth_xilinx -family xcup`).

    python -m impls.faery.rtl.synth --k 512 1024 2048 4096 [--json out.json] [--record]

synthesises SNARY's U50 configuration (16 channels x 32 B, 128-d int8, 4 embeddings a
cycle, filter buffer 2K) at each K and prints LUT, FF, BRAM and DSP counts as shares of
the U50's, beside SNARY's table.  These are yosys's counts before place and route, which
is not available here: no clock frequency is estimated.  The stream source is left out:
it stands for the HBM, whose beats are the design's input port.

Synthesis takes 17 to 78 minutes of CPU per K, so the figures of the last full run are
kept in `resources.json` beside this file (`--record` rewrites it), with a fingerprint of
the design's sources: the report shows them, labelled as recorded, when its store holds
no synthesis rows, and says so when the design has changed since.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from impls.faery.fpga_model.config import FpgaConfig
from impls.faery.rtl.params import rtl_params
from impls.faery.rtl.top import Accelerator

SNARY_DIM = 128
# Ids for as many 128-byte embeddings as the U50's 8 GiB of HBM holds: 2**26.
SNARY_ITEMS = (8 << 30) // SNARY_DIM
# Alveo U50 resources (AMD DS965): the shares below are of these.
U50 = {"lut": 871_680, "ff": 1_743_360, "bram": 1_344, "dsp": 5_952}
# SNARY's U50 table (shared/papers/faery.md), percent of the device.
SNARY = {512: {"lut": 18.2, "ff": 12.2, "bram": 18.4}, 1024: {"lut": 26.4, "ff": 14.1, "bram": 18.4},
         2048: {"lut": 34.4, "ff": 16.0, "bram": 20.4}, 4096: {"lut": 40.2, "ff": 24.2, "bram": 20.4}}

# The modules that build the synthesised design: a change to any of them makes the recorded figures stale.
DESIGN_SOURCES = ("rtl/top.py", "rtl/source.py", "rtl/score.py", "rtl/filter.py", "rtl/fifo.py", "rtl/sorter.py",
                  "rtl/readout.py", "rtl/params.py", "fpga_model/config.py")
RECORDED = Path(__file__).with_name("resources.json")

# LUTs each LUT-RAM or shift-register primitive occupies (UltraScale+ CLB, UG574).
LUT_MEMORY = {"RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
              "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
              "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1}
FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE")


def rtlil(k: int) -> str:
    from amaranth.back import rtlil as back

    accel = Accelerator(rtl_params(FpgaConfig.snary_u50(k_max=k), SNARY_DIM, k, SNARY_ITEMS))
    return back.convert(accel, name="top", ports=accel.ports())


def cell_counts(stat: str) -> dict[str, int]:
    """Cell type -> count, from yosys's `stat` of the top design."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(\w+)\s+(\d+)\s*$", stat, re.M)}


def resources(cells: dict[str, int]) -> dict[str, float]:
    luts = sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c))
    lut_memory = sum(LUT_MEMORY[c] * n for c, n in cells.items() if c in LUT_MEMORY)
    return {"lut": float(luts + lut_memory), "lut_as_memory": float(lut_memory),
            "ff": float(sum(cells.get(c, 0) for c in FLIP_FLOPS)),
            "bram": cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0) / 2, "uram": float(cells.get("URAM288", 0)),
            "dsp": float(cells.get("DSP48E2", 0))}


def synthesise(k: int) -> dict[str, float]:
    """Synthesise SNARY's U50 configuration at K = k: counts, U50 shares and yosys's wall time."""
    if shutil.which("yosys") is None:
        raise ValueError("yosys is not installed (Debian: apt-get install yosys)")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "top.il").write_text(rtlil(k))
        started = time.perf_counter()
        done = subprocess.run(["yosys", "-q", "-p", "read_rtlil top.il; synth_xilinx -family xcup -top top; "
                               "tee -q -o stat.txt stat"], cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"yosys failed at K={k}: {(done.stderr or done.stdout).strip()[-2000:]}")
        counts = resources(cell_counts(Path(tmp, "stat.txt").read_text()))
    shares = {f"{name}_pct": 100 * counts[name] / total for name, total in U50.items()}
    return {"k": float(k), **counts, **shares, "yosys_s": seconds}


def design_fingerprint() -> str:
    """sha256 over the design's sources, in DESIGN_SOURCES order."""
    faery = Path(__file__).parent.parent
    digest = hashlib.sha256()
    for name in DESIGN_SOURCES:
        digest.update(name.encode() + b"\0" + (faery / name).read_bytes())
    return digest.hexdigest()


def recorded() -> dict:
    """The recorded figures: `rows` (k, lut, ff, bram, dsp), `command`, `source`, `yosys`, and `current`
    (whether the design's sources are those the figures were synthesised from)."""
    doc = json.loads(RECORDED.read_text())
    return {**doc, "current": doc["design"] == design_fingerprint()}


def yosys_version() -> str:
    return subprocess.run(["yosys", "-V"], capture_output=True, text=True).stdout.strip()


def table(rows: list[dict[str, float]]) -> list[str]:
    """Markdown: each K's shares of the U50 beside SNARY's."""
    out = ["| K | LUT (here) | LUT (SNARY) | FF (here) | FF (SNARY) | BRAM (here) | BRAM (SNARY) | DSP (here) | yosys |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = int(r["k"])
        snary = SNARY.get(k, {})
        cell = lambda name: f"{snary[name]:.1f}%" if name in snary else "—"  # noqa: E731
        out.append(f"| {k} | {r['lut_pct']:.1f}% ({r['lut']:,.0f}) | {cell('lut')} | {r['ff_pct']:.1f}% ({r['ff']:,.0f}) "
                   f"| {cell('ff')} | {r['bram_pct']:.1f}% ({r['bram']:g}) | {cell('bram')} "
                   f"| {r['dsp_pct']:.1f}% ({r['dsp']:,.0f}) | {r['yosys_s']:.0f} s |")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--record", action="store_true", help=f"make these the recorded figures ({RECORDED.name})")
    args = parser.parse_args(argv)
    rows = []
    for k in args.k:
        rows.append(synthesise(k))
        print(f"K={k}: " + ", ".join(f"{n}={rows[-1][n]:g}" for n in ("lut", "ff", "bram", "dsp", "yosys_s")), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.record:
        RECORDED.write_text(json.dumps({
            "source": f"a synthesis run of {time.strftime('%Y-%m-%d')}", "yosys": yosys_version(),
            "command": "python -m impls.faery.rtl.synth --k " + " ".join(map(str, args.k)),
            "design": design_fingerprint(),
            "rows": [{name: r[name] for name in ("k", "lut", "ff", "bram", "dsp")} for r in rows]}, indent=1) + "\n")
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
