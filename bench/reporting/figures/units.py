"""Figures of the units: dead and saturated fractions (3) and the share of dead nets (10)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench.analysis.formatting import short
from bench.analysis.summary import ACTIVATION, Section
from bench.reporting.figures.kit import (
    Figure,
    NothingToShow,
    at_reference,
    base,
    by_trial,
    color,
    facet_keys,
    held_text,
    labelled,
    line_with_band,
    one_legend,
)
from bench.results.reader import RunData, equals, keyed, show
from bench.training.activations import ACTIVATIONS

# -- 3. dead and saturated units over training ---------------------------------------------------

def fig_dead_saturated(run: RunData, section: Section) -> Figure | None:
    if run.layers.empty or ACTIVATION not in section.frame:
        return None
    facet = facet_keys(section, 1, exclude=("model.init",)) or facet_keys(section, 1)
    frame, fixed = at_reference(section, facet)
    layers = by_trial(frame, run.layers, facet)
    # one value per trial and epoch: the mean over its hidden layers
    per_trial = layers.groupby(["trial_id", "epoch"], as_index=False).agg(
        dead=("dead_fraction", "mean"), saturated=("saturated_fraction", "mean"))
    data = labelled(per_trial.merge(frame[["trial_id", ACTIVATION, *facet]], on="trial_id"), facet)
    rows, never = [], []
    families = (("dead", "relu_family", "dead units (ReLU family)", "died"),
                ("saturated", "bounded", "saturated units (bounded)", "saturated"))
    for column, family, label, verb in families:
        acts = [a for a in run.levels(ACTIVATION, frame) if base(a) in ACTIVATIONS and (
            ACTIVATIONS[base(a)].relu_family if family == "relu_family"
            else ACTIVATIONS[base(a)].bounds is not None)]
        values = data.loc[data[ACTIVATION].isin(acts), column].dropna()
        if not len(values):
            continue
        if values.max() == 0:  # a flat line at zero says nothing a sentence cannot
            never.append(f"No {' or '.join(acts)} unit {verb} at any logged epoch of any trial shown.")
            continue
        rows.append((column, acts, label))
    if not rows:
        if never:
            raise NothingToShow(" ".join(never) + " So the figure of dead and saturated units "
                                "over training is left out: its lines would lie flat at zero.")
        return None
    cols = run.levels(facet[0], frame) if facet else [None]
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.6 * len(cols), 2.7 * len(rows)),
                                 squeeze=False, sharex=True)
        for r, (column, acts, label) in enumerate(rows):
            for c, level in enumerate(cols):
                ax = axes[r, c]
                sub = data if not facet else data[equals(data[facet[0]], level)]
                for act in acts:
                    g = sub[sub[ACTIVATION] == act].assign(pct=lambda d, col=column: 100 * d[col])
                    line_with_band(ax, g, "epoch", "pct", act, color(act))
                ax.set_ylabel(f"{label} (%)" if c == 0 else "", fontsize=9)
                ax.set_ylim(bottom=0)
                if r == 0 and level is not None:
                    ax.set_title(f"{short(facet[0])} = {show(level)}")
                if r == len(rows) - 1:
                    ax.set_xlabel("epoch")
        fig.tight_layout(rect=(0, 0, 1, 0.92))
        handles = {}
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        if not handles:  # no shown trial has the curves (their activations sit elsewhere)
            plt.close(fig)
            return None
        fig.legend(list(handles.values()), list(handles.keys()), loc="upper center",
                   ncol=min(len(handles), 6), frameon=False)
    return Figure("fig3_dead_saturated", "Dead and saturated units over training",
                  "Share of hidden units that are dead (zero, or negative for leaky_relu, for every "
                  "training sample) or saturated (within 0.01 of a bound for every sample), mean over "
                  f"hidden layers, then over seeds with a 95% t-interval band.{held_text(fixed)}"
                  + "".join(" " + n for n in never), fig)


# -- 3c. nets with a dead layer, by depth and width (born dead, Lu et al.) ------------------------

def _wilson(dead: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: sound at 0 and 1, unlike mean +- t * se."""
    p = dead / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def fig_dead_nets(run: RunData, section: Section) -> Figure | None:
    """Share of nets with an all-dead hidden layer against depth, one line per width: with
    epochs = 0, the born-dead nets of Lu et al. (2019)."""
    frame = section.frame
    if ("all_dead_layer" not in frame or "model.hidden" not in section.keys
            or not (frame["all_dead_layer"] > 0).any()):
        return None
    facet = facet_keys(section, 1, exclude=("model.hidden",))
    frame, fixed = at_reference(section, ["model.hidden", *facet])
    frame = frame[frame["all_dead_layer"].notna()]
    # a cnn1d (model.kind) has no hidden widths: depth 0, left out below with the linear nets
    hidden = keyed(frame["model.hidden"]).map(lambda h: h if isinstance(h, tuple) else ())
    hidden = hidden.map(lambda h: tuple(int(w) for w in h))
    frame = frame.assign(depth=hidden.map(len),
                         width=hidden.map(lambda h: h[0] if h and len(set(h)) == 1 else None))
    frame = frame[frame["width"].notna() & (frame["depth"] > 0)]  # uniform nets only
    if frame.empty or frame["depth"].nunique() < 2:
        return None
    panels = [(act, level) for act in run.levels(ACTIVATION, frame)
              for level in (run.levels(facet[0], frame) if facet else [None])]
    widths = sorted(frame["width"].unique())
    palette = sns.color_palette("crest", len(widths))
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, len(panels), squeeze=False, sharey=True,
                                 figsize=(3.6 * len(panels) + 1.4, 3.0))
        for ax, (act, level) in zip(axes.flat, panels):
            sub = frame[frame[ACTIVATION] == act]
            if level is not None:
                sub = sub[equals(sub[facet[0]], level)]
            for colour, width in zip(palette, widths):
                g = sub[sub["width"] == width].groupby("depth")["all_dead_layer"]
                counts = pd.DataFrame({"dead": g.sum(), "n": g.count()}).reset_index()
                if counts.empty:
                    continue
                share = 100 * counts["dead"] / counts["n"]
                lohi = np.array([_wilson(int(d), int(n)) for d, n in
                                 zip(counts["dead"], counts["n"])]) * 100
                ax.errorbar(counts["depth"], share, yerr=[share - lohi[:, 0], lohi[:, 1] - share],
                            color=colour, marker="o", capsize=3, lw=1.5,
                            label=f"width {int(width)}")
            title = str(act) + (f", {short(facet[0])} = {show(level)}" if level is not None else "")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("hidden layers (depth)")
            ax.set_xticks(sorted(frame["depth"].unique()))
            ax.set_ylim(-3, 103)
        axes.flat[0].set_ylabel("nets with an all-dead layer (%)")
        fig.tight_layout()
        one_legend(fig, axes, right=True)
    epochs = set(frame["train.epochs"]) if "train.epochs" in frame else set()
    when = ("at initialization (epochs = 0): born dead" if epochs == {0}
            else "after training")
    return Figure("fig10_dead_nets", "Nets with an all-dead layer, by depth and width",
                  f"Share of seeds whose net has a hidden layer with every unit dead {when} "
                  "(all_dead_layer), with 95% Wilson intervals. Such a ReLU net outputs the same "
                  f"for every input, and no gradient reaches the layers below.{held_text(fixed)}", fig)
