"""``run_trial``: the one training loop, instrumented by probes, returning one TrialResult.

Epoch e is the network after e epochs of updates, evaluated on the full training set; epoch 0
is the network at initialization and the last recorded epoch is ``epochs``. With full-batch
training the forward pass of update e+1 *is* the evaluation of epoch e, so logging costs no
extra pass; the one extra pass is the evaluation after the last update. ``final_loss`` is
therefore the loss *after* the last update (the homework prints the one before it, which is the
curve's ``epoch = epochs - 1`` row).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime

import torch
import torch.nn.functional as F

from .activations import ACTIVATIONS
from .memory import LiveTensorMeter, PeakMemory, tensor_bytes
from .model import MLP
from .optimizers import build_optimizer
from .probes import LayerProbe
from .provenance import cuda_unavailable_reason, device_name, worker_id
from .spec import TrialSpec
from .tasks import TaskData, make_task


@dataclass
class TrialResult:
    """One trial's rows for the three tables, and its final weights (CPU tensors)."""

    trial: dict
    curves: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    state_dict: dict | None = None
    epoch_times: list[float] = field(default_factory=list)  # wall time of each training epoch

    @property
    def status(self) -> str:
        return self.trial["status"]


_METRICS = ("final_loss", "final_accuracy", "best_loss", "dead_fraction", "saturated_fraction",
            "grad_norm", "time_total_s",
            "time_per_epoch_s", "time_warmup_s", "samples_per_s")


def trial_row(spec: TrialSpec, threads: int) -> dict:
    """The trials-table row of ``spec`` before it runs: config filled, metrics empty."""
    return {"trial_id": spec.trial_id, "suite": spec.suite, "variant": spec.variant,
            "seed": spec.seed, **spec.config, "status": "ok", "error": None,
            "diverged_epoch": None, **{m: math.nan for m in _METRICS},
            "epochs_to_target": None, "peak_memory_bytes": None, "n_params": None,
            "lr_effective": spec.train.lr_effective, "device_name": None,
            "threads": threads, "worker": worker_id(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds")}


def run_trial(spec: TrialSpec, threads: int = 1) -> TrialResult:
    """Train one trial. Never raises for a trial's own failure: that becomes its status."""
    row = trial_row(spec, threads)
    reason = cuda_unavailable_reason(spec.train.device)
    if reason:
        row.update(status="skipped", error=reason)
        return TrialResult(row)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _Trainer(spec, row).run()
    except Exception as exc:  # a crashed trial is a row, and the run goes on
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(limit=-4))
        return TrialResult(row)
    finally:
        torch.set_num_threads(previous_threads)


def epoch_runner(spec: TrialSpec, logged: bool) -> Callable[[], None]:
    """One epoch of ``spec``'s training loop, to call again and again (the benchmarks time it):
    with ``logged`` the epoch carries the probes, as every ``log_every``-th epoch does."""
    trainer = _Trainer(spec, trial_row(spec, torch.get_num_threads()))
    epoch_fn = (trainer._full_batch_epoch if spec.train.batch_size == "full"
                else trainer._mini_batch_epoch)

    def epoch() -> None:
        epoch_fn(1, logged, True, None)
        trainer.curves.clear()  # a benchmark calls this thousands of times
        trainer.layers.clear()

    return epoch


class _Trainer:
    def __init__(self, spec: TrialSpec, row: dict):
        self.spec, self.row = spec, row
        cfg = spec.train
        self.device = torch.device(cfg.device)
        torch.manual_seed(spec.seed)  # seeds CUDA too; drives data, then init (notebook order)
        data: TaskData = make_task(spec.task)
        self.model = MLP(spec.model, data.x_train.shape[1], data.out_features).to(self.device)
        self.classify = data.kind == "classification"
        self.x, self.y = data.x_train.to(self.device), data.y_train.to(self.device)
        self.x_test = data.x_test.to(self.device) if data.x_test is not None else None
        self.y_test = data.y_test.to(self.device) if data.y_test is not None else None
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters(),
                                         lr=cfg.lr_effective, weight_decay=cfg.weight_decay,
                                         momentum=cfg.momentum)
        self.loss_fn = F.cross_entropy if self.classify else F.mse_loss
        self.batches = torch.Generator().manual_seed(spec.seed)  # its own stream: data order
        self.activation = ACTIVATIONS[spec.model.activation]
        k = cfg.accumulation_steps  # "full": the whole set in k near-equal micro-batches (views)
        self.full_chunks = list(zip(self.x.tensor_split(k), self.y.tensor_split(k)))
        self.curves: list[dict] = []
        self.layers: list[dict] = []
        self.best_loss = math.inf
        self.epochs_to_target: int | None = None
        self.peak_memory: int | None = None

    # -- one optimizer step (or one evaluation) over a list of micro-batches ------------------

    def _accumulate(self, chunks, probe: LayerProbe | None, want_correct: bool):
        """Forward+backward over micro-batches; the gradient is that of the whole step.

        Each micro-batch's mean loss is weighted by its share of the step's samples, so the sum
        is (sum of per-sample losses) / (samples in the step), exact for ragged splits too.
        Returns the step's loss as a 0-d tensor (no host sync) and its accuracy (a float, NaN
        unless asked for).
        """
        self.optimizer.zero_grad(set_to_none=True)
        sizes = [xb.shape[0] for xb, _ in chunks]
        n_step = sum(sizes)
        total = correct = None
        for (xb, yb), size in zip(chunks, sizes):
            if size == 0:
                continue
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
            if size != n_step:
                loss = loss * (size / n_step)
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
            if want_correct:
                hits = (out.detach().argmax(1) == yb).sum()
                correct = hits if correct is None else correct + hits
        accuracy = float(correct) / n_step if correct is not None else math.nan
        return total, accuracy

    def _grad_norm(self) -> float:
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    @torch.no_grad()
    def _test_metrics(self) -> tuple[float, float]:
        if self.x_test is None:
            return math.nan, math.nan
        out = self.model(self.x_test)
        loss = float(self.loss_fn(out, self.y_test))
        acc = float((out.argmax(1) == self.y_test).float().mean()) if self.classify else math.nan
        return loss, acc

    # -- recording ----------------------------------------------------------------------------

    def _record(self, epoch: int, loss: float, accuracy: float, probe: LayerProbe | None) -> None:
        with LiveTensorMeter.paused():  # logging is not the step's memory
            self._record_unmetered(epoch, loss, accuracy, probe)

    def _record_unmetered(self, epoch, loss, accuracy, probe) -> None:
        test_loss, test_acc = self._test_metrics()
        row = {"epoch": epoch, "loss": loss, "accuracy": accuracy,
               "grad_norm": self._grad_norm() if probe else math.nan}
        if self.x_test is not None:  # test columns exist only for tasks with a held-out split
            row.update(test_loss=test_loss, test_accuracy=test_acc)
        self.curves.append(row)
        if probe is not None:
            self.layers.extend(probe.rows(epoch))
        self._check_target(epoch, {"loss": loss, "accuracy": accuracy,
                                   "test_loss": test_loss, "test_accuracy": test_acc})

    def _check_target(self, epoch: int, values: dict) -> None:
        target = self.spec.train.target
        if target is None or self.epochs_to_target is not None:
            return
        value = values.get(target.metric, math.nan)
        met = value <= target.value if target.metric.endswith("loss") else value >= target.value
        if met:
            self.epochs_to_target = epoch

    def _probe(self, meter: PeakMemory | None = None) -> LayerProbe:
        return LayerProbe(self.model, self.activation, metered=meter is not None)

    def _logged(self, epoch: int) -> bool:
        return epoch % self.spec.train.log_every == 0 or epoch == self.spec.train.epochs

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> TrialResult:
        cfg = self.spec.train
        resident = tensor_bytes([*self.model.parameters(), self.x, self.y,
                                 self.x_test, self.y_test])
        start = time.perf_counter()
        epoch_times: list[float] = []
        diverged_at = None
        epoch_fn = self._full_batch_epoch if cfg.batch_size == "full" else self._mini_batch_epoch
        for epoch in range(cfg.epochs + 1):
            training = epoch < cfg.epochs
            # Peak memory is measured over the first epoch of training (or, with epochs = 0, the
            # one evaluation): the warm-up, which time_per_epoch_s leaves out.
            meter = PeakMemory(self.device, resident) if epoch == 0 else None
            t0 = time.perf_counter()
            diverged_at = epoch_fn(epoch, self._logged(epoch), training, meter)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            if training:
                epoch_times.append(time.perf_counter() - t0)
            if meter is not None:
                self.peak_memory = meter.peak
            if diverged_at is not None:
                break
        self._finish(time.perf_counter() - start, epoch_times, diverged_at)
        return TrialResult(self.row, self.curves, self.layers,
                           {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                           epoch_times)

    @staticmethod
    def _metered(meter: PeakMemory | None):
        """The meter's window around a block; a no-op without a meter."""
        return meter.window() if meter is not None else nullcontext()

    def _full_batch_epoch(self, epoch, logged, training, meter):
        """One full-batch step; its forward pass is also the evaluation of epoch ``epoch``.

        The step is metered in two windows, forward+backward and the update, with the logging
        in between left out (the allocator's peak on CUDA cannot be paused).
        """
        probe = self._probe(meter) if logged else None
        try:
            with self._metered(meter):
                loss, acc = self._accumulate(self.full_chunks, probe, self.classify and logged)
        finally:
            if probe:
                probe.close()
        loss = float(loss)  # one host sync per epoch: divergence is caught when it happens
        if not math.isfinite(loss):
            return self._diverged(epoch, loss, acc)
        self.best_loss = min(self.best_loss, loss)
        if logged:
            self._record(epoch, loss, acc, probe)
        if training:
            with self._metered(meter):
                self.optimizer.step()
        return None

    def _mini_batch_epoch(self, epoch, logged, training, meter):
        """Evaluate epoch ``epoch`` on the whole training set if logged, then train one epoch.

        The evaluation runs in chunks of one step's samples; the peak memory is that of the
        training micro-batches, so it is measured around them only.
        """
        cfg = self.spec.train
        k, b = cfg.accumulation_steps, int(cfg.batch_size)
        if logged:
            # In pieces of one step's samples, or of one micro-batch when this evaluation is
            # what the memory meter measures (epochs = 0). The weighting keeps it exact.
            size = b if meter is not None and not training else b * k
            chunks = list(zip(self.x.split(size), self.y.split(size)))
            probe = self._probe(meter if not training else None)
            try:
                with self._metered(meter if not training else None):
                    loss, acc = self._accumulate(chunks, probe, self.classify)
            finally:
                probe.close()
            loss = float(loss)
            if not math.isfinite(loss):
                return self._diverged(epoch, loss, acc)
            self.best_loss = min(self.best_loss, loss)
            self._record(epoch, loss, acc, probe)
        if not training:
            return None
        micro = torch.randperm(len(self.x), generator=self.batches).to(self.device).split(b)
        epoch_loss = None
        with self._metered(meter):
            for s in range(0, len(micro), k):  # the last step may hold fewer than k: step on it
                chunks = [(self.x[i], self.y[i]) for i in micro[s:s + k]]
                loss, _ = self._accumulate(chunks, None, False)
                epoch_loss = loss if epoch_loss is None else epoch_loss + loss
                self.optimizer.step()
        # One sync per epoch; a non-finite step poisons the weights, so the sum shows it.
        if not math.isfinite(float(epoch_loss)):
            return self._diverged(epoch + 1, math.nan, math.nan)
        return None

    def _diverged(self, epoch: int, loss: float, accuracy: float) -> int:
        self.curves.append({"epoch": epoch, "loss": loss, "accuracy": accuracy,
                            "grad_norm": math.nan})
        return epoch

    def _finish(self, wall: float, epoch_times: list[float], diverged_at: int | None) -> None:
        row, last = self.row, self.curves[-1]
        bounded = self.activation.bounds is not None
        final_layers = [r for r in self.layers if r["epoch"] == last["epoch"]]
        steady = epoch_times[1:]
        per_epoch = sum(steady) / len(steady) if steady else math.nan
        row.update(
            final_loss=last["loss"], final_accuracy=last["accuracy"],
            best_loss=self.best_loss if math.isfinite(self.best_loss) else math.nan,
            epochs_to_target=self.epochs_to_target,
            # DESIGN: the mean over ReLU-family layers; a net without any has no dead fraction
            dead_fraction=_mean([r["dead_fraction"] for r in final_layers])
            if self.activation.relu_family else math.nan,
            saturated_fraction=_mean([r["saturated_fraction"] for r in final_layers]) if bounded
            else math.nan,
            grad_norm=last["grad_norm"], time_total_s=wall, time_per_epoch_s=per_epoch,
            time_warmup_s=epoch_times[0] if epoch_times else math.nan,
            samples_per_s=len(self.x) / per_epoch if steady else math.nan,
            peak_memory_bytes=self.peak_memory, n_params=sum(p.numel() for p in self.model.parameters()),
            device_name=device_name(self.device))
        if self.x_test is not None:
            row.update(final_test_loss=last.get("test_loss", math.nan),
                       final_test_accuracy=last.get("test_accuracy", math.nan))
        if diverged_at is not None:
            row.update(status="diverged", diverged_epoch=diverged_at,
                       error=f"non-finite loss ({last['loss']}) at epoch {diverged_at}")
        for r in self.curves:
            r["trial_id"] = row["trial_id"]
        for r in self.layers:
            r["trial_id"] = row["trial_id"]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
