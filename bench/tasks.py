"""The data sets: each task is a config (its ``[task]`` keys) and a function that draws the data.

Data is drawn on the CPU from the global torch RNG, which the trial has just seeded, so that the
course notebook's order (data first, then the model) reproduces its numbers exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class TaskData:
    """Tensors on the CPU; ``x_test`` is None for tasks without a held-out split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    kind: Literal["classification", "regression"]
    out_features: int


class _TaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    problem: ClassVar[str] = "classification"

    @property
    def samples(self) -> int:
        """Samples the task draws before any split."""
        raise NotImplementedError

    @property
    def has_test_split(self) -> bool:
        return round(self.test_fraction * self.samples) > 0

    @model_validator(mode="after")
    def _leaves_training_data(self):
        n_test = round(self.test_fraction * self.samples)
        if n_test >= self.samples:
            raise ValueError(f"test_fraction = {self.test_fraction!r} holds out all {self.samples} "
                             "samples: leave some to train on")
        return self


def _test_fraction(default: float):
    return Field(default, ge=0, lt=1,
                 description="held-out share, drawn with the trial's seed (0: no test split)")


class SpiralConfig(_TaskConfig):
    """The course's spiral (NYU-DLSP20 04-spiral_classification)."""

    kind: Literal["spiral"] = "spiral"
    classes: int = Field(3, ge=2, description="number of arms (C)")
    points_per_class: int = Field(1000, ge=2, description="points per arm (N)")
    noise: float = Field(0.2, ge=0, description="std of the Gaussian noise on the angle")
    test_fraction: float = _test_fraction(0.0)

    @property
    def samples(self) -> int:
        return self.classes * self.points_per_class


class CubicConfig(_TaskConfig):
    """The course's regression (05-regression): y = x^3 + noise * U[0, 1)."""

    problem: ClassVar[str] = "regression"
    kind: Literal["cubic"] = "cubic"
    points: int = Field(100, ge=2, description="evenly spaced x on [-1, 1]")
    noise: float = Field(0.3, ge=0, description="scale of the uniform [0, 1) noise added to y")
    test_fraction: float = _test_fraction(0.0)

    @property
    def samples(self) -> int:
        return self.points


_DIGITS_SAMPLES = 1797  # sklearn.datasets.load_digits


class DigitsConfig(_TaskConfig):
    """scikit-learn's bundled 8x8 digits (1797 images), standardized with train statistics."""

    kind: Literal["digits"] = "digits"
    test_fraction: float = _test_fraction(0.2)

    @property
    def samples(self) -> int:
        return _DIGITS_SAMPLES


def spiral(cfg: SpiralConfig) -> TaskData:
    n, c_total = cfg.points_per_class, cfg.classes
    xs, ys = [], []
    for c in range(c_total):
        t = torch.linspace(0, 1, n)
        angle = torch.linspace(2 * math.pi * c / c_total, 2 * math.pi * (2 + c) / c_total, n)
        angle = angle + torch.randn(n) * cfg.noise
        # The notebook takes math.sin of each float32 angle (in double) and stores float32.
        a = angle.double()
        xs.append(t[:, None] * torch.stack([torch.sin(a), torch.cos(a)], 1).float())
        ys.append(torch.full((n,), c, dtype=torch.long))
    return _split(torch.cat(xs), torch.cat(ys), cfg.test_fraction, "classification", c_total)


def cubic(cfg: CubicConfig) -> TaskData:
    x = torch.linspace(-1, 1, cfg.points)
    y = x.pow(3) + cfg.noise * torch.rand(cfg.points)
    return _split(x[:, None], y[:, None], cfg.test_fraction, "regression", 1)


def _split(x: torch.Tensor, y: torch.Tensor, fraction: float, kind, out_features: int) -> TaskData:
    """Hold out ``round(fraction * n)`` samples, drawn from the trial's seeded RNG after the
    data. Without a split nothing is drawn, so the model's init is what it always was; the
    training samples keep their order."""
    n_test = round(fraction * len(x))
    if n_test == 0:
        return TaskData(x, y, None, None, kind, out_features)
    order = torch.randperm(len(x))
    test, train = order[:n_test].sort().values, order[n_test:].sort().values
    return TaskData(x[train], y[train], x[test], y[test], kind, out_features)


def digits(cfg: DigitsConfig) -> TaskData:
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(x))
    n_test = round(cfg.test_fraction * len(x))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0  # pixels that are always blank stay 0 rather than NaN
    x = (x - mean) / std
    if n_test == 0:
        return TaskData(x[train], y[train], None, None, "classification", 10)
    return TaskData(x[train], y[train], x[test], y[test], "classification", 10)


TASKS = {
    "spiral": (SpiralConfig, spiral),
    "cubic": (CubicConfig, cubic),
    "digits": (DigitsConfig, digits),
}

TaskConfig = SpiralConfig | CubicConfig | DigitsConfig


def make_task(cfg: TaskConfig) -> TaskData:
    return TASKS[cfg.kind][1](cfg)
