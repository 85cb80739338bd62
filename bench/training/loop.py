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
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import cached_property

import torch
import torch.nn.functional as F

from bench import schema
from bench.provenance import cuda_unavailable_reason
from bench.training import measures
from bench.training.activations import resolve
from bench.training.memory import LiveTensorMeter, PeakMemory, tensor_bytes
from bench.training.model import build_model
from bench.training.optimizers import build_optimizer
from bench.training.packing import PackedModel, stack
from bench.training.probes import LayerProbe
from bench.training.recording import Member, diverged, finish_row, record_epoch
from bench.training.result import TrialResult, not_trained, trial_row
from bench.training.spec import TrialSpec
from bench.training.state import intra_op_threads
from bench.training.tasks import TaskData, draw_task


def run_trial(spec: TrialSpec, threads: int = 1) -> TrialResult:
    """Train one trial. Never raises for a trial's own failure: that becomes its status."""
    return run_pack([spec], threads)[0]


def _shapes(data: TaskData) -> tuple:
    """What the members of a pack must share: tensor shapes, the kind and the output width (a
    user task may draw another number of classes for another seed)."""
    tensors = (data.x_train, data.y_train, data.x_test, data.y_test, data.x_val, data.y_val)
    return (data.kind, data.out_features, *(None if t is None else t.shape for t in tensors))


def run_pack(specs: Sequence[TrialSpec], threads: int = 1,
             on_progress: Callable[[float], None] | None = None) -> list[TrialResult]:
    """Train trials that differ only in the seed, as one packed model when there are several
    (packing.py), and return one result per spec, in order. A pack that cannot be built (its
    members' data differ in shape) or that runs out of memory runs its members one at a time
    instead. ``on_progress`` gets the share of the epochs done (0 to 1) after each epoch, so
    that a progress bar can advance while a pack trains."""
    reason = cuda_unavailable_reason(specs[0].train.device)
    if reason:
        return [not_trained(spec, threads, schema.SKIPPED, reason) for spec in specs]
    rows = [trial_row(spec, threads, len(specs)) for spec in specs]
    try:
        with intra_op_threads(threads):
            return Trainer(specs, rows).run(on_progress)
    except _Unpackable:
        pass  # its members run alone, below
    except Exception as exc:  # a crashed trial is a row, and the run goes on
        if not (isinstance(exc, torch.OutOfMemoryError) and len(specs) > 1):
            trace = traceback.format_exc(limit=-4)
            return [not_trained(spec, threads, schema.FAILED, f"{type(exc).__name__}: {exc}",
                                len(specs), traceback=trace) for spec in specs]
        # out of memory as a pack: its size may be the cause, so its members run alone (the
        # cache is emptied below, once the exception's frames have let go of their tensors)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return [run_trial(spec, threads) for spec in specs]


def epoch_runner(specs: TrialSpec | Sequence[TrialSpec], logged: bool) -> Callable[[], None]:
    """One epoch of the training loop of ``specs`` (one trial, or a pack), to call again and
    again (the benchmarks time it): with ``logged`` the epoch carries the probes, as every
    ``log_every``-th epoch does."""
    specs = [specs] if isinstance(specs, TrialSpec) else list(specs)
    threads = torch.get_num_threads()
    trainer = Trainer(specs, [trial_row(s, threads, len(specs)) for s in specs])
    epoch_fn = (trainer._full_batch_epoch if specs[0].train.batch_size == "full"
                else trainer._mini_batch_epoch)

    def epoch() -> None:
        epoch_fn(1, logged, True, None)
        for member in trainer.members:  # a benchmark calls this thousands of times
            member.curves.clear()
            member.layers.clear()

    return epoch


class _Unpackable(Exception):
    """The members of a pack cannot share one model (their data differ in shape)."""


def _metered(meter: PeakMemory | None):
    """The meter's window around a block; a no-op without a meter."""
    return meter.window() if meter is not None else nullcontext()


def draw_trial(spec: TrialSpec) -> tuple[TaskData, torch.nn.Module]:
    """A trial's data and its model at init, as the trial draws them: torch (CUDA too) seeded
    with its seed, then the data, then the init (the course notebook's order). The one place
    that does it: the loop, ``bench perf``'s plain loops and the orchestration baseline."""
    data = draw_task(spec.task, spec.seed, spec.train.device.startswith("cuda"))
    return data, build_model(spec.model, data.x_train.shape[1], data.out_features)


def _draw(specs: Sequence[TrialSpec]) -> tuple[list[TaskData], list[torch.nn.Module]]:
    """Each trial's data and model (``draw_trial``); a pack whose user task fails for one
    seed is unpackable, so that each runs alone and only that seed's trial fails."""
    datas, models = [], []
    for s in specs:
        try:
            data, model = draw_trial(s)
        except ValueError:
            if len(specs) > 1:
                raise _Unpackable from None
            raise
        datas.append(data)
        models.append(model)
    return datas, models


class Trainer:
    """The training loop of one trial, or of a pack of trials that differ only in the seed.

    Unpacked, the model (model.build_model: an MLP or a CNN1d) takes (samples x features)
    tensors. Packed, it is a PackedModel on (members x samples x features) tensors: ``self.sd``
    is the samples' dimension, losses and accuracies are per member, and a member that
    diverges is recorded and left behind while the others train on.
    """

    def __init__(self, specs: Sequence[TrialSpec], rows: Sequence[dict]):
        self.spec = spec = specs[0]
        cfg = spec.train
        self.packed = len(specs) > 1
        self.members = [Member(s, r) for s, r in zip(specs, rows)]
        self.device = torch.device(cfg.device)
        datas, models = _draw(specs)
        first = datas[0]
        if self.packed:
            if any(_shapes(d) != _shapes(first) for d in datas):
                raise _Unpackable
            self.model = PackedModel(models)
        else:
            self.model = models[0]
        self.model.to(self.device)
        self.sd = 1 if self.packed else 0
        self.n_train = first.x_train.shape[0]
        self.classify = first.kind == "classification"

        def joined(get):
            tensor = stack([get(d) for d in datas]) if self.packed else get(first)
            return tensor.to(self.device) if tensor is not None else None

        self.x, self.y = joined(lambda d: d.x_train), joined(lambda d: d.y_train)
        self.x_test, self.y_test = joined(lambda d: d.x_test), joined(lambda d: d.y_test)
        self.x_val, self.y_val = joined(lambda d: d.x_val), joined(lambda d: d.y_val)
        self.loss_fn = F.cross_entropy if self.classify else F.mse_loss
        # Each member's own stream for the data order.
        self.batches = [torch.Generator().manual_seed(s.seed) for s in specs]
        self.activation = resolve(spec.model.activation, spec.model.activation_args)
        k = cfg.accumulation_steps  # "full": the whole set in k near-equal micro-batches (views)
        self.full_chunks = list(zip(self.x.tensor_split(k, dim=self.sd),
                                    self.y.tensor_split(k, dim=self.sd)))
        self._member_rows = torch.arange(len(specs), device=self.device).unsqueeze(1)
        self.peak_memory: int | None = None
        self._reference: torch.Tensor | None = None  # the full-set gradient at init (CPU)

    # -- one optimizer step (or one evaluation) over a list of micro-batches ------------------

    def _losses(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean loss: a 0-d tensor, or one per member for a pack."""
        if not self.packed:
            return self.loss_fn(out, target)
        per_sample = self.loss_fn(out.flatten(0, 1), target.flatten(0, 1), reduction="none")
        return per_sample.reshape(len(self.members), -1).mean(1)

    def _accumulate(self, chunks, probe: LayerProbe | None, want_correct: bool, fetch=None):
        """Forward+backward over micro-batches; the gradient is that of the whole step.

        Each micro-batch's mean loss is weighted by its share of the step's samples, so the sum
        is (sum of per-sample losses) / (samples in the step), exact for ragged splits too.
        Returns the step's loss as a tensor (0-d, or one per member; no host sync) and the
        accuracy per member (NaN unless asked for). A pack backpropagates the sum of its
        members' losses: member p's weights get member p's gradient.

        With ``fetch``, ``chunks`` are sample indices and each micro-batch is gathered only when
        its turn comes, so a step holds one micro-batch of inputs, not k.
        """
        self.model.zero_grad(set_to_none=True)
        sizes = ([index.shape[-1] for index in chunks] if fetch is not None
                 else [xb.shape[self.sd] for xb, _ in chunks])
        n_step = sum(sizes)
        total = correct = None
        for chunk, size in zip(chunks, sizes):
            if size == 0:
                continue
            xb, yb = fetch(chunk) if fetch is not None else chunk
            out = self.model(xb)
            loss = self._losses(out, yb)
            if size != n_step:
                loss = loss * (size / n_step)
            (loss.sum() if self.packed else loss).backward()
            total = loss.detach() if total is None else total + loss.detach()
            if want_correct:
                hits = (out.detach().argmax(-1) == yb).sum(-1)
                correct = hits if correct is None else correct + hits
            del xb, yb, out, loss  # before the next micro-batch is gathered: one at a time
        accuracy = ([c / n_step for c in correct.reshape(-1).tolist()] if correct is not None
                    else [math.nan] * len(self.members))
        return total, accuracy


    # -- recording ----------------------------------------------------------------------------

    def _record(self, epoch: int, losses: list[float], accuracies: list[float],
                probe: LayerProbe | None) -> None:
        with LiveTensorMeter.paused():  # logging is not the step's memory
            record_epoch(self, epoch, losses, accuracies, probe)


    def _probe(self, meter: PeakMemory | None = None) -> LayerProbe:
        return LayerProbe(self.model, self.activation, metered=meter is not None)

    def _logged(self, epoch: int) -> bool:
        return epoch % self.spec.train.log_every == 0 or epoch == self.spec.train.epochs

    def _evaluated(self, epoch: int, loss: torch.Tensor, accuracies: list[float]) -> list[float]:
        """Check an evaluation's losses (one host sync): a member whose loss is not finite
        diverged at ``epoch``. Returns the losses; the best losses of the others move on."""
        losses = loss.reshape(-1).tolist()
        for p, m in enumerate(self.members):
            if not m.active:
                continue
            if math.isfinite(losses[p]):
                m.best_loss = min(m.best_loss, losses[p])
            else:
                self._diverged(p, epoch, losses[p], accuracies[p])
        return losses

    @property
    def _stopped(self) -> bool:
        return not any(m.active for m in self.members)

    @cached_property
    def optimizer(self) -> torch.optim.Optimizer:
        """Built at the first step, not with the trainer: an init-only trial (epochs = 0) never
        steps, and the first torch.optim optimizer of a process imports torch._dynamo (about
        1.5 s). Building it takes no random numbers, so a trial's numbers do not change."""
        cfg = self.spec.train
        return build_optimizer(cfg.optimizer, self.model.parameters(), lr=cfg.lr_effective,
                               weight_decay=cfg.weight_decay, momentum=cfg.momentum)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, on_progress: Callable[[float], None] | None = None) -> list[TrialResult]:
        cfg = self.spec.train
        resident = tensor_bytes([*self.model.parameters(), self.x, self.y,
                                 self.x_test, self.y_test, self.x_val, self.y_val])
        if cfg.epochs > 0 and cfg.batch_size == "full":
            self._reference = measures.full_set_gradient(self)
        start = time.perf_counter()
        epoch_times: list[float] = []
        epoch_fn = self._full_batch_epoch if cfg.batch_size == "full" else self._mini_batch_epoch
        for epoch in range(cfg.epochs + 1):
            training = epoch < cfg.epochs
            # Peak memory is measured over the first epoch of training (or, with epochs = 0, the
            # one evaluation): the warm-up, which time_per_epoch_s leaves out.
            meter = PeakMemory(self.device, resident) if epoch == 0 else None
            t0 = time.perf_counter()
            epoch_fn(epoch, self._logged(epoch), training, meter)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            if training:
                epoch_times.append(time.perf_counter() - t0)
            if meter is not None:
                self.peak_memory = meter.peak
            if training and on_progress is not None:
                on_progress((epoch + 1) / cfg.epochs)
            if self._stopped:
                break
        wall = time.perf_counter() - start
        measures.extrapolation(self)
        results = []
        for p, m in enumerate(self.members):
            finish_row(self, m, wall, epoch_times)
            if m.state_dict is None:
                m.state_dict = self._state_dict(p)
            share = [t / len(self.members) for t in epoch_times]
            results.append(TrialResult(m.row, m.curves, m.layers, m.state_dict, share))
        return results

    # -- measurements outside the loop ------------------------------------------------------


    def _state_dict(self, p: int) -> dict:
        if self.packed:
            return self.model.member_state_dict(p)
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def _full_batch_epoch(self, epoch, logged, training, meter) -> None:
        """One full-batch step; its forward pass is also the evaluation of epoch ``epoch``.

        The step is metered in two windows, forward+backward and the update, with the logging
        in between left out (the allocator's peak on CUDA cannot be paused).
        """
        probe = self._probe(meter) if logged else None
        try:
            with _metered(meter):
                loss, acc = self._accumulate(self.full_chunks, probe, self.classify and logged)
        finally:
            if probe:
                probe.close()
        # One host sync per epoch: divergence is caught when it happens.
        losses = self._evaluated(epoch, loss, acc)
        if self._stopped:
            return
        if logged:
            self._record(epoch, losses, acc, probe)
        if training:
            self._first_step()
            with _metered(meter):
                self.optimizer.step()

    EVAL_SAMPLES = 1000  # the logged evaluation's pieces (see _mini_batch_epoch)

    def _sample(self, index: torch.Tensor):
        """The micro-batch at ``index`` (samples; members x samples for a pack)."""
        if not self.packed:
            return self.x[index], self.y[index]
        return self.x[self._member_rows, index], self.y[self._member_rows, index]

    def _mini_batch_epoch(self, epoch, logged, training, meter) -> None:
        """Evaluate epoch ``epoch`` on the whole training set if logged, then train one epoch.

        The evaluation runs in chunks of at least EVAL_SAMPLES samples (one step's, if more);
        the peak memory is that of the training micro-batches, so it is measured around them
        only.
        """
        cfg = self.spec.train
        k, b = cfg.accumulation_steps, int(cfg.batch_size)
        if logged:
            # In pieces of EVAL_SAMPLES (or one step's samples, if more): small steps would make
            # the logged evaluation dispatch-bound (MNIST-1D's CNN: 49 ms per pass over the
            # training set in pieces of 100, 28 ms in pieces of 500). One micro-batch when this
            # evaluation is what the memory meter measures (epochs = 0). The weighting keeps
            # the numbers those of the whole set.
            size = b if meter is not None and not training else max(b * k, self.EVAL_SAMPLES)
            chunks = list(zip(self.x.split(size, dim=self.sd), self.y.split(size, dim=self.sd)))
            probe = self._probe(meter if not training else None)
            try:
                with _metered(meter if not training else None):
                    loss, acc = self._accumulate(chunks, probe, self.classify)
            finally:
                probe.close()
            losses = self._evaluated(epoch, loss, acc)
            if self._stopped:
                return
            self._record(epoch, losses, acc, probe)
            if epoch == 0 and training:  # the full-set gradient at init, from that evaluation
                with LiveTensorMeter.paused():
                    self._reference = measures.per_member(
                        self, (p.grad for p in self.model.parameters()))
        if not training:
            return
        orders = [torch.randperm(self.n_train, generator=g) for g in self.batches]
        order = torch.stack(orders) if self.packed else orders[0]
        micro = order.to(self.device).split(b, dim=self.sd)
        epoch_loss = None
        with _metered(meter):
            for s in range(0, len(micro), k):  # the last step may hold fewer than k: step on it
                loss, _ = self._accumulate(micro[s:s + k], None, False, fetch=self._sample)
                epoch_loss = loss if epoch_loss is None else epoch_loss + loss
                self._first_step()
                self.optimizer.step()
        # One sync per epoch; a non-finite step poisons the weights, so the sum shows it.
        for p, value in enumerate(epoch_loss.reshape(-1).tolist()):
            if self.members[p].active and not math.isfinite(value):
                self._diverged(p, epoch + 1, math.nan, math.nan)

    def _first_step(self) -> None:
        """Between the first step's backward and its update (measures.grad_equivalence)."""
        measures.grad_equivalence(self)

    def _diverged(self, p: int, epoch: int, loss: float, accuracy: float) -> None:
        diverged(self.members[p], epoch, loss, accuracy,
                 self._state_dict(p) if self.packed else None)  # a pack trains on without it
