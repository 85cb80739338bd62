"""Executors move units of work to ``run_pack`` and results back; they never write files.

A unit is a list of TrialSpecs: one trial, or a pack of seeds trained as one model
(packing.py). ``on_result`` is called once per trial. ``serial`` runs in this process.
``processes`` runs in N spawned worker processes, each with its own pinned intra-op thread
count. At most N units are in flight at a time, so when a
worker dies the units it may have held are known: they run again once, then their trials are
recorded as failed rather than bringing the run down.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import torch

from .spec import TrialSpec
from .train import TrialResult, not_trained, run_pack

OnResult = Callable[[TrialSpec, TrialResult], None]
_MAX_ATTEMPTS = 2


Unit = list[TrialSpec]


def _deliver(unit: Unit, results: list[TrialResult], on_result: OnResult) -> None:
    for spec, result in zip(unit, results, strict=True):
        on_result(spec, result)


def run_serial(units: Iterable[Unit], threads: int, on_result: OnResult) -> None:
    for unit in units:
        _deliver(unit, run_pack(unit, threads), on_result)


def _init_worker(threads: int) -> None:
    # Ctrl-C goes to the whole process group; the coordinator alone decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _retry(unit: Unit, attempts: dict[str, int], pending: list[Unit], threads: int,
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
    return not_trained(spec, threads, "failed",
                       f"the worker process died while running this trial ({attempts} attempts)",
                       pack_size, worker=None)


def run_processes(units: Iterable[Unit], workers: int, threads: int,
                  on_result: OnResult) -> None:
    pending = list(units)[::-1]  # a stack: pop() takes them in grid order
    attempts: dict[str, int] = {}
    context = multiprocessing.get_context("spawn")  # fork after torch's threads start is unsafe
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(threads,))
    in_flight: dict[Future, Unit] = {}
    try:
        while pending or in_flight:
            while pending and len(in_flight) < workers:
                unit = pending.pop()
                in_flight[pool.submit(run_pack, unit, threads)] = unit
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                unit = in_flight.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    broken = True
                    _retry(unit, attempts, pending, threads, on_result)
                    continue
                _deliver(unit, results, on_result)
            if broken:
                for unit in in_flight.values():  # a broken pool fails them all
                    _retry(unit, attempts, pending, threads, on_result)
                in_flight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(workers, mp_context=context,
                                           initializer=_init_worker, initargs=(threads,))
    except BaseException:
        for future in in_flight:
            future.cancel()
        _terminate(pool)
        raise
    pool.shutdown(wait=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now: their trials in flight are lost, everything stored is kept."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
