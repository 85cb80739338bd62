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

import numpy as np
import pandas as pd

from .formatting import sig, signed, unit_for
from .rundata import RunData, hashable, show
from .stats import ALPHA, Difference, Estimate, holm, mean_ci, welch

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


METRICS = (
    Metric("final_loss", "final loss", "min"),
    Metric("final_accuracy", "final accuracy", "max", "fraction"),
    Metric("final_test_loss", "test loss", "min"),
    Metric("final_test_accuracy", "test accuracy", "max", "fraction"),
    Metric("best_loss", "best loss", "min"),
    Metric("epochs_to_target", "epochs to target", "min", "epochs"),
    Metric("dead_fraction", "dead units", "min", "fraction"),
    Metric("saturated_fraction", "saturated units", "min", "fraction"),
    Metric("time_per_epoch_s", "time / epoch", "min", "seconds"),
    Metric("peak_memory_bytes", "peak memory", "min", "bytes"),
)
BY_COLUMN = {m.column: m for m in METRICS}

SHORT_NAMES = {"train.accumulation_steps": "k", "model.activation": "activation"}


def short(key: str) -> str:
    """``train.lr`` -> ``lr``: the name a column header uses."""
    return SHORT_NAMES.get(key, key.split(".", 1)[-1])


def main_metric(frame: pd.DataFrame, problem: str) -> Metric:
    """What "better" means for a task: held-out accuracy where there is a test split, else
    training accuracy for classification and training loss for regression."""
    def has(column: str) -> bool:
        return column in frame and frame[column].notna().any()

    if problem == "classification":
        return BY_COLUMN["final_test_accuracy" if has("final_test_accuracy") else "final_accuracy"]
    return BY_COLUMN["final_test_loss" if has("final_test_loss") else "final_loss"]


def _context(keys: list[str], values: tuple) -> str:
    return ", ".join(f"{short(k)} = {show(v)}" for k, v in zip(keys, values)) or "all trials"


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
        if not self.diff.testable:
            return f"too few seeds (n = {self.diff.n_a}, {self.diff.n_b}) to call"
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


def sections(run: RunData) -> list[Section]:
    out = []
    for task in run.levels("task.kind", run.ran):
        frame = run.ran[run.ran["task.kind"] == task]
        keys = [k for k in run.varied_keys if k != "task.kind"
                and frame[k].map(hashable).nunique(dropna=False) > 1]
        problem = _problem(frame)
        main = main_metric(frame, problem)
        metrics = [m for m in METRICS if m.column in frame and frame[m.column].notna().any()]
        section = Section(str(task), problem, frame, keys, main, metrics, headline(frame, keys, metrics))
        if ACTIVATION in keys:
            section.comparisons = pairwise(frame, keys, ACTIVATION, main)
            section.ranking = rankings(frame, keys, main, section.comparisons)
        section.findings = findings(run, section)
        out.append(section)
    return out


def _problem(frame: pd.DataFrame) -> str:
    from .tasks import TASKS

    kinds = {TASKS[k][0].problem for k in frame["task.kind"].unique() if k in TASKS}
    return kinds.pop() if len(kinds) == 1 else "classification"


def _groups(frame: pd.DataFrame, keys: list[str]):
    """(values tuple, sub-frame) per distinct setting of ``keys``, in first-seen order."""
    if not keys:
        yield (), frame
        return
    labels = frame[keys].apply(lambda r: tuple(hashable(v) for v in r), axis=1)
    for values in dict.fromkeys(labels):
        yield values, frame[labels == values]


def headline(frame: pd.DataFrame, keys: list[str], metrics: list[Metric]) -> list[PointRow]:
    rows = []
    for values, group in _groups(frame, keys):
        estimates = {m.column: mean_ci(group[m.column]) for m in metrics}
        reached = None
        if "epochs_to_target" in group:
            reached = (int(group["epochs_to_target"].notna().sum()), len(group))
        rows.append(PointRow(dict(zip(keys, values)), len(group),
                             int((group["status"] == "diverged").sum()), estimates, reached))
    return rows


# -- comparisons ----------------------------------------------------------------------------------

def pairwise(frame: pd.DataFrame, keys: list[str], factor: str, metric: Metric) -> list[Comparison]:
    """Every pair of ``factor``'s levels, matched on the other keys, with Holm-corrected p."""
    others = [k for k in keys if k != factor]
    out = []
    for values, group in _groups(frame, others):
        levels = list(dict.fromkeys(group[factor].map(hashable)))
        samples = {lv: group.loc[group[factor].map(hashable) == lv, metric.column] for lv in levels}
        for a, b in itertools.combinations(levels, 2):
            out.append(Comparison(factor, dict(zip(others, values)), a, b,
                                  welch(samples[a], samples[b])))
    for c, p in zip(out, holm([c.diff.p for c in out])):
        c.p_holm = float(p)
    return out


def rankings(frame: pd.DataFrame, keys: list[str], metric: Metric,
             comparisons: list[Comparison]) -> list[str]:
    """One sentence per setting: activations best first, '>' where the step down is
    significant (Holm, α = 0.05), '≈' where it is not."""
    others = [k for k in keys if k != ACTIVATION]
    lookup = {(tuple(hashable(v) for v in c.context.values()), c.a, c.b): c for c in comparisons}
    unit, scale = metric.unit(frame[metric.column])
    lines, tops, n_settings = [], [], 0
    for values, group in _groups(frame, others):
        means = {lv: mean_ci(g[metric.column]).mean
                 for lv, g in _groups(group, [ACTIVATION])}
        order = sorted((lv for lv in means if math.isfinite(means[lv])),
                       key=lambda lv: means[lv], reverse=metric.better == "max")
        order = [lv[0] for lv in order]
        if not order:
            continue
        text = f"{order[0]} {sig(means[(order[0],)] * scale)}{unit}"
        for prev, nxt in zip(order, order[1:]):
            c = lookup.get((values, prev, nxt)) or lookup.get((values, nxt, prev))
            step = ">" if c and c.diff.testable and c.p_holm < ALPHA else "≈"
            text += f" {step} {nxt} {sig(means[(nxt,)] * scale)}{unit}"
        lines.append(f"{_context(others, values)}: {text}")
        n_settings += 1
        for act in order:  # the top group: not significantly worse than the best
            c = lookup.get((values, order[0], act)) or lookup.get((values, act, order[0]))
            if act == order[0] or not (c and c.diff.testable and c.p_holm < ALPHA):
                tops.append(act)
    if n_settings > 1:
        counts = pd.Series(tops).value_counts()
        acts = list(dict.fromkeys(frame[ACTIVATION]))
        summary = ", ".join(f"{a} {counts.get(a, 0)}/{n_settings}" for a in
                            sorted(acts, key=lambda a: -counts.get(a, 0)))
        lines.insert(0, f"Across the {n_settings} settings, how often each activation is in the "
                        f"top group by {metric.label} (the best, or not significantly worse): "
                        f"{summary}.")
    return lines


# -- findings: the sentences a reader wants first -------------------------------------------------

@dataclass(frozen=True)
class Finding:
    label: str   # the question it answers, as a short lead-in
    text: str


_FACTOR_LABELS = {"model.init": "What the init changes", "train.lr": "What the learning rate changes",
                  "train.accumulation_steps": "What accumulation costs and saves",
                  "train.device": "What the device changes"}


def findings(run: RunData, section: Section) -> list[Finding]:
    out = []
    if ACTIVATION in section.frame:
        out += [Finding("Which activation is best", line) for line in section.ranking[:1]
                if line.startswith("Across")]
        out += _best_and_fastest(section)
        out += _dies_or_saturates(run, section)
    for key in section.keys:
        if key != ACTIVATION:
            out += [Finding(_FACTOR_LABELS.get(key, f"What {short(key)} changes"), text)
                    for text in factor_effect(section, key)]
    return out


def _best_and_fastest(section: Section) -> list[Finding]:
    frame, main = section.frame, section.main
    unit, scale = main.unit(frame[main.column])
    best = None
    for row in section.rows:
        est = row.estimates.get(main.column)
        if est is None or not math.isfinite(est.mean):
            continue
        key = est.mean if main.better == "max" else -est.mean
        if best is None or key > best[0]:
            best = (key, row, est)
    out = []
    if best:
        _, row, est = best
        setting = _context(list(row.point), tuple(row.point.values()))
        shown = sig(est.mean * scale)
        ties = sum(1 for r in section.rows if main.column in r.estimates
                   and sig(r.estimates[main.column].mean * scale) == shown) - 1
        if est.half_width == 0:
            spread = f"in each of its {est.n} seeds"
        elif math.isfinite(est.half_width):
            spread = f"± {sig(est.half_width * scale, 2)}{unit} (95% t-interval over {est.n} seeds)"
        else:
            spread = "(one seed)"
        tie = f"; {ties} other setting{'s' if ties > 1 else ''} round to the same value" if ties else ""
        out.append(Finding("Best setting", f"{main.label} {shown}{unit} {spread}, at {setting}{tie}."))
        if ties and main.column != "final_loss" and "final_loss" in frame:
            out += _lowest_loss(section)
    if "epochs_to_target" in frame and "train.target.metric" in frame:
        target = frame["train.target.metric"].dropna()
        if len(target):
            goal = f"{target.iloc[0]} {show(frame['train.target.value'].iloc[0])}"
            parts = []
            for (act,), g in _groups(frame, [ACTIVATION]):
                reached = g["epochs_to_target"].dropna()
                if len(reached):
                    parts.append((reached.mean(), f"{act} {sig(reached.mean())} epochs "
                                                  f"({len(reached)}/{len(g)} trials reached it)"))
                else:
                    parts.append((math.inf, f"{act} never ({len(g)} trials)"))
            parts.sort(key=lambda p: p[0])
            out.append(Finding("Fastest to the target",
                               f"epochs to reach {goal}, mean over the trials that reached it: "
                               + "; ".join(p[1] for p in parts) + "."))
    return out


def _lowest_loss(section: Section) -> list[Finding]:
    """The tie-breaker when many settings share the best accuracy: the lowest final loss."""
    rows = [r for r in section.rows if math.isfinite(r.estimates["final_loss"].mean)]
    if not rows:
        return []
    row = min(rows, key=lambda r: r.estimates["final_loss"].mean)
    est = row.estimates["final_loss"]
    spread = f" ± {sig(est.half_width, 2)}" if math.isfinite(est.half_width) else ""
    return [Finding("Lowest final loss", f"{sig(est.mean)}{spread} at "
                    f"{_context(list(row.point), tuple(row.point.values()))}.")]


def _dies_or_saturates(run: RunData, section: Section) -> list[Finding]:
    frame = section.frame
    out = []
    for column, what in (("dead_fraction", "dead"), ("saturated_fraction", "saturated")):
        if column not in frame:
            continue
        parts = []
        for (act,), g in _groups(frame, [ACTIVATION]):
            values = g[column].dropna()
            if not len(values):
                continue
            if values.max() == 0:
                parts.append(f"{act} none in any of its {len(values)} trials")
                continue
            worst = g.loc[values.idxmax()]
            where = [k for k in section.keys if k != ACTIVATION]
            parts.append(f"{act} {sig(100 * values.mean(), 2)}% on average, up to "
                         f"{sig(100 * values.max(), 2)}% ({_context(where, run.point(worst, where))}, "
                         f"seed {worst['seed']})")
        if parts:
            out.append(Finding("Dead units" if what == "dead" else "Saturated units",
                               f"share of hidden units {what} for every training sample at the "
                               "end of training: " + "; ".join(parts) + "."))
    return out


def factor_effect(section: Section, key: str) -> list[str]:
    """What changing ``key`` does, matched on every other key: the main metric's verdicts,
    and for resources (accumulation, device) the ratio of time and peak memory."""
    frame, main = section.frame, section.main
    comps = pairwise(frame, section.keys, key, main)
    if not comps:
        return []
    unit, scale = main.unit(frame[main.column])
    out = []
    for a, b in dict.fromkeys((c.a, c.b) for c in comps):
        pair = [c for c in comps if (c.a, c.b) == (a, b)]
        verdicts = pd.Series([c.verdict(main) for c in pair]).value_counts()
        diffs = [c.diff.diff for c in pair if math.isfinite(c.diff.diff)]
        tally = ", ".join(f"{v} in {n}" for v, n in verdicts.items())
        d_unit = f" {main.diff_unit}" if main.diff_unit else unit
        mean_diff = (f"; mean difference ({show(b)} − {show(a)}) {signed(-np.mean(diffs) * scale)}{d_unit}"
                     if diffs else "")
        sentence = (f"{short(key)} = {show(b)} vs {show(a)}, over {len(pair)} matched "
                    f"setting{'s' if len(pair) != 1 else ''}, {main.label}: {tally}{mean_diff}.")
        resources = _resource_ratios(frame, section.keys, key, a, b)
        out.append(sentence + (" " + resources if resources else ""))
    return out


def _resource_ratios(frame, keys, key, a, b) -> str:
    """Geometric-mean ratio b/a of time per epoch and peak memory over matched settings, per
    device when the run has several: a CPU and a GPU do not cost alike."""
    by_device = "train.device" in keys and key != "train.device"
    devices = list(dict.fromkeys(frame["train.device"])) if by_device else [None]
    others = [k for k in keys if k not in (key, "train.device" if by_device else key)]
    parts = []
    for column, label, kind in (("time_per_epoch_s", "time per epoch", "seconds"),
                                ("peak_memory_bytes", "peak memory", "bytes")):
        if column not in frame:
            continue
        for device in devices:
            sub = frame if device is None else frame[frame["train.device"] == device]
            text = _ratio(sub, others, key, a, b, column, kind)
            if text:
                parts.append(f"{label}{' on ' + device if device else ''} {text}")
    return ("Cost: " + "; ".join(parts) + ".") if parts else ""


def _ratio(frame, others, key, a, b, column, kind) -> str | None:
    ratios, a_vals, b_vals = [], [], []
    for _, group in _groups(frame, others):
        va = group.loc[group[key].map(hashable) == a, column].dropna()
        vb = group.loc[group[key].map(hashable) == b, column].dropna()
        if len(va) and len(vb) and va.mean() > 0:
            ratios.append(vb.mean() / va.mean())
            a_vals.append(va.mean())
            b_vals.append(vb.mean())
    if not ratios:
        return None
    ratio = float(np.exp(np.mean(np.log(ratios))))
    if 0.9 <= ratio <= 1.1 and key not in ("train.accumulation_steps", "train.device"):
        return None  # only say it where it matters
    unit, scale = unit_for(kind, a_vals + b_vals)
    spread = (f", ×{sig(min(ratios), 2)} to ×{sig(max(ratios), 2)} across settings"
              if max(ratios) > 1.25 * min(ratios) else "")
    return (f"×{sig(ratio, 2)} ({sig(np.median(a_vals) * scale, 2)} → "
            f"{sig(np.median(b_vals) * scale, 2)} {unit}, medians{spread})")
