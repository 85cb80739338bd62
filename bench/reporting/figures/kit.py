"""The figures' drawing kit: colours, facets, bands, legends, and the run's text made plain.

Every family module draws with these, so that every band is the same 95% Student t-interval
over seeds the tables use (``bench.analysis.statistics``), each activation keeps one colour,
and every string from the run reaches matplotlib as plain text.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench.analysis.formatting import setting, short
from bench.analysis.statistics import t_half_width
from bench.analysis.summary import ACTIVATION, Section
from bench.results.reader import equals, is_config, keyed
from bench.training.activations import ACTIVATIONS

DPI = 96
PALETTE = sns.color_palette("tab10", len(ACTIVATIONS))
COLORS = {name: PALETTE[i] for i, name in enumerate(ACTIVATIONS)}
FACET_PRIORITY = ("model.init", "train.lr")
# Keys whose levels a figure holds at one reference value unless it is about them.
RESOURCE_KEYS = ("train.accumulation_steps", "train.device", "train.batch_size")


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

PLAIN = "bench.plain_text"  # marks a frame whose strings are escaped already (frame.attrs)


def plain(value):
    """``value`` as matplotlib draws it literally: every "$" escaped (strings only)."""
    return value.replace("$", "\\$") if isinstance(value, str) and "$" in value else value


def unplain(text: str) -> str:
    """The inverse of :func:`plain`, for text that goes to the report (titles and captions)."""
    return text.replace("\\$", "$")


def text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if (is_config(c) or c in ("variant", ACTIVATION))
            and (frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]))]


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every string of its config columns (and the variant) escaped by
    :func:`plain`; a frame escaped already is returned as it is."""
    if frame.attrs.get(PLAIN):
        return frame
    columns = [c for c in text_columns(frame)
               if frame[c].map(lambda v: isinstance(v, str) and "$" in v).any()]
    out = frame.assign(**{c: frame[c].map(plain) for c in columns}) if columns else frame.copy()
    out.attrs[PLAIN] = True
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

def facet_keys(section: Section, limit: int = 2, exclude: tuple[str, ...] = ()) -> list[str]:
    """Up to ``limit`` varied keys to facet by: init and lr first, then other model/task keys."""
    candidates = [k for k in section.keys if k != ACTIVATION and k not in RESOURCE_KEYS
                  and k not in exclude]
    ordered = [k for k in FACET_PRIORITY if k in candidates]
    ordered += [k for k in candidates if k not in ordered]
    return ordered[:limit]


def at_reference(section: Section, keep: list[str], frame: pd.DataFrame | None = None):
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
        fixed.append(setting(key, level))
    return frame, ", ".join(fixed)


def held_text(fixed: str) -> str:
    return f" Held fixed: {fixed}." if fixed else ""


def labelled(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Readable facet labels: a column "lr" with "lr = 0.001" for each key."""
    frame = frame.copy()
    for key in keys:
        frame[short(key)] = frame[key].map(lambda v, k=key: setting(k, v))
    return frame


def t_band(values: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per x: mean, and the 95% t-interval over the rows (seeds) at that x."""
    g = values.groupby(x)[y]
    with np.errstate(over="ignore", invalid="ignore"):  # huge losses just before divergence
        out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()})
    half = t_half_width(out["std"], out["n"])  # the tables' interval, x by x
    out["low"], out["high"] = out["mean"] - half, out["mean"] + half
    return out.reset_index()


def line_with_band(ax, data: pd.DataFrame, x: str, y: str, label: str, colour, **style) -> None:
    band = t_band(data[[x, y]].replace([np.inf, -np.inf], np.nan).dropna(), x, y)
    if band.empty:
        return
    ax.plot(band[x], band["mean"], color=colour, label=label, lw=1.6, **style)
    ax.fill_between(band[x], band["low"], band["high"], color=colour, alpha=0.2, lw=0)


def facet_grid(frame: pd.DataFrame, facets: list[str], height: float = 2.8):
    """A FacetGrid with rows and columns from up to two facet keys (labels already made)."""
    row = short(facets[0]) if len(facets) == 2 else None
    col = short(facets[-1]) if facets else None
    return sns.FacetGrid(frame, row=row, col=col, height=height, aspect=1.35, sharey=True,
                         margin_titles=True, despine=False)


def log_floor(ax, means) -> None:
    """On a log axis, start at the smallest mean (not at a band's non-positive lower bound)."""
    means = np.asarray(means, dtype=float)
    means = means[np.isfinite(means) & (means > 0)]
    if len(means):
        ax.set_ylim(bottom=means.min() / 2)


def one_legend(fig, axes, right: bool = False) -> None:
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


def by_trial(frame: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    cols = ["trial_id", "seed", ACTIVATION, *[k for k in keys if k != ACTIVATION]]
    return table.merge(frame[list(dict.fromkeys(cols))], on="trial_id")


def by_variant(section: Section) -> Section:
    """The section as the figures draw it. Its strings are matplotlib's plain text
    (:func:`plain_frame`); and where each variant fixes its own activation (and more), the
    variants are the series: each is drawn as "variant (activation)" in its activation's
    colour, never faceted apart."""
    if section.frame.attrs.get(PLAIN):
        return section  # this function's own output
    frame = plain_frame(section.frame)
    if "variant" not in section.keys or ACTIVATION in section.keys:
        return dataclasses.replace(section, frame=frame)
    frame = frame.assign(**{ACTIVATION: frame["variant"].astype(str) + " ("
                            + frame[ACTIVATION].astype(str) + ")"})
    frame.attrs[PLAIN] = True
    keys = [ACTIVATION if k == "variant" else k for k in section.keys]
    return dataclasses.replace(section, frame=frame, keys=keys)
