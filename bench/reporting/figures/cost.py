"""Figures of the cost: time per epoch and peak memory (5), and what accumulation costs (6)."""

from __future__ import annotations

import math
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from bench.analysis.formatting import short, unit_for
from bench.analysis.statistics import mean_ci
from bench.analysis.summary import ACTIVATION, Section
from bench.reporting.figures.kit import (
    Figure,
    at_reference,
    by_trial,
    color,
    held_text,
    line_with_band,
)
from bench.results.reader import RunData, equals, show

# -- 5. time per epoch ------------------------------------------------------------------------------

def fig_timing(run: RunData, section: Section) -> Figure | None:
    frame = section.frame
    if ACTIVATION not in frame or not frame["time_per_epoch_s"].notna().any():
        return None
    unit, scale = unit_for("seconds", frame["time_per_epoch_s"])
    data = frame.assign(time=frame["time_per_epoch_s"] * scale)
    hue = "train.device" if "train.device" in section.keys else None
    col = "train.accumulation_steps" if "train.accumulation_steps" in section.keys else None
    panels = run.levels(col, data) if col else [None]
    acts = run.levels(ACTIVATION, data)
    pooled = [short(k) for k in section.keys if k not in (ACTIVATION, hue, col)]
    if hue:
        devices = run.levels(hue, data)
        style = {"hue": hue, "hue_order": devices,
                 "palette": dict(zip(devices, sns.color_palette("Set1", len(devices))))}
    else:
        style = {"hue": ACTIVATION, "palette": {a: color(a) for a in acts}}
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels) + 1.2, 3.2),
                                 squeeze=False)
        for ax, level in zip(axes.flat, panels):
            sub = data if col is None else data[equals(data[col], level)]
            with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11 a deprecated arg
                warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
                sns.boxplot(sub, x=ACTIVATION, y="time", order=acts, fliersize=0, ax=ax,
                            boxprops={"alpha": 0.55}, legend=bool(hue), **style)
            dots = ({"hue": hue, "hue_order": style["hue_order"], "dodge": True, "legend": False,
                     "palette": dict.fromkeys(style["hue_order"], "0.15")} if hue else {"color": "0.15"})
            state = np.random.get_state()  # seaborn jitters with numpy's global RNG: the same
            np.random.seed(0)              # report from the same run, without touching callers
            try:
                sns.stripplot(sub, x=ACTIVATION, y="time", order=acts, size=2.5, jitter=0.15,
                              ax=ax, **dots)
            finally:
                np.random.set_state(state)
            ax.set_title(f"{short(col)} = {show(level)}" if col else "")
            ax.set_xlabel("activation")
            ax.set_ylabel(f"time per epoch ({unit})" if ax is axes.flat[0] else "")
            ax.set_ylim(bottom=0)
            if hue and ax is not axes.flat[-1] and ax.get_legend():
                ax.get_legend().remove()
        if hue:
            sns.move_legend(axes.flat[-1], "upper left", bbox_to_anchor=(1.0, 1.0), title="device")
        fig.tight_layout()
    devices = ", ".join(sorted(frame["device_name"].dropna().unique()))
    return Figure("fig5_timing", "Time per epoch",
                  "Wall time per epoch after the first (warm-up), logging included: one dot per "
                  f"trial, boxes over trials{' pooled over ' + ', '.join(pooled) if pooled else ''}. "
                  f"Devices: {devices}.", fig)


# -- 6. accumulation ------------------------------------------------------------------------------

def fig_accumulation(run: RunData, section: Section) -> Figure | None:
    key = "train.accumulation_steps"
    if key not in section.keys or ACTIVATION not in section.frame:
        return None
    frame, fixed = at_reference(section, [key])
    ks = sorted(run.levels(key, frame))
    main = section.main
    mem_unit, mem_scale = unit_for("bytes", frame["peak_memory_bytes"])
    m_unit, m_scale = main.unit(frame[main.column])
    panels = [("peak_memory_bytes", f"peak memory ({mem_unit})", mem_scale),
              (main.column, f"{main.label}" + (f" ({m_unit})" if m_unit else ""), m_scale)]
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
        acts = run.levels(ACTIVATION, frame)
        offsets = np.linspace(-0.12, 0.12, len(acts)) if len(acts) > 1 else [0.0]
        for ax, (column, label, scale) in zip(axes, panels):
            for off, act in zip(offsets, acts):
                g = frame[frame[ACTIVATION] == act]
                est = [mean_ci(g.loc[g[key] == k, column] * scale) for k in ks]
                x = np.arange(len(ks)) + off
                mean = np.array([e.mean for e in est])
                half = np.array([e.half_width if math.isfinite(e.half_width) else 0 for e in est])
                ax.errorbar(x, mean, yerr=half, marker="o", capsize=3, color=color(act), label=act)
            ax.set_xticks(range(len(ks)), [str(k) for k in ks])
            ax.set_xlabel("accumulation steps k")
            ax.set_ylabel(label)
        if frame["peak_memory_bytes"].notna().any():
            axes[0].set_ylim(bottom=0)
        ax = axes[2]
        lo, hi = ks[0], ks[-1]
        curves = by_trial(frame, run.curves, [key])
        for act in acts:
            for k, ls in ((lo, "-"), (hi, "--")):
                g = curves[(curves[ACTIVATION] == act) & (curves[key] == k)]
                line_with_band(ax, g, "epoch", "loss", f"{act}, k = {k}", color(act), ls=ls)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.set_title(f"k = {lo} (solid) vs k = {hi} (dashed)", fontsize=10)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.9))
    lr_scaling = run.fixed.get("train.lr_scaling", "as set per trial")
    return Figure("fig6_accumulation", "Gradient accumulation: what it costs and saves",
                  "Left: peak memory of a training step; middle: "
                  f"{main.label}; both against the number of micro-batches k per optimizer step, "
                  "mean over seeds with 95% t-intervals. Right: the loss curves of the smallest and "
                  f"largest k overlaid. lr scaling: {lr_scaling}.{held_text(fixed)}", fig)
