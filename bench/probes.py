"""Per-layer probes: dead and saturated fractions, activation statistics, backprop gradients.

A probe is attached only for the forward/backward passes that are logged, so unlogged epochs
run the bare model. Statistics are accumulated over micro-batches, so a step split into k
micro-batches reports the same numbers as one full-batch pass.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from .activations import SATURATION_MARGIN, Activation
from .memory import LiveTensorMeter
from .model import MLP


@dataclass
class _Moments:
    """Count, mean and M2 merged across chunks (Chan et al.), so chunking does not change std.

    Each chunk is centred on its own mean before squaring: sum-of-squares minus square-of-sum
    loses all precision in float32 when the mean dwarfs the spread (a saturated sigmoid).
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: torch.Tensor) -> None:
        n_b = x.numel()
        if n_b == 0:
            return
        flat = x.detach().reshape(-1)
        mean_t = flat.mean()
        centred = flat - mean_t
        # torch.std_mean is ~20x slower than this on one CPU thread (2 ms vs 0.1 ms, 3e5 values)
        mean_b, m2_b = float(mean_t), float(torch.dot(centred, centred))
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else math.nan


@dataclass
class _LayerStats:
    activation: Activation
    alive: torch.Tensor | None = None       # per unit: some sample is not "dead"
    unsaturated: torch.Tensor | None = None  # per unit: some sample is away from the bounds
    out: _Moments = field(default_factory=_Moments)
    grad: _Moments = field(default_factory=_Moments)

    def add_output(self, a: torch.Tensor) -> None:
        # Per-unit reductions over samples (amax/amin) are ~10x faster than any() over a mask.
        act = self.activation
        alive = ~act.dead(a)
        self.alive = alive if self.alive is None else self.alive | alive
        if act.bounds is not None:
            lo, hi = act.bounds
            # Saturated: every sample strictly within the margin of a bound (|tanh| > 0.99;
            # sigmoid < 0.01 or > 0.99), i.e. |a - centre| > half-width - margin. A unit is
            # unsaturated when some sample has |a - centre| <= that.
            centre, half = (lo + hi) / 2, (hi - lo) / 2 - SATURATION_MARGIN
            unsat = torch.sub(a, centre).abs_().amin(0) <= half
            self.unsaturated = unsat if self.unsaturated is None else self.unsaturated | unsat
        self.out.add(a)

    @staticmethod
    def _fraction_false(mask: torch.Tensor | None) -> float:
        return math.nan if mask is None else 1.0 - float(mask.float().mean())


class _Buffer:
    """Micro-batch tensors held until they reach ``limit`` values, then reduced in one go.

    The probe's reductions cost ~10-20 ops per tensor; with k small micro-batches that per-op
    overhead, not the arithmetic, dominates a logged step. Holding small chunks and reducing
    their concatenation gives the same numbers (every statistic merges exactly) for a bounded
    amount of memory. ``limit = 0`` reduces each chunk at once (used while memory is metered).
    """

    def __init__(self, limit: int, reduce):
        self.limit, self.reduce = limit, reduce
        self.held: list[torch.Tensor] = []
        self.size = 0

    def add(self, t: torch.Tensor) -> None:
        self.held.append(t.detach())
        self.size += t.numel()
        if self.size >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self.held:
            block = self.held[0] if len(self.held) == 1 else torch.cat(self.held)
            self.held, self.size = [], 0
            self.reduce(block)


class LayerProbe:
    """Attach to an MLP for one logged pass (possibly several micro-batches), then read rows.

    ``metered``: the pass is inside the peak-memory window, so the probe reduces each chunk at
    once (holding outputs would count as the step's memory) and hides its temporaries from
    the meter. Otherwise it buffers up to ``BUFFER_VALUES`` values per layer.
    """

    BUFFER_VALUES = 1 << 20  # 4 MB of float32 per layer and kind

    def __init__(self, model: MLP, activation: Activation, metered: bool = False):
        self.model = model
        self.stats = [_LayerStats(activation) for _ in model.hidden_activations]
        limit = 0 if metered else self.BUFFER_VALUES
        self._outputs = [_Buffer(limit, s.add_output) for s in self.stats]
        self._grads = [_Buffer(limit, s.grad.add) for s in self.stats]
        self._quiet = LiveTensorMeter.paused if metered else nullcontext
        self._handles = [m.register_forward_hook(self._forward_hook(i))
                         for i, m in enumerate(model.hidden_activations)]

    def _forward_hook(self, i: int):
        def hook(module, inputs, output):
            with self._quiet():  # probe temporaries are not the step's memory
                self._outputs[i].add(output)
            pre = inputs[0]
            if pre.requires_grad:
                pre.register_hook(self._grad_hook(i))
        return hook

    def _grad_hook(self, i: int):
        def hook(grad):
            with self._quiet():
                self._grads[i].add(grad)
        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        with self._quiet():
            for buffer in (*self._outputs, *self._grads):
                buffer.flush()

    def rows(self, epoch: int) -> list[dict]:
        """One row per hidden layer; call after backward so weight gradients are present."""
        rows = []
        for i, (s, linear) in enumerate(zip(self.stats, self.model.hidden_linears)):
            g = linear.weight.grad
            rows.append({
                "epoch": epoch,
                "layer": i,
                "dead_fraction": s._fraction_false(s.alive),
                "saturated_fraction": s._fraction_false(s.unsaturated),
                "activation_mean": s.out.mean if s.out.n else math.nan,
                "activation_std": s.out.std,
                "weight_grad_norm": float(g.norm()) if g is not None else math.nan,
                "backprop_grad_std": s.grad.std,
            })
        return rows
