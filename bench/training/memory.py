"""Peak memory of a training step: measured from the tensors themselves, on CPU and CUDA.

CUDA: ``torch.cuda.max_memory_allocated`` over the measured window (the caching allocator's own
count of live tensor bytes).

CPU has no allocator statistics, so ``LiveTensorMeter`` measures the same quantity directly: a
``TorchDispatchMode`` sees the output of every operator (autograd's backward included), adds the
bytes of each new storage when it appears, and a ``weakref.finalize`` on the storage subtracts
them the moment it is freed. The peak of that running sum, plus the bytes already alive when the
window opens (parameters, data, optimizer state), is the peak of live tensor bytes. Kernel
scratch space that never becomes a tensor is not counted. The meter costs a Python call per
operator, so it runs only during the warm-up epoch, which timings exclude.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten


class LiveTensorMeter(TorchDispatchMode):
    """Running sum and peak of the bytes of storages created inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # A TorchDispatchMode's __torch_dispatch__ is wrapped in torch._disable_dynamo unless
        # this says no (torch/utils/_python_dispatch.py); the wrapper imports torch._dynamo on
        # its first call, about 1 s in every process that measures a trial. Nothing the meter
        # watches is compiled, so there is nothing for Dynamo to skip.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0 or key in self._live:  # a view, or an in-place result
            return
        self._live[key] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    @staticmethod
    @contextmanager
    def paused() -> Iterator[None]:
        """Run a block unseen by the meter (the probes' own temporaries)."""
        with _disable_current_modes():
            yield


def tensor_bytes(tensors: Iterable[torch.Tensor | None]) -> int:
    """Bytes of distinct storages among ``tensors`` (views of one storage count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t is not None:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


class PeakMemory:
    """Peak live tensor bytes over one or more windows (the step, not the logging around it).

    CUDA: the allocator's peak, reset at each window's start and read at its end. CPU: one
    ``LiveTensorMeter`` entered for each window; its weakref finalizers keep counting frees in
    between, so a tensor allocated in one window and freed later is still accounted for.
    ``resident`` is the bytes alive before the first window (parameters, data) on CPU.
    """

    def __init__(self, device: torch.device, resident: int):
        self.device = device
        self.peak = 0
        self._resident = resident
        self._meter = LiveTensorMeter() if device.type != "cuda" else None

    @contextmanager
    def window(self) -> Iterator[None]:
        if self._meter is None:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self.peak = max(self.peak, int(torch.cuda.max_memory_allocated(self.device)))
        else:
            with self._meter:
                yield
            self.peak = max(self.peak, self._resident + self._meter.peak)
