"""``bench run SUITE``: train a suite, store its tables, draw its report (and with --dry-run,
print the grid and the work, and train nothing)."""

from __future__ import annotations

import argparse
import math
import os
import signal
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from bench import schema
from bench.analysis.tables import Cell, Table
from bench.commands import check, report
from bench.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STATUSES,
    named_run,
    new_console,
    positive,
    print_error,
    prog,
    reason,
    seed_list,
)
from bench.errors import UserError
from bench.execution.run import Interrupted, RunOptions, Stopped, run_suite
from bench.provenance import cuda_unavailable_reason
from bench.results.reader import show
from bench.suite import Suite, expand, load_suite
from bench.suite.locate import resolve_suite
from bench.training.packing import PackMode, packable, plan
from bench.training.spec import TrialSpec
from bench.training.tasks import UncheckedUserTaskConfig

RUN_EPILOG = """\
A trial that failed (an error in training, or in user code) makes the exit status 1;
its error is in the summary and in trials.parquet, and --resume runs it again. A diverged
trial (its loss became inf or NaN) is a result, not a failure; a CUDA trial on a machine
without a GPU is stored as a skipped row, not a failure.

""" + EXIT_STATUSES


class Run:
    """Train a suite's trials not stored yet; then its summary, report and (--quick) claims."""

    name = "run"

    def add_to(self, sub, raw) -> None:
        run = sub.add_parser("run", help="run a suite and store its tables",
                             description="Run a suite: train its grid of trials, store the tables "
                                         "in a run folder, draw its report.",
                             epilog=RUN_EPILOG, formatter_class=raw)
        run.add_argument("suite", type=str, metavar="SUITE",
                         help="the suite to run: a TOML file, or a shipped suite's name "
                              "(e.g. activations; `list suites` shows them)")
        run.add_argument("--workers", type=positive, default=0,
                         help="local worker processes (default: one per CPU core)")
        run.add_argument("--threads", type=positive, default=1,
                         help="intra-op threads per trial, pinned (default: 1)")
        run.add_argument("--out", type=Path, default=Path("results"),
                         help="results root; the run goes to OUT/<suite>/<run-id>/ (default: results)")
        run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                         help="continue a run folder: trials already stored are not run again; "
                              "SUITE/latest: the newest run of SUITE under --out")
        run.add_argument("--extend", action="store_true",
                         help="with --resume: let a changed suite go on when it only adds grid "
                              "points (values, variants, seeds); changed settings are refused")
        run.add_argument("--dry-run", action="store_true", help="print the grid and run nothing")
        run.add_argument("--seeds", type=seed_list, metavar="S,S,...",
                         help="replace the suite's seeds (with [tune]: the evaluation seeds), e.g. "
                              "to check its claims on seeds its author did not look at")
        run.add_argument("--tune-seeds", type=seed_list, metavar="S,S,...",
                         help="replace a [tune] suite's tuning seeds")
        run.add_argument("--quick", action="store_true",
                         help="run only the grid points the suite's [[expect]] claims look at (what "
                              "CI checks; CUDA points are skipped rows without a GPU), then check "
                              "the claims")
        where = run.add_mutually_exclusive_group()
        where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                           help="run the trials on this Dask scheduler's workers (pip install -e "
                                "'.[dask]'); CUDA trials go to workers started with --resources GPU=1")
        where.add_argument("--cluster", metavar="local[:N]",
                           help="start a Dask LocalCluster of N single-threaded workers for the run")
        run.add_argument("--pack", action=argparse.BooleanOptionalAction, default=None,
                         help="train the seeds of each grid point as one batched model (exact to "
                              "float tolerance); --no-pack: one trial at a time; default: packed "
                              "where measured faster (small CPU micro-batches, every CPU point)")
        run.add_argument("--reports", type=Path, default=Path("reports"), metavar="DIR",
                         help="where the report of the run goes: DIR/<suite>/<run-id>/ (default: reports)")
        run.add_argument("--no-report", action="store_true", help="store the tables, draw no report")

    def locate(self, args: argparse.Namespace) -> None:
        args.suite = resolve_suite(args.suite)
        if args.resume is not None:
            args.resume = named_run(args.resume, args.out)

    def __call__(self, args: argparse.Namespace, console: Console) -> int:
        return _run(args, console)


def _run(args: argparse.Namespace, console: Console) -> int:
    # A suite is code: the full check imports each user activation, init and task and calls it
    # once. Only a run needs that; --dry-run imports and calls none of it, and lists it.
    suite = load_suite(args.suite, user_code=not args.dry_run)
    if args.seeds is not None or args.tune_seeds is not None:
        suite = suite.with_seeds(args.seeds, args.tune_seeds)
    pack = {None: "auto", True: "on", False: "off"}[args.pack]
    if args.quick:
        suite = _quick(suite, args.suite, console)
    if args.dry_run:
        _print_grid(suite, console, pack)
        _print_work(suite, console, args.out, args.workers)
        return 0
    if args.extend and args.resume is None:
        raise UserError("--extend goes with --resume RUN_DIR: it lets a changed suite go on in "
                        "that run folder", key="--extend")
    if (args.scheduler or args.cluster) and args.workers:
        raise UserError("--workers is for local processes; with --scheduler or --cluster the "
                        "cluster's workers run the trials (--cluster local:N sets how many)")
    options = RunOptions(out=args.out, workers=args.workers, threads=args.threads,
                         resume=args.resume, extend=args.extend, pack=pack,
                         scheduler=args.scheduler,
                         cluster=args.cluster)
    # `kill` (SIGTERM) stops a run the way Ctrl-C does: stored trials kept, tables rebuilt.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        store = run_suite(suite, options, new_console(stderr=True))
    except KeyboardInterrupt:  # before the run folder existed, or while it was being closed
        new_console(stderr=True).print("\ninterrupted", highlight=False)
        return EXIT_INTERRUPTED
    except Stopped as stop:
        new_console(stderr=True).print(
            f"\nstopped: {stop.reason}\n{stop.stored} finished trials are stored in "
            f"{stop.run_dir}\n"
            f"continue with: {prog()} run {args.suite} --resume {stop.run_dir} ...",
            soft_wrap=True, highlight=False, markup=False)
        return 1
    except Interrupted as stop:
        new_console(stderr=True).print(
            f"\ninterrupted: every finished trial is stored in {stop.run_dir}\n"
            f"continue with: {prog()} run {args.suite} --resume {stop.run_dir}",
            soft_wrap=True, highlight=False, markup=False)
        return EXIT_INTERRUPTED
    failed = _print_summary(store, suite, console)
    console.print(f"run folder: {store.dir}", soft_wrap=True, highlight=False, markup=False)
    status = 0 if args.no_report else _report_after_run(store.dir, args, suite, console)
    if args.quick:  # the short variant answers one question: do the claims hold?
        status = max(status, check.check_claims(store.dir, console))
    if failed:  # a failed trial is an error to fix, not a result (diverged, skipped are)
        new_console(stderr=True).print(
            f"{failed} trial{'s' if failed > 1 else ''} failed (the error{'s are' if failed > 1 else ' is'} "
            f"above and in trials.parquet): exit status {EXIT_FAILED}; once fixed, run "
            f"{'them' if failed > 1 else 'it'} again with: {prog()} run {args.suite} --resume "
            f"{store.dir}", soft_wrap=True, highlight=False, markup=False)
        status = max(status, EXIT_FAILED)
    return status


def _report_after_run(run_dir: Path, args: argparse.Namespace, suite: Suite,
                      console: Console) -> int:
    # The tables are stored whatever happens here: a report that cannot be drawn says so and
    # how to retry, and the run's exit status says it did not finish cleanly.
    try:
        return report.write_report(run_dir, args.reports / suite.name / run_dir.name, "html,md", console,
                       frozenset(u.name or u.path for u in suite.imports))  # the suite's own code
    except UserError as exc:
        print_error("report not written:", str(exc))
    except Exception as exc:  # a bug in drawing must not hide that the run itself is stored
        new_console(stderr=True).print(
            f"report not written: {reason(exc)}\nthe run is stored; retry with: "
            f"{prog()} report {run_dir}", highlight=False, markup=False, soft_wrap=True)
    return 1


def _quick(suite: Suite, path: Path, console: Console) -> Suite:
    """The suite cut down to the points its claims look at (``bench.check.claimed_points``)."""
    from bench.analysis.check import claimed_points

    if not suite.expect:
        raise UserError(f"{path}: --quick runs the grid points the suite's [[expect]] claims "
                        "look at, and this suite has no [[expect]] claims")
    short = claimed_points(suite)
    n_all, n_short = len(expand(suite)), len(expand(short))
    if not n_short:
        raise UserError(f"{path}: --quick found no grid point that the claims look at")
    console.print(f"quick: {n_short} of {n_all} trials, the grid points the claims look at",
                  highlight=False)
    return short


def _print_grid(suite: Suite, console: Console, pack: PackMode = "auto") -> None:
    """--dry-run's grid: one row per point (its swept values, seeds or stage, packed or
    skipped), then what the run will decide or skip, and the user code it would import."""
    specs = expand(suite)
    packed, undecided = _packed(suite, specs, pack)
    table, reasons = _grid_table(suite, specs, packed)
    console.print(table.rich())
    if suite.tune is not None:
        console.print(f"evaluation seeds: {','.join(map(str, suite.seeds))}; the picks are made "
                      f"on {suite.tune.metric} over the tuning seeds", highlight=False)
    for warning in suite.warnings:
        console.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    for why in sorted(reasons):
        console.print(f"skipped: {why}", highlight=False, markup=False)
    if undecided:
        console.print("packing: decided when the run starts (--pack auto draws each point's "
                      "data to size it, and a user task's draw runs user code)",
                      highlight=False, markup=False, soft_wrap=True)
    _print_imports(suite, console)


def _packed(suite: Suite, specs: list[TrialSpec], pack: PackMode) -> tuple[set[str], bool]:
    """The trials that train in packs, and whether that is decided only when the run starts:
    auto's choice sizes each point's data by drawing it, which for a user task runs user code
    that a suite read without it (--dry-run) must not run."""
    runnable = [s for s in specs if not cuda_unavailable_reason(s.train.device)]
    seeds = max(len(suite.seeds), len(suite.tune.seeds) if suite.tune else 0)
    undecided = (pack == "auto" and seeds > 1
                 and any(isinstance(s.task, UncheckedUserTaskConfig) and packable(s)
                         for s in runnable))
    if undecided:
        return set(), True
    return {s.trial_id for unit in plan(runnable, pack) if len(unit) > 1 for s in unit}, False


def _grid_title(suite: Suite, specs: list[TrialSpec]) -> str:
    if suite.tune is None:
        return (f"{suite.name}: {len(suite.points)} grid points x {len(suite.seeds)} seeds = "
                f"{len(specs)} trials")
    from bench.suite.stages import planned_total
    return (f"{suite.name}: {len(suite.points)} grid points; {planned_total(suite)} trials "
            f"in two stages: {len(specs)} known now (tuning seeds "
            f"{','.join(map(str, suite.tune.seeds))}, and what has nothing to tune), then "
            f"each setting's pick of {', '.join(suite.tune.keys)} on the evaluation seeds")


def _grid_table(suite: Suite, specs: list[TrialSpec], packed: set[str]) -> tuple[Table, set[str]]:
    """The grid as a table, and the reasons its skipped points are skipped."""
    keys = suite.varied_keys
    has_variants = any(p.variant for p in suite.points)
    columns = (["#"] + (["variant"] if has_variants else []) + list(keys)
               + ["stage" if suite.tune is not None else "seeds", "note"])
    first = {}
    for s in specs:  # each point's first trial, matched on its variant and config
        first.setdefault((s.variant, repr(sorted(s.config.items()))), s)
    rows, reasons = [], set()
    for i, point in enumerate(suite.points):
        overrides = dict(point.overrides)
        reason = cuda_unavailable_reason(point.train.device)
        spec = first.get((point.variant, repr(sorted(TrialSpec(
            suite.name, point.variant, 0, point.task, point.model, point.train).config.items()))))
        note = "skipped" if reason else ("packed" if spec and spec.trial_id in packed else "")
        if suite.tune is None:
            stage = ",".join(map(str, suite.seeds))
        elif spec is None:
            stage = "eval, if picked"
        else:
            stage = ("tune" if spec.stage == "tune" else "eval (nothing to tune)")
        cells = [str(i + 1)] + ([point.variant] if has_variants else [])
        cells += [_cell(overrides.get(k, "")) for k in keys] + [stage, note]
        if reason:
            reasons.add(reason)
        rows.append([Cell(c) for c in cells])
    numeric = [True] + [False] * (len(columns) - 1)
    return Table(columns, rows, numeric, title=_grid_title(suite, specs)), reasons


def _print_work(suite: Suite, console: Console, out: Path | None, workers: int | None) -> None:
    """The trial count, the work (trials x epochs x training samples) and, when a run of this
    suite has timings, the wall time they predict (the run's median time per sample-pass)."""
    from bench.suite.locate import runs_in
    from bench.suite.preflight import duration, seconds_per_sample, work

    specs = [s for s in expand(suite) if not cuda_unavailable_reason(s.train.device)]
    passes, unknown = work(specs)
    text = (f"work: {len(specs)} trials to train, {passes:,} sample-passes "
            f"(trials x epochs x training samples")
    text += f"; {unknown} trials of user tasks not counted)" if unknown else ")"
    timed = None
    for run_dir in reversed(runs_in((out or Path("results")) / suite.name)):
        timed = seconds_per_sample(run_dir)
        if timed is not None:
            break
    if timed is None:
        text += ("; no timing known yet: after a run of this suite, --dry-run estimates the "
                 "wall time from it")
    else:
        per, n = timed
        parallel = max(1, min(workers or (os.cpu_count() or 1), len(specs)))
        text += (f"; estimated wall time {duration(passes * per / parallel)} on {parallel} "
                 f"worker(s), from {n} trials of {run_dir} ({per * 1e6:.3g} µs per sample-pass, "
                 f"training only)")
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _print_imports(suite: Suite, console: Console) -> None:
    """The user code the suite names: a suite is code, as a Makefile is, and ``bench run``
    imports these modules (running their top-level code) and calls these functions."""
    imports = suite.imports
    if not imports:
        return
    ran = ("" if suite.user_code_checked else
           "; this --dry-run imported and ran none of it")
    lines = [f"user code this suite imports and runs ({len(imports)}: `bench run` imports each "
             f"module and calls each function{ran}):"]
    lines += [f"  {code.describe()}" for code in imports]
    console.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)


def _cell(value: object) -> str:
    return str(value) if not isinstance(value, float) else f"{value:g}"


def _print_summary(store, suite: Suite, console: Console) -> int:
    """The run's table of means, and each reason trials failed or were skipped; returns how
    many trials failed."""
    import pandas as pd

    trials = pd.read_parquet(store.dir / "trials.parquet")
    if trials.empty:
        return 0
    failed = int((trials.status == schema.FAILED).sum())
    for (status, error), group in trials[trials.status.isin(schema.NOT_TRAINED)].groupby(
            ["status", "error"], dropna=False):
        console.print(f"{len(group)} trials {status}: {error}", highlight=False, markup=False)
    ran = trials[trials.status.isin(schema.TRAINED)]
    if ran.empty:
        return failed
    keys = [k for k in suite.varied_keys if k in ran.columns and ran[k].map(repr).nunique() > 1]
    if ran["variant"].nunique() > 1:
        keys.insert(0, "variant")
    table = RichTable(title=escape(f"{suite.name}: mean over seeds, after the last epoch (train "
                                   "unless it says test)"))
    for key in keys:
        table.add_column(escape(key.split(".")[-1].replace("accumulation_steps", "k")),
                         overflow="fold")
    # Short, distinct headers: at 80 columns rich would cut long ones to identical "final_…".
    columns = [("loss", "final_loss", "{:.4g}"), ("acc", "final_accuracy", "{:.3f}"),
               ("test acc", "final_test_accuracy", "{:.3f}"), ("dead", "dead_fraction", "{:.2f}"),
               ("ms/ep", "time_per_epoch_s", "{:.3g}")]
    columns = [c for c in columns if c[1] in ran and ran[c[1]].astype(float).notna().any()]
    table.add_column("ok/n", justify="right", no_wrap=True)
    for header, _, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    grouped = ran.assign(_key=ran[keys].map(repr).agg("|".join, axis=1) if keys else "")
    for _, group in grouped.groupby("_key", sort=False):
        ok = group[group.status == schema.OK]
        first = group.iloc[0]
        cells = [escape(show(first[k])) for k in keys]
        cells.append(f"{len(ok)}/{len(group)}")
        for _, col, fmt in columns:
            value = ok[col].astype(float).mean() * (1000 if col == "time_per_epoch_s" else 1)
            cells.append("" if math.isnan(value) else fmt.format(value))
        table.add_row(*cells)
    console.print(table)
    return failed
