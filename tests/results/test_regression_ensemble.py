"""The course's regression as the course runs it: one data draw shared by the ensemble
(``[task] seed``), the fit recorded at fixed probe points (``fit_probe_inside`` /
``fit_probe_outside``), and the ensemble's spread over seeds derived per grid point when a run
are stored (``ensemble_spread_*``), recomputed here with numpy from the stored predictions."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from bench.analysis.check import check
from bench.execution.run import RunOptions, run_suite
from bench.results.ensemble import COLUMNS as ENSEMBLE_COLUMNS
from bench.results.ensemble import grid_points, spread, with_spread
from bench.results.reader import RunData
from bench.results.writer import RunStore
from bench.suite import expand, load_suite
from bench.suite.claims import RESULT_METRICS
from bench.training.loop import run_pack, run_trial
from bench.training.model import MLP
from bench.training.tasks import draw_task
from tests.helpers import make_suite, one_spec

REGRESSION = Path(__file__).resolve().parents[2] / "suites" / "regression.toml"

SMALL = """
seeds = [0, 1, 2]
[task]
kind = "cubic"
points = 30
seed = 1
[model]
hidden = [16]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.01
epochs = 40
log_every = 20
[sweep]
"model.activation" = ["relu", "tanh"]

[[expect]]
where = { "model.activation" = "relu" }
metric = "ensemble_spread_ratio"
min = 1
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble")
    return RunData.open(run_suite(make_suite(SMALL, name="ens"), RunOptions(out=out, workers=1)).dir)


def _initial_weights(spec) -> torch.Tensor:
    """The trial's data, then its model at init, built in the trainer's order."""
    data = draw_task(spec.task, spec.seed)
    model = MLP(spec.model, data.x_train.shape[1], data.out_features)
    return data, torch.cat([p.detach().flatten() for p in model.parameters()])


# -- one data draw for the ensemble -----------------------------------------------------------

def test_the_shipped_regression_shares_one_data_draw_and_varies_the_init():
    suite = load_suite(REGRESSION)
    specs = [s for s in expand(suite) if s.model.activation == "relu"]
    assert all(s.task.seed == 1 for s in specs) and len({s.seed for s in specs}) == len(specs) > 1
    (d0, w0), (d1, w1) = _initial_weights(specs[0]), _initial_weights(specs[1])
    assert torch.equal(d0.x_train, d1.x_train) and torch.equal(d0.y_train, d1.y_train)
    assert not torch.equal(w0, w1)  # the trial seed still draws the init
    # The data is the draw of seed 1, whatever the trial's seed.
    torch.manual_seed(1)
    noise = torch.rand(100)
    assert torch.equal(d0.y_train[:, 0], torch.linspace(-1, 1, 100).pow(3) + 0.3 * noise)


def test_without_a_task_seed_each_trial_draws_its_own_data():
    a = one_spec(task='kind = "cubic"', seed=0)
    b = one_spec(task='kind = "cubic"', seed=1)
    assert not torch.equal(draw_task(a.task, a.seed).y_train, draw_task(b.task, b.seed).y_train)


def test_the_init_under_a_task_seed_is_the_trial_seeds_own():
    """[task] seed draws the data in a fork of the RNG, so the init that follows it is what it
    would be if the trial had drawn nothing else."""
    spec = one_spec(task='kind = "cubic"\nseed = 1', model='hidden = [8]\nactivation = "relu"',
                    seed=5)
    _, weights = _initial_weights(spec)
    torch.manual_seed(5)
    alone = MLP(spec.model, 1, 1)
    assert torch.equal(weights, torch.cat([p.detach().flatten() for p in alone.parameters()]))


# -- the fit at the probe points ---------------------------------------------------------------

def test_the_probes_are_the_final_fit_at_fixed_points():
    spec = one_spec(task='kind = "cubic"\npoints = 30', model='hidden = [16]\nactivation = "tanh"',
                    train='optimizer = "adam"\nlr = 0.01\nepochs = 30')
    result = run_trial(spec)
    data = draw_task(spec.task, spec.seed)
    model = MLP(spec.model, 1, 1)
    model.load_state_dict(result.state_dict)
    inside = torch.linspace(-1, 1, 21)
    outside = torch.cat([torch.linspace(-4, -3, 11), torch.linspace(3, 4, 11)])
    assert float(data.x_train.min()) == -1 and float(data.x_train.max()) == 1
    with torch.no_grad():
        for column, x in (("fit_probe_inside", inside), ("fit_probe_outside", outside)):
            expected = model(x[:, None]).squeeze(1).double().tolist()
            assert result.trial[column] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_a_pack_records_each_members_own_probes():
    specs = [one_spec(task='kind = "cubic"\npoints = 30\nseed = 1',
                      model='hidden = [16]\nactivation = "relu"',
                      train='optimizer = "adam"\nlr = 0.01\nepochs = 20', seed=s) for s in (0, 1, 2)]
    alone = [run_trial(s).trial for s in specs]
    packed = [r.trial for r in run_pack(specs)]
    for a, p in zip(alone, packed):
        assert p["pack_size"] == 3
        for column in ("fit_probe_inside", "fit_probe_outside"):
            assert p[column] == pytest.approx(a[column], rel=1e-4, abs=1e-6)
    assert alone[0]["fit_probe_outside"] != pytest.approx(alone[1]["fit_probe_outside"])


def test_classification_records_no_probes():
    row = run_trial(one_spec()).trial
    assert row["fit_probe_inside"] is None and row["fit_probe_outside"] is None


# -- the ensemble columns of a stored run -----------------------------------------------------

def test_the_probes_are_stored_as_lists_of_doubles(run):
    schema = pq.read_schema(run.dir / "trials.parquet")
    for column in ("fit_probe_inside", "fit_probe_outside"):
        assert str(schema.field(column).type) == "list<element: double>"
    assert all(len(v) == 21 for v in run.trials["fit_probe_inside"])
    assert all(len(v) == 22 for v in run.trials["fit_probe_outside"])


def test_the_ensemble_columns_are_numpys_std_over_the_seeds(run):
    trials = run.trials
    assert len(trials) == 6
    for _activation, group in trials.groupby("model.activation"):
        inside = np.stack([np.asarray(v) for v in group["fit_probe_inside"]])   # seeds x x
        outside = np.stack([np.asarray(v) for v in group["fit_probe_outside"]])
        s_in = inside.std(axis=0, ddof=1).mean()
        s_out = outside.std(axis=0, ddof=1).mean()
        assert group["ensemble_spread_inside"].tolist() == pytest.approx([s_in] * 3, rel=1e-12)
        assert group["ensemble_spread_outside"].tolist() == pytest.approx([s_out] * 3, rel=1e-12)
        assert group["ensemble_spread_ratio"].tolist() == pytest.approx([s_out / s_in] * 3,
                                                                        rel=1e-12)
        assert s_in > 0 and s_out > s_in  # a real spread, larger away from the data
    relu = trials[trials["model.activation"] == "relu"]["ensemble_spread_ratio"].iloc[0]
    tanh = trials[trials["model.activation"] == "tanh"]["ensemble_spread_ratio"].iloc[0]
    assert relu != tanh  # one value per grid point, not one per run


def test_the_ensemble_columns_are_constant_within_a_point(run):
    points = grid_points(run.trials)
    assert points.nunique() == 2
    for column in ENSEMBLE_COLUMNS:
        per_point = run.trials.groupby(points)[column].nunique()
        assert (per_point == 1).all(), column


def test_a_claim_reads_the_ensemble_column_as_it_is(run):
    (result,) = check(run)
    (point,) = result.points
    expected = run.trials[run.trials["model.activation"] == "relu"]["ensemble_spread_ratio"]
    assert result.verdict == "pass" and point.n == 3
    assert point.value == pytest.approx(expected.iloc[0], rel=1e-12)
    assert "ensemble_spread_ratio" in RESULT_METRICS


def _frame(rows):
    base = {"suite": "s", "variant": "", "stage": "", "task.kind": "cubic",
            "model.activation": "relu", "model.hidden": [4], "train.lr": 0.1}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_only_the_seeds_that_recorded_a_fit_count_and_a_point_needs_two():
    rows = [{"trial_id": "a", "seed": 0, "status": "ok",
             "fit_probe_inside": [0.0, 1.0], "fit_probe_outside": [0.0, 4.0]},
            {"trial_id": "b", "seed": 1, "status": "ok",
             "fit_probe_inside": [1.0, 2.0], "fit_probe_outside": [2.0, 0.0]},
            {"trial_id": "c", "seed": 2, "status": "diverged",
             "fit_probe_inside": None, "fit_probe_outside": None},
            {"trial_id": "d", "seed": 3, "status": "skipped",
             "fit_probe_inside": None, "fit_probe_outside": None},
            # another point (another lr): one seed only, so no spread
            {"trial_id": "e", "seed": 0, "status": "ok", "train.lr": 0.2,
             "fit_probe_inside": [0.0, 1.0], "fit_probe_outside": [0.0, 4.0]}]
    frame = _frame(rows)
    out = pd.concat([frame, spread(frame)], axis=1).set_index("trial_id")
    s_in = np.std([[0, 1], [1, 2]], axis=0, ddof=1).mean()
    s_out = np.std([[0, 4], [2, 0]], axis=0, ddof=1).mean()
    for tid in "abc":  # the diverged seed carries its point's value; its own fit is not in it
        assert out.loc[tid, "ensemble_spread_inside"] == pytest.approx(s_in)
        assert out.loc[tid, "ensemble_spread_outside"] == pytest.approx(s_out)
        assert out.loc[tid, "ensemble_spread_ratio"] == pytest.approx(s_out / s_in)
    for tid in "de":
        assert all(math.isnan(out.loc[tid, c]) for c in ENSEMBLE_COLUMNS)


def test_a_table_without_probes_is_written_as_it_is():
    frame = _frame([{"trial_id": "a", "seed": 0, "status": "ok"},
                    {"trial_id": "b", "seed": 1, "status": "ok"}])
    assert spread(frame).isna().all().all()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert with_spread(table).equals(table)


def test_the_stored_table_carries_the_spread_and_is_what_a_run_reads(run):
    stored = pd.read_parquet(run.dir / "trials.parquet")
    pd.testing.assert_frame_equal(run.trials, stored)
    for column in ENSEMBLE_COLUMNS:
        assert str(pq.read_schema(run.dir / "trials.parquet").field(column).type) == "double"
        assert stored[column].notna().all()


def test_the_spread_is_recomputed_not_appended_twice(run):
    table = pq.read_table(run.dir / "trials.parquet")
    again = with_spread(table)
    assert again.column_names.count("ensemble_spread_ratio") == 1
    assert again.column("ensemble_spread_ratio").equals(table.column("ensemble_spread_ratio"))


def test_a_classification_run_stores_no_spread_columns(tmp_path):
    store = RunStore.create(tmp_path, "cls", {})
    for seed in (0, 1):
        store.add(run_trial(one_spec(seed=seed)))
    store.consolidate()
    columns = pq.read_schema(store.dir / "trials.parquet").names
    assert "fit_probe_inside" in columns and not set(ENSEMBLE_COLUMNS) & set(columns)
