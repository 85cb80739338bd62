"""The coordinator of ``bench run``: plans trials, feeds an executor, stores each result."""

from __future__ import annotations

import errno
import math
import os
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console

from bench.analysis.tuning import pick
from bench.analysis.tuning import warnings as tuning_warnings
from bench.errors import UserError
from bench.execution.local import Slots, run_processes, run_serial
from bench.execution.reporter import RunReporter
from bench.execution.resume import check_resume
from bench.plugins import in_main
from bench.provenance import cuda_unavailable_reason, machine, now_utc
from bench.results.folder import QUARANTINE
from bench.results.lock import describe as describe_holder
from bench.results.writer import RunStore
from bench.suite import Suite, expand
from bench.suite.stages import planned_total, second_stage, tune_device
from bench.training.loop import run_trial
from bench.training.packing import PackMode, plan
from bench.training.result import TrialResult
from bench.training.spec import TrialSpec
from bench.version import __version__


class Interrupted(Exception):
    """Ctrl-C during a run: every finished trial is stored in ``run_dir``."""

    def __init__(self, run_dir: Path):
        super().__init__(str(run_dir))
        self.run_dir = run_dir


class Stopped(Exception):
    """The run could not go on (its Dask scheduler went away); finished trials are stored."""

    def __init__(self, run_dir: Path, reason: str, stored: int):
        super().__init__(reason)
        self.run_dir, self.reason, self.stored = run_dir, reason, stored


@dataclass(frozen=True)
class RunOptions:
    out: Path = Path("results")
    workers: int = 0           # 0: one per CPU core
    threads: int = 1           # intra-op threads per trial, pinned: numbers must not depend on workers
    resume: Path | None = None
    extend: bool = False       # with resume: a changed suite may add grid points (resume.py)
    pack: PackMode = "auto"    # seeds of a grid point as one batched model (packing.py)
    scheduler: str | None = None  # a Dask scheduler's address (cluster.py)
    cluster: str | None = None    # "local" or "local:N": a LocalCluster for this run

    @property
    def dask(self) -> bool:
        return self.scheduler is not None or self.cluster is not None

    def resolved_workers(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)


def run_suite(suite: Suite, options: RunOptions, console: Console | None = None) -> RunStore:
    """Run every trial of ``suite`` not already stored; returns the store of the run folder.
    With a Dask scheduler or cluster the run connects first: an unreachable scheduler is a
    user error before any folder is made."""
    if not getattr(suite, "user_code_checked", True):
        raise UserError("this suite was read without importing its user code (as --dry-run "
                        "reads it), so it cannot be trained: load it with user_code=True",
                        source=suite.source)
    if options.extend and options.resume is None:
        raise UserError("extend goes with resume: it lets a changed suite go on in a run folder",
                        source=suite.source, key="extend")
    if not options.dask:
        return _run_suite(suite, options, console, None)
    local = sorted({p for s in expand(suite) for p in _main_functions(s)})
    if local:
        raise UserError(f"{', '.join(local)} are defined in __main__ (a notebook or a script), "
                        "which Dask workers cannot import: move them to a module the workers "
                        "can import, or run without a scheduler", source=suite.source)
    from bench.execution import dask_cluster as cluster
    with cluster.connect(options.scheduler, options.cluster) as client:
        cluster.check_workers(client)
        return _run_suite(suite, options, console, client)


def _main_functions(spec: TrialSpec) -> list[str]:
    """The functions ``spec`` names that live in ``__main__``: only this process has them."""
    return [p for p in (spec.model.activation, spec.model.init, spec.task.kind) if in_main(p)]


def _run_suite(suite: Suite, options: RunOptions, console: Console | None, client) -> RunStore:
    """The phases of a run: open the run folder, plan, execute the stages, close."""
    reporter = RunReporter(console or Console(stderr=True, emoji=False))
    for warning in suite.warnings:
        reporter.warning(warning)
    specs = expand(suite)  # with [tune]: the tuning stage, and what has nothing to tune
    store = _open_store(suite, options, reporter)
    try:
        run = _plan(suite, options, client, specs, store, reporter)
        _start(run, store, suite, options, client, reporter)
        state = "interrupted"
        try:
            _execute(run, store, suite, options, client, reporter)
            state = "finished"
        except KeyboardInterrupt:
            raise Interrupted(store.dir) from None
        except OSError as exc:
            if exc.errno not in _CANNOT_WRITE:
                raise
            state = f"stopped: {exc.strerror}"
            raise Stopped(store.dir, f"cannot write the run folder: {exc.strerror} "
                          f"({exc.filename}); free space, then --resume rebuilds the tables "
                          "from the stored trials", len(store.done())) from None
        except Exception as exc:
            if type(exc).__name__ != "SchedulerLost":
                raise
            state = "scheduler lost"
            raise Stopped(store.dir, str(exc), len(store.done())) from None
        finally:
            _close_run(store, run.order, run.session, state)
        return store
    finally:
        store.close()


@dataclass
class _Run:
    """What the plan decided: the trials in grid order, where they run, and this session's
    entry in the manifest (filled as the stages run)."""

    specs: list[TrialSpec]
    order: list[str]            # trial ids in grid order (the tables' row order)
    to_run: int
    total: int                  # both stages of a [tune] suite
    workers: int
    executor: str               # serial | processes | dask
    where: dict                 # the Dask scheduler's description; {} locally
    session: dict


def _plan(suite: Suite, options: RunOptions, client, specs: list[TrialSpec], store: RunStore,
          reporter: RunReporter) -> _Run:
    store.consolidate([s.trial_id for s in specs])  # the tables exist from the start
    done = store.done()
    to_run = sum(s.trial_id not in done for s in specs)
    total = planned_total(suite) if suite.tune is not None else len(specs)
    if client is not None:
        from bench.execution.dask_cluster import describe
        where = describe(client)
        workers, executor = where["workers"], "dask"
    else:
        workers = options.resolved_workers()
        local = sorted({p for s in specs for p in _main_functions(s)})
        if local and workers > 1:
            reporter.line(f"{', '.join(local)}: defined in __main__ (a notebook or a script), "
                          "so the trials run in this process, one at a time")
            workers = 1
        where, executor = {}, "processes" if workers > 1 else "serial"
    session = {"started_at": now_utc(), "executor": executor, "workers": workers, **where,
               "threads": options.threads, "pack": options.pack, "packs": 0,
               "trials_packed": 0, "trials_planned": 0,
               "trials_already_stored": len(specs) - to_run}
    return _Run(specs, [s.trial_id for s in specs], to_run, total, workers, executor, where,
                session)


def _start(run: _Run, store: RunStore, suite: Suite, options: RunOptions, client,
           reporter: RunReporter) -> None:
    """The session in the manifest, and the run's first line."""
    store.manifest.setdefault("sessions", []).append(run.session)
    store.update_manifest(state="running", executor=run.executor, workers=run.workers,
                          threads=options.threads, trials_total=run.total,
                          scheduler=run.where.get("scheduler"), seeds=list(suite.seeds),
                          **({"tune_seeds": list(suite.tune.seeds)} if suite.tune else {}))
    if client is not None:
        from bench.execution.dask_cluster import slow_malloc_workers
        slow = slow_malloc_workers(client)
        run.session["workers_with_malloc_trim_threshold"] = slow
        if slow:
            reporter.warning(f"{slow} Dask worker(s) run with MALLOC_TRIM_THRESHOLD_ set (the "
                             "nanny's default), which makes training up to 2.4x slower: start "
                             "workers with --no-nanny, or see docs/performance.md")
    reporter.started(suite.name, run.total, suite.tune is not None, run.to_run, run.workers,
                     run.where.get("scheduler", ""), options.threads, store.dir)


def _execute(run: _Run, store: RunStore, suite: Suite, options: RunOptions, client,
             reporter: RunReporter) -> None:
    """Each stage through the executor: one, or with [tune] the tuning stage, the picks, and
    the evaluation of the picks."""
    slots = None
    if run.executor == "processes" and run.to_run:
        # All the workers now, before the live bar starts its thread: they fork, ready at
        # once (workers.py), and both stages of a [tune] suite share them.
        slots = Slots(run.workers, options.threads, store.suite_sha256).start()
        run.session["worker_start"] = slots.started_with
    stage = _Stage(store, options, client, run.workers, reporter, run.order, run.session, slots)
    with slots or nullcontext(), reporter.progress:
        _stages(stage, run, store, suite, reporter)


def _stages(stage: _Stage, run: _Run, store: RunStore, suite: Suite,
            reporter: RunReporter) -> None:
    """One stage; or with [tune] the tuning stage, the picks, and the evaluation of the picks."""
    stage.run(run.specs, "tune" if suite.tune is not None else "")
    if suite.tune is None:
        return
    picks = pick(suite, pd.read_parquet(store.dir / "trials.parquet"))
    for line in tuning_warnings(picks):
        reporter.warning(line, label="tuning")
    store.update_manifest(tuning={"keys": suite.tune.keys, "metric": suite.tune.metric,
                                  "seeds": list(suite.tune.seeds),
                                  "device": tune_device(suite),
                                  "picks": [p.as_json() for p in picks]})
    evaluation = second_stage(suite, picks)
    run.order += [s.trial_id for s in evaluation]
    stage.run(evaluation, "eval")


# Write errors that stop a run (a full disk, a quota, a read-only or failing disk): the trials
# stored so far are kept, and the run says how to go on.
_CANNOT_WRITE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def _close_run(store: RunStore, order: list[str], session: dict, state: str) -> None:
    """The run's last word in its folder: the tables from every stored part, then the state.
    On a full disk either may fail; the state then says the tables may lag the parts (or, if
    even the manifest cannot be written, readers find a "running" run that no process holds)."""
    try:
        store.consolidate(order)
    except OSError as exc:
        if exc.errno not in _CANNOT_WRITE:
            raise
        state = f"{state}; the tables may lack stored trials ({exc.strerror}): --resume rebuilds them"
    counts = dict(Counter(store.statuses().values()))
    session["finished_at"] = now_utc()
    try:
        store.update_manifest(state=state, finished_at=session["finished_at"],
                              trials_by_status=counts)
    except OSError as exc:
        if exc.errno not in _CANNOT_WRITE:
            raise


class _Stage:
    """Runs one list of trials (a stage) through the executor, storing each as it finishes."""

    def __init__(self, store: RunStore, options: RunOptions, client, workers: int,
                 reporter: RunReporter, order: list[str], session: dict,
                 slots: Slots | None = None):
        self.store, self.options, self.client, self.workers = store, options, client, workers
        self.slots = slots  # the run's worker processes, started before the bar
        self.reporter, self.order, self.session = reporter, order, session
        self.pacer = _Pacer()
        # On a Dask cluster a CUDA trial's device is the workers' concern (cluster.py), not
        # this machine's.
        self.remote_cuda = client is not None and options.scheduler is not None

    def _missing(self, spec: TrialSpec) -> str | None:
        return None if self.remote_cuda else cuda_unavailable_reason(spec.train.device)

    def run(self, specs: list[TrialSpec], label: str) -> None:
        store, options, session = self.store, self.options, self.session
        done = store.done()
        todo = [s for s in specs if s.trial_id not in done]
        session["trials_planned"] += len(todo)
        # Trials whose device is missing are rows too, recorded at once and never dropped.
        skipped = [s for s in todo if self._missing(s)]
        runnable = [s for s in specs if not self._missing(s)]
        # Planned on the whole stage, so that a resumed run packs what its first session packed.
        units = plan(runnable, options.pack, todo={s.trial_id for s in todo})
        packs = [u for u in units if len(u) > 1]
        session["packs"] += len(packs)
        session["trials_packed"] += sum(len(u) for u in packs)
        self._record_skipped(skipped)
        # Skipped trials are rows at once, but not progress: the bar and its ETA count the
        # trials that train.
        progress = self.reporter.stage(label, label or store.manifest["suite"]["name"],
                                       len(todo) - len(skipped))
        pack_ends = {u[-1].trial_id for u in units if len(u) > 1}

        def on_result(spec: TrialSpec, result: TrialResult) -> None:
            store.add(result)
            # The tables follow the parts closely, at a bounded cost; a pack's members arrive
            # together, so its last one brings the tables up to date whatever the pacer says.
            if self.pacer.due() or spec.trial_id in pack_ends:
                with self.pacer.timed():
                    store.consolidate(self.order)
            progress.trial_done(spec, result)

        # a log prints rows, not shares
        bar = progress.unit_progress if self.reporter.live else None
        self._dispatch(units, on_result, bar)
        store.consolidate(self.order)

    def _record_skipped(self, skipped: list[TrialSpec]) -> None:
        """Trials with no device here: stored one by one, said in one line per reason."""
        by_reason: dict[str, list[TrialSpec]] = {}
        for spec in skipped:
            self.store.add(run_trial(spec, self.options.threads))
            by_reason.setdefault(self._missing(spec), []).append(spec)
        if skipped:
            self.store.consolidate(self.order)
        self.reporter.skipped(by_reason)

    def _dispatch(self, units, on_result, bar) -> None:
        """The units to their executor: Dask, the process pool, or this process."""
        threads = self.options.threads
        cpu = [u for u in units if not u[0].train.device.startswith("cuda")]
        cuda = [u for u in units if u[0].train.device.startswith("cuda")]
        if self.client is not None:
            from bench.execution.dask_cluster import run_dask
            run_dask(units, self.client, threads, on_result,
                     local_cuda=self.options.cluster is not None,
                     suite_sha256=self.store.suite_sha256)
            return
        if self.slots is not None:
            self.slots.run(cpu, on_result, bar)
        elif self.workers > 1 and len(cpu) > 1:
            run_processes(cpu, self.workers, threads, on_result, bar, self.store.suite_sha256)
        else:
            run_serial(cpu, threads, on_result, bar, self.store.suite_sha256)
        # One GPU unit at a time: timings from a shared GPU mean nothing.
        run_serial(cuda, threads, on_result, bar)


class _Pacer:
    """Rewrite the tables after every trial while that is cheap, backing off as they grow.

    Rewriting costs O(rows stored), so a long run would pay O(n^2). A rewrite is due once the
    time since the last one is at least ``1 / BUDGET`` times what the last one took: the tables
    never cost more than about 5% of the coordinator's time, and for the suites here (a
    rewrite of ~10-50 ms, trials of seconds) that still means after every trial.
    """

    BUDGET = 0.05

    def __init__(self) -> None:
        self._last_end = -math.inf
        self._last_cost = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last_end >= self._last_cost / self.BUDGET

    @contextmanager
    def timed(self):
        start = time.monotonic()
        yield
        self._last_end = time.monotonic()
        self._last_cost = self._last_end - start


def _open_store(suite: Suite, options: RunOptions, reporter: RunReporter) -> RunStore:
    if options.resume is None:
        return RunStore.create(options.out, suite.name, {
            "bench_version": __version__,
            "suite": _suite_entry(suite),
            "machine": machine()})
    store = RunStore.open(options.resume)  # the lock first: no one else is writing now
    try:
        replaced = check_resume(store.manifest, suite, str(options.resume), options.extend)
    except BaseException:
        store.close()
        raise
    if store.lock is not None and store.lock.stale:
        reporter.line(f"note: took over the lock left by {describe_holder(store.lock.stale)}, "
                      "which is no longer running")
    for part, reason in store.quarantined:
        reporter.warning(f"{part}: {reason} (moved to parts/{QUARANTINE}/; the trial runs "
                         "again)", label="quarantined")
    if replaced is not None:
        store.manifest.setdefault("suite_history", []).append(replaced)
        store.manifest["suite"] = _suite_entry(suite)
        reporter.line(f"--extend: {suite.source} adds to the suite this run was run with; "
                      "the stored suite is kept in the manifest's suite_history")
        store.write_manifest()
    return store


def _suite_entry(suite: Suite) -> dict:
    return {"name": suite.name, "source": suite.source, "sha256": suite.sha256,
            "text": suite.text}
