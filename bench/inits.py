"""Weight initializations by name. Every init but ``default`` zeroes the biases, as the papers do."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

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
    "default": "PyTorch's own nn.Linear init: U(+-1/sqrt(fan_in)) for weights and biases",
    "xavier_uniform": "U(+-sqrt(6/(fan_in+fan_out))), Var = 2/(fan_in+fan_out); biases 0",
    "xavier_normal": "N(0, 2/(fan_in+fan_out)); biases 0",
    "kaiming_uniform": "U(+-sqrt(6/fan_in)), Var = 2/fan_in (ReLU gain); biases 0",
    "kaiming_normal": "N(0, 2/fan_in) (ReLU gain); biases 0",
    "orthogonal": "a (semi-)orthogonal matrix, gain 1; biases 0",
}


def initialize(linears: list[nn.Linear], name: str) -> None:
    """Re-initialize ``linears`` in order (input side first). ``default`` leaves them as built."""
    if name == "default":
        return
    weight_init = _WEIGHT_INITS[name]
    for layer in linears:
        weight_init(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
