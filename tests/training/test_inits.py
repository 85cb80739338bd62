"""Every init against PyTorch's own nn.init under the same seed, and against the variance math."""

import math

import pytest
import torch
from torch import nn

from bench.training.config import ModelConfig
from bench.training.inits import INITS
from bench.training.model import MLP

REFERENCE = {
    "xavier_uniform": lambda w: nn.init.xavier_uniform_(w),
    "xavier_normal": lambda w: nn.init.xavier_normal_(w),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "orthogonal": lambda w: nn.init.orthogonal_(w),
}


def build(init, hidden=(30, 20), activation="tanh", seed=0):
    torch.manual_seed(seed)
    return MLP(ModelConfig(hidden=hidden, activation=activation, init=init), 5, 3)


def reference_layers(hidden=(30, 20), seed=0):
    """The notebook's way: nn.Linear layers built in forward order."""
    torch.manual_seed(seed)
    widths = [5, *hidden, 3]
    return [nn.Linear(a, b) for a, b in zip(widths, widths[1:])]


def linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def test_every_init_is_covered():
    assert set(INITS) == set(REFERENCE) | {"default"}


def test_default_is_pytorchs_own_linear_init():
    for mine, ref in zip(linears(build("default")), reference_layers()):
        assert torch.equal(mine.weight, ref.weight)
        assert torch.equal(mine.bias, ref.bias)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_matches_torch_nn_init_and_zeroes_biases(name):
    layers = reference_layers()
    for layer in layers:  # same RNG stream: build everything, then re-init input side first
        REFERENCE[name](layer.weight)
    for mine, ref in zip(linears(build(name)), layers):
        assert torch.equal(mine.weight, ref.weight)
        assert torch.count_nonzero(mine.bias) == 0


@pytest.mark.parametrize("name, variance", [
    ("default", lambda fi, fo: 1 / (3 * fi)),
    ("xavier_uniform", lambda fi, fo: 2 / (fi + fo)),
    ("xavier_normal", lambda fi, fo: 2 / (fi + fo)),
    ("kaiming_uniform", lambda fi, fo: 2 / fi),
    ("kaiming_normal", lambda fi, fo: 2 / fi),
])
def test_weight_variance_follows_the_papers(name, variance):
    model = build(name, hidden=(400,), seed=1)
    layer = linears(model)[0]  # 5 -> 400
    expected = variance(5, 400)
    assert layer.weight.var().item() == pytest.approx(expected, rel=0.1)


def test_orthogonal_rows_are_orthonormal():
    layer = linears(build("orthogonal", hidden=(4,)))[1]  # 4 -> 4... then 4 -> 3 head
    w = layer.weight  # 3 x 4: rows orthonormal
    torch.testing.assert_close(w @ w.T, torch.eye(3), atol=1e-5, rtol=0)


def test_hidden_empty_is_one_linear_layer():
    model = build("default", hidden=())
    assert [type(m) for m in model] == [nn.Linear]
    assert model[0].in_features == 5 and model[0].out_features == 3
    assert math.isclose(sum(p.numel() for p in model.parameters()), 5 * 3 + 3)
