"""A run's sections: its trials grouped by task, each with the keys it compares, its main metric,
its per-point estimates and comparisons (``summary``), its ranking, and its findings
(``findings``). What a report, ``bench.plots`` and the API draw from.
"""

from __future__ import annotations

from bench.analysis.findings import findings
from bench.analysis.summary import (
    ACTIVATION,
    BY_COLUMN,
    METRICS,
    Section,
    evaluated,
    headline,
    main_metric,
    pairwise,
    problem_kind,
    rankings,
    tuned_keys,
)
from bench.results.reader import RunData, keyed


def sections(run: RunData) -> list[Section]:
    out = []
    tuned = tuned_keys(run)
    ran = evaluated(run)
    for task in run.levels("task.kind", ran):
        frame = ran[ran["task.kind"] == task]
        keys = [k for k in run.varied_keys if k != "task.kind" and k not in tuned
                and keyed(frame[k]).nunique(dropna=False) > 1]
        problem = problem_kind(frame)
        main = main_metric(frame, problem)
        tune_metric = (run.manifest.get("tuning") or {}).get("metric", "")
        if tune_metric.startswith("final_val_") and tune_metric.replace("_val_", "_test_") in frame:
            main = BY_COLUMN[tune_metric.replace("_val_", "_test_")]  # the test twin of the pick's
        metrics = [m for m in METRICS if m.column in frame and frame[m.column].notna().any()]
        section = Section(str(task), problem, frame, keys, main, metrics, headline(frame, keys, metrics))
        if ACTIVATION in keys:
            section.comparisons = pairwise(frame, keys, ACTIVATION, main)
            section.ranking = rankings(frame, keys, main, section.comparisons)
        section.findings = findings(run, section)
        out.append(section)
    return out
