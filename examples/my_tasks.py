"""User-defined tasks and inits for the README's example (and its tests).

A suite names a task by import path in ``[task] kind``; the table's other keys are the
function's keyword arguments, so they can be swept like any key:

    [task]
    kind = "examples.my_tasks:moons"
    points = 500
    noise = 0.1

and an init, with keyword arguments in an inline table:

    [model]
    init = { fn = "examples.my_tasks:scaled_normal", gain = 1.0 }

Run from the repository root, so that ``examples`` is importable.
"""

import math

import torch
from torch import nn


def moons(points: int = 500, noise: float = 0.1, test_fraction: float = 0.2,
          seed: int = 0):
    """Two interleaving half circles (scikit-learn's make_moons), drawn with the trial's seed."""
    g = torch.Generator().manual_seed(seed)
    n_top = points // 2
    angle = torch.cat([torch.linspace(0, math.pi, n_top), torch.linspace(0, math.pi, points - n_top)])
    x = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    x[n_top:] = torch.stack([1 - torch.cos(angle[n_top:]), 0.5 - torch.sin(angle[n_top:])], 1)
    x += noise * torch.randn(points, 2, generator=g)
    y = torch.cat([torch.zeros(n_top), torch.ones(points - n_top)]).long()
    order = torch.randperm(points, generator=g)
    n_test = round(test_fraction * points)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test], "classification"


def sine(points: int = 200, noise: float = 0.05):
    """y = sin(3x) + noise on [-1, 1], drawn from torch's global RNG (the trial has seeded it);
    no held-out split."""
    x = torch.linspace(-1, 1, points)[:, None]
    return x, torch.sin(3 * x) + noise * torch.randn_like(x), "regression"


def scaled_normal(weight: torch.Tensor, layer: nn.Linear, gain: float = 1.0) -> None:
    """N(0, gain^2 / fan_in) weights (LeCun's init at gain 1), zero biases."""
    weight.normal_(0.0, gain / math.sqrt(layer.in_features))
    if layer.bias is not None:
        layer.bias.zero_()
