"""The `recmine` command line.

Errors are one line on stderr with exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import traceback
from pathlib import Path

import click

import devices
from harness import machine, registry
from harness.store import DEFAULT_PATH, Store

def _filters(f):
    f = click.option("--where", multiple=True, metavar="FIELD=VALUE",
                     help="only experiments whose field or parameter matches (repeatable; globs allowed), "
                          "e.g. --where impl=faery --where scenario=single-stream")(f)
    f = click.option("--workload", help="only experiments on this workload")(f)
    f = click.option("--backend", help="only experiments on this backend (cpu, gpu, opencl, fpga-model)")(f)
    return click.option("--system", help="only this system")(f)


def _select(system: str | None, tier: str | None, backend: str | None, workload: str | None,
            where: tuple[str, ...] = ()) -> list:
    """Registered experiments matching the filters; unknown names are an error, not an empty list."""
    from workloads import catalog

    selector = dict(_parse_where(w) for w in where)
    if backend is not None:
        devices.probe(backend)  # ValueError naming the known backends
        selector["backend"] = backend
    if workload is not None:
        catalog.get(workload)    # ValueError naming the known workloads
        selector["workload"] = workload
    return registry.experiments(system=system, tier=tier, selector=selector)


def _parse_where(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--where {text!r}: expected FIELD=VALUE, e.g. impl=faery")
    for convert in (int, float):
        try:
            return key, convert(value)
        except ValueError:
            continue
    return key, value


STORE_OPTION = click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
                            default=DEFAULT_PATH, show_default=True, help="results store (SQLite file)")


class UserError(click.ClickException):
    """A one-line error caused by the user's input; exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"recmine: error: {_one_line(self.message)}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="show tracebacks on errors")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Reference implementations, baselines and benchmark harness for Ekko, FAERY and G2Miner (OSDI 2022)."""
    ctx.obj = {"debug": debug}


# ---------------------------------------------------------------------------- env

@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--require", multiple=True, type=click.Choice(devices.BACKENDS), metavar="BACKEND",
              help="exit 1 unless this backend is available (repeatable), e.g. --require opencl in CI")
def env(as_json: bool, require: tuple[str, ...]) -> None:
    """Show this machine, each backend's availability (devices tried and why rejected), and library versions."""
    probes = devices.probe_all()
    info = {"machine": machine.machine(), "read_bandwidth_gb_s": round(machine.read_bandwidth(1.0), 1),
            "git_commit": machine.git_commit(),
            "backends": {name: {"available": b.available, "reason": b.reason, "modelled": b.modelled,
                                "rejected": list(b.rejected), **b.details} for name, b in probes.items()},
            "versions": machine.library_versions()}
    missing = [name for name in require if not probes[name].available]
    if as_json:
        click.echo(json.dumps(info, indent=2))
        if missing:
            sys.exit(1)
        return
    m = info["machine"]
    click.echo(f"machine      {m['cpu']} — {m['cores']} cores, {m['memory_gb']} GB, {m['os']}")
    click.echo(f"read b/w     {info['read_bandwidth_gb_s']} GB/s (numpy sum over 256 MB, best of 1 s)")
    click.echo(f"python       {m['python']}    commit {info['git_commit']}")
    click.echo("backends")
    for name, b in probes.items():
        click.echo(f"  {name:<11} {b.summary()}")
        for rejected in b.rejected:
            click.echo(f"  {'':<11} rejected {rejected}")
    click.echo("versions")
    for lib, ver in info["versions"].items():
        click.echo(f"  {lib:<26} {ver}")
    for name in missing:
        click.echo(f"recmine: the {name} backend is required but unavailable: {probes[name].reason}", err=True)
    if missing:
        sys.exit(1)


# ---------------------------------------------------------------------------- list

@cli.command("list")
@_filters
@click.option("--tier", type=click.Choice(["quick", "full"]), help="only this tier")
def list_(system: str | None, backend: str | None, workload: str | None, where: tuple[str, ...],
          tier: str | None) -> None:
    """Show every registered experiment and whether it can run here."""
    exps = _select(system, tier, backend, workload, where)
    for exp in exps:
        ok, why = devices.can_run(exp.backend, exp.requires)
        tiers = "+".join(sorted(exp.tiers))
        click.echo(f"{exp.id:<82} {exp.kind:<9} {tiers:<10} {'runs here' if ok else 'skip: ' + why}")
    click.echo(f"{len(exps)} experiments", err=True)


@cli.command("run")
@click.argument("experiment_id")
@click.option("--quick/--full", "quick", default=True, help="repeat settings (quick: fewer repeats)")
def run_one(experiment_id: str, quick: bool) -> None:
    """Run one experiment by id (see `recmine list`) and print its figures; nothing is stored."""
    from harness.lifecycle import ctrl_c_stops_at_once
    from harness.measure import Settings
    from harness.runner import run

    exp = registry.get(experiment_id)
    ok, why = devices.can_run(exp.backend, exp.requires)
    if not ok:
        raise UserError(f"{exp.id} cannot run here: {why}")
    with ctrl_c_stops_at_once():
        outcome = run(exp, Settings.for_tier("quick" if quick else "full"))
    for k, v in outcome.metrics.items():
        click.echo(f"{k:<28} {v:.6g}")
    if outcome.stats.get("iqr") is not None:
        click.echo(f"{'iqr_s':<28} {outcome.stats['iqr']:.6g}   (n={outcome.stats['n']})")


# ---------------------------------------------------------------------------- reproduce

@cli.command()
@click.option("--quick", "tier", flag_value="quick", default=True, help="small workloads, minutes on 2 cores (default)")
@click.option("--full", "tier", flag_value="full", help="paper-like workloads, hours")
@_filters
@STORE_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="where the report folder is written")
@click.option("--force", is_flag=True, help="re-measure configurations already stored for this commit and machine")
@click.option("--no-report", is_flag=True, help="measure only")
@click.option("--claim", "claim_id", metavar="ID",
              help="only the experiments behind this claim (`recmine claims` shows the ids), then its verdict")
@click.option("--dry-run", is_flag=True,
              help="run nothing: list the experiments per claim, what each needs, and an estimated time")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="run on a Ray cluster: auto (join the running one), local (start one for this run) or HOST:PORT")
@click.option("--pack", is_flag=True, help="with --ray: let timed experiments share a node's cores")
@click.pass_context
def reproduce(ctx: click.Context, tier: str, system: str | None, backend: str | None, workload: str | None,
              where: tuple[str, ...], store_path: Path, out: Path, force: bool, no_report: bool,
              claim_id: str | None, dry_run: bool, ray_address: str | None, pack: bool) -> None:
    """Run every experiment of a tier (resuming a previous run), then write the report."""
    from harness import claims as claims_mod
    from harness import report
    from harness.measure import Settings
    from harness.runner import Session, run_all

    exps = _select(system, tier, backend, workload, where)
    if claim_id is not None:
        exps = _claim_experiments(claim_id, exps, tier)
    if not exps:
        raise UserError("no registered experiment matches these filters (`recmine list` shows them all)")
    if dry_run:
        _echo_plan(exps, tier, store_path, claim_id)
        return
    if pack and ray_address is None:
        raise UserError("--pack only applies with --ray")
    if ray_address is not None:
        from harness import cluster

        cluster.require_ray()  # before anything is opened: one line naming the extra
    if not no_report:
        _check_writable_dir(out, "--out")
    with _open_store(store_path) as store:
        session = Session(store, "recmine " + shlex.join(sys.argv[1:]), tier)
        click.echo(f"recmine: {len(exps)} experiments ({tier} tier) → {store_path}", err=True)
        try:
            if ray_address is None:
                summary = run_all(session, exps, Settings.for_tier(tier), force=force, debug=ctx.obj["debug"])
            else:
                summary = cluster.run_all_on_ray(ray_address, session, exps, Settings.for_tier(tier), force=force,
                                                 pack=pack, debug=ctx.obj["debug"])
        except KeyboardInterrupt:
            click.echo("\nrecmine: interrupted; every finished result is stored. Run the same command to resume.",
                       err=True)
            sys.exit(130)
        click.echo(f"recmine: {len(summary.measured)} measured, {len(summary.resumed)} already stored, "
                   f"{len(summary.skipped)} skipped, {len(summary.failed)} failed "
                   f"(load average {os.getloadavg()[0]:.2f})", err=True)
        for reason in sorted(set(summary.skipped.values())):
            n = sum(1 for r in summary.skipped.values() if r == reason)
            click.echo(f"  skipped {n}: {reason}", err=True)
        for exp_id, error in summary.failed.items():
            click.echo(f"  FAILED {exp_id}: {error}", err=True)
        if summary.unstable:  # pyperf's warning: the figure may not mean what it says
            click.echo(f"recmine: warning: {len(summary.unstable)} measurement(s) unstable (interquartile range "
                       f"above 10% of the median; load average {os.getloadavg()[0]:.2f}), e.g. "
                       f"{summary.unstable[0]}: rerun them with --force on a quieter machine", err=True)
        if claim_id is not None:
            _echo_claims(_verdicts([claims_mod.get(claim_id)], store_path), 1, store_path)
        if not no_report:
            path = report.write(store, out)
            click.echo(f"report: {path.resolve()}")
    if summary.failed:
        sys.exit(1)


# ---------------------------------------------------------------------------- claims and report

@cli.command()
@STORE_OPTION
@click.option("--paper", type=click.Choice(["ekko", "faery", "g2miner"]), help="only this paper's claims")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def claims(store_path: Path, paper: str | None, as_json: bool) -> None:
    """Show every paper claim with its verdict from the stored results."""
    from harness import claims as claims_mod

    chosen = [c for c in claims_mod.load() if paper in (None, c.paper)]
    verdicts = _verdicts(chosen, store_path)
    if as_json:
        click.echo(json.dumps([claims_mod.record(v) for v in verdicts], indent=2, ensure_ascii=False))
        return
    _echo_claims(verdicts, len(chosen), store_path)


def _verdicts(chosen: list, store_path: Path) -> list:
    """The chosen claims' verdicts from the store (none stored: every claim is unmeasured)."""
    from harness import claims as claims_mod

    rows, failures = [], []
    if store_path.exists():
        with _open_store(store_path) as store:
            rows, failures = store.latest(), store.failures()
    return claims_mod.evaluate(chosen, rows, failures)


def _claim_experiments(claim_id: str, exps: list, tier: str) -> list:
    """The experiments among `exps` that the claim reads; an unknown id or none in this tier is an error."""
    from harness import claims as claims_mod

    claim = claims_mod.get(claim_id)
    behind = {e.id for e in claims_mod.experiments_for(claim)}
    if not behind:
        raise UserError(f"--claim {claim_id}: nothing here measures it ({claim.measurements[0].not_measurable})")
    mine = [e for e in exps if e.id in behind]
    if not mine:
        raise UserError(f"--claim {claim_id}: none of its experiments is in the {tier} tier with these filters; "
                        f"`{claims_mod.reproduce_command(claim)}` runs them")
    return mine


def _echo_plan(exps: list, tier: str, store_path: Path, claim_id: str | None) -> None:
    """The dry run: per claim, the experiments, their needs and time (stored results first, else the cost model)."""
    from harness import plan

    stored = {}
    if store_path.exists():
        with _open_store(store_path) as store:
            stored = plan.stored_costs(store.rows(), store.runs(), machine.machine_id())
    for line in plan.describe(plan.estimate(exps, tier, stored), tier, claim_id):
        click.echo(line)


_VERDICT_COLOUR = {"reproduced": "green", "mixed": "yellow", "direction holds": "yellow", "not reproduced": "red"}


def _echo_claims(verdicts: list, n_claims: int, store_path: Path) -> None:
    """A header, the verdict counts, then one block per measurement with every column wrapped, never cut."""
    import shutil
    import textwrap

    from harness import claims as claims_mod

    click.echo(f"recmine claims: {len(verdicts)} measurements of {n_claims} claims, from {store_path}")
    click.echo("  ".join(f"{name}: {n}" for name, n in claims_mod.counts(verdicts).items()))
    widths = (38, 22, 24, 20)  # the longest claim id fits on its line
    reason_width = max(40, shutil.get_terminal_size((160, 24)).columns - sum(widths) - len(widths) - 1)
    header = ("CLAIM / MEASUREMENT", "PAPER VALUE", "VALUE HERE", "VERDICT", "REASON")
    click.echo("\n" + " ".join(f"{h:<{w}}" for h, w in zip(header, widths)) + " " + header[-1])
    for v in verdicts:
        value = f"{v.value} ({v.kind})" if v.value else "—"
        setup = [f"({v.measurement.hardware_note})"] if v.measurement.hardware_note else []
        reason = " ".join([v.reason, *(f"[{note}]" for note in v.notes), *setup])
        columns = [textwrap.wrap(text, width) or [""] for text, width in
                   ((v.claim.id, widths[0]), (v.claim.paper_value, widths[1]), (value, widths[2]),
                    (v.verdict, widths[3]), (reason, reason_width))]
        columns[0] += textwrap.wrap("↳ " + v.measurement.label, widths[0], subsequent_indent="  ")
        for i in range(max(map(len, columns))):
            cells = [col[i] if i < len(col) else "" for col in columns]
            colour = _VERDICT_COLOUR.get(v.verdict)
            verdict = click.style(f"{cells[3]:<{widths[3]}}", fg=colour) if colour and cells[3] else f"{cells[3]:<{widths[3]}}"
            click.echo((" ".join(f"{cell:<{w}}" for cell, w in zip(cells[:3], widths)) + " " + verdict
                        + " " + cells[4]).rstrip())
        click.echo("")


@cli.command()
@STORE_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="where the report folder is written")
def report(store_path: Path, out: Path) -> None:
    """Write reports/<timestamp>/index.html and report.md from the stored results."""
    from harness import report as report_mod

    _check_writable_dir(out, "--out")
    with _open_store(store_path, create=False) as store:
        path = report_mod.write(store, out)
    click.echo(f"report: {path.resolve()}")


# ---------------------------------------------------------------------------- compare and gate

@cli.command()
@click.argument("before")
@click.argument("after")
@STORE_OPTION
def compare(before: str, after: str, store_path: Path) -> None:
    """Compare two runs (run ids, unique prefixes, or 'previous'/'latest'): significant change or noise."""
    from harness import compare as cmp

    with _open_store(store_path, create=False) as store:
        rows_before, rows_after = cmp.run_rows(store, before), cmp.run_rows(store, after)
        changes = cmp.compare(rows_before, rows_after, store)
    machines = {r["machine_id"] for r in [*rows_before.values(), *rows_after.values()]}
    if len(machines) > 1:
        click.echo("recmine: warning: the two runs come from different machines; changes mix code and hardware",
                   err=True)
    if not changes:
        raise UserError("the two runs share no measured experiment")
    for c in changes:
        style = {"slower": "red", "faster": "green"}.get(c.label)
        test = f"p={c.p_value:.3f} noise ×{c.factor:.2f}" if c.timed else "(not timed)"
        click.echo(f"{c.experiment_id:<80} {c.before:10.4g}s → {c.after:10.4g}s  {c.ratio:6.2f}×  "
                   f"{test}  " + click.style(c.label, fg=style))
    slower = sum(c.label == "slower" for c in changes)
    click.echo(f"{len(changes)} compared: {slower} significantly slower, "
               f"{sum(c.label == 'faster' for c in changes)} significantly faster", err=True)


@cli.command()
@click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=Path("ci/reference.json"),
              show_default=True, help="reference ratios")
@click.option("--threshold", type=float, help="fail when a ratio exceeds reference × threshold (default: the file's)")
@click.option("--write", "write_ref", is_flag=True, help="measure and write the reference instead of checking it")
def gate(reference: Path, threshold: float | None, write_ref: bool) -> None:
    """Regression gate: fail (exit 1) when a gated ratio regressed beyond the threshold."""
    from harness import compare as cmp

    cpu = machine.cpu_kind()
    try:
        figures, file_threshold = cmp.load_reference(reference, cpu)
        threshold = file_threshold if threshold is None else cmp.check_threshold(threshold, "--threshold")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for f in figures:
        for exp_id in (f.numerator, *f.denominators):
            ok, why = devices.can_run(registry.get(exp_id).backend, registry.get(exp_id).requires)
            if not ok:
                raise UserError(f"gated figure {f.name}: {exp_id} cannot run here: {why}")
    if write_ref:
        cmp.write_reference(reference, figures, cmp.reference_ratios(figures), threshold, cpu,
                            {"commit": machine.git_commit(), "load_average": round(os.getloadavg()[0], 2),
                             "last_level_cache": machine.last_level_cache()})
        click.echo(f"wrote {reference}: the references for {cpu}")
        return
    unjudged = [f.name for f in figures if f.reference is None]
    if unjudged:
        click.echo(f"recmine: measured but not judged on this CPU ({cpu}): {'; '.join(unjudged)}: no reference "
                   "for this CPU kind, and another kind's ratio does not bound this one's; `recmine gate --write` "
                   "on a quiet machine adds this CPU's", err=True)
    results = cmp.run_gate(figures, threshold, on_remeasure=lambda suspects: click.echo(
        f"re-measuring {len(suspects)} figure(s) over their limit, to tell a regression from a burst of load"))
    width = max(len(r.figure.name) for r in results)
    for r in results:
        if r.figure.reference is None:
            ref, status = "no reference for this CPU", "not judged"
        else:
            ref = f"reference {r.figure.reference:.3f}, limit {r.limit:.3f}"
            status = click.style("REGRESSED", fg="red") if r.regressed else click.style("ok", fg="green")
        click.echo(f"{r.figure.name:<{width}}  ratio {r.ratio:.3f} ({ref})  {status}")
    if any(r.regressed for r in results):
        click.echo(f"recmine: gate failed: {sum(r.regressed for r in results)} figure(s) regressed beyond "
                   f"{threshold}× their reference", err=True)
        sys.exit(1)


# ---------------------------------------------------------------------------- helpers and entry point

def _open_store(path: Path, create: bool = True) -> Store:
    try:
        return Store(path, create=create)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _check_writable_dir(path: Path, option: str) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: not writable")


def _mount_system_commands() -> None:
    for name, system in registry.declared_systems().items():
        if system.cli is not None:
            cli.add_command(system.cli, name)


# `recmine faery` alone prints the group's help, as click shows it (click >= 8.2 raises it as an error).
_NO_ARGS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
MESSAGE_LIMIT = 600  # characters of one error line; --debug shows everything


def main() -> None:
    """The console script: every error is one line on stderr, exit 2 for bad input, 1 for an internal error."""
    debug = "--debug" in sys.argv[1:]
    try:
        _mount_system_commands()
        status = cli.main(standalone_mode=False, prog_name="recmine")
    except click.exceptions.Abort:
        click.echo("recmine: aborted", err=True)
        sys.exit(130)
    except _NO_ARGS_HELP as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("\nrecmine: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        from harness.lifecycle import interrupted

        if interrupted(exc):  # a Ctrl-C that numba's dispatcher wrapped in a SystemError
            click.echo("\nrecmine: interrupted", err=True)
            sys.exit(130)
        if debug:
            traceback.print_exc()
        code, line = _error_line(exc)
        click.echo(f"recmine: {_one_line(line)}", err=True)
        sys.exit(code)
    if isinstance(status, int) and status:  # a command's ctx.exit(n)
        sys.exit(status)


def _error_line(exc: Exception) -> tuple[int, str]:
    """(exit code, message) for an exception: the user's mistakes are exit 2, anything else a bug (exit 1)."""
    if isinstance(exc, click.UsageError):  # a bad option value, a missing argument, an unknown command
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        return 2, f"error: {exc.format_message().rstrip('.')}{hint}"
    if isinstance(exc, click.ClickException):
        return 2, f"error: {exc.format_message()}"
    if isinstance(exc, MemoryError):  # a device or host allocation; numpy names its size, a bare one says nothing
        return 2, f"error: out of memory{': ' + str(exc) if str(exc) else ''}"
    if isinstance(exc, (ValueError, OSError)):
        return 2, f"error: {exc}"
    opencl = sys.modules.get("pyopencl")  # optional: an OpenCL error can only come from an imported pyopencl
    if opencl is not None and isinstance(exc, opencl.Error):
        return 2, f"error: OpenCL: {exc}"
    return 1, f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def _one_line(message: str) -> str:
    """A message on one line (a compiler log's lines joined by ' | '), at most MESSAGE_LIMIT characters."""
    line = " | ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return line if len(line) <= MESSAGE_LIMIT else line[:MESSAGE_LIMIT] + "... (--debug shows the rest)"


if __name__ == "__main__":
    main()
