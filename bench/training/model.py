"""The models under test, one per ``[model] kind`` (config.ModelConfig says what each key means):

- ``mlp``: input -> [Linear -> activation] * depth -> Linear, optionally with residual skips;
- ``cnn1d``: flat input viewed as (channels, length) -> [Conv1d -> activation] * depth ->
  flatten -> Linear.

``build_model`` is the one way to make one. Every model keeps the layers the probes read apart:
``hidden_layers`` (the Linear or Conv1d layers whose outputs are probed, input side first),
``hidden_activations`` (the activation module after each), and ``unit``, what a unit of a
hidden layer is: a ``"neuron"`` (an MLP's) or a ``"channel"`` (a conv layer's, over all its
positions). ``hidden_linears`` is the older name of ``hidden_layers``.

Layers are built in forward order (Linear(2,100) before Linear(100,3); conv1 before conv2 before
the head), as the course notebook and the MNIST-1D reference models do, so that with PyTorch's
default init the same seed gives the same weights as the hand-written model.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.training.activations import resolve
from bench.training.config import ModelConfig, residual_layers
from bench.training.inits import initialize


def _activation_modules(cfg: ModelConfig, n: int) -> list[nn.Module]:
    act = resolve(cfg.activation, cfg.activation_args)
    return [act.build(negative_slope=cfg.negative_slope) for _ in range(n)]


def hidden_forward(x: torch.Tensor, layers, activations, skips, head) -> torch.Tensor:
    """An MLP's forward pass with residual skips: layer i in ``skips`` adds its input to its
    activation's output. Shared by MLP and its packed form (a skip is elementwise)."""
    for i, (layer, act) in enumerate(zip(layers, activations)):
        y = act(layer(x))
        x = x + y if i in skips else y
    return head(x)


class MLP(nn.Sequential):
    """``nn.Sequential`` that also keeps its hidden layers apart for the probes.

    With ``residual = true``, hidden layer i (i >= 1) whose width equals hidden layer i-1's
    computes h_i = h_(i-1) + act(Linear_i(h_(i-1))); the probes read act(Linear_i(h_(i-1))),
    the layer's own units. The modules (and state-dict keys) are the plain MLP's either way.
    """

    kind = "mlp"
    unit = "neuron"

    def __init__(self, cfg: ModelConfig, in_features: int, out_features: int):
        hidden = tuple(cfg.hidden or ())
        widths = [in_features, *hidden]
        activations = _activation_modules(cfg, len(hidden))
        layers: list[nn.Module] = []
        linears: list[nn.Linear] = []
        for (fan_in, fan_out), module in zip(zip(widths, widths[1:]), activations):
            linear = nn.Linear(fan_in, fan_out)
            layers += [linear, module]
            linears.append(linear)
        head = nn.Linear(widths[-1], out_features)
        super().__init__(*layers, head)
        # Plain lists, not ModuleLists: the modules are registered once, by Sequential.
        self.hidden_layers: list[nn.Linear] = linears
        self.hidden_linears = self.hidden_layers
        self.hidden_activations: list[nn.Module] = activations
        self.skips: frozenset[int] = frozenset(residual_layers(hidden) if cfg.residual else ())
        initialize([*linears, head], cfg.init, cfg.init_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.skips:
            return super().forward(x)
        return hidden_forward(x, self.hidden_layers, self.hidden_activations, self.skips, self[-1])


def conv_lengths(cfg: ModelConfig, in_features: int) -> list[int]:
    """A cnn1d's sequence length at its input and after each conv layer (PyTorch's rule,
    floor((L + 2 padding - kernel) / stride) + 1). Raises ValueError when the input does not
    split into ``in_channels`` or a layer would have no positions left."""
    c = cfg.in_channels or 1
    if in_features % c:
        raise ValueError(f"cnn1d: {in_features} input features do not split into in_channels = "
                         f"{c} channels of equal length")
    lengths = [in_features // c]
    for i, (k, s, p) in enumerate(zip(cfg.kernel, cfg.stride, cfg.padding)):
        out = (lengths[-1] + 2 * p - k) // s + 1
        if out < 1:
            raise ValueError(f"cnn1d: conv layer {i} (kernel {k}, stride {s}, padding {p}) gets "
                             f"length {lengths[-1]} and leaves no positions: use a smaller "
                             "kernel, stride or fewer layers, or more padding")
        lengths.append(out)
    return lengths


class CNN1d(nn.Sequential):
    """``[Conv1d -> activation] * depth -> Flatten -> Linear`` on flat inputs (samples,
    features), viewed as (samples, in_channels, features / in_channels).

    The MNIST-1D reference CNN is channels = [25, 25, 25], kernel = [5, 3, 3], stride = 2,
    padding = 1: lengths 40 -> 19 -> 10 -> 5 and a Linear(25 * 5, 10) head. The head reads the
    last conv layer's output flattened channel-major (channel 0's positions first), as
    ``h.view(n, -1)`` does.
    """

    kind = "cnn1d"
    unit = "channel"

    def __init__(self, cfg: ModelConfig, in_features: int, out_features: int):
        lengths = conv_lengths(cfg, in_features)
        channels = [cfg.in_channels or 1, *cfg.channels]
        activations = _activation_modules(cfg, len(cfg.channels))
        layers: list[nn.Module] = []
        convs: list[nn.Conv1d] = []
        for i, module in enumerate(activations):
            conv = nn.Conv1d(channels[i], channels[i + 1], cfg.kernel[i], stride=cfg.stride[i],
                             padding=cfg.padding[i])
            layers += [conv, module]
            convs.append(conv)
        head = nn.Linear(channels[-1] * lengths[-1], out_features)
        super().__init__(*layers, nn.Flatten(1), head)
        self.in_channels = channels[0]
        self.hidden_layers: list[nn.Conv1d] = convs
        self.hidden_linears = self.hidden_layers
        self.hidden_activations: list[nn.Module] = activations
        self.skips: frozenset[int] = frozenset()
        initialize([*convs, head], cfg.init, cfg.init_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(x.shape[0], self.in_channels, -1))


MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn1d": CNN1d}


def build_model(cfg: ModelConfig, in_features: int, out_features: int) -> nn.Module:
    """The model ``cfg`` describes, for ``in_features`` inputs and ``out_features`` outputs,
    initialized (seed torch first for a reproducible init)."""
    return MODELS[cfg.kind](cfg, in_features, out_features)


def layer_costs(cfg: ModelConfig, in_features: int, out_features: int) -> list[tuple[int, int]]:
    """Per layer (hidden layers, then the head): (output values, multiply-adds) per sample,
    without building the model."""
    if cfg.kind == "cnn1d":
        lengths = conv_lengths(cfg, in_features)
        channels = [cfg.in_channels or 1, *cfg.channels]
        costs = [(channels[i + 1] * lengths[i + 1],
                  channels[i + 1] * channels[i] * cfg.kernel[i] * lengths[i + 1])
                 for i in range(len(cfg.channels))]
        flat = channels[-1] * lengths[-1]
        return [*costs, (out_features, flat * out_features)]
    widths = [in_features, *(cfg.hidden or ()), out_features]
    return [(b, a * b) for a, b in zip(widths, widths[1:])]
