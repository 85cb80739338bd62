"""Executors move units of work to ``run_pack`` and results back; they never write files.

A unit is a list of TrialSpecs: one trial, or a pack of seeds trained as one model
(packing.py). ``on_result`` is called once per trial.

``processes`` runs units in N worker processes (workers.py), each with its own pinned
intra-op thread count and holding at most one unit at a time (a "slot"). So when a worker
dies, the one unit it held is known, and the death is charged to that unit alone: the units in
the other slots run on untouched. A unit whose worker died runs again, its trials alone (a
pack's size may be what killed it), until each trial has had ``_MAX_ATTEMPTS``; then it is a
failed row rather than bringing the run down. Attempts are counted per trial, so nothing is
retried forever.

``serial`` runs units one at a time. Those that run user code (an activation, init or task
named by import path or by a plugin's entry point) run in one worker, through the same slots,
so that an ``os._exit`` or a segfault in user code fails its trial, not the run. Units of
built-ins only run in this process, and so do CUDA units (one GPU context, the coordinator's)
and units naming a function in ``__main__``, which no other process can import.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable

from bench import schema
from bench.execution.workers import Worker, WorkerDied, ready
from bench.plugins import in_main
from bench.training.activations import ACTIVATIONS
from bench.training.inits import INITS
from bench.training.loop import run_pack
from bench.training.result import TrialResult, not_trained
from bench.training.spec import TrialSpec
from bench.training.tasks import TASKS

OnResult = Callable[[TrialSpec, TrialResult], None]
# ``on_progress(unit, share)``: the share (0 to 1) of its epochs that a unit in flight has done,
# so that the bar advances while a pack trains rather than jumping by its size at the end.
OnProgress = Callable[["Unit", float], None]
_MAX_ATTEMPTS = 2
_POLL_S = 0.2  # how often the coordinator reads the workers' progress


Unit = list[TrialSpec]


def _deliver(unit: Unit, results: list[TrialResult], on_result: OnResult) -> None:
    for spec, result in zip(unit, results, strict=True):
        on_result(spec, result)


# -- serial ------------------------------------------------------------------------------------

def _user_names(spec: TrialSpec) -> list[str]:
    """The activation, init and task kind of ``spec`` that are not built-ins: import paths
    ("module:name") or names that an installed package registers."""
    named = ((spec.model.activation, ACTIVATIONS), (spec.model.init, INITS),
             (spec.task.kind, TASKS))
    return [name for name, builtins in named if name not in builtins]


def _runs_user_code(unit: Unit) -> bool:
    """``unit`` calls code that is not actbench's own (which may crash its process)."""
    return any(_user_names(spec) for spec in unit)


def _isolated(unit: Unit) -> bool:
    """Run in a worker process by ``run_serial``: user code, importable there, on the CPU."""
    return (_runs_user_code(unit) and not unit[0].train.device.startswith("cuda")
            and not any(in_main(name) for spec in unit for name in _user_names(spec)))


def run_serial(units: Iterable[Unit], threads: int, on_result: OnResult,
               on_progress: OnProgress | None = None, suite_sha256: str | None = None) -> None:
    # One worker for the units that run user code, started at the first of them.
    with Slots(1, threads, suite_sha256) as slots:
        for unit in units:
            if _isolated(unit):
                slots.run([unit], on_result, on_progress)
            else:
                report = None if on_progress is None else (
                    lambda share, unit=unit: on_progress(unit, share))
                _deliver(unit, run_pack(unit, threads, report), on_result)


# -- processes ---------------------------------------------------------------------------------

def run_processes(units: Iterable[Unit], workers: int, threads: int,
                  on_result: OnResult, on_progress: OnProgress | None = None,
                  suite_sha256: str | None = None) -> None:
    with Slots(workers, threads, suite_sha256) as slots:
        slots.run(units, on_result, on_progress)


class Slots:
    """``workers`` worker processes (workers.py), each running one unit at a time: a dead
    worker is the death of the unit it was running, and of no other. Workers start when first
    needed (or all at once, ``start``) and a dead one is replaced; attempts are counted per
    trial across every ``run``. As a context manager they are closed at the end, or killed at
    once if the block raises (Ctrl-C included): their trials in flight are lost, everything
    stored is kept.

    While units are short (under ``PREFETCH_BELOW_S`` on average) each worker is handed its
    next unit before it answers the last, so that it never waits for the coordinator to store
    a result; a worker runs its units in the order given and answers each before it takes the
    next, so the first unanswered unit is the one it was running when it died, and the unit
    queued behind it goes back to the pending ones, uncharged. Long units are handed one at a
    time: a unit queued behind a long one would wait while another worker sat idle.
    """

    PREFETCH_BELOW_S = 0.25

    def __init__(self, workers: int, threads: int, suite_sha256: str | None = None,
                 method: str = "auto"):
        self.threads = threads
        self.suite_sha256 = suite_sha256  # the workers encode their trials with it
        self.method = method
        self.workers: list[Worker | None] = [None] * max(1, workers)
        self.attempts: dict[str, int] = {}
        # slot -> the units its worker holds, in the order given: the first is running
        self.in_flight: dict[int, deque[Unit]] = {}
        self._unit_s = math.inf  # a running mean of how long a unit takes in a worker
        self._since: dict[int, float] = {}  # slot -> when its running unit started, about

    def start(self) -> Slots:
        """Start every worker now: a run does this before its progress bar starts a thread,
        so that they can be forked (workers.start_method)."""
        for slot in range(len(self.workers)):
            self._worker(slot)
        return self

    @property
    def started_with(self) -> str:
        """How the live workers were started: "fork", "spawn", or both ("fork, spawn")."""
        return ", ".join(sorted({w.method for w in self.workers if w is not None}))

    def _worker(self, slot: int) -> Worker:
        worker = self.workers[slot]
        if worker is None:
            worker = self.workers[slot] = Worker(self.threads, self.suite_sha256, self.method)
        return worker

    def _depth(self) -> int:
        return 2 if self._unit_s < self.PREFETCH_BELOW_S else 1

    def _died(self, slot: int, pending: list[Unit], on_result: OnResult) -> None:
        """The worker in ``slot`` died: its running unit is charged an attempt, the units
        queued behind it go back, and the slot's next unit gets a fresh worker."""
        self._replace(slot)
        queue = self.in_flight.pop(slot, deque())
        if queue:
            running = queue.popleft()
            pending.extend(reversed(queue))  # next, in their order
            retry_unit(running, self.attempts, pending, self.threads, on_result)

    def _fill(self, pending: list[Unit], on_result: OnResult) -> None:
        for slot in range(len(self.workers)):
            queue = self.in_flight.setdefault(slot, deque())
            while pending and len(queue) < self._depth():
                unit = pending.pop()
                try:
                    self._worker(slot).submit(unit)
                except WorkerDied:
                    if queue:  # the unit it was running is the culprit: the wait finds it
                        pending.append(unit)
                        break
                    self._replace(slot)  # died idle: charged, so a worker that cannot start
                    retry_unit(unit, self.attempts, pending, self.threads, on_result)
                    continue  # does not loop forever
                if not queue:
                    self._since[slot] = time.monotonic()
                queue.append(unit)
            if not queue:
                del self.in_flight[slot]

    def _replace(self, slot: int) -> None:
        worker, self.workers[slot] = self.workers[slot], None
        if worker is not None:
            worker.kill()

    def run(self, units: Iterable[Unit], on_result: OnResult,
            on_progress: OnProgress | None = None) -> None:
        pending = list(units)[::-1]  # a stack: pop() takes them in grid order
        while pending or self.in_flight:
            self._fill(pending, on_result)
            if not self.in_flight:
                continue
            busy = {self.workers[slot]: slot for slot in self.in_flight}
            answered = ready(list(busy), None if on_progress is None else _POLL_S)
            if on_progress is not None:
                for worker, slot in busy.items():
                    if worker not in answered:
                        share = min(1.0, max(0.0, worker.progress.value))
                        on_progress(self.in_flight[slot][0], share)
            for worker in answered:
                slot = busy[worker]
                try:
                    results = worker.answer()
                except WorkerDied:  # this slot's worker, so its running unit's
                    self._died(slot, pending, on_result)
                    continue
                queue = self.in_flight[slot]
                unit = queue.popleft()
                now = time.monotonic()
                took, self._since[slot] = now - self._since[slot], now
                self._unit_s = took if math.isinf(self._unit_s) else (
                    0.8 * self._unit_s + 0.2 * took)
                if not queue:
                    del self.in_flight[slot]
                _deliver(unit, results, on_result)

    def __enter__(self) -> Slots:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.close()
        else:
            self.terminate()

    def close(self) -> None:
        for worker in self.workers:
            if worker is not None:
                worker.close()
        self.workers = [None] * len(self.workers)

    def terminate(self) -> None:
        """Stop the workers now: their trials in flight are lost, everything stored is kept."""
        self.in_flight.clear()
        for worker in self.workers:
            if worker is not None:
                worker.kill()
        self.workers = [None] * len(self.workers)


def retry_unit(unit: Unit, attempts: dict[str, int], pending: list[Unit], threads: int,
           on_result: OnResult) -> None:
    """A unit whose worker died: its trials run again, alone (a pack's size may be what
    killed it), until each has had ``_MAX_ATTEMPTS``; then they are failed rows."""
    for spec in unit:
        tries = attempts[spec.trial_id] = attempts.get(spec.trial_id, 0) + 1
        if tries >= _MAX_ATTEMPTS:
            on_result(spec, _died(spec, threads, tries, len(unit)))
        else:
            pending.append([spec])


def _died(spec: TrialSpec, threads: int, attempts: int, pack_size: int = 1) -> TrialResult:
    return not_trained(spec, threads, schema.FAILED,
                       f"the worker process died while running this trial ({attempts} attempts)",
                       pack_size, worker=None)
