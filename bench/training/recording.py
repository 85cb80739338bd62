"""What a trial records as it trains: its curve and layer rows, and at the end its trials row.

``Member`` is one trial of a trainer (loop.Trainer): its rows so far and where it stopped.
``record_epoch`` appends a logged epoch's rows, ``finish_row`` fills the trials row from them
(the results schema's columns, bench/schema.py). A pack's members share its time and memory:
each row holds the pack's figure divided by the pack's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from bench import schema
from bench.provenance import device_name
from bench.training.spec import TrialSpec


@dataclass
class Member:
    """One trial of the trainer: its row, its records and where it stopped."""

    spec: TrialSpec
    row: dict
    curves: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    best_loss: float = math.inf
    epochs_to_target: int | None = None
    diverged_at: int | None = None
    state_dict: dict | None = None  # a pack member's weights, taken when it diverged
    grad_equivalence_error: float = math.nan
    extrapolation_slope_ratio: float = math.nan
    fit_probe_inside: list[float] | None = None   # the final fit at measures.probe_points
    fit_probe_outside: list[float] | None = None  # ... and on the outer windows' points

    @property
    def active(self) -> bool:
        return self.diverged_at is None


def grad_norms(trainer) -> list[float]:
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    if not trainer.packed:
        return [float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))]
    per_tensor = torch.stack([g.flatten(1).norm(dim=1) for g in grads])  # tensors x members
    return torch.linalg.vector_norm(per_tensor, dim=0).tolist()


@torch.no_grad()
def held_out_metrics(trainer, x: torch.Tensor | None,
                     y: torch.Tensor | None) -> tuple[list[float], list[float]]:
    """Loss and accuracy per member on a held-out split (test or validation)."""
    nan = [math.nan] * len(trainer.members)
    if x is None:
        return nan, nan
    out = trainer.model(x)
    loss = trainer._losses(out, y).reshape(-1).tolist()
    acc = ((out.argmax(-1) == y).float().mean(-1).reshape(-1).tolist()
           if trainer.classify else nan)
    return loss, acc


def record_epoch(trainer, epoch, losses, accuracies, probe) -> None:
    """Append epoch ``epoch``'s curve row (training, validation and test) and layer rows to
    each active member, and note when it first met its target."""
    test_losses, test_accs = held_out_metrics(trainer, trainer.x_test, trainer.y_test)
    val_losses, val_accs = held_out_metrics(trainer, trainer.x_val, trainer.y_val)
    norms = grad_norms(trainer) if probe else [math.nan] * len(trainer.members)
    layer_rows = probe.member_rows(epoch) if probe else None
    for p, m in enumerate(trainer.members):
        if not m.active:
            continue
        row = {"epoch": epoch, "loss": losses[p], "accuracy": accuracies[p],
               "grad_norm": norms[p]}
        if trainer.x_val is not None:  # validation and test columns exist only for tasks
            row.update(val_loss=val_losses[p], val_accuracy=val_accs[p])  # with that split
        if trainer.x_test is not None:
            row.update(test_loss=test_losses[p], test_accuracy=test_accs[p])
        m.curves.append(row)
        if layer_rows is not None:
            m.layers.extend(layer_rows[p])
        check_target(trainer, m, epoch, {"loss": losses[p], "accuracy": accuracies[p],
                                         "test_loss": test_losses[p],
                                         "test_accuracy": test_accs[p],
                                         "val_loss": val_losses[p], "val_accuracy": val_accs[p]})


def diverged(member: Member, epoch: int, loss: float, accuracy: float,
             weights: dict | None) -> None:
    """``member``'s loss was not finite at ``epoch``: its last curve row says so, and it stops
    (``weights``: its state now, for a pack that trains on without it)."""
    member.curves.append({"epoch": epoch, "loss": loss, "accuracy": accuracy,
                          "grad_norm": math.nan})
    member.diverged_at = epoch
    if weights is not None:
        member.state_dict = weights


def check_target(trainer, member: Member, epoch: int, values: dict) -> None:
    target = trainer.spec.train.target
    if target is None or member.epochs_to_target is not None:
        return
    value = values.get(target.metric, math.nan)
    met = value <= target.value if target.metric.endswith("loss") else value >= target.value
    if met:
        member.epochs_to_target = epoch


def finish_row(trainer, m: Member, wall: float, epoch_times: list[float]) -> None:
    """Fill member ``m``'s trials row. A pack's time and memory are shared by its members:
    each row holds the pack's figure divided by the pack's size (``pack_size``)."""
    row, last = m.row, m.curves[-1]
    share = len(trainer.members)
    bounded = trainer.activation.bounds is not None or trainer.activation.user
    final_layers = [r for r in m.layers if r["epoch"] == last["epoch"]]
    init_layers = [r for r in m.layers if r["epoch"] == 0]
    steady = epoch_times[1:]
    per_epoch = sum(steady) / len(steady) / share if steady else math.nan
    row.update(
        final_loss=last["loss"], final_accuracy=last["accuracy"],
        best_loss=m.best_loss if math.isfinite(m.best_loss) else math.nan,
        epochs_to_target=m.epochs_to_target,
        # docs/results.md: the mean over ReLU-family layers; NaN for a net without any
        dead_fraction=_mean([r["dead_fraction"] for r in final_layers])
        if trainer.activation.relu_family else math.nan,
        saturated_fraction=_mean([r["saturated_fraction"] for r in final_layers]) if bounded
        else math.nan,
        all_dead_layer=float(any(r["dead_fraction"] == 1.0 for r in final_layers))
        if trainer.activation.relu_family and final_layers else math.nan,
        init_activation_std_ratio=_ratio(init_layers, "activation_std", -1, 0),
        init_grad_std_ratio=_ratio(init_layers, "backprop_grad_std", 0, -1),
        grad_equivalence_error=m.grad_equivalence_error,
        extrapolation_slope_ratio=m.extrapolation_slope_ratio,
        fit_probe_inside=m.fit_probe_inside, fit_probe_outside=m.fit_probe_outside,
        grad_norm=last["grad_norm"], time_total_s=wall / share, time_per_epoch_s=per_epoch,
        time_warmup_s=epoch_times[0] / share if epoch_times else math.nan,
        samples_per_s=trainer.n_train / per_epoch if steady else math.nan,
        peak_memory_bytes=(round(trainer.peak_memory / share)
                           if trainer.peak_memory is not None else None),
        n_params=(trainer.model.member_params() if trainer.packed
                  else sum(p.numel() for p in trainer.model.parameters())),
        device_name=device_name(trainer.device))
    if trainer.x_val is not None:
        row.update(final_val_loss=last.get("val_loss", math.nan),
                   final_val_accuracy=last.get("val_accuracy", math.nan))
    if trainer.x_test is not None:
        row.update(final_test_loss=last.get("test_loss", math.nan),
                   final_test_accuracy=last.get("test_accuracy", math.nan))
    if m.diverged_at is not None:
        row.update(status=schema.DIVERGED, diverged_epoch=m.diverged_at,
                   error=f"non-finite loss ({last['loss']}) at epoch {m.diverged_at}")
    for r in m.curves:
        r["trial_id"] = row["trial_id"]
    for r in m.layers:
        r["trial_id"] = row["trial_id"]


def _ratio(layers: list[dict], column: str, top: int, bottom: int) -> float:
    """layers[top][column] / layers[bottom][column]; NaN with fewer than two hidden layers."""
    if len(layers) < 2:
        return math.nan
    num, den = layers[top][column], layers[bottom][column]
    return num / den if den and math.isfinite(num) and math.isfinite(den) else math.nan


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
