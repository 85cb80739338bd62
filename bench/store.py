"""The run folder: one atomic part per finished trial, consolidated into the three tables.

    results/<suite>/<run-id>/
        manifest.json                 provenance, suite text and hash, schema version
        trials.parquet curves.parquet layers.parquet
        parts/<trial_id>/             trial.parquet curves.parquet layers.parquet model.pt

A part is written to a temporary folder and renamed into place, so a crash or Ctrl-C at any
moment leaves each trial either wholly stored or absent. The three tables are rewritten (each
atomically) after every stored trial, so after ``kill -9`` they lack at most the trials stored
in the instant before it; the parts are the source of truth, and ``--resume`` rebuilds the
tables from them first.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from . import ensemble
from .errors import UserError
from .provenance import now_utc
from .train import TrialResult

SCHEMA_VERSION = 1
TABLES = ("trials", "curves", "layers")
_PART_FILES = {"trials": "trial", "curves": "curves", "layers": "layers"}  # names inside a part
# Kept when resuming: trials with these statuses are not run again.
DONE = ("ok", "diverged")

# Columns whose type must not depend on the values a run happened to produce (a column that is
# null in every row would otherwise be Arrow's null type).
_TYPES = {
    **dict.fromkeys(["seed", "epoch", "layer", "diverged_epoch", "epochs_to_target",
                     "peak_memory_bytes", "n_params", "threads"], pa.int64()),
    **dict.fromkeys(["trial_id", "suite", "variant", "stage", "status", "error", "worker",
                     "device_name", "started_at", "train.target.metric"], pa.string()),
    "train.target.value": pa.float64(),
    "model.hidden": pa.list_(pa.int64()),
    **dict.fromkeys(["fit_probe_inside", "fit_probe_outside"], pa.list_(pa.float64())),
}
# The schema of a table with no rows (every trial skipped, or no hidden layers).
_EMPTY = {
    "trials": ["trial_id", "suite", "variant", "seed", "status", "error", "final_loss",
               "final_accuracy", "best_loss", "epochs_to_target", "dead_fraction", "grad_norm",
               "time_total_s", "time_per_epoch_s", "samples_per_s", "peak_memory_bytes",
               "device_name", "threads", "worker"],
    "curves": ["trial_id", "epoch", "loss", "accuracy", "grad_norm"],
    "layers": ["trial_id", "epoch", "layer", "dead_fraction", "saturated_fraction",
               "activation_mean", "activation_std", "weight_grad_norm", "backprop_grad_std"],
}


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file is for others to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_arrow(rows: list[dict]) -> pa.Table:
    """Rows -> Arrow with the contract's types: list<int64> widths, int64s, plain strings."""
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    fields = []
    for f in table.schema:
        t = _TYPES.get(f.name, f.type)
        if pa.types.is_large_string(t):
            t = pa.string()
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


def _empty(table: str) -> pa.Table:
    return pa.table({c: pa.array([], _TYPES.get(c, pa.float64())) for c in _EMPTY[table]})


def write_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class RunStore:
    """Owns one run folder. Only the coordinating process writes to it."""

    def __init__(self, run_dir: Path, manifest: dict):
        self.dir = run_dir
        self.parts = run_dir / "parts"
        self.manifest = manifest
        self._parts: dict[str, dict[str, pa.Table]] = {t: {} for t in TABLES}
        self._merged: dict[str, pa.Table | None] = dict.fromkeys(TABLES)
        self._load_parts()

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, out_root: Path, suite_name: str, manifest: dict) -> RunStore:
        base = out_root / suite_name
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        try:
            base.mkdir(parents=True, exist_ok=True)
            for n in range(1000):
                run_dir = base / (stamp if n == 0 else f"{stamp}-{n}")
                try:
                    run_dir.mkdir()
                    break
                except FileExistsError:
                    continue
            (run_dir / "parts").mkdir()
        except OSError as exc:
            raise UserError(f"cannot create the run folder: {exc.strerror}",
                            source=str(exc.filename or base)) from None
        store = cls(run_dir, {"schema_version": SCHEMA_VERSION, "run_id": run_dir.name,
                              "started_at": now_utc(), **manifest})
        store.write_manifest()
        return store

    @classmethod
    def open(cls, run_dir: Path) -> RunStore:
        path = run_dir / "manifest.json"
        if not path.is_file():
            raise UserError("not a run folder (no manifest.json)", source=str(run_dir))
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"manifest.json is not valid JSON: {exc}", source=str(run_dir)) from None
        (run_dir / "parts").mkdir(exist_ok=True)
        return cls(run_dir, manifest)

    def _load_parts(self) -> None:
        if not self.parts.is_dir():
            return
        for leftover in self.dir.glob(".*.tmp"):  # a table write cut short by a crash
            leftover.unlink(missing_ok=True)
        for part in sorted(self.parts.iterdir()):
            if part.name.startswith("."):  # an unfinished part from a crash: the trial runs again
                shutil.rmtree(part, ignore_errors=True)
                continue
            if not (part / "trial.parquet").is_file():
                continue
            for table, name in _PART_FILES.items():
                file = part / f"{name}.parquet"
                if file.is_file():
                    self._parts[table][part.name] = pq.read_table(file)

    # -- state --------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        return {tid: t.column("status")[0].as_py() for tid, t in self._parts["trials"].items()}

    def done(self) -> set[str]:
        return {tid for tid, status in self.statuses().items() if status in DONE}

    # -- writing ------------------------------------------------------------------------------

    def add(self, result: TrialResult) -> None:
        """Store one finished trial at once and atomically."""
        row = dict(result.trial)
        trace = row.pop("traceback", None)
        tid = row["trial_id"]
        tables = {"trials": to_arrow([row])}
        for table, rows in (("curves", result.curves), ("layers", result.layers)):
            if rows:
                tables[table] = to_arrow(rows)
        tmp = Path(tempfile.mkdtemp(dir=self.parts, prefix=f".{tid}."))
        try:
            for table, arrow in tables.items():
                pq.write_table(arrow, tmp / f"{_PART_FILES[table]}.parquet")
            if result.state_dict is not None:
                torch.save(result.state_dict, tmp / "model.pt")
            if trace:
                (tmp / "traceback.txt").write_text(trace)
            final = self.parts / tid
            if final.exists():  # a failed or skipped trial that ran again on --resume
                stale = self.parts / f".stale.{tid}.{os.getpid()}"
                final.rename(stale)
                tmp.rename(final)
                shutil.rmtree(stale, ignore_errors=True)
            else:
                tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for table in TABLES:
            replaced = self._parts[table].pop(tid, None) is not None
            new = tables.get(table)
            if new is not None:
                self._parts[table][tid] = new
            merged = self._merged[table]
            if replaced or merged is None:
                self._merged[table] = None  # rebuilt from the parts when next needed
            elif new is not None:
                merged = pa.concat_tables([merged, new], promote_options="permissive")
                # one chunk per trial makes every later write slower; merge them now and then
                self._merged[table] = merged.combine_chunks() if merged.column(0).num_chunks > 64 else merged

    def consolidate(self, order: list[str] | None = None) -> None:
        """Rewrite the three tables from the stored trials, in ``order`` (the grid's); the
        trials table with its grid points' ensemble spread (``ensemble.COLUMNS``)."""
        for table in TABLES:
            merged = self._merged[table]
            if merged is None:
                parts = list(self._parts[table].values())
                merged = (pa.concat_tables(parts, promote_options="permissive") if parts
                          else _empty(table))
                self._merged[table] = merged
            if table == "trials":  # an ensemble's spread is a property of its grid point
                merged = ensemble.with_spread(merged)
            write_table(_in_order(_columns_first(merged, table), order or []),
                        self.dir / f"{table}.parquet")

    def write_manifest(self) -> None:
        atomic_write_bytes(self.dir / "manifest.json",
                           (json.dumps(self.manifest, indent=2, default=str) + "\n").encode())

    def update_manifest(self, **fields: Any) -> None:
        self.manifest.update(fields)
        self.write_manifest()


def _columns_first(table: pa.Table, name: str) -> pa.Table:
    """The identifying columns first, whatever order the parts were built in."""
    first = {"trials": ["trial_id"], "curves": ["trial_id", "epoch"],
             "layers": ["trial_id", "epoch", "layer"]}[name]
    first = [c for c in first if c in table.column_names]
    return table.select(first + [c for c in table.column_names if c not in first])


def _in_order(table: pa.Table, order: list[str]) -> pa.Table:
    """Rows sorted by the grid order of their trial (unknown trials last), stable within one."""
    if table.num_rows == 0 or "trial_id" not in table.column_names:
        return table
    rank = pc.index_in(table.column("trial_id"), value_set=pa.array(order, pa.string()))
    rank = pc.fill_null(rank, len(order))
    keyed = table.append_column("__rank", rank).append_column(
        "__row", pa.array(range(table.num_rows), pa.int64()))
    indices = pc.sort_indices(keyed, [("__rank", "ascending"), ("trial_id", "ascending"),
                                      ("__row", "ascending")])
    return table.take(indices)
