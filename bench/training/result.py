"""What a trial produces: its rows for the three tables and its weights (``TrialResult``).

``trial_row`` is a trial's row before it runs (its config, its metrics empty); the loop fills
it, and a trial that never trains (skipped, failed) is ``not_trained``: its row says why. The
columns are the results schema's (``bench/schema.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench import schema
from bench.provenance import worker_id
from bench.training.spec import TrialSpec
from bench.training.tasks import task_arguments


@dataclass
class TrialResult:
    """One trial's rows for the three tables, and its final weights (CPU tensors)."""

    trial: dict
    curves: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    state_dict: dict | None = None
    epoch_times: list[float] = field(default_factory=list)  # wall time of each training epoch

    @property
    def status(self) -> str:
        return self.trial["status"]


def trial_row(spec: TrialSpec, threads: int, pack_size: int = 1) -> dict:
    """The trials-table row of ``spec`` before it runs: config filled, metrics empty.
    ``pack_size``: trials trained together as one packed model (1: alone)."""
    return {"trial_id": spec.trial_id, "suite": spec.suite, "variant": spec.variant,
            "stage": spec.stage, "seed": spec.seed, **spec.config, "status": "ok", "error": None,
            "diverged_epoch": None, **{m: math.nan for m in schema.TRIAL_METRICS},
            "epochs_to_target": None, "peak_memory_bytes": None, "n_params": None,
            "lr_effective": spec.train.lr_effective, "device_name": None,
            "threads": threads, "pack_size": pack_size, "worker": worker_id(),
            "task_args": task_arguments(spec.task),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds")}


def not_trained(spec: TrialSpec, threads: int, status: str, error: str, pack_size: int = 1,
                **columns) -> TrialResult:
    """The result of a trial that did not train (skipped, failed): its row says why."""
    row = trial_row(spec, threads, pack_size)
    row.update(status=status, error=error, **columns)
    return TrialResult(row)
