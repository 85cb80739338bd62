"""``bench compare``: a planted regression is caught, an unchanged rerun is not flagged."""

import pandas as pd
import pytest

from bench.analysis.compare import Threshold, compare
from bench.cli import main
from bench.errors import UserError
from bench.execution.run import RunOptions, run_suite
from bench.results.reader import RunData
from tests.helpers import make_suite

BODY = """
seeds = [0, 1, 2]
[task]
kind = "spiral"
points_per_class = 40
[model]
hidden = [16]
activation = "relu"
[train]
optimizer = "adam"
lr = {lr}
epochs = 60
log_every = 20
[sweep]
"model.activation" = ["relu", "tanh"]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")

    def run(lr, out):
        suite = make_suite(BODY.format(lr=lr), name="cmp")
        return run_suite(suite, RunOptions(out=tmp / out, workers=1)).dir

    return {"base": run(0.02, "a"), "rerun": run(0.02, "b"), "slow_lr": run(0.0005, "c")}


def test_an_unchanged_rerun_moves_nothing(runs):
    result = compare(RunData.open(runs["base"]), RunData.open(runs["rerun"]),
                     [Threshold.parse("final_accuracy:-0.02"), Threshold.parse("final_loss:+5%")])
    assert not result.failures and not result.setting_changes
    for c in result.changes:
        if c.metric in ("final_loss", "final_accuracy", "best_loss"):
            assert c.diff == 0  # same spec, same seed, same numbers


def test_a_changed_default_learning_rate_is_caught(runs, tmp_path, capsys):
    a, b = RunData.open(runs["base"]), RunData.open(runs["slow_lr"])
    result = compare(a, b, [Threshold.parse("final_accuracy:-0.02")])
    assert result.setting_changes == [("train.lr", "0.02", "0.0005")]
    assert result.keys == ["model.activation"]  # matched on the sweep, not the whole config
    trials_a = pd.read_parquet(runs["base"] / "trials.parquet")
    trials_b = pd.read_parquet(runs["slow_lr"] / "trials.parquet")
    for c in (c for c in result.changes if c.metric == "final_accuracy"):
        act = c.point["model.activation"]
        for mean, trials in ((c.a, trials_a), (c.b, trials_b)):
            assert mean == pytest.approx(
                trials.loc[trials["model.activation"] == act, "final_accuracy"].mean())
    assert result.failures and all(c.metric == "final_accuracy" and c.diff < -0.02
                                   for c in result.failures)

    out = tmp_path / "cmp.md"
    status = main(["compare", str(runs["base"]), str(runs["slow_lr"]), "--fail-on",
                   "final_accuracy:-0.02", "--out", str(out)])
    assert status == 1
    printed = capsys.readouterr().out
    assert "regression: final_accuracy" in printed and "train.lr: 0.02 → 0.0005" in printed
    md = out.read_text()
    assert "| activation | Δ final_loss |" in md and "FAIL" in md and "`train.lr`: 0.02 → 0.0005" in md
    assert main(["compare", str(runs["base"]), str(runs["rerun"]), "--fail-on",
                 "final_accuracy:-0.02", "--out", str(tmp_path / "same.md")]) == 0


def test_thresholds_parse_and_cross():
    t = Threshold.parse("final_accuracy:-0.02")
    assert (t.metric, t.delta, t.up, t.relative) == ("final_accuracy", 0.02, False, False)
    assert t.crossed(0.95, 0.92) and not t.crossed(0.95, 0.94) and not t.crossed(0.9, 0.99)
    r = Threshold.parse("time_per_epoch_s:+20%")
    assert r.relative and r.up and r.delta == pytest.approx(0.2)
    assert r.crossed(1.0, 1.25) and not r.crossed(1.0, 1.15)
    assert r.crossed(0.0, 0.01) and not r.crossed(0.0, 0.0)  # any rise from 0 is unbounded
    zero = Threshold.parse("final_accuracy:-0")  # "-0": any fall, and a rise is fine
    assert zero.crossed(0.9, 0.8) and not zero.crossed(0.8, 0.9)
    nan, inf = float("nan"), float("inf")
    loss = Threshold.parse("final_loss:+0.1")
    assert loss.crossed(0.5, inf)             # it diverges now
    assert not loss.crossed(nan, 0.5)         # it stopped diverging: no regression
    assert loss.crossed(0.5, 0.45, n_a=3, n_b=2)  # one seed now diverges, the rest improved
    assert str(Threshold.parse("x:-.02")) == "x:-0.02" and Threshold.parse("x:+1E-3").delta == 1e-3
    with pytest.raises(UserError, match="expected METRIC:"):
        Threshold.parse("final_accuracy=0.02")


def test_bad_fail_on_metric_is_a_user_error(runs, tmp_path):
    a, b = RunData.open(runs["base"]), RunData.open(runs["rerun"])
    with pytest.raises(UserError, match="did you mean 'final_accuracy'"):
        compare(a, b, [Threshold.parse("final_acuracy:-0.02")])
    with pytest.raises(UserError, match="not a numeric trials column"):
        compare(a, b, [Threshold.parse("device_name:+1")])
    # --out naming a folder puts the default file name in it
    assert main(["compare", str(runs["base"]), str(runs["rerun"]), "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("compare_*_vs_*.md"))) == 1
