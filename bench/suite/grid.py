"""A suite as a grid: its points (a variant and a validated config each), its seeds, and the
trials they expand into (``expand``, pure: points x seeds, in file order).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError
from bench.plugins import UserCode, user_code
from bench.suite.format import Expect, Tune
from bench.training.config import ModelConfig, TrainConfig
from bench.training.spec import TrialSpec
from bench.training.tasks import TASKS, TaskConfig


@dataclass(frozen=True)
class GridPoint:
    """One point of the grid: a variant and its validated config, before seeds."""

    variant: str
    overrides: tuple[tuple[str, Any], ...]  # the swept and variant keys that made this point
    task: TaskConfig
    model: ModelConfig
    train: TrainConfig


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    points: tuple[GridPoint, ...]
    expect: tuple[Expect, ...]
    text: str
    source: str
    tune: Tune | None = None
    warnings: tuple[str, ...] = ()  # said when the suite loads; nothing is wrong enough to stop
    user_code_checked: bool = True  # False: read with user_code=False, its user code neither
    # imported nor called (--dry-run): a suite to show, not to train

    @property
    def imports(self) -> list[UserCode]:
        """Every piece of user code the suite will import and call, in grid order: activations,
        inits and task kinds named by import path or by a name an installed package registers.
        Reads the suite and entry-point metadata only; imports nothing."""
        from bench.training.activations import ACTIVATIONS
        from bench.training.inits import INITS

        named = []
        for p in self.points:
            if p.model.activation not in ACTIVATIONS:
                named.append(("activation", "model.activation", p.model.activation))
            if p.model.init not in INITS:
                named.append(("init", "model.init", p.model.init))
            if p.task.kind not in TASKS:
                named.append(("task", "task.kind", p.task.kind))
        return user_code(named)

    @property
    def all_seeds(self) -> tuple[int, ...]:
        """Every seed a trial of the suite may have: the tuning seeds, then the evaluation seeds."""
        return tuple(self.tune.seeds if self.tune else ()) + self.seeds

    def with_seeds(self, seeds=None, tune_seeds=None) -> Suite:
        """The same suite on other seeds (``bench run --seeds``, ``--tune-seeds``): its claims
        re-checked on seeds its author did not look at."""
        import dataclasses

        out = self
        if seeds is not None:
            out = dataclasses.replace(out, seeds=seed_list(seeds, "--seeds", self.source))
        if tune_seeds is not None:
            if self.tune is None:
                raise UserError("--tune-seeds: this suite has no [tune] table, so no tuning "
                                "stage", source=self.source, key="--tune-seeds")
            tune = self.tune.model_copy(update={"seeds": list(seed_list(
                tune_seeds, "--tune-seeds", self.source))})
            out = dataclasses.replace(out, tune=tune)
        if out.tune is not None:
            check_tune_seeds(out.tune, out.seeds, out.source, "--seeds / --tune-seeds")
        return out

    @property
    def varied_keys(self) -> list[str]:
        """The dotted keys set by [sweep] or a [[variant]], in file order."""
        return list(dict.fromkeys(k for p in self.points for k, _ in p.overrides))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def seed_list(seeds, option: str, source: str) -> tuple[int, ...]:
    values = tuple(seeds)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise UserError(f"{option} {values!r}: give one or more whole numbers, e.g. 10,11,12",
                        source=source, key=option)
    if len(set(values)) != len(values):
        raise UserError(f"{option} {list(values)!r} repeats a seed", source=source, key=option)
    return values


def check_tune_seeds(tune: Tune, seeds, source: str, where: str = "[tune] seeds") -> None:
    shared = sorted(set(tune.seeds) & set(seeds))
    if shared:
        raise UserError(f"{where}: {shared} are both tuning and evaluation seeds; the picks are "
                        "evaluated on seeds the tuning never saw, so keep the two sets apart",
                        source=source, key="tune.seeds", value=shared)


def expand(suite: Suite) -> list[TrialSpec]:
    """Grid points times seeds, in file order. Pure: touches no device and no file. With a
    ``[tune]`` table, the trials known before anything trains: the tuning stage, and the
    evaluation of settings with nothing to tune (``tuning.first_stage``)."""
    if suite.tune is not None:
        from bench.suite.stages import first_stage

        return first_stage(suite)
    return [TrialSpec(suite.name, p.variant, seed, p.task, p.model, p.train)
            for p in suite.points for seed in suite.seeds]
