"""The report's figures, drawn with seaborn from a run's tables (and, for 7 and 8, its models).

One module per family, drawing with a shared kit (``kit``): ``curves`` (1, 9, 11), ``outcomes``
(0, 2, 12), ``units`` (3, 10), ``gradients`` (4), ``cost`` (5, 6) and ``models`` (7, 8). Each
``fig_*`` function returns a ``Figure`` (a matplotlib figure with a title and a caption that
says what is pooled or held fixed), or None when the run lacks the data for it, or raises
``NothingToShow`` with the line the report prints instead. ``FIGURES`` is the report's order;
a new figure is a function in its family's module, added there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import matplotlib

if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend (bench.plots)
    matplotlib.use("Agg")  # files only, never a window; set before pyplot is imported

from bench.analysis.summary import Section  # noqa: E402
from bench.errors import UserError  # noqa: E402
from bench.reporting.figures.cost import fig_accumulation, fig_timing  # noqa: E402
from bench.reporting.figures.curves import fig_accumulation_curves, fig_curves, fig_layers_over_training  # noqa: E402
from bench.reporting.figures.gradients import fig_gradients  # noqa: E402
from bench.reporting.figures.kit import (  # noqa: E402
    COLORS,
    DPI,
    Figure,
    FigureError,
    NothingToShow,
    by_variant,
    plain,
    plain_frame,
    unplain,
)
from bench.reporting.figures.models import fig_cubic_fits, fig_decision_boundaries  # noqa: E402
from bench.reporting.figures.outcomes import fig_heatmap, fig_lr_sensitivity, fig_model_bars  # noqa: E402
from bench.reporting.figures.units import fig_dead_nets, fig_dead_saturated  # noqa: E402
from bench.results.reader import RunData  # noqa: E402

__all__ = ["COLORS", "DPI", "FIGURES", "Figure", "FigureError", "NothingToShow", "by_variant",
           "fig_accumulation", "fig_accumulation_curves", "fig_cubic_fits", "fig_curves",
           "fig_dead_nets", "fig_dead_saturated", "fig_decision_boundaries", "fig_gradients",
           "fig_heatmap", "fig_layers_over_training", "fig_lr_sensitivity", "fig_model_bars",
           "fig_timing", "figures", "plain", "plain_frame", "unplain"]

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
