"""User-defined activations for suites/custom_activation.toml and the README's example.

A suite names them by import path, ``activation = "examples.my_activations:swish"``, or with
keyword arguments, ``activation = { fn = "examples.my_activations:ParametricSwish", beta = 2.0 }``
(run from the repository root, so that ``examples`` is importable).
"""

import torch
from torch import nn


def swish(x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Swish: x * sigmoid(beta * x) (Ramachandran et al. 2017); beta = 1 is SiLU."""
    return x * torch.sigmoid(beta * x)


class ParametricSwish(nn.Module):
    """Swish with a learnable beta per layer, starting at ``beta``."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(float(beta)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)
