"""The validated ``[model]`` and ``[train]`` tables of a suite (``[task]`` lives in tasks.py)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .activations import check as check_activation
from .activations import resolve
from .errors import unknown_name
from .inits import check as check_init
from .inits import resolve as resolve_init
from .optimizers import OPTIMIZERS
from .plugins import canonical, split_table


def runs_user_code(info) -> bool:
    """Whether validation may import and call user code: yes unless the caller validates with
    ``context={"user_code": False}`` (a suite that is only read, ``--dry-run``)."""
    context = getattr(info, "context", None)
    return not isinstance(context, dict) or context.get("user_code", True) is not False


class _Strict(BaseModel):
    # strict: a string is not a number and a float is not an int; TOML ints still pass as floats.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _int_list(value: object) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ValueError(f"{value!r} is not a list of layer widths, e.g. [100] or [64, 64]")


class ModelConfig(_Strict):
    hidden: tuple[int, ...] = Field(description="hidden widths; [] is one Linear layer")
    activation: str = Field(description="activation between hidden layers: a name, or an "
                            "import path 'package.module:name'")
    activation_args: str = Field("", validate_default=True,
                                 description="keyword arguments of a user activation, as JSON "
                                 "(from activation = { fn = ..., key = value })")
    init: str = Field("default", description="weight initialization: a name, or an import "
                      "path 'package.module:name' to f(weight, layer, **kwargs)")
    init_args: str = Field("", validate_default=True,
                           description="keyword arguments of a user init, as JSON "
                           "(from init = { fn = ..., key = value })")
    negative_slope: float = Field(0.01, ge=0, description="leaky_relu's slope for x < 0")

    @model_validator(mode="before")
    @classmethod
    def _fn_tables(cls, data: Any) -> Any:
        """``activation = { fn = "pkg.mod:Swish", beta = 1.5 }`` (and the same for ``init``):
        the function and its keyword arguments, kept as canonical JSON so that the config
        stays flat and hashable."""
        if isinstance(data, dict):
            for key in ("activation", "init"):
                fn, args = split_table(data.get(key), key)
                if args is not None:
                    data = {**data, key: fn, f"{key}_args": args}
        return data

    @field_validator("hidden", mode="before")
    @classmethod
    def _hidden(cls, value: object) -> tuple[int, ...]:
        widths = _int_list(value)
        if any(w < 1 for w in widths):
            raise ValueError(f"{list(widths)!r}: every width must be at least 1")
        return widths

    @field_validator("activation_args")
    @classmethod
    def _activation(cls, value: str, info) -> str:
        # Checked here, once both are known: the import, the type, and the output's shape
        # (or, validated with context={"user_code": False}, only the name: runs_user_code).
        value = canonical(value)
        name = info.data.get("activation")
        if name is not None:  # its ValueError names the activation and what is wrong
            if runs_user_code(info):
                resolve(name, value)
            else:  # the name and the import path's spelling only: nothing imported or called
                check_activation(name, value)
        return value

    @field_validator("init_args")
    @classmethod
    def _init(cls, value: str, info) -> str:
        value = canonical(value)
        name = info.data.get("init")
        if name is not None:  # its ValueError names the init and what is wrong
            if runs_user_code(info):
                resolve_init(name, value)
            else:
                check_init(name, value)
        return value


class Target(_Strict):
    metric: Literal["loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]
    value: float


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class TrainConfig(_Strict):
    optimizer: str = Field(description="sgd | adam | adamw")
    lr: float = Field(gt=0, description="learning rate before lr_scaling")
    epochs: int = Field(ge=0, description="passes over the training set; 0 = record the init only")
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd only")
    weight_decay: float = Field(0.0, ge=0, description="as PyTorch defines it per optimizer")
    batch_size: int | Literal["full"] = Field("full", description="samples per micro-batch")
    accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimizer step (k)")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field("none", description="lr times k or sqrt(k)")
    device: str = Field("cpu", description="cpu | cuda | cuda:N")
    log_every: int = Field(10, ge=1, description="epochs between recorded points")
    target: Target | None = Field(None, description="records epochs_to_target")

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value: str) -> str:
        if value not in OPTIMIZERS:
            raise ValueError(unknown_name("optimizer", value, OPTIMIZERS))
        return value

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{value!r}: batch_size must be at least 1 or \"full\"")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"{value!r} is not a device; valid choices: cpu, cuda, cuda:N")
        return value

    @model_validator(mode="after")
    def _momentum_is_sgd_only(self) -> TrainConfig:
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum = {self.momentum!r} applies to sgd only, "
                             f"not to {self.optimizer!r}")
        return self

    @property
    def lr_effective(self) -> float:
        """The learning rate the optimizer gets: lr scaled by k = accumulation_steps."""
        k = self.accumulation_steps
        return self.lr * {"none": 1.0, "linear": float(k), "sqrt": k ** 0.5}[self.lr_scaling]
