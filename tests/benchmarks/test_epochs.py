"""Speed guards for training: one epoch of the spiral MLP, bare and instrumented, and one
instrumented epoch of a deep (8 x 256) MLP."""

import pytest

from bench.perf import bare_epoch
from bench.training.loop import epoch_runner
from tests.benchmarks.conftest import DEVICES, describe, synchronized
from tests.helpers import one_spec

SPIRAL = dict(task='kind = "spiral"', model='hidden = [100]\nactivation = "relu"')
DEEP = dict(task='kind = "spiral"', model='hidden = [256, 256, 256, 256, 256, 256, 256, 256]\n'
                                          'activation = "relu"')
TRAIN = 'optimizer = "adam"\nlr = 0.001\nepochs = 10\n'


def test_spiral_epoch_bare(benchmark):
    spec = one_spec(**SPIRAL, train=TRAIN)
    describe(benchmark, "cpu", model="spiral [100]", loop="bare")
    benchmark(bare_epoch(spec))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("logged", [False, True], ids=["unlogged", "logged"])
def test_spiral_epoch_instrumented(benchmark, logged, device):
    spec = one_spec(**SPIRAL, train=TRAIN + f'device = "{device}"')
    describe(benchmark, device, model="spiral [100]", loop="instrumented", logged=logged)
    benchmark(synchronized(epoch_runner(spec, logged), device))


@pytest.mark.parametrize("device", DEVICES)
def test_deep_epoch_instrumented(benchmark, device):
    spec = one_spec(**DEEP, train=TRAIN + f'device = "{device}"')
    describe(benchmark, device, model="spiral 8 x [256]", loop="instrumented", logged=True)
    benchmark(synchronized(epoch_runner(spec, True), device))


SMALL = dict(task='kind = "spiral"\npoints_per_class = 100',
             model='hidden = [100]\nactivation = "relu"')


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("packed", [False, True], ids=["one_at_a_time", "packed"])
def test_six_seeds_epoch(benchmark, packed, device):
    """One epoch of six seeds of a 300-sample spiral: six trials one after the other, or one
    pack of six (packing.py). The ratio of the two is `bench perf --pack`'s speed-up."""
    specs = [one_spec(**SMALL, train=TRAIN + f'device = "{device}"', seed=s) for s in range(6)]
    describe(benchmark, device, model="spiral 300 [100] x 6 seeds",
             loop="packed" if packed else "one at a time", logged=False)
    if packed:
        epoch = epoch_runner(specs, False)
    else:
        epochs = [epoch_runner(spec, False) for spec in specs]

        def epoch():
            for one in epochs:
                one()
    benchmark(synchronized(epoch, device))
