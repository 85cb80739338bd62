"""The subcommands of ``bench``: one small class each, what ``bench/cli.py`` assembles.

Each command has a ``name``, ``add_to(subparsers, formatter)`` (its arguments, as ``--help``
shows them), ``locate(args)`` (names made paths: a shipped suite, a run folder by its suite)
and ``__call__(args, console) -> exit status``. The work itself is the layers' (execution,
analysis, reporting), the same code the Python API (bench/api.py) calls; a command parses,
calls and prints. (asv's commands are the model.)
"""

from bench.commands.check import Check
from bench.commands.compare import Compare
from bench.commands.listing import List
from bench.commands.perf import Perf
from bench.commands.report import Report
from bench.commands.run import Run

COMMANDS = (Run(), Report(), Check(), Compare(), List(), Perf())  # in --help's order

__all__ = ["COMMANDS", "Check", "Compare", "List", "Perf", "Report", "Run"]
