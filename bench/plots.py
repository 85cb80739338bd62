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

import matplotlib.figure

from bench.analysis.sections import sections as _sections
from bench.reporting import figures as _figures

__all__ = ["curves", "heatmap", "dead_saturated", "layers_over_training", "dead_nets",
           "gradients", "timing", "accumulation", "accumulation_curves",
           "decision_boundaries", "cubic_fits", "all_figures"]


def _data(run):
    from bench.api import Run
    from bench.results.reader import RunData

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
    from bench.errors import UserError

    raise UserError(f"task {task!r} is not in this run; valid choices: "
                    f"{', '.join(s.task for s in found)}")


def _draw(draw, run, task: str | None = None) -> matplotlib.figure.Figure | None:
    import matplotlib.pyplot as plt

    data = _data(run)
    section = _section(data, task)
    if section is None:
        return None
    try:
        fig = draw(data, section)
    except _figures.NothingToShow:
        return None  # the report says why in one line; here, as for a figure that does not apply
    if fig is None:
        return None
    plt.close(fig.figure)  # returned, not left open for pyplot to show a second time
    return fig.figure


def curves(run, metric: str = "loss", task: str | None = None):
    """Figure 1: loss (or ``metric="accuracy"``) curves per activation, mean and 95% band."""
    return _draw(lambda d, s: _figures.fig_curves(d, s, metric), run, task)


def _one(name: str, draw, doc: str):
    """A public plot function: ``name(run, task=None)`` draws ``draw`` for one task."""
    def plot(run, task: str | None = None):
        return _draw(draw, run, task)
    plot.__name__ = plot.__qualname__ = name
    plot.__doc__ = doc
    return plot


F = _figures
heatmap = _one("heatmap", F.fig_heatmap, "Figure 2: the main metric per activation and setting.")
dead_saturated = _one("dead_saturated", F.fig_dead_saturated, "Figure 3: dead and saturated units.")
layers_over_training = _one("layers_over_training", F.fig_layers_over_training,
                            "Figure 9: each hidden layer's mean output (bounded activations).")
dead_nets = _one("dead_nets", F.fig_dead_nets, "Figure 10: nets with an all-dead layer.")
gradients = _one("gradients", F.fig_gradients, "Figure 4: output std and gradients per layer.")
timing = _one("timing", F.fig_timing, "Figure 5: time per epoch.")
accumulation = _one("accumulation", F.fig_accumulation, "Figure 6: accumulation's costs.")
accumulation_curves = _one("accumulation_curves", F.fig_accumulation_curves,
                           "Figure 11: loss per epoch for each accumulation k.")
decision_boundaries = _one("decision_boundaries", F.fig_decision_boundaries,
                           "Figure 7: spiral decision boundaries of the trained models.")
cubic_fits = _one("cubic_fits", F.fig_cubic_fits, "Figure 8: the cubic fits and extrapolation.")


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
