"""The validated ``[model]`` and ``[train]`` tables of a suite (``[task]`` lives in tasks.py)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench.errors import unknown_name
from bench.plugins import canonical, split_table
from bench.training.activations import check as check_activation
from bench.training.activations import resolve
from bench.training.inits import check as check_init
from bench.training.inits import resolve as resolve_init
from bench.training.optimizers import OPTIMIZERS


def runs_user_code(info) -> bool:
    """Whether validation may import and call user code: yes unless the caller validates with
    ``context={"user_code": False}`` (a suite that is only read, ``--dry-run``)."""
    context = getattr(info, "context", None)
    return not isinstance(context, dict) or context.get("user_code", True) is not False


class _Strict(BaseModel):
    # strict: a string is not a number and a float is not an int; TOML ints still pass as floats.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# The model families (``[model] kind``) and the keys each one takes besides the shared
# activation and init keys: a key of another family is an error, not silently ignored.
FAMILY_KEYS: dict[str, tuple[str, ...]] = {
    "mlp": ("hidden", "residual"),
    "cnn1d": ("in_channels", "channels", "kernel", "stride", "padding"),
}
SHARED_KEYS = ("kind", "activation", "init", "negative_slope")


def _family_key(value: object, info, key: str) -> str | None:
    """The kind, when ``key`` applies to it; raises when the key was given for a kind it does
    not apply to. None: the kind itself failed validation (that error is reported)."""
    kind = info.data.get("kind")
    if kind is None:
        return None
    if key not in FAMILY_KEYS[kind] and value is not None:
        keys = ", ".join(sorted((*SHARED_KEYS, *FAMILY_KEYS[kind])))
        raise ValueError(f"{key} does not apply to kind = {kind!r}; the keys of {kind!r} are: "
                         f"{keys}")
    return kind if key in FAMILY_KEYS[kind] else None


def _required(kind: str, key: str) -> ValueError:
    keys = ", ".join(sorted((*SHARED_KEYS, *FAMILY_KEYS[kind])))
    return ValueError(f"required key for kind = {kind!r} is missing (the keys of {kind!r} "
                      f"are: {keys})")


def _per_layer(value: object, info, key: str, default: int | None, least: int):
    """A cnn1d per-layer key: one int for every layer or one per layer, as a tuple as long as
    ``channels``; ``default`` when not given (None: required)."""
    kind = _family_key(value, info, key)
    if kind is None:
        return value
    if value is None:
        if default is None:
            raise _required(kind, key)
        value = default
    channels = info.data.get("channels")
    if isinstance(value, int) and not isinstance(value, bool):
        # (when channels failed validation, that one error is reported, not one more per key)
        value = (value,) * (len(channels) if channels is not None else 1)
    values = _int_list(value, f"an int or a list of ints, one per conv layer, e.g. {key} = 3 or "
                              f"{key} = [5, 3, 3]")
    if any(v < least for v in values):
        raise ValueError(f"{list(values)!r}: every {key} must be at least {least}")
    if channels is not None and len(values) != len(channels):
        raise ValueError(f"{list(values)!r} has {len(values)} values for {len(channels)} conv "
                         f"layers (channels = {list(channels)!r}): give one per layer, or one "
                         "int for all")
    return values


def _int_list(value: object, what: str = "a list of layer widths, e.g. [100] or [64, 64]"
              ) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ValueError(f"{value!r} is not {what}")


def residual_layers(hidden: tuple[int, ...]) -> tuple[int, ...]:
    """The hidden layers (0 = nearest the input) that ``residual = true`` gives a skip: each
    whose width equals the previous hidden layer's."""
    return tuple(i for i in range(1, len(hidden)) if hidden[i] == hidden[i - 1])


class ModelConfig(_Strict):
    """The network: ``kind = "mlp"`` (the default) or ``"cnn1d"``, with the keys of its family.

    - ``mlp``: input -> [Linear -> activation] per ``hidden`` width -> Linear. With
      ``residual = true``, every hidden layer whose width equals the previous hidden layer's
      adds its input back: h_i = h_(i-1) + act(Linear_i(h_(i-1))). The first hidden layer (from
      the input) and the head never do, whatever the widths.
    - ``cnn1d``: the flat input (samples, features) viewed as (samples, in_channels,
      features / in_channels) -> [Conv1d(channels[i], kernel[i], stride[i], padding[i]) ->
      activation] per layer -> flatten (channel-major) -> Linear. The MNIST-1D reference CNN is
      channels = [25, 25, 25], kernel = [5, 3, 3], stride = 2, padding = 1 (lengths 40 -> 19 ->
      10 -> 5, a Linear(125, 10) head).

    Keys of one family are left unset (None) in the other; ``residual`` is False for an mlp that
    does not set it, ``in_channels`` 1, ``stride`` 1 and ``padding`` 0 (PyTorch's defaults) for a
    cnn1d that does not, and ``kernel`` is required. A per-layer key given as one int holds for
    every layer and is stored as the list.
    """

    kind: Literal["mlp", "cnn1d"] = Field("mlp", description="the model family: mlp | cnn1d")
    hidden: tuple[int, ...] | None = Field(None, validate_default=True,
                                           description="mlp: hidden widths; [] is one Linear layer")
    residual: bool | None = Field(None, validate_default=True,
                                  description="mlp: h + act(Linear(h)) between consecutive hidden "
                                  "layers of equal width (default false)")
    in_channels: int | None = Field(None, validate_default=True,
                                    description="cnn1d: channels the flat input is viewed as "
                                    "(default 1)")
    channels: tuple[int, ...] | None = Field(None, validate_default=True,
                                             description="cnn1d: output channels per conv layer")
    kernel: tuple[int, ...] | None = Field(None, validate_default=True,
                                           description="cnn1d: kernel size, one int or one per "
                                           "layer")
    stride: tuple[int, ...] | None = Field(None, validate_default=True,
                                           description="cnn1d: stride, one int or one per layer "
                                           "(default 1)")
    padding: tuple[int, ...] | None = Field(None, validate_default=True,
                                            description="cnn1d: zero padding each side, one int or "
                                            "one per layer (default 0)")
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
    def _hidden(cls, value: object, info) -> tuple[int, ...] | None:
        kind = _family_key(value, info, "hidden")
        if kind is None:
            return value
        if value is None:
            raise _required(kind, "hidden")
        widths = _int_list(value)
        if any(w < 1 for w in widths):
            raise ValueError(f"{list(widths)!r}: every width must be at least 1")
        return widths

    @field_validator("residual", mode="before")
    @classmethod
    def _residual(cls, value: object, info) -> bool | None:
        if _family_key(value, info, "residual") is None or value is None:
            return False if info.data.get("kind") == "mlp" else value
        hidden = info.data.get("hidden")
        if value is True and hidden is not None and not residual_layers(hidden):
            raise ValueError(f"residual = true needs two consecutive hidden layers of equal "
                             f"width, and hidden = {list(hidden)!r} has none: a skip adds a "
                             "layer's input to its output, so both must be as wide")
        return value

    @field_validator("in_channels", mode="before")
    @classmethod
    def _in_channels(cls, value: object, info) -> int | None:
        if _family_key(value, info, "in_channels") is None:
            return value
        value = 1 if value is None else value
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError(f"{value!r}: in_channels must be at least 1")
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, value: object, info) -> tuple[int, ...] | None:
        kind = _family_key(value, info, "channels")
        if kind is None:
            return value
        if value is None:
            raise _required(kind, "channels")
        widths = _int_list(value, "a list of channels, one per conv layer, e.g. [25, 25, 25]")
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"{list(widths)!r}: give one or more conv layers, each of at least "
                             "1 channel")
        return widths

    @field_validator("kernel", mode="before")
    @classmethod
    def _kernel(cls, value: object, info) -> tuple[int, ...] | None:
        return _per_layer(value, info, "kernel", None, 1)

    @field_validator("stride", mode="before")
    @classmethod
    def _stride(cls, value: object, info) -> tuple[int, ...] | None:
        return _per_layer(value, info, "stride", 1, 1)

    @field_validator("padding", mode="before")
    @classmethod
    def _padding(cls, value: object, info) -> tuple[int, ...] | None:
        return _per_layer(value, info, "padding", 0, 0)

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


# An upper bound on epochs: 100 million passes is years for the smallest task here, so a larger
# value is a typo (10**9), not a plan; it would hang the run with no end in sight.
MAX_EPOCHS = 100_000_000


class TrainConfig(_Strict):
    optimizer: str = Field(description="sgd | adam | adamw")
    lr: float = Field(gt=0, description="learning rate before lr_scaling")
    epochs: int = Field(ge=0, le=MAX_EPOCHS,
                        description="passes over the training set; 0 = record the init only")
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
