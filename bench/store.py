"""The run folder: one atomic part per finished trial, consolidated into the three tables.

    results/<suite>/<run-id>/
        manifest.json                 provenance, suite text and hash, schema version
        trials.parquet curves.parquet layers.parquet
        parts/<trial_id>/             trial.parquet curves.parquet layers.parquet model.pt

A part is written to a temporary folder and renamed into place, so a crash or Ctrl-C at any
moment leaves each trial either wholly stored or absent. The three tables are rebuilt from the
parts, so they can always be recovered (``--resume`` does it first).
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
import pyarrow.parquet as pq
import torch

from .errors import UserError
from .provenance import now_utc
from .train import TrialResult

SCHEMA_VERSION = 1
TABLES = ("trials", "curves", "layers")
# Kept when resuming: trials with these statuses are not run again.
DONE = ("ok", "diverged")
_INT_COLUMNS = {"seed", "epoch", "layer", "diverged_epoch", "epochs_to_target",
                "peak_memory_bytes", "n_params", "threads"}
_LIST_COLUMNS = {"model.hidden"}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_STRING_COLUMNS = {"error", "status", "variant", "suite", "trial_id", "worker", "device_name"}


def _arrow(df: pd.DataFrame) -> pa.Table:
    """DataFrame -> Arrow with the contract's types: list<int64> widths, int64s, plain strings."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for f in table.schema:
        t = f.type
        if f.name in _LIST_COLUMNS:
            t = pa.list_(pa.int64())
        elif f.name in _INT_COLUMNS:
            t = pa.int64()
        elif pa.types.is_large_string(t) or (pa.types.is_null(t) and (
                f.name in _STRING_COLUMNS or f.name.endswith(".metric"))):
            t = pa.string()
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


def write_table(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(_arrow(df), tmp)
    os.replace(tmp, path)


def read_table(path: Path) -> pd.DataFrame:
    # Arrow int64 with nulls would become float64 in pandas; keep them as nullable Int64.
    return pq.read_table(path).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


class RunStore:
    """Owns one run folder. Only the coordinating process writes to it."""

    def __init__(self, run_dir: Path, manifest: dict):
        self.dir = run_dir
        self.parts = run_dir / "parts"
        self.manifest = manifest
        self._frames: dict[str, dict[str, pd.DataFrame]] = {t: {} for t in TABLES}
        self._load_parts()

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, out_root: Path, suite_name: str, manifest: dict) -> RunStore:
        base = out_root / suite_name
        base.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for n in range(1000):
            run_id = stamp if n == 0 else f"{stamp}-{n}"
            try:
                (base / run_id).mkdir()
                break
            except FileExistsError:
                continue
        run_dir = base / run_id
        (run_dir / "parts").mkdir()
        store = cls(run_dir, {"schema_version": SCHEMA_VERSION, "run_id": run_id,
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
        for part in sorted(self.parts.iterdir()):
            if part.name.startswith(".") or not (part / "trial.parquet").is_file():
                continue  # an unfinished temporary part from a crash: the trial runs again
            for table, name in zip(TABLES, ("trial", "curves", "layers")):
                file = part / f"{name}.parquet"
                if file.is_file():
                    self._frames[table][part.name] = read_table(file)

    # -- state --------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        return {tid: str(df["status"].iloc[0]) for tid, df in self._frames["trials"].items()}

    def done(self) -> set[str]:
        return {tid for tid, status in self.statuses().items() if status in DONE}

    # -- writing ------------------------------------------------------------------------------

    def add(self, result: TrialResult) -> None:
        """Store one finished trial at once and atomically."""
        row = dict(result.trial)
        trace = row.pop("traceback", None)
        tid = row["trial_id"]
        frames = {"trials": pd.DataFrame([row]), "curves": pd.DataFrame(result.curves),
                  "layers": pd.DataFrame(result.layers)}
        tmp = Path(tempfile.mkdtemp(dir=self.parts, prefix=f".{tid}."))
        try:
            for table, name in zip(TABLES, ("trial", "curves", "layers")):
                if len(frames[table]) or table == "trials":
                    pq.write_table(_arrow(frames[table]), tmp / f"{name}.parquet")
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
        for table, name in zip(TABLES, ("trial", "curves", "layers")):
            self._frames[table].pop(tid, None)
            if (final / f"{name}.parquet").is_file():
                self._frames[table][tid] = read_table(final / f"{name}.parquet")

    def consolidate(self, order: list[str] | None = None) -> dict[str, pd.DataFrame]:
        """Rewrite the three tables from the parts; ``order`` is the grid's trial order."""
        rank = {tid: i for i, tid in enumerate(order or [])}
        ids = sorted(self._frames["trials"], key=lambda t: (rank.get(t, len(rank)), t))
        out = {}
        for table in TABLES:
            frames = [self._frames[table][t] for t in ids if t in self._frames[table]]
            frames = [f for f in frames if len(f)]
            df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            if table != "trials" and len(df):
                first = ["trial_id", "epoch"] + (["layer"] if table == "layers" else [])
                df = df[first + [c for c in df.columns if c not in first]]
            write_table(df, self.dir / f"{table}.parquet")
            out[table] = df
        return out

    def write_manifest(self) -> None:
        atomic_write_bytes(self.dir / "manifest.json",
                           (json.dumps(self.manifest, indent=2, default=str) + "\n").encode())

    def update_manifest(self, **fields: Any) -> None:
        self.manifest.update(fields)
        self.write_manifest()
