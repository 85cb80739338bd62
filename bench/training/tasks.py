"""The data sets: each task is a config (its ``[task]`` keys) and a function that draws the data.

Data is drawn on the CPU from the global torch RNG, which the trial has just seeded, so that the
course notebook's order (data first, then the model) reproduces its numbers exactly. MNIST-1D is
a fixed benchmark instead: its data is the ``mnist1d`` package's data set for ``[task] seed``
(default 42, the package's), whatever the trial's seed, which draws only the model's init and the
batch order.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bench.plugins import import_object, plain_value_problem, python_and_numpy_seeded, resolver, user_path
from bench.training.state import rng_kept, seed_torch


@dataclass(frozen=True)
class TaskData:
    """Tensors on the CPU; ``x_test`` (``x_val``) is None for tasks without a test
    (validation) split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    kind: Literal["classification", "regression"]
    out_features: int
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None


class _TaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    problem: ClassVar[str] = "classification"

    @property
    def samples(self) -> int:
        """Samples the task draws before any split."""
        raise NotImplementedError

    @property
    def has_test_split(self) -> bool:
        return round(self.test_fraction * self.samples) > 0

    @property
    def has_val_split(self) -> bool:
        return round(self.val_fraction * self.samples) > 0

    @model_validator(mode="after")
    def _leaves_training_data(self):
        n_held = round(self.test_fraction * self.samples) + round(self.val_fraction * self.samples)
        if n_held >= self.samples:
            raise ValueError(f"test_fraction = {self.test_fraction!r} and val_fraction = "
                             f"{self.val_fraction!r} hold out all {self.samples} samples: leave "
                             "some to train on")
        return self


def _test_fraction(default: float):
    return Field(default, ge=0, lt=1,
                 description="held-out test share, drawn with the data's seed (0: no test split)")


def _val_fraction():
    return Field(0.0, ge=0, lt=1, description="held-out validation share, for tuning (0: none)")


def _data_seed():
    return Field(None, description="draw the data (and its splits) from this seed instead of "
                 "the trial's, so every seed trains on one draw (none: the trial's seed)")


class SpiralConfig(_TaskConfig):
    """The course's spiral (NYU-DLSP20 04-spiral_classification)."""

    kind: Literal["spiral"] = "spiral"
    classes: int = Field(3, ge=2, description="number of arms (C)")
    points_per_class: int = Field(1000, ge=2, description="points per arm (N)")
    noise: float = Field(0.2, ge=0, description="std of the Gaussian noise on the angle")
    test_fraction: float = _test_fraction(0.0)
    val_fraction: float = _val_fraction()
    seed: int | None = _data_seed()

    @property
    def samples(self) -> int:
        return self.classes * self.points_per_class


class CubicConfig(_TaskConfig):
    """The course's regression (05-regression): y = x^3 + noise * U[0, 1)."""

    problem: ClassVar[str] = "regression"
    kind: Literal["cubic"] = "cubic"
    points: int = Field(100, ge=2, description="evenly spaced x on [-1, 1]")
    noise: float = Field(0.3, ge=0, description="scale of the uniform [0, 1) noise added to y")
    test_fraction: float = _test_fraction(0.0)
    val_fraction: float = _val_fraction()
    seed: int | None = _data_seed()

    @property
    def samples(self) -> int:
        return self.points


_DIGITS_SAMPLES = 1797  # sklearn.datasets.load_digits


class DigitsConfig(_TaskConfig):
    """scikit-learn's bundled 8x8 digits (1797 images), standardized with train statistics."""

    kind: Literal["digits"] = "digits"
    test_fraction: float = _test_fraction(0.2)
    val_fraction: float = _val_fraction()
    seed: int | None = _data_seed()

    @property
    def samples(self) -> int:
        return _DIGITS_SAMPLES


# The generator arguments of mnist1d.data.get_dataset_args() (mnist1d 0.0.2), with its defaults;
# its 'url' is left out: it is for the package's download helper, which actbench never calls.
_MNIST1D_ARGS = ("num_samples", "train_split", "template_len", "padding", "scale_coeff",
                 "max_translation", "corr_noise_scale", "iid_noise_scale", "shear_scale",
                 "shuffle_seq", "final_seq_length", "seed")
_MNIST1D_CLASSES = 10  # the package's ten digit templates


class Mnist1dConfig(_TaskConfig):
    """MNIST-1D (Greydanus & Kobak), generated locally by the mnist1d package: 10 classes.

    Each key is an argument of ``mnist1d.data.get_dataset_args()`` with the package's default,
    so the defaults give the paper's data set: 4000 training and 1000 test signals of length
    ``final_seq_length`` (40), inputs (samples, 40) that a cnn1d reads as one channel of length
    40. The data is the package's data set for ``seed``, the same for every trial seed (which
    draws only the model's init and the batch order). The test split is the package's own test
    set (the last ``1 - train_split`` of its samples); ``val_fraction`` holds out a share of its
    training set, drawn with ``seed``. The data set is generated once per process for each set
    of generator keys.
    """

    kind: Literal["mnist1d"] = "mnist1d"
    num_samples: int = Field(5000, ge=10, description="signals generated, before the package's "
                             "train/test split (num_samples // 10 per class)")
    train_split: float = Field(0.8, gt=0, lt=1, description="the package's training share; the "
                               "rest is the test split (use it, not test_fraction)")
    template_len: int = Field(12, ge=1, description="dilation: a padded template is resampled "
                              "to template_len + padding's high points")
    padding: tuple[int, int] = Field([36, 60], validate_default=True,
                                     description="[low, high]: zeros appended to a template, a "
                                     "random count in low..high")
    scale_coeff: float = Field(0.4, ge=0, description="random scaling: x * (1 + scale_coeff * "
                               "(U[0, 1) - 0.5))")
    max_translation: int = Field(48, ge=1, description="random circular shift, 0 to "
                                 "max_translation - 1 positions")
    corr_noise_scale: float = Field(0.25, ge=0, description="std of the correlated (Gaussian-"
                                    "filtered) noise in the padding")
    iid_noise_scale: float = Field(2e-2, ge=0, description="std of the i.i.d. Gaussian noise on "
                                   "every position")
    shear_scale: float = Field(0.75, ge=0, description="random shear: a linear ramp of slope "
                               "up to shear_scale / 2")
    shuffle_seq: bool = Field(False, description="permute the positions with one fixed random "
                              "permutation (the same for every signal)")
    final_seq_length: int = Field(40, ge=1, description="signal length: the input features")
    val_fraction: float = Field(0.0, ge=0, lt=1, description="held-out validation share of the "
                                "package's training set, for tuning (0: none)")
    seed: int = Field(42, ge=0, lt=2**32, description="the package's seed: it fixes the data "
                      "set (and the validation split), the same for every trial seed")

    @model_validator(mode="before")
    @classmethod
    def _no_test_fraction(cls, data: Any) -> Any:
        # A pointed message (with the key) rather than pydantic's "unknown key".
        if isinstance(data, dict) and "test_fraction" in data:
            message = ("mnist1d's test split is the package's own test set: set train_split "
                       "(the training share, default 0.8) instead of test_fraction")
            raise ValidationError.from_exception_data(cls.__name__, [InitErrorDetails(
                type=PydanticCustomError("test_fraction", message), loc=("test_fraction",),
                input=data["test_fraction"])])
        return data

    @field_validator("padding", mode="before")
    @classmethod
    def _padding(cls, value: object) -> tuple[int, int]:
        if (isinstance(value, (list, tuple)) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                and 0 <= value[0] <= value[1]):
            return tuple(value)
        raise ValueError("padding is [low, high]: two ints with 0 <= low <= high, e.g. [36, 60]")

    @property
    def samples(self) -> int:
        return _MNIST1D_CLASSES * (self.num_samples // _MNIST1D_CLASSES)

    @property
    def n_train(self) -> int:
        """The package's training samples (its split: ``int(samples * train_split)``)."""
        return int(self.samples * self.train_split)

    @property
    def n_val(self) -> int:
        return round(self.val_fraction * self.n_train)

    @property
    def has_test_split(self) -> bool:
        return self.samples - self.n_train > 0

    @property
    def has_val_split(self) -> bool:
        return self.n_val > 0

    @model_validator(mode="after")
    def _leaves_training_data(self):
        if self.n_train == 0 or self.n_train == self.samples:
            raise ValueError(f"train_split = {self.train_split!r} of {self.samples} samples "
                             f"leaves {'no training' if self.n_train == 0 else 'no test'} "
                             "samples: the package's split needs both")
        if self.n_val >= self.n_train:
            raise ValueError(f"val_fraction = {self.val_fraction!r} holds out all "
                             f"{self.n_train} training samples: leave some to train on")
        return self

    def generator_args(self) -> tuple[tuple[str, Any], ...]:
        """The package's arguments, as a hashable key (the cache's)."""
        return tuple((name, getattr(self, name)) for name in _MNIST1D_ARGS)


def spiral(cfg: SpiralConfig) -> TaskData:
    n, c_total = cfg.points_per_class, cfg.classes
    xs, ys = [], []
    for c in range(c_total):
        t = torch.linspace(0, 1, n)
        angle = torch.linspace(2 * math.pi * c / c_total, 2 * math.pi * (2 + c) / c_total, n)
        angle = angle + torch.randn(n) * cfg.noise
        # The notebook takes math.sin of each float32 angle (in double) and stores float32.
        a = angle.double()
        xs.append(t[:, None] * torch.stack([torch.sin(a), torch.cos(a)], 1).float())
        ys.append(torch.full((n,), c, dtype=torch.long))
    return _split(torch.cat(xs), torch.cat(ys), cfg, "classification", c_total)


def cubic(cfg: CubicConfig) -> TaskData:
    x = torch.linspace(-1, 1, cfg.points)
    y = x.pow(3) + cfg.noise * torch.rand(cfg.points)
    return _split(x[:, None], y[:, None], cfg, "regression", 1)


def _split_indices(n: int, test_fraction: float, val_fraction: float):
    """(train, val, test) sample indices: one permutation from the seeded RNG, the first
    ``round(test_fraction * n)`` for test, the next ``round(val_fraction * n)`` for
    validation, the rest to train on. The test split is the one it always was whatever the
    validation share. None when nothing is held out (and then nothing is drawn)."""
    n_test, n_val = round(test_fraction * n), round(val_fraction * n)
    if n_test == 0 and n_val == 0:
        return None
    order = torch.randperm(n)
    return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]


def _split(x: torch.Tensor, y: torch.Tensor, cfg, kind, out_features: int) -> TaskData:
    """Hold out the test and validation samples, drawn from the seeded RNG after the data.
    Without a split nothing is drawn, so the model's init is what it always was; each split
    keeps the samples' order."""
    split = _split_indices(len(x), cfg.test_fraction, cfg.val_fraction)
    if split is None:
        return TaskData(x, y, None, None, kind, out_features)
    train, val, test = (i.sort().values for i in split)
    return _task_data(x, y, train, val, test, kind, out_features)


def _task_data(x, y, train, val, test, kind, out_features: int) -> TaskData:
    def part(index):
        return (x[index], y[index]) if len(index) else (None, None)

    (x_val, y_val), (x_test, y_test) = part(val), part(test)
    return TaskData(x[train], y[train], x_test, y_test, kind, out_features, x_val, y_val)


def digits(cfg: DigitsConfig) -> TaskData:
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.long)
    # The permutation is drawn even without a split (the digits' order is by class).
    order = torch.randperm(len(x))
    n_test, n_val = round(cfg.test_fraction * len(x)), round(cfg.val_fraction * len(x))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0  # pixels that are always blank stay 0 rather than NaN
    x = (x - mean) / std
    return _task_data(x, y, train, val, test, "classification", 10)


@functools.lru_cache(maxsize=8)
def _mnist1d_data(args: tuple[tuple[str, Any], ...]) -> tuple[torch.Tensor, ...]:
    """The package's data set for these generator arguments, made once per process: (x, y,
    x_test, y_test). Callers copy what they hand out, so no trial can change it."""
    from mnist1d.data import get_dataset_args, make_dataset  # only the generator: no download

    gen = get_dataset_args()
    for name, value in args:
        setattr(gen, name, list(value) if name == "padding" else value)
    # make_dataset seeds Python's and numpy's global RNGs; restore them after
    with python_and_numpy_seeded(gen.seed):
        data = make_dataset(gen)
    return (torch.tensor(data["x"], dtype=torch.float32), torch.tensor(data["y"], dtype=torch.long),
            torch.tensor(data["x_test"], dtype=torch.float32),
            torch.tensor(data["y_test"], dtype=torch.long))


def mnist1d(cfg: Mnist1dConfig) -> TaskData:
    x, y, x_test, y_test = _mnist1d_data(cfg.generator_args())
    if cfg.n_val == 0:
        return TaskData(x.clone(), y.clone(), x_test.clone(), y_test.clone(), "classification",
                        _MNIST1D_CLASSES)
    # The validation split from its own generator seeded with ``seed``: the same held-out
    # samples for every trial, and the global RNG (the model's init) untouched.
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed))
    val, train = order[:cfg.n_val].sort().values, order[cfg.n_val:].sort().values
    return TaskData(x[train], y[train], x_test.clone(), y_test.clone(), "classification",
                    _MNIST1D_CLASSES, x[val], y[val])


TASKS = {
    "spiral": (SpiralConfig, spiral),
    "cubic": (CubicConfig, cubic),
    "digits": (DigitsConfig, digits),
    "mnist1d": (Mnist1dConfig, mnist1d),
}


# -- user tasks ---------------------------------------------------------------------------------

_KINDS = ("classification", "regression")


class UserTaskConfig(BaseModel):
    """A user's task: ``kind`` is an import path (or a name registered under
    ``actbench.tasks``) to a function; the other keys of ``[task]`` are its keyword arguments.
    They are kept as they are, so each is a ``task.<key>`` column and can be swept."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    kind: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def check_arguments(self) -> None:
        """The checks of the arguments that need neither the function nor its module: each is
        a plain value (a column), and none is ``seed``. Raises ArgumentError naming the key."""
        for key, value in self.kwargs.items():
            problem = plain_value_problem(value)
            if problem:
                raise ArgumentError(key, f"{value!r}: {problem} (an argument of {self.kind!r})")
        if "seed" in self.kwargs:
            raise ArgumentError("seed", f"the trial's seed is passed to {self.kind!r}; set the "
                                "suite's seeds = [...] instead")

    @property
    def resolved(self) -> UserTask:
        for key, value in self.kwargs.items():
            problem = plain_value_problem(value)
            if problem:
                raise ArgumentError(key, f"{value!r}: {problem} (an argument of {self.kind!r})")
        return resolve_task(self.kind, task_arguments(self))

    @property
    def problem(self) -> str:
        return self.resolved.problem

    @property
    def has_test_split(self) -> bool:
        return self.resolved.has_test_split

    @property
    def has_val_split(self) -> bool:
        return self.resolved.has_val_split


class UncheckedUserTaskConfig(UserTaskConfig):
    """A user task as a suite read without running user code names it (``--dry-run``): the
    same keys, columns and trial ids, but nothing imported or called. What only the function's
    data could tell is unknown, so the checks that need it take the permissive answer (a
    classification task with both held-out splits: no claim or metric is refused for it), and
    the suite's full check at ``bench run`` decides. It cannot be drawn."""

    checked: ClassVar[bool] = False

    @property
    def resolved(self) -> UserTask:
        raise ValueError(f"{self.kind!r}: this suite was read without importing or running its "
                         "user code (--dry-run); load it with user code to draw the task")

    @property
    def problem(self) -> str:
        return "classification"

    @property
    def has_test_split(self) -> bool:
        return True

    @property
    def has_val_split(self) -> bool:
        return True


class ArgumentError(ValueError):
    """A ``[task]`` key that the user's task function does not take."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class UserTask:
    path: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    takes_seed: bool
    problem: str  # as the check at load found it
    has_test_split: bool
    has_val_split: bool = False

    def draw(self, seed: int | None) -> TaskData:
        """Call the function: with the trial's ``seed`` if it takes one. Python's and numpy's
        global RNGs are seeded from it for the call (and restored after), so a task that draws
        from them is reproducible too; torch's the trial has seeded."""
        extra = {"seed": seed} if self.takes_seed and seed is not None else {}
        with python_and_numpy_seeded(seed):
            try:
                out = self.fn(**self.kwargs, **extra)
            except Exception as exc:
                raise ValueError(f"{self.path!r} with arguments {self.kwargs} failed: "
                                 f"{type(exc).__name__}: {exc}") from None
        return task_data(out, self.path)


@resolver
def resolve_task(kind: str, args: str) -> UserTask:
    """Import a user task and draw it once (seed 0, the global RNG left as it was) to check
    what it returns. Raises ValueError naming the path, or the key, and what was wrong."""
    path = user_path("task", kind, TASKS)
    fn = import_object(path)
    if not callable(fn) or isinstance(fn, type):
        raise ValueError(f"{path!r} is not a function returning the task's tensors")
    kwargs = json.loads(args)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: take it on trust
        params = {}
    takes_seed = "seed" in params
    if "seed" in kwargs:
        raise ArgumentError("seed", f"the trial's seed is passed to {path!r}; set the suite's "
                            "seeds = [...] instead")
    if params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [n for n, p in params.items() if n != "seed"
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in kwargs:
            if key not in valid:
                raise ArgumentError(key, f"{path!r} takes no argument {key!r}; valid keys: "
                                         f"{', '.join(valid) or '(none)'}")
    task = UserTask(path, fn, kwargs, takes_seed, "classification", False, False)
    # A check, not any trial's draw: every RNG it could touch is left as it was (CUDA's too,
    # where this process has started CUDA; torch.manual_seed would reseed it).
    with rng_kept(seed=0, cuda=True):
        data = task.draw(0)
    return UserTask(path, fn, kwargs, takes_seed, data.kind, data.x_test is not None,
                    data.x_val is not None)


_SPLIT_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "kind")


def task_data(out: Any, path: str) -> TaskData:
    """A user task's return value as TaskData: ``(x_train, y_train, x_test, y_test, kind)``,
    ``(x_train, y_train, kind)``, ``(x_train, y_train, x_val, y_val, x_test, y_test, kind)``,
    or a dict with those keys (tensors or arrays). Inputs become
    float32 of shape (n, features); classification targets integer labels 0..C-1 of shape (n,);
    regression targets float32 of shape (n, outputs) ((n,) is taken as one output)."""
    if isinstance(out, TaskData):
        return out
    parts = _returned_parts(out, path)
    kind = parts["kind"]
    xs = _inputs(parts, path)
    ys = {n: _targets(_tensor(parts, n, path), n, kind, xs["x" + n[1:]], path)
          for n in ("y_train", "y_val", "y_test")}
    return TaskData(xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"], kind,
                    _out_features(ys, kind, path), xs["x_val"], ys["y_val"])


def _returned_parts(out: Any, path: str) -> dict[str, Any]:
    """The returned tuple or dict by name, with its kind and its splits' pairs checked."""
    keys = _SPLIT_KEYS
    if isinstance(out, dict):
        unknown = set(out) - set(keys)
        if unknown or not {"x_train", "y_train", "kind"} <= set(out):
            raise ValueError(f"{path!r} returned a dict with keys {sorted(out)}; expected "
                             "x_train, y_train, kind and optionally x_val, y_val, x_test, y_test")
        parts = {k: out.get(k) for k in keys}
    elif isinstance(out, (tuple, list)) and len(out) in (3, 5, 7):
        names = {3: ("x_train", "y_train", "kind"), 5: ("x_train", "y_train", "x_test", "y_test",
                                                       "kind"), 7: keys}[len(out)]
        parts = dict(zip(names, out))
    else:
        raise ValueError(f"{path!r} returned {type(out).__name__}; expected (x_train, y_train, "
                         "x_test, y_test, kind), (x_train, y_train, kind) or (x_train, y_train, "
                         "x_val, y_val, x_test, y_test, kind)")
    kind = parts["kind"]
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"{path!r} returned kind {kind!r}; valid choices: {', '.join(_KINDS)}")
    for split in ("test", "val"):
        if (parts.get(f"x_{split}") is None) != (parts.get(f"y_{split}") is None):
            raise ValueError(f"{path!r} returned only one of x_{split} and y_{split}")
    return parts


def _tensor(parts: dict[str, Any], name: str, path: str) -> torch.Tensor | None:
    value = parts.get(name)
    if value is None:
        return None
    try:
        return torch.as_tensor(value)
    except Exception:
        raise ValueError(f"{path!r}: {name} is a {type(value).__name__}, not a tensor or "
                         "an array") from None


def _inputs(parts: dict[str, Any], path: str) -> dict[str, torch.Tensor | None]:
    """x_train, x_val, x_test as finite float32 (samples, features) on the CPU, alike in width."""
    xs = {}
    for name in ("x_train", "x_val", "x_test"):
        x = _tensor(parts, name, path)
        if x is not None:
            if x.ndim != 2:
                raise ValueError(f"{path!r}: {name} has shape {tuple(x.shape)}; inputs are "
                                 "(samples, features)")
            if x.dtype == torch.bool or x.is_complex():
                raise ValueError(f"{path!r}: {name} is {x.dtype}; inputs are real numbers")
            x = x.to(torch.float32).cpu()
            if not torch.isfinite(x).all():
                raise ValueError(f"{path!r}: {name} holds NaN or infinite values")
        xs[name] = x
    x_train = xs["x_train"]
    for name, x in xs.items():
        if x is not None and len(x) == 0:
            raise ValueError(f"{path!r}: {name} has no samples"
                             + ("; return None for no held-out split" if name != "x_train" else ""))
        if x is not None and x.shape[1] != x_train.shape[1]:
            raise ValueError(f"{path!r}: {name} has {x.shape[1]} features, x_train "
                             f"{x_train.shape[1]}")
    return xs


def _targets(y: torch.Tensor | None, name: str, kind: str, x: torch.Tensor | None,
             path: str) -> torch.Tensor | None:
    """One split's targets: integer labels (samples,) to classify, floats (samples, outputs)
    to regress; as many as its inputs."""
    if y is None:
        return None
    if len(y) != len(x):
        raise ValueError(f"{path!r}: {name} has {len(y)} samples, {'x' + name[1:]} {len(x)}")
    if kind == "classification":
        if y.ndim != 1 or y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
            raise ValueError(f"{path!r}: {name} is {y.dtype} of shape {tuple(y.shape)}; a "
                             "classification task's targets are integer labels, shape "
                             "(samples,)")
        if len(y) and y.min() < 0:
            raise ValueError(f"{path!r}: {name} has a negative label; labels are 0..C-1")
        return y.to(torch.long).cpu()
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or not y.is_floating_point():
        raise ValueError(f"{path!r}: {name} is {y.dtype} of shape {tuple(y.shape)}; a "
                         "regression task's targets are floats, (samples, outputs)")
    return y.to(torch.float32).cpu()


def _out_features(ys: dict[str, torch.Tensor | None], kind: str, path: str) -> int:
    """Classes (the largest label + 1, at least two), or the regression's outputs."""
    if kind == "classification":
        out_features = int(max(y.max() for y in ys.values() if y is not None and len(y))) + 1
        if out_features < 2:
            raise ValueError(f"{path!r}: every label is 0; a classification task needs at "
                             "least two classes")
        return out_features
    out_features = ys["y_train"].shape[1]
    for name, y in ys.items():
        if y is not None and y.shape[1] != out_features:
            raise ValueError(f"{path!r}: {name} has {y.shape[1]} outputs, y_train "
                             f"{out_features}")
    return out_features


TaskConfig = SpiralConfig | CubicConfig | DigitsConfig | Mnist1dConfig | UserTaskConfig


def task_arguments(cfg: TaskConfig) -> str:
    """A user task's arguments as canonical JSON (the trials table's ``task_args``, from which
    a stored trial's data is drawn again with the arguments' exact types); "" for a built-in."""
    return json.dumps(cfg.kwargs, sort_keys=True) if isinstance(cfg, UserTaskConfig) else ""


def task_config_class(kind: str) -> type[BaseModel]:
    """The config class of a ``[task] kind``: a built-in's, or UserTaskConfig."""
    return TASKS[kind][0] if kind in TASKS else UserTaskConfig


def make_task(cfg: TaskConfig, seed: int | None = None) -> TaskData:
    """Draw the task's data. The trial has seeded the global RNG with ``seed``; a user task
    whose function takes a ``seed`` argument also gets it."""
    if isinstance(cfg, UserTaskConfig):
        return cfg.resolved.draw(seed)
    return TASKS[cfg.kind][1](cfg)


def data_seed(cfg: TaskConfig) -> int | None:
    """The ``[task] seed`` the data is drawn from, or None: the trial's own seed."""
    return None if isinstance(cfg, UserTaskConfig) else cfg.seed


def draw_task(cfg: TaskConfig, seed: int, cuda: bool = True) -> TaskData:
    """A trial's data, the way every trial draws it: seed torch's global RNG with the trial's
    ``seed``, then draw the data from it (the course notebook's order: data, then the model's
    init, from one stream). With a ``[task] seed`` the data comes from that seed instead, in a
    fork of the RNG, so the model's init is the trial seed's alone and every seed of an
    ensemble trains on one draw. mnist1d always has one (the package's seed, default 42).
    ``cuda``: the trial runs on a GPU, whose generator is seeded too (``state.seed_torch``)."""
    seed_torch(seed, cuda)
    fixed = data_seed(cfg)
    if fixed is None:
        return make_task(cfg, seed)
    with rng_kept(seed=fixed):
        return make_task(cfg, fixed)
