"""What ``bench run`` tells the person watching: every line and the progress bar, in one place.

The coordinator (run.py) says *what happened* (a run started, trials were skipped, a trial
finished) and the reporter says it: a live bar in a terminal or a notebook, one line per trial
in a log or CI. (pytest-benchmark's session and its reporting hooks are the model: the phases
do the work, the reporter writes.)
"""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column

from bench import schema
from bench.training.result import TrialResult
from bench.training.spec import TrialSpec


def progress_bar(console: Console) -> Progress:
    """A live bar in a terminal, and in a notebook (rich draws it in an ipywidgets output
    there); elsewhere (a log, CI, a notebook without ipywidgets) it is off, and the run prints
    one line per trial instead."""
    live = console.is_terminal or (console.is_jupyter and _has_ipywidgets())
    # Fixed widths for the count and the times, so that at 80 columns the last trial's text
    # (which may be long) is cut with an ellipsis instead of pushing them off the line.
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}",
                                                table_column=Column(no_wrap=True, max_width=16,
                                                                    overflow="ellipsis")),
                    BarColumn(bar_width=16), MofNCompleteColumn(table_column=Column(
                        no_wrap=True, min_width=9)),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    TextColumn("{task.fields[last]}", markup=False,
                               table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
                    console=console, transient=False, disable=not live, expand=True)


def _has_ipywidgets() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def headline(spec: TrialSpec, result: TrialResult) -> str:
    """One trial in a line: its label, and its loss and accuracy (or why it has none)."""
    row = result.trial
    if row["status"] in schema.NOT_TRAINED:
        return f"{spec.label()}: {row['status']}"
    text = f"{spec.label()}: loss {row['final_loss']:.4g}"
    if not math.isnan(row["final_accuracy"]):
        text += f" acc {row['final_accuracy']:.3f}"
    return text + ("" if row["status"] == schema.OK else f" ({row['status']})")


class RunReporter:
    """The console of one run: its lines, and its bar (``progress``, entered by the caller)."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = progress_bar(console)

    @property
    def live(self) -> bool:
        """A bar is drawn (a terminal or a notebook), rather than a line per trial."""
        return not self.progress.disable

    def line(self, text: str) -> None:
        """Plain text, printed as it is (no markup, no highlighting)."""
        self.console.print(text, soft_wrap=True, highlight=False, markup=False)

    def warning(self, text: str, label: str = "warning") -> None:
        self.console.print(f"[yellow]{label}:[/] {escape(text)}", soft_wrap=True,
                           highlight=False)

    def started(self, name: str, total: int, staged: bool, to_run: int, workers: int,
                where: str, threads: int, run_dir) -> None:
        stages = " in two stages (tune, then evaluate the picks)" if staged else ""
        on = f" on Dask {where}" if where else ""
        self.console.print(f"[bold]{escape(name)}[/]: {total} trials{stages}, {to_run} to run "
                           f"now, {workers} worker(s){on} x {threads} thread(s) -> {run_dir}",
                           soft_wrap=True, highlight=False)

    def skipped(self, by_reason: dict[str, list[TrialSpec]]) -> None:
        for reason, specs in by_reason.items():
            devices = ", ".join(sorted({s.train.device for s in specs}))
            self.line(f"{len(specs)} {devices} trial(s) recorded as skipped: {reason}")

    def stage(self, label: str, description: str, total: int) -> StageProgress:
        """A stage's bar (``description``) and, in a log, its lines (prefixed ``label``)."""
        return StageProgress(self, label, description, total)


class StageProgress:
    """One stage's share of the bar: trials finished, plus the share of the epochs done by
    units in flight (a pack of 5 halfway is 2.5), so that the bar and its ETA move while a
    pack trains; a member's row takes its share off again."""

    def __init__(self, reporter: RunReporter, label: str, description: str, total: int):
        self.reporter, self.label, self.total = reporter, label, total
        self.task = reporter.progress.add_task(description, total=total, last="")
        self.finished = 0
        self.partial: dict[str, float] = {}
        self.member_of: dict[str, str] = {}
        self._drawn = 0.0

    def _shown(self) -> float:
        return min(self.total, self.finished + sum(self.partial.values()))

    def unit_progress(self, unit: list[TrialSpec], share: float) -> None:
        """A unit in flight has done ``share`` (0 to 1) of its epochs."""
        key = unit[0].trial_id
        self.partial[key] = len(unit) * share
        self.member_of.update((s.trial_id, key) for s in unit)
        now = time.monotonic()
        if now - self._drawn >= 0.1:  # the bar redraws at 10 Hz anyway
            self._drawn = now
            self.reporter.progress.update(self.task, completed=self._shown())

    def trial_done(self, spec: TrialSpec, result: TrialResult) -> None:
        self.finished += 1
        key = self.member_of.pop(spec.trial_id, None)
        if key in self.partial:
            self.partial[key] = max(0.0, self.partial[key] - 1)
            if not self.partial[key]:
                del self.partial[key]
        text = headline(spec, result)
        self.reporter.progress.update(self.task, completed=self._shown(), last=text)
        if not self.reporter.live:  # a log file or CI: one line per trial instead of a bar
            stage = f"{self.label} " if self.label else ""
            self.reporter.line(f"[{stage}{self.finished}/{self.total}] {text}")
