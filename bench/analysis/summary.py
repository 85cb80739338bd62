"""The numbers of a report: estimates per grid point, matched comparisons, and plain findings.

Everything here is computed from a ``RunData``'s tables and returned as small dataclasses; the
report only formats them. A *grid point* is one setting of the run's varied keys; its seeds are
the samples. Comparisons are *matched*: two levels of one key (two activations, two inits) are
compared only where every other varied key is equal, and the p-values of one table are
Holm-corrected together.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench import schema
from bench.analysis.formatting import setting_text, sig, unit_for
from bench.analysis.statistics import ALPHA, MIN_SEEDS, Difference, Estimate, holm, mean_ci, welch
from bench.results.reader import RunData, equals, hashable, keyed, settings, show

ACTIVATION = "model.activation"


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    better: str            # "min" or "max"
    kind: str = "plain"    # plain | fraction (shown in %) | epochs | seconds | bytes

    def unit(self, values) -> tuple[str, float]:
        """(unit, scale): the column's one unit and the factor that converts to it."""
        if self.kind in ("seconds", "bytes"):
            return unit_for(self.kind, values)
        return {"fraction": ("%", 100.0), "epochs": ("epochs", 1.0)}.get(self.kind, ("", 1.0))

    @property
    def diff_unit(self) -> str:
        """The unit of a difference: percentage points for fractions."""
        return "points" if self.kind == "fraction" else ""

    def best(self, means: list[float]) -> set[int]:
        """Rows holding the best mean (all of them on a tie); none when every row is equal."""
        finite = {i: m for i, m in enumerate(means) if m is not None and math.isfinite(m)}
        if len(set(finite.values())) < 2:
            return set()
        top = min(finite.values()) if self.better == "min" else max(finite.values())
        return {i for i, m in finite.items() if m == top}


METRICS = tuple(Metric(c.name, c.label, c.better, c.kind)
                for c in schema.metrics() if c.summarized)  # bench/schema.py
BY_COLUMN = {m.column: m for m in METRICS}

def main_metric(frame: pd.DataFrame, problem: str) -> Metric:
    """What "better" means for a task: held-out accuracy where there is a test split, else
    training accuracy for classification and training loss for regression."""
    def has(column: str) -> bool:
        return column in frame and frame[column].notna().any()

    if problem == "classification":
        return BY_COLUMN["final_test_accuracy" if has("final_test_accuracy") else "final_accuracy"]
    return BY_COLUMN["final_test_loss" if has("final_test_loss") else "final_loss"]


# -- the headline table ---------------------------------------------------------------------------

@dataclass
class PointRow:
    """One grid point: its setting, how its seeds fared, and an estimate per metric."""

    point: dict[str, Any]
    seeds: int
    diverged: int
    estimates: dict[str, Estimate]
    reached: tuple[int, int] | None  # (seeds that reached the target, seeds that ran)


@dataclass
class Comparison:
    factor: str
    context: dict[str, Any]
    a: Any
    b: Any
    diff: Difference
    p_holm: float = math.nan

    def verdict(self, metric: Metric) -> str:
        d = self.diff
        if d.n_a == 0 or d.n_b == 0:
            missing = " and ".join(show(x) for x, n in ((self.a, d.n_a), (self.b, d.n_b)) if n == 0)
            return f"no finite {metric.label} for {missing} (diverged)"
        if min(d.n_a, d.n_b) < MIN_SEEDS:
            return f"too few seeds (n = {d.n_a}, {d.n_b}) to call"
        if not d.testable:
            return "identical in every seed" if d.diff == 0 else "no spread over seeds to test"
        if not (math.isfinite(self.p_holm) and self.p_holm < ALPHA):
            return "no significant difference"
        a_better = (self.diff.diff > 0) == (metric.better == "max")
        return f"{show(self.a if a_better else self.b)} better"


@dataclass
class Section:
    """Everything the report says about one task."""

    task: str
    problem: str
    frame: pd.DataFrame          # the trials of this task that trained
    keys: list[str]              # the varied keys within this task
    main: Metric
    metrics: list[Metric]
    rows: list[PointRow]
    comparisons: list[Comparison] = field(default_factory=list)   # activation pairs
    ranking: list[str] = field(default_factory=list)
    findings: list = field(default_factory=list)  # of Finding


def tuned_keys(run: RunData) -> list[str]:
    """The keys a ``[tune]`` run picked per setting ([] for a run without the protocol)."""
    return list((run.manifest.get("tuning") or {}).get("keys") or [])


def evaluated(run: RunData) -> pd.DataFrame:
    """The trials a report's numbers come from: with ``[tune]``, the evaluation stage's (the
    tuning stage is shown only in the tuning table and the lr-sensitivity figure)."""
    ran = run.ran
    if "stage" in ran and (ran["stage"] == "eval").any():
        return ran[ran["stage"] == "eval"]
    return ran


def problem_kind(frame: pd.DataFrame) -> str:
    from bench.training.tasks import TASKS

    kinds = {TASKS[k][0].problem for k in frame["task.kind"].unique() if k in TASKS}
    if any(k not in TASKS for k in frame["task.kind"].unique()):  # a user task: accuracy is
        kinds.add("classification" if frame["final_accuracy"].notna().any()  # recorded for
                  else "regression")  # classification only
    return kinds.pop() if len(kinds) == 1 else "classification"


def grouped(frame: pd.DataFrame, keys: list[str]):
    """(values tuple, sub-frame) per distinct setting of ``keys``, in first-seen order."""
    if not keys:
        yield (), frame
        return
    labels = settings(frame, keys)
    for values in dict.fromkeys(labels):
        yield values, frame[equals(labels, values)]


def headline(frame: pd.DataFrame, keys: list[str], metrics: list[Metric]) -> list[PointRow]:
    rows = []
    for values, group in grouped(frame, keys):
        estimates = {m.column: mean_ci(group[m.column]) for m in metrics}
        reached = None
        if "epochs_to_target" in group:
            reached = (int(group["epochs_to_target"].notna().sum()), len(group))
        rows.append(PointRow(dict(zip(keys, values)), len(group),
                             int((group["status"] == schema.DIVERGED).sum()), estimates, reached))
    return rows


# -- comparisons ----------------------------------------------------------------------------------

def pairwise(frame: pd.DataFrame, keys: list[str], factor: str, metric: Metric) -> list[Comparison]:
    """Every pair of ``factor``'s levels, matched on the other keys, with Holm-corrected p."""
    others = [k for k in keys if k != factor]
    out = []
    for values, group in grouped(frame, others):
        levels = list(dict.fromkeys(keyed(group[factor])))
        samples = {lv: group.loc[equals(group[factor], lv), metric.column] for lv in levels}
        for a, b in itertools.combinations(levels, 2):
            out.append(Comparison(factor, dict(zip(others, values)), a, b,
                                  welch(samples[a], samples[b])))
    for c, p in zip(out, holm([c.diff.p for c in out])):
        c.p_holm = float(p)
    return out


def rankings(frame: pd.DataFrame, keys: list[str], metric: Metric,
             comparisons: list[Comparison]) -> list[str]:
    """One line per setting of the other keys: the top group (the best activation and those not
    significantly worse, Holm, α = 0.05), those significantly worse, those too few seeds could
    compare, and those that diverged in every seed. First, a tally over the settings."""
    others = [k for k in keys if k != ACTIVATION]
    lookup = {(tuple(hashable(v) for v in c.context.values()), c.a, c.b): c for c in comparisons}
    unit, scale = metric.unit(frame[metric.column])
    acts = list(dict.fromkeys(frame[ACTIVATION]))
    lines, tops, n_called = [], [], 0

    def named(names, means):
        return ", ".join(f"{a} {sig(means[a] * scale)}{unit}" for a in names)

    for values, group in grouped(frame, others):
        means = {act: mean_ci(g[metric.column]).mean for (act,), g in grouped(group, [ACTIVATION])}
        if len(means) < 2:
            continue  # one activation (a variant that pins it): nothing to rank
        order = sorted((a for a in means if math.isfinite(means[a])), key=means.get,
                       reverse=metric.better == "max")
        gone = [a for a in means if not math.isfinite(means[a])]
        if not order:
            continue
        best, top, worse, unknown = order[0], [order[0]], [], []
        for act in order[1:]:
            c = lookup.get((values, best, act)) or lookup.get((values, act, best))
            if c is not None and not c.diff.testable and c.diff.diff == 0 and min(
                    c.diff.n_a, c.diff.n_b) >= MIN_SEEDS:
                top.append(act)  # the same value as the best in every seed: a tie
            elif c is None or not c.diff.testable:
                unknown.append(act)
            elif c.p_holm < ALPHA:
                worse.append(act)
            else:
                top.append(act)
        if len(unknown) == len(order) - 1 and unknown:
            parts = [f"{named(order, means)} (too few seeds to call any difference)"]
        else:
            parts = [f"top group {named(top, means)}"]
            parts += [f"significantly worse than {best}: {named(worse, means)}"] if worse else []
            parts += [f"not testable against {best} (too few seeds, or no spread over seeds): "
                      f"{named(unknown, means)}"] if unknown else []
            n_called += 1
            tops += top
        parts += [f"diverged in every seed: {', '.join(gone)}"] if gone else []
        lines.append(f"{setting_text(others, values)}: " + "; ".join(parts))
    if n_called and len(lines) > 1:
        counts = pd.Series(tops).value_counts()
        summary = ", ".join(f"{a} {counts.get(a, 0)}/{n_called}"
                            for a in sorted(acts, key=lambda a: -counts.get(a, 0)))
        lines.insert(0, f"Across the {n_called} settings with enough seeds to compare, how often "
                        f"each activation is in the top group by {metric.label} (the best, or not "
                        f"significantly worse): {summary}.")
    elif not n_called and lines:
        lines.insert(0, f"Too few seeds (fewer than {MIN_SEEDS} with a finite {metric.label} per "
                        "activation) to call any difference between activations.")
    return lines
