"""The process state a trial touches, each as a context manager that leaves it as it was:
torch's intra-op threads, and the random streams.

A trial seeds torch's global RNG itself (``tasks.draw_task``: the trial's seed, then the data,
then the init). Everything else that draws at random (a user task or init checked when a suite
loads, a module's parameters probed, the data drawn again for a figure or a pack's shapes)
runs inside ``rng_kept``, so that no trial's stream depends on what ran before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count pinned to ``n`` inside, and restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def rng_kept(seed: int | None = None, cuda: bool = False) -> Iterator[None]:
    """A block whose draws leave torch's random streams as they were: the CPU generator is
    forked (with ``cuda``, every CUDA device this process has started too) and, with ``seed``,
    seeded inside (a fixed draw: the same each time)."""
    devices = (list(range(torch.cuda.device_count()))
               if cuda and torch.cuda.is_initialized() else [])
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.default_generator.manual_seed(seed)
            for device in devices:
                torch.cuda.default_generators[device].manual_seed(seed)
        yield


def seed_torch(seed: int, cuda: bool = True) -> None:
    """Seed torch's global random streams with ``seed``, as ``torch.manual_seed`` does.

    Without ``cuda``, and with no CUDA context yet in this process, only the CPU generator is
    seeded: the streams a CPU trial draws from are the same, but ``torch.manual_seed`` would also
    queue a seeding of CUDA, XPU and MTIA for when they start, each with a formatted traceback
    (about 1.4 ms a trial, and a queue that grows by three entries a trial for the life of the
    process)."""
    if cuda or torch.cuda.is_initialized():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)
