"""TrialSpec: one trial's whole configuration, hashable, and the source of its ``trial_id``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from bench.training.config import ModelConfig, TrainConfig
from bench.training.tasks import TaskConfig


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested config -> dotted columns; tuples become lists, batch_size becomes a string."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}", sub))
        return out
    if isinstance(value, tuple):
        value = list(value)
    if prefix == "train.batch_size":
        value = str(value)
    return {prefix: value}


def _target_columns(train: TrainConfig) -> dict[str, Any]:
    # Always both columns, so that trials with and without a target share one schema.
    target = train.target
    return {"train.target.metric": target.metric if target else None,
            "train.target.value": target.value if target else None}


# Keys added after trial ids were first stored, with the value that reproduces the old
# behaviour: at that value a key is left out of the hash, so a run stored before the key
# existed keeps its ids (``--resume`` and ``compare`` still match its trials).
# Keyed by (task kind, key), "*" for every kind: digits had its test_fraction from the start.
ADDED_KEYS: dict[tuple[str, str], Any] = {("spiral", "task.test_fraction"): 0.0,
                                          ("cubic", "task.test_fraction"): 0.0,
                                          ("*", "model.activation_args"): "",
                                          ("*", "model.init_args"): "",
                                          # model families (config.FAMILY_KEYS): an mlp as
                                          # before, its cnn1d keys unset
                                          ("*", "model.kind"): "mlp",
                                          ("*", "model.residual"): False,
                                          **{("*", f"model.{key}"): None for key in (
                                              "in_channels", "channels", "kernel", "stride",
                                              "padding")},
                                          **{(kind, key): default for kind in ("spiral", "cubic", "digits")
                                             for key, default in (("task.val_fraction", 0.0),
                                                                  ("task.seed", None))}}


@dataclass(frozen=True)
class TrialSpec:
    """Everything ``run_trial`` needs; equal specs give equal numbers on the same device."""

    suite: str
    variant: str
    seed: int
    task: TaskConfig
    model: ModelConfig
    train: TrainConfig
    stage: str = ""  # "tune" or "eval" in a suite with a [tune] protocol; "" without one

    @cached_property
    def config(self) -> dict[str, Any]:
        """Every config key as a dotted column (``model.activation``, ``train.lr``, ...)."""
        columns: dict[str, Any] = {}
        for section, cfg in (("task", self.task), ("model", self.model), ("train", self.train)):
            dumped = cfg.model_dump(exclude={"target"} if section == "train" else None)
            columns.update(flatten(section, dumped))
        columns.update(_target_columns(self.train))
        return columns

    @cached_property
    def trial_id(self) -> str:
        """Stable hash of config, variant and seed (not of the suite name: a trial is its config)."""
        kind = self.task.kind
        config = {k: v for k, v in self.config.items()
                  if not any((w, k) in ADDED_KEYS and v == ADDED_KEYS[w, k] for w in (kind, "*"))}
        identity = {"variant": self.variant, "seed": self.seed, "config": config}
        if self.stage:  # left out without a protocol, so that ids stored before it hold
            identity["stage"] = self.stage
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short human name: the variant and the activation, init and lr."""
        parts = [self.stage] if self.stage else []
        parts += [self.variant] if self.variant else []
        parts += [self.model.activation, self.model.init, f"lr={self.train.lr:g}"]
        if self.train.accumulation_steps > 1:
            parts.append(f"k={self.train.accumulation_steps}")
        parts += [self.train.device, f"seed={self.seed}"]
        return " ".join(parts)
