"""Figures drawn from the trained models: spiral decision boundaries (7) and cubic fits (8).

They rebuild each plotted trial's data and model as the trial did (``RunData``), so they draw
only where a run's models and code are at hand and trusted.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from bench import schema
from bench.analysis.formatting import setting_text, sig
from bench.analysis.summary import ACTIVATION, Section
from bench.reporting.figures.kit import (
    Figure,
    color,
)
from bench.results.reader import TRUST_HINT, RunData, equals, settings

# -- 7. spiral decision boundaries ----------------------------------------------------------------

def _trained(section: Section) -> pd.DataFrame:
    """The section's trials that finished: a diverged model draws nothing meaningful."""
    return section.frame[section.frame["status"] == schema.OK]


def _setting_scores(section: Section):
    """Per setting of the non-activation keys (where every activation ran): the mean of the
    main metric over activations and its range between activations."""
    others = [k for k in section.keys if k != ACTIVATION]
    frame, main = _trained(section), section.main
    labels = settings(frame, others)
    per_act = frame.groupby([labels, frame[ACTIVATION]])[main.column].mean().unstack()
    per_act = per_act[per_act.notna().sum(axis=1) == per_act.notna().sum(axis=1).max()]
    return others, labels, per_act


def _in_setting(section: Section, others: list[str], labels, values) -> pd.DataFrame:
    frame = _trained(section)
    return frame[equals(labels, values)] if others else frame


def _picks(section: Section) -> list[tuple[str, pd.DataFrame]]:
    """Settings of the non-activation keys worth drawing, each with all its finished trials:
    where the activations differ most, then (last) where they do best on average."""
    others = [k for k in section.keys if k != ACTIVATION]
    if not others:
        return [("", _trained(section))]
    others, labels, per_act = _setting_scores(section)
    if per_act.empty:
        return []
    mean = per_act.mean(axis=1)
    best = mean.idxmax() if section.main.better == "max" else mean.idxmin()
    several = per_act.shape[1] > 1
    picks = {}  # values -> why; a setting that is both is drawn once
    if several:
        picks[(per_act.max(axis=1) - per_act.min(axis=1)).idxmax()] = "where the activations differ most"
    picks.setdefault(best, "where they do best on average" if several else "the best setting")
    return [(setting_text(others, values) + f" ({why})",
             _in_setting(section, others, labels, values)) for values, why in picks.items()]


def _first_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """One trial per activation: its first seed."""
    return frame.sort_values("seed").groupby(ACTIVATION, sort=False).head(1)


def _boundary_panel(ax, data, model) -> None:
    """The class ``model`` predicts over the plane, shaded, under the training points."""
    x, y = data.x_train.numpy(), data.y_train.numpy()
    lim = float(np.abs(x).max()) * 1.1
    xx, yy = np.meshgrid(np.linspace(-lim, lim, 200), np.linspace(-lim, lim, 200))
    grid = torch.tensor(np.c_[xx.ravel(), yy.ravel()], dtype=torch.float32)
    classes = data.out_features
    palette = sns.color_palette("Set2", classes)
    with torch.no_grad():
        pred = model(grid).argmax(1).numpy().reshape(xx.shape)
    ax.contourf(xx, yy, pred, levels=np.arange(classes + 1) - 0.5,
                cmap=matplotlib.colors.ListedColormap(palette), alpha=0.45)
    ax.scatter(x[:, 0], x[:, 1], c=[palette[c] for c in y], s=1.5, linewidths=0)
    ax.set(xticks=[], yticks=[], xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")


def _withheld(run: RunData, rows: pd.DataFrame) -> list[str]:
    """The user code named by ``rows`` that ``run`` was not opened to trust (``--trust-code``),
    each once: their models are not rebuilt."""
    return list(dict.fromkeys(n for _, row in rows.iterrows() for n in run.untrusted(row)))


def _note_withheld(run: RunData, name: str, withheld: list[str], drawn: bool) -> None:
    """One line in the report for a figure whose models were left out for want of trust."""
    if not withheld:
        return
    code = ", ".join(withheld)
    line = (f"{name}: the models with user code named in this run folder ({code}) are left out; "
            if drawn else f"{name} left out: it rebuilds models with user code named in this run "
            f"folder ({code}); ") + TRUST_HINT
    if line not in run.left_out:
        run.left_out.append(line)


def fig_decision_boundaries(run: RunData, section: Section) -> Figure | None:
    if section.task != "spiral" or ACTIVATION not in section.frame:
        return None
    rows = []
    withheld = []
    for setting, trials in _picks(section):
        firsts = _first_seeds(trials)
        withheld += [n for n in _withheld(run, firsts) if n not in withheld]
        models = [(row, run.model(row)) for _, row in firsts.iterrows()]
        models = [(row, m) for row, m in models if m is not None]
        if models:
            rows.append((setting, models))
    _note_withheld(run, "fig7_decision_boundaries", withheld, drawn=bool(rows))
    if not rows:
        return None
    n = max(len(models) for _, models in rows)
    with sns.axes_style("white"):
        fig, axes = plt.subplots(len(rows), n, figsize=(2.7 * n, 3.0 * len(rows)), squeeze=False)
        for r, (setting, models) in enumerate(rows):
            for ax in axes[r, len(models):]:
                ax.remove()
            for ax, (row, model) in zip(axes[r], models):
                _boundary_panel(ax, run.task_data(row), model)  # the row's own data and classes
                acc = row.get("final_accuracy", math.nan)
                ax.set_title(f"{row[ACTIVATION]}: accuracy {sig(100 * acc)}%", fontsize=9.5,
                             color=color(row[ACTIVATION]))
            if setting:
                axes[r, 0].set_ylabel(setting.split(" (")[0].replace(", ", "\n"), fontsize=9)
        fig.tight_layout()
    seed = int(rows[0][1][0][0]["seed"])
    settings = "; ".join(f"row {i + 1}: {s}" for i, (s, _) in enumerate(rows) if s)
    return Figure("fig7_decision_boundaries", "Spiral: decision boundaries of the trained models",
                  "The class each trained model predicts over the plane (shaded), with the "
                  f"training points; one panel per activation, seed {seed}."
                  + (f" Settings: {settings}." if settings else ""), fig)


# -- 8. cubic regression fits --------------------------------------------------------------------

def _predictions(run: RunData, rows: pd.DataFrame, xs: torch.Tensor) -> np.ndarray:
    """Each stored model's finite prediction at ``xs`` (seeds x points; none where the model
    is withheld or its fit is not finite)."""
    preds = []
    for _, row in rows.iterrows():
        model = run.model(row)
        if model is None:
            continue
        with torch.no_grad():
            pred = model(xs).squeeze(1).numpy()
        if np.isfinite(pred).all():
            preds.append(pred)
    return np.array(preds)


def fig_cubic_fits(run: RunData, section: Section) -> Figure | None:
    if section.task != "cubic" or ACTIVATION not in section.frame:
        return None
    picks = _picks(section)
    if not picks or picks[-1][1].empty:
        return None
    setting, keep = picks[-1]  # where the activations do best, every seed
    setting = setting.rsplit(" (", 1)[0] if setting else ""
    acts = run.levels(ACTIVATION, keep)
    data = run.task_data(keep.iloc[0])
    x_train, y_train = data.x_train.squeeze(1).numpy(), data.y_train.squeeze(1).numpy()
    lo, hi = float(x_train.min()), float(x_train.max())
    # As far out as extrapolation_slope_ratio looks: 1.5 training ranges beyond each end
    # ([-4, 4] for the course's [-1, 1], where its notebook draws the ensemble).
    reach = 1.5 * (hi - lo)
    xs = torch.linspace(lo - reach, hi + reach, 801)[:, None]
    withheld = _withheld(run, keep)
    fits = [(act, preds) for act in acts
            if len(preds := _predictions(run, keep[keep[ACTIVATION] == act], xs))]
    _note_withheld(run, "fig8_cubic_fits", withheld, drawn=bool(fits))
    if not fits:
        return None
    noise = float(run.fixed.get("task.noise", keep["task.noise"].iloc[0]))
    # With [task] seed every trial trains on this one draw; without it each seed draws its own.
    shared = "task.seed" in keep and keep["task.seed"].notna().all()
    data_label = "training data (every seed's)" if shared else "training data (one seed's draw)"
    grid = xs.squeeze(1).numpy()
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, len(fits), figsize=(3.3 * len(fits), 3.2), squeeze=False,
                                 sharey=True)
        for ax, (act, preds) in zip(axes.flat, fits):
            ax.axvspan(lo, hi, color="0.92", zorder=0)
            ax.plot(grid, grid ** 3 + noise / 2, color="0.4", ls=":", lw=1.2, label="E[y] = x³ + noise/2")
            ax.scatter(x_train, y_train, s=6, color="0.3", zorder=3, label=data_label)
            mean, std = preds.mean(0), preds.std(0, ddof=1) if len(preds) > 1 else np.zeros(len(grid))
            ax.plot(grid, mean, color=color(act), lw=2, label="fit: mean over seeds")
            ax.fill_between(grid, mean - std, mean + std, color=color(act), alpha=0.25, lw=0,
                            label="± std over seeds")
            ax.set_title(f"{act} ({len(preds)} seed{'s' if len(preds) > 1 else ''})",
                         color=color(act), fontsize=10)
            ax.set_xlabel("x")
        # The fits and the data decide the scale; x³ itself runs off it far from the data.
        shown = np.concatenate([y_train, *[p.ravel() for _, p in fits]])
        low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
        pad = 0.1 * (high - low) + 0.5
        axes.flat[0].set_ylim(low - pad, high + pad)
        axes.flat[0].set_ylabel("y")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=4, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.88))
    return Figure("fig8_cubic_fits", "Cubic regression: fitted curves and how they extrapolate",
                  f"Each trained model's prediction on x in [{sig(lo - reach, 2)}, {sig(hi + reach, 2)}]; "
                  "the training data covers the "
                  f"shaded band [{sig(lo, 2)}, {sig(hi, 2)}]. Line: mean over seeds; band: ± one std "
                  f"over seeds{', at ' + setting if setting else ''}.", fig)
