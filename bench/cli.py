"""``python -m bench``: the command line. User mistakes print one message and exit 2.

What a user wrote (a suite's values, paths, names) is printed as it is: with rich's markup and
emoji codes off (``:smile:`` stays ``:smile:``, ``[bold]`` stays ``[bold]``), escaped where it
goes into a table or a line that has markup of its own.
"""

from __future__ import annotations

import argparse
import sys

from bench.commands import COMMANDS
from bench.commands.common import EXIT_STATUSES, EXIT_USER_ERROR, new_console, print_error, prog
from bench.errors import UserError
from bench.version import __version__

DESCRIPTION = """\
Benchmark how activations, inits, learning rates and gradient accumulation change
training. A suite (a TOML file) names a grid of trials; 'run' trains them and stores
tidy tables in a run folder, which 'report', 'check' and 'compare' read."""

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


def build_parser() -> argparse.ArgumentParser:
    name = prog()
    raw = argparse.RawDescriptionHelpFormatter  # the epilogs' lists and tables as written
    parser = argparse.ArgumentParser(prog=name, description=DESCRIPTION, formatter_class=raw,
                                     epilog=_epilog(name))
    parser.add_argument("--version", action="version", version=f"actbench {__version__}",
                        help="print actbench's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do ('COMMAND --help' for its options)")
    for command in COMMANDS:
        command.add_to(sub, raw)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # In a log file or CI rich would wrap at 80 columns; tables are easier to read wider.
    console = new_console() if sys.stdout.isatty() else new_console(width=160)
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        command.locate(args)
        return command(args, console)
    except UserError as exc:
        print_error("error:", str(exc))
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
