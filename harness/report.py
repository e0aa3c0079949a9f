"""The report: a pure function of the stored results (and the claims file).

`write(store, out_dir)` makes `<out_dir>/<timestamp>/index.html` (static, offline,
sortable tables, plots as PNG beside it) and `report.md`, which holds everything the
HTML holds except the images.

Plot specs (a system's `plots`, `harness.systems.System`), one dict each:
  title   what the plot shows (the figure's caption)
  select  a selector over experiment fields, as in claims.toml
  x, y    a field, parameter or figure (e.g. "size.n", "time_s", "channels")
  hue     the field that makes the series (default "impl")
  xlabel, ylabel  axis labels with units (default: FIELD_LABELS, else the field's name)
  series  a format for each hue value, e.g. "K = {}" or "{} channels" (default "{}")
  style   "line" (numeric x) or "points" (categorical x: points, no joining lines)
  floor   optional figure drawn as a dashed line per series, labelled "physical floor"
  logx, logy  logarithmic axes
A plot with at most one point per series is shown as a table instead.

Speedup tables: a system's `speedup` (`harness.systems.SpeedupTable`) names its baseline
impl, the parameters that make a configuration, and the baseline backends each backend is
paired with.  Each other row is paired with its baseline on one machine and commit.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

import devices
from harness import claims as claims_mod
from harness import registry
from harness.store import Row, Store
from harness.systems import SpeedupTable
from workloads import catalog

TEMPLATE_DIR = Path(__file__).with_name("templates")
VERDICT_CLASS = {claims_mod.REPRODUCED: "ok", claims_mod.MIXED: "warn", claims_mod.DIRECTION_HOLDS: "warn",
                 claims_mod.NOT_REPRODUCED: "bad", claims_mod.NOT_MEASURED: "none",
                 claims_mod.NOT_MEASURABLE: "none"}

# Axis labels, with units, for fields a plot spec names without its own label.
FIELD_LABELS = {
    "size.n": "corpus size (embeddings)", "size.edges": "edges in the graph", "size.vertices": "vertices",
    "time_s": "time (s)", "latency_p50_s": "update latency p50 (s)", "latency_p99_s": "update latency p99 (s)",
    "pass_rate": "filter pass rate (share of scores reaching K-selection)",
    "dcs": "data centres", "channels": "HBM channels", "score_units": "score units N_E",
    "k": "K (results per query)", "modelled_stall_cycles": "filter stall cycles (modelled)",
    "problem": "mining problem", "bandwidth_gbps": "link bandwidth (Gbps)", "qps": "throughput (queries/s)",
}


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


# ---------------------------------------------------------------------------- speedup tables

def speedup_tables(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Per system: {"title", "columns", "rows"}, the newest machine's rows only.

    With a baseline: one row per configuration, the implementation's time, its baseline's
    time on the parameters they share, and the speedup (baseline / implementation) beside.
    Without: each configuration's figure, titled by what it holds (median time, simulated latency).
    """
    timed = [r for r in rows if r["value"] is not None]
    if not timed:
        return {}
    newest = max(timed, key=lambda r: r["id"])["machine_id"]
    timed = [r for r in timed if r["machine_id"] == newest]
    out = {}
    for system in sorted({r["system"] for r in timed}):
        declared = registry.declared_systems().get(system)
        speedup = None if declared is None else declared.speedup
        mine = [r for r in timed if r["system"] == system]
        out[system] = _paired_table(system, speedup, mine) if speedup else _figure_table(system, mine)
    return out


def _paired_table(system: str, speedup: SpeedupTable, rows: list[Row]) -> dict[str, Any]:
    baseline, pair_on, prefer = speedup.baseline, speedup.pair_on, speedup.baseline_backends
    bases = [r for r in rows if r["impl"] == baseline]
    table = []
    for r in sorted((r for r in rows if r["impl"] != baseline), key=lambda r: (r["workload"], r["experiment_id"])):
        base = _baseline_for(r, bases, prefer.get(r["backend"], [r["backend"]]), pair_on)
        if base is None:
            continue
        shared = sorted(pair_on or (set(r["params"]) & set(base["params"])))
        own = {k: v for k, v in sorted(r["params"].items()) if k not in shared}
        table.append({
            "workload": r["workload"], "configuration": ", ".join(f"{k}={r['params'][k]}" for k in shared),
            "implementation": _impl_label(r, own), "time": _seconds_cell(r),
            "baseline": _impl_label(base, {}), "baseline time": _seconds_cell(base),
            "speedup": (claims_mod.format_value(base["value"] / r["value"], "×"), base["value"] / r["value"]),
            "_rows": (r["id"], base["id"])})
    kinds = {r["kind"] for r in rows if r["impl"] != baseline}
    what = "median time" + (" (modelled rows: modelled latency)" if "modelled" in kinds else "")
    return {"title": f"{system}: {what} per configuration, and speedup over {baseline}",
            "note": f"speedup = {baseline}'s time / the implementation's, on the parameters both share, "
                    f"on one machine and commit ({', '.join(sorted({r['git_commit'][:12] for r in rows}))})",
            "columns": ["workload", "configuration", "implementation", "time", "baseline", "baseline time", "speedup"],
            "rows": table}


def _baseline_for(r: Row, bases: list[Row], backends_in_order: list[str], pair_on: list[str] | None) -> Row | None:
    for backend in backends_in_order:
        for b in sorted(bases, key=lambda b: -b["id"]):
            if (b["backend"], b["workload"], b["git_commit"]) != (backend, r["workload"], r["git_commit"]):
                continue
            keys = pair_on or (set(r["params"]) & set(b["params"]))
            if all(r["params"].get(k) == b["params"].get(k) for k in keys):
                return b
    return None


def _figure_table(system: str, rows: list[Row]) -> dict[str, Any]:
    kinds = {r["kind"] for r in rows}
    what = {frozenset({"simulated"}): "simulated latency", frozenset({"modelled"}): "modelled latency"}.get(
        frozenset(kinds), "median time")
    table = [{"workload": r["workload"], "configuration": ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items())),
              "implementation": _impl_label(r, {}), what: _seconds_cell(r), "_rows": (r["id"],)}
             for r in sorted(rows, key=lambda r: (r["workload"], r["impl"], r["experiment_id"]))]
    return {"title": f"{system}: {what} per configuration", "note": "no baseline is named for this system",
            "columns": ["workload", "configuration", "implementation", what], "rows": table}


def _impl_label(r: Row, own: dict[str, Any]) -> str:
    extra = "".join(f", {k}={v}" for k, v in own.items())
    kind = "" if r["kind"] == "measured" else f" ({r['kind']})"
    return f"{r['impl']} on {r['backend']}{extra}{kind}"


def _seconds_cell(r: Row) -> tuple[str, float]:
    return claims_mod.format_seconds(r["value"]), r["value"]


def baseline_strength(rows: list[Row]) -> list[dict[str, Any]]:
    """Each system's baseline_strength pairs: the real library's time / our baseline's (above 1: ours is faster)."""
    out = []
    for system, spec, members in claims_mod.baseline_strength_pairs(rows):
        vals = [m.value for m in members]
        weak = [m for m in members if m.value < 1 / claims_mod.WEAK_BASELINE_FACTOR]
        out.append({"system": system, "label": spec.label, "n": len(vals),
                    "min": min(vals) if vals else None, "median": float(pd.Series(vals).median()) if vals else None,
                    "max": max(vals) if vals else None, "rows": sorted(r["id"] for m in members for r in m.rows),
                    "weak": [f"{m.label} ({m.value:.2g})" for m in weak]})
    return out


# ---------------------------------------------------------------------------- plots

def plots(frame: pd.DataFrame, out: Path) -> list[dict[str, Any]]:
    """Draw every system's plot spec that has data: [{system, title, file}] or, for a plot of
    single points, [{system, title, table}] (the points as a table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
    made = []
    for system, declared in registry.declared_systems().items():
        for i, spec in enumerate(declared.plots):
            df = _select(frame, spec["select"])
            if df.empty:
                continue
            x, y = _column(df, spec["x"]), _column(df, spec["y"])
            hue = _column(df, spec.get("hue", "impl"))
            if x not in df or y not in df or df[y].isna().all():
                continue
            df = df[df[y].notna()].assign(series=_series_names(df, hue, spec.get("series", "{}")))
            xlabel = spec.get("xlabel") or FIELD_LABELS.get(spec["x"], spec["x"])
            ylabel = spec.get("ylabel") or FIELD_LABELS.get(spec["y"], spec["y"])
            entry = {"system": system, "title": spec["title"]}
            if df.groupby("series")[x].nunique().max() <= 1:
                entry["table"] = _points_table(df, x, y, xlabel, ylabel)
                made.append(entry)
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            palette = dict(zip(df["series"].unique(), sns.color_palette(n_colors=df["series"].nunique())))
            if spec.get("style", "line") == "points":
                _draw_points(ax, df, x, y, palette)
            else:
                _draw_lines(ax, df, x, y, palette, spec.get("floor") and _column(df, spec["floor"]))
            if spec.get("logy"):
                ax.set_yscale("log")
            _plain_y(ax)
            if spec.get("logx") and spec.get("style", "line") == "line":
                ax.set_xscale("log")
                _plain_ticks(ax, sorted(df[x].unique()))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=8, title=None)
            name = f"plot-{system}-{i}.png"
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
            entry["file"] = name
            made.append(entry)
    return made


def _series_names(df: pd.DataFrame, hue: str, fmt: str) -> pd.Series:
    """"K = 1024", "32 channels": the spec's format over each hue value, integers shown as integers;
    the kind is added only where a plot mixes measured and modelled or simulated series."""
    names = df[hue].map(lambda v: fmt.format(_plain(v))) if hue in df else pd.Series(fmt.format(""), index=df.index)
    if df["kind"].nunique() > 1:
        names = names + df["kind"].map(lambda k: "" if k == "measured" else f" ({k})")
    return names


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _draw_lines(ax: Any, df: pd.DataFrame, x: str, y: str, palette: dict, floor: str | None) -> None:
    for name, part in df.groupby("series", sort=False):
        line = part.groupby(x)[y].median().sort_index()
        ax.plot(line.index, line.values, marker="o", label=name, color=palette[name])
        if floor and floor in part and part[floor].notna().any():
            bound = part.groupby(x)[floor].median().sort_index()
            ax.plot(bound.index, bound.values, linestyle="--", color=palette[name], alpha=0.7,
                    label=f"{name}: physical floor" if len(palette) > 1 else "physical floor")


def _draw_points(ax: Any, df: pd.DataFrame, x: str, y: str, palette: dict) -> None:
    """Categorical x: one marker per series and category, side by side; no line joins categories."""
    categories = list(dict.fromkeys(df[x]))
    width = 0.6 / max(1, len(palette))
    for j, (name, part) in enumerate(df.groupby("series", sort=False)):
        points = part.groupby(x)[y].median()
        positions = [categories.index(c) - 0.3 + width * (j + 0.5) for c in points.index]
        ax.plot(positions, points.values, marker="o", linestyle="none", markersize=7, label=name,
                color=palette[name])
    ax.set_xticks(range(len(categories)), [str(c) for c in categories], rotation=25, ha="right")
    ax.grid(axis="x", visible=False)


def _plain_ticks(ax: Any, values: list[float]) -> None:
    """Log-scaled x with a tick at each value, written 25k, 100k, 1M or 4, 8, 16: never 4×10⁰."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    if len(values) <= 12:
        ax.xaxis.set_major_locator(FixedLocator(values))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))


def _plain_y(ax: Any) -> None:
    """y ticks as plain numbers (0.001, 0.01), never 10⁻³ or an offset."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    majors = [t for t in ax.get_yticks() if low <= t <= high]
    # A log axis spanning less than a decade has at most one major tick: label the minor ones too.
    ax.yaxis.set_minor_formatter(plain if ax.get_yscale() == "log" and len(majors) < 2 else NullFormatter())


def _short(v: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale and (v / scale).is_integer():
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def _points_table(df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str) -> dict[str, Any]:
    rows = [{"series": r["series"], xlabel: (_cell(r[x]), r[x]), ylabel: (_cell(r[y]), r[y]), "_rows": (r["id"],)}
            for _, r in df.sort_values(["series", x]).iterrows()]
    return {"columns": ["series", xlabel, ylabel], "rows": rows,
            "note": "one point per series in this tier, so a table rather than a plot"}


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


# ---------------------------------------------------------------------------- skips and provenance

def skipped(runs: list[dict[str, Any]], rows: list[Row]) -> dict[str, list[str]]:
    """reason -> experiment ids of the newest run's tier that this machine cannot run and nothing stored."""
    tier = runs[-1]["tier"] if runs else None
    stored = {r["experiment_id"] for r in rows}
    out: dict[str, list[str]] = {}
    for exp in registry.experiments(tier=tier):
        ok, why = devices.can_run(exp.backend, exp.requires)
        if not ok and exp.id not in stored:
            out.setdefault(why, []).append(exp.id)
    return out


def claim_provenance(verdicts: list[claims_mod.Verdict], rows: list[Row]) -> list[dict[str, Any]]:
    """For each verdict with numbers: the stored rows behind them (median, spread, repeats, code state, run)."""
    by_id = {r["id"]: r for r in rows}
    out = []
    for v in verdicts:
        if v.row_ids:
            out.append({"claim": v.claim.id, "measurement": v.measurement.label,
                        "rows": [by_id[i] for i in v.row_ids if i in by_id]})
    return out


# ---------------------------------------------------------------------------- writing

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
    failures = store.failures()
    verdicts = claims_mod.evaluate(claims_mod.load(), rows, failures)
    frame = results_frame(rows)
    runs = store.runs()
    context = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "store": str(store.path),
        "runs": runs[-5:],
        "machine": runs[-1]["machine"] if runs else {},
        "backends": runs[-1]["backends"] if runs else {},
        "verdicts": [(v, claims_mod.record(v)) for v in verdicts], "verdict_class": VERDICT_CLASS,
        "counts": claims_mod.counts(verdicts),
        # Speedup tables, then the tables a system renders itself (its `report_tables(rows)`).
        "tables": {**speedup_tables(rows), **{name: t for declared in registry.declared_systems().values()
                                              for name, t in declared.report_tables(rows).items()}},
        "plots": plots(frame, target),
        "failures": failures,
        "skipped": skipped(runs, rows),
        "strength": baseline_strength(rows),
        "claim_provenance": claim_provenance(verdicts, rows),
        "provenance": provenance_table(frame),
    }
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html", "j2"]))
    env.globals["table"] = html_table
    (target / "index.html").write_text(env.get_template("report.html.j2").render(**context))
    (target / "report.md").write_text(markdown(context))
    return target / "index.html"


PROVENANCE_COLUMNS = ["id", "experiment", "kind", "time_s", "iqr_s", "n", "peak_mb", "threads", "device", "machine",
                      "commit", "run", "created"]


def provenance_table(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {"columns": PROVENANCE_COLUMNS, "rows": []}
    return {"columns": PROVENANCE_COLUMNS, "anchor": "id",
            "rows": [{c: (_cell(r[c]), r[c]) if isinstance(r[c], float) else r[c] for c in PROVENANCE_COLUMNS}
                     for _, r in frame.iterrows()]}


def html_table(table: dict[str, Any], caption: str = "") -> str:
    """A sortable table; a cell is text or (text, sort value); rows with `anchor` get id="row-N"."""
    if not table["rows"]:
        return "<p><em>no results</em></p>"
    cols = table["columns"]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    if "_rows" in table["rows"][0]:
        head += "<th>rows</th>"
    body = []
    for row in table["rows"]:
        cells = []
        for col in cols:
            text, sort = _text_and_sort(row.get(col))
            cells.append(f'<td data-v="{html.escape(str(sort))}">{html.escape(text)}</td>')
        if "_rows" in row:
            cells.append("<td>" + " ".join(f'<a href="#row-{i}">{i}</a>' for i in row["_rows"]) + "</td>")
        anchor = f' id="row-{row[table["anchor"]]}"' if table.get("anchor") else ""
        body.append(f"<tr{anchor}>{''.join(cells)}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="sortable">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _text_and_sort(cell: Any) -> tuple[str, Any]:
    if isinstance(cell, tuple):
        return cell[0], cell[1]
    return _cell(cell), "" if cell is None else cell


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ---------------------------------------------------------------------------- report.md

def markdown(ctx: dict[str, Any]) -> str:
    """Everything the HTML report holds except the images."""
    md: list[str] = ["# recmine report", "", f"Generated {ctx['generated']} from `{ctx['store']}`. Figures marked "
                     "*modelled* come from the cycle-level FPGA model, *simulated* from the discrete-event WAN "
                     "simulation; all others were measured on this machine.", "", "## Machine and backends", ""]
    md += [f"- {k}: {v}" for k, v in ctx["machine"].items()]
    md += [f"- backend {k}: {v}" for k, v in ctx["backends"].items()]
    md += ["", "## Claims", "", "  ".join(f"{name}: {n}" for name, n in ctx["counts"].items()), ""]
    md += _md_rows(["claim", "paper value", "measurement", "value here", "verdict", "reason", "reproduce"],
                   [[r["claim"], r["paper_value"],
                     f"{r['measurement']} ({r['hardware_note']})" if r["hardware_note"] else r["measurement"],
                     f"{r['value']} ({r['kind']})" if r["value"] else "—", r["verdict"],
                     " ".join([r["reason"], *(f"[{n}]" for n in r["notes"])]) or "—",
                     f"`{r['reproduce']}`" if r["reproduce"] else "—"] for _, r in ctx["verdicts"]])
    md += ["", "## Baseline strength", "", "The real library's time / our baseline's, on the same data in the same "
           f"run: above 1, ours is faster; below {1 / claims_mod.WEAK_BASELINE_FACTOR:g}, ours is flagged weak.", ""]
    md += _md_rows(["system", "comparison", "pairs", "min", "median", "max", "weak on"],
                   [[b["system"], b["label"], b["n"], _cell(b["min"]), _cell(b["median"]), _cell(b["max"]),
                     ", ".join(b["weak"]) or "—"] for b in ctx["strength"]])
    for table in ctx["tables"].values():
        md += ["", f"## {table['title']}", "", table["note"] + ".", ""]
        md += _md_rows(table["columns"] + ["rows"],
                       [[_text_and_sort(row.get(c))[0] for c in table["columns"]] + [", ".join(map(str, row["_rows"]))]
                        for row in table["rows"]])
    md += ["", "## Plots", ""]
    for p in ctx["plots"]:
        if "table" in p:
            md += [f"### {p['title']}", "", p["table"]["note"] + ".", ""]
            md += _md_rows(p["table"]["columns"], [[_text_and_sort(row.get(c))[0] for c in p["table"]["columns"]]
                                                   for row in p["table"]["rows"]])
            md.append("")
        else:
            md.append(f"- {p['title']}: `{p['file']}` (image, in the HTML report)")
    md += ["", "## Failed experiments", ""]
    md += (_md_rows(["experiment", "error", "run"], [[f["experiment_id"], f["error"], f["run_id"]]
                                                    for f in ctx["failures"]]) if ctx["failures"] else ["none"])
    md += ["", "## Skipped here", ""]
    md += ([f"- {len(ids)} skipped: {why}" for why, ids in ctx["skipped"].items()] or ["none"])
    md += ["", "## Provenance of each claim's numbers", ""]
    for item in ctx["claim_provenance"]:
        md += [f"### {item['claim']}: {item['measurement']}", ""]
        md += _md_rows(["row", "experiment", "kind", "median", "IQR", "n", "commit", "run"],
                       [[r["id"], r["experiment_id"], r["kind"], _cell(r["value"]), _cell(r["stats"].get("iqr")),
                         r["stats"].get("n", ""), r["git_commit"][:12], r["run_id"]] for r in item["rows"]])
        md.append("")
    md += ["## Runs", ""]
    md += _md_rows(["run", "command", "tier", "commit", "machine id"],
                   [[r["run_id"], f"`{r['command']}`", r["tier"], r["git_commit"], r["machine_id"]] for r in ctx["runs"]])
    return "\n".join(md) + "\n"


def _md_rows(columns: list[str], rows: list[list[Any]]) -> list[str]:
    escape: Callable[[Any], str] = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(escape(v) for v in row) + " |" for row in rows)]
