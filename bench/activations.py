"""Activation functions by name, with what the probes need to know about each one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Activation:
    """One activation: how to build it and how to read its outputs.

    ``dead`` takes a unit's largest output over the samples and says whether the unit is dead:
    inactive for every sample (ReLU: output exactly 0, i.e. max <= 0; LeakyReLU: output
    negative, i.e. max < 0). Only the ReLU family has it; for the others the dead fraction is
    not defined (NaN).

    ``bounds`` are the limits of a bounded activation. A unit is saturated when, for every
    sample, its output is within ``SATURATION_MARGIN`` of one of them.
    """

    name: str
    build: Callable[..., nn.Module]
    doc: str
    dead: Callable[[torch.Tensor], torch.Tensor] | None = None
    bounds: tuple[float, float] | None = None

    @property
    def relu_family(self) -> bool:
        return self.dead is not None


# DESIGN.md: saturated = within 0.01 of a bound for every sample (|tanh| > 0.99; sigmoid < 0.01 or > 0.99).
SATURATION_MARGIN = 0.01

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in [
    Activation("identity", lambda **_: nn.Identity(), "f(x) = x: the homework's linear model"),
    Activation("sigmoid", lambda **_: nn.Sigmoid(), "1 / (1 + exp(-x))", bounds=(0.0, 1.0)),
    Activation("tanh", lambda **_: nn.Tanh(), "tanh(x)", bounds=(-1.0, 1.0)),
    Activation("softsign", lambda **_: nn.Softsign(), "x / (1 + |x|)", bounds=(-1.0, 1.0)),
    Activation("relu", lambda **_: nn.ReLU(), "max(0, x)", dead=lambda amax: amax <= 0),
    Activation("leaky_relu", lambda negative_slope=0.01, **_: nn.LeakyReLU(negative_slope),
               "max(0, x) + negative_slope * min(0, x); slope: model.negative_slope",
               dead=lambda amax: amax < 0),
    Activation("elu", lambda **_: nn.ELU(), "x if x > 0 else exp(x) - 1"),
    Activation("gelu", lambda **_: nn.GELU(), "x * Phi(x), the exact (erf) form"),
    Activation("silu", lambda **_: nn.SiLU(), "x * sigmoid(x) (swish)"),
    Activation("softplus", lambda **_: nn.Softplus(), "log(1 + exp(x))"),
]}
