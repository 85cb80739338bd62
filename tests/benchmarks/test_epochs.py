"""Speed guards for training: one epoch of the spiral MLP, bare and instrumented, and one
instrumented epoch of a deep (8 x 256) MLP."""

import pytest

from bench.perf import bare_epoch
from bench.train import epoch_runner
from tests.benchmarks.conftest import DEVICES, describe, synchronized
from tests.conftest import one_spec

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
