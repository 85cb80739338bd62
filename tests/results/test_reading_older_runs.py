"""A run folder written before the package took its layout (bench/*.py side by side, commit
cb15e9a) still reports and checks, and its trial ids are the ones the code gives today.

tests/data/run_before_the_layout holds that run's manifest and three tables (two activations x
two seeds of a small spiral, 5 epochs; its parts, weights included, left out to keep the
repository small).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from bench.cli import main
from bench.results import RunData
from bench.suite import expand, parse_suite

OLD = Path(__file__).resolve().parents[1] / "data" / "run_before_the_layout"


def _copy(tmp_path) -> Path:
    run = tmp_path / "results" / "compat" / "20261204T145403Z"
    shutil.copytree(OLD, run)
    return run


def test_its_trial_ids_are_todays_for_the_same_suite():
    run = RunData.open(OLD)
    suite = parse_suite(run.manifest["suite"]["text"], source="compat.toml")
    assert sorted(s.trial_id for s in expand(suite)) == sorted(run.trials["trial_id"])


def test_it_reads_back_with_the_same_columns_and_types():
    trials = pq.read_table(OLD / "trials.parquet")
    assert str(trials.schema.field("model.hidden").type) == "list<element: int64>"
    assert str(trials.schema.field("epochs_to_target").type) == "int64"
    run = RunData.open(OLD)
    assert set(run.trials["status"]) == {"ok"}
    assert len(run.curves) == 4 * 6 and len(run.layers) == 4 * 6  # epochs 0..5, one layer


def test_it_still_reports_and_checks(tmp_path, capsys):
    run = _copy(tmp_path)
    assert main(["check", str(run)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "relu" in text and "tanh" in text
    assert pd.read_parquet(run / "trials.parquet").equals(pd.read_parquet(OLD / "trials.parquet"))
