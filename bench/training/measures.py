"""The trial measures taken outside the loop's epochs, beside the layer probes (probes.py).

- ``grad_equivalence_error``: the first optimizer step's accumulated gradient against the
  gradient of the whole training set at the initial weights (``full_set_gradient``, then
  ``grad_equivalence`` between the first step's backward and its update).
- ``extrapolation_slope_ratio`` and the fit at fixed probe points (``extrapolation``): how a
  one-input regression's final fit continues far from its data.

Each takes the trainer (loop.Trainer) whose model and data it measures, and writes into its
members' records.
"""

from __future__ import annotations

import math

import torch

from bench.training.memory import LiveTensorMeter

PROBE_INSIDE = 21   # probe points on the training range [lo, hi]
PROBE_OUTSIDE = 11  # ... on each outer window, [lo - 1.5 w, lo - w] and [hi + w, hi + 1.5 w]


def per_member(trainer, tensors) -> torch.Tensor:
    """Tensors (member first for a pack) -> members x values, in double on the CPU."""
    flat = [t.detach().cpu().double().reshape(len(trainer.members) if trainer.packed else 1, -1)
            for t in tensors]
    return torch.cat(flat, dim=1)


def full_set_gradient(trainer) -> torch.Tensor | None:
    """Full batch: the gradient of the whole training set's mean loss at the initial
    weights in one pass (members x parameters, on the CPU), the reference the k-chunked
    first step is compared with. Computed before the clock and the memory meter start. A
    device too small for the one pass (what accumulation is for) leaves the column NaN."""
    try:
        trainer._accumulate([(trainer.x, trainer.y)], None, False)
    except torch.OutOfMemoryError:
        trainer.model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        return None
    reference = per_member(trainer, (p.grad for p in trainer.model.parameters()))
    trainer.model.zero_grad(set_to_none=True)
    return reference


def grad_equivalence(trainer) -> None:
    """Call between the first step's backward and its update: records each member's
    grad_equivalence_error, ||g_step - g_full|| / ||g_full||."""
    reference, trainer._reference = trainer._reference, None
    if reference is None:
        return
    with LiveTensorMeter.paused():  # copied to the CPU: not the step's memory on any device
        step = per_member(trainer, (p.grad for p in trainer.model.parameters()))
        errors = (step - reference).norm(dim=1) / reference.norm(dim=1)
    for m, error in zip(trainer.members, errors.tolist()):
        m.grad_equivalence_error = error if math.isfinite(error) else math.nan


@torch.no_grad()
def extrapolation(trainer) -> None:
    """Regression on one input: how the final fit continues far from the data. The slope
    ratio is the mean absolute secant slope over [hi + w, hi + 1.5 w] and its mirror
    [lo - 1.5 w, lo - w] (w = hi - lo, the training range; [3, 4] and [-4, -3] for cubic)
    over that over the outer quarters of the training range. About 1: the fit goes on
    linearly; about 0: it goes flat.

    It also records the fit itself at fixed probe points, for the ensemble's spread over
    seeds (ensemble.with_spread, when the store writes the trials table):
    ``fit_probe_inside`` at PROBE_INSIDE evenly spaced x on [lo, hi], ``fit_probe_outside``
    at PROBE_OUTSIDE evenly spaced x on [lo - 1.5 w, lo - w] and then as many on
    [hi + w, hi + 1.5 w], each ascending."""
    if trainer.classify or trainer.x.shape[-1] != 1:
        return
    xs = trainer.x.select(-1, 0).reshape(len(trainer.members), -1).double()  # members x samples
    lo, hi = xs.amin(1, keepdim=True), xs.amax(1, keepdim=True)
    w = hi - lo
    # Four intervals per member: far right, far left, right edge, left edge.
    starts = torch.cat([hi + w, lo - 1.5 * w, hi - w / 4, lo], dim=1)
    widths = torch.cat([w / 2, w / 2, w / 4, w / 4], dim=1)
    ends = torch.stack([starts, starts + widths], dim=2).reshape(len(trainer.members), -1)
    probes = probe_points(lo, hi)  # members x (inside + outside)
    f = _fit(trainer, torch.cat([ends, probes], dim=1))
    f_ends, f_probes = f[:, :8].reshape(len(trainer.members), 4, 2), f[:, 8:]
    slope = (f_ends[:, :, 1] - f_ends[:, :, 0]).abs() / widths
    ratios = slope[:, :2].mean(1) / slope[:, 2:].mean(1)
    for m, ratio, fit in zip(trainer.members, ratios.tolist(), f_probes.tolist()):
        if not m.active:
            continue
        if math.isfinite(ratio):
            m.extrapolation_slope_ratio = ratio
        if all(math.isfinite(v) for v in fit):
            n = PROBE_INSIDE
            m.fit_probe_inside, m.fit_probe_outside = fit[:n], fit[n:]


def _fit(trainer, x: torch.Tensor) -> torch.Tensor:
    """The model's prediction at ``x`` (members x points, one input): members x points, in
    double."""
    x = x.to(trainer.x.dtype).unsqueeze(-1)
    f = trainer.model(x) if trainer.packed else trainer.model(x[0])
    return f.double().reshape(len(trainer.members), -1)


def probe_points(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The x at which a one-input regression's final fit is recorded (``fit_probe_inside``,
    then ``fit_probe_outside``), for training ranges [lo, hi] (n x 1 tensors): n x
    (PROBE_INSIDE + 2 PROBE_OUTSIDE), in lo's dtype and device. For cubic: [-1, 1] in
    steps of 0.1, then [-4, -3] and [3, 4] in steps of 0.1."""
    w = hi - lo
    inside = torch.linspace(0, 1, PROBE_INSIDE, dtype=lo.dtype, device=lo.device)
    outside = torch.linspace(0, 0.5, PROBE_OUTSIDE, dtype=lo.dtype, device=lo.device)
    return torch.cat([lo + inside * w, lo - 1.5 * w + outside * w, hi + w + outside * w],
                     dim=1)
