"""An ensemble's spread over seeds: how much the seeds of one grid point disagree on their final
fit, inside the training range and away from it.

A one-input regression trial records its final fit at fixed probe points (``fit_probe_inside``
on the training range, ``fit_probe_outside`` on the outer windows; see ``train``). When the
store writes ``trials.parquet`` it adds, for each grid point (the trials that differ only in
the seed), the sample std (n - 1) over the seeds of the prediction at each probe x, averaged
over the x:

    ensemble_spread_inside    on the training range [lo, hi]
    ensemble_spread_outside   on [lo - 1.5 w, lo - w] and [hi + w, hi + 1.5 w]
    ensemble_spread_ratio     outside / inside

Every trial of the point carries its point's values, so a claim's mean over seeds reads them
as they are. Only seeds that recorded a fit count (a diverged seed did not), and a point needs
two of them; otherwise NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from bench import schema
from bench.results.reader import equals, is_config, settings

COLUMNS = ("ensemble_spread_inside", "ensemble_spread_outside", "ensemble_spread_ratio")
PROBES = {"inside": "fit_probe_inside", "outside": "fit_probe_outside"}
_POINT = ("variant", "stage")  # with the config columns, what names a grid point


def grid_points(trials: pd.DataFrame) -> pd.Series:
    """Each trial's grid point as one hashable tuple: its config columns (``task.``,
    ``model.``, ``train.``), ``variant`` and ``stage``, so trials of one point differ only in
    the seed."""
    keys = [c for c in trials.columns if is_config(c) or c in _POINT]
    return settings(trials, keys)


def spread(trials: pd.DataFrame) -> pd.DataFrame:
    """The COLUMNS for ``trials`` (row-aligned; NaN where a point has no spread)."""
    out = pd.DataFrame(math.nan, index=trials.index, columns=list(COLUMNS))
    if trials.empty or not all(c in trials.columns and trials[c].map(_recorded).any()
                               for c in PROBES.values()):
        return out  # nothing recorded a fit (classification, or more than one input)
    ran = (trials["status"].isin(schema.TRAINED) if "status" in trials.columns
           else pd.Series(True, index=trials.index))
    points = grid_points(trials)
    for point in dict.fromkeys(points[ran]):
        members = trials.index[ran & equals(points, point)]
        values = {}
        for region, column in PROBES.items():
            fits = [np.asarray(v, dtype=float) for v in trials.loc[members, column]
                    if _recorded(v)]
            if len(fits) < 2 or len({len(f) for f in fits}) > 1:
                values[region] = math.nan
            else:
                values[region] = float(np.std(np.stack(fits), axis=0, ddof=1).mean())
        inside, outside = values["inside"], values["outside"]
        out.loc[members, "ensemble_spread_inside"] = inside
        out.loc[members, "ensemble_spread_outside"] = outside
        out.loc[members, "ensemble_spread_ratio"] = outside / inside if inside > 0 else math.nan
    return out


def with_spread(table: pa.Table) -> pa.Table:
    """The trials table with COLUMNS (re)computed, where any of its trials recorded probes;
    otherwise without them."""
    table = table.drop_columns([c for c in COLUMNS if c in table.column_names])
    if not all(c in table.column_names and table.column(c).null_count < table.num_rows
               for c in PROBES.values()):
        return table  # nothing recorded a fit: a classification run has no spread columns
    needed = [c for c in table.column_names
              if is_config(c) or c in (*_POINT, "status", *PROBES.values())]
    values = spread(table.select(needed).to_pandas())
    for column in COLUMNS:
        table = table.append_column(column, pa.array(values[column].to_numpy(), pa.float64()))
    return table


def _recorded(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0
