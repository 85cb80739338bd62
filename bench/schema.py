"""The results schema: every column of the three tables, in one place.

Each :class:`Column` says which table holds it, its Parquet type, which direction is better
(for the metrics a report, ``bench check`` or ``bench compare`` judges), the label a report
shows, and what it means. The writer pins the types (``pinned_types``), the empty tables take
their columns from here (``empty_columns``), the summaries' metrics, ``check``'s direction of an
improvement and ``compare``'s default metrics derive from it, and ``docs/results.md`` holds its
table (``markdown_table``; a test keeps the two the same). The model is pytest-benchmark's
``Stats.fields``: the names are the data, not strings scattered through the code.

Config columns (every suite key, as ``task.*``, ``model.*``, ``train.*``) are the suite's, not
listed one by one; ``CONFIG_TYPES`` pins the types of those whose values alone would not say.

This module imports nothing from actbench: every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLES = ("trials", "curves", "layers")

# -- statuses ----------------------------------------------------------------------------------

OK, DIVERGED, FAILED, SKIPPED = STATUSES = ("ok", "diverged", "failed", "skipped")
TRAINED = ("ok", "diverged")        # trained, and so have numbers (a diverged one up to the NaN)
NOT_TRAINED = ("failed", "skipped")  # a row that says why, and no numbers
DONE = TRAINED                      # kept by ``--resume``: not run again


@dataclass(frozen=True)
class Column:
    name: str
    table: str                 # trials | curves | layers
    dtype: str                 # the Parquet type: int64, double, string, bool, list<int64>, ...
    doc: str
    better: str | None = None  # "min" or "max" for a metric with a direction; None otherwise
    label: str = ""            # what a report calls it (metrics)
    kind: str = "plain"        # plain | fraction (shown in %) | epochs | seconds | bytes
    pinned: bool = False       # stored with this type whatever the values (a column of nulls)
    when: str = ""             # where it exists, if not in every row
    summarized: bool = False   # in a report's per-point tables and comparisons (its metrics)
    split: str = ""            # "val" or "test": only where the task holds that split out

    @property
    def lower_is_better(self) -> bool:
        return self.better == "min"


def _c(name, table, dtype, doc, **kw) -> Column:
    return Column(name, table, dtype, doc, **kw)


_TRIAL_ID = "the trial's id: a hash of its whole configuration and seed"
_VAL = {"when": "tasks with a validation split ([task] val_fraction)", "split": "val"}
_TEST = {"when": "tasks with a test split ([task] test_fraction)", "split": "test"}

COLUMNS: tuple[Column, ...] = (
    # -- trials: identity ------------------------------------------------------------------
    _c("trial_id", "trials", "string", _TRIAL_ID, pinned=True),
    _c("suite_sha256", "trials", "string", "sha256 of the suite text the trial was run with",
       pinned=True),
    _c("suite", "trials", "string", "the suite's name", pinned=True),
    _c("variant", "trials", "string", "the [variant] the trial belongs to (\"\" for none)",
       pinned=True),
    _c("stage", "trials", "string", "tune or eval in a [tune] suite, else \"\"", pinned=True),
    _c("seed", "trials", "int64", "the trial seed: torch, then the data, then the model",
       pinned=True),
    _c("status", "trials", "string", "ok, diverged, failed or skipped", pinned=True),
    _c("error", "trials", "string", "why a trial failed or was skipped; null when it trained",
       pinned=True),
    _c("diverged_epoch", "trials", "int64", "the epoch whose loss was not finite; null if none",
       pinned=True),
    # -- trials: what training reached -----------------------------------------------------
    _c("final_loss", "trials", "double", "training-set loss after the last update",
       better="min", label="train loss", summarized=True),
    _c("final_accuracy", "trials", "double", "training-set accuracy after the last update",
       better="max", label="train accuracy", kind="fraction", when="classification", summarized=True),
    _c("final_val_loss", "trials", "double", "validation loss after the last update",
       better="min", label="validation loss", **_VAL, summarized=True),
    _c("final_val_accuracy", "trials", "double", "validation accuracy after the last update",
       better="max", label="validation accuracy", kind="fraction",
       **_VAL, summarized=True),
    _c("final_test_loss", "trials", "double", "test loss after the last update",
       better="min", label="test loss", **_TEST, summarized=True),
    _c("final_test_accuracy", "trials", "double", "test accuracy after the last update",
       better="max", label="test accuracy", kind="fraction", **_TEST,
       summarized=True),
    _c("best_loss", "trials", "double", "the lowest logged training loss",
       better="min", label="best train loss", summarized=True),
    _c("epochs_to_target", "trials", "int64",
       "the first logged epoch at which [train] target was met; null when never",
       better="min", label="epochs to target", kind="epochs", pinned=True, summarized=True),
    # -- trials: what the probes saw -------------------------------------------------------
    _c("dead_fraction", "trials", "double",
       "dead units at the last epoch, mean over ReLU-family layers (NaN without any)",
       better="min", label="dead units", kind="fraction", summarized=True),
    _c("saturated_fraction", "trials", "double",
       "saturated units at the last epoch, mean over bounded-activation layers",
       better="min", label="saturated units", kind="fraction", summarized=True),
    _c("all_dead_layer", "trials", "double",
       "1.0 when some hidden layer has every unit dead at the last epoch (ReLU family)",
       better="min", label="nets with a dead layer", kind="fraction"),
    _c("init_activation_std_ratio", "trials", "double",
       "at epoch 0, activation_std of the last hidden layer over the first's"),
    _c("init_grad_std_ratio", "trials", "double",
       "at epoch 0, backprop_grad_std of the first hidden layer over the last's"),
    _c("grad_equivalence_error", "trials", "double",
       "||g_step - g_full|| / ||g_full|| of the first accumulated step", better="min",
       label="gradient equivalence error"),
    _c("extrapolation_slope_ratio", "trials", "double",
       "outer secant slope of the final fit over its slope inside the data",
       when="regression on one input"),
    _c("fit_probe_inside", "trials", "list<double>",
       "the final fit at 21 evenly spaced x inside the training range", pinned=True,
       when="regression on one input"),
    _c("fit_probe_outside", "trials", "list<double>",
       "the final fit at 11 x on each side outside the training range", pinned=True,
       when="regression on one input"),
    _c("grad_norm", "trials", "double", "L2 norm of the full-training-set gradient, last epoch"),
    # -- trials: cost ----------------------------------------------------------------------
    _c("time_total_s", "trials", "double", "wall time of the whole trial", better="min",
       label="total time", kind="seconds"),
    _c("time_per_epoch_s", "trials", "double", "mean wall time of the epochs after the first",
       better="min", label="time / epoch", kind="seconds", summarized=True),
    _c("time_warmup_s", "trials", "double", "wall time of the first epoch", better="min",
       label="warm-up time", kind="seconds"),
    _c("samples_per_s", "trials", "double", "training samples / time_per_epoch_s",
       better="max", label="samples / s"),
    _c("peak_memory_bytes", "trials", "int64", "peak memory of the first epoch's steps",
       better="min", label="peak memory", kind="bytes", pinned=True, summarized=True),
    _c("n_params", "trials", "int64", "the model's parameter count", pinned=True),
    _c("lr_effective", "trials", "double", "the lr used: lr scaled by lr_scaling"),
    # -- trials: where it ran --------------------------------------------------------------
    _c("device_name", "trials", "string", "the CPU or GPU's name", pinned=True),
    _c("threads", "trials", "int64", "intra-op threads the trial was pinned to", pinned=True),
    _c("pack_size", "trials", "int64", "trials trained together as one packed model (1: alone)"),
    _c("worker", "trials", "string", "host:pid of the process that trained it", pinned=True),
    _c("started_at", "trials", "string", "UTC time the trial started (ISO 8601)", pinned=True),
    _c("task_args", "trials", "string", "a user task's arguments as JSON (\"\" for a built-in)"),
    # -- trials: derived when a run loads (not stored) -------------------------------------
    _c("ensemble_spread_inside", "trials", "double",
       "the grid point's std over seeds of the fit inside the data, mean over x",
       when="derived on loading, regression on one input"),
    _c("ensemble_spread_outside", "trials", "double",
       "the same outside the data", when="derived on loading, regression on one input"),
    _c("ensemble_spread_ratio", "trials", "double", "outside over inside",
       when="derived on loading, regression on one input"),
    # -- curves ----------------------------------------------------------------------------
    _c("trial_id", "curves", "string", _TRIAL_ID, pinned=True),
    _c("epoch", "curves", "int64", "the network after this many epochs (0: at init)",
       pinned=True),
    _c("loss", "curves", "double", "training-set loss", better="min"),
    _c("accuracy", "curves", "double", "training-set accuracy", better="max", kind="fraction"),
    _c("grad_norm", "curves", "double", "L2 norm of the full-training-set gradient"),
    _c("val_loss", "curves", "double", "validation loss", better="min",
       **_VAL),
    _c("val_accuracy", "curves", "double", "validation accuracy", better="max",
       kind="fraction", **_VAL),
    _c("test_loss", "curves", "double", "test loss", better="min",
       **_TEST),
    _c("test_accuracy", "curves", "double", "test accuracy", better="max", kind="fraction",
       **_TEST),
    # -- layers ----------------------------------------------------------------------------
    _c("trial_id", "layers", "string", _TRIAL_ID, pinned=True),
    _c("epoch", "layers", "int64", "the logged epoch", pinned=True),
    _c("layer", "layers", "int64", "the hidden layer, 0 nearest the input", pinned=True),
    _c("unit", "layers", "string", "what a unit is: neuron (MLP) or channel (CNN)", pinned=True),
    _c("dead_fraction", "layers", "double", "units whose output is 0 for every sample",
       better="min", kind="fraction"),
    _c("saturated_fraction", "layers", "double",
       "units within 0.01 of a bound for every sample (bounded activations)", better="min",
       kind="fraction"),
    _c("activation_mean", "layers", "double", "mean of the layer's outputs"),
    _c("activation_std", "layers", "double", "std of the layer's outputs"),
    _c("weight_grad_norm", "layers", "double", "L2 norm of the layer's weight gradient"),
    _c("backprop_grad_std", "layers", "double",
       "std of dLoss/d(pre-activation) over samples and units"),
)

# Config columns whose type the values alone would not give (a list, or null in every row).
CONFIG_TYPES = {
    "train.target.metric": "string",
    "train.target.value": "double",
    "model.hidden": "list<int64>",
    "model.channels": "list<int64>",
    "model.kernel": "list<int64>",
    "model.stride": "list<int64>",
    "model.padding": "list<int64>",
    "model.in_channels": "int64",
    "model.kind": "string",
    "model.residual": "bool",
}

# The columns a table with no rows still has (every trial skipped, or no hidden layers).
_EMPTY = {
    "trials": ("trial_id", "suite", "variant", "seed", "status", "error", "final_loss",
               "final_accuracy", "best_loss", "epochs_to_target", "dead_fraction", "grad_norm",
               "time_total_s", "time_per_epoch_s", "samples_per_s", "peak_memory_bytes",
               "device_name", "threads", "worker"),
    "curves": ("trial_id", "epoch", "loss", "accuracy", "grad_norm"),
    "layers": ("trial_id", "epoch", "layer", "dead_fraction", "saturated_fraction",
               "activation_mean", "activation_std", "weight_grad_norm", "backprop_grad_std"),
}


def columns(table: str) -> tuple[Column, ...]:
    return tuple(c for c in COLUMNS if c.table == table)


def column(name: str, table: str = "trials") -> Column | None:
    return next((c for c in COLUMNS if c.name == name and c.table == table), None)


def empty_columns(table: str) -> tuple[Column, ...]:
    return tuple(column(name, table) for name in _EMPTY[table])


def pinned_types() -> dict[str, str]:
    """Column name -> type for every column stored with a fixed type (any table: a name means
    the same in each), config columns included."""
    pinned = {c.name: c.dtype for c in COLUMNS if c.pinned}
    return {**pinned, **CONFIG_TYPES}


def metrics(table: str = "trials") -> tuple[Column, ...]:
    """The columns with a direction: what reports, ``check`` and ``compare`` judge."""
    return tuple(c for c in columns(table) if c.better is not None)


def lower_is_better(name: str) -> bool:
    """A trials column where less is an improvement (a loss, a time, dead units); False for
    the rest, config keys included."""
    col = column(name)
    return col is not None and col.lower_is_better


# The metrics a trial row starts with as NaN (filled by the loop and the measures; the splits'
# columns and epochs_to_target are added where they exist).
TRIAL_METRICS = ("final_loss", "final_accuracy", "best_loss", "dead_fraction",
                 "saturated_fraction", "all_dead_layer", "init_activation_std_ratio",
                 "init_grad_std_ratio", "grad_equivalence_error", "extrapolation_slope_ratio",
                 "grad_norm", "time_total_s", "time_per_epoch_s", "time_warmup_s",
                 "samples_per_s")


def markdown_table() -> str:
    """The columns as the Markdown table in docs/results.md."""
    lines = ["| table | column | type | better | meaning | where |", "|---|---|---|---|---|---|"]
    for c in COLUMNS:
        better = {"min": "lower", "max": "higher"}.get(c.better or "", "")
        lines.append(f"| {c.table} | `{c.name}` | {c.dtype} | {better} | {c.doc} | {c.when} |")
    return "\n".join(lines)
