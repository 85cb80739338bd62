"""``bench compare RUN_A RUN_B``: what changed between two runs of a suite, grid point by point.

Points are matched on the suite's swept keys (and the variant), not on the whole config, so a
changed default (a fixed learning rate, say) shows up as the changed setting it is, and as the
metric changes it causes, rather than as two runs with nothing in common. Each headline metric
is compared over seeds with Welch's t-test. ``--fail-on final_accuracy:-0.02`` fails (exit 1)
when a point's mean moves below -0.02; ``time_per_epoch_s:+20%`` when it grows by more than 20%.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from bench.analysis.formatting import DASH, md_code, md_escape, p_value, setting_text, short, sig, signed
from bench.analysis.statistics import ALPHA, mean_ci, welch
from bench.analysis.summary import METRICS
from bench.analysis.tables import Cell, Table
from bench.errors import UserError, did_you_mean
from bench.results.names import check_run_names
from bench.results.reader import RunData, equals, settings, show

# What a comparison shows unless told: the report's metrics (bench/schema.py, ``summarized``)
# but saturation, which is NaN for most activations.
DEFAULT_METRICS = [m.column for m in METRICS if m.column != "saturated_fraction"]


@dataclass(frozen=True)
class Threshold:
    """``metric:+0.05`` or ``metric:-2%``: the sign says which way is a regression."""

    metric: str
    delta: float      # how far, always >= 0
    up: bool          # True: a rise past delta is the regression; False: a fall past delta
    relative: bool

    @classmethod
    def parse(cls, text: str) -> Threshold:
        match = re.fullmatch(r"\s*([\w.]+)\s*:\s*([+-])\s*(\d*\.?\d+(?:[eE][+-]?\d+)?)\s*(%?)\s*",
                             text)
        if not match:
            raise UserError(f"--fail-on {text!r}: expected METRIC:+DELTA or METRIC:-DELTA, with an "
                            "optional %, e.g. final_accuracy:-0.02 or time_per_epoch_s:+20%",
                            key="--fail-on", value=text)
        metric, sign, number, percent = match.groups()
        delta = float(number) / (100 if percent else 1)
        return cls(metric, delta, sign == "+", bool(percent))

    def crossed(self, a: float, b: float, n_a: int = 0, n_b: int = 0) -> bool:
        """Did the mean move from ``a`` to ``b`` past the threshold, the regression's way? Fewer
        finite seeds in B than in A (a seed that now diverges) also counts."""
        if n_b < n_a:
            return True
        if not math.isfinite(b):
            return math.isfinite(a)  # it diverged now; a run that stopped diverging is no regression
        if not math.isfinite(a):
            return False
        change = b - a
        if self.relative:
            if a == 0:
                return change > 0 if self.up else change < 0  # any move from 0 is unbounded
            change /= abs(a)
        return change > self.delta if self.up else change < -self.delta

    def __str__(self) -> str:
        amount = f"{self.delta * 100:g}%" if self.relative else f"{self.delta:g}"
        return f"{self.metric}:{'+' if self.up else '-'}{amount}"


@dataclass
class Change:
    point: dict
    metric: str
    a: float
    b: float
    n_a: int
    n_b: int
    p: float
    failed: list[Threshold]

    @property
    def diff(self) -> float:
        return self.b - self.a

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p) and self.p < ALPHA


@dataclass
class RunComparison:
    a: RunData
    b: RunData
    keys: list[str]
    metrics: list[str]
    changes: list[Change]
    setting_changes: list[tuple[str, str, str]]   # fixed settings that differ: key, in A, in B
    only_a: list[dict]
    only_b: list[dict]
    # how the runs were trained differs (packing, executor, workers, threads, device), so some
    # columns measure the harness rather than the change: one sentence each
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Change]:
        return [c for c in self.changes if c.failed]


def _fixed_differences(a: RunData, b: RunData, keys: list[str]) -> list[tuple[str, str, str]]:
    """Settings outside the matched keys whose values differ between the runs; where the runs
    have variants, a key a variant pins is compared variant by variant."""
    out = []
    for column in sorted(set(a.config_columns) | set(b.config_columns)):
        if column in keys:
            continue
        va, vb = values_by_variant(a, column), values_by_variant(b, column)
        if va != vb:
            out.append((column, _describe(va), _describe(vb)))
    return out


def execution_notes(a: RunData, b: RunData) -> list[str]:
    """What differs in how the two runs trained, beyond the suite: packing, the executor with
    its workers and threads, the device. Each changes what time (and, for packing and the
    device, memory) measures, so those columns then compare the harness, not the change."""
    notes = []
    for what_a, what_b, describe, columns in (
            ("trained", "", _packing, "time and memory columns are"),
            ("ran on", "on ", _execution, "time columns are"),
            ("trained on", "on ", _devices, "time and memory columns are")):
        da, db = describe(a), describe(b)
        if da != db:
            notes.append(f"run A {what_a} {da}, run B {what_b}{db}: {columns} not comparable")
    return notes


def _packing(run: RunData) -> str:
    ran = run.ran
    sizes = (ran["pack_size"].fillna(1) if "pack_size" in ran  # a run from before packing:
             else pd.Series(1, index=ran.index))             # one trial at a time
    packed = int((sizes > 1).sum())
    if not packed:
        return "one trial at a time"
    return "packed seeds" if packed == len(ran) else f"packed seeds for {packed} of {len(ran)} trials"


def _execution(run: RunData) -> str:
    """The executor, workers and threads of each session that ran trials ("then" between)."""
    m = run.manifest
    sessions = [s for s in m.get("sessions") or [] if s.get("trials_planned", 1)] or [m]

    def one(s: dict) -> str:
        workers, threads = s.get("workers"), s.get("threads")
        return (f"the {s.get('executor') or 'unrecorded'} executor with "
                f"{workers if workers is not None else '?'} worker{'' if workers == 1 else 's'} x "
                f"{threads if threads is not None else '?'} thread{'' if threads == 1 else 's'}")

    return " then ".join(dict.fromkeys(one(s) for s in sessions))


def _devices(run: RunData) -> str:
    ran = run.ran
    column = "device_name" if "device_name" in ran else "train.device"
    names = sorted({str(v) for v in ran[column].dropna()}) if column in ran else []
    return " and ".join(names) or "an unrecorded device"


def values_by_variant(run: RunData, column: str) -> dict:
    if column not in run.trials:
        from bench.training.spec import ADDED_KEYS

        # a key added after the run was stored: it had the value that reproduces the old code,
        # if every task kind of the run has that key (a user task's key is its own)
        kinds = set(run.trials["task.kind"])
        added = {ADDED_KEYS.get((k, column), ADDED_KEYS.get(("*", column), None)) for k in kinds}
        known = all((k, column) in ADDED_KEYS or ("*", column) in ADDED_KEYS for k in kinds)
        return {"": show(added.pop())} if known and len(added) == 1 else {"": "(absent)"}
    pairs = zip(run.trials["variant"].astype(str), (show(v) for v in run.trials[column]))
    by: dict[str, set] = {}
    for variant, value in pairs:
        by.setdefault(variant, set()).add(value)
    return {k: ", ".join(sorted(v)) for k, v in by.items()}


def _describe(values: dict) -> str:
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return "; ".join(f"{v} ({k or 'no variant'})" for k, v in sorted(values.items()))


def compare(a: RunData, b: RunData, thresholds: list[Threshold] = (),
            metrics: list[str] | None = None) -> RunComparison:
    # Both runs' suite names and run ids become the comparison's file name (with --out DIR:
    # DIR/compare_<A>_vs_<B>.md): a doctored manifest is refused here, before any path is built.
    check_run_names(a)
    check_run_names(b)
    metrics = metrics or [m for m in DEFAULT_METRICS if m in a.trials and m in b.trials]
    numeric = sorted(c for c in set(a.trials.columns) & set(b.trials.columns)
                     if pd.api.types.is_numeric_dtype(a.trials[c])
                     and pd.api.types.is_numeric_dtype(b.trials[c]))
    for t in thresholds:
        if t.metric not in numeric:
            raise UserError(f"--fail-on {t}: {t.metric!r} is not a numeric trials column of both "
                            f"runs{did_you_mean(t.metric, numeric)}; valid choices: "
                            f"{', '.join(numeric)}", key="--fail-on", value=t.metric)
        if t.metric not in metrics:
            metrics.append(t.metric)
    keys = list(dict.fromkeys(a.varied_keys + b.varied_keys))
    keys = [k for k in keys if k in a.trials and k in b.trials]
    ran_a, ran_b = a.ran, b.ran
    points_a = list(dict.fromkeys(settings(ran_a, keys)))
    points_b = list(dict.fromkeys(settings(ran_b, keys)))
    common = [p for p in points_a if p in set(points_b)]
    if not common:
        raise UserError(f"the runs share no grid point that trained (runs of {a.suite_name!r} and "
                        f"{b.suite_name!r}, matched on {', '.join(keys) or 'nothing'})",
                        source=str(b.dir))
    labels_a, labels_b = settings(ran_a, keys), settings(ran_b, keys)
    changes = []
    for values in common:
        ga, gb = ran_a[equals(labels_a, values)], ran_b[equals(labels_b, values)]
        for metric in metrics:
            xa, xb = ga[metric].astype(float), gb[metric].astype(float)
            d = welch(xb, xa)
            mean_a, mean_b = mean_ci(xa).mean, mean_ci(xb).mean
            failed = [t for t in thresholds
                      if t.metric == metric and t.crossed(mean_a, mean_b, d.n_b, d.n_a)]
            changes.append(Change(dict(zip(keys, values)), metric, mean_a, mean_b, d.n_b, d.n_a,
                                  d.p, failed))
    return RunComparison(a, b, keys, metrics, changes, _fixed_differences(a, b, keys),
                         [dict(zip(keys, v)) for v in points_a if v not in set(points_b)],
                         [dict(zip(keys, v)) for v in points_b if v not in set(points_a)],
                         execution_notes(a, b))


def cell(change: Change) -> str:
    """"-0.021*" : the change B − A, starred where Welch's p < 0.05, flagged where it failed."""
    if math.isnan(change.a) and math.isnan(change.b):
        return DASH  # nothing on either side (a tanh net's dead fraction, a target never met)
    if not (math.isfinite(change.a) and math.isfinite(change.b)):
        return f"{sig(change.a)} → {sig(change.b)}"
    text = signed(change.diff, 3) if change.diff else "0"
    if change.significant:
        text += "*"
    if change.failed:
        text += " FAIL"
    return text


def table(result: RunComparison) -> Table:
    """The comparison's grid: a row per point, a column per metric (``cell``), a crossed
    threshold in bold red; drawn as Markdown (``markdown``) and in the terminal."""
    rows = [[Cell(show(point[k])) for k in result.keys]
            + [Cell(cell(c), style="bold red" if c.failed else None) for c in row]
            for point, row in _rows(result)]
    return Table([short(k) for k in result.keys] + [f"Δ {m}" for m in result.metrics], rows,
                 [False] * len(result.keys) + [True] * len(result.metrics),
                 title=f"{result.a.suite_name} {result.a.run_id} → {result.b.run_id}: change of "
                       "the mean over seeds (B − A; * Welch p < 0.05)")


def markdown(result: RunComparison) -> str:
    """The comparison as Markdown; every name and value from the runs is escaped (md_escape)."""
    a, b = result.a, result.b
    e = md_escape
    lines = [f"# {e(a.suite_name)}: {e(a.run_id)} → {e(b.suite_name)}: {e(b.run_id)}", "",
             f"A = {md_code(a.dir)}, B = {md_code(b.dir)}. Each cell is the change of the mean "
             "over seeds, B − A; "
             f"`*` marks Welch's two-sided p < {ALPHA:g} over seeds; `FAIL` marks a `--fail-on` "
             "threshold crossed.", ""]
    if result.setting_changes:
        lines += ["Settings that differ between the runs:", ""]
        lines += [f"- {md_code(k)}: {e(va)} → {e(vb)}" for k, va, vb in result.setting_changes]
        lines += [""]
    for note in result.notes:
        lines += [f"**Note:** {e(note)}", ""]
    for label, points in (("only in A", result.only_a), ("only in B", result.only_b)):
        if points:
            lines.append(f"Grid points {label} (not compared): {len(points)}")
            lines.append("")
    lines += [table(result).markdown(), "", "Per metric, largest moves:", ""]
    for metric in result.metrics:
        ranked = sorted((c for c in result.changes if c.metric == metric
                         and math.isfinite(c.diff) and c.diff != 0), key=lambda c: -abs(c.diff))
        if ranked:
            c = ranked[0]
            where = e(setting_text(list(c.point), list(c.point.values()))) if c.point else ""
            lines.append(f"- {md_code(metric)}: {sig(c.a)} → {sig(c.b)} at "
                         f"{where or 'the only point'} (p {p_value(c.p)}, {c.n_a} vs {c.n_b} seeds)")
    if result.failures:
        lines += ["", f"**{len(result.failures)} regression(s) past --fail-on.**"]
    return "\n".join(lines) + "\n"


def _rows(result: RunComparison):
    """(point, [change per metric]) in grid order."""
    by_point: dict[tuple, list[Change]] = {}
    for c in result.changes:
        by_point.setdefault(tuple(c.point.values()), []).append(c)
    for values, row in by_point.items():
        yield dict(zip(result.keys, values)), row
