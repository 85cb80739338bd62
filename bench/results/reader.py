"""A stored run, read back for reports: the manifest, the three tables, and the trained models.

Reports read only what ``bench run`` wrote. The grid is recovered from the trials table itself
(the config columns whose values differ), so a report needs no suite file and survives changes
to the suite format. The trained weights live in ``parts/<trial_id>/model.pt``; the data a model
was trained on is drawn again from its task config and seed, exactly as the trial drew it.

Reading a run folder imports no code it names. A trial whose activation, init or task is user
code (an import path, or a name an installed package registers) is rebuilt only when the folder
is opened with ``trust_code`` (``--trust-code``), as ``transformers`` treats remote code: the
folder, not the person reading it, chose what would be imported. Weights load with
``weights_only=True``, never by unpickling objects.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from bench import schema
from bench.errors import UserError
from bench.results.folder import QUARANTINE, quarantined, read_manifest
from bench.results.lock import describe, holder
from bench.results.names import is_folder_name
from bench.training.activations import ACTIVATIONS
from bench.training.config import ModelConfig
from bench.training.inits import INITS
from bench.training.model import build_model
from bench.training.state import rng_kept
from bench.training.tasks import TASKS, TaskData, UserTaskConfig, draw_task

CONFIG_SECTIONS = ("task.", "model.", "train.")


def is_config(column: str) -> bool:
    return column.startswith(CONFIG_SECTIONS)


def hashable(value: Any) -> Any:
    """Cell -> a hashable, comparable value (list widths become tuples, NaN becomes None)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(hashable(v) for v in value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def keyed(series: pd.Series) -> pd.Series:
    """``series`` as hashable values in an object Series (None stays None rather than NaN)."""
    return pd.Series([hashable(v) for v in series], index=series.index, dtype=object)


def equals(series: pd.Series, value: Any) -> pd.Series:
    """Boolean mask of the cells equal to ``value`` (a hashable value; None matches NaN)."""
    return pd.Series([hashable(v) == value for v in series], index=series.index, dtype=bool)


def settings(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Each row's values of ``keys`` as one hashable tuple (object Series, row-aligned)."""
    columns = [keyed(frame[k]) for k in keys]
    return pd.Series(list(zip(*columns)) if keys else [()] * len(frame), index=frame.index,
                     dtype=object)


def show(value: Any) -> str:
    """A config value as a person writes it in a suite: 0.001, [100, 100], full."""
    value = hashable(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


TRUST_HINT = "pass --trust-code (in Python: bench.open_run(..., trust_code=True)) to allow"


def user_code_of(row: pd.Series) -> list[str]:
    """The activation, init and task kind a stored trial names that are not built-ins (import
    paths or registered names): what rebuilding its model or data would import. Reads the row
    only; imports nothing."""
    named = (("model.activation", ACTIVATIONS), ("model.init", INITS), ("task.kind", TASKS))
    out = []
    for column, builtins in named:
        value = hashable(row.get(column))
        if value is None:
            continue
        if not isinstance(value, str) or value not in builtins:
            out.append(show(value))
    return out


@dataclass
class RunData:
    """One run folder, loaded. ``trials`` holds every trial, ``ran`` those that trained."""

    dir: Path
    manifest: dict
    trials: pd.DataFrame
    curves: pd.DataFrame
    layers: pd.DataFrame
    _models: dict[str, torch.nn.Module | None] = field(default_factory=dict, repr=False)
    # True: rebuild trials with any user code; a frozenset: with the code it names only (a run
    # bench.run just made, of the suite this process imported); False: with built-ins only.
    trust_code: bool | frozenset[str] = False
    # One line per figure that left models out for want of trust (figures.py writes them).
    left_out: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def open(cls, run_dir: Path, trust_code: bool | frozenset[str] = False) -> RunData:
        """Read a run folder (never changing it): its manifest, checked, and its three
        tables; a missing or unreadable one is one UserError naming the file. Nothing the
        folder names is imported unless ``trust_code``."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise UserError("no such run folder", source=str(run_dir))
        manifest = read_manifest(run_dir)
        tables = {}
        for name in ("trials", "curves", "layers"):
            path = run_dir / f"{name}.parquet"
            if not path.is_file():
                raise UserError(f"{name}.parquet is missing: the run never started, or its folder "
                                f"was copied in part; `bench run SUITE --resume {run_dir}` rebuilds "
                                "the tables", source=str(run_dir))
            try:
                tables[name] = pd.read_parquet(path)
            except (pa.ArrowException, OSError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(f"{name}.parquet cannot be read ({reason}); the trials are "
                                f"stored one by one in parts/, and `bench run SUITE --resume "
                                f"{run_dir}` rebuilds the tables from them",
                                source=str(run_dir)) from None
        return cls(run_dir, manifest, tables["trials"], tables["curves"], tables["layers"],
                   trust_code=trust_code if isinstance(trust_code, frozenset) else bool(trust_code))

    @cached_property
    def quarantined(self) -> list[str]:
        """The parts set aside as unreadable when the run was resumed (parts/.quarantine)."""
        return quarantined(self.dir)

    @property
    def notes(self) -> list[str]:
        """What a reader should know about the folder's state before trusting its tables."""
        out = []
        if self.quarantined:
            n = len(self.quarantined)
            out.append(f"{n} stored trial{'s' if n > 1 else ''} could not be read back and "
                       f"{'were' if n > 1 else 'was'} set aside in parts/{QUARANTINE}/ "
                       "(run again on --resume)")
        writer = holder(self.dir)
        state = str(self.manifest.get("state", ""))
        if writer is not None:
            out.append(f"a run is writing to this folder now ({describe(writer)}): the tables "
                       "may change")
        elif state == "running":
            out.append("this run did not finish (its manifest says 'running' and no process "
                       "holds it): its tables may lack stored trials; --resume rebuilds them")
        elif state.startswith("stopped"):
            out.append(f"this run stopped early: {state}")
        return out

    # -- what the run is ----------------------------------------------------------------------

    @property
    def suite_name(self) -> str:
        suite = self.manifest.get("suite") or {}
        if suite.get("name"):
            return suite["name"]
        return str(self.trials["suite"].iloc[0]) if len(self.trials) else self.dir.parent.name

    @property
    def run_id(self) -> str:
        return self.manifest.get("run_id") or self.dir.name

    @cached_property
    def ran(self) -> pd.DataFrame:
        return self.trials[self.trials["status"].isin(schema.TRAINED)]

    @cached_property
    def config_columns(self) -> list[str]:
        return [c for c in self.trials.columns if is_config(c)]

    @cached_property
    def varied_keys(self) -> list[str]:
        """The grid's axes: ``variant`` (when there are several) and every config column that
        takes more than one value over the run's trials, in table order."""
        trials = self.trials
        varied = [c for c in self.config_columns if keyed(trials[c]).nunique(dropna=False) > 1]
        if keyed(trials["variant"]).nunique(dropna=False) < 2:
            return varied
        # A key that each variant sets to one value is the variant's, not an axis of its own:
        # in seed_replication, 'linear' is the identity net with sgd and 'relu' the relu net with
        # adam, so activation and optimizer are not independent of the variant.
        variant = keyed(trials["variant"])
        own = [c for c in varied
               if keyed(trials[c]).groupby(variant, dropna=False).nunique(dropna=False).max() > 1]
        return ["variant"] + own

    @cached_property
    def fixed(self) -> dict[str, Any]:
        """Config columns with one value across the run (task, model and train settings)."""
        varied = set(self.varied_keys)
        return {c: hashable(self.trials[c].iloc[0]) for c in self.config_columns
                if c not in varied and len(self.trials)}

    def levels(self, key: str, frame: pd.DataFrame | None = None) -> list:
        """The values ``key`` takes, in the order they first appear (the suite's order)."""
        frame = self.trials if frame is None else frame
        return list(dict.fromkeys(keyed(frame[key])))

    def point(self, row: pd.Series, keys: list[str] | None = None) -> tuple:
        return tuple(hashable(row[k]) for k in (self.varied_keys if keys is None else keys))

    # -- the trained models -------------------------------------------------------------------

    def _stored_row(self, trial_id: str) -> pd.Series:
        return self.trials.loc[self.trials["trial_id"] == trial_id].iloc[0]

    def untrusted(self, row: pd.Series) -> list[str]:
        """The user code that rebuilding the trial in ``row`` would import and that this run
        was not opened to trust ([] when it names built-ins only, or with ``trust_code``)."""
        if self.trust_code is True:
            return []
        if "trial_id" in row and (self.trials["trial_id"] == row["trial_id"]).any():
            row = self._stored_row(row["trial_id"])  # as stored, whatever a figure relabelled
        trusted = self.trust_code or frozenset()
        return [name for name in user_code_of(row) if name not in trusted]

    def task_data(self, row: pd.Series) -> TaskData:
        """The training data of the trial in ``row``, drawn again from its seed. A user task
        is imported and called only with ``trust_code``; else a UserError says so."""
        row = self._stored_row(row["trial_id"])
        kind = hashable(row["task.kind"])
        if kind not in TASKS and show(kind) in self.untrusted(row):
            raise UserError(f"trial {row['trial_id']}'s task is user code named in this run "
                            f"folder ({show(kind)}), which is imported only when it is trusted: "
                            f"{TRUST_HINT}", source=str(self.dir))
        if kind in TASKS:
            cfg = _config_from_row(row, "task.", TASKS[kind][0])
        else:  # a user task: its arguments, with their types, as stored
            args = row.get("task_args")
            if not isinstance(args, str):
                raise ValueError(f"trial {row['trial_id']} stored no task_args to draw "
                                 f"{kind!r} again with")
            cfg = UserTaskConfig(kind=kind, **json.loads(args or "{}"))
        with rng_kept():
            return draw_task(cfg, int(row["seed"]))  # as the trial drew it

    def model(self, row: pd.Series) -> torch.nn.Module | None:
        """The trial's final model on the CPU, or None when its weights were not stored, or
        when it needs user code this run was not opened to trust (``untrusted``)."""
        tid = row["trial_id"]
        if tid not in self._models:
            path = self.dir / "parts" / str(tid) / "model.pt"
            model = None
            if is_folder_name(tid) and path.is_file():  # an id from the table stays in parts/
                row = self._stored_row(tid)  # the config as stored, whatever a figure relabelled
                untrusted = self.untrusted(row)  # the folder chose it: never imported unasked
                try:
                    if untrusted:
                        raise ValueError(f"not trusted: {', '.join(untrusted)}")
                    data = self.task_data(row)
                    model = build_model(_config_from_row(_whole_ints(row), "model.", ModelConfig),
                                        data.x_train.shape[1], data.out_features)
                except ValueError:  # user code this process cannot import (a notebook's
                    model = None    # function): the figures that need the model skip it
                else:
                    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                    model.eval()
            self._models[tid] = model
        return self._models[tid]


def _whole_ints(row: pd.Series) -> pd.Series:
    """``model.in_channels`` as an int: in a run of both model kinds the MLPs leave it NaN, so
    Parquet stores the column as float."""
    value = row.get("model.in_channels")
    if isinstance(value, float) and value.is_integer():
        row = row.copy()
        row["model.in_channels"] = int(value)
    return row


def _config_from_row(row: pd.Series, prefix: str, cls):
    fields = {}
    for column, value in row.items():
        if not column.startswith(prefix) or "." in column[len(prefix):]:
            continue
        name = column[len(prefix):]
        if name not in cls.model_fields:
            continue  # a column a later version added: not this config's business
        value = hashable(value)
        if value is None:
            continue  # a column of another task kind, NaN in this row: the default applies
        if isinstance(value, float) and value.is_integer() and _is_int_field(cls, name):
            value = int(value)  # Parquet made an int column float where other kinds left NaN
        fields[name] = list(value) if isinstance(value, tuple) else value
    return cls(**fields)


def _is_int_field(cls, name: str) -> bool:
    return cls.model_fields[name].annotation is int
