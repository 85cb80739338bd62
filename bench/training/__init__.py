"""Training: one trial, from its config to its numbers.

The lowest layer of actbench. A trial's whole configuration is a ``TrialSpec`` (``spec``): its
task (``tasks``), model (``model``, built from ``activations`` and ``inits``) and training
(``config``, ``optimizers``). ``run_trial`` and ``run_pack`` (``loop``) train it, measured by the
layer probes (``probes``), the trial measures (``measures``) and the peak-memory meter
(``memory``); ``packing`` trains several seeds of one grid point as one batched model. The
result is a ``TrialResult`` (``result``): rows for the three tables and the trained weights.

Nothing here knows about suites, run folders or reports.
"""

from bench.training.activations import ACTIVATIONS
from bench.training.config import ModelConfig, TrainConfig
from bench.training.inits import INITS
from bench.training.loop import draw_trial, run_pack, run_trial
from bench.training.model import build_model
from bench.training.optimizers import OPTIMIZERS
from bench.training.result import TrialResult, not_trained, trial_row
from bench.training.spec import TrialSpec
from bench.training.tasks import TASKS, draw_task, make_task

__all__ = ["ACTIVATIONS", "INITS", "OPTIMIZERS", "TASKS", "ModelConfig", "TrainConfig", "TrialResult",
           "TrialSpec", "build_model", "draw_task", "draw_trial", "make_task", "not_trained", "run_pack",
           "run_trial", "trial_row"]
