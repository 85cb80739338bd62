"""Figures over training: loss and accuracy curves (1), each layer over training (9), and
the accumulation curves (11), mean over seeds with 95% t-interval bands."""

from __future__ import annotations

import matplotlib.pyplot as plt
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
    facet_grid,
    facet_keys,
    held_text,
    labelled,
    line_with_band,
    log_floor,
    one_legend,
)
from bench.results.reader import RunData, equals, show
from bench.training.activations import ACTIVATIONS

# -- 1. curves ------------------------------------------------------------------------------------

def fig_curves(run: RunData, section: Section, metric: str) -> Figure | None:
    if metric not in run.curves or ACTIVATION not in section.frame:
        return None
    facets = facet_keys(section)
    frame, fixed = at_reference(section, facets)
    data = labelled(by_trial(frame, run.curves, facets), facets)
    if data.empty or not data[metric].notna().any():
        return None
    with sns.axes_style("whitegrid"):
        grid = facet_grid(data, facets)
        for ax, (_, sub) in zip(grid.axes.flat, grid.facet_data()):
            for act, g in sub.groupby(ACTIVATION, sort=False):
                line_with_band(ax, g, "epoch", metric, act, color(act))
        grid.set_axis_labels("epoch", f"train {metric}")  # the curves are on the training split
        grid.set_titles(row_template="{row_name}", col_template="{col_name}")
        if metric == "loss":
            means = data.groupby([ACTIVATION, "epoch", *[short(k) for k in facets]])[metric].mean()
            for ax in grid.axes.flat:
                ax.set_yscale("log")
                log_floor(ax, means)
        grid.figure.subplots_adjust(top=0.86 if len(grid.axes) > 1 else 0.8)
        one_legend(grid.figure, grid.axes)
    what = "training loss (log scale)" if metric == "loss" else "training accuracy"
    return Figure(f"fig1_{metric}", f"Training {metric} curves per activation",
                  f"Mean {what} over seeds with its 95% t-interval band, after each logged epoch "
                  f"(epoch 0 = at initialization).{held_text(fixed)}", grid.figure)


# -- 3b. each layer over training (Glorot & Bengio's figure 2) ------------------------------------

def fig_layers_over_training(run: RunData, section: Section) -> Figure | None:
    """For bounded activations in nets of two or more hidden layers: each layer's mean output
    and its saturated share over training, one column per activation (and per init, when the
    init is varied)."""
    if run.layers.empty or ACTIVATION not in section.frame:
        return None
    inits = ["model.init"] if "model.init" in section.keys else []
    frame, fixed = at_reference(section, inits)
    acts = [a for a in run.levels(ACTIVATION, frame)
            if base(a) in ACTIVATIONS and ACTIVATIONS[base(a)].bounds is not None]
    layers = by_trial(frame[frame[ACTIVATION].isin(acts)], run.layers, inits)
    if layers.empty:
        return None
    if layers["layer"].max() < 1:
        raise NothingToShow("The figure of each hidden layer over training is left out: the "
                            "nets have one hidden layer, so there are no layers to compare.")
    panels = [(act, level) for act in acts
              for level in (run.levels(inits[0], frame) if inits else [None])]
    depth = int(layers["layer"].max()) + 1
    palette = sns.color_palette("viridis", depth)
    rows = [("activation_mean", "mean output of the layer"),
            ("saturated_fraction", "saturated units (%)")]
    never = ""
    if not (layers["saturated_fraction"].fillna(0) > 0).any():  # a flat zero says nothing
        rows = rows[:1]
        never = " No unit of these layers saturated at any logged epoch of any trial shown."
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(len(rows), len(panels), squeeze=False, sharex=True,
                                 sharey="row", figsize=(3.0 * len(panels) + 1.4, 2.6 * len(rows)))
        for c, (act, level) in enumerate(panels):
            sub = layers[layers[ACTIVATION] == act]
            if level is not None:
                sub = sub[equals(sub[inits[0]], level)]
            for r, (column, label) in enumerate(rows):
                ax = axes[r, c]
                for layer, g in sub.groupby("layer"):
                    g = g.assign(value=g[column] * (100 if column == "saturated_fraction" else 1))
                    line_with_band(ax, g, "epoch", "value", f"layer {layer}",
                                    palette[int(layer)])
                if column == "saturated_fraction":
                    ax.set_ylim(-3, 103)
                if r == 0:
                    title = str(act) + (f", {show(level)}" if level is not None else "")
                    ax.set_title(title, color=color(act), fontsize=10)
                if c == 0:
                    ax.set_ylabel(label, fontsize=9)
                if r == len(rows) - 1:
                    ax.set_xlabel("epoch")
        fig.tight_layout()
        one_legend(fig, axes, right=True)
    per_init = " One column per activation and init." if inits else ""
    return Figure("fig9_layers_over_training", "Each hidden layer over training",
                  "Per hidden layer (0 = nearest the input; lighter = nearer the output): the mean "
                  "of its output and the share of its units saturated (within 0.01 of a bound "
                  "for every sample), mean over seeds with a 95% t-interval band, bounded "
                  "activations only. Glorot & Bengio (2010) saw sigmoid's top hidden layer "
                  f"driven to 0, its saturated bound, early in training.{per_init}{never}"
                  f"{held_text(fixed)}", fig)


def fig_accumulation_curves(run: RunData, section: Section) -> Figure | None:
    """Loss per epoch, one line per k, in a panel per lr_scaling / optimizer (or whichever
    keys are varied besides k): does the lr rule keep the per-epoch progress of larger steps?"""
    key = "train.accumulation_steps"
    if key not in section.keys or ACTIVATION not in section.frame or run.curves.empty:
        return None
    acts = run.levels(ACTIVATION, section.frame)
    # Panels: the activations (or variants) as rows when there are several, then up to two
    # other varied keys (lr_scaling, optimizer, ...).
    facets = facet_keys(section, 1 if len(acts) > 1 else 2)
    if not facets and len(acts) < 2:
        return None  # figure 6 overlays the curves of the smallest and largest k already
    frame, fixed = at_reference(section, [key, *facets])
    ks = sorted(run.levels(key, frame))
    data = by_trial(frame, run.curves, [key, *facets])
    if len(acts) > 1:
        data = data.assign(series=data[ACTIVATION].astype(str))
        data = labelled(data, facets)
        panels = ["series", *[short(f) for f in facets]]
    else:
        data = labelled(data, facets)
        panels = [short(f) for f in facets]
    if data.empty:
        return None
    palette = dict(zip(ks, sns.color_palette("flare", len(ks))))
    row = panels[0] if len(panels) == 2 else None
    col = panels[-1]
    with sns.axes_style("whitegrid"):
        grid = sns.FacetGrid(data, row=row, col=col, height=2.8, aspect=1.35, sharey=False,
                             margin_titles=True, despine=False)
        for ax, (_, sub) in zip(grid.axes.flat, grid.facet_data()):
            for k in ks:
                line_with_band(ax, sub[sub[key] == k], "epoch", "loss", f"k = {k}", palette[k])
            ax.set_yscale("log")
        grid.set_axis_labels("epoch", "training loss")
        grid.set_titles(row_template="{row_name}", col_template="{col_name}")
        grid.figure.subplots_adjust(top=0.86 if len(grid.axes) > 1 else 0.8)
        one_legend(grid.figure, grid.axes)
    full = set(map(str, frame["train.batch_size"])) == {"full"} if "train.batch_size" in frame else False
    why = ("With the full batch there is one step per epoch whatever k is: k only splits it, so "
           "at equal lr the lines lie on each other, and a scaled lr (lr_scaling) makes larger "
           "k take larger steps." if full else
           "A larger k takes fewer, larger steps per epoch: where the lr rule compensates "
           "(linear scaling with SGD), the lines lie on each other; without it, larger k falls "
           "behind.")
    return Figure("fig11_accumulation_curves", "Loss per epoch for each accumulation k",
                  "Mean training loss over seeds with its 95% t-interval band, one line per k "
                  f"(micro-batches per optimizer step). {why}{held_text(fixed)}", grid.figure)
