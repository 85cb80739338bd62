"""Speed of the harness itself: instrumentation overhead against a bare PyTorch loop.

    python -m bench perf [--repeats 5] [--epochs 300]

Both loops train the same trial (same seed, data, init, optimizer, micro-batches) in this
process, one after the other, ``repeats`` times interleaved, so machine noise hits both alike.
The bare loop is the course notebook's: forward, loss, zero_grad, backward, step, with the
micro-batch weighting of an accumulation step and nothing else. The figure is the ratio of the
median per-epoch times (epochs after the first), so setup and warm-up are excluded from both.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from .model import MLP
from .optimizers import build_optimizer
from .spec import TrialSpec
from .suite import expand, parse_suite
from .tasks import make_task
from .train import run_trial

_SUITE = """
name = "perf"
[task]
kind = "spiral"
[model]
hidden = [100]
activation = "relu"
[train]
optimizer = "adam"
lr = 1e-3
weight_decay = 1e-5
epochs = {epochs}
lr_scaling = "linear"
[sweep]
"model.activation" = ["relu", "sigmoid"]
"train.accumulation_steps" = [1, 8]
"""


def bare_epoch_time(spec: TrialSpec) -> float:
    """Median seconds per epoch (after the first) of the plain loop on ``spec``."""
    cfg = spec.train
    torch.manual_seed(spec.seed)
    data = make_task(spec.task)
    model = MLP(spec.model, data.x_train.shape[1], data.out_features)
    opt = build_optimizer(cfg.optimizer, model.parameters(), lr=cfg.lr_effective,
                          weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    x, y, n = data.x_train, data.y_train, len(data.x_train)
    chunks = list(zip(x.tensor_split(cfg.accumulation_steps), y.tensor_split(cfg.accumulation_steps)))
    times = []
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        opt.zero_grad()
        for xb, yb in chunks:
            loss = F.cross_entropy(model(xb), yb)
            (loss * (len(xb) / n) if len(chunks) > 1 else loss).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.mean(times[1:])


def _with_log_every(spec: TrialSpec, log_every: int) -> TrialSpec:
    return replace(spec, train=spec.train.model_copy(update={"log_every": log_every}))


def overhead(epochs: int = 300, repeats: int = 5, threads: int = 1) -> list[dict]:
    """Bare and instrumented runs alternate; each pair gives a ratio, and we keep the median.

    Two figures per trial. ``ratio``: instrumented at the default log_every against the bare
    loop, directly; on a noisy machine it moves by several percent between repeats. ``cost``:
    the probes' cost per logged epoch, from the same loop logging every epoch against logging
    none, spread over ``log_every`` epochs; differences within one code path are far steadier.
    """
    torch.set_num_threads(threads)
    rows = []
    for spec in expand(parse_suite(_SUITE.format(epochs=epochs), source="perf")):
        every, never = _with_log_every(spec, 1), _with_log_every(spec, epochs + 1)
        bare, inst, all_logged, none_logged = [], [], [], []
        for _ in range(repeats):
            bare.append(bare_epoch_time(spec))
            inst.append(run_trial(spec, threads).trial["time_per_epoch_s"])
            all_logged.append(run_trial(every, threads).trial["time_per_epoch_s"])
            none_logged.append(run_trial(never, threads).trial["time_per_epoch_s"])
        ratios = [i / b for b, i in zip(bare, inst)]
        per_logged = statistics.median(all_logged) / statistics.median(none_logged) - 1
        rows.append({"activation": spec.model.activation, "k": spec.train.accumulation_steps,
                     "bare_ms": statistics.median(bare) * 1e3,
                     "instrumented_ms": statistics.median(inst) * 1e3,
                     "ratio": statistics.median(ratios),
                     "spread": (max(ratios) - min(ratios)) / 2,
                     "unlogged_vs_bare": statistics.median(none_logged) / statistics.median(bare),
                     "probe_cost": per_logged / spec.train.log_every})
    return rows


def main(epochs: int, repeats: int, threads: int) -> int:
    console = Console()
    console.print(f"instrumentation overhead: spiral 3x1000, MLP [100], adam, full batch, "
                  f"log_every = 10, {epochs} epochs, {threads} thread(s), median of {repeats}")
    table = Table()
    for col in ("activation", "k", "bare ms/epoch", "instrumented ms/epoch", "ratio", "+-",
                "unlogged / bare", "probes at log_every=10"):
        table.add_column(col, justify="right")
    for r in overhead(epochs, repeats, threads):
        table.add_row(r["activation"], str(r["k"]), f"{r['bare_ms']:.3f}",
                      f"{r['instrumented_ms']:.3f}", f"{r['ratio']:.3f}x", f"{r['spread']:.3f}",
                      f"{r['unlogged_vs_bare']:.3f}x", f"+{r['probe_cost']:.1%}")
    console.print(table)
    return 0
