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

What protects a run folder beyond that:

- Every file is written under a temporary name that carries its writer's host and pid
  (``.<name>.<host>.<pid>.<random>.tmp``), flushed to disk (fsync) and renamed into place, and
  the folder holding it is fsynced after the rename: a power cut leaves the old file or the
  new, never a short one. A writer removes its own temporaries when a write fails; the next
  writer removes those whose process is gone. Readers delete nothing.
- One writer at a time: the store holds the run folder's lock (runlock.py) from opening to
  :meth:`RunStore.close`.
- A part that cannot be read back (a truncated or empty Parquet file, a folder without a
  trial, a trial of another suite) is moved to ``parts/.quarantine/<trial_id>`` with a
  ``reason.txt``, named in one line, and its trial runs again; ``report`` and ``check`` say
  how many were set aside.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from bench import schema
from bench.errors import UserError
from bench.provenance import now_utc
from bench.results import ensemble
from bench.results.folder import QUARANTINE, read_manifest
from bench.results.lock import HOST, RunLock, pid_alive
from bench.training.result import TrialResult

SCHEMA_VERSION = 1
TABLES = schema.TABLES
_PART_FILES = {"trials": "trial", "curves": "curves", "layers": "layers"}  # names inside a part

# Columns whose type must not depend on the values a run happened to produce (a column that is
# null in every row would otherwise be Arrow's null type): the schema's pinned columns.
_ARROW = {"int64": pa.int64(), "double": pa.float64(), "string": pa.string(), "bool": pa.bool_(),
          "list<int64>": pa.list_(pa.int64()), "list<double>": pa.list_(pa.float64())}
_TYPES = {name: _ARROW[dtype] for name, dtype in schema.pinned_types().items()}


_UMASK = os.umask(0)
os.umask(_UMASK)


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """A temporary name beside ``path`` that no other process will use: it carries this
    host and pid (so a later writer can tell a dead process's leftovers from a live one's)."""
    return path.with_name(f".{path.name}.{HOST_TAG}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


HOST_TAG = re.sub(r"[^A-Za-z0-9-]", "-", HOST)[:40] or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}(\.tmp)?$")


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (where the platform can open a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it to ``path``, fsync the folder; ``tmp`` is gone either way."""
    try:
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _publish(tmp, path)


def to_arrow(rows: list[dict]) -> pa.Table:
    """Rows -> Arrow with the contract's types: list<int64> widths, int64s, plain strings.

    Built from the rows directly (``from_pylist``, about 7x faster than through a DataFrame,
    which was most of a trial's storing cost) with a DataFrame's semantics: a NaN is stored as
    null, and a float column that holds only NaN is a double column of nulls."""
    if any(row.keys() != rows[0].keys() for row in rows[1:]):  # ragged: a DataFrame aligns them
        return _typed(pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False), set())
    floats: set[str] = set()   # columns a DataFrame would hold as float64
    ints: set[str] = set()
    nones: set[str] = set()
    clean = []
    for row in rows:
        out = {}
        for key, value in row.items():
            if isinstance(value, float) and value != value:
                floats.add(key)
                value = None
            elif value is None:
                nones.add(key)
            elif isinstance(value, int) and not isinstance(value, bool):
                ints.add(key)
            out[key] = value
        clean.append(out)
    floats |= ints & nones  # ints beside a missing value: pandas makes them floats
    return _typed(pa.Table.from_pylist(clean), floats)


def _typed(table: pa.Table, floats: set[str]) -> pa.Table:
    fields = []
    for f in table.schema:
        t = _TYPES.get(f.name, pa.float64() if f.name in floats
                       and (pa.types.is_null(f.type) or pa.types.is_integer(f.type)) else f.type)
        if pa.types.is_large_string(t):
            t = pa.string()
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


def _empty(table: str) -> pa.Table:
    """The table with no rows (every trial skipped, or no hidden layers), typed."""
    return pa.table({c.name: pa.array([], _ARROW[c.dtype]) for c in schema.empty_columns(table)})


def write_table(table: pa.Table, path: Path) -> None:
    tmp = temp_path(path)
    try:
        pq.write_table(table, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _publish(tmp, path)


@dataclass
class EncodedTrial:
    """A trial made ready to store: its part's files as bytes (three Parquet tables, its
    weights, a traceback) and its tables as Arrow for the consolidated ones. Picklable, so that
    a worker can encode its own trials (``encode``) and the coordinator only writes them."""

    trial: dict                     # the trials row (what the progress line shows)
    tables: dict[str, pa.Table]
    files: dict[str, bytes]         # name inside the part -> its bytes

    @property
    def trial_id(self) -> str:
        return self.trial["trial_id"]

    @property
    def status(self) -> str:
        return self.trial["status"]


def encode(result: TrialResult, suite_sha256: str | None) -> EncodedTrial:
    """``result`` as its part's files and tables, the trials row with the suite text's hash
    beside the trial id (a column every row has). The same bytes whoever encodes them."""
    row = dict(result.trial)
    trace = row.pop("traceback", None)
    row = {"trial_id": row["trial_id"], "suite_sha256": suite_sha256, **row}
    tables = {"trials": to_arrow([row])}
    for table, rows in (("curves", result.curves), ("layers", result.layers)):
        if rows:
            tables[table] = to_arrow(rows)
    files = {}
    for table, arrow in tables.items():
        sink = pa.BufferOutputStream()
        pq.write_table(arrow, sink)
        files[f"{_PART_FILES[table]}.parquet"] = sink.getvalue().to_pybytes()
    if result.state_dict is not None:
        buffer = io.BytesIO()
        torch.save(result.state_dict, buffer)
        files["model.pt"] = buffer.getvalue()
    if trace:
        files["traceback.txt"] = trace.encode()
    return EncodedTrial(row, tables, files)


class RunStore:
    """Owns one run folder: the one process that writes to it, holding its lock
    (runlock.py) until :meth:`close`."""

    def __init__(self, run_dir: Path, manifest: dict, lock: RunLock | None = None):
        self.dir = run_dir
        self.parts = run_dir / "parts"
        self.manifest = manifest
        self.lock = lock
        self.quarantined: list[tuple[str, str]] = []  # (part, reason) set aside on opening
        # What the writer keeps between trials: each trial's status, and each table's rows so
        # far as one growing Arrow table. Not the parts themselves: thousands of small tables
        # kept alive between the training loop's multi-MB buffers fragment glibc's heap, and
        # the process grew by about 1 MB per trial (docs/performance.md).
        self._status: dict[str, str] = {}
        self._merged: dict[str, pa.Table | None] = dict.fromkeys(TABLES)
        self._load_parts()

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, out_root: Path, suite_name: str, manifest: dict) -> RunStore:
        """A new run folder, made whole before it appears: it is built under a temporary
        name (its manifest written, its lock held) and renamed into place, so a kill at any
        moment leaves either no run folder or one that ``--resume`` opens."""
        base = out_root / suite_name
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        try:
            base.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(base, folders_only=True)
            tmp = temp_path(base / stamp, suffix="")
            (tmp / "parts").mkdir(parents=True)
        except OSError as exc:
            raise UserError(f"cannot create the run folder: {exc.strerror}",
                            source=str(exc.filename or base)) from None
        lock = RunLock.acquire(tmp)
        try:
            for n in range(1000):
                run_dir = base / (stamp if n == 0 else f"{stamp}-{n}")
                if run_dir.exists():
                    continue
                full = {"schema_version": SCHEMA_VERSION, "run_id": run_dir.name,
                        "started_at": now_utc(), **manifest}
                atomic_write_bytes(tmp / "manifest.json", _manifest_bytes(full))
                try:
                    tmp.rename(run_dir)
                except OSError:  # taken in the meantime (or a non-empty folder of that name)
                    continue
                fsync_dir(base)
                break
            else:
                raise UserError("cannot create the run folder: 1000 runs started this second",
                                source=str(base))
        except BaseException:
            lock.release()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(run_dir, full, lock)

    @classmethod
    def open(cls, run_dir: Path) -> RunStore:
        """An existing run folder, to write to (``--resume``): its lock is taken first (a
        folder another process is writing is a UserError naming it), then the parts are read
        back, any unreadable one set aside."""
        manifest = read_manifest(run_dir)
        lock = RunLock.acquire(run_dir)
        try:
            (run_dir / "parts").mkdir(exist_ok=True)
            store = cls(run_dir, manifest, lock)
        except BaseException:
            lock.release()
            raise
        if store.quarantined:
            store.manifest.setdefault("quarantined", []).extend(
                {"part": part, "reason": reason, "at": now_utc()}
                for part, reason in store.quarantined)
            store.write_manifest()
        return store

    def close(self) -> None:
        """Give up the run folder's lock; the store can still be read, not written."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def suite_hashes(self) -> set[str]:
        """The suite texts' hashes whose trials belong here: the suite's and, where the grid
        was extended (``--extend``), the earlier suites'."""
        hashes = {(self.manifest.get("suite") or {}).get("sha256")}
        hashes |= {h.get("sha256") for h in self.manifest.get("suite_history") or []
                   if isinstance(h, dict)}
        return {h for h in hashes if h}

    def _load_parts(self) -> None:
        if self.lock is not None:  # only the writer tidies, and only what no live process owns
            _remove_leftovers(self.dir)
            if self.parts.is_dir():
                _remove_leftovers(self.parts)
        if not self.parts.is_dir():
            return
        hashes = self.suite_hashes()
        read: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
        for part in sorted(self.parts.iterdir()):
            if part.name.startswith("."):  # the quarantine, and temporaries of live writers
                continue
            try:
                tables = _read_part(part, hashes)
            except _BadPart as bad:
                if self.lock is None:
                    continue  # not the writer: leave it where it is
                self._quarantine(part, str(bad))
                continue
            self._status[part.name] = tables["trials"].column("status")[0].as_py()
            for table, arrow in tables.items():
                read[table].append(arrow)
        for table, arrows in read.items():
            if arrows:
                self._merged[table] = pa.concat_tables(
                    arrows, promote_options="permissive").combine_chunks()

    def _quarantine(self, part: Path, reason: str) -> None:
        folder = self.parts / QUARANTINE
        folder.mkdir(exist_ok=True)
        dest, n = folder / part.name, 1
        while dest.exists() or dest.with_name(f"{dest.name}.reason.txt").exists():
            dest, n = folder / f"{part.name}.{n}", n + 1
        part.rename(dest)
        note = dest / "reason.txt" if dest.is_dir() else dest.with_name(f"{dest.name}.reason.txt")
        note.write_text(reason + "\n")
        fsync_dir(self.parts)
        self.quarantined.append((part.name, reason))

    # -- state --------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        return dict(self._status)

    def done(self) -> set[str]:
        return {tid for tid, status in self.statuses().items() if status in schema.DONE}

    # -- writing ------------------------------------------------------------------------------

    @property
    def suite_sha256(self) -> str | None:
        """The suite text's hash, which every trials row carries beside its id."""
        return (self.manifest.get("suite") or {}).get("sha256")

    def add(self, result: TrialResult | EncodedTrial) -> None:
        """Store one finished trial at once and atomically. A ``TrialResult`` is encoded here;
        a worker may have encoded it already (``encode``), which spares the coordinator the
        work."""
        if not isinstance(result, EncodedTrial):
            result = encode(result, self.suite_sha256)
        tid, tables = result.trial_id, result.tables
        final = self.parts / tid
        tmp = temp_path(final, suffix="")
        try:
            tmp.mkdir()
            for name, data in result.files.items():
                with open(tmp / name, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            fsync_dir(tmp)
            if final.exists():  # a failed or skipped trial that ran again on --resume
                stale = temp_path(final, suffix=".stale")
                final.rename(stale)
                tmp.rename(final)
                shutil.rmtree(stale, ignore_errors=True)
            else:
                tmp.rename(final)
            fsync_dir(self.parts)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replaced = tid in self._status
        self._status[tid] = result.status
        for table in TABLES:
            merged, new = self._merged[table], tables.get(table)
            if replaced and merged is not None:  # the earlier attempt's rows go
                merged = merged.filter(pc.not_equal(merged.column("trial_id"), tid))
            if new is not None:
                merged = new if merged is None else pa.concat_tables(
                    [merged, new], promote_options="permissive")
            if merged is not None and merged.column(0).num_chunks > 64:
                merged = merged.combine_chunks()  # one chunk per trial slows every later write
            self._merged[table] = merged

    def consolidate(self, order: list[str] | None = None) -> None:
        """Rewrite the three tables from the stored trials, in ``order`` (the grid's); the
        trials table with its grid points' ensemble spread (``ensemble.COLUMNS``)."""
        for table in TABLES:
            merged = self._merged[table]
            if merged is None:
                merged = _empty(table)
            if table == "trials":  # an ensemble's spread is a property of its grid point
                merged = ensemble.with_spread(merged)
            write_table(_in_order(_columns_first(merged, table), order or []),
                        self.dir / f"{table}.parquet")

    def write_manifest(self) -> None:
        atomic_write_bytes(self.dir / "manifest.json", _manifest_bytes(self.manifest))

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


def _manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, default=str) + "\n").encode()


class _BadPart(Exception):
    """A part that cannot be read back; its message is the one-line reason."""


def _read_part(part: Path, suite_hashes: set[str]) -> dict[str, pa.Table]:
    """A part's tables, checked: each file readable, one trial row naming this part, every row
    of its curves and layers this trial's, and (where recorded) a suite of this run."""
    if not part.is_dir():
        raise _BadPart("not a folder")
    if not (part / "trial.parquet").is_file():
        raise _BadPart("no trial.parquet (an unfinished or foreign folder)")
    tables = {}
    for table, name in _PART_FILES.items():
        file = part / f"{name}.parquet"
        if not file.exists():
            continue
        try:
            arrow = pq.read_table(file)
        except (pa.ArrowException, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _BadPart(f"{name}.parquet cannot be read ({reason})") from None
        if "trial_id" not in arrow.column_names or any(
                v != part.name for v in arrow.column("trial_id").to_pylist()):
            raise _BadPart(f"{name}.parquet holds rows of another trial")
        tables[table] = arrow
    trial = tables["trials"]
    if trial.num_rows != 1:
        raise _BadPart(f"trial.parquet holds {trial.num_rows} rows, not 1")
    status = trial.column("status")[0].as_py() if "status" in trial.column_names else None
    if status not in schema.STATUSES:
        raise _BadPart(f"trial.parquet has status {status!r}, not one of "
                       f"{', '.join(schema.STATUSES)}")
    if "suite_sha256" in trial.column_names and suite_hashes:
        sha = trial.column("suite_sha256")[0].as_py()
        if sha and sha not in suite_hashes:
            raise _BadPart(f"written by another suite (sha256 {sha[:12]}), not this run's")
    return tables


def _remove_leftovers(folder: Path, folders_only: bool = False) -> None:
    """Delete the temporaries in ``folder`` that no live process owns: those named by a dead
    pid on this host, by another host (the caller holds the lock, so no writer is there), or
    in an older naming. A live process's temporaries are left alone."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(".") or entry.name == QUARANTINE:
            continue
        if folders_only and not entry.is_dir():
            continue
        match = _TEMP.match(entry.name)
        if match and match["host"] == HOST_TAG and (
                int(match["pid"]) == os.getpid() or pid_alive(int(match["pid"]))):
            continue
        if folders_only and not match:
            continue  # not ours to judge: some other tool's hidden folder
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
