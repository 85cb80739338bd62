"""Weight initializations by name. Every built-in init but ``default`` zeroes the biases, as
the papers do. A user init (an import path, or a name a package registers under
``actbench.inits``) is a function ``f(weight, layer, **kwargs)``: it fills ``weight`` in place
or returns a tensor of its shape; biases stay as PyTorch built them unless it sets them.

The layers are nn.Linear or nn.Conv1d (a cnn1d model). A conv weight is (out, in, kernel);
its fans are PyTorch's (``nn.init._calculate_fan_in_and_fan_out``): fan_in = in x kernel,
fan_out = out x kernel, which is what every built-in init uses. ``orthogonal`` makes the
(out, in x kernel) matrix (semi-)orthogonal."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bench.plugins import (
    arguments,
    check_user_path,
    import_object,
    python_and_numpy_seeded,
    resolver,
    user_path,
)
from bench.training.state import rng_kept

# Glorot & Bengio (2010) and the orthogonal init use gain 1; He et al. (2015) use the ReLU gain
# sqrt(2) with fan_in, which is what "kaiming" means here whatever the activation.
_WEIGHT_INITS: dict[str, Callable[[nn.Parameter], object]] = {
    "xavier_uniform": lambda w: nn.init.xavier_uniform_(w, gain=1.0),
    "xavier_normal": lambda w: nn.init.xavier_normal_(w, gain=1.0),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
    "orthogonal": lambda w: nn.init.orthogonal_(w, gain=1.0),
}

INITS: dict[str, str] = {
    "default": "PyTorch's own nn.Linear / nn.Conv1d init: U(+-1/sqrt(fan_in)) for weights and "
               "biases",
    "xavier_uniform": "U(+-sqrt(6/(fan_in+fan_out))), Var = 2/(fan_in+fan_out); biases 0",
    "xavier_normal": "N(0, 2/(fan_in+fan_out)); biases 0",
    "kaiming_uniform": "U(+-sqrt(6/fan_in)), Var = 2/fan_in (ReLU gain); biases 0",
    "kaiming_normal": "N(0, 2/fan_in) (ReLU gain); biases 0",
    "orthogonal": "a (semi-)orthogonal matrix, gain 1; biases 0",
}


Layer = nn.Linear | nn.Conv1d
InitFn = Callable[[Layer], None]


class _Returned(ValueError):
    """A user init returned something that is not a weight."""


def initialize(layers: list[Layer], name: str, args: str = "") -> None:
    """Re-initialize ``layers`` (Linear or Conv1d) in order (input side first). ``default``
    leaves them as built."""
    if name == "default":
        return
    init = resolve(name, args)
    for layer in layers:
        init(layer)


def _builtin(weight_init: Callable[[nn.Parameter], object]) -> InitFn:
    def init(layer: Layer) -> None:
        weight_init(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return init


def check(name: str, args: str = "") -> None:
    """What ``resolve`` checks without importing or calling user code (a suite that is only
    read: ``--dry-run``). Raises ValueError as ``resolve`` does."""
    kwargs = arguments(args)
    if name in INITS:
        if kwargs:
            raise ValueError(f"built-in init {name!r} takes no arguments, got {sorted(kwargs)}")
        return
    check_user_path("init", name, INITS)


@resolver
def resolve(name: str, args: str = "") -> InitFn:
    """The init a suite names, as a function of one layer: a built-in, a name registered under
    ``actbench.inits``, or an import path to ``f(weight, layer, **kwargs)``. ``args`` is the JSON
    of its keyword arguments. Checked here on a Linear(3, 4): it must run, leave (or return)
    a finite weight of the layer's shape. Raises ValueError naming the path."""
    kwargs = arguments(args)
    if name in INITS:
        if kwargs:
            raise ValueError(f"built-in init {name!r} takes no arguments, got {sorted(kwargs)}")
        return _builtin(_WEIGHT_INITS[name]) if name != "default" else (lambda layer: None)
    path = user_path("init", name, INITS)
    fn = import_object(path)
    if not callable(fn) or isinstance(fn, type):
        raise ValueError(f"{path!r} is not a function f(weight, layer, **kwargs)")

    def init(layer: Layer) -> None:
        with torch.no_grad():
            out = fn(layer.weight, layer, **kwargs)
            if out is not None and out is not layer.weight:
                if not isinstance(out, torch.Tensor) or out.shape != layer.weight.shape:
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise _Returned(f"{path!r} returned {got}, not None or a tensor of the "
                                    f"weight's shape {tuple(layer.weight.shape)}")
                layer.weight.copy_(out)

    try:
        with rng_kept(), python_and_numpy_seeded(0):  # a check at
            # load, not a draw of any trial's: every RNG is left as it was
            probe = nn.Linear(3, 4)
            init(probe)
    except _Returned:
        raise
    except Exception as exc:  # the user's own error, ValueError included: named with the path
        raise ValueError(f"{path!r} with arguments {kwargs} fails on the weight of a "
                         f"Linear(3, 4): {type(exc).__name__}: {exc}") from None
    if not torch.isfinite(probe.weight).all():
        raise ValueError(f"{path!r} leaves non-finite values in the weight of a Linear(3, 4)")
    return init

