"""``bench check``: evaluate a suite's ``[[expect]]`` claims against a stored run.

A claim selects trials with ``where`` (any trials column: ``variant``, ``model.activation``,
``train.lr``, ...), averages ``metric`` over the seeds of each grid point it matches, and holds
when every matched grid point is within ``min``/``max``. With ``vs = { key = value }`` each
matched point is compared with the same point with ``vs`` applied, and ``by_at_least`` bounds
the *improvement*: ``where − vs`` for metrics where higher is better (accuracy), ``vs − where``
for those where lower is better (loss, time, memory, epochs, dead and saturated fractions, errors);
``min``/``max`` then bound the plain difference ``where − vs``.

The claims are read from the suite text stored in the run's manifest, so a run is checked
against the claims it was run with. A claim naming a column or value the run does not have is a
user error (exit 2); a claim that fails makes the check fail (exit 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from bench import schema
from bench.analysis.statistics import mean_ci, welch
from bench.errors import UserError, did_you_mean
from bench.results.reader import RunData, equals, hashable, settings, show
from bench.suite import Expect, parse_claims


def lower_is_better(metric: str) -> bool:
    """Whether a smaller ``metric`` is the improvement ``by_at_least`` asks for: the results
    schema's direction (bench/schema.py); a column without one (a ratio, a config key) counts
    up."""
    return schema.lower_is_better(metric)


@dataclass
class PointCheck:
    point: dict
    value: float          # the metric's mean over seeds (or the difference with vs)
    n: int               # seeds with a finite value
    ok: bool
    diverged: int = 0     # seeds that diverged (they fail the point whatever the mean)
    low: float = math.nan   # the 95% t-interval of the mean (Welch's of the difference, with vs)
    high: float = math.nan

    def resolved(self, claim: Expect) -> bool:
        """Whether the whole interval is on one side of the bound: the verdict would not
        change with the seeds' noise. False with one seed (no interval)."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return False
        return _holds(claim, self.low) == _holds(claim, self.high) == _holds(claim, self.value)


@dataclass
class ClaimResult:
    index: int
    claim: Expect
    points: list[PointCheck] = field(default_factory=list)
    note: str = ""

    @property
    def verdict(self) -> str:
        if not self.points:
            return "not checked"
        return "pass" if all(p.ok for p in self.points) else "fail"

    @property
    def worst(self) -> PointCheck | None:
        """The point nearest to (or furthest past) its bound."""
        if not self.points:
            return None
        return min(self.points, key=lambda p: -math.inf if p.diverged else _margin(self.claim, p.value))

    @property
    def warning(self) -> str:
        """Where the seeds are too few for the claim: an interval that crosses the bound."""
        loose = [p for p in self.points if not p.diverged and not p.resolved(self.claim)]
        if not loose:
            return ""
        p = min(loose, key=lambda p: abs(_margin(self.claim, p.value)))
        what = "difference" if self.claim.vs else "mean"
        where = ", ".join(f"{k} = {show(v)}" for k, v in p.point.items())
        if not (math.isfinite(p.low) and math.isfinite(p.high)):
            return (f"too few seeds for this claim: {p.n} seed(s), so no interval for the {what}"
                    + (f" at {where}" if where else ""))
        return (f"too few seeds for this claim: the 95% interval of the {what}, "
                f"[{p.low:.4g}, {p.high:.4g}], crosses the bound ({self.bound()})"
                + (f" at {where}" if where else "") +
                (f"; {len(loose)} of {len(self.points)} points" if len(self.points) > 1 else ""))

    def bound(self) -> str:
        c = self.claim
        parts = []
        if c.by_at_least is not None:
            parts.append(f"improvement ≥ {c.by_at_least:g}")
        if c.min is not None:
            parts.append(f"≥ {c.min:g}")
        if c.max is not None:
            parts.append(f"≤ {c.max:g}")
        return ", ".join(parts)

    def text(self) -> str:
        c = self.claim
        where = ", ".join(f"{k} = {show(v)}" for k, v in c.where.items()) or "all trials"
        vs = (" vs " + ", ".join(f"{k} = {show(v)}" for k, v in c.vs.items())) if c.vs else ""
        return c.description or f"{c.metric} at {where}{vs}"


def claims_of(run: RunData) -> tuple[Expect, ...]:
    suite = run.manifest.get("suite") or {}
    text = suite.get("text")
    if not text:
        raise UserError("the manifest holds no suite text, so there are no claims to check",
                        source=str(run.dir))
    return parse_claims(text, source=suite.get("source") or str(run.dir))


def claims_origin(run: RunData) -> str:
    """Where the claims ``check`` uses come from, in one line: the suite text stored with the
    run (the one its trials were run with), never the suite file as it is now."""
    suite = run.manifest.get("suite") or {}
    sha = (suite.get("sha256") or "")[:12]
    line = (f"claims of the suite this run was run with ({suite.get('source') or '?'}, sha256 "
            f"{sha or '?'}, as stored in its manifest; the file may have changed since)")
    extended = len(run.manifest.get("suite_history") or [])
    if extended:
        times = f"{extended} time{'s' if extended > 1 else ''}"
        line += f"; the run was extended {times} (--extend): the latest suite's"
    return line


def check(run: RunData, claims: tuple[Expect, ...] | None = None) -> list[ClaimResult]:
    """Every claim's verdict; raises UserError for a claim the run cannot answer."""
    claims = claims_of(run) if claims is None else claims
    return [_check_one(run, i, claim) for i, claim in enumerate(claims, 1)]


def _validate(run: RunData, i: int, claim: Expect) -> None:
    columns = list(run.trials.columns)
    where = f"[[expect]] #{i}"
    if claim.metric not in columns:
        raise UserError(f"{where}: metric {claim.metric!r} is not a trials column"
                        f"{did_you_mean(claim.metric, columns)}; valid choices: "
                        f"{', '.join(c for c in columns if pd.api.types.is_numeric_dtype(run.trials[c]))}",
                        key="metric", value=claim.metric)
    if not pd.api.types.is_numeric_dtype(run.trials[claim.metric]):
        raise UserError(f"{where}: metric {claim.metric!r} is not numeric", key="metric",
                        value=claim.metric)
    for table, name in ((claim.where, "where"), (claim.vs or {}, "vs")):
        for key, value in table.items():
            if key not in columns:
                raise UserError(f"{where}: {name} key {key!r} is not a trials column"
                                f"{did_you_mean(key, columns)}", key=f"{name}.{key}", value=key)
            levels = run.levels(key)
            if _norm(value) not in levels:
                choices = [show(v) for v in levels]
                raise UserError(f"{where}: {name} {key} = {show(value)} matches no trial"
                                f"{did_you_mean(show(value), choices)}; values in this run: "
                                f"{', '.join(choices)}", key=f"{name}.{key}", value=value,
                                choices=choices)


def _norm(value):
    return hashable(tuple(value) if isinstance(value, list) else value)


def _select(frame: pd.DataFrame, conditions: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for key, value in conditions.items():
        mask &= equals(frame[key], _norm(value))
    return frame[mask]


def _trials(run: RunData, claim: Expect) -> pd.DataFrame:
    """The trials a claim speaks of: with a [tune] protocol, the evaluation stage's (the picks
    on fresh seeds), unless the claim names a stage itself."""
    trials = run.trials
    if "stage" in trials and "stage" not in claim.where and (trials["stage"] == "eval").any():
        return trials[trials["stage"] == "eval"]
    return trials


def _check_one(run: RunData, i: int, claim: Expect) -> ClaimResult:
    _validate(run, i, claim)
    result = ClaimResult(i, claim)
    trials = _trials(run, claim)
    matched = _select(trials, claim.where)
    if matched.empty:
        where = ", ".join(f"{k} = {show(v)}" for k, v in claim.where.items())
        raise UserError(f"[[expect]] #{i}: no trial has {where} all at once (each value exists, "
                        "the combination does not)", key="where", value=claim.where)
    vs_side = None
    if claim.vs:
        vs_side = _select(trials, {**claim.where, **claim.vs})
        if set(vs_side["trial_id"]) == set(matched["trial_id"]):
            raise UserError(f"[[expect]] #{i}: vs changes nothing: it selects the same trials as "
                            "where", key="vs", value=claim.vs)
    ran = matched[matched["status"].isin(schema.TRAINED)]
    tuned = (run.manifest.get("tuning") or {}).get("keys") or []
    # at the evaluation stage the tuned keys are each setting's pick, not an axis to match on
    keys = [k for k in run.varied_keys if k not in claim.where
            and not (k in tuned and trials is not run.trials)]
    if ran.empty:
        reasons = sorted(set(matched["error"].dropna()))
        result.note = "no matched trial ran" + (f": {reasons[0]}" if reasons else "")
        return result
    labels = settings(ran, keys)
    for values in dict.fromkeys(labels):
        group = ran[equals(labels, values)]
        point = dict(zip(keys, values))
        if claim.vs and all(k in point and point[k] == _norm(v) for k, v in claim.vs.items()):
            continue  # this point is the comparison itself
        est = mean_ci(group[claim.metric])  # the finite seeds' mean, and how many
        value, n, low, high = est.mean, est.n, est.low, est.high
        diverged = int((group["status"] == schema.DIVERGED).sum())
        if claim.vs:
            other = _compared(run, vs_side, point, claim)
            if other.empty:
                continue  # the compared point did not run (skipped): nothing to compare here
            base = mean_ci(other[claim.metric])
            low, high = _difference_interval(group, other, claim.metric)
            value, n = value - base.mean, min(n, base.n)
            diverged += int((other["status"] == schema.DIVERGED).sum())
        if n == 0 and not diverged:
            continue  # the metric has no value here by nature (a tanh net's dead fraction)
        # a diverged seed fails any bound, even when the other seeds' mean would pass
        result.points.append(PointCheck(point, value, n, _holds(claim, value) and not diverged,
                                        diverged, low, high))
    if not result.points:
        result.note = ("the compared trials did not run" if claim.vs else
                       f"{claim.metric} has no value in the matched trials")
    return result


def _difference_interval(group: pd.DataFrame, other: pd.DataFrame, metric: str) -> tuple:
    """The 95% interval of mean(group) − mean(other): paired by seed where both sides ran the
    same seeds (a seed draws the same data on both sides, so its difference is the cleaner
    sample), else Welch's."""
    a = group.set_index("seed")[metric]
    b = other.set_index("seed")[metric]
    if a.index.is_unique and b.index.is_unique and set(a.index) == set(b.index):
        est = mean_ci(a - b.reindex(a.index))
        return est.low, est.high
    d = welch(group[metric], other[metric])
    return d.low, d.high


def _compared(run: RunData, vs_side: pd.DataFrame, point: dict, claim: Expect) -> pd.DataFrame:
    """The trials ``point`` is compared with: the ``vs`` side at the same values of the other
    keys, except keys the ``vs`` side never takes at those values (a ``[[variant]]`` that pins
    the activation: relu's variant is not identity's)."""
    other = vs_side[vs_side["status"].isin(schema.TRAINED)]
    for key, value in point.items():
        if key in claim.vs:
            continue
        same = other[equals(other[key], value)]
        if not same.empty:
            other = same
    return other


def _margin(claim: Expect, value: float) -> float:
    """How far inside its tightest bound ``value`` lies (negative: how far outside)."""
    if not math.isfinite(value):
        return -math.inf
    margins = []
    if claim.min is not None:
        margins.append(value - claim.min)
    if claim.max is not None:
        margins.append(claim.max - value)
    if claim.by_at_least is not None:
        margins.append((-value if lower_is_better(claim.metric) else value) - claim.by_at_least)
    return min(margins)


def _holds(claim: Expect, value: float) -> bool:
    if not math.isfinite(value):
        return False  # diverged (or nothing finite) never satisfies a bound
    if claim.min is not None and value < claim.min:
        return False
    if claim.max is not None and value > claim.max:
        return False
    if claim.by_at_least is not None:
        gain = -value if lower_is_better(claim.metric) else value
        if gain < claim.by_at_least:
            return False
    return True


def describe_point(result: ClaimResult) -> str:
    worst = result.worst
    if worst is None:
        return result.note
    where = ", ".join(f"{k} = {show(v)}" for k, v in worst.point.items())
    shown = f"{worst.value:.6g}"
    label = "difference" if result.claim.vs else "mean"
    if result.claim.vs and result.claim.by_at_least is not None:
        gain = -worst.value if lower_is_better(result.claim.metric) else worst.value
        label, shown = "improvement", f"{gain:.6g}"
    diverged = f", {worst.diverged} diverged" if worst.diverged else ""
    return (f"{label} {shown} over {worst.n} seed{'s' if worst.n != 1 else ''}{diverged}"
            + (f" at {where}" if where else "")
            + (f" ({len(result.points)} points)" if len(result.points) > 1 else ""))


def claimed_points(suite):
    """``suite`` cut down to the grid points its claims look at (``where``, and the whole ``vs``
    side of it): the short version of a suite that CI checks. Points whose device is missing
    stay: the run records them as skipped rows (at no cost) and ``check`` reports them not
    checked, as it does for a full run."""
    import dataclasses

    from bench.suite import expand

    def matches(spec, conditions: dict) -> bool:
        cfg = {"variant": spec.variant, "seed": spec.seed, **spec.config}
        return all(k in cfg and hashable(cfg[k]) == _norm(v) for k, v in conditions.items())

    def claimed(spec) -> bool:
        return any(matches(spec, c.where) or (c.vs and matches(spec, {**c.where, **c.vs}))
                   for c in suite.expect)

    keep = [p for p in suite.points
            if any(claimed(s) for s in expand(dataclasses.replace(suite, points=(p,))))]
    return dataclasses.replace(suite, points=tuple(keep))
