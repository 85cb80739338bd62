"""``bench report RUN_DIR``: a stored run as one HTML file and a Markdown file with PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bench.commands.common import named_run


class Report:
    """Draw a stored run's report."""

    name = "report"

    def add_to(self, sub, raw) -> None:
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

    def locate(self, args: argparse.Namespace) -> None:
        args.run_dir = named_run(args.run_dir)

    def __call__(self, args: argparse.Namespace, console: Console) -> int:
        return write_report(args.run_dir, args.out, args.format, console, args.trust_code)


def write_report(run_dir: Path, out: Path | None, formats: str, console: Console,
                 trust_code: bool | frozenset[str] = False) -> int:
    from bench.reporting.report import parse_formats, render

    written = render(run_dir, out, parse_formats(formats), trust_code=trust_code)
    from bench.results.reader import RunData  # the folder's state, said here too (the report has it)
    for note in RunData.open(run_dir).notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False, markup=False)
    for path in written:
        console.print(f"report: {path}", soft_wrap=True, highlight=False, markup=False)
    return 0
