"""The answer a tuned run (``[tune]``) is for: each setting at its own pick, ranked by the test
metric over the evaluation seeds, each compared with the best by Welch's test (Holm-corrected
over the table), with the smallest difference its seeds could detect.

Only the settings that were tuned are ranked (a variant that pins the tuned keys is not), and
one table is made per device: a CPU and a GPU do not share seeds' numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from bench.analysis.statistics import ALPHA, Difference, Estimate, holm, mean_ci, welch
from bench.analysis.summary import BY_COLUMN, Metric, Section, tuned_keys
from bench.results.reader import RunData, equals, hashable

DEVICE = "train.device"


@dataclass
class RankedRow:
    setting: dict            # the setting's keys (activation, init, ...) and values
    picked: dict             # the tuned keys' picked values
    at_edge: bool            # a pick at the edge of the tuned grid
    main: Estimate           # the test metric over the evaluation seeds
    second: Estimate | None  # the other test metric (accuracy when ranked by loss, and back)
    tuning: Estimate | None  # the selection metric at the pick, over the tuning seeds
    vs_best: Difference | None = None  # best − this row (None for the best row itself)
    p_holm: float = math.nan
    values: pd.Series | None = field(default=None, repr=False)  # the seeds' test metric

    def verdict(self, metric: Metric) -> str:
        d = self.vs_best
        if d is None:
            return "best"
        if not d.testable:
            return "too few seeds to compare" if min(d.n_a, d.n_b) < 2 else "no spread to test"
        if math.isfinite(self.p_holm) and self.p_holm < ALPHA:
            return "worse than the best"
        return "not significantly worse"


@dataclass
class Ranking:
    device: str
    metric: Metric
    second: Metric | None
    tune_metric: str
    keys: list[str]          # the setting's keys shown
    tuned: list[str]
    rows: list[RankedRow]
    seeds: int               # evaluation seeds per setting (most)
    notes: list[str]


def rankings(run: RunData, section: Section) -> list[Ranking]:
    """One ranking per device for the tuned settings of ``section`` (empty without [tune])."""
    tuning = run.manifest.get("tuning") or {}
    tuned = tuned_keys(run)
    if not tuned or "stage" not in run.trials:
        return []
    picks = [p for p in tuning.get("picks", []) if p.get("tuned") and p.get("values")]
    frame = section.frame
    metric = section.main
    second_col = ({"final_test_loss": "final_test_accuracy", "final_test_accuracy": "final_test_loss"}
                  .get(metric.column))
    second = BY_COLUMN.get(second_col) if second_col in frame and frame[second_col].notna().any() else None
    tune_metric = tuning.get("metric", "")
    tune_frame = run.ran[run.ran["stage"] == "tune"] if "stage" in run.ran else run.ran.iloc[0:0]
    keys = [k for k in section.keys if k not in (DEVICE, "variant")]
    if len({p.get("variant") for p in picks}) > 1:
        keys = ["variant"] + keys
    out = []
    for device in dict.fromkeys(frame[DEVICE]):
        on_device = frame[frame[DEVICE] == device]
        rows = []
        for p in picks:
            cond = {"variant": p.get("variant", ""), **(p.get("context") or {}), **p["values"]}
            group = _select(on_device, cond)
            if group.empty:
                continue
            setting = {k: hashable(group.iloc[0][k]) for k in keys if k in group}
            tuning_est = None
            if tune_metric in tune_frame:
                tuning_est = mean_ci(_select(tune_frame, cond)[tune_metric])
            rows.append(RankedRow(setting, p["values"], bool(p.get("at_edge")),
                                  mean_ci(group[metric.column]),
                                  mean_ci(group[second.column]) if second else None, tuning_est,
                                  values=group[metric.column]))
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: _order(r.main.mean, metric))
        best = rows[0]
        for r in rows[1:]:
            # best − row, so that the difference is how much the row is behind
            r.vs_best = welch(best.values, r.values)
        for r, p in zip(rows[1:], holm([r.vs_best.p for r in rows[1:]])):
            r.p_holm = float(p)
        notes = _notes(rows, metric, tuned)
        out.append(Ranking(str(device), metric, second, tune_metric, keys, tuned, rows,
                           max(r.main.n for r in rows), notes))
    return out


def _order(mean: float, metric: Metric) -> float:
    if not math.isfinite(mean):
        return math.inf
    return -mean if metric.better == "max" else mean


def _select(frame: pd.DataFrame, conditions: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for key, value in conditions.items():
        if key not in frame:
            return frame.iloc[0:0]
        mask &= equals(frame[key], hashable(tuple(value) if isinstance(value, list) else value))
    return frame[mask]


def _notes(rows: list[RankedRow], metric: Metric, tuned: list[str]) -> list[str]:
    out = []
    edge = [r for r in rows if r.at_edge]
    if edge:
        names = "; ".join(", ".join(f"{v}" for v in r.setting.values()) for r in edge)
        out.append(f"{len(edge)} pick(s) lie at the edge of the tuned grid of "
                   f"{', '.join(tuned)} ({names}): the best value may be outside it.")
    if metric.kind == "fraction":
        top = [r for r in rows if r.verdict(metric) in ("best", "not significantly worse")]
        if top and all(r.main.mean >= 0.99 for r in top):
            out.append(f"The top group is at 99% {metric.label} or more: near the ceiling, "
                       "where accuracy cannot separate activations; compare the test loss.")
    few = [r for r in rows[1:] if r.vs_best and min(r.vs_best.n_a, r.vs_best.n_b) < 5]
    if few:
        out.append("Fewer than 5 evaluation seeds on a side for some comparisons: a "
                   "difference would have to be large to be called.")
    return out

