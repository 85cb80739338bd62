"""Trial packing: the seeds of one grid point trained as one batched model.

A pack of P trials differs only in the seed. Each member is built exactly as it would be alone
(seeded data, then seeded init), and the pack stacks the members' weights: a Linear layer of the
pack holds ``weight`` (P, out, in) and ``bias`` (P, out) and runs one batched matmul
(``baddbmm``) over inputs of shape (P, samples, in). Activations are elementwise, so the same
modules serve. Both model families pack (``PackedModel``): an MLP's residual skips add
elementwise, and a cnn1d's conv layers run as one batched matmul over the members' windows
(im2col), laid out (P, n, length, channels) so that no copy is made between layers
(PackedConv1d says why). The pack's loss is the
sum of the members' mean losses, whose gradient with respect to member p's weights is member
p's own gradient; SGD, Adam and AdamW update each element from its own gradient and state, so
every member gets its own update, and its numbers match the one-at-a-time run to float
tolerance (``tests/training/test_packing.py``).

When packing pays (``python -m bench perf --pack`` measures it): the speed-up comes from issuing
one kernel for P models, so it is large where per-operator overhead dominates (small
micro-batches on the CPU, small models on a GPU) and absent where one trial already keeps the
CPU busy (the spiral's full batch of 3000 samples: the packed working set no longer fits in
cache). ``--pack`` forces packing on, ``--no-pack`` off. By default (``auto``) a run packs
only where packing was measured both exact and faster, small micro-batches on the CPU (the
``AUTO_MAX_`` limits below), and only where that holds for every grid point of the device:
a packed trial's time and memory columns are its share of the pack's, which must not be
compared with a trial timed alone.

Measured with ``bench perf --pack`` on MNIST-1D's shapes and recipe (random 4000 x 40 data,
batches of 100, Adam, log_every = 25, 50 epochs, 5 seeds, one thread, best of 3, this shared
2-core AMD EPYC machine), whole trials, packed against one at a time:

    recipe                  one at a time   packed    speed-up   per epoch
    MLP [100, 100]          7.29 s          3.65 s    2.00x      1.99x
    residual MLP [100, 100] 7.77 s          3.80 s    2.05x      2.04x
    reference CNN           23.60 s         11.03 s   2.14x      2.26x

The MLPs' packed weights are bit-identical to the trials' own. The CNN's drift over 2,000 Adam
steps (0.6% in final loss) is the size of the drift between the same trial on 1 and on 2
threads: one packed step matches to 1e-5 (tests/training/test_model_families.py), and any change of
summation order grows over a long run.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bench.training.model import hidden_forward, layer_costs
from bench.training.spec import TrialSpec
from bench.training.state import rng_kept
from bench.training.tasks import draw_task

PackMode = Literal["auto", "on", "off"]

# Optimizers whose update of an element reads only that element's gradient and state.
ELEMENTWISE_OPTIMIZERS = frozenset({"sgd", "adam", "adamw"})

# auto packs a CPU grid point when one micro-batch of one member is small enough that
# per-operator overhead, not arithmetic, bounds its speed. `bench perf --pack` measured, with six
# seeds (docs/performance.md): packed 1.7x-4.7x faster up to these limits, 0.8x-1.3x beyond them (a spiral
# full batch of 3000 through [100]: 300k activations; 100 samples through [512, 512]: 26M
# multiply-adds in the 512 x 512 layer; 0.97x at 32 samples, 8.4M).
AUTO_MAX_ACTIVATIONS = 65_536   # samples x the widest hidden layer
AUTO_MAX_LAYER_MACS = 1 << 22   # samples x fan_in x fan_out of the largest layer
# On a GPU one small model leaves the device idle: with 16 seeds on an H200 every case measured
# (the spiral's full batch of 3000, batches of 32 to 500, layers up to [512, 512] and 8 x [64])
# packed 6.5x-14x faster, exact to float tolerance. auto still leaves CUDA points alone: the
# main suite times CPU against CUDA trials (figure 5), and its CPU points are not packed, so
# both devices are timed one trial at a time. `--pack` packs them for throughput; a pack that
# runs out of GPU memory runs its trials alone (train.run_pack).

# A cnn1d packs under the same limits (model.layer_costs counts a conv layer's output values and
# multiply-adds per sample). Its conv layers run as im2col matmuls (PackedConv1d); as a grouped
# convolution in the contiguous (n, P x channels, length) layout, oneDNN's kernel was slower
# than the members' own (the reference CNN packed 1.01x-1.13x), and channels last 1.6x-1.9x
# per step. The im2col pack runs the reference CNN 2.0x-2.4x per step and 2.14x per whole trial
# at 5 seeds (module docstring).
AUTO_PACKS_CNN1D = True

MAX_PACK = 64  # members per pack: bounds the pack's memory, and what one failure can take down


def micro_batch_samples(train, n_train: int) -> int:
    """Samples in one (the largest) micro-batch of a ``[train]`` config on ``n_train``."""
    if train.batch_size != "full":
        return min(int(train.batch_size), n_train)
    return -(-n_train // train.accumulation_steps)


def packable(spec: TrialSpec) -> bool:
    # A user activation may hold parameters (a learnable beta) that a pack would share across
    # its members, so user activations train one trial at a time.
    from bench.training.activations import ACTIVATIONS

    return (spec.train.optimizer in ELEMENTWISE_OPTIMIZERS
            and spec.model.activation in ACTIVATIONS and not spec.model.activation_args)


def worth_packing(spec: TrialSpec) -> bool:
    """``auto``'s rule: a CPU grid point of an MLP (residual or not) or a cnn1d whose
    micro-batch is within both AUTO_MAX_ limits."""
    if spec.train.device != "cpu":
        return False  # CUDA: see the note at AUTO_MAX_LAYER_MACS
    if spec.model.kind == "cnn1d" and not AUTO_PACKS_CNN1D:
        return False
    n_train, n_in, n_out = task_shape(spec)
    samples = micro_batch_samples(spec.train, n_train)
    try:
        costs = layer_costs(spec.model, n_in, n_out)
    except ValueError:  # a cnn1d whose layers do not fit the input: it fails alone, clearly
        return False
    hidden = [values for values, _ in costs[:-1]]
    largest_layer = max(macs for _, macs in costs)
    return (samples * max(hidden, default=0) <= AUTO_MAX_ACTIVATIONS
            and samples * largest_layer <= AUTO_MAX_LAYER_MACS)


def pack_key(spec: TrialSpec) -> str:
    """Trials with equal keys differ only in the seed."""
    return json.dumps({"suite": spec.suite, "variant": spec.variant, "config": spec.config},
                      sort_keys=True, default=str)


def task_shape(spec: TrialSpec) -> tuple[int, int, int]:
    """Training samples, input features and outputs of ``spec``'s task (built once, without
    touching the global RNG)."""
    with rng_kept():
        data = draw_task(spec.task, spec.seed, spec.train.device.startswith("cuda"))
    return int(data.x_train.shape[0]), int(data.x_train.shape[1]), int(data.out_features)


def plan(specs: Sequence[TrialSpec], mode: PackMode,
         todo: Collection[str] | None = None) -> list[list[TrialSpec]]:
    """Group ``specs`` into units of work: packs of same-point seeds, or single trials.

    The decision is taken on the whole grid, ``specs``; with ``todo`` (trial ids) the units
    then keep only those trials, so a resumed run packs the points its first session packed.

    Units come in grid order. ``auto`` packs a device's grid points all together or not at all:
    a packed trial's time and memory are its share of the pack's, so one run never compares
    packed timings with unpacked ones on the same device. It packs them when every point that
    has seeds to pack is worth packing (``worth_packing``).
    """
    groups: dict[str, list[TrialSpec]] = {}
    for spec in specs:
        groups.setdefault(pack_key(spec), []).append(spec)

    def candidate(members: list[TrialSpec]) -> bool:
        return mode != "off" and len(members) > 1 and packable(members[0])

    if mode == "auto":
        devices: dict[str, bool] = {}
        for members in groups.values():
            if candidate(members):
                device = members[0].train.device
                devices[device] = devices.get(device, True) and worth_packing(members[0])
    units: list[list[TrialSpec]] = []
    for members in groups.values():
        if candidate(members) and (mode == "on" or devices[members[0].train.device]):
            units.extend(members[i:i + MAX_PACK] for i in range(0, len(members), MAX_PACK))
        else:
            units.extend([m] for m in members)
    if todo is not None:
        units = [kept for unit in units if (kept := [s for s in unit if s.trial_id in todo])]
    return units


class PackedLinear(nn.Module):
    """P independent Linear layers: (P, n, in) -> (P, n, out) in one batched matmul."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def extra_repr(self) -> str:
        p, out, inp = self.weight.shape
        return f"members={p}, in_features={inp}, out_features={out}"


class PackedConv1d(nn.Module):
    """P independent Conv1d layers as one batched matmul over the members (im2col).

    Inputs and outputs are (P, n, length, channels): member first, channels last, so that a
    layer's windows are a concatenation of k strided views along the length, (P, n x
    length_out, k x in_channels), and the convolution one ``baddbmm`` with the weights viewed
    as (P, k x in_channels, out_channels). The output comes out in the same layout, so no copy
    is made between layers, and padding is zeros along the length, as Conv1d's. On this CPU
    (AMD EPYC, one thread, batches of 100) a training step of the MNIST-1D reference CNN packed
    this way ran 2.0x-2.4x as fast as its members one at a time (3 and 5 seeds), where the
    grouped convolution of oneDNN in the channels-last layout (this class until then) ran
    1.6x-1.9x, and in its contiguous layout about 1.0x. The weight is stored as Conv1d's,
    member first, (P, out, in, kernel): member p's state is ``weight[p]``, its Conv1d's weight.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, out, inp, k = self.weight.shape
        if self.padding:
            x = F.pad(x, (0, 0, self.padding, self.padding))
        n, length = x.shape[1], x.shape[2]
        length_out = (length - k) // self.stride + 1
        span = self.stride * (length_out - 1) + 1
        # window offset j of every output position: (P, n, length_out, in), k of them side by side
        windows = torch.cat([x[:, :, j:j + span:self.stride] for j in range(k)], dim=-1)
        weight = self.weight.permute(0, 3, 2, 1).reshape(p, k * inp, out)  # (j, in) rows
        y = torch.baddbmm(self.bias.unsqueeze(1), windows.view(p, n * length_out, k * inp),
                          weight)
        return y.view(p, n, length_out, out)

    def extra_repr(self) -> str:
        p, out, inp, k = self.weight.shape
        return (f"members={p}, in_channels={inp}, out_channels={out}, kernel_size={k}, "
                f"stride={self.stride}, padding={self.padding}")


class PackedFlatten(nn.Module):
    """(P, n, length, channels) -> (P, n, channels x length): each member's conv output
    flattened channel-major, as its own ``nn.Flatten`` does."""

    def __init__(self, members: int):
        super().__init__()
        self.members = members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(2, 3).reshape(x.shape[0], x.shape[1], -1)


class PackedModel(nn.Sequential):
    """The members' models (all MLP, or all CNN1d), weights stacked; module indices (and
    state-dict keys) are the model's.

    ``hidden_layers``, ``hidden_activations`` and ``unit`` mirror the model's, so the probes
    attach the same way. An MLP's tensors carry the member as their first dimension,
    (P, n, features); residual skips add elementwise, as alone. A cnn1d's input (P, n,
    features) is laid out once as (P, n, length, in_channels), channels last, and its conv
    layers' outputs are (P, n, length, channels) in the same layout (PackedConv1d).
    """

    def __init__(self, members: Sequence[nn.Module]):
        first = members[0]
        p = len(members)
        layers: list[nn.Module] = []
        for i, module in enumerate(first):
            if isinstance(module, nn.Linear):
                layers.append(PackedLinear(
                    torch.stack([m[i].weight.detach() for m in members]),
                    torch.stack([m[i].bias.detach() for m in members])))
            elif isinstance(module, nn.Conv1d):
                (stride,), (padding,) = module.stride, module.padding
                layers.append(PackedConv1d(
                    torch.stack([m[i].weight.detach() for m in members]),
                    torch.stack([m[i].bias.detach() for m in members]), stride, padding))
            elif isinstance(module, nn.Flatten):
                layers.append(PackedFlatten(p))
            elif any(True for _ in module.parameters()):
                raise ValueError(f"cannot pack {type(module).__name__}: it holds parameters")
            else:
                layers.append(module)  # elementwise and parameter-free: shared by all members
        super().__init__(*layers)
        self.members = p
        self.kind, self.unit = first.kind, first.unit
        self.skips: frozenset[int] = first.skips
        self.in_channels: int | None = getattr(first, "in_channels", None)
        self.hidden_layers: list[nn.Module] = [
            self[i] for i, m in enumerate(first) if any(m is h for h in first.hidden_layers)]
        self.hidden_linears = self.hidden_layers
        self.hidden_activations: list[nn.Module] = list(first.hidden_activations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels is not None:  # (P, n, C x L) -> (P, n, L, C), channels last
            p, n = x.shape[:2]
            return super().forward(x.reshape(p, n, self.in_channels, -1).transpose(2, 3)
                                   .contiguous())
        if not self.skips:
            return super().forward(x)
        return hidden_forward(x, self.hidden_layers, self.hidden_activations, self.skips, self[-1])

    def member_state_dict(self, p: int) -> dict[str, torch.Tensor]:
        """Member p's weights under the keys of its own model (CPU tensors)."""
        return {k: v[p].detach().cpu().clone() for k, v in self.state_dict().items()}

    def member_params(self) -> int:
        return sum(p[0].numel() for p in self.parameters())


PackedMLP = PackedModel  # the older name, from when every model was an MLP


def stack(tensors: Iterable[torch.Tensor | None]) -> torch.Tensor | None:
    items = list(tensors)
    return None if items[0] is None else torch.stack(items)
