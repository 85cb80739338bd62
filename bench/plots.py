"""The report's figures one by one, for notebooks: each takes a Run (``bench.run`` /
``bench.open_run``) and returns a matplotlib Figure, or None where the run lacks what the figure
needs (the report leaves such a figure out). ``task`` picks the task of a run that swept
several (default: the first).

    import bench
    run = bench.open_run("results/activations/<run-id>")
    bench.plots.curves(run)                 # shown inline as the cell's value
    bench.plots.decision_boundaries(run)

Each is the function the report draws with, so the numbers are the report's.
"""

from __future__ import annotations

from functools import partial

import matplotlib.figure

from . import figures as _figures
from .summary import sections as _sections

__all__ = ["curves", "heatmap", "dead_saturated", "layers_over_training", "dead_nets",
           "gradients", "timing", "accumulation", "accumulation_curves",
           "decision_boundaries", "cubic_fits", "all_figures"]


def _data(run):
    from .api import Run
    from .rundata import RunData

    if isinstance(run, RunData):
        return run
    if isinstance(run, Run):
        return run._data
    raise TypeError(f"expected a bench Run (bench.run / bench.open_run), not {type(run).__name__}")


def _section(data, task: str | None):
    found = _sections(data)
    if not found:
        return None
    if task is None:
        return _figures.by_variant(found[0])
    for section in found:
        if section.task == task:
            return _figures.by_variant(section)
    from .errors import UserError

    raise UserError(f"task {task!r} is not in this run; valid choices: "
                    f"{', '.join(s.task for s in found)}")


def _draw(draw, run, task: str | None = None) -> matplotlib.figure.Figure | None:
    import matplotlib.pyplot as plt

    data = _data(run)
    section = _section(data, task)
    if section is None:
        return None
    fig = draw(data, section)
    if fig is None:
        return None
    plt.close(fig.figure)  # returned, not left open for pyplot to show a second time
    return fig.figure


def curves(run, metric: str = "loss", task: str | None = None):
    """Figure 1: loss (or ``metric="accuracy"``) curves per activation, mean and 95% band."""
    return _draw(lambda d, s: _figures.fig_curves(d, s, metric), run, task)


heatmap = partial(_draw, _figures.fig_heatmap)
heatmap.__doc__ = "Figure 2: the main metric per activation and setting."
dead_saturated = partial(_draw, _figures.fig_dead_saturated)
dead_saturated.__doc__ = "Figure 3: dead and saturated units over training."
layers_over_training = partial(_draw, _figures.fig_layers_over_training)
layers_over_training.__doc__ = "Figure 9: each hidden layer's mean output (bounded activations)."
dead_nets = partial(_draw, _figures.fig_dead_nets)
dead_nets.__doc__ = "Figure 10: share of nets with an all-dead layer by depth and width."
gradients = partial(_draw, _figures.fig_gradients)
gradients.__doc__ = "Figure 4: output std and gradients per layer, at init and at the end."
timing = partial(_draw, _figures.fig_timing)
timing.__doc__ = "Figure 5: time per epoch."
accumulation = partial(_draw, _figures.fig_accumulation)
accumulation.__doc__ = "Figure 6: what gradient accumulation costs and saves."
accumulation_curves = partial(_draw, _figures.fig_accumulation_curves)
accumulation_curves.__doc__ = "Figure 11: loss per epoch for each accumulation k."
decision_boundaries = partial(_draw, _figures.fig_decision_boundaries)
decision_boundaries.__doc__ = "Figure 7: spiral decision boundaries of the trained models."
cubic_fits = partial(_draw, _figures.fig_cubic_fits)
cubic_fits.__doc__ = "Figure 8: the cubic fits, mean +- std over seeds, and how they extrapolate."


def all_figures(run, task: str | None = None) -> dict[str, matplotlib.figure.Figure]:
    """Every figure the report would draw for the task, by file stem (``fig1_loss``, ...)."""
    import matplotlib.pyplot as plt

    data = _data(run)
    section = _section(data, task)
    out = {}
    for fig in (_figures.figures(data, section) if section is not None else []):
        plt.close(fig.figure)
        out[fig.name] = fig.figure
    return out
