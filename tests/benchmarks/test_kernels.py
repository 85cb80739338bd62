"""Speed guards for the activations: forward, and forward+backward, at two tensor sizes."""

import pytest
import torch
from torch.utils import benchmark as tbench

from bench.training.activations import ACTIVATIONS
from tests.benchmarks.conftest import DEVICES, describe, record_ratio, synchronized

SIZES = [10_000, 1_000_000]


def _setup(name: str, numel: int, device: str, grad: bool):
    torch.manual_seed(0)
    module = ACTIVATIONS[name].build(negative_slope=0.01).to(device)
    x = torch.randn(numel, device=device, requires_grad=grad)
    return module, x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("numel", SIZES, ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_forward(benchmark, name, numel, device):
    module, x = _setup(name, numel, device, grad=False)
    describe(benchmark, device, activation=name, numel=numel, op="forward")
    with torch.no_grad():
        out = benchmark(synchronized(lambda: module(x), device))
    assert out.shape == x.shape
    record_ratio(benchmark, device, numel)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("numel", SIZES, ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_forward_backward(benchmark, name, numel, device):
    module, x = _setup(name, numel, device, grad=True)
    grad = torch.ones(numel, device=device)

    def step():
        x.grad = None
        module(x).backward(grad)
        return x.grad

    describe(benchmark, device, activation=name, numel=numel, op="forward+backward")
    out = benchmark(synchronized(step, device))
    assert out is not None and out.shape == x.shape
    record_ratio(benchmark, device, numel)


def test_timing_agrees_with_torch_timer(benchmark):
    """The harness's timing of relu forward+backward against torch.utils.benchmark.Timer on the
    same op and thread count (recorded, not asserted: a timed assertion would be flaky)."""
    module, x = _setup("relu", 1_000_000, "cpu", grad=True)
    grad = torch.ones_like(x)

    def step():
        x.grad = None
        module(x).backward(grad)

    describe(benchmark, "cpu", activation="relu", numel=1_000_000, op="forward+backward")
    benchmark(step)
    if benchmark.disabled or benchmark.stats is None:
        return
    timer = tbench.Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    torch_median = timer.blocked_autorange(min_run_time=1.0).median
    ours = benchmark.stats.stats.median
    benchmark.extra_info.update(torch_timer_median_s=torch_median,
                                ratio_to_torch_timer=ours / torch_median)
