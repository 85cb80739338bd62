"""Figures of what the grid reached: the heatmap over two keys (2), the lr sensitivity of
a tuned run (0), and the model bars of a run over model families (12)."""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench import schema
from bench.analysis.formatting import short
from bench.analysis.statistics import mean_ci
from bench.analysis.summary import ACTIVATION, Section
from bench.reporting.figures.kit import (
    Figure,
    NothingToShow,
    at_reference,
    color,
    facet_keys,
    held_text,
    one_legend,
    plain,
    plain_frame,
    t_band,
)
from bench.results.reader import RunData, equals, keyed, show

# -- 2. heatmap -----------------------------------------------------------------------------------

def fig_heatmap(run: RunData, section: Section) -> Figure | None:
    if ACTIVATION not in section.keys:
        return None
    facets = facet_keys(section, 3)
    if not facets:  # activation alone: the headline table already says it all
        return None
    across = "train.lr" if "train.lr" in facets else next(
        (k for k in facets if k != "model.init"), facets[0])
    panel_key = "model.init" if "model.init" in section.keys and across != "model.init" else None
    frame, fixed = at_reference(section, [across] + ([panel_key] if panel_key else []))
    main = section.main
    unit, scale = main.unit(frame[main.column])
    panels = run.levels(panel_key, frame) if panel_key else [None]
    acts = run.levels(ACTIVATION, frame)
    levels = run.levels(across, frame)
    with sns.axes_style("white"):
        fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 1.1 * len(levels) * len(panels)
                                 + 1.4 * len(panels), 0.9 + 0.45 * len(acts)), squeeze=False)
        tables, diverged = [], []
        for panel in panels:
            sub = frame if panel_key is None else frame[equals(frame[panel_key], panel)]
            table = pd.DataFrame(index=acts, columns=[show(v) for v in levels], dtype=float)
            gone = set()
            for (act, lv), g in sub.groupby([ACTIVATION, keyed(sub[across])], sort=False,
                                            dropna=False):
                table.loc[act, show(lv)] = mean_ci(g[main.column]).mean * scale  # finite seeds
                if (g["status"] == schema.DIVERGED).all():
                    gone.add((act, show(lv)))
            tables.append(table)
            diverged.append(gone)
        cells = np.concatenate([t.to_numpy().ravel() for t in tables])
        if not np.isfinite(cells).any():
            plt.close(fig)
            raise NothingToShow(f"The heatmap of {main.label} is left out: every cell diverged "
                                "(the headline table lists them).")
        lo, hi = np.nanmin(cells), np.nanmax(cells)
        # losses that span orders of magnitude (a near-divergence) need a log colour scale
        log = lo > 0 and hi / lo > 100
        scale_kw = ({"norm": matplotlib.colors.LogNorm(vmin=lo, vmax=hi)} if log
                    else {"vmin": lo, "vmax": hi})
        for ax, panel, table, gone in zip(axes.flat, panels, tables, diverged):
            sns.heatmap(table, ax=ax, annot=True, fmt=".1f" if unit == "%" else ".3g",
                        cmap="viridis_r" if main.better == "min" else "viridis",
                        cbar=ax is axes.flat[-1], **scale_kw,
                        cbar_kws={"label": f"{main.label} ({unit})" if unit else main.label},
                        linewidths=0.5)
            for i, act in enumerate(table.index):
                for j, level in enumerate(table.columns):
                    if (act, level) in gone:
                        ax.text(j + 0.5, i + 0.5, "diverged", ha="center", va="center",
                                fontsize=8, color="0.35")
            ax.tick_params(axis="y", rotation=0)
            ax.set_xlabel(short(across))
            ax.set_ylabel("activation" if ax is axes.flat[0] else "")
            ax.set_title(f"{short(panel_key)} = {show(panel)}" if panel_key else "")
        fig.tight_layout()
    return Figure("fig2_heatmap", f"{main.label.capitalize()}: activation × {short(across)}",
                  f"Mean {main.label} over seeds per cell"
                  f"{', one panel per ' + short(panel_key) if panel_key else ''}. "
                  f"The colour scale is shared{' and logarithmic' if log else ''}; "
                  f"{'lower' if main.better == 'min' else 'higher'} is better.{held_text(fixed)}", fig)


# -- 0. the tuning stage: how sensitive each activation is to the tuned value ---------------------

def fig_lr_sensitivity(run: RunData, section: Section) -> Figure | None:
    """The validation metric against the tuned value (the first tuned key), one line per
    activation with 95% t-interval bars over the tuning seeds, one panel per other key (the
    init), each setting's pick ringed. Drawn from the tuning stage of a [tune] run."""
    tuning = run.manifest.get("tuning") or {}
    keys, metric = tuning.get("keys") or [], tuning.get("metric")
    if not keys or "stage" not in run.ran:
        return None
    key = keys[0]
    tune = run.ran[(run.ran["stage"] == "tune") & (run.ran["task.kind"] == section.task)]
    tune = plain_frame(tune)  # drawn from the run's own table, not the section's frame
    if tune.empty or metric not in tune or ACTIVATION not in tune:
        return None
    others = [k for k in run.varied_keys if k not in (key, ACTIVATION, "train.device", "variant")
              and k not in keys and keyed(tune[k]).nunique() > 1][:1]
    panels = run.levels(others[0], tune) if others else [None]
    picks = {}
    for p in tuning.get("picks", []):
        if p.get("tuned") and p.get("values"):
            ctx = p.get("context") or {}
            picks[(plain(ctx.get(ACTIVATION)), plain(ctx.get(others[0])) if others else None)] = \
                plain(p["values"][key])
    fraction = metric.endswith("accuracy")
    scale = 100.0 if fraction else 1.0
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False,
                                 sharey=True)
        for ax, level in zip(axes[0], panels):
            sub = tune if level is None else tune[equals(tune[others[0]], level)]
            for act in run.levels(ACTIVATION, sub):
                g = sub[sub[ACTIVATION] == act]
                band = t_band(g[[key, metric]].replace([np.inf, -np.inf], np.nan).dropna(),
                               key, metric)
                if band.empty:
                    continue
                err = np.vstack([band["mean"] - band["low"], band["high"] - band["mean"]]) * scale
                ax.errorbar(band[key], band["mean"] * scale, yerr=np.nan_to_num(err), marker="o",
                            ms=3.5, lw=1.4, capsize=2.5, color=color(act), label=act)
                chosen = picks.get((act, level))
                at = band[band[key] == chosen]
                if len(at):
                    ax.plot(at[key], at["mean"] * scale, marker="o", ms=11, mfc="none",
                            mec=color(act), mew=1.8, ls="none")
            values = pd.to_numeric(sub[key], errors="coerce").dropna()
            if len(values) and values.min() > 0 and values.max() / values.min() >= 10:
                ax.set_xscale("log")
            ax.set_xlabel(f"{short(key)} (tuned)")
            if level is not None:
                ax.set_title(f"{short(others[0])} = {show(level)}")
        label = metric.replace("final_val_", "validation ")
        axes[0, 0].set_ylabel(f"{label} (%)" if fraction else label)
        if not fraction:
            for ax in axes[0]:
                ax.set_yscale("log")
        fig.tight_layout(rect=(0, 0, 1, 0.88))
        one_legend(fig, axes)
    seeds = ", ".join(str(s) for s in tuning.get("seeds", []))
    return Figure("fig0_lr_sensitivity", f"Sensitivity to {short(key)}: the tuning stage",
                  f"Mean {label} over the tuning seeds ({seeds}) at each {short(key)} of the sweep, "
                  "with 95% t-interval bars, one line per activation; the ringed point is each "
                  "setting's pick, which the evaluation stage then trains on fresh seeds. A pick "
                  "at either end of the axis may have its best value outside the grid.", fig)


# -- 12. models x activations (MNIST-1D's bar chart) ------------------------------------------

def fig_model_bars(run: RunData, section: Section) -> Figure | None:
    """The report's main metric per variant (a model) and activation, as MNIST-1D's paper draws
    its table: one group of bars per variant, one bar per activation, each the mean over seeds
    with its 95% t-interval and the seeds as dots. Drawn where the variants and the activations
    both vary; a variant that pins one activation is one bar."""
    frame = section.frame
    if "variant" not in section.keys or ACTIVATION not in section.keys:
        return None
    metric = section.main
    if metric.column not in frame or not frame[metric.column].notna().any():
        return None
    variants = run.levels("variant", frame)
    acts = run.levels(ACTIVATION, frame)
    groups = [(v, [a for a in acts if ((frame["variant"] == v) & (frame[ACTIVATION] == a)).any()])
              for v in variants]
    percent = metric.kind == "fraction" or metric.column.endswith("accuracy")
    scale = 100.0 if percent else 1.0
    width = 0.8 / max(len(a) for _, a in groups)
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * sum(len(a) for _, a in groups) * 0.55 + 2), 3.6))
        seen = set()
        for x, (variant, present) in enumerate(groups):
            offsets = (np.arange(len(present)) - (len(present) - 1) / 2) * width
            for offset, act in zip(offsets, present):
                values = frame.loc[(frame["variant"] == variant) & (frame[ACTIVATION] == act),
                                   metric.column].to_numpy(dtype=float) * scale
                est = mean_ci(values)
                err = ([[est.mean - est.low], [est.high - est.mean]]
                       if math.isfinite(est.low) else None)
                ax.bar(x + offset, est.mean, width * 0.92, color=color(act), alpha=0.8,
                       yerr=err, capsize=2, error_kw={"lw": 1},
                       label=act if act not in seen else None)
                seen.add(act)
                jitter = np.linspace(-0.2, 0.2, len(values)) * width if len(values) > 1 else [0.0]
                ax.scatter(x + offset + np.asarray(jitter), values, s=5, color="0.15", zorder=3)
        ax.set_xticks(range(len(groups)), [v for v, _ in groups])
        ax.set_ylabel(f"{metric.label}{' (%)' if percent else ''}")
        if percent:
            ax.set_ylim(0, 100)
        ax.legend(title="activation", bbox_to_anchor=(1.0, 1.0), loc="upper left", fontsize=8)
        fig.tight_layout()
    return Figure("fig12_model_bars", f"{metric.label.capitalize()} per model and activation",
                  f"Bars: the mean over seeds of the {metric.label}, with 95% t-intervals; dots: "
                  "the seeds. One group per variant, one bar per activation it ran.", fig)
