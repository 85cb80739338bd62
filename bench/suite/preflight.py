"""The preflight: values that are well-formed but cannot train, caught when the suite loads.

Two checks, before anything is drawn, built or written:

- **Non-finite numbers.** TOML has ``inf`` and ``nan``; a learning rate, a weight decay, a
  target, a claim's bound or a task's argument that is not finite never means anything, so
  each one is an error naming its key (``nonfinite``).
- **Points too large for the machine.** Each grid point's memory is estimated from its config
  alone (``estimate``): the data (samples x features, drawn as float32, labels as int64), the
  model's state (parameters, gradients and up to two optimizer moments, float32) and the
  activations of one micro-batch (forward values and their gradients, for every layer). A
  point whose estimate is more than this machine's memory (a CUDA point: its GPU's) is an
  error naming the key that makes it large and the estimate. A user task's size is unknown
  without calling it, so its points get only the model's share.

The estimate is a floor, not a forecast: a point that passes may still run out of memory (the
allocator's slack, the probes' buffers), but a point that fails could never have fit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from bench import schema
from bench.errors import Problem
from bench.training.model import conv_lengths, layer_costs

FLOAT = 4   # bytes of a float32 value
LABEL = 8   # bytes of an int64 class label


def nonfinite(data: Any, where: str = "") -> list[Problem]:
    """Every float in the parsed TOML ``data`` that is inf or nan, with its key."""
    out = []
    if isinstance(data, float) and not math.isfinite(data):
        out.append(Problem(f"{where} = {data!r}: a number here must be finite (TOML's inf and "
                           "nan mean nothing as a rate, a size, a target or a bound)",
                           key=where, value=data))
    elif isinstance(data, dict):
        for key, value in data.items():
            out += nonfinite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += nonfinite(value, f"{where}[{i}]")
    return out


@dataclass(frozen=True)
class Estimate:
    """A grid point's memory floor, in bytes, by part, and what it is made of."""

    data: int | None       # None: a user task, whose size only a call could tell
    state: int
    activations: int
    parameters: int
    samples: int | None    # drawn by the task (None for a user task)
    micro: int             # samples in one micro-batch
    values: int            # every layer's output values for one sample

    @property
    def total(self) -> int:
        return (self.data or 0) + self.state + self.activations

    def largest(self) -> str:
        parts = {"data": self.data or 0, "model state": self.state,
                 "activations": self.activations}
        return max(parts, key=parts.get)


def config_shape(task) -> tuple[int, int, int] | None:
    """(samples, input features, outputs) of a built-in task from its config alone, without
    drawing it (``packing.task_shape`` draws it); None for a user task."""
    kind = getattr(task, "kind", "")
    if kind == "spiral":
        return task.samples, 2, task.classes
    if kind == "cubic":
        return task.samples, 1, 1
    if kind == "digits":
        return task.samples, 64, 10
    if kind == "mnist1d":
        return task.samples, task.final_seq_length, 10
    return None


def _parameters(model, features: int, outputs: int) -> int:
    """Weights and biases of a model config, as ``build_model`` would make them."""
    if model.kind == "cnn1d":
        channels = [model.in_channels or 1, *model.channels]
        conv = sum(channels[i + 1] * (channels[i] * model.kernel[i] + 1)
                   for i in range(len(model.channels)))
        flat = channels[-1] * conv_lengths(model, features)[-1]
        return conv + flat * outputs + outputs
    widths = [features, *(model.hidden or ()), outputs]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def estimate(task, model, train) -> Estimate:
    from bench.training.packing import micro_batch_samples

    shape = config_shape(task)
    samples, features, outputs = shape if shape else (None, _user_features(model), 1)
    params = _parameters(model, features, outputs)
    values = sum(v for v, _ in layer_costs(model, features, outputs))
    moments = {"adam": 2, "adamw": 2}.get(train.optimizer, 1 if train.momentum else 0)
    state = params * FLOAT * (2 + moments)  # weights, gradients, the optimizer's moments
    micro = (micro_batch_samples(train, samples) if samples is not None
             else 1 if train.batch_size == "full" else int(train.batch_size))
    activations = 2 * micro * values * FLOAT  # each layer's output and its gradient
    data = None if samples is None else samples * (features * FLOAT + LABEL)
    return Estimate(data, state, activations, params, samples, micro, values)


def _user_features(model) -> int:
    # A user task's width is unknown; the model's own size is still checked on a small input.
    return (model.in_channels or 1) * 64 if model.kind == "cnn1d" else 1


def memory_limit(device: str) -> tuple[int, str] | None:
    """(bytes, what they are) for ``device``, or None where it is not known (a CUDA point on a
    machine without CUDA is skipped anyway)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            return None
        total = torch.cuda.get_device_properties(index).total_memory
        return total, f"the memory of GPU {index} ({human(total)})"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return total, f"this machine's memory ({human(total)})"


_SAMPLE_KEYS = {"spiral": "task.points_per_class x task.classes", "cubic": "task.points",
                "digits": "the bundled 1797 images", "mnist1d": "task.num_samples"}


def too_large(task, model, train, where: str) -> Problem | None:
    """A Problem when the point cannot fit its device's memory, else None. Its key is the one
    that makes the largest part large."""
    try:
        est = estimate(task, model, train)
    except ValueError:  # a cnn1d that does not fit its input: the model's own check says so
        return None
    limit = memory_limit(train.device)
    if limit is None or est.total <= limit[0]:
        return None
    width = "model.channels" if model.kind == "cnn1d" else "model.hidden"
    samples_key = _SAMPLE_KEYS.get(getattr(task, "kind", ""), "the task")
    micro, values = est.micro, est.values
    batch_key = ("train.batch_size" if train.batch_size != "full"
                 else f"the full batch ({samples_key}) / train.accumulation_steps")
    data = (f"data {human(est.data)} ({est.samples:,} samples: {samples_key})"
            if est.data is not None else "data unknown (a user task)")
    acts = (f"activations {human(est.activations)} (micro-batches of {micro:,} samples: "
            f"{batch_key}, x {values:,} values per sample: {width})")
    sample_key = "task"  # the one key that sets the number of samples
    if getattr(task, "kind", "") == "spiral":
        sample_key = "task.classes" if task.classes > task.points_per_class else "task.points_per_class"
    elif samples_key.startswith("task."):
        sample_key = samples_key
    part = est.largest()
    if part == "data":
        key = sample_key
    elif part == "model state" or values >= micro:
        key = width
    else:
        key = "train.batch_size" if train.batch_size != "full" else sample_key
    return Problem(f"{where}: needs at least {human(est.total)} ({part} the largest part, "
                   f"from {key}), more than {limit[1]}: {data}; model state "
                   f"{human(est.state)} ({est.parameters:,} parameters: {width}); {acts}",
                   key=key, value=est.total)


def human(n: int | float) -> str:
    """Bytes in SI units: 816 B, 48 KB, 24.1 TB (past PB, in PB)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{int(n)} B" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:,.3g} PB"


# -- what --dry-run says about the work ---------------------------------------------------------

def training_samples(task) -> int | None:
    shape = config_shape(task)
    if shape is None:
        return None
    held = getattr(task, "test_fraction", 0.0) + getattr(task, "val_fraction", 0.0)
    if getattr(task, "kind", "") == "mnist1d":
        return int(task.n_train * (1 - task.val_fraction))
    return max(1, round(shape[0] * (1 - held)))


def work(specs) -> tuple[int, int]:
    """(sample-passes, trials whose size is unknown): the sum over trials of epochs x training
    samples, the work a run does (a user task's size is unknown without calling it)."""
    total = unknown = 0
    for spec in specs:
        n = training_samples(spec.task)
        if n is None:
            unknown += 1
        else:
            total += spec.train.epochs * n
    return total, unknown


def seconds_per_sample(run_dir) -> tuple[float, int] | None:
    """(median seconds per training sample-pass, trials it is from) in a finished run's
    trials table (1 / samples_per_s of its trials that trained), or None."""
    import pandas as pd

    try:
        trials = pd.read_parquet(run_dir / "trials.parquet", columns=["status", "samples_per_s"])
    except Exception:  # no table yet, an older one, or a folder being written: no estimate
        return None
    rates = trials.loc[trials["status"].isin(schema.TRAINED), "samples_per_s"]
    rates = rates[rates > 0].dropna()
    if rates.empty:
        return None
    return float((1 / rates).median()), len(rates)


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else "under a second"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
