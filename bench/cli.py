"""``python -m bench``: the command line. User mistakes print one message and exit 2.

What a user wrote (a suite's values, paths, names) is printed as it is: with rich's markup and
emoji codes off (``:smile:`` stays ``:smile:``, ``[bold]`` stays ``[bold]``), escaped where it
goes into a table or a line that has markup of its own.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench import schema
from bench.errors import UserError
from bench.execution.run import Interrupted, RunOptions, Stopped, run_suite
from bench.plugins import GROUPS, registered
from bench.provenance import cuda_unavailable_reason
from bench.results.reader import show
from bench.suite.parse import Suite, expand, load_suite
from bench.training.activations import ACTIVATIONS
from bench.training.inits import INITS
from bench.training.optimizers import OPTIMIZERS
from bench.training.packing import PackMode, packable, plan
from bench.training.spec import TrialSpec
from bench.training.tasks import TASKS, UncheckedUserTaskConfig
from bench.version import __version__

EXIT_FAILED = 1  # a failed trial, a failed or uncheckable claim, a report not drawn
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Benchmark how activations, inits, learning rates and gradient accumulation change
training. A suite (a TOML file) names a grid of trials; 'run' trains them and stores
tidy tables in a run folder, which 'report', 'check' and 'compare' read."""

EXIT_STATUSES = """\
exit status:
  0    it worked: every trial trained (diverged and skipped trials are results), every
       claim checked held, the report was drawn
  1    a trial failed, a claim failed or no claim could be checked, a report could not be
       drawn, or compare's --fail-on was crossed
  2    a user error (a bad suite, path or option): one message, no traceback
  130  interrupted (Ctrl-C, or kill during a run): finished trials are stored, and
       'run SUITE --resume RUN_DIR' goes on"""

EXAMPLES = (  # (what it does, the command after the program's name)
    ("train a suite, store its tables in results/, draw its report in reports/",
     "run suites/activations.toml"),
    ("print the grid and run nothing", "run suites/activations.toml --dry-run"),
    ("train only the points the claims look at, then check the claims (what CI runs)",
     "run suites/activations.toml --quick"),
    ("check the suite's [[expect]] claims on a stored run", "check results/activations/RUN_ID"),
    ("render a stored run as HTML and Markdown", "report results/activations/RUN_ID"),
    ("what changed between two runs; exit 1 when accuracy fell by more than 0.02",
     "compare RUN_A RUN_B --fail-on final_accuracy:-0.02"),
    ("the tasks, activations, inits and optimizers a suite can name", "list"),
)


def _epilog(prog: str) -> str:
    lines = ["examples:"]
    for about, command in EXAMPLES:
        lines += [f"  # {about}", f"  {prog} {command}"]
    lines += ["", f"'{prog} COMMAND --help' shows a command's options.", "", EXIT_STATUSES]
    return "\n".join(lines)


RUN_EPILOG = """\
A trial that failed (an error in training, or in user code) makes the exit status 1;
its error is in the summary and in trials.parquet, and --resume runs it again. A diverged
trial (its loss became inf or NaN) is a result, not a failure; a CUDA trial on a machine
without a GPU is stored as a skipped row, not a failure.

""" + EXIT_STATUSES


def _prog() -> str:
    """The program name as the user typed it: ``actbench`` (the installed script), else
    ``python -m bench`` (``__main__.py``, and callers of ``main`` such as tests)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "actbench" if name.startswith("actbench") else "python -m bench"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole "
                                         "numbers, e.g. 10,11,12") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed, e.g. 10,11,12")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    prog = _prog()
    raw = argparse.RawDescriptionHelpFormatter  # the epilogs' lists and tables as written
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, formatter_class=raw,
                                     epilog=_epilog(prog))
    parser.add_argument("--version", action="version", version=f"actbench {__version__}",
                        help="print actbench's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do ('COMMAND --help' for its options)")

    run = sub.add_parser("run", help="run a suite and store its tables",
                         description="Run a suite: train its grid of trials, store the tables "
                                     "in a run folder, draw its report.",
                         epilog=RUN_EPILOG, formatter_class=raw)
    run.add_argument("suite", type=str, metavar="SUITE",
                     help="the suite to run: a TOML file, or a shipped suite's name "
                          "(e.g. activations; `list suites` shows them)")
    run.add_argument("--workers", type=_positive, default=0,
                     help="local worker processes (default: one per CPU core)")
    run.add_argument("--threads", type=_positive, default=1,
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
    run.add_argument("--seeds", type=_seed_list, metavar="S,S,...",
                     help="replace the suite's seeds (with [tune]: the evaluation seeds), e.g. "
                          "to check its claims on seeds its author did not look at")
    run.add_argument("--tune-seeds", type=_seed_list, metavar="S,S,...",
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

    report = sub.add_parser("report", help="render a run folder as an HTML and a Markdown report")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a run folder (results/<suite>/<run-id>), or SUITE or "
                             "SUITE/latest: the newest run of SUITE under results/")
    report.add_argument("--out", type=Path, metavar="DIR",
                        help="the folder the report is written to (default: reports/<suite>/<run-id>)")
    report.add_argument("--format", default="html,md", metavar="html,md",
                        help="formats to write, comma-separated (default: html,md)")
    report.add_argument("--trust-code", action="store_true",
                        help="import and run the user code (activation, init, task) that the run "
                             "folder names, to draw the figures that rebuild its models; by "
                             "default reading a run folder imports none of it (only for folders "
                             "you trust)")

    check = sub.add_parser("check", help="evaluate the suite's [[expect]] claims on a run "
                                         "(exit 1 when one fails or none could be checked)",
                           description="Check the [[expect]] claims of the suite stored with a "
                                       "run. Exit 1 when a claim fails, or when no claim could "
                                       "be checked (every one 'not checked': its trials did not "
                                       "run, e.g. CUDA points on a CPU machine); a claim not "
                                       "checked beside others that held is reported, not "
                                       "failed.")
    check.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                       help="a run folder (results/<suite>/<run-id>), or SUITE or "
                            "SUITE/latest: the newest run of SUITE under results/")
    check.add_argument("--trust-code", action="store_true",
                       help="allow importing user code the run folder names (as report's); "
                            "checking reads only the tables and imports nothing either way")

    comp = sub.add_parser("compare", help="compare two runs of a suite, grid point by grid point "
                                          "(exit 1 when a metric moves past --fail-on)")
    comp.add_argument("run_a", type=Path, metavar="RUN_A",
                      help="the run compared from (before); a run folder, or SUITE/RUN_ID or "
                           "SUITE/latest under results/")
    comp.add_argument("run_b", type=Path, metavar="RUN_B", help="the run compared to (after)")
    comp.add_argument("--fail-on", action="append", default=[], metavar="METRIC:±DELTA[%]",
                      help="fail when a point's mean moves past DELTA, e.g. final_accuracy:-0.02 "
                           "or time_per_epoch_s:+20%% (repeatable)")
    comp.add_argument("--out", type=Path, metavar="FILE",
                      help="also write the comparison as Markdown to FILE (a folder: "
                           "FILE/compare_<A>_vs_<B>.md); without --out nothing is written")
    comp.add_argument("--trust-code", action="store_true",
                      help="allow importing user code the run folders name (as report's); "
                           "comparing reads only the tables and imports nothing either way")

    listing = sub.add_parser("list", help="list tasks, activations, inits and optimizers; "
                                          "`list suites`: the shipped suites")
    listing.add_argument("what", nargs="?", choices=["suites"],
                         help="suites: the shipped suites (`run NAME` runs one) and what each asks")

    perf = sub.add_parser("perf", help="measure the harness: instrumentation overhead; with "
                                       "--scaling SUITE the executors' throughput; with --pack "
                                       "trial packing against one trial at a time")
    perf.add_argument("--epochs", type=_positive, default=300,
                      help="epochs each timed training runs (default: 300)")
    perf.add_argument("--repeats", type=_positive, default=5,
                      help="times each case is timed; the best is kept (default: 5)")
    perf.add_argument("--threads", type=_positive, default=1,
                      help="intra-op threads of each timed training (default: 1)")
    perf.add_argument("--scaling", type=Path, metavar="SUITE.toml",
                      help="time SUITE (its CPU points, --epochs each) with 1 worker x 1 and x 2 "
                           "threads and with --workers N, best of --repeats")
    perf.add_argument("--workers", type=_positive, default=2,
                      help="with --scaling: the worker processes of the parallel case "
                           "(default: 2)")
    perf.add_argument("--cluster", metavar="local[:N]",
                      help="with --scaling: also time the suite on a Dask LocalCluster")
    perf.add_argument("--pack", action="store_true",
                      help="time --seeds trials one at a time against one pack of them")
    perf.add_argument("--orchestration", action="store_true",
                      help="time 50 and 400 init-only trials through `bench run` (1 and 2 "
                           "workers, whole processes) against a plain loop: start-up and cost "
                           "per trial (best of --repeats)")
    perf.add_argument("--seeds", type=_positive, default=6, help="pack size for --pack")
    perf.add_argument("--device", default="cpu", help="device for --pack (cpu, cuda)")
    return parser


def _console(stderr: bool = False, **kwargs) -> Console:
    """A console that never turns ``:name:`` into an emoji: the CLI prints user values, which
    ``escape`` keeps from being markup but not from being emoji codes."""
    return Console(stderr=stderr, emoji=False, **kwargs)


def _error(label: str, message: str) -> None:
    """``label`` in bold red, then ``message`` exactly as it is (no markup, no emoji)."""
    _console(stderr=True).print(Text.assemble((label, "bold red"), " ", message),
                                highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # In a log file or CI rich would wrap at 80 columns; tables are easier to read wider.
    console = _console() if sys.stdout.isatty() else _console(width=160)
    try:
        _locate(args)
        if args.command == "list":
            _list(console, args.what)
            return 0
        if args.command == "compare":
            return _compare(args, console)
        if args.command == "check":
            return _check(args.run_dir, console, args.trust_code)
        if args.command == "report":
            return _report(args.run_dir, args.out, args.format, console, args.trust_code)
        if args.command == "perf":
            from bench.perf import main as perf_main
            from bench.perf import pack_main, scaling_main
            if args.pack:
                reason = cuda_unavailable_reason(args.device)
                if reason:
                    raise UserError(f"--device {args.device}: {reason}")
                return pack_main(args.epochs, args.repeats, args.threads, args.seeds,
                                 args.device, console)
            if args.orchestration:
                from bench.orchestration import main as orchestration_main
                return orchestration_main(args.repeats, console)
            if args.scaling:
                return scaling_main(load_suite(args.scaling), args.epochs, args.repeats,
                                    args.workers, console, args.cluster)
            return perf_main(args.epochs, args.repeats, args.threads)
        return _run(args, console)
    except UserError as exc:
        _error("error:", str(exc))
        return EXIT_USER_ERROR


def _locate(args: argparse.Namespace) -> None:
    """A suite named by its shipped name, and a run folder by its suite (``SUITE``,
    ``SUITE/latest``, ``SUITE/RUN_ID``), made paths (``bench.locate``); a path that exists wins."""
    from bench.suite.locate import resolve_run, resolve_suite

    def run_dir(value: Path, root: Path = Path("results")) -> Path:
        path = resolve_run(value, root)
        if path != Path(value):  # say which run a name picked
            _console(stderr=True).print(f"{value}: {path}", highlight=False, markup=False,
                                        soft_wrap=True)
        return path

    if args.command == "run":
        args.suite = resolve_suite(args.suite)
        if args.resume is not None:
            args.resume = run_dir(args.resume, args.out)
    elif args.command in ("check", "report"):
        args.run_dir = run_dir(args.run_dir)
    elif args.command == "compare":
        args.run_a, args.run_b = run_dir(args.run_a), run_dir(args.run_b)
    elif args.command == "perf" and args.scaling is not None:
        args.scaling = resolve_suite(args.scaling)


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
        store = run_suite(suite, options, _console(stderr=True))
    except KeyboardInterrupt:  # before the run folder existed, or while it was being closed
        _console(stderr=True).print("\ninterrupted", highlight=False)
        return EXIT_INTERRUPTED
    except Stopped as stop:
        _console(stderr=True).print(
            f"\nstopped: {stop.reason}\n{stop.stored} finished trials are stored in "
            f"{stop.run_dir}\n"
            f"continue with: {_prog()} run {args.suite} --resume {stop.run_dir} ...",
            soft_wrap=True, highlight=False, markup=False)
        return 1
    except Interrupted as stop:
        _console(stderr=True).print(
            f"\ninterrupted: every finished trial is stored in {stop.run_dir}\n"
            f"continue with: {_prog()} run {args.suite} --resume {stop.run_dir}",
            soft_wrap=True, highlight=False, markup=False)
        return EXIT_INTERRUPTED
    failed = _print_summary(store, suite, console)
    console.print(f"run folder: {store.dir}", soft_wrap=True, highlight=False, markup=False)
    status = 0 if args.no_report else _report_after_run(store.dir, args, suite, console)
    if args.quick:  # the short variant answers one question: do the claims hold?
        status = max(status, _check(store.dir, console))
    if failed:  # a failed trial is an error to fix, not a result (diverged, skipped are)
        _console(stderr=True).print(
            f"{failed} trial{'s' if failed > 1 else ''} failed (the error{'s are' if failed > 1 else ' is'} "
            f"above and in trials.parquet): exit status {EXIT_FAILED}; once fixed, run "
            f"{'them' if failed > 1 else 'it'} again with: {_prog()} run {args.suite} --resume "
            f"{store.dir}", soft_wrap=True, highlight=False, markup=False)
        status = max(status, EXIT_FAILED)
    return status


def _report_after_run(run_dir: Path, args: argparse.Namespace, suite: Suite,
                      console: Console) -> int:
    # The tables are stored whatever happens here: a report that cannot be drawn says so and
    # how to retry, and the run's exit status says it did not finish cleanly.
    try:
        return _report(run_dir, args.reports / suite.name / run_dir.name, "html,md", console,
                       frozenset(u.name or u.path for u in suite.imports))  # the suite's own code
    except UserError as exc:
        _error("report not written:", str(exc))
    except Exception as exc:  # a bug in drawing must not hide that the run itself is stored
        _console(stderr=True).print(
            f"report not written: {_reason(exc)}\nthe run is stored; retry with: "
            f"{_prog()} report {run_dir}", highlight=False, markup=False, soft_wrap=True)
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


def _reason(exc: BaseException) -> str:
    """An exception in one line that is never blank: its type and first line, or its repr."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else repr(exc)


def _compare(args: argparse.Namespace, console: Console) -> int:
    from bench.analysis.compare import Threshold, cell, compare, markdown
    from bench.analysis.summary import short
    from bench.results.reader import RunData
    from bench.results.writer import atomic_write_bytes

    thresholds = [Threshold.parse(t) for t in args.fail_on]
    a, b = (RunData.open(d, trust_code=args.trust_code) for d in (args.run_a, args.run_b))
    result = compare(a, b, thresholds)
    table = Table(title=escape(f"{a.suite_name} {a.run_id} → {b.run_id}: change of the mean over "
                               "seeds (B − A; * Welch p < 0.05)"))
    for key in result.keys:
        table.add_column(escape(short(key)))
    for metric in result.metrics:
        table.add_column(escape(f"Δ {metric}"), justify="right")
    rows = {}
    for c in result.changes:
        rows.setdefault(tuple(c.point.values()), []).append(c)
    for values, changes in rows.items():
        table.add_row(*[escape(show(v)) for v in values],
                      *[f"[bold red]{cell(c)}[/]" if c.failed else escape(cell(c)) for c in changes])
    console.print(table)
    if a.suite_name != b.suite_name:
        console.print(f"note: these are runs of different suites ({a.suite_name!r}, "
                      f"{b.suite_name!r}); points are matched on {', '.join(result.keys)}",
                      highlight=False, markup=False)
    for key, va, vb in result.setting_changes:
        console.print(f"setting changed: {key}: {va} → {vb}", highlight=False, markup=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    for label, points in (("A", result.only_a), ("B", result.only_b)):
        if points:
            console.print(f"{len(points)} grid points trained only in {label}: not compared",
                          highlight=False)
    if args.out is not None:  # a file only when asked for (it used to land in reports/ unasked)
        name = f"compare_{a.run_id}_vs_{b.run_id}.md"
        out = args.out / name if args.out.is_dir() else args.out
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out, markdown(result).encode())
        except OSError as exc:
            raise UserError(f"cannot write the comparison: {exc.strerror}", source=str(out),
                            key="--out") from None
        console.print(f"markdown: {out}", highlight=False, soft_wrap=True, markup=False)
    if result.failures:
        for c in result.failures:
            where = ", ".join(f"{short(k)} = {show(v)}" for k, v in c.point.items())
            console.print(f"regression: {c.metric} {c.a:.4g} → {c.b:.4g} at {where} "
                          f"(past {', '.join(map(str, c.failed))})", highlight=False, markup=False)
        return 1
    return 0


def _check(run_dir: Path, console: Console, trust_code: bool = False) -> int:
    from bench.analysis.check import check, claims_origin, describe_point
    from bench.results.reader import RunData

    run = RunData.open(run_dir, trust_code=trust_code)
    for note in run.notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False, markup=False)
    results = check(run)
    console.print(claims_origin(run), soft_wrap=True, highlight=False, markup=False)
    if not results:
        console.print(f"{run.suite_name}: the suite text stored with this run has no [[expect]] "
                      "claims", highlight=False, markup=False)
        return 0
    table = Table(title=escape(f"{run.suite_name}: claims on run {run.run_id}"))
    for column in ("#", "claim", "metric", "value", "bound", "verdict"):
        table.add_column(column, justify="right" if column == "#" else "left")
    style = {"pass": "green", "fail": "bold red", "not checked": "yellow"}
    for r in results:
        table.add_row(str(r.index), escape(r.text()), escape(r.claim.metric),
                      escape(describe_point(r)), escape(r.bound()),
                      f"[{style[r.verdict]}]{r.verdict}[/]")
    console.print(table)
    for r in results:
        if r.warning and r.verdict != "not checked":
            console.print(f"warning: claim #{r.index}: {r.warning}", highlight=False,
                          markup=False, soft_wrap=True)
    failed = [r for r in results if r.verdict == "fail"]
    unchecked = [r for r in results if r.verdict == "not checked"]
    console.print(f"{len(results) - len(failed) - len(unchecked)} passed, {len(failed)} failed, "
                  f"{len(unchecked)} not checked", highlight=False)
    if failed:
        return EXIT_FAILED
    if len(unchecked) == len(results):  # nothing held, because nothing was looked at
        console.print(f"no claim could be checked (the value column says why): exit status "
                      f"{EXIT_FAILED}", highlight=False, markup=False, soft_wrap=True)
        return EXIT_FAILED
    return 0


def _report(run_dir: Path, out: Path | None, formats: str, console: Console,
            trust_code: bool | frozenset[str] = False) -> int:
    from bench.reporting.report import parse_formats, render

    written = render(run_dir, out, parse_formats(formats), trust_code=trust_code)
    from bench.results.reader import RunData  # the folder's state, said here too (the report has it)
    for note in RunData.open(run_dir).notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False, markup=False)
    for path in written:
        console.print(f"report: {path}", soft_wrap=True, highlight=False, markup=False)
    return 0


def _print_grid(suite: Suite, console: Console, pack: PackMode = "auto") -> None:
    specs = expand(suite)
    if suite.tune is not None:
        from bench.suite.stages import planned_total
        title = (f"{suite.name}: {len(suite.points)} grid points; {planned_total(suite)} trials "
                 f"in two stages: {len(specs)} known now (tuning seeds "
                 f"{','.join(map(str, suite.tune.seeds))}, and what has nothing to tune), then "
                 f"each setting's pick of {', '.join(suite.tune.keys)} on the evaluation seeds")
    else:
        title = (f"{suite.name}: {len(suite.points)} grid points x {len(suite.seeds)} seeds = "
                 f"{len(specs)} trials")
    table = Table(title=escape(title))
    keys = suite.varied_keys
    has_variants = any(p.variant for p in suite.points)
    table.add_column("#", justify="right")
    if has_variants:
        table.add_column("variant")
    for key in keys:
        table.add_column(escape(key))
    table.add_column("stage" if suite.tune is not None else "seeds")
    table.add_column("note")
    reasons: set[str] = set()
    runnable = [s for s in specs if not cuda_unavailable_reason(s.train.device)]
    # auto's choice sizes each point's data by drawing it: for a user task that runs user code,
    # which a suite read without it (--dry-run) must not do. The run decides.
    undecided = (pack == "auto" and max(len(suite.seeds), len(suite.tune.seeds) if suite.tune
                                        else 0) > 1
                 and any(isinstance(s.task, UncheckedUserTaskConfig) and packable(s)
                         for s in runnable))
    packed = set() if undecided else {
        s.trial_id for unit in plan(runnable, pack) if len(unit) > 1 for s in unit}
    first = {}
    for s in specs:  # each point's first trial, matched on its variant and config
        first.setdefault((s.variant, repr(sorted(s.config.items()))), s)
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
        cells += [_cell(overrides.get(k, "")) for k in keys]
        cells += [stage, note]
        if reason:
            reasons.add(reason)
        table.add_row(*[escape(c) for c in cells])
    console.print(table)
    if suite.tune is not None:
        console.print(f"evaluation seeds: {','.join(map(str, suite.seeds))}; the picks are made "
                      f"on {suite.tune.metric} over the tuning seeds", highlight=False)
    for warning in suite.warnings:
        console.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    for reason in sorted(reasons):
        console.print(f"skipped: {reason}", highlight=False, markup=False)
    if undecided:
        console.print("packing: decided when the run starts (--pack auto draws each point's "
                      "data to size it, and a user task's draw runs user code)",
                      highlight=False, markup=False, soft_wrap=True)
    _print_imports(suite, console)


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
    failed = int((trials.status == "failed").sum())
    for (status, error), group in trials[trials.status.isin(schema.NOT_TRAINED)].groupby(
            ["status", "error"], dropna=False):
        console.print(f"{len(group)} trials {status}: {error}", highlight=False, markup=False)
    ran = trials[trials.status.isin(schema.TRAINED)]
    if ran.empty:
        return failed
    keys = [k for k in suite.varied_keys if k in ran.columns and ran[k].map(repr).nunique() > 1]
    if ran["variant"].nunique() > 1:
        keys.insert(0, "variant")
    table = Table(title=escape(f"{suite.name}: mean over seeds, after the last epoch (train "
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
        ok = group[group.status == "ok"]
        first = group.iloc[0]
        cells = [escape(show(first[k])) for k in keys]
        cells.append(f"{len(ok)}/{len(group)}")
        for _, col, fmt in columns:
            value = ok[col].astype(float).mean() * (1000 if col == "time_per_epoch_s" else 1)
            cells.append("" if math.isnan(value) else fmt.format(value))
        table.add_row(*cells)
    console.print(table)
    return failed


def _list(console: Console, what: str | None = None) -> None:
    if what == "suites":
        _list_suites(console)
        return
    plugins = {what: {escape(name): escape(f"{path} (from {package})")
                      for name, (path, package) in registered(group).items()}
               for what, group in GROUPS.items()}
    tasks = Table(title=escape("tasks ([task] kind = ..., or 'package.module:name' with the "
                               "function's keyword arguments as the other keys)"))
    tasks.add_column("kind")
    tasks.add_column("keys (default)")
    tasks.add_column("about")
    for name, (cfg, _) in TASKS.items():
        keys = ", ".join(f"{k} ({f.default})" for k, f in cfg.model_fields.items() if k != "kind")
        tasks.add_row(name, keys, (cfg.__doc__ or "").strip().splitlines()[0])
    for name, about in plugins["task"].items():
        tasks.add_row(name, "the function's keyword arguments", about)
    console.print(tasks)
    for title, entries in (("activations ([model] activation = ..., or 'package.module:name'"
                            " or { fn = ..., arg = ... })",
                            {**{k: a.doc for k, a in ACTIVATIONS.items()}, **plugins["activation"]}),
                           ("inits ([model] init = ..., or 'package.module:name' or "
                            "{ fn = ..., arg = ... })", {**INITS, **plugins["init"]}),
                           ("optimizers ([train] optimizer = ...)", OPTIMIZERS)):
        table = Table(title=escape(title))
        table.add_column("name")
        table.add_column("about")
        for name, about in entries.items():
            table.add_row(name, about)
        console.print(table)
    from bench.suite.locate import shipped_paths
    console.print(f"shipped suites ({len(shipped_paths())}): `list suites` shows them; `run NAME` "
                  "runs one, e.g. `run activations`", highlight=False, markup=False,
                  soft_wrap=True)


def _list_suites(console: Console) -> None:
    """The shipped suites, by the name ``run`` takes, with their TOML description (read with
    tomllib, never validated or run: no user code is imported)."""
    from bench.suite.locate import shipped_dir, shipped_suites

    suites = shipped_suites()
    table = Table(title=escape(f"shipped suites ({shipped_dir()}): `run NAME` runs one, "
                               "`run NAME --dry-run` prints its grid"))
    table.add_column("name")
    table.add_column("about")
    for s in suites:
        about = s.description if s.name == s.key else f"{s.description} (name = {s.name!r})"
        table.add_row(escape(s.key), escape(about))
    console.print(table)
    if not suites:
        console.print(f"no shipped suites found in {shipped_dir()}", highlight=False,
                      markup=False, soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
