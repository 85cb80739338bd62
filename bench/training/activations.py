"""Activation functions by name, with what the probes need to know about each one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from bench.plugins import arguments, check_user_path, import_object, resolver, user_path
from bench.training.state import rng_kept


@dataclass(frozen=True)
class Activation:
    """One activation: how to build it and how to read its outputs.

    ``dead`` maps a chunk of the layer's output, samples first (samples x units; for a pack,
    samples x members x units), to a mask over the other dimensions by reducing dimension 0:
    the unit is inactive for every sample of the chunk. By default that is output exactly 0 (so
    a sigmoid or tanh unit is practically never dead); LeakyReLU's rule is output negative
    (docs/results.md). A unit is dead when it is inactive in every chunk, i.e. on the whole training
    set. A conv layer's chunk has its positions last (samples x channels x positions; for a
    pack, samples x members x channels x positions) and the probe reduces the positions of the
    mask: a channel is inactive when it is at every position.

    ``bounds`` are the limits of a bounded activation. A unit is saturated when, for every
    sample, its output is within ``SATURATION_MARGIN`` of one of them.
    """

    name: str
    build: Callable[..., nn.Module]
    doc: str
    dead: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda a: a.abs().amax(0) == 0)
    bounds: tuple[float, float] | None = None
    relu_family: bool = False
    user: bool = False  # user-defined: saturation from the derivative, by autograd


# docs/results.md: saturated = within 0.01 of a bound for every sample
# (|tanh| > 0.99; sigmoid < 0.01 or > 0.99).
SATURATION_MARGIN = 0.01

def _never_negative(a: torch.Tensor) -> torch.Tensor:
    # For outputs >= 0, "exactly 0 for every sample" is "largest output <= 0": one amax,
    # ~10x cheaper on CPU than any() over a boolean mask.
    return a.amax(0) <= 0


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in [
    Activation("identity", lambda **_: nn.Identity(), "f(x) = x: the homework's linear model"),
    Activation("sigmoid", lambda **_: nn.Sigmoid(), "1 / (1 + exp(-x))", bounds=(0.0, 1.0),
               dead=_never_negative),
    Activation("tanh", lambda **_: nn.Tanh(), "tanh(x)", bounds=(-1.0, 1.0)),
    Activation("softsign", lambda **_: nn.Softsign(), "x / (1 + |x|)", bounds=(-1.0, 1.0)),
    Activation("relu", lambda **_: nn.ReLU(), "max(0, x)", dead=_never_negative,
               relu_family=True),
    Activation("leaky_relu", lambda negative_slope=0.01, **_: nn.LeakyReLU(negative_slope),
               "max(0, x) + negative_slope * min(0, x); slope: model.negative_slope",
               dead=lambda a: a.amax(0) < 0, relu_family=True),
    Activation("elu", lambda **_: nn.ELU(), "x if x > 0 else exp(x) - 1"),
    Activation("gelu", lambda **_: nn.GELU(), "x * Phi(x), the exact (erf) form"),
    Activation("silu", lambda **_: nn.SiLU(), "x * sigmoid(x) (swish)"),
    Activation("softplus", lambda **_: nn.Softplus(), "log(1 + exp(x))", dead=_never_negative),
]}


# A user activation's unit is saturated when |f'(x)| is below this for every sample.
SATURATION_SLOPE = 1e-3


class Applied(nn.Module):
    """A function of one tensor (and keyword arguments) as a module."""

    def __init__(self, fn: Callable[..., torch.Tensor], kwargs: dict):
        super().__init__()
        self.fn, self.kwargs = fn, kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, **self.kwargs)


def check(name: str, args: str = "") -> None:
    """What ``resolve`` checks without importing or calling user code (a suite that is only
    read: ``--dry-run``): a built-in takes no arguments, any other name is registered or an
    import path. Raises ValueError as ``resolve`` does."""
    kwargs = arguments(args)
    if name in ACTIVATIONS:
        if kwargs:
            raise ValueError(f"built-in activation {name!r} takes no arguments, got "
                             f"{sorted(kwargs)}")
        return
    check_user_path("activation", name, ACTIVATIONS)


@resolver
def resolve(name: str, args: str = "") -> Activation:
    """The Activation a suite names: a built-in, a name an installed package registers
    (entry points, group ``actbench.activations``), or an import path ``module:attr`` to an
    ``nn.Module`` class or a function of one tensor. ``args`` is the JSON of its keyword
    arguments. Raises ValueError naming the path and what was wrong."""
    kwargs = arguments(args)
    if name in ACTIVATIONS:
        if kwargs:
            raise ValueError(f"built-in activation {name!r} takes no arguments, got "
                             f"{sorted(kwargs)}")
        return ACTIVATIONS[name]
    path = user_path("activation", name, ACTIVATIONS)
    obj = import_object(path)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        def build(**_):
            return obj(**kwargs)
    elif callable(obj) and not isinstance(obj, type):
        def build(**_):
            return Applied(obj, kwargs)
    else:
        raise ValueError(f"{path!r} is neither an nn.Module class nor a function of one tensor")
    try:
        x = torch.linspace(-3, 3, 12).reshape(4, 3)
        with rng_kept():  # a module may draw its parameters
            y = build()(x)
    except Exception as exc:
        raise ValueError(f"{path!r} with arguments {kwargs} fails on a (4 x 3) tensor: "
                         f"{type(exc).__name__}: {exc}") from None
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{path!r} must return a tensor of its input's shape (4, 3), "
                         f"not {got}: an activation acts elementwise")
    doc = (getattr(obj, "__doc__", None) or path).strip().splitlines()[0]
    return Activation(name, build, doc, user=True)

