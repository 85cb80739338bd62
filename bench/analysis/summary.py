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

from bench import schema
from bench.analysis.formatting import estimate, setting_text, short, sig, signed, unit_for
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


def sections(run: RunData) -> list[Section]:
    out = []
    tuned = tuned_keys(run)
    ran = evaluated(run)
    for task in run.levels("task.kind", ran):
        frame = ran[ran["task.kind"] == task]
        keys = [k for k in run.varied_keys if k != "task.kind" and k not in tuned
                and keyed(frame[k]).nunique(dropna=False) > 1]
        problem = _problem(frame)
        main = main_metric(frame, problem)
        tune_metric = (run.manifest.get("tuning") or {}).get("metric", "")
        if tune_metric.startswith("final_val_") and tune_metric.replace("_val_", "_test_") in frame:
            main = BY_COLUMN[tune_metric.replace("_val_", "_test_")]  # the test twin of the pick's
        metrics = [m for m in METRICS if m.column in frame and frame[m.column].notna().any()]
        section = Section(str(task), problem, frame, keys, main, metrics, headline(frame, keys, metrics))
        if ACTIVATION in keys:
            section.comparisons = pairwise(frame, keys, ACTIVATION, main)
            section.ranking = rankings(frame, keys, main, section.comparisons)
        section.findings = findings(run, section)
        out.append(section)
    return out


def _problem(frame: pd.DataFrame) -> str:
    from bench.training.tasks import TASKS

    kinds = {TASKS[k][0].problem for k in frame["task.kind"].unique() if k in TASKS}
    if any(k not in TASKS for k in frame["task.kind"].unique()):  # a user task: accuracy is
        kinds.add("classification" if frame["final_accuracy"].notna().any()  # recorded for
                  else "regression")  # classification only
    return kinds.pop() if len(kinds) == 1 else "classification"


def _groups(frame: pd.DataFrame, keys: list[str]):
    """(values tuple, sub-frame) per distinct setting of ``keys``, in first-seen order."""
    if not keys:
        yield (), frame
        return
    labels = settings(frame, keys)
    for values in dict.fromkeys(labels):
        yield values, frame[equals(labels, values)]


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

    for values, group in _groups(frame, others):
        means = {act: mean_ci(g[metric.column]).mean for (act,), g in _groups(group, [ACTIVATION])}
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
                if line.startswith(("Across", "Too few"))]
        out += best_and_fastest(section)
        out += _dies_or_saturates(run, section)
    accumulation = [Finding(_FACTOR_LABELS["train.accumulation_steps"], text)
                    for text in accumulation_effect(section)]
    for key in section.keys:
        if key == "variant" and accumulation:
            continue  # the variants are accumulation settings, compared just below
        if key not in (ACTIVATION, "train.accumulation_steps"):
            out += [Finding(_FACTOR_LABELS.get(key, f"What {short(key)} changes"), text)
                    for text in factor_effect(section, key)]
    return out + accumulation


# The keys that make up an accumulation setting; every other config key must match for two
# settings to be compared.
_STEP_KEYS = ("train.batch_size", "train.accumulation_steps", "train.lr_scaling", "train.lr")


def _step(group: pd.DataFrame, n_train: float) -> dict:
    row = group.iloc[0]
    k, b = int(row["train.accumulation_steps"]), str(row["train.batch_size"])
    batch = n_train if b == "full" else int(b)
    return {"k": k, "b": b, "effective": k * batch if b != "full" else n_train,
            "lr": float(row["lr_effective"]), "base": float(row["train.lr"]),
            "rule": str(row["train.lr_scaling"])}


def _describe_step(st: dict) -> str:
    micro = "the full batch" if st["b"] == "full" else f"{st['b']}"
    shape = (f"k = {st['k']} micro-batches of {micro}" if st["k"] > 1
             else f"one batch of {micro} per step")
    lr = f"lr {st['lr']:g}"
    if st["k"] > 1 and st["rule"] != "none":
        lr += f" = {st['base']:g} x {'k' if st['rule'] == 'linear' else 'sqrt(k)'}"
    eff = "the full batch" if st["b"] == "full" else str(int(st["effective"]))
    return f"{shape} (effective batch {eff}, {lr})"


def accumulation_effect(section: Section) -> list[str]:
    """Each accumulated setting (k > 1) against one micro-batch per step (the same micro-batch)
    and against the true batch of k·B at k = 1, all other config equal: the main metric's
    difference (Welch), time per epoch and peak memory, naming both sides' effective batch and
    effective lr. With the full batch, k micro-batches are the same step: only the lr can
    differ, and the sentence says so."""
    frame = section.frame
    if "train.accumulation_steps" not in frame or not (frame["train.accumulation_steps"] > 1).any():
        return []
    main = section.main
    unit, scale = main.unit(frame[main.column])
    d_unit = f" {main.diff_unit}" if main.diff_unit else unit
    config = [c for c in frame.columns if c.startswith(("task.", "model.", "train."))
              and c not in _STEP_KEYS]
    groups = list(_groups(frame, config + list(_STEP_KEYS)))
    out = []
    for values, group in groups:
        rest = dict(zip(config, values))
        n_train = group["samples_per_s"].mul(group["time_per_epoch_s"]).median()
        st = _step(group, round(n_train) if math.isfinite(n_train) else math.nan)
        if st["k"] < 2:
            continue
        for other_values, other in groups:
            if dict(zip(config, other_values)) != rest or other is group:
                continue
            ot = _step(other, st["effective"] if st["b"] == "full" else math.nan)
            if ot["k"] != 1:
                continue
            same_micro = ot["b"] == st["b"]
            true_batch = st["b"] != "full" and ot["b"] != "full" and int(ot["b"]) == st["effective"]
            if not (same_micro or true_batch):
                continue
            d = welch(group[main.column], other[main.column])
            if not math.isfinite(d.diff):
                continue
            called = ("significant, p = " + f"{d.p:.2g}" if d.significant() else
                      "not significant" + (f", p = {d.p:.2g}" if math.isfinite(d.p) else ""))
            mdd = d.detectable()
            detect = (f"; these seeds detect differences of {sig(mdd * scale, 2)}{d_unit} or more"
                      if math.isfinite(mdd) else "")
            why = ""
            if st["b"] == "full":
                why = (" With the full batch the k micro-batches make the same step as one "
                       "batch: the step's batch does not grow, and any difference is the lr's.")
            elif same_micro:
                why = (" The same micro-batch: the step sees k times the samples, and takes k "
                       "times fewer steps per epoch.")
            else:
                why = (" The same samples per step, in micro-batches: at the same effective lr the "
                       "steps are the same.")
            cost = []
            for column, label, _kind in (("time_per_epoch_s", "time per epoch", "seconds"),
                                        ("peak_memory_bytes", "peak memory", "bytes")):
                a_val, b_val = group[column].dropna(), other[column].dropna()
                if len(a_val) and len(b_val) and b_val.mean() > 0:
                    cost.append(f"{label} ×{sig(a_val.mean() / b_val.mean(), 2)}")
            out.append(f"{_describe_step(st)} vs {_describe_step(ot)}: {main.label} "
                       f"{signed(d.diff * scale)}{d_unit} ({called}, {d.n_a} vs {d.n_b} seeds"
                       f"{detect}); {', '.join(cost)}.{why}")
    return out


def best_and_fastest(section: Section) -> list[Finding]:
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
        setting = setting_text(list(row.point), tuple(row.point.values()))
        shown = f"{estimate(est, scale)}{unit}"
        if est.half_width == 0:
            shown += f" (the same in each of its {est.n} seeds)"
        elif math.isfinite(est.half_width):
            shown += f" (95% t-interval over {est.n} seeds)"
        tied = _tied_with(section, row, est)
        if len(tied) < 2:
            out.append(Finding("Best setting", f"{main.label} {shown} at {setting}."))
        else:
            out.append(Finding("No single best setting", _tie_text(section, tied, shown, scale, unit)))
            if main.column != "final_loss" and "final_loss" in frame:
                out += _lowest_loss(section)
    out += _fastest(section)
    return out


# A share within half a point of its bound (100% accuracy, 0% dead units) is at the ceiling of
# the measurement: what is left to separate the settings is a few samples, not the activations.
CEILING = 0.005


def at_ceiling(metric: Metric, mean: float) -> bool:
    if metric.kind != "fraction" or not math.isfinite(mean):
        return False
    return mean >= 1 - CEILING if metric.better == "max" else mean <= CEILING


def _tied_with(section: Section, row, est) -> list:
    """The rows the best one cannot be told from by its mean: the same mean, or, when the best
    is at the ceiling of a share, every row at the ceiling too (best first)."""
    main = section.main
    ceiling = at_ceiling(main, est.mean)
    tied = [row]
    for r in section.rows:
        other = r.estimates.get(main.column)
        if r is row or other is None:
            continue
        if other.mean == est.mean or (ceiling and at_ceiling(main, other.mean)):
            tied.append(r)
    return tied


def _tie_text(section: Section, tied: list, shown: str, scale: float, unit: str) -> str:
    main = section.main
    names = [setting_text(list(r.point), tuple(r.point.values())) for r in tied]
    listed = "; ".join(names[:6]) + (f"; and {len(names) - 6} more" if len(names) > 6 else "")
    best = tied[0].estimates[main.column].mean
    if at_ceiling(main, best):
        bound = "100%" if main.better == "max" else "0%"
        return (f"a tie at the ceiling: {len(tied)} settings have a {main.label} within "
                f"{sig(100 * CEILING)} points of {bound} (the best {shown}): {listed}. This "
                f"measurement is saturated and cannot rank them; compare them on a harder task "
                f"or another metric.")
    return f"a tie: {len(tied)} settings share the best {main.label}, {shown}: {listed}."


def _fastest(section: Section) -> list[Finding]:
    """Which activation reaches the target first, compared only where every activation reached
    it in every seed (a pooled mean would favour whoever skipped its slow settings)."""
    frame = section.frame
    if "epochs_to_target" not in frame or "train.target.metric" not in frame:
        return []
    target = frame["train.target.metric"].dropna()
    if not len(target):
        return []
    goal = f"{target.iloc[0]} {show(frame['train.target.value'].iloc[0])}"
    others = [k for k in section.keys if k != ACTIVATION]
    wins, n = [], 0
    for _, group in _groups(frame, others):
        per_act = dict(_groups(group, [ACTIVATION]))
        if len(per_act) < 2 or any(g["epochs_to_target"].isna().any() for g in per_act.values()):
            continue
        n += 1
        means = {act: g["epochs_to_target"].mean() for (act,), g in per_act.items()}
        fastest = min(means.values())
        wins += [a for a, m in means.items() if m == fastest]
    coverage = "; ".join(f"{act} {g['epochs_to_target'].notna().sum()}/{len(g)}"
                         for (act,), g in _groups(frame, [ACTIVATION]))
    if n:
        counts = pd.Series(wins).value_counts()
        ranking = ", ".join(f"{a} in {c}" for a, c in counts.items())
        text = (f"fewest epochs to {goal} (mean over seeds), among the {n} setting"
                f"{'s' if n > 1 else ''} where every activation reached it in every seed: "
                f"{ranking}. Trials that reached it: {coverage}.")
    else:
        text = (f"no setting where every activation reached {goal} in every seed. Trials that "
                f"reached it: {coverage}.")
    return [Finding("Fastest to the target", text)]


def _lowest_loss(section: Section) -> list[Finding]:
    """The tie-breaker when many settings share the best accuracy: the lowest final loss."""
    rows = [r for r in section.rows if math.isfinite(r.estimates["final_loss"].mean)]
    if not rows:
        return []
    row = min(rows, key=lambda r: r.estimates["final_loss"].mean)
    est = row.estimates["final_loss"]
    spread = f" ± {sig(est.half_width, 2)}" if math.isfinite(est.half_width) else ""
    return [Finding("Lowest final loss", f"{sig(est.mean)}{spread} at "
                    f"{setting_text(list(row.point), tuple(row.point.values()))}.")]


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
            parts.append(f"{act} {sig(100 * values.mean())}% on average, up to "
                         f"{sig(100 * values.max())}% ({setting_text(where, run.point(worst, where))}, "
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


# Keys that change what a step computes, and so its time and memory.
_COST_KEYS = ("train.accumulation_steps", "train.device", "train.batch_size", "model.hidden",
              "task.points_per_class", "task.points", "task.classes", "model.activation",
              "model.kind", "model.channels", "model.kernel", "model.stride", "model.residual")


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
        va = group.loc[equals(group[key], a), column].dropna()
        vb = group.loc[equals(group[key], b), column].dropna()
        if len(va) and len(vb) and va.mean() > 0:
            ratios.append(vb.mean() / va.mean())
            a_vals.append(va.mean())
            b_vals.append(vb.mean())
    if not ratios:
        return None
    ratio = float(np.exp(np.mean(np.log(ratios))))
    if key not in _COST_KEYS:
        return None  # a time ratio over, say, task.noise is timing noise, not a cost
    unit, scale = unit_for(kind, a_vals + b_vals)
    spread = (f", ×{sig(min(ratios), 2)} to ×{sig(max(ratios), 2)} across settings"
              if max(ratios) > 1.25 * min(ratios) else "")
    return (f"×{sig(ratio, 2)} ({sig(np.median(a_vals) * scale, 2)} → "
            f"{sig(np.median(b_vals) * scale, 2)} {unit}, medians{spread})")
