"""The tuned comparison ([tune]): validation, the pick rule, both stages end to end, and the
report's ranking table; with the claims checked at load, --seeds and the detectable difference."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.analysis.check import check
from bench.analysis.statistics import welch
from bench.analysis.tuning import pick
from bench.cli import main
from bench.errors import UserError
from bench.execution.run import RunOptions, run_suite
from bench.results.reader import RunData
from bench.suite import expand
from bench.suite.stages import planned_total, second_stage, settings, tuning_specs
from bench.training.tasks import draw_task
from tests.helpers import make_suite, one_spec

TUNED = """
seeds = [10, 11]
[tune]
keys = ["train.lr"]
metric = "final_val_loss"
seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 40
test_fraction = 0.25
val_fraction = 0.25
[model]
hidden = [8]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.01
epochs = 15
[sweep]
"model.activation" = ["relu", "tanh"]
"train.lr" = [0.001, 0.01, 0.1]
"""


def tuned(extra: str = "", body: str = TUNED):
    return make_suite(body + extra, name="tuned")


# -- the suite format -------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (('keys = ["train.lr"]', 'keys = ["train.epochs"]'), "'train.epochs' is not a [sweep] key"),
    (("val_fraction = 0.25", "val_fraction = 0.0"), "set [task] val_fraction"),
    (("test_fraction = 0.25", "test_fraction = 0.0"), "set [task] test_fraction"),
    (("seeds = [0, 1]", "seeds = [0, 10]"), "[10] are both tuning and evaluation seeds"),
    (('metric = "final_val_loss"', 'metric = "final_test_loss"'), "not a validation metric"),
])
def test_a_bad_tune_table_is_one_clear_error(change, message):
    with pytest.raises(UserError) as err:
        tuned(body=TUNED.replace(*change))
    assert message in str(err.value)


def test_the_first_stage_is_the_tuning_grid_on_the_tuning_seeds():
    suite = tuned()
    specs = expand(suite)
    assert len(specs) == 2 * 3 * 2 and {s.stage for s in specs} == {"tune"}
    assert {s.seed for s in specs} == {0, 1}
    assert planned_total(suite) == 12 + 2 * 2  # each activation's pick on the 2 evaluation seeds
    # stage is part of a trial's identity, so a pick's evaluation never reuses a tuning trial
    assert one_spec().trial_id == one_spec().trial_id


def test_a_variant_that_pins_the_tuned_key_is_evaluated_without_tuning():
    suite = tuned('\n[[variant]]\nname = "tuned"\n[[variant]]\nname = "fixed"\n'
                  '"model.activation" = "relu"\n"train.lr" = 0.05\n')
    specs = expand(suite)
    fixed = [s for s in specs if s.variant == "fixed"]
    assert {s.stage for s in fixed} == {"eval"} and {s.seed for s in fixed} == {10, 11}
    assert {s.train.lr for s in fixed} == {0.05}


def _frame(suite, values: dict[tuple[str, float], list[float]], status=None) -> pd.DataFrame:
    """A trials table for the tuning stage: values[(activation, lr)] = val loss per seed."""
    rows = []
    for setting in settings(suite):
        for specs in tuning_specs(suite, setting).values():
            for spec in specs:
                v = values[(spec.model.activation, spec.train.lr)][spec.seed]
                st = (status or {}).get((spec.model.activation, spec.train.lr, spec.seed), "ok")
                rows.append({"trial_id": spec.trial_id, "status": st, "final_val_loss": v,
                             "final_val_accuracy": 1 - v})
    return pd.DataFrame(rows)


def test_the_pick_is_the_best_mean_and_flags_the_grid_edge():
    suite = tuned()
    values = {("relu", 0.001): [0.9, 0.8], ("relu", 0.01): [0.3, 0.5], ("relu", 0.1): [0.5, 0.4],
              ("tanh", 0.001): [0.9, 0.9], ("tanh", 0.01): [0.6, 0.6], ("tanh", 0.1): [0.2, 0.1]}
    picks = {p.setting.context[0][1]: p for p in pick(suite, _frame(suite, values))}
    assert picks["relu"].values == {"train.lr": 0.01} and not picks["relu"].at_edge
    assert picks["tanh"].values == {"train.lr": 0.1} and picks["tanh"].at_edge == ["train.lr"]
    relu = {c.values["train.lr"]: c.estimate.mean for c in picks["relu"].candidates}
    assert relu == pytest.approx({0.001: 0.85, 0.01: 0.4, 0.1: 0.45})
    evaluation = second_stage(suite, list(picks.values()))
    assert {(s.model.activation, s.train.lr, s.seed, s.stage) for s in evaluation} == {
        ("relu", 0.01, 10, "eval"), ("relu", 0.01, 11, "eval"),
        ("tanh", 0.1, 10, "eval"), ("tanh", 0.1, 11, "eval")}


def test_a_value_with_a_diverged_seed_is_not_picked_while_another_is_clean():
    suite = tuned()
    values = {(a, lr): [0.5, 0.5] for a in ("relu", "tanh") for lr in (0.001, 0.01, 0.1)}
    values[("relu", 0.1)] = [0.01, math.nan]  # the best mean of its finite seeds, but diverged
    values[("relu", 0.01)] = [0.2, 0.2]
    frame = _frame(suite, values, {("relu", 0.1, 1): "diverged"})
    relu = next(p for p in pick(suite, frame) if p.setting.context[0][1] == "relu")
    assert relu.values == {"train.lr": 0.01}


def test_a_tie_goes_to_the_lower_validation_loss_then_to_the_first_value():
    suite = tuned(body=TUNED.replace('metric = "final_val_loss"', 'metric = "final_val_accuracy"'))
    rows = []
    for setting in settings(suite):
        for specs in tuning_specs(suite, setting).values():
            for spec in specs:
                loss = {0.001: 0.3, 0.01: 0.2, 0.1: 0.25}[spec.train.lr]
                rows.append({"trial_id": spec.trial_id, "status": "ok", "final_val_accuracy": 1.0,
                             "final_val_loss": loss if spec.model.activation == "relu" else 0.5})
    picks = {p.setting.context[0][1]: p for p in pick(suite, pd.DataFrame(rows))}
    assert picks["relu"].values == {"train.lr": 0.01} and picks["relu"].tie
    assert picks["tanh"].values == {"train.lr": 0.001}  # a full tie: the sweep's first value


# -- both stages, end to end ------------------------------------------------------------------

def test_a_tuned_run_evaluates_each_pick_on_fresh_seeds_and_reports_the_ranking(tmp_path):
    suite = tuned('\n[[expect]]\nwhere = { "model.activation" = "relu" }\n'
                  'metric = "final_test_accuracy"\nmin = 0.0\n')
    store = run_suite(suite, RunOptions(out=tmp_path, workers=1))
    run = RunData.open(store.dir)
    trials = run.trials
    assert sorted(trials["stage"].value_counts().items()) == [("eval", 4), ("tune", 12)]
    manifest = json.loads((store.dir / "manifest.json").read_text())
    tune = trials[trials.stage == "tune"]
    for p in manifest["tuning"]["picks"]:
        act = p["context"]["model.activation"]
        means = tune[tune["model.activation"] == act].groupby("train.lr")["final_val_loss"].mean()
        assert p["values"]["train.lr"] == means.idxmin()
        ev = trials[(trials.stage == "eval") & (trials["model.activation"] == act)]
        assert set(ev["train.lr"]) == {means.idxmin()} and set(ev["seed"]) == {10, 11}
        assert ev["final_test_loss"].notna().all() and ev["final_val_loss"].notna().all()
    # the claims speak of the evaluation stage: its relu point, two seeds
    (result,) = check(run)
    assert [p.n for p in result.points] == [2]
    # a resume finds both stages stored and trains nothing
    again = run_suite(suite, RunOptions(out=tmp_path, workers=1, resume=store.dir))
    assert json.loads((again.dir / "manifest.json").read_text())["sessions"][-1][
        "trials_planned"] == 0
    from bench.reporting.report import render
    (md,) = render(store.dir, tmp_path / "report", ("md",))
    text = md.read_text()
    first_table = text.split("\n| ", 1)[1]
    assert first_table.startswith("rank | activation | lr (tuned) | test loss")
    assert "## Tuning: the picks" in text and "fig0_lr_sensitivity" in text


# -- claims checked when the suite loads -----------------------------------------------------

@pytest.mark.parametrize("claim, message", [
    ('metric = "final_acc"\nmin = 0.5', "metric 'final_acc' is not a column this run will have"),
    ('where = { "model.activation" = "gelu" }\nmetric = "final_loss"\nmax = 1.0',
     "model.activation = gelu is not in the grid"),
    ('where = { "model.activation" = "relu" }\nvs = { "train.lr" = 0.5 }\n'
     'metric = "final_loss"\nby_at_least = 0.1', "vs train.lr = 0.5 is not in the grid"),
    ('metric = "final_test_accuracy"\nmin = 0.5', "final_test_accuracy"),
])
def test_a_claim_the_grid_cannot_answer_is_refused_before_anything_trains(claim, message):
    body = ('[task]\nkind = "spiral"\npoints_per_class = 20\n[model]\nhidden = [4]\n'
            'activation = "relu"\n[train]\noptimizer = "sgd"\nlr = 0.1\nepochs = 2\n'
            '[sweep]\n"model.activation" = ["relu", "tanh"]\n[[expect]]\n' + claim + "\n")
    with pytest.raises(UserError) as err:
        make_suite(body)
    assert message in str(err.value)
    if "valid choices" in str(err.value):
        assert "final_loss" in str(err.value)


def test_full_batch_accumulation_with_lr_scaling_warns_when_it_loads():
    suite = make_suite('[task]\nkind = "spiral"\npoints_per_class = 20\n[model]\nhidden = [4]\n'
                       'activation = "relu"\n[train]\noptimizer = "sgd"\nlr = 0.1\nepochs = 2\n'
                       'lr_scaling = "linear"\n[sweep]\n"train.accumulation_steps" = [1, 4]\n')
    (warning,) = suite.warnings
    assert "batch_size = \"full\"" in warning and "lr_scaling = 'linear'" in warning
    assert "does not grow" in warning
    plain = make_suite('[task]\nkind = "spiral"\npoints_per_class = 20\n[model]\nhidden = [4]\n'
                       'activation = "relu"\n[train]\noptimizer = "sgd"\nlr = 0.1\nepochs = 2\n'
                       '[sweep]\n"train.accumulation_steps" = [1, 4]\n')
    assert plain.warnings == ()


def test_run_seeds_replace_the_suites_seeds(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\nseeds = [0]\n[task]\nkind = "spiral"\npoints_per_class = 20\n'
                    '[model]\nhidden = [4]\nactivation = "relu"\n[train]\noptimizer = "sgd"\n'
                    'lr = 0.1\nepochs = 2\n')
    assert main(["run", str(path), "--seeds", "7,8", "--out", str(tmp_path / "r"),
                 "--no-report", "--workers", "1"]) == 0
    (run_dir,) = (tmp_path / "r" / "s").iterdir()
    assert sorted(pd.read_parquet(run_dir / "trials.parquet")["seed"]) == [7, 8]
    assert main(["run", str(path), "--tune-seeds", "1", "--dry-run"]) == 2
    assert "no [tune] table" in capsys.readouterr().err


# -- splits and the shared data draw --------------------------------------------------------

def test_validation_split_is_disjoint_and_leaves_the_test_split_as_it_was():
    base = 'kind = "spiral"\npoints_per_class = 50\ntest_fraction = 0.2'
    plain = draw_task(one_spec(task=base).task, 3)
    split = draw_task(one_spec(task=base + "\nval_fraction = 0.3").task, 3)
    assert len(split.x_test) == 30 and len(split.x_val) == 45 and len(split.x_train) == 75
    assert plain.x_val is None and bool((plain.x_test == split.x_test).all())
    rows = {tuple(r) for r in split.x_train.tolist()}
    assert not rows & {tuple(r) for r in split.x_val.tolist()}
    assert not rows & {tuple(r) for r in split.x_test.tolist()}


def test_a_task_seed_gives_every_trial_seed_the_same_data():
    task = one_spec(task='kind = "cubic"\nseed = 1').task
    a, b = draw_task(task, 0), draw_task(task, 5)
    assert bool((a.y_train == b.y_train).all())
    free = one_spec(task='kind = "cubic"').task
    assert not bool((draw_task(free, 0).y_train == draw_task(free, 5).y_train).all())


# -- the smallest detectable difference -----------------------------------------------------

def test_the_detectable_difference_is_found_four_times_in_five():
    rng = np.random.default_rng(0)
    n, sigma = 8, 1.0
    # the detectable difference from a large sample's spread, then the test's power at it
    d = welch(rng.normal(0, sigma, 4000), rng.normal(0, sigma, 4000))
    per_group = d.se * math.sqrt(4000 / n)  # the same spread with n seeds a side
    from scipy import stats
    df = 2 * n - 2
    mdd = (stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * per_group
    hits = sum(welch(rng.normal(mdd, sigma, n), rng.normal(0, sigma, n)).p < 0.05
               for _ in range(2000))
    assert 0.74 < hits / 2000 < 0.86
    sample = welch(rng.normal(mdd, sigma, n), rng.normal(0, sigma, n))
    assert sample.detectable() == pytest.approx(
        (stats.t.ppf(0.975, sample.df) + stats.t.ppf(0.8, sample.df)) * sample.se)
