"""Speed guards for the harness's own cost per trial (issue 21): an init-only trial
(``epochs = 0``) as actbench runs it, its rows as the store writes them, and the plain loop's
trial (the same data and model, one forward pass). ``bench perf --orchestration`` measures
the same costs as whole processes, start-up included."""

import torch
import torch.nn.functional as F

from bench.results.writer import to_arrow
from bench.training.loop import run_trial
from bench.training.model import build_model
from bench.training.tasks import draw_task
from tests.benchmarks.conftest import describe
from tests.helpers import one_spec

INIT_ONLY = dict(task='kind = "spiral"', model='hidden = [100]\nactivation = "relu"',
                 train='optimizer = "adam"\nlr = 0.01\nepochs = 0')


def test_init_only_trial_plain(benchmark):
    spec = one_spec(**INIT_ONLY)
    describe(benchmark, "cpu", model="spiral [100]", loop="plain trial, epochs = 0")

    def trial():
        data = draw_task(spec.task, spec.seed)
        torch.manual_seed(spec.seed)
        model = build_model(spec.model, data.x_train.shape[1], data.out_features)
        with torch.no_grad():
            return float(F.cross_entropy(model(data.x_train), data.y_train))

    benchmark(trial)


def test_init_only_trial_instrumented(benchmark):
    spec = one_spec(**INIT_ONLY)
    describe(benchmark, "cpu", model="spiral [100]", loop="run_trial, epochs = 0")
    result = benchmark(run_trial, spec)
    assert result.status == "ok"


def test_a_trials_rows_to_arrow(benchmark):
    """What storing a trial costs before the disk: its three tables as Arrow."""
    result = run_trial(one_spec(**INIT_ONLY))
    describe(benchmark, "cpu", model="spiral [100]", loop="store.to_arrow of one trial")

    def rows():
        return [to_arrow(r) for r in ([result.trial], result.curves, result.layers)]

    tables = benchmark(rows)
    assert tables[0].num_rows == 1
