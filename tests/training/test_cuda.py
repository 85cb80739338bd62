"""The CUDA path: same loop, synchronized timing, allocator peak memory. Skips without a GPU."""

import pytest
import torch

from bench.training.loop import run_trial
from tests.helpers import one_spec

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="no CUDA device on this machine: CUDA trials are recorded as skipped"),
]

TRAIN = "optimizer = \"adam\"\nlr = 0.01\nepochs = 30\nlog_every = 5\n"


def test_cuda_trial_matches_cpu_to_float_tolerance():
    cpu = run_trial(one_spec(train=TRAIN + 'device = "cpu"'))
    gpu = run_trial(one_spec(train=TRAIN + 'device = "cuda"'))
    assert gpu.status == "ok", gpu.trial["error"]
    assert gpu.trial["device_name"] == torch.cuda.get_device_name(0)
    assert gpu.trial["final_loss"] == pytest.approx(cpu.trial["final_loss"], rel=1e-3)
    assert [c["epoch"] for c in gpu.curves] == [c["epoch"] for c in cpu.curves]


def test_cuda_peak_memory_comes_from_the_allocator_and_drops_with_accumulation():
    big = dict(task="kind = \"spiral\"\npoints_per_class = 4000",
               model="hidden = [512, 512]\nactivation = \"relu\"")
    one = run_trial(one_spec(**big, train=TRAIN + 'device = "cuda"'))
    eight = run_trial(one_spec(**big, train=TRAIN + 'device = "cuda"\naccumulation_steps = 8'))
    assert one.status == eight.status == "ok"
    assert 0 < eight.trial["peak_memory_bytes"] < one.trial["peak_memory_bytes"]
    assert one.trial["time_per_epoch_s"] > 0


def test_cuda_index_out_of_range_is_skipped():
    index = torch.cuda.device_count()
    r = run_trial(one_spec(train=TRAIN + f'device = "cuda:{index}"'))
    assert r.status == "skipped" and "does not exist" in r.trial["error"]


def test_report_of_a_cpu_and_cuda_run_compares_devices(tmp_path):
    from bench.execution.run import RunOptions, run_suite
    from bench.reporting.report import render
    from bench.results.reader import RunData
    from tests.helpers import make_suite

    suite = make_suite("""
        seeds = [0, 1]
        [task]
        kind = "spiral"
        points_per_class = 50
        [model]
        hidden = [16]
        activation = "relu"
        [train]
        optimizer = "adam"
        lr = 0.01
        epochs = 30
        log_every = 10
        [sweep]
        "model.activation" = ["relu", "tanh"]
        "train.device" = ["cpu", "cuda"]
    """, name="devices")
    store = run_suite(suite, RunOptions(out=tmp_path / "results", workers=1))
    run = RunData.open(store.dir)
    assert (run.trials.status == "ok").all()
    assert "train.device" in run.varied_keys
    # weights of a CUDA trial are stored on the CPU and reproduce its recorded accuracy
    for _, row in run.trials[run.trials["train.device"] == "cuda"].iterrows():
        data = run.task_data(row)
        with torch.no_grad():
            acc = (run.model(row)(data.x_train).argmax(1) == data.y_train).float().mean().item()
        assert acc == pytest.approx(row["final_accuracy"], abs=2 / len(data.y_train))
    html, md = render(store.dir, tmp_path / "report")
    text = md.read_text()
    assert "| activation | device |" in text and "fig5_timing.png" in text
    assert torch.cuda.get_device_name(0) in text  # the timing figure's caption names both devices


@pytest.mark.parametrize("batch", ['"full"', "16"])
def test_a_cuda_pack_matches_its_trials_run_one_at_a_time(batch):
    from bench.training.loop import run_pack

    specs = [one_spec(train=TRAIN + f'device = "cuda"\nbatch_size = {batch}', seed=s)
             for s in range(4)]
    packed = run_pack(specs)
    for spec, got in zip(specs, packed):
        want = run_trial(spec)
        assert got.status == want.status == "ok", got.trial["error"]
        assert got.trial["pack_size"] == 4
        # bmm and mm may take different cuBLAS kernels: float tolerance, not bit equality
        assert got.trial["final_loss"] == pytest.approx(want.trial["final_loss"], rel=1e-3)
        for key, weight in want.state_dict.items():
            torch.testing.assert_close(got.state_dict[key], weight, rtol=1e-3, atol=1e-4)


def _cpu_and_cuda(**parts):
    train = parts.pop("train", TRAIN)
    cpu = run_trial(one_spec(**parts, train=train + '\ndevice = "cpu"'))
    gpu = run_trial(one_spec(**parts, train=train + '\ndevice = "cuda"'))
    assert cpu.status == gpu.status == "ok", gpu.trial["error"]
    return cpu.trial, gpu.trial


def test_cuda_trial_measures_match_the_cpu():
    # the columns issue 6 added: the first step's gradient error (full batch in k = 3 parts,
    # whose reference pass runs on the GPU), the epoch-0 std ratios and the dead-layer flag
    cpu, gpu = _cpu_and_cuda(model='hidden = [32, 32, 32]\nactivation = "relu"',
                             train=TRAIN + "\naccumulation_steps = 3")
    assert gpu["grad_equivalence_error"] < 1e-4  # float32 sums in another order
    for col in ("init_activation_std_ratio", "init_grad_std_ratio"):
        assert gpu[col] == pytest.approx(cpu[col], rel=1e-4), col
    assert gpu["all_dead_layer"] == cpu["all_dead_layer"] == 0.0
    mini_cpu, mini_gpu = _cpu_and_cuda(train=TRAIN + "\nbatch_size = 16\naccumulation_steps = 2")
    assert mini_gpu["grad_equivalence_error"] == pytest.approx(mini_cpu["grad_equivalence_error"],
                                                               rel=1e-3)


def test_cuda_cubic_extrapolation_matches_the_cpu():
    cpu, gpu = _cpu_and_cuda(task='kind = "cubic"', model='hidden = [20]\nactivation = "relu"')
    assert gpu["extrapolation_slope_ratio"] == pytest.approx(cpu["extrapolation_slope_ratio"],
                                                             rel=1e-2)


def test_cuda_user_activation_init_and_task_match_the_cpu(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    cpu, gpu = _cpu_and_cuda(
        task='kind = "examples.my_tasks:moons"\npoints = 200',
        model='hidden = [16, 16]\nactivation = { fn = "examples.my_activations:ParametricSwish", '
              'beta = 2.0 }\ninit = { fn = "examples.my_tasks:scaled_normal", gain = 1.0 }')
    assert gpu["final_loss"] == pytest.approx(cpu["final_loss"], rel=1e-3)
    assert gpu["final_test_accuracy"] == pytest.approx(cpu["final_test_accuracy"], abs=0.011)
    # saturation of a user activation: autograd's derivative, taken on the GPU
    assert gpu["saturated_fraction"] == pytest.approx(cpu["saturated_fraction"], abs=1 / 32)


def test_checking_a_user_task_leaves_the_cuda_rng_alone(monkeypatch):
    from pathlib import Path

    from bench.training import tasks

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    torch.cuda.init()
    torch.manual_seed(7)  # what a trial does: CPU and CUDA seeded
    cpu, gpu = torch.get_rng_state(), torch.cuda.get_rng_state()
    tasks.resolve_task.cache_clear()
    assert tasks.resolve_task("examples.my_tasks:sine", '{"points": 10}').problem == "regression"
    assert torch.equal(torch.get_rng_state(), cpu) and torch.equal(torch.cuda.get_rng_state(), gpu)
