"""The built-in ``mnist1d`` task: the mnist1d package's data set, generated locally and cached."""

import random

import mnist1d.data as mnist1d_data
import numpy as np
import pandas as pd
import pytest
import torch

import bench.training.tasks as tasks
from bench.errors import UserError
from bench.execution.run import RunOptions, run_suite
from bench.results.reader import RunData
from bench.suite import expand
from bench.training.tasks import Mnist1dConfig, draw_task, make_task
from tests.helpers import make_suite

SMALL = {"num_samples": 1000}  # a fifth of the default: the keys' tests generate it quickly

TRAIN = """
[model]
hidden = [16]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.01
epochs = 2
batch_size = 100
"""


def package(**changed):
    """The package's own data set, straight from make_dataset, with ``changed`` arguments."""
    args = mnist1d_data.get_dataset_args()
    for key, value in changed.items():
        setattr(args, key, value)
    return mnist1d_data.make_dataset(args)


@pytest.fixture(scope="module")
def reference():
    return package()


def spec_of(task: str, seeds: str = "[0]"):
    return expand(make_suite(f"seeds = {seeds}\n[task]\nkind = \"mnist1d\"\n{task}\n" + TRAIN))


def test_defaults_are_the_packages_arguments():
    args = mnist1d_data.get_dataset_args(as_dict=True)
    cfg = Mnist1dConfig()
    for key in tasks._MNIST1D_ARGS:
        expected = tuple(args[key]) if key == "padding" else args[key]
        assert getattr(cfg, key) == expected, key
    # every generator argument is a key; only the download helper's url is left out
    assert set(args) - set(tasks._MNIST1D_ARGS) == {"url"}
    assert (cfg.val_fraction, cfg.has_test_split, cfg.has_val_split) == (0.0, True, False)


def test_shapes_dtypes_and_the_packages_own_test_split(reference):
    (spec,) = spec_of("")
    data = draw_task(spec.task, spec.seed)
    assert data.kind == "classification" and data.out_features == 10
    assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert data.x_train.dtype == data.x_test.dtype == torch.float32
    assert data.y_train.dtype == data.y_test.dtype == torch.int64
    assert data.y_train.shape == (4000,) and data.x_val is None
    # the package's split, not a re-split: its samples in its order
    assert torch.equal(data.x_test, torch.tensor(reference["x_test"], dtype=torch.float32))
    assert torch.equal(data.y_test, torch.tensor(reference["y_test"]))
    assert torch.equal(data.x_train, torch.tensor(reference["x"], dtype=torch.float32))
    assert torch.equal(data.y_train, torch.tensor(reference["y"]))
    assert set(data.y_train.tolist()) == set(range(10))


def test_the_trial_seed_changes_neither_the_data_nor_the_init_stream():
    a, b = (draw_task(spec.task, spec.seed) for spec in spec_of("", seeds="[0, 1]"))
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    # the data comes from its own seed: the model's init is the trial seed's stream alone
    draw_task(Mnist1dConfig(), 3)
    after = torch.rand(4)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(4))


def test_generating_leaves_pythons_and_numpys_rngs_as_they_were():
    random.seed(5)
    np.random.seed(5)
    make_task(Mnist1dConfig(num_samples=100, seed=999))  # arguments no other test generates
    assert random.random() == random.Random(5).random()
    assert np.random.rand() == np.random.RandomState(5).rand()


@pytest.mark.parametrize("changed", [{"iid_noise_scale": 0.1}, {"shuffle_seq": True},
                                     {"seed": 7, "padding": [10, 20], "final_seq_length": 24}])
def test_a_changed_key_changes_the_data_as_the_package_does(changed):
    keys = {**SMALL, **changed}
    data = make_task(Mnist1dConfig(**keys))
    expected = package(**keys)
    assert torch.equal(data.x_train, torch.tensor(expected["x"], dtype=torch.float32))
    assert torch.equal(data.x_test, torch.tensor(expected["x_test"], dtype=torch.float32))
    assert torch.equal(data.y_train, torch.tensor(expected["y"]))
    assert data.x_train.shape[1] == keys.get("final_seq_length", 40)
    assert not torch.equal(data.x_train[:, :24], make_task(Mnist1dConfig(**SMALL)).x_train[:, :24])


def test_shuffle_seq_permutes_every_signals_positions_the_same_way():
    plain = make_task(Mnist1dConfig(**SMALL))
    shuffled = make_task(Mnist1dConfig(**SMALL, shuffle_seq=True))
    x, xs = (torch.cat([d.x_train, d.x_test]) for d in (plain, shuffled))
    # one permutation of the 40 positions, the same for all 1000 signals (the package draws
    # it after the signals, so they are the unshuffled ones)
    perm = [int((x == xs[:, [j]]).all(0).nonzero()[0]) for j in range(x.shape[1])]
    assert sorted(perm) == list(range(40)) and perm != list(range(40))
    assert torch.equal(xs, x[:, perm])
    assert torch.equal(plain.y_train, shuffled.y_train)


def test_the_validation_split_is_held_out_of_the_training_set_with_the_data_seed(reference):
    a, b = (draw_task(spec.task, spec.seed)
            for spec in spec_of("val_fraction = 0.25", seeds="[0, 1]"))
    assert a.x_val.shape == (1000, 40) and a.x_train.shape == (3000, 40)
    assert a.y_val.dtype == torch.int64 and a.y_val.shape == (1000,)
    rows = {tuple(r) for r in torch.tensor(reference["x"], dtype=torch.float32).tolist()}
    train, val = ({tuple(r) for r in x.tolist()} for x in (a.x_train, a.x_val))
    assert not train & val and train | val == rows
    # the test split stays the package's; every trial seed holds out the same samples
    assert torch.equal(a.x_test, torch.tensor(reference["x_test"], dtype=torch.float32))
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_val, b.y_val)
    # another data seed holds out other samples (of another data set)
    other = make_task(Mnist1dConfig(**SMALL, val_fraction=0.25, seed=1))
    assert other.x_val.shape == (200, 40)


def test_the_data_set_is_generated_once_per_argument_set_and_handed_out_as_copies(monkeypatch):
    calls = []
    real = mnist1d_data.make_dataset

    def counting(args):
        calls.append(args.seed)
        return real(args)

    monkeypatch.setattr(mnist1d_data, "make_dataset", counting)
    cfg = Mnist1dConfig(num_samples=300, seed=12345)  # arguments no other test generates
    first = draw_task(cfg, 0)
    first.x_train.mul_(0)  # a trial that writes into its data
    first.y_test.zero_()
    second = draw_task(cfg, 1)
    assert calls == [12345]
    assert second.x_train.abs().sum() > 0 and second.y_test.sum() > 0
    draw_task(Mnist1dConfig(num_samples=300, seed=12345, val_fraction=0.1), 2)
    assert calls == [12345]  # the validation share is not a generator argument
    draw_task(Mnist1dConfig(num_samples=300, seed=12346), 0)
    assert calls == [12345, 12346]


@pytest.mark.parametrize("task, key, expected", [
    ("num_samples = 0", "task.num_samples", "greater than or equal to 10"),
    ("num_samples = 100.5", "task.num_samples", "100.5"),
    ("train_split = 1.0", "task.train_split", "less than 1"),
    ("val_fraction = 1.5", "task.val_fraction", "less than 1"),
    ("iid_noise_scale = -0.1", "task.iid_noise_scale", "greater than or equal to 0"),
    ("max_translation = 0", "task.max_translation", "greater than or equal to 1"),
    ("padding = [60, 36]", "task.padding", "low <= high"),
    ("padding = 36", "task.padding", "[low, high]"),
    ("shuffle_seq = 1", "task.shuffle_seq", "boolean"),
    ("seed = -1", "task.seed", "greater than or equal to 0"),
    ("test_fraction = 0.2", "task.test_fraction", "set train_split"),
    ("shuffle = true", "task.shuffle", "did you mean 'shuffle_seq'"),
])
def test_a_bad_key_names_the_key(task, key, expected):
    with pytest.raises(UserError) as info:
        spec_of(task)
    message = str(info.value)
    assert info.value.key == key and expected in message, message
    assert f"[task] {key.split('.')[1]}" in message


def test_a_split_that_leaves_no_training_samples_is_refused():
    with pytest.raises(UserError, match="no training"):
        spec_of("num_samples = 10\ntrain_split = 0.05")


@pytest.mark.slow
def test_an_mlp_trains_on_it_end_to_end(tmp_path):
    suite = make_suite("seeds = [0, 1]\n[task]\nkind = \"mnist1d\"\n" + TRAIN, name="m1d")
    run_dir = run_suite(suite, RunOptions(out=tmp_path, workers=1)).dir
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert list(trials["status"]) == ["ok", "ok"]
    assert (trials["final_test_accuracy"] > 0.15).all()  # chance is 0.1
    assert trials["final_loss"].nunique() == 2  # the seeds' inits differ, the data does not
    assert list(trials["task.padding"].iloc[0]) == [36, 60] and (trials["task.seed"] == 42).all()
    # a stored trial's data is drawn again from its row
    run = RunData.open(run_dir)
    data = run.task_data(run.trials.iloc[0])
    assert torch.equal(data.x_train, make_task(Mnist1dConfig()).x_train)
