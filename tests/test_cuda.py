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
