"""The format of a suite file: its top-level keys and the ``[tune]`` and ``[[expect]]`` tables,
as pydantic models that name every key, its type and its default (``[task]``, ``[model]`` and
``[train]`` are the training layer's: ``bench/training/tasks.py`` and ``config.py``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench.training.config import ModelConfig, TrainConfig

SECTIONS = {"task": None, "model": ModelConfig, "train": TrainConfig}


class Expect(BaseModel):
    """One ``[[expect]]`` claim; ``python -m bench check`` evaluates it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    where: dict[str, Any] = Field(default_factory=dict)
    metric: str
    min: float | None = None
    max: float | None = None
    vs: dict[str, Any] | None = None
    by_at_least: float | None = None
    description: str = ""

    @model_validator(mode="after")
    def _has_a_bound(self) -> Expect:
        if self.min is None and self.max is None and self.by_at_least is None:
            raise ValueError("a claim needs a bound: min, max, or vs with by_at_least")
        if self.by_at_least is not None and not self.vs:
            raise ValueError("by_at_least compares with another setting: add vs = { key = value }")
        if self.vs is not None and not self.vs:
            raise ValueError("vs = {} names no setting to compare with")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min = {self.min!r} is above max = {self.max!r}: no value can pass")
        return self


def _distinct_seeds(value: list[int]) -> list[int]:
    if len(set(value)) != len(value):
        raise ValueError(f"{value!r} repeats a seed")
    return value


class Tune(BaseModel):
    """The ``[tune]`` table: a tuned comparison. Each setting of the other keys gets the value
    of ``keys`` with the best mean ``metric`` (on the validation split) over the tuning
    ``seeds``; that pick is then trained on the suite's ``seeds``, the evaluation seeds, and
    reported on the test split (tuning.py)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    keys: list[str] = Field(min_length=1, description="[sweep] keys tuned per setting, e.g. "
                            "[\"train.lr\"]")
    metric: str = Field(description="the selection metric: final_val_accuracy or final_val_loss")
    seeds: list[int] = Field(min_length=1, description="tuning seeds, none of them an "
                             "evaluation seed")
    device: str | None = Field(None, description="where the tuning stage trains (default: the "
                               "grid's first device); its picks apply to every device")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in TUNE_METRICS:
            raise ValueError(f"{value!r} is not a validation metric; valid choices: "
                             f"{', '.join(TUNE_METRICS)}")
        return value

    _seeds = field_validator("seeds")(classmethod(lambda cls, value: _distinct_seeds(value)))

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value!r} repeats a key")
        if "train.device" in value:
            raise ValueError("train.device cannot be tuned: the picks apply to every device")
        return value


TUNE_METRICS = ("final_val_accuracy", "final_val_loss")


class RawSuite(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    task: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    variant: list[dict[str, Any]] = Field(default_factory=list)
    expect: list[Expect] = Field(default_factory=list)
    tune: Tune | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError(f"{value!r} must be a folder name: letters, digits, '_', '.', '-'")
        return value

    _seeds = field_validator("seeds")(classmethod(lambda cls, value: _distinct_seeds(value)))
