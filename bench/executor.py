"""Executors move TrialSpecs to ``run_trial`` and results back; they never write files.

``serial`` runs in this process. ``processes`` runs in N spawned worker processes, each with
its own pinned intra-op thread count. At most N trials are in flight at a time, so when a
worker dies the trials it may have held are known: they run again once, then are recorded as
failed rather than bringing the run down.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import torch

from .spec import TrialSpec
from .train import TrialResult, run_trial, trial_row

OnResult = Callable[[TrialSpec, TrialResult], None]
_MAX_ATTEMPTS = 2


def run_serial(specs: Iterable[TrialSpec], threads: int, on_result: OnResult) -> None:
    for spec in specs:
        on_result(spec, run_trial(spec, threads))


def _init_worker(threads: int) -> None:
    # Ctrl-C goes to the whole process group; the coordinator alone decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _died(spec: TrialSpec, threads: int, attempts: int) -> TrialResult:
    row = trial_row(spec, threads)
    row.update(status="failed", worker=None,
               error=f"the worker process died while running this trial ({attempts} attempts)")
    return TrialResult(row)


def run_processes(specs: Iterable[TrialSpec], workers: int, threads: int,
                  on_result: OnResult) -> None:
    pending = list(specs)[::-1]  # a stack: pop() takes them in grid order
    attempts: dict[str, int] = {}
    context = multiprocessing.get_context("spawn")  # fork after torch's threads start is unsafe
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(threads,))
    in_flight: dict[Future, TrialSpec] = {}
    try:
        while pending or in_flight:
            while pending and len(in_flight) < workers:
                spec = pending.pop()
                in_flight[pool.submit(run_trial, spec, threads)] = spec
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                spec = in_flight.pop(future)
                try:
                    on_result(spec, future.result())
                except BrokenProcessPool:
                    broken = True
                    tries = attempts[spec.trial_id] = attempts.get(spec.trial_id, 0) + 1
                    if tries >= _MAX_ATTEMPTS:
                        on_result(spec, _died(spec, threads, tries))
                    else:
                        pending.append(spec)
            if broken:
                for spec in in_flight.values():  # a broken pool fails them all
                    pending.append(spec)
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
