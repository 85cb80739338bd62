"""Executors move units of work to ``run_pack`` and results back; they never write files.

A unit is a list of TrialSpecs: one trial, or a pack of seeds trained as one model
(packing.py). ``on_result`` is called once per trial.

``processes`` runs units in N spawned worker processes, each with its own pinned intra-op
thread count. Each worker is a pool of its own (a one-process ``ProcessPoolExecutor``, a
"slot") holding at most one unit at a time. So when a worker dies, the one unit it held is
known, and the death is charged to that unit alone: the units in the other slots run on
untouched. (One pool of N processes breaks as a whole, failing every unit in flight, and
would need the workers' pids to tell the culprit from its neighbours; a slot per worker needs
neither.) A unit whose worker died runs again, its trials alone (a pack's size may be what
killed it), until each trial has had ``_MAX_ATTEMPTS``; then it is a failed row rather than
bringing the run down. Attempts are counted per trial, so nothing is retried forever.

``serial`` runs units one at a time. Those that run user code (an activation, init or task
named by import path or by a plugin's entry point) run in one spawned worker, through the
same slots, so that an ``os._exit`` or a segfault in user code fails its trial, not the run.
Units of built-ins only run in this process, and so do CUDA units (one GPU context, the
coordinator's) and units naming a function in ``__main__``, which no other process can import.

Workers die with the coordinator: each asks Linux for SIGKILL when its parent goes
(``PR_SET_PDEATHSIG``), and a watchdog thread exits it when its parent pid changes (portable,
and it covers a parent gone before the request was made).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import torch

from bench import schema
from bench.plugins import in_main
from bench.results.writer import encode
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
_WATCHDOG_S = 1.0  # how often a worker checks that its coordinator is still there


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
    slots: _Slots | None = None  # one worker, started at the first unit that needs it
    try:
        for unit in units:
            if _isolated(unit):
                slots = slots or _Slots(1, threads, suite_sha256)
                slots.run([unit], on_result, on_progress)
            else:
                report = None if on_progress is None else (
                    lambda share, unit=unit: on_progress(unit, share))
                _deliver(unit, run_pack(unit, threads, report), on_result)
    except BaseException:
        if slots is not None:
            slots.terminate()
        raise
    if slots is not None:
        slots.close()


# -- processes ---------------------------------------------------------------------------------

def run_processes(units: Iterable[Unit], workers: int, threads: int,
                  on_result: OnResult, on_progress: OnProgress | None = None,
                  suite_sha256: str | None = None) -> None:
    slots = _Slots(workers, threads, suite_sha256)
    try:
        slots.run(units, on_result, on_progress)
    except BaseException:
        slots.terminate()
        raise
    slots.close()


_progress_cell = None  # in a worker: its slot's shared double, the share of the unit done


def _init_worker(threads: int, coordinator: int | None = None, cell=None) -> None:
    # Ctrl-C goes to the whole process group; the coordinator alone decides what to do.
    global _progress_cell
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _progress_cell = cell
    if coordinator is not None:
        _die_with(coordinator)


def _set_progress(share: float) -> None:
    _progress_cell.value = share


def _run_unit(unit: Unit, threads: int, suite_sha256: str | None = None) -> list:
    """A unit in a worker, writing its progress where the coordinator reads it; its results
    encoded here, in the worker, ready to store (``writer.encode``), so that the coordinator
    only writes them."""
    if _progress_cell is None:
        results = run_pack(unit, threads)
    else:
        _progress_cell.value = 0.0
        results = run_pack(unit, threads, _set_progress)
    return [encode(r, suite_sha256) for r in results]


def _die_with(coordinator: int) -> None:
    """End this process when ``coordinator``, its parent, is gone (``kill -9`` included)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except Exception:  # no prctl: the watchdog below still does it, within a second
            pass
    if os.getppid() != coordinator:  # gone already, before the request above
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(_WATCHDOG_S)
            if os.getppid() != coordinator:
                os._exit(1)

    threading.Thread(target=watch, name="actbench-watchdog", daemon=True).start()


class _Slots:
    """``workers`` one-process pools, each running at most one unit: a dead worker is the
    death of the unit it held, and of no other. Pools start when first needed and a broken
    one is replaced; attempts are counted per trial across every ``run``."""

    def __init__(self, workers: int, threads: int, suite_sha256: str | None = None):
        self.threads = threads
        self.suite_sha256 = suite_sha256  # the workers encode their trials with it
        self.pools: list[ProcessPoolExecutor | None] = [None] * max(1, workers)
        self.cells: list = [None] * len(self.pools)  # each slot's progress, shared memory
        self.attempts: dict[str, int] = {}
        self.in_flight: dict[Future, tuple[int, Unit]] = {}
        self.context = multiprocessing.get_context("spawn")  # fork after torch's threads
        # start is unsafe

    def _pool(self, slot: int) -> ProcessPoolExecutor:
        pool = self.pools[slot]
        if pool is None:
            # A lock-free double: one writer (the worker), one reader (here); a torn read is
            # impossible for an aligned double, and a stale one only delays the bar.
            self.cells[slot] = self.context.Value("d", 0.0, lock=False)
            pool = self.pools[slot] = ProcessPoolExecutor(
                1, mp_context=self.context, initializer=_init_worker,
                initargs=(self.threads, os.getpid(), self.cells[slot]))
        return pool

    def _replace(self, slot: int) -> None:
        """Its worker died: the pool is broken; the next unit in this slot gets a fresh one."""
        pool, self.pools[slot] = self.pools[slot], None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def run(self, units: Iterable[Unit], on_result: OnResult,
            on_progress: OnProgress | None = None) -> None:
        pending = list(units)[::-1]  # a stack: pop() takes them in grid order
        while pending or self.in_flight:
            busy = {slot for slot, _ in self.in_flight.values()}
            for slot in range(len(self.pools)):
                if not pending:
                    break
                if slot in busy:
                    continue
                unit = pending.pop()
                try:
                    pool = self._pool(slot)
                    self.cells[slot].value = 0.0  # not the last unit's share
                    future = pool.submit(_run_unit, unit, self.threads, self.suite_sha256)
                except BrokenProcessPool:  # died before it took the unit: charged, bounded
                    self._replace(slot)
                    retry_unit(unit, self.attempts, pending, self.threads, on_result)
                    continue
                self.in_flight[future] = slot, unit
            if not self.in_flight:
                continue
            done, _ = wait(self.in_flight, return_when=FIRST_COMPLETED,
                           timeout=None if on_progress is None else _POLL_S)
            if on_progress is not None:
                for future, (slot, unit) in self.in_flight.items():
                    if future not in done and self.cells[slot] is not None:
                        on_progress(unit, min(1.0, max(0.0, self.cells[slot].value)))
            for future in done:
                slot, unit = self.in_flight.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:  # this slot's worker, so this unit's
                    self._replace(slot)
                    retry_unit(unit, self.attempts, pending, self.threads, on_result)
                    continue
                _deliver(unit, results, on_result)

    def close(self) -> None:
        for pool in self.pools:
            if pool is not None:
                pool.shutdown(wait=True)
        self.pools = [None] * len(self.pools)

    def terminate(self) -> None:
        for future in self.in_flight:
            future.cancel()
        self.in_flight.clear()
        for pool in self.pools:
            if pool is not None:
                _terminate(pool)
        self.pools = [None] * len(self.pools)


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


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now: their trials in flight are lost, everything stored is kept."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
