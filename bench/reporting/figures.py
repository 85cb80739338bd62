"""The report's figures, drawn with seaborn from a run's tables (and, for 7 and 8, its models).

Each ``fig_*`` function returns a ``Figure`` (a matplotlib figure with a title and a caption
that says what is pooled or held fixed), or None when the run lacks the data for it: a figure
is drawn only where it can show something. Every band and error bar is the same 95% Student
t-interval over seeds that the tables use. Each activation keeps one colour in every figure.
"""

from __future__ import annotations

import dataclasses
import io
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib

if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend (bench.plots)
    matplotlib.use("Agg")  # files only, never a window; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from scipy import stats as _st  # noqa: E402

from bench.analysis.formatting import sig, unit_for  # noqa: E402
from bench.analysis.statistics import mean_ci  # noqa: E402
from bench.analysis.summary import ACTIVATION, Section, short  # noqa: E402
from bench.errors import UserError  # noqa: E402
from bench.results.reader import TRUST_HINT, RunData, equals, is_config, keyed, settings, show  # noqa: E402
from bench.training.activations import ACTIVATIONS  # noqa: E402

DPI = 96
_PALETTE = sns.color_palette("tab10", len(ACTIVATIONS))
COLORS = {name: _PALETTE[i] for i, name in enumerate(ACTIVATIONS)}
_FACET_PRIORITY = ("model.init", "train.lr")
# Keys whose levels a figure holds at one reference value unless it is about them.
_RESOURCE_KEYS = ("train.accumulation_steps", "train.device", "train.batch_size")


class FigureError(RuntimeError):
    """A figure that could not be drawn: names the figure and carries the cause's repr (some
    matplotlib errors have an empty or a multi-line message)."""


# -- text from the run, as matplotlib's plain text -------------------------------------------------
#
# Matplotlib reads a label with two unescaped "$" as mathtext: a variant named "a $x^$ b" fails to
# parse, and the whole report with it. Every string from the run (variant and activation names,
# setting values) is escaped once, in the frame the figures draw from, before it reaches a title,
# label, legend entry or tick label (seaborn makes those from the data too). "\$" is drawn as "$".
# Our own labels use no "$", and the log axes' tick labels keep their mathtext.

_PLAIN = "bench.plain_text"  # marks a frame whose strings are escaped already (frame.attrs)


def plain(value):
    """``value`` as matplotlib draws it literally: every "$" escaped (strings only)."""
    return value.replace("$", "\\$") if isinstance(value, str) and "$" in value else value


def unplain(text: str) -> str:
    """The inverse of :func:`plain`, for text that goes to the report (titles and captions)."""
    return text.replace("\\$", "$")


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if (is_config(c) or c in ("variant", ACTIVATION))
            and (frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]))]


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every string of its config columns (and the variant) escaped by
    :func:`plain`; a frame escaped already is returned as it is."""
    if frame.attrs.get(_PLAIN):
        return frame
    columns = [c for c in _text_columns(frame)
               if frame[c].map(lambda v: isinstance(v, str) and "$" in v).any()]
    out = frame.assign(**{c: frame[c].map(plain) for c in columns}) if columns else frame.copy()
    out.attrs[_PLAIN] = True
    return out


class NothingToShow(Exception):
    """Raised by a figure that applies to the run but whose data would draw nothing worth a
    reader's look (lines flat at zero, a single x position, every cell diverged). Its message
    is the one line the report prints in the figure's place."""


@dataclass
class Figure:
    name: str       # file stem: "fig1_loss"
    title: str
    caption: str
    figure: matplotlib.figure.Figure

    def __post_init__(self):
        # the title and caption are the report's text, not matplotlib's: no escaped "$"
        self.title, self.caption = unplain(self.title), unplain(self.caption)

    def png(self) -> bytes:
        """The figure as a compact PNG (palette-quantized: plots have few colours)."""
        from PIL import Image

        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
        plt.close(self.figure)
        image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        out = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            out, format="png", optimize=True)
        return out.getvalue()


def base(label: str) -> str:
    """The activation behind a series label: "relu", or "deep (relu)" for a variant."""
    label = str(label)
    if label.endswith(")") and " (" in label:
        return label.rsplit(" (", 1)[1][:-1]
    return label


def color(label: str):
    return COLORS.get(base(label), (0.3, 0.3, 0.3))


# -- choosing what to show --------------------------------------------------------------------

def _facets(section: Section, limit: int = 2, exclude: tuple[str, ...] = ()) -> list[str]:
    """Up to ``limit`` varied keys to facet by: init and lr first, then other model/task keys."""
    candidates = [k for k in section.keys if k != ACTIVATION and k not in _RESOURCE_KEYS
                  and k not in exclude]
    ordered = [k for k in _FACET_PRIORITY if k in candidates]
    ordered += [k for k in candidates if k not in ordered]
    return ordered[:limit]


def _reference(section: Section, keep: list[str], frame: pd.DataFrame | None = None):
    """Hold every varied key not in ``keep`` (nor the activation) at one value: the smallest
    accumulation, the CPU, else the first level. Returns (filtered frame, 'k = 1, ...')."""
    frame = section.frame if frame is None else frame
    fixed = []
    for key in section.keys:
        if key == ACTIVATION or key in keep:
            continue
        values = keyed(frame[key])
        levels = list(dict.fromkeys(values))
        if key == "train.accumulation_steps":
            level = min(levels)
        elif key == "train.device" and "cpu" in levels:
            level = "cpu"
        else:
            level = levels[0]
        frame = frame[equals(frame[key], level)]
        fixed.append(f"{short(key)} = {show(level)}")
    return frame, ", ".join(fixed)


def _held(fixed: str) -> str:
    return f" Held fixed: {fixed}." if fixed else ""


def _labelled(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Readable facet labels: a column "lr" with "lr = 0.001" for each key."""
    frame = frame.copy()
    for key in keys:
        frame[short(key)] = frame[key].map(lambda v, k=key: f"{short(k)} = {show(v)}")
    return frame


def _t_band(values: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per x: mean, and the 95% t-interval over the rows (seeds) at that x."""
    g = values.groupby(x)[y]
    with np.errstate(over="ignore", invalid="ignore"):  # huge losses just before divergence
        out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()})
    tcrit = _st.t.ppf(0.975, np.maximum(out["n"] - 1, 1))
    half = np.where(out["n"] > 1, tcrit * out["std"] / np.sqrt(out["n"]), np.nan)
    out["low"], out["high"] = out["mean"] - half, out["mean"] + half
    return out.reset_index()


def _line_with_band(ax, data: pd.DataFrame, x: str, y: str, label: str, colour, **style) -> None:
    band = _t_band(data[[x, y]].replace([np.inf, -np.inf], np.nan).dropna(), x, y)
    if band.empty:
        return
    ax.plot(band[x], band["mean"], color=colour, label=label, lw=1.6, **style)
    ax.fill_between(band[x], band["low"], band["high"], color=colour, alpha=0.2, lw=0)


def _grid(frame: pd.DataFrame, facets: list[str], height: float = 2.8):
    """A FacetGrid with rows and columns from up to two facet keys (labels already made)."""
    row = short(facets[0]) if len(facets) == 2 else None
    col = short(facets[-1]) if facets else None
    return sns.FacetGrid(frame, row=row, col=col, height=height, aspect=1.35, sharey=True,
                         margin_titles=True, despine=False)


def _log_floor(ax, means) -> None:
    """On a log axis, start at the smallest mean (not at a band's non-positive lower bound)."""
    means = np.asarray(means, dtype=float)
    means = means[np.isfinite(means) & (means > 0)]
    if len(means):
        ax.set_ylim(bottom=means.min() / 2)


def _legend(fig, axes, right: bool = False) -> None:
    """One legend for the figure, with every label any panel drew: above the panels, or in a
    column at their right (``right``: many labels, such as one per layer)."""
    seen = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if right:
        fig.legend(list(seen.values()), list(seen.keys()), loc="center left",
                   bbox_to_anchor=(1.0, 0.5), frameon=False)
        return
    fig.legend(list(seen.values()), list(seen.keys()), loc="upper center", ncol=min(len(seen), 6),
               bbox_to_anchor=(0.5, 1.0), frameon=False)


def _by_trial(frame: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    cols = ["trial_id", "seed", ACTIVATION, *[k for k in keys if k != ACTIVATION]]
    return table.merge(frame[list(dict.fromkeys(cols))], on="trial_id")


# -- 1. curves ------------------------------------------------------------------------------------

def fig_curves(run: RunData, section: Section, metric: str) -> Figure | None:
    if metric not in run.curves or ACTIVATION not in section.frame:
        return None
    facets = _facets(section)
    frame, fixed = _reference(section, facets)
    data = _labelled(_by_trial(frame, run.curves, facets), facets)
    if data.empty or not data[metric].notna().any():
        return None
    with sns.axes_style("whitegrid"):
        grid = _grid(data, facets)
        for ax, (_, sub) in zip(grid.axes.flat, grid.facet_data()):
            for act, g in sub.groupby(ACTIVATION, sort=False):
                _line_with_band(ax, g, "epoch", metric, act, color(act))
        grid.set_axis_labels("epoch", f"train {metric}")  # the curves are on the training split
        grid.set_titles(row_template="{row_name}", col_template="{col_name}")
        if metric == "loss":
            means = data.groupby([ACTIVATION, "epoch", *[short(k) for k in facets]])[metric].mean()
            for ax in grid.axes.flat:
                ax.set_yscale("log")
                _log_floor(ax, means)
        grid.figure.subplots_adjust(top=0.86 if len(grid.axes) > 1 else 0.8)
        _legend(grid.figure, grid.axes)
    what = "training loss (log scale)" if metric == "loss" else "training accuracy"
    return Figure(f"fig1_{metric}", f"Training {metric} curves per activation",
                  f"Mean {what} over seeds with its 95% t-interval band, after each logged epoch "
                  f"(epoch 0 = at initialization).{_held(fixed)}", grid.figure)


# -- 2. heatmap -----------------------------------------------------------------------------------

def fig_heatmap(run: RunData, section: Section) -> Figure | None:
    if ACTIVATION not in section.keys:
        return None
    facets = _facets(section, 3)
    if not facets:  # activation alone: the headline table already says it all
        return None
    across = "train.lr" if "train.lr" in facets else next(
        (k for k in facets if k != "model.init"), facets[0])
    panel_key = "model.init" if "model.init" in section.keys and across != "model.init" else None
    frame, fixed = _reference(section, [across] + ([panel_key] if panel_key else []))
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
                if (g["status"] == "diverged").all():
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
                  f"{'lower' if main.better == 'min' else 'higher'} is better.{_held(fixed)}", fig)


# -- 3. dead and saturated units over training ---------------------------------------------------

def fig_dead_saturated(run: RunData, section: Section) -> Figure | None:
    if run.layers.empty or ACTIVATION not in section.frame:
        return None
    facet = _facets(section, 1, exclude=("model.init",)) or _facets(section, 1)
    frame, fixed = _reference(section, facet)
    layers = _by_trial(frame, run.layers, facet)
    # one value per trial and epoch: the mean over its hidden layers
    per_trial = layers.groupby(["trial_id", "epoch"], as_index=False).agg(
        dead=("dead_fraction", "mean"), saturated=("saturated_fraction", "mean"))
    data = _labelled(per_trial.merge(frame[["trial_id", ACTIVATION, *facet]], on="trial_id"), facet)
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
                    _line_with_band(ax, g, "epoch", "pct", act, color(act))
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
                  f"hidden layers, then over seeds with a 95% t-interval band.{_held(fixed)}"
                  + "".join(" " + n for n in never), fig)


# -- 3b. each layer over training (Glorot & Bengio's figure 2) ------------------------------------

def fig_layers_over_training(run: RunData, section: Section) -> Figure | None:
    """For bounded activations in nets of two or more hidden layers: each layer's mean output
    and its saturated share over training, one column per activation (and per init, when the
    init is varied)."""
    if run.layers.empty or ACTIVATION not in section.frame:
        return None
    inits = ["model.init"] if "model.init" in section.keys else []
    frame, fixed = _reference(section, inits)
    acts = [a for a in run.levels(ACTIVATION, frame)
            if base(a) in ACTIVATIONS and ACTIVATIONS[base(a)].bounds is not None]
    layers = _by_trial(frame[frame[ACTIVATION].isin(acts)], run.layers, inits)
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
                    _line_with_band(ax, g, "epoch", "value", f"layer {layer}",
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
        _legend(fig, axes, right=True)
    per_init = " One column per activation and init." if inits else ""
    return Figure("fig9_layers_over_training", "Each hidden layer over training",
                  "Per hidden layer (0 = nearest the input; lighter = nearer the output): the mean "
                  "of its output and the share of its units saturated (within 0.01 of a bound "
                  "for every sample), mean over seeds with a 95% t-interval band, bounded "
                  "activations only. Glorot & Bengio (2010) saw sigmoid's top hidden layer "
                  f"driven to 0, its saturated bound, early in training.{per_init}{never}"
                  f"{_held(fixed)}", fig)


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
    facet = _facets(section, 1, exclude=("model.hidden",))
    frame, fixed = _reference(section, ["model.hidden", *facet])
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
        _legend(fig, axes, right=True)
    epochs = set(frame["train.epochs"]) if "train.epochs" in frame else set()
    when = ("at initialization (epochs = 0): born dead" if epochs == {0}
            else "after training")
    return Figure("fig10_dead_nets", "Nets with an all-dead layer, by depth and width",
                  f"Share of seeds whose net has a hidden layer with every unit dead {when} "
                  "(all_dead_layer), with 95% Wilson intervals. Such a ReLU net outputs the same "
                  f"for every input, and no gradient reaches the layers below.{_held(fixed)}", fig)


# -- 4. gradients per layer at init and at the end -------------------------------------------------

def fig_gradients(run: RunData, section: Section) -> Figure | None:
    """Per hidden layer, at init and at the end: activation std, weight-gradient norm and
    backprop_grad_std (rows), one column per init when the init is varied, side by side."""
    if run.layers.empty or ACTIVATION not in section.frame:
        return None
    inits = ["model.init"] if "model.init" in section.keys else []
    frame, fixed = _reference(section, inits)
    layers = _by_trial(frame, run.layers, inits)
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
    styles = (("at init", dict(ls="--", marker="o", mfc="white")),
              ("at the end", dict(ls="-", marker="o")))
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
                for act, g in sub_init.groupby(ACTIVATION, sort=False):
                    for when, style in styles:
                        sub = g[(g["when"] == when) & np.isfinite(g[column]) & (g[column] > 0)]
                        band = _t_band(sub, "layer", column)
                        if band.empty:
                            continue
                        ax.errorbar(band["layer"], band["mean"],
                                    yerr=[band["mean"] - band["low"].fillna(band["mean"]),
                                          band["high"].fillna(band["mean"]) - band["mean"]],
                                    color=color(act), label=f"{act}, {when}", capsize=2,
                                    lw=1.3, ms=4, **style)
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
        _legend(fig, axes, right=True)
    side = " One column per init." if inits else ""
    return Figure("fig4_gradients", "Signal and gradients per layer, at init and at the end",
                  "Per hidden layer: the std of its output (activation_std), the norm of the loss "
                  "gradient with respect to its weights, and the std of the gradient with respect "
                  "to its pre-activations (backprop_grad_std), at epoch 0 (dashed, open) and the "
                  "last epoch (solid). Mean over seeds with 95% t-intervals, log scale. An output "
                  "std that falls with depth is a vanishing signal; gradients that shrink towards "
                  f"the input are the vanishing gradient.{side}{_held(fixed)}", fig)


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
    frame, fixed = _reference(section, [key])
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
        curves = _by_trial(frame, run.curves, [key])
        for act in acts:
            for k, ls in ((lo, "-"), (hi, "--")):
                g = curves[(curves[ACTIVATION] == act) & (curves[key] == k)]
                _line_with_band(ax, g, "epoch", "loss", f"{act}, k = {k}", color(act), ls=ls)
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
                  f"largest k overlaid. lr scaling: {lr_scaling}.{_held(fixed)}", fig)


def fig_accumulation_curves(run: RunData, section: Section) -> Figure | None:
    """Loss per epoch, one line per k, in a panel per lr_scaling / optimizer (or whichever
    keys are varied besides k): does the lr rule keep the per-epoch progress of larger steps?"""
    key = "train.accumulation_steps"
    if key not in section.keys or ACTIVATION not in section.frame or run.curves.empty:
        return None
    acts = run.levels(ACTIVATION, section.frame)
    # Panels: the activations (or variants) as rows when there are several, then up to two
    # other varied keys (lr_scaling, optimizer, ...).
    facets = _facets(section, 1 if len(acts) > 1 else 2)
    if not facets and len(acts) < 2:
        return None  # figure 6 overlays the curves of the smallest and largest k already
    frame, fixed = _reference(section, [key, *facets])
    ks = sorted(run.levels(key, frame))
    data = _by_trial(frame, run.curves, [key, *facets])
    if len(acts) > 1:
        data = data.assign(series=data[ACTIVATION].astype(str))
        data = _labelled(data, facets)
        panels = ["series", *[short(f) for f in facets]]
    else:
        data = _labelled(data, facets)
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
                _line_with_band(ax, sub[sub[key] == k], "epoch", "loss", f"k = {k}", palette[k])
            ax.set_yscale("log")
        grid.set_axis_labels("epoch", "training loss")
        grid.set_titles(row_template="{row_name}", col_template="{col_name}")
        grid.figure.subplots_adjust(top=0.86 if len(grid.axes) > 1 else 0.8)
        _legend(grid.figure, grid.axes)
    full = set(map(str, frame["train.batch_size"])) == {"full"} if "train.batch_size" in frame else False
    why = ("With the full batch there is one step per epoch whatever k is: k only splits it, so "
           "at equal lr the lines lie on each other, and a scaled lr (lr_scaling) makes larger "
           "k take larger steps." if full else
           "A larger k takes fewer, larger steps per epoch: where the lr rule compensates "
           "(linear scaling with SGD), the lines lie on each other; without it, larger k falls "
           "behind.")
    return Figure("fig11_accumulation_curves", "Loss per epoch for each accumulation k",
                  "Mean training loss over seeds with its 95% t-interval band, one line per k "
                  f"(micro-batches per optimizer step). {why}{_held(fixed)}", grid.figure)


# -- 7. spiral decision boundaries ----------------------------------------------------------------

def _trained(section: Section) -> pd.DataFrame:
    """The section's trials that finished: a diverged model draws nothing meaningful."""
    return section.frame[section.frame["status"] == "ok"]


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
    return [(", ".join(f"{short(k)} = {show(v)}" for k, v in zip(others, values)) + f" ({why})",
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
    fits = []
    withheld = _withheld(run, keep)
    for act in acts:
        preds = []
        for _, row in keep[keep[ACTIVATION] == act].iterrows():
            model = run.model(row)
            if model is not None:
                with torch.no_grad():
                    pred = model(xs).squeeze(1).numpy()
                if np.isfinite(pred).all():
                    preds.append(pred)
        if preds:
            fits.append((act, np.array(preds)))
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
                band = _t_band(g[[key, metric]].replace([np.inf, -np.inf], np.nan).dropna(),
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
        _legend(fig, axes)
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


FIGURES: tuple[Callable[[RunData, Section], Figure | None], ...] = (
    fig_lr_sensitivity,
    fig_model_bars,
    lambda run, s: fig_curves(run, s, "loss"),
    lambda run, s: fig_curves(run, s, "accuracy") if s.problem == "classification" else None,
    fig_heatmap,
    fig_dead_saturated,
    fig_layers_over_training,
    fig_dead_nets,
    fig_gradients,
    fig_timing,
    fig_accumulation,
    fig_accumulation_curves,
    fig_decision_boundaries,
    fig_cubic_fits,
)


def by_variant(section: Section) -> Section:
    """The section as the figures draw it. Its strings are matplotlib's plain text
    (:func:`plain_frame`); and where each variant fixes its own activation (and more), the
    variants are the series: each is drawn as "variant (activation)" in its activation's
    colour, never faceted apart."""
    if section.frame.attrs.get(_PLAIN):
        return section  # this function's own output
    frame = plain_frame(section.frame)
    if "variant" not in section.keys or ACTIVATION in section.keys:
        return dataclasses.replace(section, frame=frame)
    frame = frame.assign(**{ACTIVATION: frame["variant"].astype(str) + " ("
                            + frame[ACTIVATION].astype(str) + ")"})
    frame.attrs[_PLAIN] = True
    keys = [ACTIVATION if k == "variant" else k for k in section.keys]
    return dataclasses.replace(section, frame=frame, keys=keys)


_NAMES = ("fig0_lr_sensitivity", "fig12_model_bars", "fig1_loss", "fig1_accuracy", "fig2_heatmap",
          "fig3_dead_saturated", "fig9_layers_over_training", "fig10_dead_nets", "fig4_gradients",
          "fig5_timing", "fig6_accumulation", "fig11_accumulation_curves",
          "fig7_decision_boundaries", "fig8_cubic_fits")  # FIGURES' stems, for error messages


def figures(run: RunData, section: Section, left_out: list[str] | None = None) -> list[Figure]:
    """Every figure the section's data supports, in the report's order. A figure that applies
    but has nothing to show is left out, and its line saying why appended to ``left_out``. A
    figure that fails is a FigureError naming it, with the cause's repr (never an empty
    reason)."""
    section = by_variant(section)
    out = []
    for i, draw in enumerate(FIGURES):
        name = _NAMES[i] if i < len(_NAMES) else getattr(draw, "__name__", repr(draw))
        try:
            fig = draw(run, section)
        except NothingToShow as why:
            if left_out is not None:
                left_out.append(str(why))
            continue
        except UserError:
            raise
        except Exception as exc:
            raise FigureError(f"figure {name} of task {section.task!r} could not be drawn: "
                              f"{exc!r}") from exc
        if fig is not None:
            out.append(fig)
    return out
