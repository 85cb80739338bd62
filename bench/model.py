"""The MLP under test: input -> [Linear -> activation] * depth -> Linear."""

from __future__ import annotations

from torch import nn

from .activations import resolve
from .config import ModelConfig
from .inits import initialize


class MLP(nn.Sequential):
    """``nn.Sequential`` that also keeps its hidden layers apart for the probes.

    Layers are built in forward order (Linear(2,100) before Linear(100,3)), as the course
    notebook does, so that with PyTorch's default init the same seed gives the same weights.
    """

    def __init__(self, cfg: ModelConfig, in_features: int, out_features: int):
        widths = [in_features, *cfg.hidden]
        act = resolve(cfg.activation, cfg.activation_args)
        layers: list[nn.Module] = []
        self_linears: list[nn.Linear] = []
        activations: list[nn.Module] = []
        for fan_in, fan_out in zip(widths, widths[1:]):
            linear = nn.Linear(fan_in, fan_out)
            module = act.build(negative_slope=cfg.negative_slope)
            layers += [linear, module]
            self_linears.append(linear)
            activations.append(module)
        head = nn.Linear(widths[-1], out_features)
        super().__init__(*layers, head)
        # Plain lists, not ModuleLists: the modules are registered once, by Sequential.
        self.hidden_linears: list[nn.Linear] = self_linears
        self.hidden_activations: list[nn.Module] = activations
        initialize([*self_linears, head], cfg.init, cfg.init_args)
