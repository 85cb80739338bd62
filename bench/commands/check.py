"""``bench check RUN_DIR``: the suite's [[expect]] claims, evaluated on a stored run."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bench.commands.common import EXIT_FAILED, named_run


class Check:
    """Check a stored run's claims."""

    name = "check"

    def add_to(self, sub, raw) -> None:
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

    def locate(self, args: argparse.Namespace) -> None:
        args.run_dir = named_run(args.run_dir)

    def __call__(self, args: argparse.Namespace, console: Console) -> int:
        return check_claims(args.run_dir, console, args.trust_code)


def check_claims(run_dir: Path, console: Console, trust_code: bool = False) -> int:
    from bench.analysis.check import check, claims_origin, describe_point
    from bench.analysis.tables import Cell, Table
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
    style = {"pass": "green", "fail": "bold red", "not checked": "yellow"}
    rows = [[Cell(str(r.index)), Cell(r.text()), Cell(r.claim.metric), Cell(describe_point(r)),
             Cell(r.bound()), Cell(r.verdict, style=style[r.verdict])] for r in results]
    console.print(Table(["#", "claim", "metric", "value", "bound", "verdict"], rows,
                        [True] + [False] * 5,
                        title=f"{run.suite_name}: claims on run {run.run_id}").rich())
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
