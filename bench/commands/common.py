"""What every command shares: exit statuses, consoles, error lines, argument types, and run
folders named by their suite."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

EXIT_FAILED = 1  # a failed trial, a failed or uncheckable claim, a report not drawn
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

EXIT_STATUSES = """\
exit status:
  0    it worked: every trial trained (diverged and skipped trials are results), every
       claim checked held, the report was drawn
  1    a trial failed, a claim failed or no claim could be checked, a report could not be
       drawn, or compare's --fail-on was crossed
  2    a user error (a bad suite, path or option): one message, no traceback
  130  interrupted (Ctrl-C, or kill during a run): finished trials are stored, and
       'run SUITE --resume RUN_DIR' goes on"""


def new_console(stderr: bool = False, **kwargs) -> Console:
    """A console that never turns ``:name:`` into an emoji: the CLI prints user values, which
    ``escape`` keeps from being markup but not from being emoji codes."""
    return Console(stderr=stderr, emoji=False, **kwargs)


def print_error(label: str, message: str) -> None:
    """``label`` in bold red, then ``message`` exactly as it is (no markup, no emoji)."""
    new_console(stderr=True).print(Text.assemble((label, "bold red"), " ", message),
                                   highlight=False, soft_wrap=True)


def prog() -> str:
    """The program name as the user typed it: ``actbench`` (the installed script), else
    ``python -m bench`` (``__main__.py``, and callers of ``main`` such as tests)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "actbench" if name.startswith("actbench") else "python -m bench"


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole "
                                         "numbers, e.g. 10,11,12") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed, e.g. 10,11,12")
    return seeds


def reason(exc: BaseException) -> str:
    """An exception in one line that is never blank: its type and first line, or its repr."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else repr(exc)


def named_run(value: Path, root: Path = Path("results")) -> Path:
    """A run folder named by its suite (``SUITE``, ``SUITE/latest``, ``SUITE/RUN_ID``, under
    ``root``) made a path, saying which run a name picked; a path that exists wins."""
    from bench.suite.locate import resolve_run

    path = resolve_run(value, root)
    if path != Path(value):
        new_console(stderr=True).print(f"{value}: {path}", highlight=False, markup=False,
                                       soft_wrap=True)
    return path
