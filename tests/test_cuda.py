"""The CUDA path: same loop, synchronized timing, allocator peak memory. Skips without a GPU."""

import pytest
import torch

from bench.train import run_trial
from tests.conftest import one_spec

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
    from bench.report import render
    from bench.rundata import RunData
    from bench.runner import RunOptions, run_suite
    from tests.conftest import make_suite

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
    from bench.train import run_pack

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
