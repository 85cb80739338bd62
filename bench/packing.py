"""Trial packing: the seeds of one grid point trained as one batched model.

A pack of P trials differs only in the seed. Each member is built exactly as it would be alone
(seeded data, then seeded init), and the pack stacks the members' weights: a Linear layer of the
pack holds ``weight`` (P, out, in) and ``bias`` (P, out) and runs one batched matmul
(``baddbmm``) over inputs of shape (P, samples, in). Activations are elementwise, so the same
modules serve. The pack's loss is the sum of the members' mean losses, whose gradient with
respect to member p's weights is member p's own gradient; SGD, Adam and AdamW update each
element from its own gradient and state, so every member gets its own update, and its numbers
match the one-at-a-time run to float tolerance (``tests/test_packing.py``).

When packing pays (``python -m bench perf --pack`` measures it): the speed-up comes from issuing
one kernel for P models, so it is large where per-operator overhead dominates (small
micro-batches on the CPU, small models on a GPU) and absent where one trial already keeps the
CPU busy (the spiral's full batch of 3000 samples: the packed working set no longer fits in
cache). ``--pack`` forces packing on, ``--no-pack`` off. By default (``auto``) a run packs
only where packing was measured both exact and faster, small micro-batches on the CPU (the
``AUTO_MAX_`` limits below), and only where that holds for every grid point of the device:
a packed trial's time and memory columns are its share of the pack's, which must not be
compared with a trial timed alone.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import Literal

import torch
from torch import nn

from .model import MLP
from .spec import TrialSpec
from .tasks import draw_task

PackMode = Literal["auto", "on", "off"]

# Optimizers whose update of an element reads only that element's gradient and state.
ELEMENTWISE_OPTIMIZERS = frozenset({"sgd", "adam", "adamw"})

# auto packs a CPU grid point when one micro-batch of one member is small enough that
# per-operator overhead, not arithmetic, bounds its speed. `bench perf --pack` measured, with six
# seeds (README): packed 1.7x-4.7x faster up to these limits, 0.8x-1.3x beyond them (a spiral
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

MAX_PACK = 64  # members per pack: bounds the pack's memory, and what one failure can take down


def micro_batch_samples(spec: TrialSpec, n_train: int) -> int:
    """Samples in one (the largest) micro-batch of ``spec``."""
    train = spec.train
    if train.batch_size != "full":
        return min(int(train.batch_size), n_train)
    return -(-n_train // train.accumulation_steps)


def packable(spec: TrialSpec) -> bool:
    # A user activation may hold parameters (a learnable beta) that a pack would share across
    # its members, so user activations train one trial at a time.
    from .activations import ACTIVATIONS

    return (spec.train.optimizer in ELEMENTWISE_OPTIMIZERS
            and spec.model.activation in ACTIVATIONS and not spec.model.activation_args)


def worth_packing(spec: TrialSpec) -> bool:
    """``auto``'s rule: a CPU grid point whose micro-batch is within both AUTO_MAX_ limits."""
    if spec.train.device != "cpu":
        return False  # CUDA: see the note at AUTO_MAX_LAYER_MACS
    n_train, n_in, n_out = task_shape(spec)
    samples = micro_batch_samples(spec, n_train)
    widths = [n_in, *spec.model.hidden, n_out]
    largest_layer = max(a * b for a, b in zip(widths, widths[1:]))
    return (samples * max(spec.model.hidden, default=0) <= AUTO_MAX_ACTIVATIONS
            and samples * largest_layer <= AUTO_MAX_LAYER_MACS)


def pack_key(spec: TrialSpec) -> str:
    """Trials with equal keys differ only in the seed."""
    return json.dumps({"suite": spec.suite, "variant": spec.variant, "config": spec.config},
                      sort_keys=True, default=str)


def task_shape(spec: TrialSpec) -> tuple[int, int, int]:
    """Training samples, input features and outputs of ``spec``'s task (built once, without
    touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        data = draw_task(spec.task, spec.seed)
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


class PackedMLP(nn.Sequential):
    """The members' MLPs, weights stacked; module indices (and state-dict keys) are the MLP's.

    ``hidden_linears`` and ``hidden_activations`` mirror MLP's, so the probes attach the same
    way; every tensor they see has the member as its first dimension.
    """

    def __init__(self, members: Sequence[MLP]):
        first = members[0]
        layers: list[nn.Module] = []
        for i, module in enumerate(first):
            if isinstance(module, nn.Linear):
                layers.append(PackedLinear(
                    torch.stack([m[i].weight.detach() for m in members]),
                    torch.stack([m[i].bias.detach() for m in members])))
            else:
                layers.append(module)  # elementwise and parameter-free: shared by all members
        super().__init__(*layers)
        self.members = len(members)
        self.hidden_linears: list[PackedLinear] = [
            self[i] for i, m in enumerate(first) if any(m is h for h in first.hidden_linears)]
        self.hidden_activations: list[nn.Module] = list(first.hidden_activations)

    def member_state_dict(self, p: int) -> dict[str, torch.Tensor]:
        """Member p's weights under the keys of its own MLP (CPU tensors)."""
        return {k: v[p].detach().cpu().clone() for k, v in self.state_dict().items()}

    def member_params(self) -> int:
        return sum(p[0].numel() for p in self.parameters())


def stack(tensors: Iterable[torch.Tensor | None]) -> torch.Tensor | None:
    items = list(tensors)
    return None if items[0] is None else torch.stack(items)
