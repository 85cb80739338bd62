"""Gradient accumulation is exact: weighted micro-batches give the full-batch gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from bench.training import run_trial, trial_row
from bench.training.loop import Trainer
from tests.helpers import one_spec


def trainer(train="optimizer = \"sgd\"\nlr = 0.1\nepochs = 5", points=50, hidden="[8]",
            task="spiral"):
    task_keys = f'kind = "{task}"' + (f"\npoints_per_class = {points}" if task == "spiral" else "")
    spec = one_spec(task=task_keys, model=f"hidden = {hidden}\nactivation = \"tanh\"", train=train)
    return Trainer([spec], [trial_row(spec, 1)])


def grads(model):
    return [p.grad.clone() for p in model.parameters()]


def full_batch_reference(t):
    t.optimizer.zero_grad()
    loss = t.loss_fn(t.model(t.x), t.y)
    loss.backward()
    return loss.item(), grads(t.model)


@pytest.mark.parametrize("k", [1, 2, 7, 8, 149, 150])
def test_full_batch_split_in_k_gives_the_full_batch_gradient(k):
    t = trainer(points=50)  # N = 150: 7 and 8 do not divide it (ragged micro-batches)
    ref_loss, ref_grads = full_batch_reference(t)
    chunks = list(zip(t.x.tensor_split(k), t.y.tensor_split(k)))
    assert len({len(c[0]) for c in chunks}) == (1 if 150 % k == 0 else 2)
    loss, _ = t._accumulate(chunks, None, False)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for mine, ref in zip(grads(t.model), ref_grads):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-7)


def test_regression_loss_is_weighted_per_sample_too():
    t = trainer(task="cubic")
    ref_loss, ref_grads = full_batch_reference(t)
    loss, _ = t._accumulate(list(zip(t.x.tensor_split(3), t.y.tensor_split(3))), None, False)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for mine, ref in zip(grads(t.model), ref_grads):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-7)


def test_mean_of_means_would_be_wrong_here():
    """The naive pattern (loss / k per micro-batch) differs on a ragged split: the test can fail."""
    t = trainer(points=50)
    _, ref_grads = full_batch_reference(t)
    t.optimizer.zero_grad()
    for xb, yb in zip(t.x.tensor_split([1]), t.y.tensor_split([1])):  # sizes 1 and 149
        (F.cross_entropy(t.model(xb), yb) / 2).backward()
    assert not torch.allclose(grads(t.model)[0], ref_grads[0], rtol=1e-3)


def test_leftover_micro_batches_are_stepped_on_not_dropped(monkeypatch):
    # N = 150 samples, B = 32, k = 2: micro-batches 32,32,32,32,22 -> steps of 64, 64, 22.
    t = trainer(train="optimizer = \"sgd\"\nlr = 0.1\nepochs = 1\nbatch_size = 32\n"
                      "accumulation_steps = 2\nlog_every = 1")
    steps = []
    original = t._accumulate

    def spy(chunks, probe, want_correct, fetch=None):
        # training steps pass sample indices (gathered one micro-batch at a time)
        steps.append([len(c) for c in chunks] if fetch else [len(xb) for xb, _ in chunks])
        return original(chunks, probe, want_correct, fetch)

    monkeypatch.setattr(t, "_accumulate", spy)
    t.run()
    # the full-set evaluations of epochs 0 and 1 around the training steps, in pieces of at
    # least EVAL_SAMPLES (the first one's gradient is grad_equivalence_error's reference: no
    # extra pass with mini-batches)
    assert steps[0] == steps[-1] == [150]
    training = steps[1:-1]
    assert training == [[32, 32], [32, 32], [22]]
    assert sum(map(sum, training)) == 150


def test_k_micro_batches_train_like_one_full_batch():
    base = "optimizer = \"sgd\"\nlr = 0.5\nepochs = 30\nmomentum = 0.9\n"
    one = run_trial(one_spec(train=base, model="hidden = [16]\nactivation = \"relu\""))
    eight = run_trial(one_spec(train=base + "accumulation_steps = 7",
                               model="hidden = [16]\nactivation = \"relu\""))
    assert one.status == eight.status == "ok"
    assert eight.trial["final_loss"] == pytest.approx(one.trial["final_loss"], rel=1e-4)
    # ... and the peak memory of a step drops with the micro-batch size.
    assert eight.trial["peak_memory_bytes"] < one.trial["peak_memory_bytes"]


@pytest.mark.parametrize("scaling, factor", [("none", 1), ("linear", 8), ("sqrt", math.sqrt(8))])
def test_lr_scaling(scaling, factor):
    spec = one_spec(train=f"optimizer = \"sgd\"\nlr = 0.01\nepochs = 1\naccumulation_steps = 8\n"
                          f"lr_scaling = \"{scaling}\"")
    t = Trainer([spec], [trial_row(spec, 1)])
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * factor)
    assert spec.train.lr_effective == pytest.approx(0.01 * factor)


@pytest.mark.parametrize("full", [True, False])
def test_peak_memory_falls_with_the_micro_batch_for_both_batch_modes(full):
    model = "hidden = [256]\nactivation = \"relu\""  # few parameters: activations dominate
    task = "kind = \"spiral\"\npoints_per_class = 1000"
    if full:
        big, small = "batch_size = \"full\"", "batch_size = \"full\"\naccumulation_steps = 8"
    else:  # one step of 2048 samples against 8 micro-batches of 256: the same step size
        big, small = "batch_size = 2048", "batch_size = 256\naccumulation_steps = 8"
    train = "optimizer = \"adam\"\nlr = 0.01\nepochs = 2\n"
    one = run_trial(one_spec(task=task, model=model, train=train + big))
    eight = run_trial(one_spec(task=task, model=model, train=train + small))
    assert eight.trial["peak_memory_bytes"] < 0.3 * one.trial["peak_memory_bytes"]
    # the floor is what stays alive: data, parameters, their gradients and Adam's two moments
    floor = 3000 * 2 * 4 + 3000 * 8 + 4 * 4 * one.trial["n_params"]
    assert eight.trial["peak_memory_bytes"] > floor


def test_peak_memory_does_not_grow_with_k_for_a_fixed_micro_batch():
    # digits: 64 inputs per sample, so k micro-batches gathered at once would cost
    # (k - 1) x 64 x 64 floats more than one at a time. The step holds one.
    peaks = {k: run_trial(one_spec(task='kind = "digits"', model='hidden = [32]\nactivation = "relu"',
                                   train=f'optimizer = "sgd"\nlr = 0.01\nepochs = 1\nbatch_size = 64\n'
                                         f'accumulation_steps = {k}')).trial["peak_memory_bytes"]
             for k in (1, 8)}
    assert peaks[8] <= peaks[1] * 1.02, peaks
