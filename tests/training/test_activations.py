"""Every activation against PyTorch's functional reference and its formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from bench.training.activations import ACTIVATIONS

X = torch.linspace(-6, 6, 1001, dtype=torch.float64)

REFERENCE = {
    "identity": lambda x: x,
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "softsign": lambda x: x / (1 + x.abs()),
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "gelu": lambda x: x * 0.5 * (1 + torch.erf(x / math.sqrt(2))),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "softplus": lambda x: torch.log1p(torch.exp(x)),
}

FUNCTIONAL = {
    "identity": lambda x: x, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "softsign": F.softsign, "relu": F.relu, "leaky_relu": F.leaky_relu, "elu": F.elu,
    "gelu": F.gelu, "silu": F.silu, "softplus": F.softplus,
}


def test_every_activation_has_a_reference():
    assert set(ACTIVATIONS) == set(REFERENCE) == set(FUNCTIONAL)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_matches_formula_and_torch(name):
    module = ACTIVATIONS[name].build(negative_slope=0.01)
    out = module(X)
    torch.testing.assert_close(out, REFERENCE[name](X), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, FUNCTIONAL[name](X), rtol=0, atol=0)


def test_leaky_relu_slope_is_a_key():
    module = ACTIVATIONS["leaky_relu"].build(negative_slope=0.2)
    assert module(torch.tensor([-1.0, 2.0])).tolist() == pytest.approx([-0.2, 2.0])


@pytest.mark.parametrize("name, inactive, active", [
    ("relu", [0.0, 0.0], [0.0, 1e-6]),
    ("leaky_relu", [-1e-3, -5.0], [-1.0, 0.0]),
    ("tanh", [0.0, 0.0], [0.0, -1e-6]),      # other activations: output exactly 0
    ("sigmoid", [0.0, 0.0], [1e-6, 0.0]),
])
def test_dead_rule_per_unit(name, inactive, active):
    dead = ACTIVATIONS[name].dead
    outputs = torch.tensor([inactive, active]).T  # samples x units: unit 0 inactive, unit 1 not
    assert dead(outputs).tolist() == [True, False]


def test_relu_family_and_bounds():
    assert {n for n, a in ACTIVATIONS.items() if a.relu_family} == {"relu", "leaky_relu"}
    assert ACTIVATIONS["sigmoid"].bounds == (0.0, 1.0)
    assert ACTIVATIONS["tanh"].bounds == (-1.0, 1.0)
    assert ACTIVATIONS["relu"].bounds is None
