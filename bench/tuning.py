"""The tuned comparison of a ``[tune]`` suite: tune each setting, pick, evaluate on fresh seeds.

A *setting* is one point of the grid with the tuned keys (and the device) left out: an
activation x init, say. Its *candidates* are its grid points on the tuning device, one per
value of the tuned keys. The run has two stages:

1. **tune**: every candidate of every setting that has more than one trains on the tuning
   seeds, and is judged by its mean validation metric (``[tune] metric``).
2. **eval**: each setting's pick trains on the evaluation seeds (the suite's ``seeds``), on
   every device of the grid; reports, rankings and claims use these trials, on the test split.

The rule for the pick (``pick``): a candidate with a seed that diverged or failed is not
eligible while another is; among the eligible, the best mean metric wins; an exact tie goes to
the lower mean validation loss (for an accuracy metric), then to the first value in the sweep.
A pick at the smallest or largest value of a tuned key is *at the edge*: the grid may not hold
the best value, and the run and the report say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .stats import Estimate, mean_ci
from .suite import GridPoint, Suite
from .spec import TrialSpec

DEVICE = "train.device"


@dataclass(frozen=True)
class Setting:
    """The points of the grid that differ only in the tuned keys and the device."""

    variant: str
    context: tuple[tuple[str, Any], ...]   # the other swept and variant keys, in file order
    points: tuple[GridPoint, ...]           # every device's, in grid order

    def candidates(self, tune_device: str) -> list[GridPoint]:
        return [p for p in self.points if p.train.device == tune_device]

    def label(self) -> str:
        parts = [f"variant {self.variant}"] if self.variant else []
        parts += [f"{k.split('.', 1)[-1]} = {_show(v)}" for k, v in self.context]
        return ", ".join(parts) or "all"


@dataclass
class Candidate:
    values: dict[str, Any]      # the tuned keys' values
    estimate: Estimate          # of the selection metric over the tuning seeds
    loss: Estimate              # of the validation loss (the tie-breaker)
    seeds: int                  # tuning trials stored
    bad: int                    # of them diverged or failed (or with no finite metric)


@dataclass
class Pick:
    setting: Setting
    values: dict[str, Any] | None          # None: nothing could be picked
    candidates: list[Candidate] = field(default_factory=list)
    tuned: bool = True                      # False: one candidate, nothing to tune
    at_edge: list[str] = field(default_factory=list)   # tuned keys picked at a grid edge
    tie: bool = False
    note: str = ""

    def as_json(self) -> dict:
        return {"setting": self.setting.label(), "variant": self.setting.variant,
                "context": {k: v for k, v in self.setting.context},
                "values": self.values, "tuned": self.tuned, "at_edge": self.at_edge,
                "tie": self.tie, "note": self.note,
                "candidates": [{"values": c.values, "mean": _nan_none(c.estimate.mean),
                                "low": _nan_none(c.estimate.low), "high": _nan_none(c.estimate.high),
                                "seeds": c.seeds, "diverged_or_failed": c.bad}
                               for c in self.candidates]}


def tune_device(suite: Suite) -> str:
    return suite.tune.device or suite.points[0].train.device


def settings(suite: Suite) -> list[Setting]:
    """The grid grouped into settings, in the order they first appear."""
    tuned = set(suite.tune.keys)
    groups: dict[tuple, list[GridPoint]] = {}
    for p in suite.points:
        context = tuple((k, v) for k, v in p.overrides if k not in tuned and k != DEVICE)
        groups.setdefault((p.variant, _key(context)), []).append(p)
    out = []
    for (variant, _), points in groups.items():
        context = tuple((k, v) for k, v in points[0].overrides if k not in tuned and k != DEVICE)
        out.append(Setting(variant, context, tuple(points)))
    return out


def tuned_values(suite: Suite, point: GridPoint) -> dict[str, Any]:
    overrides = dict(point.overrides)
    return {k: overrides.get(k) for k in suite.tune.keys}


def _specs(suite: Suite, point: GridPoint, seeds, stage: str) -> list[TrialSpec]:
    return [TrialSpec(suite.name, point.variant, seed, point.task, point.model, point.train, stage)
            for seed in seeds]


def tuning_specs(suite: Suite, setting: Setting) -> dict[int, list[TrialSpec]]:
    """Candidate index -> its tuning trials ({} for a setting with one candidate)."""
    candidates = setting.candidates(tune_device(suite))
    if len(candidates) < 2:
        return {}
    return {i: _specs(suite, p, suite.tune.seeds, "tune") for i, p in enumerate(candidates)}


def evaluation_specs(suite: Suite, setting: Setting, values: dict[str, Any]) -> list[TrialSpec]:
    """The pick ``values`` of ``setting`` on the evaluation seeds, on every device."""
    out = []
    for p in setting.points:
        if _key(tuple(tuned_values(suite, p).items())) == _key(tuple(values.items())):
            out += _specs(suite, p, suite.seeds, "eval")
    return out


def first_stage(suite: Suite) -> list[TrialSpec]:
    """What is known before anything trains: every tuning trial, and the evaluation of the
    settings with a single candidate (nothing to tune)."""
    out = []
    for setting in settings(suite):
        tuning = tuning_specs(suite, setting)
        if tuning:
            out += [s for specs in tuning.values() for s in specs]
        else:
            only = setting.candidates(tune_device(suite)) or list(setting.points[:1])
            out += evaluation_specs(suite, setting, tuned_values(suite, only[0]))
    return out


def planned_total(suite: Suite) -> int:
    """Trials of both stages (the evaluation counted before the picks are known)."""
    total = 0
    for setting in settings(suite):
        tuning = tuning_specs(suite, setting)
        total += sum(len(s) for s in tuning.values())
        devices = len(dict.fromkeys(p.train.device for p in setting.points))
        total += devices * len(suite.seeds)
    return total


def pick(suite: Suite, trials: pd.DataFrame) -> list[Pick]:
    """Each setting's pick from the stored tuning trials (``trials``: the trials table)."""
    metric = suite.tune.metric
    higher = metric.endswith("accuracy")
    by_id = trials.set_index("trial_id") if len(trials) else trials
    out = []
    for setting in settings(suite):
        tuning = tuning_specs(suite, setting)
        candidates = setting.candidates(tune_device(suite))
        if not tuning:
            only = candidates or list(setting.points[:1])
            out.append(Pick(setting, tuned_values(suite, only[0]), tuned=False))
            continue
        cands = []
        for i, specs in tuning.items():
            ids = [s.trial_id for s in specs if s.trial_id in by_id.index]
            rows = by_id.loc[ids] if ids else by_id.iloc[0:0]
            ran = rows[rows["status"].isin(("ok", "diverged"))] if len(rows) else rows
            est = mean_ci(ran[metric] if metric in ran else [])
            loss = mean_ci(ran["final_val_loss"] if "final_val_loss" in ran else [])
            values = pd.to_numeric(ran[metric], errors="coerce") if metric in ran else pd.Series()
            finite = int(np.isfinite(values.astype(float)).sum())
            bad = len(specs) - finite if len(ran) else len(specs)
            cands.append(Candidate(tuned_values(suite, candidates[i]), est, loss, len(rows), bad))
        out.append(_choose(suite, setting, cands, higher))
    return out


def _choose(suite: Suite, setting: Setting, cands: list[Candidate], higher: bool) -> Pick:
    result = Pick(setting, None, cands)
    trained = [c for c in cands if c.seeds and math.isfinite(c.estimate.mean)]
    if not trained:
        stored = sum(c.seeds for c in cands)
        result.note = ("no tuning trial of this setting has run" if not stored else
                       "every tuning trial of this setting diverged, failed or was skipped")
        return result
    eligible = [c for c in trained if c.bad == 0]
    if not eligible:
        eligible = trained
        result.note = ("every value had a tuning seed that diverged or failed: picked on the "
                       "seeds that trained")
    sign = 1 if higher else -1

    def rank(c: Candidate):
        tie_loss = c.loss.mean if higher and math.isfinite(c.loss.mean) else math.inf
        return (-sign * _round(c.estimate.mean), tie_loss)

    ordered = sorted(eligible, key=rank)  # stable: the first value in the sweep wins a full tie
    best = ordered[0]
    result.values = best.values
    result.tie = len(ordered) > 1 and _round(ordered[1].estimate.mean) == _round(best.estimate.mean)
    for key in suite.tune.keys:
        levels = [c.values[key] for c in cands]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels)
        ends = (min(levels), max(levels)) if numeric else (levels[0], levels[-1])
        if len(set(map(repr, levels))) > 1 and best.values[key] in ends:
            result.at_edge.append(key)
    return result


def warnings(picks: list[Pick]) -> list[str]:
    """One line per pick a reader should doubt: at the grid's edge, or nothing picked."""
    out = []
    for p in picks:
        if p.values is None:
            out.append(f"{p.setting.label()}: nothing to evaluate: {p.note}")
            continue
        if p.at_edge:
            picked = ", ".join(f"{k} = {_show(p.values[k])}" for k in p.at_edge)
            out.append(f"{p.setting.label()}: the pick {picked} is at the edge of the tuned grid; "
                       "the best value may lie outside it: widen the sweep")
        if p.note:
            out.append(f"{p.setting.label()}: {p.note}")
    return out


def second_stage(suite: Suite, picks: list[Pick]) -> list[TrialSpec]:
    """The evaluation trials of the tuned settings' picks."""
    return [s for p in picks if p.tuned and p.values is not None
            for s in evaluation_specs(suite, p.setting, p.values)]


def _round(x: float) -> float:
    """Means equal to 12 significant digits are a tie (the same accuracy in every seed)."""
    return float(f"{x:.12g}") if math.isfinite(x) else (-math.inf if x < 0 else math.inf)


def _key(items) -> tuple:
    return tuple((k, repr(v)) for k, v in items)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _nan_none(x: float):
    return x if math.isfinite(x) else None
