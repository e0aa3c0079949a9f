"""The report: a pure function of the stored results (and the claims file).

`write(store, out_dir)` makes `<out_dir>/<timestamp>/index.html` (static, offline,
sortable tables, seaborn plots as PNG beside it) and `report.md`.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from harness import claims as claims_mod
from harness import registry
from harness.store import Row, Store
from workloads import catalog

TEMPLATE_DIR = Path(__file__).with_name("templates")
VERDICT_CLASS = {claims_mod.REPRODUCED: "ok", claims_mod.DIRECTION_HOLDS: "warn",
                 claims_mod.NOT_REPRODUCED: "bad", claims_mod.NOT_MEASURED: "none",
                 claims_mod.NOT_MEASURABLE: "none"}


def results_frame(rows: list[Row]) -> pd.DataFrame:
    """One line per stored row: its fields, figures and provenance."""
    records = []
    sizes = {name: w.size for name, w in catalog.all_workloads().items()}
    for r in rows:
        rec = {"id": r["id"], "experiment": r["experiment_id"], "system": r["system"], "impl": r["impl"],
               "backend": r["backend"], "workload": r["workload"], "kind": r["kind"],
               "params": ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items())),
               "time_s": r["value"], "iqr_s": r["stats"].get("iqr"), "n": r["stats"].get("n"),
               "commit": r["git_commit"], "machine": r["machine"].get("cpu", ""), "machine_id": r["machine_id"],
               "device": r["device"],
               "threads": r["threads"], "peak_mb": (r["peak_memory_bytes"] or 0) / 2**20 or None,
               "run": r["run_id"], "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"]))}
        rec.update({f"param.{k}": v for k, v in r["params"].items()})
        rec.update({f"metric.{k}": v for k, v in r["metrics"].items()})
        rec.update({f"size.{k}": v for k, v in sizes.get(r["workload"], {}).items()})
        records.append(rec)
    return pd.DataFrame.from_records(records)


def speedup_tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per system: median time per configuration, one column per implementation@backend.

    Only the newest machine's rows, with the code state in the index: a ratio column
    never divides figures from two machines or two commits. A system module may name
    SPEEDUP_BASELINE (an impl) and SPEEDUP_PAIR_ON (the parameters that make a configuration).
    """
    out = {}
    if frame.empty:
        return out
    newest = frame.loc[frame["id"].idxmax(), "machine_id"]
    for system, df in frame[frame["time_s"].notna() & (frame["machine_id"] == newest)].groupby("system"):
        mod = registry.system_modules().get(system)
        pair_on = getattr(mod, "SPEEDUP_PAIR_ON", None)
        if pair_on:
            df = df.assign(params=df.apply(lambda r: ", ".join(f"{k}={r.get('param.' + k)}" for k in pair_on), axis=1))
        df = df.assign(column=df["impl"] + "@" + df["backend"] + df["kind"].map(
            lambda k: "" if k == "measured" else f" ({k})"))
        table = df.pivot_table(index=["workload", "params", "commit"], columns="column", values="time_s",
                               aggfunc="last")
        baseline = getattr(mod, "SPEEDUP_BASELINE", None)
        if baseline:
            for col in [c for c in table.columns if c.startswith(baseline + "@")]:
                for other in [c for c in table.columns if not c.startswith(baseline + "@")]:
                    table[f"{col} / {other}"] = table[col] / table[other]
        out[system] = table.reset_index()
    return out


def baseline_strength(rows: list[Row]) -> list[dict[str, Any]]:
    """Each system's BASELINE_STRENGTH specs: the real library's time / our baseline's, paired per configuration.

    Above 1, our baseline is faster than the real thing; a speedup over a baseline
    is only as honest as this ratio is close to or above 1.
    """
    out = []
    for system, mod in registry.system_modules().items():
        for spec in getattr(mod, "BASELINE_STRENGTH", []):
            measure = {"kind": "ratio", "metric": "time_s", "numerator": spec["real"], "denominator": spec["ours"],
                       "pair_on": spec.get("pair_on", ["workload"])}
            vals, used = claims_mod.values(measure, rows)
            out.append({"system": system, "label": spec["label"], "n": len(vals),
                        "min": min(vals) if vals else None, "median": float(pd.Series(vals).median()) if vals else None,
                        "max": max(vals) if vals else None, "rows": sorted(r["id"] for r in used)})
    return out


def plots(frame: pd.DataFrame, out: Path) -> list[dict[str, str]]:
    """Draw every system's PLOTS spec that has data; return [{title, file}]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    made = []
    for system, mod in registry.system_modules().items():
        for i, spec in enumerate(getattr(mod, "PLOTS", [])):
            df = _select(frame, spec["select"])
            x, y = _column(df, spec["x"]), _column(df, spec["y"])
            if df.empty or x not in df or y not in df or df[y].isna().all():
                continue
            hue = _column(df, spec.get("hue", "impl"))
            fig, ax = plt.subplots(figsize=(7, 4.2))
            labelled = df.assign(series=df[hue].astype(str) + df["kind"].map(
                lambda k: "" if k == "measured" else f" ({k})")) if hue in df else df.assign(series="")
            sns.lineplot(data=labelled, x=x, y=y, hue="series", style="series", markers=True, dashes=False, ax=ax,
                         errorbar=None)
            if spec.get("logx"):
                ax.set_xscale("log")
            if spec.get("logy"):
                ax.set_yscale("log")
            kinds = set(df["kind"])
            ax.set_title(spec["title"] + ("" if kinds == {"measured"} else f" [{', '.join(sorted(kinds))}]"),
                         fontsize=10)
            ax.set_xlabel(spec["x"])
            ax.set_ylabel(spec["y"])
            ax.grid(True, alpha=0.3)
            name = f"plot-{system}-{i}.png"
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
            made.append({"title": spec["title"], "file": name, "system": system})
    return made


def _column(frame: pd.DataFrame, name: str) -> str:
    """A plot spec names a frame column, a parameter or a figure: find which."""
    for candidate in (name, f"param.{name}", f"metric.{name}"):
        if candidate in frame.columns:
            return candidate
    return name


def _select(frame: pd.DataFrame, selector: dict[str, Any]) -> pd.DataFrame:
    if frame.empty:
        return frame
    fields = frame.apply(lambda r: {"system": r["system"], "impl": r["impl"], "backend": r["backend"],
                                    "workload": r["workload"], "kind": r["kind"],
                                    **{c[6:]: r[c] for c in frame.columns if c.startswith("param.") and pd.notna(r[c])}},
                         axis=1)
    return frame[fields.map(lambda f: registry.matches(f, selector))]


def _out_dir(out: str | os.PathLike) -> Path:
    base = Path(out)
    target = base / time.strftime("%Y%m%d-%H%M%S")
    try:
        target.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        target = base / (time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
        target.mkdir(parents=True)
    except OSError as exc:
        raise ValueError(f"cannot write the report to {base}: {exc.strerror or exc}") from None
    if not os.access(target, os.W_OK):
        raise ValueError(f"cannot write the report to {base}: not writable")
    return target


def write(store: Store, out: str | os.PathLike = "reports") -> Path:
    """Write the HTML and Markdown reports; returns the path of index.html."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    target = _out_dir(out)
    rows = store.latest()
    verdicts = claims_mod.evaluate(claims_mod.load(), rows)
    frame = results_frame(rows)
    tables = speedup_tables(frame)
    made = plots(frame, target)
    runs = store.runs()
    context = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "store": str(store.path),
        "runs": runs[-5:],
        "machine": runs[-1]["machine"] if runs else {},
        "backends": runs[-1]["backends"] if runs else {},
        "verdicts": verdicts, "verdict_class": VERDICT_CLASS,
        "counts": {v: sum(1 for x in verdicts if x.verdict == v) for v in claims_mod.VERDICTS},
        "tables": {s: _html_table(t) for s, t in tables.items()},
        "plots": made,
        "failures": store.failures(),
        "strength": baseline_strength(rows),
        "provenance": _html_table(frame[["id", "experiment", "kind", "time_s", "iqr_s", "n", "peak_mb", "threads",
                                         "device", "machine", "commit", "run", "created"]] if not frame.empty else frame,
                                  anchor_col="id"),
    }
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html"]))
    (target / "index.html").write_text(env.get_template("report.html.j2").render(**context))
    (target / "report.md").write_text(_markdown(context, verdicts, tables))
    return target / "index.html"


def _html_table(df: pd.DataFrame, anchor_col: str | None = None) -> str:
    if df.empty:
        return "<p><em>no results</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cells = []
        for col in df.columns:
            v = row[col]
            cell = _fmt_cell(v)
            cells.append(f'<td data-v="{html.escape(str(v))}">{html.escape(cell)}</td>')
        anchor = f' id="row-{row[anchor_col]}"' if anchor_col else ""
        body.append(f"<tr{anchor}>{''.join(cells)}</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _fmt_cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _markdown(ctx: dict[str, Any], verdicts: list[claims_mod.Verdict], tables: dict[str, pd.DataFrame]) -> str:
    lines = ["# recmine report", "", f"Generated {ctx['generated']} from `{ctx['store']}`.", "",
             "## Baseline strength (real library time / our baseline's time; above 1: ours is faster)", "",
             "| system | comparison | pairs | min | median | max |", "|---|---|---|---|---|---|",
             *[f"| {b['system']} | {b['label']} | {b['n']} | {_fmt_cell(b['min'])} | {_fmt_cell(b['median'])} | "
               f"{_fmt_cell(b['max'])} |" for b in ctx["strength"]], "",
             "## Claims", "", "| paper | claim | paper value | measurement | value here | verdict | note |",
             "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        note = v.reason or v.measurement.hardware_note
        value = f"{v.value} ({v.kind})" if v.value else "—"
        lines.append(f"| {v.claim.paper} | {v.claim.compares} | {v.claim.paper_value} | {v.measurement.label} | "
                     f"{value} | {v.verdict} | {note} |")
    for system, table in tables.items():
        lines += ["", f"## {system}: median time (s) per configuration", "", _markdown_table(table)]
    return "\n".join(lines) + "\n"


def _markdown_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(_fmt_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])
