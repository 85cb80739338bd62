"""Worker processes: one process, one pipe, one unit at a time.

A :class:`Worker` is a child process that receives a unit (a list of TrialSpecs) on its pipe,
runs it with ``run_pack``, encodes the results ready to store (``writer.encode``) and sends
them back. The coordinator waits on the pipes and on the processes' sentinels together
(``multiprocessing.connection.wait``), so a result and a death are both seen at once, with no
thread in the coordinator: a pipe that closes without an answer is the worker's death, and
the death of the unit it held alone.

How a worker starts (:func:`start_method`):

- ``fork`` where that is safe: on Linux, from a coordinator that has no other thread running
  and has not initialised CUDA. The child then shares the coordinator's imports (torch,
  pandas, pyarrow), so it is ready in milliseconds rather than the second or more that a
  fresh interpreter takes to import torch; on 2 cores that second was most of a short sweep's
  wall time. The run starts its workers before anything else in it starts a thread (the live
  progress bar draws from one), so a run from the command line forks.
- ``spawn`` otherwise: a notebook or an embedding program (their threads may hold locks that
  a forked child would inherit locked), macOS, or a process with a CUDA context (which a
  forked child cannot use). A worker started to replace a dead one, once the bar is drawing,
  is spawned too.

Both give the same results: a trial's numbers depend on its spec and its thread count, not on
the process it ran in (tests/execution/test_workers.py runs the same trials both ways).

Each worker asks Linux for SIGKILL when its coordinator goes (``PR_SET_PDEATHSIG``), and a
watchdog thread exits it when its parent pid changes (portable, and it covers a parent gone
before the request was made).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

import torch

from bench.results.writer import encode
from bench.training.loop import run_pack

_WATCHDOG_S = 1.0  # how often a worker checks that its coordinator is still there
_CLOSE_S = 30.0  # how long a worker asked to finish may take before it is killed
START_METHODS = ("auto", "fork", "spawn")


def start_method(requested: str = "auto") -> str:
    """``fork`` where a forked child is safe and fast (see the module's docstring), else
    ``spawn``; an explicit ``fork`` or ``spawn`` is taken as asked."""
    if requested not in START_METHODS:
        raise ValueError(f"start method {requested!r}: valid are {', '.join(START_METHODS)}")
    if requested != "auto":
        return requested
    safe = (sys.platform.startswith("linux") and threading.active_count() == 1
            and not torch.cuda.is_initialized())
    return "fork" if safe else "spawn"


class WorkerDied(Exception):
    """The worker's process ended (a crash, ``os._exit``, a kill) without answering."""


class Worker:
    """A worker process and the coordinator's end of its pipe."""

    def __init__(self, threads: int, suite_sha256: str | None = None, method: str = "auto"):
        self.method = start_method(method)
        context = multiprocessing.get_context(self.method)
        # A lock-free double: one writer (the worker), one reader (here); a torn read is
        # impossible for an aligned double, and a stale one only delays the bar.
        self.progress = context.Value("d", 0.0, lock=False)
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, name="actbench-worker",
            args=(child, threads, suite_sha256, os.getpid(), self.progress))
        self.process.start()
        child.close()  # this end is the worker's: when it dies, recv here sees the pipe close

    def submit(self, unit: list) -> None:
        """Hand the worker a unit (it runs them in the order given, answering each before it
        takes the next); raises WorkerDied if it is gone already."""
        try:
            self.conn.send(unit)
        except OSError as exc:  # BrokenPipeError: the worker died before it took the unit
            raise WorkerDied(str(exc)) from None

    def answer(self) -> list:
        """The unit's encoded results, once ``ready`` says so. Raises WorkerDied if the worker
        died with the unit, and re-raises an exception that escaped ``run_pack`` in it."""
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            raise WorkerDied(f"exit code {self._exitcode()}") from None
        if kind == "raised":
            raise payload
        return payload

    def _exitcode(self) -> int | None:
        self.process.join(timeout=1)
        return self.process.exitcode

    def close(self) -> None:
        """Ask the worker to finish, and wait for it."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=_CLOSE_S)
        if self.process.is_alive():  # held up at exit (a thread of user code, say)
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        """End the worker now; a unit it held is lost."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def ready(workers: list[Worker], timeout: float | None) -> list[Worker]:
    """The workers among ``workers`` with an answer waiting or a process that ended."""
    handles = {}
    for worker in workers:
        handles[worker.conn] = worker
        handles[worker.process.sentinel] = worker
    found = multiprocessing.connection.wait(list(handles), timeout)
    return list(dict.fromkeys(handles[h] for h in found))


# -- in the worker -----------------------------------------------------------------------------

def run_encoded(unit: list, threads: int, suite_sha256: str | None, report=None) -> list:
    """``run_pack``'s results encoded where they ran, ready to store (``writer.encode``), so
    that the coordinator only writes them: what a worker process or a Dask worker returns."""
    return [encode(r, suite_sha256) for r in run_pack(unit, threads, report)]


def _serve(conn: Connection, threads: int, suite_sha256: str | None, coordinator: int,
           progress) -> None:
    # Ctrl-C goes to the whole process group; the coordinator alone decides what to do. A
    # forked worker inherits the coordinator's handlers too: `bench run` turns SIGTERM into
    # KeyboardInterrupt, but for a worker it is the coordinator's ``kill``, and ends it at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(threads)
    _die_with(coordinator)

    def report(share: float) -> None:
        progress.value = share

    while True:
        try:
            unit = conn.recv()
        except EOFError:  # the coordinator closed its end
            return
        if unit is None:
            return
        progress.value = 0.0  # not the last unit's share
        try:
            answer = ("ok", run_encoded(unit, threads, suite_sha256, report))
        except Exception as exc:  # reaches the coordinator, as a pool's future would
            answer = ("raised", _picklable(exc))
        conn.send(answer)


def _picklable(exc: Exception) -> Exception:
    import pickle

    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return RuntimeError("".join(traceback.format_exception(exc)))


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
