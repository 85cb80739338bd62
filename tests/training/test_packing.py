"""Packing trains each seed exactly as it would train alone (to float tolerance).

Every packed result is compared with ``run_trial`` of the same spec: the trials row, every
curve and layer row, and the final weights.
"""

import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.execution.local import retry_unit
from bench.reporting.report import render
from bench.suite import expand, load_suite
from bench.training import loop as train_module
from bench.training import packing
from bench.training.loop import run_pack, run_trial
from bench.training.model import MLP
from bench.training.packing import AUTO_MAX_ACTIVATIONS, MAX_PACK, PackedMLP, plan
from bench.training.tasks import make_task
from tests.helpers import assert_same_numbers, make_suite, specs_of

SPIRAL = 'kind = "spiral"\npoints_per_class = 40'
CUBIC = 'kind = "cubic"'
DIGITS = 'kind = "digits"\ntest_fraction = 0.25'

CASES = {
    "full batch, adam, relu": (SPIRAL, 'hidden = [16]\nactivation = "relu"',
                               'optimizer = "adam"\nlr = 0.01\nepochs = 25\nlog_every = 4\n'
                               'weight_decay = 1e-4\ntarget = { metric = "accuracy", value = 0.6 }'),
    "ragged accumulation, sgd momentum, tanh": (
        SPIRAL, 'hidden = [12, 10]\nactivation = "tanh"',
        'optimizer = "sgd"\nlr = 0.1\nmomentum = 0.9\nepochs = 20\naccumulation_steps = 7'),
    "mini-batches with accumulation, adamw, sigmoid": (
        SPIRAL, 'hidden = [16]\nactivation = "sigmoid"',
        'optimizer = "adamw"\nlr = 0.02\nepochs = 6\nbatch_size = 16\naccumulation_steps = 2\n'
        'log_every = 2'),
    "regression, leaky_relu, xavier": (CUBIC, 'hidden = [32]\nactivation = "leaky_relu"\n'
                                              'init = "xavier_uniform"',
                                       'optimizer = "adam"\nlr = 0.01\nepochs = 15'),
    "test split": (DIGITS, 'hidden = [24]\nactivation = "gelu"',
                   'optimizer = "adam"\nlr = 0.01\nepochs = 4\nbatch_size = 64\nlog_every = 2\n'
                   'target = { metric = "test_accuracy", value = 0.5 }'),
    "no hidden layer": (SPIRAL, 'hidden = []\nactivation = "identity"',
                        'optimizer = "sgd"\nlr = 0.5\nepochs = 10'),
}

@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_pack_matches_its_trials_run_one_at_a_time(case):
    specs = specs_of(*CASES[case])
    packed = run_pack(specs)
    assert [r.trial["trial_id"] for r in packed] == [s.trial_id for s in specs]
    for spec, result in zip(specs, packed):
        assert result.trial["pack_size"] == 3 and result.status == "ok"
        assert_same_numbers(result, run_trial(spec))


def test_members_really_differ():
    """A pack that trained one member three times would pass the test above for seed 0 only;
    this makes the seeds' results differ, so each must come from its own data and init."""
    packed = run_pack(specs_of(*CASES["full batch, adam, relu"]))
    losses = {r.trial["final_loss"] for r in packed}
    assert len(losses) == 3


def test_members_that_diverge_leave_the_pack_and_the_others_train_on():
    # Alone, seeds 1 and 2 diverge at epochs 58 and 57; seeds 0 and 3 finish 58 epochs.
    specs = specs_of(CUBIC, 'hidden = [32]\nactivation = "relu"',
                     'optimizer = "sgd"\nlr = 1.5\nepochs = 58', seeds=(0, 1, 2, 3))
    packed = run_pack(specs)
    alone = [run_trial(s) for s in specs]
    assert [r.status for r in alone] == ["ok", "diverged", "diverged", "ok"]
    for got, want in zip(packed, alone):
        assert_same_numbers(got, want)


def test_mini_batch_members_diverge_apart_and_a_pack_with_none_left_stops(monkeypatch):
    # Alone, with batches of 30: seeds 0 and 1 diverge in epoch 23, seeds 2 and 3 in epoch 22
    specs = specs_of(CUBIC, 'hidden = [32]\nactivation = "relu"',
                     'optimizer = "sgd"\nlr = 1.3\nepochs = 30\nbatch_size = 30', seeds=(0, 1, 2, 3))
    alone = [run_trial(s) for s in specs]
    assert [r.trial["diverged_epoch"] for r in alone] == [23, 23, 22, 22]
    for got, want in zip(run_pack(specs), alone):
        assert_same_numbers(got, want)
    # Every member diverged: the pack stops there, and runs no further epochs
    epochs = []
    monkeypatch.setattr(train_module.Trainer, "_mini_batch_epoch",
                        _counting(train_module.Trainer._mini_batch_epoch, epochs))
    wild = specs_of(CUBIC, 'hidden = [32]\nactivation = "relu"',
                    'optimizer = "sgd"\nlr = 1e4\nepochs = 50\nbatch_size = 10')
    results = run_pack(wild)
    last = max(r.trial["diverged_epoch"] for r in results)
    assert {r.status for r in results} == {"diverged"} and last < 5
    assert max(epochs) == last - 1  # the epoch whose training made the last member diverge


def _counting(method, seen):
    def wrapper(self, epoch, *args):
        seen.append(epoch)
        return method(self, epoch, *args)
    return wrapper


def test_time_and_memory_are_the_packs_shared_by_its_members():
    task, model, _ = CASES["full batch, adam, relu"]
    specs = specs_of(task, model, 'optimizer = "adam"\nlr = 0.01\nepochs = 300')
    run_pack(specs_of(task, model, 'optimizer = "adam"\nlr = 0.01\nepochs = 0'))  # lazy imports
    start = time.perf_counter()
    rows = [r.trial for r in run_pack(specs)]
    wall = time.perf_counter() - start
    # The loop is most of the wall time: three shares add up to it, one alone does not.
    assert 0.5 * wall < 3 * rows[0]["time_total_s"] <= wall
    assert 3 * rows[0]["time_per_epoch_s"] * 300 == pytest.approx(
        3 * rows[0]["time_total_s"], rel=0.5)
    assert len({(r["time_per_epoch_s"], r["peak_memory_bytes"]) for r in rows}) == 1
    # The pack holds three trials' weights, data and activations: its share of the peak is
    # near one trial's own peak, not three times it.
    alone = run_trial(specs[0]).trial["peak_memory_bytes"]
    assert 0.5 * alone < rows[0]["peak_memory_bytes"] < 1.5 * alone


def test_a_pack_whose_worker_died_is_retried_as_single_trials():
    specs = specs_of(*CASES["full batch, adam, relu"])
    attempts, pending, failed = {}, [], []
    retry_unit(specs, attempts, pending, 1, lambda s, r: failed.append(r))
    assert pending == [[s] for s in specs] and not failed
    for unit in pending:
        retry_unit(unit, attempts, [], 1, lambda s, r: failed.append(r))
    assert [r.trial["trial_id"] for r in failed] == [s.trial_id for s in specs]
    assert {r.status for r in failed} == {"failed"}
    assert "worker process died" in failed[0].trial["error"]


def test_packed_mlp_keeps_each_members_weights_under_the_mlps_keys():
    specs = specs_of(SPIRAL, 'hidden = [5, 4]\nactivation = "relu"',
                     'optimizer = "sgd"\nlr = 0.1\nepochs = 0')
    alone = [run_trial(s).state_dict for s in specs]
    models = []
    for s in specs:
        torch.manual_seed(s.seed)
        make_task(s.task)  # the data come first from the seed's stream, as in a trial
        models.append(MLP(s.model, 2, 3))
    pack = PackedMLP(models)
    assert len(pack.hidden_linears) == 2 and pack.members == 3
    for p, state in enumerate(alone):
        for key, value in pack.member_state_dict(p).items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    x = torch.randn(3, 7, 2)
    out = pack(x)
    for p, model in enumerate(models):
        torch.testing.assert_close(out[p], model(x[p]), rtol=1e-6, atol=1e-6)


# -- which trials are packed -------------------------------------------------------------------

def grid(train, seeds="[0, 1, 2]", sweep='"model.activation" = ["relu", "tanh"]',
         task=SPIRAL, hidden="[8]"):
    return expand(make_suite(f"seeds = {seeds}\n[task]\n{task}\n[model]\nhidden = {hidden}\n"
                             f"activation = \"relu\"\n[train]\nepochs = 2\n{train}\n"
                             f"[sweep]\n{sweep}\n"))


def test_plan_packs_the_seeds_of_each_grid_point_in_order():
    specs = grid('optimizer = "adam"\nlr = 0.01')
    units = plan(specs, "on")
    assert [[s.trial_id for s in u] for u in units] == [
        [s.trial_id for s in specs[:3]], [s.trial_id for s in specs[3:]]]
    assert all(len({s.model.activation for s in u}) == 1 for u in units)
    assert plan(specs, "off") == [[s] for s in specs]


def test_plan_splits_packs_larger_than_the_limit(monkeypatch):
    monkeypatch.setattr(packing, "MAX_PACK", 2)
    specs = grid('optimizer = "adam"\nlr = 0.01', seeds="[0, 1, 2]",
                 sweep='"train.lr" = [0.01]')
    assert [len(u) for u in plan(specs, "on")] == [2, 1]
    assert MAX_PACK >= 8


def test_a_single_seed_or_a_non_elementwise_optimizer_is_not_packed(monkeypatch):
    assert [len(u) for u in plan(grid('optimizer = "adam"\nlr = 0.01', seeds="[0]"), "on")] == [1, 1]
    monkeypatch.setattr(packing, "ELEMENTWISE_OPTIMIZERS", frozenset({"sgd"}))
    assert {len(u) for u in plan(grid('optimizer = "adam"\nlr = 0.01'), "on")} == {1}


SPIRAL_3000 = 'kind = "spiral"\npoints_per_class = 1000'


@pytest.mark.parametrize("hidden, train, packed", [
    ("[100]", "batch_size = 32", True),                   # small micro-batches: packed
    ("[100]", f"batch_size = {AUTO_MAX_ACTIVATIONS // 100}", True),        # 65500 activations
    ("[100]", f"batch_size = {AUTO_MAX_ACTIVATIONS // 100 + 1}", False),   # 65600
    ("[512, 512]", "batch_size = 16", True),      # 16 x 512 x 512 = 2^22 multiply-adds
    ("[512, 512]", "batch_size = 17", False),
    ("[100]", 'batch_size = "full"', False),               # 3000 samples: faster alone
    ("[100]", 'batch_size = "full"\naccumulation_steps = 8', True),   # 375 samples
    ("[]", 'batch_size = "full"', True),                   # a linear model: no activations
])
def test_auto_packs_small_cpu_micro_batches(hidden, train, packed):
    specs = grid(f'optimizer = "adam"\nlr = 0.01\n{train}', task=SPIRAL_3000, hidden=hidden)
    assert {len(u) > 1 for u in plan(specs, "auto")} == {packed}
    assert {len(u) for u in plan(specs, "on")} == {3}


def test_auto_counts_a_batch_larger_than_the_data_as_the_data():
    # 300 samples through [256]: 76800 activations as batches of 1024, 76800 > the limit; but
    # a batch cannot hold more than the 120 samples there are: 30720 activations
    specs = grid('optimizer = "adam"\nlr = 0.01\nbatch_size = 1024', hidden="[256]")
    assert {len(u) for u in plan(specs, "auto")} == {3}


def test_auto_leaves_cuda_alone():
    # packing pays on a GPU (README), but the main suite compares CPU and CUDA epoch times,
    # so both are timed one trial at a time unless --pack says otherwise
    cuda = grid('optimizer = "adam"\nlr = 0.01\ndevice = "cuda"\nbatch_size = 8')
    assert {len(u) for u in plan(cuda, "auto")} == {1}
    assert {len(u) for u in plan(cuda, "on")} == {3}


def test_a_pack_out_of_memory_runs_its_trials_alone(monkeypatch):
    specs = grid('optimizer = "adam"\nlr = 0.01')[:3]
    want = [run_trial(s) for s in specs]
    real_run = train_module.Trainer.run

    def run(self, on_progress=None):
        if self.packed:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_run(self, on_progress)

    monkeypatch.setattr(train_module.Trainer, "run", run)
    got = run_pack(specs)
    assert [g.status for g in got] == ["ok"] * 3 and [g.trial["pack_size"] for g in got] == [1] * 3
    assert [g.trial["final_loss"] for g in got] == [w.trial["final_loss"] for w in want]

    def out_of_memory(self, on_progress=None):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(train_module.Trainer, "run", out_of_memory)
    (alone,) = run_pack(specs[:1])  # a single trial out of memory is a failed row, as before
    assert alone.status == "failed" and "out of memory" in alone.trial["error"]


def test_a_resumed_run_packs_what_its_first_session_packed():
    specs = grid('optimizer = "adam"\nlr = 0.01', task=SPIRAL_3000, hidden="[100]",
                 sweep='"train.accumulation_steps" = [1, 8]')
    assert {len(u) for u in plan(specs, "auto")} == {1}  # k = 1 keeps the whole device unpacked
    left = {s.trial_id for s in specs[4:]}  # k = 8's seeds 1 and 2 are what remains
    units = plan(specs, "auto", todo=left)
    assert [len(u) for u in units] == [1, 1]
    assert [[s.trial_id for s in u] for u in plan(specs, "on", todo=left)] == [
        [s.trial_id for s in specs[4:]]]


def test_auto_packs_a_device_all_together_or_not_at_all():
    """A packed trial's time is a share of its pack's: auto never puts packed and unpacked
    timings side by side on one device."""
    mixed = grid('optimizer = "adam"\nlr = 0.01', sweep='"train.batch_size" = [32, 1024]',
                 task=SPIRAL_3000, hidden="[100]")
    assert {len(u) for u in plan(mixed, "auto")} == {1}
    assert {len(u) for u in plan(mixed, "on")} == {3}
    small = grid('optimizer = "adam"\nlr = 0.01', sweep='"train.batch_size" = [32, 64]')
    assert {len(u) for u in plan(small, "auto")} == {3}


def test_the_main_suite_is_not_packed_by_default():
    """Its k = 1 full batches run faster alone, so its k = 8 points are not packed either:
    figure 5 compares their epoch times."""
    specs = expand(load_suite(Path(__file__).parents[2] / "suites" / "activations.toml"))
    assert {len(u) for u in plan(specs, "auto")} == {1}


# -- end to end ---------------------------------------------------------------------------------

SUITE = """name = "demo"
seeds = [0, 1, 2]
[task]
kind = "spiral"
points_per_class = 30
[model]
hidden = [8]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.01
epochs = 6
log_every = 2
[sweep]
"model.activation" = ["relu", "sigmoid"]
"train.device" = ["cpu", "cuda"]
"""


def run_cli(tmp_path, *flags):
    path = tmp_path / "packed.toml"
    path.write_text(SUITE)
    assert main(["run", str(path), "--out", str(tmp_path / "results"), "--no-report",
                 "--workers", "1", *flags]) == 0
    (run_dir,) = [d for d in (tmp_path / "results" / "demo").iterdir()
                  if d.name not in getattr(run_cli, "seen", set())]
    run_cli.seen = getattr(run_cli, "seen", set()) | {run_dir.name}
    return run_dir


def test_run_with_and_without_pack_store_the_same_tables(tmp_path):
    packed_dir, single_dir = run_cli(tmp_path, "--pack"), run_cli(tmp_path, "--no-pack")
    a, b = (pd.read_parquet(d / "trials.parquet").set_index("trial_id").sort_index()
            for d in (packed_dir, single_dir))
    assert list(a.index) == list(b.index)
    ran = a.status == "ok"
    assert (a.loc[ran, "pack_size"] == 3).all() and (b["pack_size"] == 1).all()
    # CUDA trials are rows either way: skipped on this machine, or run where a GPU exists.
    cuda = a["train.device"] == "cuda"
    assert cuda.sum() == 6 and (a.loc[cuda, "status"] == b.loc[cuda, "status"]).all()
    for column in ["final_loss", "final_accuracy", "best_loss", "dead_fraction", "grad_norm"]:
        pd.testing.assert_series_equal(a.loc[ran, column], b.loc[ran, column], rtol=1e-5)
    for table in ("curves", "layers"):
        keys = ["trial_id", "epoch"] + (["layer"] if table == "layers" else [])
        x, y = (pd.read_parquet(d / f"{table}.parquet").sort_values(keys).reset_index(drop=True)
                for d in (packed_dir, single_dir))
        pd.testing.assert_frame_equal(x, y, rtol=1e-5, atol=1e-6)
    manifest = (packed_dir / "manifest.json").read_text()
    assert '"pack": "on"' in manifest and '"trials_packed": 6' in manifest
    # The report says which trials' time and memory are shares of a pack's.
    (md,) = render(packed_dir, tmp_path / "report", formats=("md",))
    assert "6 of 12 trials (6 on cpu) trained in packs of 3 seeds" in md.read_text()
    (md_single,) = render(single_dir, tmp_path / "report1", formats=("md",))
    assert "every trial trained alone" in md_single.read_text()


def test_dry_run_says_which_points_are_packed(tmp_path, capsys):
    path = tmp_path / "packed.toml"
    path.write_text(SUITE)
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("packed") == 2  # the two CPU points (auto: 90 samples per step)
    assert main(["run", str(path), "--dry-run", "--no-pack"]) == 0
    assert capsys.readouterr().out.count("packed") == 0


def test_perf_pack_measures_the_mnist1d_recipes_against_their_trials():
    """``bench perf --pack``'s MNIST-1D cases run the suite's recipe (batches of 100, log_every
    25) and compare the packed numbers with the one-at-a-time ones it timed."""
    from bench.perf import MNIST1D_RECIPE, MNIST1D_SHAPED, PACK_CASES, REFERENCE_CNN, pack_speedup

    recipes = [c for c in PACK_CASES if c[0].startswith("MNIST-1D recipe")]
    assert [c[0] for c in recipes] == ["MNIST-1D recipe, [100, 100]",
                                       "MNIST-1D recipe, residual [100, 100]",
                                       "MNIST-1D recipe, reference CNN"]
    assert all(c[3] == MNIST1D_RECIPE and "log_every = 25" in c[3] for c in recipes)
    cases = [("cnn", MNIST1D_SHAPED, REFERENCE_CNN, MNIST1D_RECIPE, 1.0),
             ("mlp", MNIST1D_SHAPED, [100, 100], MNIST1D_RECIPE, 1.0)]
    rows = pack_speedup(epochs=2, repeats=1, threads=1, seeds=2, cases=cases)
    assert [r["case"] for r in rows] == ["cnn", "mlp"] and all(r["epochs"] == 2 for r in rows)
    for r in rows:
        assert r["alone_s"] > 0 and r["packed_s"] > 0 and r["speedup"] > 0
        assert r["loss_rel_diff"] < 1e-4, r  # 80 Adam steps: float drift has not grown yet
