"""``bench check``: [[expect]] claims evaluated on a stored run, with exit statuses 0, 1 and 2."""

import pandas as pd
import pytest

from bench.analysis.check import check, lower_is_better
from bench.cli import main
from bench.errors import UserError
from bench.execution.run import RunOptions, run_suite
from bench.results.reader import RunData
from bench.suite import parse_claims, parse_suite
from tests.helpers import make_suite

BODY = """
seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 40
[model]
hidden = [16]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.02
epochs = 60
log_every = 20
[sweep]
"model.activation" = ["relu", "sigmoid"]
"train.lr" = [0.02, 0.002]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("check")
    return run_suite(make_suite(BODY, name="claims"), RunOptions(out=tmp, workers=1)).dir


def _claims(text):
    """The claims as a stored run's check reads them (parse_claims: not checked against a
    grid, so that check's own errors for claims a run cannot answer are what is tested)."""
    return parse_claims('name = "c"\n' + BODY + text, source="c.toml")


def _means(run_dir):
    trials = pd.read_parquet(run_dir / "trials.parquet")
    return trials.groupby(["model.activation", "train.lr"])["final_accuracy"].mean()


def test_bounds_hold_at_every_matched_grid_point(run_dir):
    means = _means(run_dir)
    relu = means.loc["relu"]
    run = RunData.open(run_dir)
    lo = float(relu.min())
    (ok,) = check(run, _claims(f"""
[[expect]]
where = {{ "model.activation" = "relu" }}
metric = "final_accuracy"
min = {lo - 1e-9}
"""))
    assert ok.verdict == "pass" and len(ok.points) == 2  # both learning rates
    (bad,) = check(run, _claims(f"""
[[expect]]
where = {{ "model.activation" = "relu" }}
metric = "final_accuracy"
min = {lo + 1e-9}
"""))
    assert bad.verdict == "fail"  # the worse learning rate breaks it, whatever the mean of both
    assert bad.worst.value == pytest.approx(lo)
    assert bad.worst.point == {"train.lr": float(relu.idxmin())}


def test_vs_compares_matched_points_by_the_improvement(run_dir):
    means = _means(run_dir)
    gain = min(means.loc["relu", lr] - means.loc["sigmoid", lr] for lr in (0.02, 0.002))
    run = RunData.open(run_dir)
    template = """
[[expect]]
where = {{ "model.activation" = "relu" }}
vs = {{ "model.activation" = "sigmoid" }}
metric = "{metric}"
by_at_least = {bound}
"""
    (ok,) = check(run, _claims(template.format(metric="final_accuracy", bound=gain - 1e-9)))
    (bad,) = check(run, _claims(template.format(metric="final_accuracy", bound=gain + 1e-9)))
    assert ok.verdict == "pass" and bad.verdict == "fail"
    assert {p.point["train.lr"] for p in ok.points} == {0.02, 0.002}
    # for a loss the improvement is vs − where: relu's lower loss is a positive gain
    loss = pd.read_parquet(run_dir / "trials.parquet").groupby(
        ["model.activation", "train.lr"])["final_loss"].mean()
    loss_gain = min(loss.loc["sigmoid", lr] - loss.loc["relu", lr] for lr in (0.02, 0.002))
    (l_ok,) = check(run, _claims(template.format(metric="final_loss", bound=loss_gain - 1e-9)))
    (l_bad,) = check(run, _claims(template.format(metric="final_loss", bound=loss_gain + 1e-9)))
    assert l_ok.verdict == "pass" and l_bad.verdict == "fail"
    assert lower_is_better("final_loss") and not lower_is_better("final_accuracy")
    assert lower_is_better("grad_equivalence_error") and lower_is_better("all_dead_layer")
    assert not lower_is_better("extrapolation_slope_ratio")


@pytest.mark.parametrize("claim,expected", [
    ('where = { "model.activation" = "relu" }\nmetric = "final_acc"\nmin = 0.5',
     ["metric 'final_acc' is not a trials column", "did you mean 'final_accuracy'"]),
    ('where = { "model.activation" = "rleu" }\nmetric = "final_accuracy"\nmin = 0.5',
     ["model.activation = rleu matches no trial", "did you mean 'relu'", "relu, sigmoid"]),
    ('where = { "model.actvation" = "relu" }\nmetric = "final_accuracy"\nmin = 0.5',
     ["'model.actvation' is not a trials column", "did you mean 'model.activation'"]),
])
def test_a_claim_the_run_cannot_answer_is_a_user_error(run_dir, claim, expected):
    with pytest.raises(UserError) as err:
        check(RunData.open(run_dir), _claims("[[expect]]\n" + claim + "\n"))
    for part in expected:
        assert part in str(err.value)


def test_claims_without_a_bound_are_rejected_when_the_suite_loads():
    with pytest.raises(UserError, match="a claim needs a bound"):
        _claims('[[expect]]\nmetric = "final_accuracy"\n')
    with pytest.raises(UserError, match="by_at_least compares with another setting"):
        _claims('[[expect]]\nmetric = "final_accuracy"\nby_at_least = 0.1\n')


def test_cli_exit_statuses(run_dir, tmp_path, capsys):
    """0 when every claim holds, 1 when one fails, 2 when one names what the run lacks."""
    import json

    manifest_path = run_dir / "manifest.json"
    original = manifest_path.read_text()
    relu_min = float(_means(run_dir).loc["relu"].min())
    try:
        for claims, status in (
                (f'[[expect]]\nwhere = {{ "model.activation" = "relu" }}\nmetric = "final_accuracy"\n'
                 f'min = {relu_min - 1e-9}\n', 0),
                (f'[[expect]]\nwhere = {{ "model.activation" = "relu" }}\nmetric = "final_accuracy"\n'
                 f'min = {relu_min + 1e-9}\n', 1),
                ('[[expect]]\nmetric = "nope"\nmin = 0\n', 2)):
            manifest = json.loads(original)
            manifest["suite"]["text"] = 'name = "claims"\n' + BODY + claims
            manifest_path.write_text(json.dumps(manifest))
            assert main(["check", str(run_dir)]) == status
            out = capsys.readouterr()
            if status < 2:
                assert ("pass" if status == 0 else "fail") in out.out
            else:
                assert "metric 'nope' is not a trials column" in out.err
    finally:
        manifest_path.write_text(original)


VARIANTS = """
seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 30
[model]
hidden = [8]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.02
epochs = 30
log_every = 10
[[variant]]
name = "linear"
"model.hidden" = []
"model.activation" = "identity"
"train.optimizer" = "sgd"
[[variant]]
name = "relu"
"""


def test_vs_across_variants_that_pin_the_key(tmp_path):
    """relu vs identity where each variant pins its activation (and optimizer): the compared
    trials are the other variant's, not 'relu's variant with identity', which does not exist."""
    run_dir = run_suite(make_suite(VARIANTS, name="v"), RunOptions(out=tmp_path, workers=1)).dir
    run = RunData.open(run_dir)
    trials = run.trials.groupby("variant")["final_accuracy"].mean()
    claims = parse_suite('name = "v"\n' + VARIANTS + """
[[expect]]
where = { "model.activation" = "relu" }
vs = { "model.activation" = "identity" }
metric = "final_accuracy"
by_at_least = 0
""", source="v.toml").expect
    (result,) = check(run, claims)
    assert result.verdict == ("pass" if trials["relu"] >= trials["linear"] else "fail")
    assert result.worst.value == pytest.approx(trials["relu"] - trials["linear"])


def test_where_combination_and_empty_vs_are_user_errors(run_dir, tmp_path):
    run = RunData.open(run_dir)
    with pytest.raises(UserError, match="vs changes nothing"):
        check(run, _claims('[[expect]]\nwhere = { "model.activation" = "relu" }\n'
                           'vs = { "train.optimizer" = "adam" }\nmetric = "final_accuracy"\n'
                           'by_at_least = 0\n'))
    variants = RunData.open(run_suite(make_suite(VARIANTS, name="v"),
                                      RunOptions(out=tmp_path, workers=1)).dir)
    text = 'name = "v"\n' + VARIANTS + """
[[expect]]
where = { variant = "linear", "model.activation" = "relu" }
metric = "final_accuracy"
min = 0
"""
    with pytest.raises(UserError, match="the combination does not"):  # when the suite loads
        parse_suite(text, source="v.toml")
    with pytest.raises(UserError, match="the combination does not"):  # and on a stored run
        check(variants, parse_claims(text, source="v.toml"))


def test_a_diverged_seed_fails_a_bound_and_a_metric_without_values_is_not_checked(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    trials = pd.read_parquet(copy / "trials.parquet")
    first = trials.index[(trials["model.activation"] == "relu") & (trials["train.lr"] == 0.02)][0]
    trials.loc[first, ["status", "final_loss"]] = ["diverged", float("inf")]
    trials.to_parquet(copy / "trials.parquet")
    run = RunData.open(copy)
    (loss,) = check(run, _claims('[[expect]]\nwhere = { "model.activation" = "relu" }\n'
                                 'metric = "final_loss"\nmax = 100\n'))
    assert loss.verdict == "fail" and loss.worst.diverged == 1  # the other seed's mean passes
    (dead,) = check(run, _claims('[[expect]]\nwhere = { "model.activation" = "sigmoid" }\n'
                                 'metric = "dead_fraction"\nmax = 0.5\n'))
    assert dead.verdict == "not checked" and "no value" in dead.note


def test_min_above_max_is_rejected():
    with pytest.raises(UserError, match="is above max"):
        _claims('[[expect]]\nmetric = "final_accuracy"\nmin = 0.9\nmax = 0.1\n')
