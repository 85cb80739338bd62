"""A suite's ``[[expect]]`` claims checked against its grid when it loads, before anything
trains: a claim on a metric the run will not record, or on a value the grid never takes, is a
user error (exit 2) that lists the valid choices, not a finding after an hour of training."""

from __future__ import annotations

from typing import Any

from bench import schema
from bench.errors import UserError, did_you_mean
from bench.results.reader import hashable, show
from bench.training.spec import TrialSpec

# Result columns every trial row has (bench/schema.py; the splits' columns only where the task
# has the split), numeric once the trial has run.
RESULT_METRICS = tuple(c.name for c in schema.columns("trials")
                       if c.dtype in ("int64", "double") and not c.split)
_ACCURACY = ("final_accuracy", "final_val_accuracy", "final_test_accuracy")


def metrics(suite) -> list[str]:
    """The numeric trials columns a run of ``suite`` will have."""
    points = suite.points
    out = list(RESULT_METRICS)
    for split in ("val", "test"):
        if any(getattr(p.task, f"has_{split}_split") for p in points):
            out += [f"final_{split}_loss", f"final_{split}_accuracy"]
    if not any(p.task.problem == "classification" for p in points):
        out = [m for m in out if m not in _ACCURACY]
    numeric = {k for p in points for k, v in _config(suite, p).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return out + sorted(numeric - set(out))


def _config(suite, point) -> dict[str, Any]:
    spec = TrialSpec(suite.name, point.variant, 0, point.task, point.model, point.train)
    return {"variant": point.variant, **spec.config}


def check_claims(suite) -> None:
    """Raise one UserError listing every claim that names an unknown metric or key, or a value
    (or a combination of ``where`` values) no trial of the grid will have."""
    if not suite.expect:
        return
    configs = [_config(suite, p) for p in suite.points]
    stages = ("tune", "eval") if suite.tune is not None else ("",)
    levels: dict[str, list] = {"seed": list(suite.all_seeds), "stage": list(stages)}
    for config in configs:
        for key, value in config.items():
            values = levels.setdefault(key, [])
            if hashable(value) not in values:
                values.append(hashable(value))
    known = metrics(suite)
    problems = []
    for i, claim in enumerate(suite.expect, 1):
        where = f"[[expect]] #{i}"
        if claim.metric not in known:
            problems.append(f"{where}: metric {claim.metric!r} is not a column this run will "
                            f"have{did_you_mean(claim.metric, known)}; valid choices: "
                            f"{', '.join(known)}")
        bad = False
        for table, name in ((claim.where, "where"), (claim.vs or {}, "vs")):
            for key, value in table.items():
                if key not in levels:
                    problems.append(f"{where}: {name} key {key!r} is not a column of the grid"
                                    f"{did_you_mean(key, levels)}; valid keys: "
                                    f"{', '.join(sorted(levels))}")
                    bad = True
                elif _norm(value) not in levels[key]:
                    choices = [show(v) for v in levels[key]]
                    problems.append(f"{where}: {name} {key} = {show(value)} is not in the grid"
                                    f"{did_you_mean(show(value), choices)}; values: "
                                    f"{', '.join(choices)}")
                    bad = True
        if not bad:
            grid_where = {k: v for k, v in claim.where.items() if k not in ("seed", "stage")}
            if not any(_matches(c, grid_where) for c in configs):
                text = ", ".join(f"{k} = {show(v)}" for k, v in claim.where.items())
                problems.append(f"{where}: no grid point has {text} all at once (each value "
                                "exists, the combination does not)")
    if problems:
        raise UserError("\n".join(problems[:8]), source=suite.source)


def _norm(value: Any) -> Any:
    return hashable(tuple(value) if isinstance(value, list) else value)


def _matches(config: dict, conditions: dict) -> bool:
    return all(k in config and hashable(config[k]) == _norm(v) for k, v in conditions.items())
