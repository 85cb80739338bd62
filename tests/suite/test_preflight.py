"""The preflight: well-formed values that cannot train are caught when the suite loads, exit 2
with their key, before anything is drawn, built or written; --dry-run says how much work a
suite is and, once a run of it has timings, how long it will take."""

import math
import textwrap

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.suite import parse_suite
from bench.suite.preflight import estimate, human, nonfinite
from bench.training.config import ModelConfig, TrainConfig
from bench.training.tasks import Mnist1dConfig, SpiralConfig

BASE = {"task": 'kind = "spiral"', "model": 'hidden = [8]\nactivation = "relu"',
        "train": 'optimizer = "adam"\nlr = 0.01\nepochs = 3', "rest": ""}


def suite_text(**parts) -> str:
    p = {**BASE, **parts}
    return textwrap.dedent(f"""\
        name = "pre"
        seeds = [0, 1]
        [task]
        {p['task']}
        [model]
        {p['model']}
        [train]
        {p['train']}
        {p['rest']}
        """).replace("\n        ", "\n")


BAD = {  # the issue's bad values: each must name its key
    "lr = inf": ({"train": 'optimizer = "adam"\nlr = inf\nepochs = 3'}, "train.lr"),
    "weight_decay = inf": ({"train": 'optimizer = "adam"\nlr = 0.01\nepochs = 3\n'
                                     'weight_decay = inf'}, "train.weight_decay"),
    "target nan": ({"train": 'optimizer = "adam"\nlr = 0.01\nepochs = 3\n'
                             'target = { metric = "accuracy", value = nan }'},
                   "train.target.value"),
    "a swept -inf": ({"rest": '[sweep]\n"train.lr" = [0.01, -inf]'}, 'sweep.train.lr[1]'),
    "a claim's nan bound": ({"rest": '[[expect]]\nmetric = "final_loss"\nmax = nan'},
                            "expect[0].max"),
    "hidden = [1e9]": ({"model": 'hidden = [1000000000]\nactivation = "relu"'}, "model.hidden"),
    "points_per_class = 1e18": ({"task": 'kind = "spiral"\npoints_per_class = 1000000000000000000'},
                                "task.points_per_class"),
    "classes = 1e9": ({"task": 'kind = "spiral"\nclasses = 1000000000'}, "task.classes"),
    "epochs = 1e9": ({"train": 'optimizer = "adam"\nlr = 0.01\nepochs = 1000000000'}, "epochs"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_each_bad_value_exits_2_naming_its_key_and_writes_nothing(case, tmp_path, capsys):
    parts, key = BAD[case]
    path = tmp_path / "pre.toml"
    path.write_text(suite_text(**parts))
    for argv in (["run", str(path), "--out", str(tmp_path / "out"), "--workers", "1"],
                 ["run", str(path), "--dry-run", "--out", str(tmp_path / "out")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert key in err and "Traceback" not in err, err
        assert err.count("\n") <= 3, err  # one message, not a wall
    assert not (tmp_path / "out").exists()  # nothing written


def test_nonfinite_finds_every_inf_and_nan_with_its_path():
    data = {"a": 1.0, "b": {"c": [0.0, math.inf, {"d": math.nan}]}, "e": -math.inf, "f": "inf"}
    assert [p.key for p in nonfinite(data)] == ["b.c[1]", "b.c[2].d", "e"]


def test_the_estimate_counts_parameters_as_pytorch_does_and_the_data_as_drawn():
    import torch

    from bench.training.model import build_model

    for model in (ModelConfig(hidden=(100, 100), activation="relu"),
                  ModelConfig(kind="cnn1d", channels=(25, 25, 25), kernel=(5, 3, 3), stride=2,
                              padding=1, activation="relu")):
        train = TrainConfig(optimizer="adam", lr=0.01, epochs=1, batch_size=100)
        est = estimate(Mnist1dConfig(), model, train)
        net = build_model(model, 40, 10)
        assert est.parameters == sum(p.numel() for p in net.parameters())
        assert est.state == est.parameters * 4 * 4  # weights, grads and Adam's two moments
        x = torch.randn(100, 40)
        outputs = []
        hooks = [m.register_forward_hook(lambda m, i, o, outputs=outputs: outputs.append(o.numel()))
                 for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))]
        net(x)
        for h in hooks:
            h.remove()
        assert est.activations == 2 * sum(outputs) * 4  # every layer's output and its gradient
    spiral = SpiralConfig(points_per_class=500, classes=4)
    est = estimate(spiral, ModelConfig(hidden=(8,), activation="relu"),
                   TrainConfig(optimizer="sgd", lr=0.1, epochs=1))
    assert est.samples == 2000 and est.data == 2000 * (2 * 4 + 8)
    assert est.state == (2 * 8 + 8 + 8 * 4 + 4) * 4 * 2  # plain SGD keeps no moments


def test_every_shipped_suite_passes_the_preflight():
    from bench.suite import load_suite
    from bench.suite.locate import shipped_paths

    paths = shipped_paths()
    assert len(paths) >= 10
    for name, path in paths.items():
        assert load_suite(path, user_code=False).points, name
    assert human(816) == "816 B" and human(24.1e12) == "24.1 TB"


def test_dry_run_says_the_work_and_estimates_the_wall_time_from_a_past_run(tmp_path, capsys):
    path = tmp_path / "pre.toml"
    path.write_text(suite_text(task='kind = "spiral"\npoints_per_class = 50'))
    out = tmp_path / "out"
    assert main(["run", str(path), "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out.replace("\n", " ")
    assert "work: 2 trials to train, 900 sample-passes" in text  # 2 x 3 epochs x 150 samples
    assert "no timing known yet" in text
    assert main(["run", str(path), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--dry-run", "--out", str(out), "--workers", "1"]) == 0
    text = capsys.readouterr().out.replace("\n", " ")
    assert "estimated wall time" in text and "on 1 worker(s), from 2 trials of" in text


def test_a_too_large_point_is_a_user_error_with_the_estimate():
    with pytest.raises(UserError) as info:
        parse_suite(suite_text(model='hidden = [1000000000]\nactivation = "relu"'))
    assert info.value.key == "model.hidden" and info.value.value > 10**12
    assert "more than this machine's memory" in str(info.value)


@pytest.mark.slow
def test_perf_orchestration_times_actbench_against_a_plain_loop_as_whole_processes():
    from bench.orchestration import orchestration

    rows = orchestration(sizes=(2, 6), workers=(1,), repeats=1)
    assert [r["how"] for r in rows] == ["plain loop", "actbench, 1 worker(s)"]
    plain, harness = rows
    for row in rows:
        assert 0 < row["2 trials s"] and 0 < row["6 trials s"]
        assert math.isfinite(row["ms per trial"])
    # No timing comparison here (a shared machine's noise decides it at 2 trials): the ratios
    # are what the command reports, and they must be the ratios of its own times.
    assert harness["vs plain"]["2 trials s"] == pytest.approx(
        harness["2 trials s"] / plain["2 trials s"])
    # the start-up past the imports: less than the whole run, which includes them
    assert harness["past imports s"] < harness["2 trials s"]
    assert math.isnan(plain["past imports s"])
