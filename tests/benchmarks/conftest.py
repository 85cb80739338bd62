"""Shared set-up of the speed guards: devices, machine info, a reference op per tensor size.

Each benchmark records, besides its seconds, its time as a ratio to a plain copy of a tensor
of the same size on the same device, timed in the same session with
``torch.utils.benchmark.Timer``. Seconds depend on the machine; that ratio much less so.
"""

import functools

import pytest
import torch
from torch.utils import benchmark as tbench

CUDA_REASON = "no CUDA device on this machine: the CUDA benchmarks run where there is one"
DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=[
               pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)])]


def synchronized(fn, device: str):
    """``fn`` that waits for the GPU before returning, so its time is the kernels' time."""
    if device != "cuda":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


@functools.cache
def reference_seconds(device: str, numel: int) -> float:
    """Median seconds of ``x.clone()`` for a float32 tensor of ``numel`` elements."""
    x = torch.randn(numel, device=device)
    timer = tbench.Timer("x.clone()", globals={"x": x}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=0.3).median


def describe(benchmark, device: str, **info) -> None:
    """Machine and build facts for the saved run (pytest-benchmark adds its own)."""
    benchmark.extra_info.update(
        torch=torch.__version__, torch_cuda=torch.version.cuda, threads=torch.get_num_threads(),
        device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu", **info)


def record_ratio(benchmark, device: str, numel: int) -> None:
    """After ``benchmark(...)``: the median as a multiple of the reference copy's."""
    if benchmark.disabled or benchmark.stats is None:
        return
    reference = reference_seconds(device, numel)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(reference_copy_s=reference, ratio_to_copy=median / reference)
