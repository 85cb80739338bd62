"""Per-layer probes: dead and saturated fractions, activation statistics, backprop gradients.

A unit is an MLP layer's neuron or a conv layer's channel (the layer's ``unit`` column). A
channel counts as one unit over all its positions: it is dead when its output is "dead" (the
activation's rule) for every sample at every position, saturated likewise; the activation
mean and std, and the backprop gradient's std, are over samples x positions x channels.

A probe is attached only for the forward/backward passes that are logged, so unlogged epochs
run the bare model. Statistics are accumulated over micro-batches, so a step split into k
micro-batches reports the same numbers as one full-batch pass.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch

from bench.training.activations import SATURATION_MARGIN, SATURATION_SLOPE, Activation
from bench.training.memory import LiveTensorMeter


class Moments:
    """Count, mean and M2 per member, merged across chunks (Chan et al.), so chunking does not
    change std.

    ``add`` takes a chunk with the member first (members x ...). Each member's chunk is centred
    on its own mean before squaring: sum-of-squares minus square-of-sum loses all precision in
    float32 when the mean dwarfs the spread (a saturated sigmoid).
    """

    def __init__(self, members: int = 1):
        self.n = 0  # values per member so far (every member sees the same samples)
        self.means = [0.0] * members
        self.m2s = [0.0] * members

    def add(self, x: torch.Tensor) -> None:
        members = len(self.means)
        flat = x.detach().reshape(members, -1)
        n_b = flat.shape[1]
        if n_b == 0:
            return
        mean_t = flat.mean(1)
        centred = flat - mean_t.unsqueeze(1)
        # torch.std_mean is ~20x slower than this on one CPU thread (2 ms vs 0.1 ms, 3e5 values).
        # Not torch.dot: on one thread it sums in float32 one by one, 1e-4 off at 2.5e5 values
        # (a conv layer's outputs); vecdot's reduction is pairwise, ~1e-7 off.
        m2_t = torch.linalg.vecdot(centred, centred)
        means_b, m2s_b = torch.stack([mean_t, m2_t]).tolist()  # one host sync
        n = self.n + n_b
        for p in range(members):
            delta = means_b[p] - self.means[p]
            self.means[p] += delta * n_b / n
            self.m2s[p] += m2s_b[p] + delta * delta * self.n * n_b / n
        self.n = n

    @property
    def mean(self) -> list[float]:
        return [m if self.n else math.nan for m in self.means]

    @property
    def std(self) -> list[float]:
        return [math.sqrt(m2 / (self.n - 1)) if self.n > 1 else math.nan for m2 in self.m2s]


class LayerStats:
    """One hidden layer's statistics over a logged pass, per member (``members`` x units masks).

    ``positions``: the layer is a conv layer, whose chunks carry positions after the channels
    (members x samples x channels x positions); a channel is a unit over all its positions.
    """

    def __init__(self, activation: Activation, members: int = 1, positions: bool = False):
        self.activation, self.members, self.positions = activation, members, positions
        self.alive: torch.Tensor | None = None        # per unit: some sample is not "dead"
        self.unsaturated: torch.Tensor | None = None  # per unit: some sample is away from the bounds
        self.out = Moments(members)
        self.grad = Moments(members)

    def _units(self, mask: torch.Tensor) -> torch.Tensor:
        """A mask reduced over the samples (units, or members x units; a conv layer's with
        positions last) -> members x units: a channel holds when it holds at some position."""
        if self.positions:
            mask = mask.any(-1)
        return mask.reshape(self.members, -1)

    def add_output(self, a: torch.Tensor) -> None:
        """``a``: one chunk of the layer's output, member first (members x samples x units;
        members x samples x channels x positions for a conv layer)."""
        # The activation's masks reduce over dim 0, the samples: one member is a plain
        # (samples x units) chunk, a pack is viewed as (samples x members x units).
        samples_first = a[0] if self.members == 1 else a.transpose(0, 1)
        # Per-unit reductions over samples (amax/amin) are ~10x faster than any() over a mask.
        act = self.activation
        alive = self._units(~act.dead(samples_first))
        self.alive = alive if self.alive is None else self.alive | alive
        if act.bounds is not None:
            lo, hi = act.bounds
            # Saturated: every sample strictly within the margin of a bound (|tanh| > 0.99;
            # sigmoid < 0.01 or > 0.99), i.e. |a - centre| > half-width - margin. A unit is
            # unsaturated when some sample has |a - centre| <= that.
            centre, half = (lo + hi) / 2, (hi - lo) / 2 - SATURATION_MARGIN
            unsat = self._units(torch.sub(samples_first, centre).abs_().amin(0) <= half)
            self.unsaturated = unsat if self.unsaturated is None else self.unsaturated | unsat
        self.out.add(a)

    def add_slope(self, g: torch.Tensor) -> None:
        """A user activation's local derivative on one chunk (member first): a unit is
        unsaturated when |f'| reaches ``SATURATION_SLOPE`` for some sample."""
        samples_first = g[0] if self.members == 1 else g.transpose(0, 1)
        unsat = self._units(samples_first.abs().amax(0) >= SATURATION_SLOPE)
        self.unsaturated = unsat if self.unsaturated is None else self.unsaturated | unsat

    def fraction_false(self, mask: torch.Tensor | None) -> list[float]:
        """Per member: the share of units whose mask is False."""
        if mask is None:
            return [math.nan] * self.members
        return [1.0 - share for share in mask.float().mean(1).tolist()]  # in double


class _Buffer:
    """Micro-batch tensors (member first, samples second) held until they reach ``limit``
    values, then reduced in one go.

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
            block = self.held[0] if len(self.held) == 1 else torch.cat(self.held, dim=1)
            self.held, self.size = [], 0
            self.reduce(block)


class LayerProbe:
    """Attach to a model for one logged pass (possibly several micro-batches), then read rows.

    The model is one of model.py's (``hidden_layers``, ``hidden_activations``, ``unit``) or a
    PackedModel of ``model.members`` trials; every statistic is kept per member (a pack's MLP
    tensors carry the member as their first dimension; its conv layers' outputs are (members,
    samples, positions, channels), viewed channels first here).

    ``metered``: the pass is inside the peak-memory window, so the probe reduces each chunk at
    once (holding outputs would count as the step's memory) and hides its temporaries from
    the meter. Otherwise it buffers up to ``BUFFER_VALUES`` values per layer.
    """

    # 1 MB of float32 per layer and kind. Reducing a buffer takes ~6 passes over it; held in
    # cache they are ~1.5x faster: the reference cnn1d's logged evaluation (4000 x 40, batches
    # of 100) took 85 ms with 4 MB buffers, 65 ms with 1 MB (49 ms without probes); MLPs'
    # evaluations were the same or faster.
    BUFFER_VALUES = 1 << 18

    def __init__(self, model, activation: Activation, metered: bool = False):
        self.model = model
        self.members = getattr(model, "members", 1)
        self._packed = hasattr(model, "members")
        self.unit = getattr(model, "unit", "neuron")
        self._channels = self.unit == "channel"
        self.stats = [LayerStats(activation, self.members, self._channels)
                      for _ in model.hidden_activations]
        limit = 0 if metered else self.BUFFER_VALUES
        self._outputs = [_Buffer(limit, s.add_output) for s in self.stats]
        self._grads = [_Buffer(limit, s.grad.add) for s in self.stats]
        self._slopes = [_Buffer(limit, s.add_slope) for s in self.stats]
        self._quiet = LiveTensorMeter.paused if metered else nullcontext
        self._handles = [m.register_forward_hook(self._forward_hook(i))
                         for i, m in enumerate(model.hidden_activations)]

    def _member_first(self, t: torch.Tensor) -> torch.Tensor:
        """A hidden layer's output or its gradient, member first (a view, no copy)."""
        if self._channels:  # a pack's (members, samples, positions, channels) or a model's
            # (samples, channels, positions) -> (members, samples, channels, positions)
            return t.transpose(2, 3) if self._packed else t.unsqueeze(0)
        return t if self._packed else t.unsqueeze(0)

    def _forward_hook(self, i: int):
        user = self.stats[i].activation.user

        def hook(module, inputs, output):
            with self._quiet():  # probe temporaries are not the step's memory
                self._outputs[i].add(self._member_first(output))
                if user:  # the local derivative f'(x), by autograd (elementwise f)
                    with torch.enable_grad():
                        x = inputs[0].detach().requires_grad_(True)
                        (slope,) = torch.autograd.grad(module.forward(x).sum(), x)
                    self._slopes[i].add(self._member_first(slope))
            pre = inputs[0]
            if pre.requires_grad:
                pre.register_hook(self._grad_hook(i))
        return hook

    def _grad_hook(self, i: int):
        def hook(grad):
            with self._quiet():
                self._grads[i].add(self._member_first(grad))
        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        with self._quiet():
            for buffer in (*self._outputs, *self._grads, *self._slopes):
                buffer.flush()

    def member_rows(self, epoch: int) -> list[list[dict]]:
        """Per member, one row per hidden layer; call after backward (weight gradients)."""
        per_member: list[list[dict]] = [[] for _ in range(self.members)]
        for i, (s, layer) in enumerate(zip(self.stats, self.model.hidden_layers)):
            g = layer.weight.grad  # a pack's weights are member first
            norms = ([math.nan] * self.members if g is None
                     else (g if self._packed else g.unsqueeze(0)).flatten(1).norm(dim=1).tolist())
            columns = zip(s.fraction_false(s.alive), s.fraction_false(s.unsaturated),
                          s.out.mean, s.out.std, norms, s.grad.std)
            for rows, (dead, saturated, mean, std, norm, grad_std) in zip(per_member, columns):
                rows.append({"epoch": epoch, "layer": i, "unit": self.unit,
                             "dead_fraction": dead,
                             "saturated_fraction": saturated, "activation_mean": mean,
                             "activation_std": std, "weight_grad_norm": norm,
                             "backprop_grad_std": grad_std})
        return per_member

    def rows(self, epoch: int) -> list[dict]:
        """The rows of a single (unpacked) model."""
        (rows,) = self.member_rows(epoch)
        return rows
