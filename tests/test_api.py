"""The Python API (``import bench``): the CLI's suites, runs and numbers, from a notebook."""

import matplotlib.figure
import pandas as pd
import pytest

import bench
from bench import plots

SUITE = """
name = "api"
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
epochs = 15
log_every = 5
[sweep]
"model.activation" = ["relu", "tanh"]
[[expect]]
description = "relu learns something"
where = { "model.activation" = "relu" }
metric = "final_accuracy"
min = 0.3
[[expect]]
description = "a bound no run meets"
where = { "model.activation" = "tanh" }
metric = "final_accuracy"
min = 1.01
"""


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    return bench.run(bench.load_suite(SUITE), workers=1, out=tmp_path_factory.mktemp("api"))


def test_run_returns_the_tables_the_cli_stores(api_run):
    assert isinstance(api_run, bench.Run)
    assert api_run.dir.parent.name == "api" and (api_run.dir / "trials.parquet").is_file()
    for name in ("trials", "curves", "layers"):
        table = getattr(api_run, name)
        assert isinstance(table, pd.DataFrame) and len(table)
        pd.testing.assert_frame_equal(table, pd.read_parquet(api_run.dir / f"{name}.parquet"))
    assert len(api_run.trials) == 4


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    from bench.cli import main

    tmp = tmp_path_factory.mktemp("cli")
    path = tmp / "api.toml"
    path.write_text(SUITE)
    assert main(["run", str(path), "--out", str(tmp / "cli"), "--workers", "1",
                 "--no-report"]) == 0
    (cli_dir,) = (tmp / "cli" / "api").iterdir()
    return bench.open_run(cli_dir)


def test_the_same_numbers_as_the_cli(api_run, cli_run):
    cli = cli_run
    mine = api_run.trials.set_index("trial_id").sort_index()
    theirs = cli.trials.set_index("trial_id").sort_index()
    assert list(mine.index) == list(theirs.index)
    pd.testing.assert_series_equal(mine["final_loss"], theirs["final_loss"])


def test_check_returns_each_claim_with_its_verdict(api_run):
    claims = api_run.check()
    assert [c.verdict for c in claims] == ["pass", "fail"] and not claims.passed
    frame = claims.to_frame()
    assert list(frame["verdict"]) == ["pass", "fail"] and "<table" in claims._repr_html_()


def test_compare_and_report(api_run, cli_run, tmp_path):
    result = api_run.compare(cli_run.dir, fail_on=("final_loss:+1e-9",))
    assert {c.metric for c in result.changes} >= {"final_loss"}
    assert all(c.diff == 0 for c in result.changes if c.metric == "final_loss")
    assert not any(c.failed for c in result.changes)  # the API's run and the CLI's agree
    with pytest.raises(bench.UserError, match="expected METRIC"):
        api_run.compare(cli_run, fail_on=("final_loss",))
    written = api_run.report(format="md", out=tmp_path / "rep")
    assert [p.name for p in written] == ["report.md"]


def test_suites_from_text_path_and_python_are_the_same(tmp_path):
    path = tmp_path / "lr=0.02" / "api.toml"  # an '=' in a path is still a path
    path.parent.mkdir()
    path.write_text(SUITE)
    from_text, from_path = bench.load_suite(SUITE), bench.load_suite(str(path))
    built = bench.make_suite(
        "api", seeds=[0, 1], task={"kind": "spiral", "points_per_class": 30},
        model={"hidden": [8], "activation": "relu"},
        train={"optimizer": "adam", "lr": 0.02, "epochs": 15, "log_every": 5},
        sweep={"model.activation": ["relu", "tanh"]},
        expect=[{"where": {"model.activation": "relu"}, "metric": "final_accuracy", "min": 0.3}])
    ids = [[s.trial_id for s in bench.expand(x)] for x in (from_text, from_path, built)]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 4
    assert len(built.expect) == 1 and "points_per_class = 30" in built.text


@pytest.mark.parametrize("change, key, choice", [
    ({"model": {"hidden": [8], "activation": "rleu"}}, "model.activation", "relu"),
    ({"train": {"optimizer": "adamm", "lr": 0.1, "epochs": 1}}, "train.optimizer", "adam"),
    ({"train": {"optimizer": "sgd", "lr": 0.1, "epochs": 1, "lr_scaling": "cubic"}},
     "train.lr_scaling", "sqrt"),
    ({"model": {"hidden": [8], "activation": "relu", "depth": 3}}, "model.depth", "hidden"),
])
def test_python_suites_raise_one_error_type_with_key_and_choices(change, key, choice):
    tables = {"task": {"kind": "spiral"}, "model": {"hidden": [8], "activation": "relu"},
              "train": {"optimizer": "sgd", "lr": 0.1, "epochs": 1}, **change}
    with pytest.raises(bench.UserError) as info:
        bench.make_suite("bad", **tables)
    assert info.value.key == key and choice in info.value.choices
    assert key.split(".")[-1] in str(info.value)


def test_open_run_of_a_wrong_folder_is_a_user_error(tmp_path):
    with pytest.raises(bench.UserError, match="not a run folder"):
        bench.open_run(tmp_path)


def test_plots_return_figures_with_the_reports_data(api_run):
    fig = plots.curves(api_run)
    assert isinstance(fig, matplotlib.figure.Figure)
    # the relu line is the mean over seeds of the curves table
    curves = api_run.curves.merge(api_run.trials[["trial_id", "model.activation"]])
    expected = curves[curves["model.activation"] == "relu"].groupby("epoch")["loss"].mean()
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "relu"]
    assert list(line.get_ydata()) == pytest.approx(list(expected))
    assert isinstance(plots.decision_boundaries(api_run), matplotlib.figure.Figure)
    assert plots.cubic_fits(api_run) is None  # a spiral run has no cubic fits
    assert set(plots.all_figures(api_run)) >= {"fig1_loss", "fig7_decision_boundaries"}
    with pytest.raises(bench.UserError, match="valid choices: spiral"):
        plots.curves(api_run, task="cubic")


@pytest.mark.parametrize("widgets", [True, False])
def test_in_a_notebook_the_bar_renders_there_or_falls_back_to_lines(monkeypatch, widgets):
    from rich.console import Console

    from bench.execution import reporter as runner

    monkeypatch.setattr(runner, "_has_ipywidgets", lambda: widgets)
    notebook = Console(force_jupyter=True)
    assert notebook.is_jupyter and not notebook.is_terminal
    assert runner.progress_bar(notebook).disable is (not widgets)
    assert runner.progress_bar(Console(force_terminal=True)).disable is False
    assert runner.progress_bar(Console(file=open("/dev/null", "w"))).disable is True
