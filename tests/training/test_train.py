"""The training loop's contract: epochs, final_* rows, divergence, targets, determinism."""

import math

import pytest
import torch

from bench.execution.local import run_processes, run_serial
from bench.suite import expand
from bench.training.loop import run_trial
from tests.helpers import make_suite, one_spec


def test_curves_run_from_init_to_the_last_epoch_and_final_equals_last_row():
    spec = one_spec(train="optimizer = \"sgd\"\nlr = 0.1\nepochs = 25\nlog_every = 10")
    r = run_trial(spec)
    assert [c["epoch"] for c in r.curves] == [0, 10, 20, 25]
    last = r.curves[-1]
    assert r.trial["final_loss"] == last["loss"]
    assert r.trial["final_accuracy"] == last["accuracy"]
    assert r.trial["grad_norm"] == last["grad_norm"]
    assert r.trial["best_loss"] <= min(c["loss"] for c in r.curves)
    assert {row["epoch"] for row in r.layers} == {0, 10, 20, 25}
    assert r.trial["dead_fraction"] == pytest.approx(
        sum(x["dead_fraction"] for x in r.layers if x["epoch"] == 25) / 1)


def test_epochs_zero_records_the_network_at_init_only():
    r = run_trial(one_spec(train="optimizer = \"sgd\"\nlr = 0.1\nepochs = 0"))
    assert r.status == "ok"
    assert [c["epoch"] for c in r.curves] == [0]
    assert [row["epoch"] for row in r.layers] == [0]
    assert math.isnan(r.trial["time_per_epoch_s"])
    assert r.trial["peak_memory_bytes"] > 0


def test_curve_at_epoch_e_is_the_network_after_e_updates():
    # Full batch: epoch 1's loss is the forward pass after exactly one SGD update by hand.
    spec = one_spec(train="optimizer = \"sgd\"\nlr = 0.5\nepochs = 1\nlog_every = 1")
    r = run_trial(spec)
    from bench.training.model import MLP
    from bench.training.tasks import make_task
    torch.manual_seed(spec.seed)
    data = make_task(spec.task)
    model = MLP(spec.model, 2, 3)
    loss0 = torch.nn.functional.cross_entropy(model(data.x_train), data.y_train)
    loss0.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.5 * p.grad
    loss1 = torch.nn.functional.cross_entropy(model(data.x_train), data.y_train)
    assert r.curves[0]["loss"] == pytest.approx(loss0.item(), rel=1e-6)
    assert r.curves[1]["loss"] == pytest.approx(loss1.item(), rel=1e-6)


def test_non_finite_loss_ends_the_trial_as_diverged():
    r = run_trial(one_spec(task="kind = \"cubic\"", model="hidden = [32]\nactivation = \"relu\"",
                           train="optimizer = \"sgd\"\nlr = 1e4\nepochs = 200"))
    assert r.status == "diverged"
    epoch = r.trial["diverged_epoch"]
    assert 0 < epoch < 200
    assert r.curves[-1]["epoch"] == epoch and not math.isfinite(r.curves[-1]["loss"])
    assert "non-finite" in r.trial["error"]


def test_mini_batch_divergence_is_caught_too():
    r = run_trial(one_spec(task="kind = \"cubic\"", model="hidden = [32]\nactivation = \"relu\"",
                           train="optimizer = \"sgd\"\nlr = 1e4\nepochs = 50\nbatch_size = 10"))
    assert r.status == "diverged" and r.trial["diverged_epoch"] >= 1


def test_epochs_to_target_is_the_first_logged_epoch_that_met_it():
    r = run_trial(one_spec(train="optimizer = \"adam\"\nlr = 0.05\nepochs = 100\nlog_every = 5\n"
                                 "target = { metric = \"loss\", value = 0.7 }"))
    epoch = r.trial["epochs_to_target"]
    met = [c["epoch"] for c in r.curves if c["loss"] <= 0.7]
    assert epoch is not None and epoch % 5 == 0
    assert epoch == met[0]  # a user can check it against curves.parquet


def test_a_target_never_met_is_null():
    r = run_trial(one_spec(train="optimizer = \"sgd\"\nlr = 0.001\nepochs = 5\n"
                                 "target = { metric = \"accuracy\", value = 0.99 }"))
    assert r.trial["epochs_to_target"] is None


def test_digits_has_a_held_out_split():
    r = run_trial(one_spec(task="kind = \"digits\"\ntest_fraction = 0.25",
                           model="hidden = [32]\nactivation = \"relu\"",
                           train="optimizer = \"adam\"\nlr = 0.01\nepochs = 20\nbatch_size = 128"))
    assert r.status == "ok"
    assert r.trial["final_test_accuracy"] > 0.85
    assert r.curves[-1]["test_loss"] == r.trial["final_test_loss"]


def test_cubic_is_regression_without_accuracy():
    r = run_trial(one_spec(task="kind = \"cubic\"", train="optimizer = \"adam\"\nlr = 0.01\nepochs = 5"))
    assert math.isnan(r.trial["final_accuracy"]) and r.trial["final_loss"] > 0


def test_same_seed_same_numbers_and_seed_changes_them():
    train = "optimizer = \"sgd\"\nlr = 0.1\nepochs = 10\nbatch_size = 16"
    a, b = (run_trial(one_spec(train=train)) for _ in range(2))
    c = run_trial(one_spec(train=train, seed=1))
    assert a.curves == b.curves
    assert a.trial["final_loss"] != c.trial["final_loss"]


def test_numbers_do_not_depend_on_the_executor():
    suite = make_suite("""
seeds = [0, 1, 2]
[task]
kind = "spiral"
points_per_class = 60
[model]
hidden = [12]
activation = "tanh"
[train]
optimizer = "sgd"
lr = 0.2
epochs = 15
batch_size = 32
""")
    specs = expand(suite)
    serial, pooled, packed = {}, {}, {}
    singles = [[s] for s in specs]
    run_serial(singles, 1, lambda s, r: serial.__setitem__(s.trial_id, r.trial["final_loss"]))
    run_processes(singles, 2, 1, lambda s, r: pooled.__setitem__(s.trial_id, r.trial["final_loss"]))
    assert serial == pooled and len(serial) == 3
    # A pack in a worker process: the same numbers to float tolerance (test_packing.py).
    run_processes([specs[:2], specs[2:]], 2, 1,
                  lambda s, r: packed.__setitem__(s.trial_id, r.trial["final_loss"]))
    assert packed == pytest.approx(serial, rel=1e-5)


def test_missing_cuda_is_a_skipped_row_with_the_reason():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run_trial(one_spec(train="optimizer = \"sgd\"\nlr = 0.1\nepochs = 5\ndevice = \"cuda\""))
    assert r.status == "skipped" and "CUDA is not available" in r.trial["error"]


def test_a_crashing_trial_is_a_failed_row(monkeypatch):
    import bench.training.loop as train

    def boom(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(train, "draw_task", boom)
    r = run_trial(one_spec())
    assert r.status == "failed" and r.trial["error"] == "RuntimeError: boom"


def test_dead_fraction_in_trials_is_over_relu_family_layers_only():
    tanh = run_trial(one_spec(model="hidden = [8]\nactivation = \"tanh\""))
    relu = run_trial(one_spec(model="hidden = [8, 8]\nactivation = \"relu\""))
    assert math.isnan(tanh.trial["dead_fraction"])
    assert not math.isnan(tanh.layers[-1]["dead_fraction"])  # layers have it for every activation
    last = [row["dead_fraction"] for row in relu.layers if row["epoch"] == 5]
    assert relu.trial["dead_fraction"] == pytest.approx(sum(last) / 2)
