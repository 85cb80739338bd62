"""``bench compare RUN_A RUN_B``: what changed between two runs, grid point by grid point."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bench.commands.common import named_run
from bench.errors import UserError


class Compare:
    """Compare two stored runs."""

    name = "compare"

    def add_to(self, sub, raw) -> None:
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

    def locate(self, args: argparse.Namespace) -> None:
        args.run_a, args.run_b = named_run(args.run_a), named_run(args.run_b)

    def __call__(self, args: argparse.Namespace, console: Console) -> int:
        return _compare(args, console)


def _compare(args: argparse.Namespace, console: Console) -> int:
    from bench.analysis.compare import Threshold, compare, markdown, table
    from bench.analysis.formatting import setting_text
    from bench.results.reader import RunData
    from bench.results.writer import atomic_write_bytes

    thresholds = [Threshold.parse(t) for t in args.fail_on]
    a, b = (RunData.open(d, trust_code=args.trust_code) for d in (args.run_a, args.run_b))
    result = compare(a, b, thresholds)
    console.print(table(result).rich())
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
            where = setting_text(list(c.point), list(c.point.values())) if c.point else ""
            console.print(f"regression: {c.metric} {c.a:.4g} → {c.b:.4g} at {where} "
                          f"(past {', '.join(map(str, c.failed))})", highlight=False, markup=False)
        return 1
    return 0
