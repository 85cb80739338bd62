"""Speed of the harness itself: instrumentation overhead against a bare PyTorch loop.

    python -m bench perf [--repeats 5] [--epochs 300]

Both loops train the same trial (same seed, data, init, optimizer, micro-batches) in this
process, one after the other, ``repeats`` times interleaved, so machine noise hits both alike.
The bare loop is the course notebook's: forward, loss, zero_grad, backward, step, with the
micro-batch weighting of an accumulation step and nothing else.

On a shared 2-core machine the mean epoch time of a run moves by 10-30% between runs, more
than the effect measured. So the figures are built from per-epoch medians, which ignore the
spikes: the bare loop's median epoch; the instrumented loop's median unlogged and median logged
epoch (every ``log_every``-th epoch carries the probes). The overhead at the default
``log_every`` is then ((log_every - 1) * unlogged + logged) / log_every / bare.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from bench.suite import expand, parse_suite
from bench.training.loop import draw_trial, run_trial
from bench.training.optimizers import build_optimizer
from bench.training.spec import TrialSpec

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

# The MNIST-1D reference CNN's recipe (Greydanus's ConvBase: three Conv1d of 25 channels,
# kernels 5, 3, 3, stride 2, padding 1; Adam, lr 1e-2, batches of 100) on data of MNIST-1D's
# shape: 4000 training samples of 40 features, 10 classes. The values are random (timing does
# not depend on them), so the figure needs neither the mnist1d package nor its task.
_CNN_SUITE = """
name = "perf-cnn"
[task]
kind = "bench.perf:mnist1d_shaped"
[model]
kind = "cnn1d"
channels = [25, 25, 25]
kernel = [5, 3, 3]
stride = 2
padding = 1
activation = "relu"
[train]
optimizer = "adam"
lr = 1e-2
batch_size = 100
epochs = {epochs}
"""

# (label, suite, share of --epochs): a mini-batch epoch of the CNN is ~15x the spiral's.
OVERHEAD_CASES = [("spiral 3x1000, MLP [100], full batch", _SUITE, 1.0),
                  ("MNIST-1D-shaped 4000x40, reference CNN, batches of 100", _CNN_SUITE, 0.1)]


def mnist1d_shaped(n: int = 4000, features: int = 40, classes: int = 10):
    """Random data of MNIST-1D's shape (a user task, drawn from the trial's seeded RNG)."""
    x = torch.randn(n, features)
    y = torch.randint(0, classes, (n,))
    return x, y, "classification"


def bare_epoch(spec: TrialSpec) -> Callable[[], None]:
    """One epoch of the plain loop on ``spec`` as a callable: full batch in k micro-batches,
    or, with a batch size, a shuffled pass in steps of k micro-batches of it."""
    cfg = spec.train
    data, model = draw_trial(spec)
    opt = build_optimizer(cfg.optimizer, model.parameters(), lr=cfg.lr_effective,
                          weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    x, y, n = data.x_train, data.y_train, len(data.x_train)
    k = cfg.accumulation_steps
    chunks = list(zip(x.tensor_split(k), y.tensor_split(k)))
    loss_fn = F.cross_entropy if data.kind == "classification" else F.mse_loss

    def epoch() -> None:
        opt.zero_grad()
        for xb, yb in chunks:
            loss = loss_fn(model(xb), yb)
            (loss * (len(xb) / n) if k > 1 else loss).backward()
        opt.step()

    if cfg.batch_size == "full":
        return epoch
    b = int(cfg.batch_size)
    order = torch.Generator().manual_seed(spec.seed)

    def mini_batch_epoch() -> None:
        micro = torch.randperm(n, generator=order).split(b)
        for s in range(0, len(micro), k):
            opt.zero_grad()
            step = micro[s:s + k]
            samples = sum(len(i) for i in step)
            for index in step:
                loss = loss_fn(model(x[index]), y[index])
                (loss * (len(index) / samples) if len(step) > 1 else loss).backward()
            opt.step()

    return mini_batch_epoch


def bare_epoch_times(spec: TrialSpec) -> list[float]:
    """Seconds of each epoch of the plain loop on ``spec``."""
    epoch = bare_epoch(spec)
    times = []
    for _ in range(spec.train.epochs):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return times


def overhead(epochs: int = 300, repeats: int = 5, threads: int = 1,
             cases: list | None = None) -> list[dict]:
    torch.set_num_threads(threads)
    rows = []
    specs = [(label, spec) for label, suite, share in cases or OVERHEAD_CASES
             for spec in expand(parse_suite(suite.format(epochs=max(2, round(epochs * share))),
                                            source="perf"))]
    for label, spec in specs:
        every = spec.train.log_every
        bare, unlogged, logged = [], [], []
        for _ in range(repeats):
            bare += bare_epoch_times(spec)[1:]
            times = run_trial(spec, threads).epoch_times
            # epoch i's pass (i >= 1) carries the probes when i is a multiple of log_every
            unlogged += [t for i, t in enumerate(times) if i > 0 and i % every]
            logged += [t for i, t in enumerate(times) if i > 0 and not i % every]
        b, u, lg = (statistics.median(v) for v in (bare, unlogged, logged))
        rows.append({"case": label, "epochs": spec.train.epochs,
                     "activation": spec.model.activation, "k": spec.train.accumulation_steps,
                     "bare_ms": b * 1e3, "unlogged_ms": u * 1e3, "logged_ms": lg * 1e3,
                     "ratio": ((every - 1) * u + lg) / every / b})
    return rows


def main(epochs: int, repeats: int, threads: int) -> int:
    console = Console()
    console.print(f"instrumentation overhead: adam, log_every = 10, {epochs} epochs (the CNN "
                  f"a tenth of them), {threads} thread(s), {repeats} repeats, per-epoch medians",
                  soft_wrap=True)
    table = Table()
    for col in ("case", "epochs", "activation", "k", "bare ms", "unlogged ms", "logged ms",
                "instrumented / bare"):
        table.add_column(col, justify="right")
    for r in overhead(epochs, repeats, threads):
        table.add_row(r["case"], str(r["epochs"]), r["activation"], str(r["k"]),
                      f"{r['bare_ms']:.3f}",
                      f"{r['unlogged_ms']:.3f}", f"{r['logged_ms']:.3f}", f"{r['ratio']:.3f}x")
    console.print(table)
    return 0


# -- throughput of the executors -------------------------------------------------------------------

def shortened(suite, epochs: int):
    """``suite`` with every point trained for ``epochs`` (CUDA points dropped where they would
    only be skipped): the same grid and trials, in a fraction of the time."""
    from bench.provenance import cuda_unavailable_reason

    points = tuple(dataclasses.replace(p, train=p.train.model_copy(update={"epochs": epochs}))
                   for p in suite.points if not cuda_unavailable_reason(p.train.device))
    return dataclasses.replace(suite, points=points)


def throughput(suite, configs: list[tuple[int | str, int]], repeats: int = 1) -> list[dict]:
    """Trials per second of ``run_suite`` for each (workers, threads), interleaved ``repeats``
    times so that machine noise hits every configuration alike; the best of the repeats.
    ``workers`` may be a Dask cluster spec (``"local:2"``): its start-up is timed too."""
    import tempfile
    from pathlib import Path

    from bench.execution.run import RunOptions, run_suite
    from bench.suite import expand

    n = len(expand(suite))
    best: dict[tuple[int, int], float] = {}
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    for _ in range(repeats):
        for workers, threads in configs:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                if isinstance(workers, str):
                    options = RunOptions(out=Path(tmp), cluster=workers, threads=threads)
                else:
                    options = RunOptions(out=Path(tmp), workers=workers, threads=threads)
                run_suite(suite, options, quiet)
                wall = time.perf_counter() - t0
            best[(workers, threads)] = min(wall, best.get((workers, threads), math.inf))
    return [{"workers": w, "threads": t, "trials": n, "wall_s": best[(w, t)],
             "trials_per_s": n / best[(w, t)]} for w, t in configs]


def scaling_main(suite, epochs: int, repeats: int, workers: int, console: Console,
                 cluster: str | None = None) -> int:
    short = shortened(suite, epochs)
    configs: list[tuple[int | str, int]] = [(1, 1), (1, 2), (workers, 1)]
    if cluster:
        configs.append((cluster, 1))
    console.print(f"executor throughput: {suite.name}'s CPU points at {epochs} epochs, best of "
                  f"{repeats}, configurations interleaved", soft_wrap=True)
    rows = throughput(short, configs, repeats)
    single = max(r["trials_per_s"] for r in rows if r["workers"] == 1)
    if cluster:
        console.print(f"the Dask row starts a LocalCluster ({cluster}) inside its timed run")
    table = Table()
    for col in ("workers", "threads", "trials", "wall s", "trials/s", "vs best single process"):
        table.add_column(col, justify="right")
    for r in rows:
        label = f"dask {r['workers']}" if isinstance(r["workers"], str) else str(r["workers"])
        table.add_row(label, str(r["threads"]), str(r["trials"]), f"{r['wall_s']:.1f}",
                      f"{r['trials_per_s']:.2f}", f"{r['trials_per_s'] / single:.2f}x")
    console.print(table)
    return 0


# -- trial packing ----------------------------------------------------------------------------------

_PACK_SUITE = """
name = "perf-pack"
seeds = {seeds}
[task]
{task}
[model]
{model}
activation = "relu"
[train]
optimizer = "adam"
lr = 1e-3
weight_decay = 1e-5
epochs = {epochs}
device = "{device}"
{train}
"""

SPIRAL = 'kind = "spiral"'
MNIST1D_SHAPED = 'kind = "bench.perf:mnist1d_shaped"'
REFERENCE_CNN = ('kind = "cnn1d"\nchannels = [25, 25, 25]\nkernel = [5, 3, 3]\nstride = 2\n'
                 'padding = 1')
# (label, [task] keys, hidden widths or [model] keys, extra [train] keys, share of --epochs):
# the main suite's full batch, its k = 8 micro-batches, mini-batch training, where
# per-operator overhead dominates, wider nets at the edge of the auto rule
# (packing.AUTO_MAX_ELEMENTS), and the MNIST-1D reference models on data of its shape with the
# suite's recipe (batches of 100, log_every = 25; 50 epochs at the default --epochs), so that
# the whole-trial speed-up holds the logged evaluations in the suite's proportion.
MNIST1D_RECIPE = "batch_size = 100\nlog_every = 25"
PACK_CASES = [
    ("spiral 3000, full batch", SPIRAL, [100], "", 1.0),
    ("spiral 3000, full batch, k = 8", SPIRAL, [100], "accumulation_steps = 8", 1.0),
    ("spiral 300, full batch", 'kind = "spiral"\npoints_per_class = 100', [100], "", 1.0),
    ("spiral 3000, batches of 100", SPIRAL, [100], "batch_size = 100", 0.1),
    ("spiral 3000, batches of 32", SPIRAL, [100], "batch_size = 32", 0.04),
    ("[512, 512], batches of 100", SPIRAL, [512, 512], "batch_size = 100", 0.03),
    ("[1024], batches of 64", SPIRAL, [1024], "batch_size = 64", 0.03),
    ("[256], batches of 500", SPIRAL, [256], "batch_size = 500", 0.1),
    ("[256, 256], batches of 64", SPIRAL, [256, 256], "batch_size = 64", 0.03),
    ("8 x [64], batches of 64", SPIRAL, [64] * 8, "batch_size = 64", 0.03),
    ("[512, 512], batches of 32", SPIRAL, [512, 512], "batch_size = 32", 0.01),
    ("MNIST-1D recipe, [100, 100]", MNIST1D_SHAPED, [100, 100], MNIST1D_RECIPE, 1 / 6),
    ("MNIST-1D recipe, residual [100, 100]", MNIST1D_SHAPED,
     "hidden = [100, 100]\nresidual = true", MNIST1D_RECIPE, 1 / 6),
    ("MNIST-1D recipe, reference CNN", MNIST1D_SHAPED, REFERENCE_CNN, MNIST1D_RECIPE, 1 / 6),
]


def pack_speedup(epochs: int = 100, repeats: int = 3, threads: int = 1, seeds: int = 6,
                 device: str = "cpu", cases: list | None = None,
                 on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Per case: wall time of the seeds trained one at a time and as one pack (best of
    ``repeats``, interleaved), and how far the pack's numbers are from the single runs'.
    ``on_row`` gets each case's row as soon as it is measured.

    The wall time holds a run's fixed costs too: building the data and models, the metered
    warm-up epoch, the logged evaluations (epoch 0 and the last) with their probes, which in a
    short case are much of it. ``epoch_speedup`` compares the trials' own ``time_per_epoch_s``
    (the mean epoch after the warm-up; a packed trial's is its share of the pack's): the
    training loop's throughput, what a long run such as the MNIST-1D suite's 200 epochs is
    made of."""
    from bench.training.loop import run_pack

    torch.set_num_threads(threads)
    rows = []
    for label, task, hidden, train, share in cases or PACK_CASES:
        model = hidden if isinstance(hidden, str) else f"hidden = {hidden}"
        text = _PACK_SUITE.format(seeds=list(range(seeds)), task=task, train=train, model=model,
                                  epochs=max(2, round(epochs * share)), device=device)
        specs = expand(parse_suite(text, source="perf"))
        warm = [dataclasses.replace(s, train=s.train.model_copy(update={"epochs": 2}))
                for s in specs]
        run_trial(warm[0], threads)  # untimed: first calls pay for lazy initialization
        run_pack(warm, threads)
        alone_s = packed_s = alone_epoch_s = packed_epoch_s = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            alone = [run_trial(s, threads) for s in specs]
            alone_s = min(alone_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            packed = run_pack(specs, threads)
            packed_s = min(packed_s, time.perf_counter() - t0)
            alone_epoch_s = min(alone_epoch_s, sum(r.trial["time_per_epoch_s"] for r in alone))
            packed_epoch_s = min(packed_epoch_s, sum(r.trial["time_per_epoch_s"] for r in packed))
        for r in (*alone, *packed):
            if r.status != "ok":
                raise RuntimeError(f"{label}: a trial ended {r.status}: {r.trial['error']}")
        loss_diff = max(abs(p.trial["final_loss"] - a.trial["final_loss"])
                        / max(abs(a.trial["final_loss"]), 1e-12) for p, a in zip(packed, alone))
        weight_diff = max(float((p.state_dict[k] - w).abs().max())
                          for p, a in zip(packed, alone) for k, w in a.state_dict.items())
        rows.append({"case": label, "epochs": specs[0].train.epochs, "seeds": seeds,
                     "alone_s": alone_s, "packed_s": packed_s, "speedup": alone_s / packed_s,
                     "alone_epoch_s": alone_epoch_s, "packed_epoch_s": packed_epoch_s,
                     "epoch_speedup": alone_epoch_s / packed_epoch_s,
                     "loss_rel_diff": loss_diff, "weight_abs_diff": weight_diff})
        if on_row is not None:
            on_row(rows[-1])
    return rows


def pack_main(epochs: int, repeats: int, threads: int, seeds: int, device: str,
              console: Console) -> int:
    console.print(f"trial packing: {seeds} seeds one at a time vs one pack, relu models, "
                  f"adam, {device}, {threads} thread(s), best of {repeats}, interleaved",
                  soft_wrap=True)
    table = Table()
    for col in ("case", "epochs", "one at a time s", "packed s", "speed-up",
                "speed-up per epoch", "max rel. Δ final loss", "max |Δ weight|"):
        table.add_column(col, justify="right")
    def row(r: dict) -> None:
        cells = (r["case"], str(r["epochs"]), f"{r['alone_s']:.2f}", f"{r['packed_s']:.2f}",
                 f"{r['speedup']:.2f}x", f"{r['epoch_speedup']:.2f}x",
                 f"{r['loss_rel_diff']:.1e}", f"{r['weight_abs_diff']:.1e}")
        table.add_row(*cells)
        console.print("  " + " | ".join(cells), soft_wrap=True)  # kept if the run is cut short

    pack_speedup(epochs, repeats, threads, seeds, device, on_row=row)
    console.print(table)
    console.print("The Δ columns are float drift, not a different computation: a packed step "
                  "matches the trial's own to 1e-5 (tests/training/test_packing.py), and over thousands "
                  "of Adam steps any change of summation order grows, as the same trial run on "
                  "2 threads instead of 1 does (the reference CNN: ~0.5% in final loss after "
                  "2,000 steps, either way).", soft_wrap=True)
    return 0
