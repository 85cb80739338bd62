"""Reports from small stored runs: both formats, every figure, and numbers checked at the source."""

import base64
import io
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import stats as st

from bench.analysis.sections import sections
from bench.execution.run import RunOptions, run_suite
from bench.reporting.report import render
from bench.results.reader import RunData
from tests.helpers import make_suite

SPIRAL = """
description = "report test: spiral"
seeds = [0, 1, 2]
[task]
kind = "spiral"
points_per_class = 40
[model]
hidden = [8]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.02
epochs = 30
log_every = 10
target = { metric = "accuracy", value = 0.5 }
[sweep]
"model.activation" = ["relu", "tanh"]
"model.init" = ["default", "xavier_uniform"]
"train.accumulation_steps" = [1, 2]
"train.device" = ["cpu", "cuda"]
"""

CUBIC = """
seeds = [0, 1, 2]
[task]
kind = "cubic"
points = 40
[model]
hidden = [16]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.02
epochs = 40
log_every = 10
[sweep]
"model.activation" = ["relu", "tanh"]
"""

# sgd at lr 1e4 on the cubic overflows within a few epochs: the report must list the diverged
# trials with their reason, and leave their non-finite losses out of the means
MIXED = """
seeds = [0, 1]
[task]
kind = "cubic"
[model]
hidden = [32]
activation = "relu"
[train]
optimizer = "sgd"
lr = 0.01
epochs = 50
log_every = 5
[sweep]
"train.lr" = [0.01, 1e4]
"""

# one hidden layer: the per-layer gradient figure (fig4) would be a single x position, so it is
# left out with a line saying so
SPIRAL_FIGURES = {"fig1_loss", "fig1_accuracy", "fig2_heatmap", "fig3_dead_saturated",
                  "fig5_timing", "fig6_accumulation", "fig7_decision_boundaries",
                  "fig11_accumulation_curves"}
CUBIC_FIGURES = {"fig1_loss", "fig3_dead_saturated", "fig5_timing", "fig8_cubic_fits"}
ONE_LAYER_LINE = "The per-layer figure of signal and gradients is left out: the nets have one hidden layer"


def _run(tmp, body, name):
    store = run_suite(make_suite(body, name=name), RunOptions(out=tmp / "results", workers=1))
    return store.dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return {name: _run(tmp, body, name) for name, body in
            (("spiral", SPIRAL), ("cubic", CUBIC), ("mixed", MIXED))}


@pytest.fixture(scope="module")
def reports(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    for name, run_dir in runs.items():
        render(run_dir, out / name)
    return out


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _check_image(image: Image.Image, what: str) -> None:
    assert image.width > 200 and image.height > 150, what
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 8, f"{what} is blank"


@pytest.mark.parametrize("name,expected", [("spiral", SPIRAL_FIGURES), ("cubic", CUBIC_FIGURES)])
def test_both_formats_hold_every_figure_the_data_supports(reports, name, expected):
    md = (reports / name / "report.md").read_text()
    links = re.findall(r"!\[[^\]]+\]\(figures/([\w-]+)\.png\)", md)
    assert set(links) == expected  # each figure once, and none the run has no data for
    assert len(links) == len(expected)
    for stem in links:
        path = reports / name / "figures" / f"{stem}.png"
        _check_image(_png(path.read_bytes()), stem)

    html = (reports / name / "report.html").read_text()
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == len(expected)
    for data in embedded:
        _check_image(_png(base64.b64decode(data)), "embedded figure")
    assert ONE_LAYER_LINE in md and ONE_LAYER_LINE in html
    # self-contained: nothing to fetch from anywhere
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script src" not in html and "<link rel=\"stylesheet\"" not in html


def test_markdown_tables_are_pipe_tables(reports):
    md = (reports / "spiral" / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| activation | init | k |"))
    lines = md.splitlines()
    i = lines.index(header)
    assert re.fullmatch(r"\|(:?-+:?\|)+", lines[i + 1])
    rows = [r for r in lines[i + 2:] if r.startswith("|")][:8]
    assert len(rows) == 8  # 2 activations x 2 inits x 2 k (the cuda points were skipped)
    assert all(r.count("|") == header.count("|") for r in rows)


def test_headline_estimates_are_t_intervals_over_seeds(runs):
    run = RunData.open(runs["spiral"])
    (section,) = sections(run)
    trials = pd.read_parquet(runs["spiral"] / "trials.parquet")
    ok = trials[trials.status == "ok"]
    keys = ["model.activation", "model.init", "train.accumulation_steps"]
    assert section.keys == keys
    assert len(section.rows) == len(ok.groupby(keys))
    for row in section.rows:
        mask = np.logical_and.reduce([ok[k] == v for k, v in row.point.items()])
        values = ok.loc[mask, "final_loss"].to_numpy()
        assert len(values) == 3
        low, high = st.t.interval(0.95, 2, loc=values.mean(), scale=st.sem(values))
        est = row.estimates["final_loss"]
        assert est.mean == pytest.approx(values.mean(), rel=1e-12)
        assert (est.low, est.high) == pytest.approx((low, high), rel=1e-9)


def test_comparisons_are_welch_tests_matched_on_the_other_keys(runs):
    run = RunData.open(runs["spiral"])
    (section,) = sections(run)
    ok = run.ran
    assert section.main.column == "final_accuracy"
    assert len(section.comparisons) == 4  # relu vs tanh at each (init, k)
    for c in section.comparisons:
        mask = np.logical_and.reduce([ok[k] == v for k, v in c.context.items()])
        a = ok.loc[mask & (ok["model.activation"] == c.a), "final_accuracy"]
        b = ok.loc[mask & (ok["model.activation"] == c.b), "final_accuracy"]
        assert c.diff.diff == pytest.approx(a.mean() - b.mean())
        if a.std() > 0 or b.std() > 0:
            assert c.diff.p == pytest.approx(st.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
        assert c.p_holm >= c.diff.p or math.isnan(c.diff.p)


def test_best_cell_is_marked_in_each_column(reports, runs):
    md = (reports / "spiral" / "report.md").read_text()
    run = RunData.open(runs["spiral"])
    (section,) = sections(run)
    means = [r.estimates["final_loss"].mean for r in section.rows]
    best = [i for i, m in enumerate(means) if m == min(means)]  # every row of a tie is marked
    table = [line for line in md.splitlines() if line.startswith("| relu |") or line.startswith("| tanh |")]
    loss_col = next(line for line in md.splitlines()
                    if line.startswith("| activation |")).split("|").index(" train loss ")
    bold = [i for i, line in enumerate(table[:8]) if line.split("|")[loss_col].strip().startswith("**")]
    assert bold == best


def test_stored_models_reproduce_the_recorded_metrics(runs):
    """Figures 7 and 8 draw the stored weights on data drawn again: both must be the trial's."""
    for name, metric in (("spiral", "final_accuracy"), ("cubic", "final_loss")):
        run = RunData.open(runs[name])
        for _, row in run.ran.iterrows():
            model, data = run.model(row), run.task_data(row)
            with torch.no_grad():
                out = model(data.x_train)
            if metric == "final_accuracy":
                value = (out.argmax(1) == data.y_train).float().mean().item()
                assert value == pytest.approx(row[metric], abs=1e-6)
            else:
                value = torch.nn.functional.mse_loss(out, data.y_train).item()
                assert value == pytest.approx(row[metric], rel=1e-4)


def test_header_lists_skipped_and_diverged_trials_with_reasons(reports):
    spiral = (reports / "spiral" / "report.md").read_text()
    assert "24 trials skipped (device = cuda)" in spiral or torch.cuda.is_available()
    mixed = (reports / "mixed" / "report.md").read_text()
    assert mixed.count("- diverged: lr = 10000, seed") == 2
    assert "non-finite loss" in mixed
    assert "| diverged | 2 |" in mixed
    assert "(2 diverged)" in mixed  # the headline row says how many of its seeds diverged


def test_findings_answer_the_questions(reports):
    md = (reports / "spiral" / "report.md").read_text()
    # the report opens with its answer: the findings come before any table
    assert md.index("## The answer") < md.index("### Headline table") < md.index("## The run")
    assert md.index("## The run") < md.index("## Provenance")
    glance = md.split("## The answer")[1].split("###")[0]
    for question in ("**Which activation is best.**", "**Fastest to the target.**",
                     "**Dead units.**", "**What the init changes.**",
                     "**What accumulation costs and saves.**"):
        assert question in glance
    assert "top group by train accuracy" in glance
    assert "fewest epochs to accuracy 0.5" in glance
    assert "init = xavier_uniform vs default, over 4 matched settings" in glance
    assert "k = 2 micro-batches of the full batch" in glance and "peak memory ×" in glance


def test_a_run_where_nothing_trained_still_reports(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the trial would run")
    body = MIXED.replace('[sweep]\n"train.lr" = [0.01, 1e4]', '[sweep]\n"train.device" = ["cuda"]')
    assert body != MIXED
    run_dir = _run(tmp_path, body, "nothing")
    html_path, md_path = render(run_dir, tmp_path / "report")
    assert "No trial trained" in md_path.read_text()
    assert "<img" not in html_path.read_text()
    assert not list((tmp_path / "report" / "figures").glob("*.png"))


def test_a_sweep_over_task_kinds_reports_each_task(tmp_path):
    """Task columns of one kind are empty (NaN) in the other's rows; configs rebuild anyway."""
    body = """
        seeds = [0, 1]
        [task]
        kind = "spiral"
        [model]
        hidden = [8]
        activation = "relu"
        [train]
        optimizer = "adam"
        lr = 0.02
        epochs = 10
        log_every = 5
        [sweep]
        "task.kind" = ["spiral", "cubic"]
        "model.activation" = ["relu", "tanh"]
    """
    run_dir = _run(tmp_path, body, "tasks")
    run = RunData.open(run_dir)
    assert [s.task for s in sections(run)] == ["spiral", "cubic"]
    assert [s.main.column for s in sections(run)] == ["final_accuracy", "final_loss"]
    _, md = render(run_dir, tmp_path / "report")
    names = set(re.findall(r"\(figures/([\w-]+)\.png\)", md.read_text()))
    assert {"spiral_fig7_decision_boundaries", "cubic_fig8_cubic_fits"} <= names
    assert not any(n.startswith("cubic_fig7") or n.startswith("spiral_fig8") for n in names)


def test_variants_that_fix_their_activation_are_the_grid_axis(tmp_path):
    body = """
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
        epochs = 10
        log_every = 5
        [[variant]]
        name = "linear"
        "model.hidden" = []
        "model.activation" = "identity"
        "train.optimizer" = "sgd"
        [[variant]]
        name = "relu"
    """
    run_dir = _run(tmp_path, body, "variants")
    run = RunData.open(run_dir)
    assert run.varied_keys == ["variant"]  # hidden, activation and optimizer follow the variant
    _, md = render(run_dir, tmp_path / "report")
    text = md.read_text()
    assert "| variant | seeds |" in text and "variant = relu vs linear" in text
    assert "fig1_loss.png" in text


def test_the_report_shows_the_suites_claims_and_their_verdicts(tmp_path):
    body = """
        seeds = [0, 1]
        [task]
        kind = "cubic"
        points = 30
        [model]
        hidden = [8]
        activation = "tanh"
        [train]
        optimizer = "adam"
        lr = 0.02
        epochs = 10
        log_every = 5
        [[expect]]
        description = "holds: a loss is never negative"
        metric = "final_loss"
        min = 0
        [[expect]]
        description = "fails: ten epochs do not fit a cubic to 1e-9"
        metric = "final_loss"
        max = 1e-9
    """
    run_dir = _run(tmp_path, body, "claimed")
    html, md = render(run_dir, tmp_path / "report")
    text = md.read_text()
    claims = text.split("## Claims (`bench check`)")[1].split("## The run")[0]
    assert "1 of 2 claims FAIL" in claims
    assert "| holds: a loss is never negative | final_loss |" in claims and "**pass**" in claims
    assert "| fails: ten epochs do not fit a cubic to 1e-9 |" in claims and "| fail |" in claims
    assert "claims FAIL" in html.read_text()


def test_the_same_run_draws_the_same_report(runs, reports, tmp_path):
    again = render(runs["spiral"], tmp_path / "again")
    assert again[0].read_bytes() == (reports / "spiral" / "report.html").read_bytes()
    for png in (reports / "spiral" / "figures").glob("*.png"):
        assert (tmp_path / "again" / "figures" / png.name).read_bytes() == png.read_bytes(), png.name


DEEP = """
seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 30
[model]
hidden = [8, 8, 8]
activation = "tanh"
[train]
optimizer = "sgd"
lr = 0.5
epochs = 20
log_every = 5
[sweep]
"model.activation" = ["sigmoid", "tanh"]
"model.init" = ["default", "xavier_uniform"]
"""


def test_deep_nets_get_per_init_layer_panels_and_layers_over_training(tmp_path):
    from bench.reporting.figures import fig_gradients, fig_layers_over_training

    run = RunData.open(_run(tmp_path, DEEP, "deep"))
    (section,) = sections(run)
    grads = fig_gradients(run, section)
    axes = np.array(grads.figure.axes).reshape(3, 2)  # output std, dL/dW, backprop std x init
    assert [ax.get_title() for ax in axes[0]] == ["init = default", "init = xavier_uniform"]
    # the at-init tanh line of the backprop row is the mean over seeds of the layers table
    layers = run.layers.merge(run.trials[["trial_id", "model.activation", "model.init"]])
    at_init = layers[(layers["epoch"] == 0) & (layers["model.activation"] == "tanh")]
    for ax, init in zip(axes[2], ["default", "xavier_uniform"]):
        expected = at_init[at_init["model.init"] == init].groupby("layer")["backprop_grad_std"].mean()
        (bars,) = [c for c in ax.containers if c.get_label() == "tanh, at init"]
        np.testing.assert_allclose(np.asarray(bars.lines[0].get_ydata(), dtype=float),
                                   expected.to_numpy(dtype=float), rtol=1e-9)
    over = fig_layers_over_training(run, section)
    titles = [ax.get_title() for ax in over.figure.axes if ax.get_title()]
    assert titles == ["sigmoid, default", "sigmoid, xavier_uniform", "tanh, default",
                      "tanh, xavier_uniform"]
    first = over.figure.axes[0]  # sigmoid's mean output, one line per layer
    assert sorted(ln.get_label() for ln in first.lines) == ["layer 0", "layer 1", "layer 2"]
    at = layers[(layers["model.activation"] == "sigmoid") & (layers["model.init"] == "default")]
    (top,) = [ln for ln in first.lines if ln.get_label() == "layer 2"]
    np.testing.assert_allclose(np.asarray(top.get_ydata(), dtype=float), at[at["layer"] == 2]
                               .groupby("epoch")["activation_mean"].mean().to_numpy(), rtol=1e-9)


def test_a_one_layer_net_has_no_layers_over_training_figure(runs, reports):
    from bench.reporting.figures import NothingToShow, fig_layers_over_training

    run = RunData.open(runs["spiral"])
    for s in sections(run):
        with pytest.raises(NothingToShow, match="one hidden layer"):
            fig_layers_over_training(run, s)
    assert "The figure of each hidden layer over training is left out" in (
        reports / "spiral" / "report.md").read_text()


def test_an_infinite_layer_value_does_not_stop_the_gradient_figure(tmp_path):
    from bench.reporting.figures import fig_gradients

    run = RunData.open(_run(tmp_path, DEEP, "deep"))
    last = run.layers["epoch"] == run.layers["epoch"].max()
    run.layers.loc[run.layers.index[last][0], "weight_grad_norm"] = np.inf  # a diverging step
    (section,) = sections(run)
    assert fig_gradients(run, section) is not None
