"""The per-layer gradient figure (4): weight-gradient norms and backprop std by depth."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from bench.analysis.summary import ACTIVATION, Section
from bench.reporting.figures.kit import (
    Figure,
    NothingToShow,
    at_reference,
    by_trial,
    color,
    held_text,
    one_legend,
    t_band,
)
from bench.results.reader import RunData, equals, show

# -- 4. gradients per layer at init and at the end -------------------------------------------------

def fig_gradients(run: RunData, section: Section) -> Figure | None:
    """Per hidden layer, at init and at the end: activation std, weight-gradient norm and
    backprop_grad_std (rows), one column per init when the init is varied, side by side."""
    if run.layers.empty or ACTIVATION not in section.frame:
        return None
    inits = ["model.init"] if "model.init" in section.keys else []
    frame, fixed = at_reference(section, inits)
    layers = by_trial(frame, run.layers, inits)
    if layers.empty:
        return None
    last = layers.groupby("trial_id")["epoch"].transform("max")
    first = layers.groupby("trial_id")["epoch"].transform("min")
    layers = layers.assign(when=np.where(layers["epoch"] == first, "at init", "at the end"))
    layers = layers[(layers["epoch"] == first) | (layers["epoch"] == last)]
    measures = [("activation_std", "std of the layer's output"),
                ("weight_grad_norm", "‖dL/dW‖ of the layer"),
                ("backprop_grad_std", "std of dL/d(pre-activation)")]
    measures = [m for m in measures if m[0] in layers and (layers[m[0]] > 0).any()]
    if not measures:
        return None
    cols = run.levels(inits[0], frame) if inits else [None]
    depth = int(layers["layer"].max()) + 1
    if depth < 2:
        raise NothingToShow("The per-layer figure of signal and gradients is left out: the nets "
                            "have one hidden layer, so it would be a single position; the layers "
                            "table holds its values (bench.open_run(...).layers).")
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(len(measures), len(cols), squeeze=False, sharex=True,
                                 sharey="row", figsize=(3.2 * len(cols) + 0.15 * depth + 1.6,
                                                        2.6 * len(measures)))
        for r, (column, label) in enumerate(measures):
            shown = np.isfinite(layers[column]) & (layers[column] > 0)
            means = layers[shown].groupby(
                [ACTIVATION, "when", "layer", *inits])[column].mean()
            for c, level in enumerate(cols):
                ax = axes[r, c]
                sub_init = layers if level is None else layers[equals(layers[inits[0]], level)]
                _draw_by_depth(ax, sub_init, column)
                ax.set_yscale("log")
                if len(means):  # the means decide the scale; a wide t-interval is clipped
                    ax.set_ylim(means.min() / 3, means.max() * 3)
                if r == 0 and level is not None:
                    ax.set_title(f"init = {show(level)}", fontsize=10)
                if c == 0:
                    ax.set_ylabel(label, fontsize=9)
                if r == len(measures) - 1:
                    ax.set_xlabel("hidden layer (0 = nearest the input)")
                ax.set_xticks(range(0, depth, max(1, depth // 10)))
        fig.tight_layout()
        one_legend(fig, axes, right=True)
    side = " One column per init." if inits else ""
    return Figure("fig4_gradients", "Signal and gradients per layer, at init and at the end",
                  "Per hidden layer: the std of its output (activation_std), the norm of the loss "
                  "gradient with respect to its weights, and the std of the gradient with respect "
                  "to its pre-activations (backprop_grad_std), at epoch 0 (dashed, open) and the "
                  "last epoch (solid). Mean over seeds with 95% t-intervals, log scale. An output "
                  "std that falls with depth is a vanishing signal; gradients that shrink towards "
                  f"the input are the vanishing gradient.{side}{held_text(fixed)}", fig)


_WHEN_STYLES = (("at init", dict(ls="--", marker="o", mfc="white")),
                ("at the end", dict(ls="-", marker="o")))


def _draw_by_depth(ax, layers, column: str) -> None:
    """One line per activation and time (init dashed and open, end solid) over the layers:
    the mean over seeds with its 95% t-interval, positive values only (a log axis)."""
    for act, g in layers.groupby(ACTIVATION, sort=False):
        for when, style in _WHEN_STYLES:
            sub = g[(g["when"] == when) & np.isfinite(g[column]) & (g[column] > 0)]
            band = t_band(sub, "layer", column)
            if band.empty:
                continue
            ax.errorbar(band["layer"], band["mean"],
                        yerr=[band["mean"] - band["low"].fillna(band["mean"]),
                              band["high"].fillna(band["mean"]) - band["mean"]],
                        color=color(act), label=f"{act}, {when}", capsize=2, lw=1.3, ms=4,
                        **style)
