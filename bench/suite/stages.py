"""The tuned comparison of a ``[tune]`` suite: tune each setting, pick, evaluate on fresh seeds.

A *setting* is one point of the grid with the tuned keys (and the device) left out: an
activation x init, say. Its *candidates* are its grid points on the tuning device, one per
value of the tuned keys. The run has two stages:

1. **tune**: every candidate of every setting that has more than one trains on the tuning
   seeds, and is judged by its mean validation metric (``[tune] metric``).
2. **eval**: each setting's pick trains on the evaluation seeds (the suite's ``seeds``), on
   every device of the grid; reports, rankings and claims use these trials, on the test split.

This module plans the stages from the suite alone: the settings, their tuning trials and
their evaluation trials once the picks are known. The picks themselves are computed from the
stored tuning trials by ``bench.analysis.tuning``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.suite.grid import GridPoint, Suite
from bench.training.spec import TrialSpec

DEVICE = "train.device"


@dataclass(frozen=True)
class Setting:
    """The points of the grid that differ only in the tuned keys and the device."""

    variant: str
    context: tuple[tuple[str, Any], ...]   # the other swept and variant keys, in file order
    points: tuple[GridPoint, ...]           # every device's, in grid order

    def candidates(self, tune_device: str) -> list[GridPoint]:
        return [p for p in self.points if p.train.device == tune_device]

    def label(self) -> str:
        parts = [f"variant {self.variant}"] if self.variant else []
        parts += [f"{k.split('.', 1)[-1]} = {show(v)}" for k, v in self.context]
        return ", ".join(parts) or "all"


def tune_device(suite: Suite) -> str:
    return suite.tune.device or suite.points[0].train.device


def settings(suite: Suite) -> list[Setting]:
    """The grid grouped into settings, in the order they first appear."""
    tuned = set(suite.tune.keys)
    groups: dict[tuple, list[GridPoint]] = {}
    for p in suite.points:
        context = tuple((k, v) for k, v in p.overrides if k not in tuned and k != DEVICE)
        groups.setdefault((p.variant, _key(context)), []).append(p)
    out = []
    for (variant, _), points in groups.items():
        context = tuple((k, v) for k, v in points[0].overrides if k not in tuned and k != DEVICE)
        out.append(Setting(variant, context, tuple(points)))
    return out


def tuned_values(suite: Suite, point: GridPoint) -> dict[str, Any]:
    overrides = dict(point.overrides)
    return {k: overrides.get(k) for k in suite.tune.keys}


def _specs(suite: Suite, point: GridPoint, seeds, stage: str) -> list[TrialSpec]:
    return [TrialSpec(suite.name, point.variant, seed, point.task, point.model, point.train, stage)
            for seed in seeds]


def tuning_specs(suite: Suite, setting: Setting) -> dict[int, list[TrialSpec]]:
    """Candidate index -> its tuning trials ({} for a setting with one candidate)."""
    candidates = setting.candidates(tune_device(suite))
    if len(candidates) < 2:
        return {}
    return {i: _specs(suite, p, suite.tune.seeds, "tune") for i, p in enumerate(candidates)}


def evaluation_specs(suite: Suite, setting: Setting, values: dict[str, Any]) -> list[TrialSpec]:
    """The pick ``values`` of ``setting`` on the evaluation seeds, on every device."""
    out = []
    for p in setting.points:
        if _key(tuple(tuned_values(suite, p).items())) == _key(tuple(values.items())):
            out += _specs(suite, p, suite.seeds, "eval")
    return out


def first_stage(suite: Suite) -> list[TrialSpec]:
    """What is known before anything trains: every tuning trial, and the evaluation of the
    settings with a single candidate (nothing to tune)."""
    out = []
    for setting in settings(suite):
        tuning = tuning_specs(suite, setting)
        if tuning:
            out += [s for specs in tuning.values() for s in specs]
        else:
            only = setting.candidates(tune_device(suite)) or list(setting.points[:1])
            out += evaluation_specs(suite, setting, tuned_values(suite, only[0]))
    return out


def planned_total(suite: Suite) -> int:
    """Trials of both stages (the evaluation counted before the picks are known)."""
    total = 0
    for setting in settings(suite):
        tuning = tuning_specs(suite, setting)
        total += sum(len(s) for s in tuning.values())
        devices = len(dict.fromkeys(p.train.device for p in setting.points))
        total += devices * len(suite.seeds)
    return total


def second_stage(suite: Suite, picks: list) -> list[TrialSpec]:
    """The evaluation trials of the tuned settings' picks (``bench.analysis.tuning.Pick``)."""
    return [s for p in picks if p.tuned and p.values is not None
            for s in evaluation_specs(suite, p.setting, p.values)]


def _key(items) -> tuple:
    return tuple((k, repr(v)) for k, v in items)


def show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
