"""Execution: a suite's trials trained, and each result stored the moment it arrives.

``run_suite`` (``run``) is the coordinator of ``bench run``: it plans the trials (what is stored
already, packs, stages), opens the run folder, feeds an executor and closes the run.
Executors move units of trials to the training loop and results back: ``local`` (in this
process, or a pool of worker processes, one slot per worker) and ``dask_cluster`` (a
``dask.distributed`` cluster). ``resume`` decides whether a suite may go on in a run folder.

The names load on first use, so that a worker process imports only the executor it runs.
"""

import importlib

_EXPORTS = {"run_suite": "run", "RunOptions": "run", "Interrupted": "run", "Stopped": "run",
            "run_serial": "local", "run_processes": "local", "run_dask": "dask_cluster",
            "check_resume": "resume"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"bench.execution.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'bench.execution' has no attribute {name!r}")
