"""Each tuned setting's pick, from its stored tuning trials (the stages: ``bench.suite.stages``).

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

from bench import schema
from bench.analysis.statistics import Estimate, mean_ci
from bench.suite import Suite
from bench.suite.stages import Setting, settings, show, tune_device, tuned_values, tuning_specs


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
            ran = rows[rows["status"].isin(schema.TRAINED)] if len(rows) else rows
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
            picked = ", ".join(f"{k} = {show(p.values[k])}" for k in p.at_edge)
            out.append(f"{p.setting.label()}: the pick {picked} is at the edge of the tuned grid; "
                       "the best value may lie outside it: widen the sweep")
        if p.note:
            out.append(f"{p.setting.label()}: {p.note}")
    return out


def _round(x: float) -> float:
    """Means equal to 12 significant digits are a tie (the same accuracy in every seed)."""
    return float(f"{x:.12g}") if math.isfinite(x) else (-math.inf if x < 0 else math.inf)


def _nan_none(x: float):
    return x if math.isfinite(x) else None
