"""A report's findings: the plain sentences that say what a run found, each from the numbers
of its section (``summary``): the best setting and its ties, the fastest, where units die or
saturate, what a key changes, what accumulation does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis.formatting import estimate, setting_text, short, sig, signed, unit_for
from bench.analysis.statistics import welch
from bench.analysis.summary import ACTIVATION, Metric, Section, grouped, pairwise
from bench.results.reader import RunData, equals, show

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
    groups = list(grouped(frame, config + list(_STEP_KEYS)))
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
    for _, group in grouped(frame, others):
        per_act = dict(grouped(group, [ACTIVATION]))
        if len(per_act) < 2 or any(g["epochs_to_target"].isna().any() for g in per_act.values()):
            continue
        n += 1
        means = {act: g["epochs_to_target"].mean() for (act,), g in per_act.items()}
        fastest = min(means.values())
        wins += [a for a, m in means.items() if m == fastest]
    coverage = "; ".join(f"{act} {g['epochs_to_target'].notna().sum()}/{len(g)}"
                         for (act,), g in grouped(frame, [ACTIVATION]))
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
        for (act,), g in grouped(frame, [ACTIVATION]):
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
    for _, group in grouped(frame, others):
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
