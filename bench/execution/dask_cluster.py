"""The Dask executor: a run's units on a ``dask.distributed`` cluster.

``--scheduler tcp://HOST:PORT`` uses an existing cluster; ``--cluster local[:N]`` starts a
``LocalCluster`` of N single-threaded worker processes for the run and closes it after.
Workers only compute: each unit (one trial, or a pack) is one task returning its results
encoded, ready to store (``workers.run_encoded``), and the coordinator writes each the moment
it arrives, with the same atomic per-trial writes as a local run.

- A worker that dies mid-task: Dask reschedules the task on another worker (the result still
  arrives once). After ``distributed.scheduler.allowed-failures`` deaths the trials are failed
  rows, as with the local pool.
- CUDA units ask for the worker resource ``GPU`` (``dask worker --resources GPU=1``): one unit
  per GPU at a time, and never on a CPU-only worker. With no such worker they are skipped rows
  with that reason. A local cluster has no GPU workers: its CUDA units run one at a time in
  the coordinator, as with ``--workers``.
- Losing the scheduler ends the run with ``SchedulerLost`` as soon as the client drops the
  connection (it cancels every future then), and so does ``LOST_AFTER_S`` without any worker
  able to run what is left; every trial stored by then stays stored.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager, suppress

from bench import schema
from bench.errors import UserError
from bench.execution.local import OnResult, Unit, _deliver, run_serial
from bench.execution.workers import run_encoded
from bench.training.result import not_trained

# to reach a scheduler at the start (ACTBENCH_DASK_CONNECT_TIMEOUT_S overrides)
CONNECT_TIMEOUT_S = float(os.environ.get("ACTBENCH_DASK_CONNECT_TIMEOUT_S", 10))
# without a worker able to run what is left for this long, the run gives up
# (ACTBENCH_DASK_LOST_AFTER_S overrides)
LOST_AFTER_S = float(os.environ.get("ACTBENCH_DASK_LOST_AFTER_S", 30))
POLL_S = 1.0
# Units on the scheduler at once: enough to keep a large cluster busy, few enough that the
# scheduler and each poll's wait stay small however long the sweep.
MAX_IN_FLIGHT = int(os.environ.get("ACTBENCH_DASK_MAX_IN_FLIGHT", 256))

NO_GPU_WORKER = ("no Dask worker declares a GPU resource (start GPU workers with "
                 "`dask worker ADDRESS --nthreads 1 --resources GPU=1`)")


class SchedulerLost(Exception):
    """The scheduler went away mid-run; the finished trials are stored."""


def parse_cluster(text: str) -> int:
    """``local`` or ``local:N`` -> the number of workers (``local``: one per CPU core)."""
    kind, _, count = text.partition(":")
    if kind != "local" or (count and not (count.isdigit() and int(count) > 0)):
        raise UserError(f"--cluster {text!r}: expected local or local:N with N a positive "
                        "integer, e.g. local:2")
    return int(count) if count else max(1, os.cpu_count() or 1)


def _dask():
    try:
        import distributed
    except ImportError:
        raise UserError("--scheduler and --cluster need Dask: pip install -e \".[dask]\"") from None
    return distributed


@contextmanager
def connect(scheduler: str | None, cluster: str | None) -> Iterator:
    """A connected ``distributed.Client``; the local cluster, if one was started, closes after."""
    distributed = _dask()
    local = client = None
    try:
        if cluster is not None:
            n_workers = parse_cluster(cluster)
            import dask
            # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers; setting it at
            # all turns off glibc's adaptive thresholds, every multi-MB tensor is then mapped
            # afresh, and a spiral epoch takes 2.4x as long (10.6 ms against 4.4 ms, measured).
            environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
            environ.pop("MALLOC_TRIM_THRESHOLD_", None)
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                local = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                                 processes=True, dashboard_address=None)
            client = distributed.Client(local)
        else:
            client = _client(distributed, scheduler)
        yield client
    finally:  # a failure to close is not the run's news: the run's own error (or none) is
        with suppress(Exception):
            if client is not None:
                client.close(timeout=5)
        with suppress(Exception):
            if local is not None:
                local.close(timeout=5)


def _client(distributed, scheduler: str):
    try:
        return distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise UserError(f"--scheduler {scheduler}: no Dask scheduler answered within "
                        f"{CONNECT_TIMEOUT_S:g} s ({type(exc).__name__}: {exc}). Is it "
                        "running, and is the address tcp://HOST:PORT?") from None
    except Exception as exc:  # a malformed address, or a scheme that needs settings (tls://)
        raise UserError(f"--scheduler {scheduler}: cannot connect ({type(exc).__name__}: "
                        f"{exc}); expected an address like tcp://HOST:PORT") from None


def slow_malloc_workers(client) -> int:
    """Workers whose environment pins MALLOC_TRIM_THRESHOLD_ (Dask's nanny default), which
    makes training with multi-MB tensors up to 2.4x slower (see ``connect``)."""
    try:
        found = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    except Exception:  # a worker that cannot answer is not this check's business
        return 0
    return sum(value is not None for value in found.values())


def describe(client) -> dict:
    """The manifest's record of the cluster."""
    try:
        info = client.scheduler_info(n_workers=-1)  # all workers (some versions default to 5)
    except TypeError:
        info = client.scheduler_info()
    workers = info.get("workers", {})
    return {"scheduler": info.get("address") or str(client.scheduler.address),
            "workers": len(workers),
            "gpu_workers": sum(1 for w in workers.values()
                               if (w.get("resources") or {}).get("GPU", 0) >= 1),
            # trials seed torch's process-wide RNG: two at once in one worker would interfere
            "multi_threaded_workers": sum(1 for w in workers.values() if w.get("nthreads", 1) > 1)}


def check_workers(client) -> None:
    """Refuse workers that run several tasks at once: trials seed torch's process-wide RNG,
    so two side by side in one process would change each other's numbers."""
    where = describe(client)
    if where["multi_threaded_workers"]:
        raise UserError(f"{where['multi_threaded_workers']} Dask worker(s) at "
                        f"{where['scheduler']} run several tasks at once (--nthreads > 1); "
                        "trials seed torch's process-wide RNG, so their numbers would depend "
                        "on each other. Start workers with --nthreads 1.")


def run_dask(units: list[Unit], client, threads: int, on_result: OnResult,
             local_cuda: bool = False, suite_sha256: str | None = None) -> None:
    """Run ``units`` on the cluster; ``local_cuda``: CUDA units run here instead (a local
    cluster), one at a time, after the cluster's units are done. The Dask workers encode their
    results (``workers.run_encoded``, with ``suite_sha256``), so the coordinator only writes
    them."""
    distributed = _dask()
    if describe(client)["workers"] == 0:  # a batch system's workers may still be queued
        with suppress(TimeoutError, distributed.TimeoutError):
            client.wait_for_workers(1, timeout=LOST_AFTER_S)
    # CUDA routing follows the GPU workers connected now (start them before the run)
    gpu = describe(client)["gpu_workers"] > 0
    futures: dict = {}
    here: list[Unit] = []
    remote: list[Unit] = []
    for unit in units:
        cuda = unit[0].train.device.startswith("cuda")
        if cuda and local_cuda:
            here.append(unit)
            continue
        if cuda and not gpu:
            _deliver(unit, [not_trained(spec, threads, schema.SKIPPED, NO_GPU_WORKER, worker=None)
                            for spec in unit], on_result)
            continue
        remote.append(unit)
    queue = iter(remote)

    def submit(room: int) -> list:
        """Up to ``room`` more units onto the cluster: a sweep of 10,000 trials is never 10,000
        futures at once on the scheduler, nor in each poll's wait."""
        out = []
        for unit in itertools.islice(queue, max(0, room)):
            cuda = unit[0].train.device.startswith("cuda")
            future = client.submit(run_encoded, unit, threads, suite_sha256, pure=False,
                                   key=f"actbench-{unit[0].trial_id}-{uuid.uuid4().hex[:8]}",
                                   resources={"GPU": 1} if cuda else None)
            futures[future] = unit
            out.append(future)
        return out

    submit(MAX_IN_FLIGHT)
    try:
        _collect(distributed, client, futures, threads, on_result, submit)
        run_serial(here, threads, on_result)  # as with --workers: after the CPU trials
    except BaseException:
        with suppress(Exception):  # Ctrl-C, or the scheduler lost: stop the rest
            client.cancel(list(futures), force=True)
        raise


def _collect(distributed, client, futures: dict, threads: int, on_result: OnResult,
             submit=None) -> None:
    """Store each unit's results as its future completes. Stops with SchedulerLost when the
    client loses the scheduler (it then cancels every future), or when for LOST_AFTER_S no
    worker could run what is left (every worker gone, or the only GPU workers)."""
    pending = set(futures)
    address = describe(client)["scheduler"]
    stalled_since: float | None = None
    while pending:
        try:
            done, rest = distributed.wait(list(pending), timeout=POLL_S,
                                          return_when="FIRST_COMPLETED")
        except (TimeoutError, distributed.TimeoutError):
            done, rest = set(), pending
        except Exception as exc:
            raise _lost(exc, address, len(pending)) from None
        pending = set(rest)
        for future in done:
            unit = futures.pop(future)  # its results go to the store, not held here
            _deliver(unit, _results(future, unit, threads, address, len(pending)), on_result)
        if submit is not None and done:
            pending |= set(submit(MAX_IN_FLIGHT - len(pending)))
        if done or not pending:
            stalled_since = None
            continue
        if can_run(client, [futures[f] for f in pending]):
            stalled_since = None
        else:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > LOST_AFTER_S:
                raise SchedulerLost(f"no Dask worker that can run the {len(pending)} units left "
                                    f"has been connected to {address} for {LOST_AFTER_S:g} s")


def can_run(client, units: list[Unit]) -> bool:
    """Some worker can take some of ``units`` (a GPU worker for CUDA ones)."""
    try:
        where = describe(client)
    except Exception:
        return True  # cannot tell; the client's own failure handling will speak
    if any(not u[0].train.device.startswith("cuda") for u in units):
        return where["workers"] > 0
    return where["gpu_workers"] > 0


def _lost(exc: BaseException, address: str, unfinished: int) -> SchedulerLost:
    text = str(exc).strip().splitlines()
    reason = next((line for line in text if "reason" in line.lower()), text[-1] if text else "")
    return SchedulerLost(f"lost the Dask scheduler {address} ({type(exc).__name__}: {reason}); "
                         f"{unfinished} units were not finished")


def _results(future, unit: Unit, threads: int, address: str, unfinished: int) -> list:
    """The unit's results (encoded by the worker); failed rows when its task failed (a worker
    died on it too often, or an error outside a trial). A cancelled future or a broken
    connection means the scheduler is gone: that is SchedulerLost, not a failed trial."""
    try:
        return future.result()
    except (OSError, CancelledError) as exc:
        raise _lost(exc, address, unfinished + 1) from None
    except Exception as exc:
        if "cancelled" in type(exc).__name__.lower() or future.status == "cancelled":
            raise _lost(exc, address, unfinished + 1) from None
        return [not_trained(spec, threads, schema.FAILED, f"{type(exc).__name__}: {exc}", len(unit),
                            worker=None) for spec in unit]

