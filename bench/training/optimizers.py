"""Optimizers by name. weight_decay means what PyTorch says it means for each (L2 for sgd and
adam, decoupled for adamw)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

OPTIMIZERS: dict[str, str] = {
    "sgd": "torch.optim.SGD (train.momentum, L2 weight_decay)",
    "adam": "torch.optim.Adam (L2 weight_decay)",
    "adamw": "torch.optim.AdamW (decoupled weight_decay)",
}


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], *, lr: float,
                    weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise KeyError(name)
