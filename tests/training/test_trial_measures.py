"""The trials columns the classic suites claim on, each recomputed here with plain PyTorch:
grad_equivalence_error, extrapolation_slope_ratio, the init ratios, all_dead_layer, and the
seeded test split of spiral and cubic."""

import math

import pytest
import torch
import torch.nn.functional as F

from bench.errors import UserError
from bench.training.loop import run_pack, run_trial
from bench.training.model import MLP
from bench.training.tasks import make_task
from tests.helpers import make_suite, one_spec


def rebuilt(spec, state_dict):
    torch.manual_seed(spec.seed)
    data = make_task(spec.task)
    model = MLP(spec.model, data.x_train.shape[1], data.out_features)
    model.load_state_dict(state_dict)
    return model, data


def initial(spec):
    """The trial's data and its network at initialization, built as the trainer builds them."""
    torch.manual_seed(spec.seed)
    data = make_task(spec.task)
    return MLP(spec.model, data.x_train.shape[1], data.out_features), data


def flat_grad(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()]).double()


# -- grad_equivalence_error -------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3, 7])
def test_full_batch_split_in_k_has_no_gradient_error(k):
    spec = one_spec(train=f'optimizer = "sgd"\nlr = 0.1\nepochs = 2\naccumulation_steps = {k}')
    error = run_trial(spec).trial["grad_equivalence_error"]
    assert 0 <= error < 1e-5


@pytest.mark.parametrize("k", [1, 2])
def test_mini_batch_error_is_the_first_steps_distance_from_the_full_gradient(k):
    spec = one_spec(train=f'optimizer = "sgd"\nlr = 0.1\nepochs = 2\nbatch_size = 16\n'
                          f'accumulation_steps = {k}')
    model, data = initial(spec)
    full = flat_grad(model, F.cross_entropy(model(data.x_train), data.y_train))
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(spec.seed))
    first = order[:16 * k]  # the first step's k micro-batches, equal in size here
    step = flat_grad(model, F.cross_entropy(model(data.x_train[first]), data.y_train[first]))
    expected = float((step - full).norm() / full.norm())
    row = run_trial(spec).trial
    assert row["grad_equivalence_error"] == pytest.approx(expected, rel=1e-4)
    assert expected > 0.05  # a mini-batch gradient is noisy: the column is not trivially 0


def test_more_samples_per_step_give_a_smaller_gradient_error():
    errors = {}
    for k in (1, 8):
        rows = [run_trial(one_spec(seed=s, train=f'optimizer = "sgd"\nlr = 0.1\nepochs = 1\n'
                                                 f'batch_size = 8\naccumulation_steps = {k}')
                          ).trial for s in range(4)]
        errors[k] = sum(r["grad_equivalence_error"] for r in rows) / len(rows)
    assert errors[8] < errors[1] / 1.5


def test_no_training_has_no_gradient_error():
    assert math.isnan(run_trial(one_spec(train='optimizer = "sgd"\nlr = 0.1\nepochs = 0')
                                ).trial["grad_equivalence_error"])


def test_a_pack_records_each_members_gradient_error():
    suite = make_suite("""
        seeds = [0, 1, 2]
        [task]
        kind = "spiral"
        points_per_class = 50
        [model]
        hidden = [8]
        activation = "relu"
        [train]
        optimizer = "sgd"
        lr = 0.1
        epochs = 1
        batch_size = 16
        """)
    from bench.suite import expand
    specs = expand(suite)
    alone = [run_trial(s).trial["grad_equivalence_error"] for s in specs]
    packed = [r.trial["grad_equivalence_error"] for r in run_pack(specs)]
    assert packed == pytest.approx(alone, rel=1e-4)
    assert len(set(alone)) == 3


# -- extrapolation_slope_ratio ----------------------------------------------------------------

def test_extrapolation_slope_ratio_is_far_secant_over_edge_secant():
    spec = one_spec(task='kind = "cubic"\npoints = 40',
                    model='hidden = [16]\nactivation = "tanh"',
                    train='optimizer = "adam"\nlr = 0.01\nepochs = 50')
    result = run_trial(spec)
    model, data = rebuilt(spec, result.state_dict)
    f = lambda x: float(model(torch.tensor([[float(x)]])).squeeze())  # noqa: E731
    with torch.no_grad():
        far = (abs(f(4) - f(3)) + abs(f(-3) - f(-4))) / 2
        edge = (abs(f(1) - f(0.5)) + abs(f(-0.5) - f(-1))) / 2 / 0.5
    assert result.trial["extrapolation_slope_ratio"] == pytest.approx(far / edge, rel=1e-4)


def test_a_linear_model_extrapolates_with_slope_ratio_one():
    spec = one_spec(task='kind = "cubic"\npoints = 30', model='hidden = []\nactivation = "relu"',
                    train='optimizer = "sgd"\nlr = 0.1\nepochs = 20')
    assert run_trial(spec).trial["extrapolation_slope_ratio"] == pytest.approx(1.0, rel=1e-5)


def test_classification_has_no_extrapolation_measure():
    assert math.isnan(run_trial(one_spec()).trial["extrapolation_slope_ratio"])


# -- init ratios and all_dead_layer -----------------------------------------------------------

def test_init_ratios_are_the_epoch_zero_layer_ratios():
    spec = one_spec(model='hidden = [16, 16, 16]\nactivation = "tanh"',
                    train='optimizer = "sgd"\nlr = 0.1\nepochs = 3')
    result = run_trial(spec)
    layers = {r["layer"]: r for r in result.layers if r["epoch"] == 0}
    assert result.trial["init_activation_std_ratio"] == pytest.approx(
        layers[2]["activation_std"] / layers[0]["activation_std"])
    assert result.trial["init_grad_std_ratio"] == pytest.approx(
        layers[0]["backprop_grad_std"] / layers[2]["backprop_grad_std"])


def test_init_activation_ratio_follows_the_variance_math():
    # Deep ReLU: xavier's 2/(n+n) = 1/n halves the signal's second moment per layer, so the
    # std falls by ~sqrt(2) per layer; kaiming's 2/n keeps it level.
    ratios = {}
    for init in ("xavier_normal", "kaiming_normal"):
        model = f'hidden = {[256] * 9}\nactivation = "relu"\ninit = "{init}"'
        rows = [run_trial(one_spec(seed=s, model=model,
                                   train='optimizer = "sgd"\nlr = 0.1\nepochs = 0')).trial
                for s in range(3)]
        ratios[init] = sum(r["init_activation_std_ratio"] for r in rows) / 3
    assert ratios["xavier_normal"] == pytest.approx(2 ** -4, rel=0.35)  # 8 layers apart
    assert ratios["kaiming_normal"] == pytest.approx(1.0, rel=0.35)


def test_one_hidden_layer_has_no_init_ratio():
    row = run_trial(one_spec()).trial
    assert math.isnan(row["init_activation_std_ratio"]) and math.isnan(row["init_grad_std_ratio"])


def test_all_dead_layer_is_a_layer_with_no_live_unit():
    seen = set()
    for seed in range(12):
        spec = one_spec(seed=seed, model='hidden = [2, 2, 2, 2, 2, 2]\nactivation = "relu"',
                        train='optimizer = "sgd"\nlr = 0.1\nepochs = 0')
        row = run_trial(spec).trial
        model, data = initial(spec)
        outputs, h = [], data.x_train
        with torch.no_grad():
            for linear in model.hidden_linears:
                h = torch.relu(linear(h))
                outputs.append(h)
        expected = any(bool((o == 0).all()) for o in outputs)
        assert row["all_dead_layer"] == float(expected), seed
        seen.add(expected)
    assert seen == {True, False}  # both cases occurred, so the test can tell them apart


def test_all_dead_layer_is_nan_outside_the_relu_family():
    row = run_trial(one_spec(model='hidden = [4]\nactivation = "tanh"')).trial
    assert math.isnan(row["all_dead_layer"])


# -- test_fraction on spiral and cubic --------------------------------------------------------

@pytest.mark.parametrize("task,n", [('kind = "spiral"\npoints_per_class = 50', 150),
                                    ('kind = "cubic"\npoints = 40', 40)])
def test_test_split_partitions_the_same_data(task, n):
    torch.manual_seed(0)
    split = one_spec(task=task + "\ntest_fraction = 0.25").task
    torch.manual_seed(0)
    data = make_task(split)
    assert len(data.x_test) == round(0.25 * n) and len(data.x_train) == n - round(0.25 * n)
    torch.manual_seed(0)
    whole = make_task(one_spec(task=task).task)
    joined = torch.cat([data.x_train, data.x_test])
    assert sorted(map(tuple, joined.tolist())) == sorted(map(tuple, whole.x_train.tolist()))
    torch.manual_seed(1)
    other = make_task(split)
    assert not torch.equal(other.x_test, data.x_test)  # the split follows the seed


def test_a_split_records_test_metrics_and_leaves_ids_of_unsplit_trials_alone():
    split = run_trial(one_spec(task='kind = "spiral"\npoints_per_class = 50\ntest_fraction = 0.2'))
    assert {"test_loss", "test_accuracy"} <= set(split.curves[-1])
    assert 0 <= split.trial["final_test_accuracy"] <= 1
    plain = one_spec()
    explicit = one_spec(task='kind = "spiral"\npoints_per_class = 50\ntest_fraction = 0.0')
    assert plain.trial_id == explicit.trial_id
    assert plain.config["task.test_fraction"] == 0.0
    assert split.trial["trial_id"] != plain.trial_id


def test_trial_ids_stored_before_test_fraction_existed_are_unchanged():
    # ids computed by the code before the key existed (commit ee1371a): runs stored then
    # still resume and compare against runs made now
    assert one_spec().trial_id == "b97baad5e4fe8a72"
    assert one_spec(task='kind = "cubic"\npoints = 40').trial_id == "92319c0ceafa0d3d"
    assert one_spec(task='kind = "digits"').trial_id == "97bc642e4d0eef24"


def test_a_split_that_holds_out_everything_is_refused():
    with pytest.raises(UserError, match="test_fraction"):
        one_spec(task='kind = "cubic"\npoints = 2\ntest_fraction = 0.9')


def test_measuring_the_gradient_error_costs_the_step_no_memory(monkeypatch):
    from bench.training import loop as train

    spec = one_spec(model='hidden = [256, 256]\nactivation = "relu"',
                    train='optimizer = "sgd"\nlr = 0.01\nepochs = 1\nbatch_size = 4')
    measured = run_trial(spec).trial
    monkeypatch.setattr(train.Trainer, "_first_step", lambda self: None)
    bare = run_trial(spec).trial
    assert math.isnan(bare["grad_equivalence_error"]) and measured["grad_equivalence_error"] > 0
    assert measured["peak_memory_bytes"] == bare["peak_memory_bytes"]
