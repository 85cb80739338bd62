"""End to end through ``python -m bench``, as a user runs it."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from tests.helpers import bench_command

TINY = """
name = "tiny"
description = "a suite small enough for tests"
seeds = [0, 1]

[task]
kind = "spiral"
points_per_class = 40

[model]
hidden = [8]
activation = "relu"

[train]
optimizer = "adam"
lr = 0.01
epochs = {epochs}
log_every = 5
target = {{ metric = "accuracy", value = 0.4 }}

[sweep]
"model.activation" = ["relu", "tanh"]
"train.accumulation_steps" = [1, 3]
"train.device" = ["cpu", "cuda"]
"""

TRIAL_COLUMNS = [
    "trial_id", "seed", "model.activation", "model.hidden", "model.init", "train.lr",
    "train.batch_size", "train.accumulation_steps", "train.device", "task.kind", "status",
    "error", "final_loss", "final_accuracy", "best_loss", "epochs_to_target", "dead_fraction",
    "grad_norm", "time_total_s", "time_per_epoch_s", "samples_per_s", "peak_memory_bytes",
    "device_name", "threads", "worker", "train.target.metric"]
CURVE_COLUMNS = ["trial_id", "epoch", "loss", "accuracy", "grad_norm"]
LAYER_COLUMNS = ["trial_id", "epoch", "layer", "dead_fraction", "saturated_fraction",
                 "activation_mean", "activation_std", "weight_grad_norm", "backprop_grad_std"]


def bench(*args, cwd, timeout=300, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def write_suite(tmp_path, epochs=20, text=TINY):
    path = tmp_path / "tiny.toml"
    path.write_text(text.format(epochs=epochs))
    return path


def run_dirs(root: Path):
    return sorted(p.parent for p in root.glob("*/*/manifest.json"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    suite = write_suite(tmp)
    result = bench("run", suite, "--out", tmp / "out", "--workers", "2", cwd=tmp)
    assert result.returncode == 0, result.stderr
    (run_dir,) = run_dirs(tmp / "out")
    return result, run_dir


def test_run_writes_the_contract_tables(tiny_run):
    result, run_dir = tiny_run
    assert run_dir.parent.name == "tiny"
    assert str(run_dir) in result.stdout.replace("\n", "")
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 2 * 2 * 2 * 2 and trials.trial_id.is_unique
    assert set(TRIAL_COLUMNS) <= set(trials.columns)
    cpu = trials[trials["train.device"] == "cpu"]
    assert (cpu.status == "ok").all()
    for col in ["final_loss", "final_accuracy", "best_loss", "grad_norm", "time_total_s",
                "time_per_epoch_s", "samples_per_s", "peak_memory_bytes", "device_name",
                "epochs_to_target"]:
        assert cpu[col].notna().all(), col
    relu = cpu[cpu["model.activation"] == "relu"]
    tanh = cpu[cpu["model.activation"] == "tanh"]
    assert relu.dead_fraction.notna().all()  # docs/results.md: mean over ReLU-family layers ...
    assert tanh.dead_fraction.isna().all()   # ... and a tanh net has none
    assert tanh.saturated_fraction.notna().all()
    assert cpu[cpu["model.activation"] == "relu"].saturated_fraction.isna().all()
    assert "final_test_loss" not in trials.columns  # spiral has no held-out split

    curves = pd.read_parquet(run_dir / "curves.parquet")
    layers = pd.read_parquet(run_dir / "layers.parquet")
    assert set(CURVE_COLUMNS) <= set(curves.columns)
    assert set(LAYER_COLUMNS) <= set(layers.columns)
    assert sorted(curves.epoch.unique()) == [0, 5, 10, 15, 20]
    assert set(curves.trial_id) == set(cpu.trial_id) == set(layers.trial_id)
    last = curves[curves.epoch == 20].set_index("trial_id").loc[cpu.trial_id]
    assert (last.loss.values == cpu.final_loss.values).all()

    schema = pq.read_schema(run_dir / "trials.parquet")
    assert str(schema.field("model.hidden").type) == "list<element: int64>"
    assert str(schema.field("train.batch_size").type) == "string"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["state"] == "finished"
    assert manifest["suite"]["text"] == (run_dir.parent.parent.parent / "tiny.toml").read_text()
    assert manifest["workers"] == 2 and manifest["threads"] == 1
    for key in ("host", "cpu", "torch", "python", "gpus"):
        assert key in manifest["machine"]


def test_run_renders_its_report_at_the_end(tiny_run):
    result, run_dir = tiny_run
    report = run_dir.parent.parent.parent / "reports" / "tiny" / run_dir.name  # cwd/reports/...
    assert f"report: reports/tiny/{run_dir.name}/report.html" in result.stdout.replace("\n", "")
    html = (report / "report.html").read_text()
    title = ("2 activations × 2 accumulation steps × 2 devices" if torch.cuda.is_available()
             else "2 activations × 2 accumulation steps")  # skipped CUDA trials compared nothing
    assert f"<h1>{title} on spiral, 2 seeds each</h1>" in html and "Suite <code>tiny</code>" in html
    assert "data:image/png;base64," in html
    md = (report / "report.md").read_text()
    for link in re.findall(r"\]\((figures/[\w-]+\.png)\)", md):
        assert (report / link).stat().st_size > 1000


def test_report_command_writes_the_formats_asked_for(tiny_run, tmp_path):
    _, run_dir = tiny_run
    result = bench("report", run_dir, "--out", tmp_path / "r", "--format", "md", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "report.md").is_file() and not (tmp_path / "r" / "report.html").exists()


def test_report_bad_input_is_one_message(tiny_run, tmp_path, capsys):
    from bench.cli import main

    _, run_dir = tiny_run
    for args, expected in (([run_dir, "--format", "pdf"], "valid choices: html, md"),
                           ([tmp_path / "nowhere"], "no such run folder"),
                           ([tmp_path], "not a run folder")):
        assert main(["report", *map(str, args), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cuda_rows_are_skipped_with_a_reason_not_dropped(tiny_run):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: its rows run")
    _, run_dir = tiny_run
    trials = pd.read_parquet(run_dir / "trials.parquet")
    cuda = trials[trials["train.device"] == "cuda"]
    assert len(cuda) == 8 and (cuda.status == "skipped").all()
    assert cuda.error.str.contains("CUDA is not available").all()


def test_dry_run_prints_the_grid_and_runs_nothing(tmp_path):
    suite = write_suite(tmp_path)
    result = bench("run", suite, "--dry-run", "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "8 grid points x 2 seeds = 16 trials" in result.stdout
    assert "model.activation" in result.stdout and "tanh" in result.stdout
    assert not (tmp_path / "out").exists()


QUICK_CLAIMS = """
[[expect]]
description = "relu learns the small spiral"
where = { "model.activation" = "relu", "train.accumulation_steps" = 1 }
metric = "final_accuracy"
min = 0.3

[[expect]]
description = "an impossible bound, to see a failing claim fail the run"
where = { "model.activation" = "relu", "train.accumulation_steps" = 1 }
metric = "final_accuracy"
min = 1.01
"""


def test_quick_runs_only_the_claimed_points_and_checks_them(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY.format(epochs=10) + QUICK_CLAIMS)
    result = bench("run", suite, "--quick", "--no-report", "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # the second claim fails
    assert "quick: 4 of 16 trials" in result.stdout and "1 passed, 1 failed" in result.stdout
    (run_dir,) = run_dirs(tmp_path / "out")
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert set(trials["model.activation"]) == {"relu"} and len(trials) == 4
    assert set(trials["train.accumulation_steps"]) == {1}
    cpu = trials[trials["train.device"] == "cpu"]
    assert len(cpu) == 2 and set(cpu["status"]) == {"ok"}
    # the claimed CUDA points are rows too: skipped here, run where there is a GPU
    assert set(trials.loc[trials["train.device"] == "cuda", "status"]) <= {"ok", "skipped"}


def test_quick_without_claims_is_a_user_error(tmp_path, capsys):
    from bench.cli import main

    suite = write_suite(tmp_path)
    assert main(["run", str(suite), "--quick", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no [[expect]] claims" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: t.replace('"tanh"]', '"tahn"]'), ["tiny.toml", "'model.activation'", "'tahn'",
                                                   "did you mean 'tanh'"]),
    (lambda t: t.replace("lr = 0.01", "lr = \"big\""), ["tiny.toml", "[train] lr", "'big'"]),
    (lambda t: t.replace("[model]", "[model]\ndepth = 3"), ["tiny.toml", "[model] depth", "unknown key"]),
])
def test_bad_input_is_one_message_exit_2_no_traceback(tmp_path, capsys, mutate, expected):
    from bench.cli import main  # in-process: test_missing_suite... runs one as a real process

    suite = tmp_path / "tiny.toml"
    suite.write_text(mutate(TINY.format(epochs=5)))
    assert main(["run", str(suite), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for part in expected:
        assert part in err
    assert not (tmp_path / "out").exists()


def test_missing_suite_and_bad_resume_are_user_errors(tmp_path):
    result = bench("run", tmp_path / "nope.toml", cwd=tmp_path)
    assert result.returncode == 2 and "nope.toml" in result.stderr and "Traceback" not in result.stderr
    suite = write_suite(tmp_path)
    result = bench("run", suite, "--resume", tmp_path, cwd=tmp_path)
    assert result.returncode == 2 and "not a run folder" in result.stderr


def test_list_names_everything():
    result = bench("list", cwd=".")
    assert result.returncode == 0
    for name in ("spiral", "cubic", "digits", "leaky_relu", "softsign", "xavier_uniform",
                 "kaiming_normal", "orthogonal", "adamw"):
        assert name in result.stdout


def _start_and_stop(tmp_path, sig, epochs):
    """Start a run, wait until some CPU trials are stored (not all), signal its process group.
    Returns (proc, stderr), or None when the run had already finished (a fast machine)."""
    suite = write_suite(tmp_path, epochs=epochs)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(bench_command("run", suite, "--out", tmp_path / "out",
                                          "--workers", "2"), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    parts = tmp_path / "out" / "tiny"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = [p for p in parts.glob("*/parts/*/trial.parquet")
                if not p.parent.name.startswith(".")]  # temporary parts are renamed away
        if sum(pd.read_parquet(p).status.iloc[0] == "ok" for p in done) >= 2:
            break
        time.sleep(0.05)
    if proc.poll() is not None:  # it finished before the signal could reach it
        proc.communicate()
        shutil.rmtree(tmp_path / "out")
        return None
    os.killpg(proc.pid, sig)  # the whole process group, as Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    return proc, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_then_resume_loses_nothing_and_runs_nothing_twice(tmp_path, sig):
    for epochs in (300, 3000):
        stopped = _start_and_stop(tmp_path, sig, epochs)
        if stopped is not None:
            break
    assert stopped is not None, "the run always finished before it could be interrupted"
    proc, err = stopped
    suite = tmp_path / "tiny.toml"
    (run_dir,) = run_dirs(tmp_path / "out")
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "--resume" in err, (proc.returncode, err[-3000:])
    before = {p.parent.name: p.stat().st_mtime_ns for p in run_dir.glob("parts/*/trial.parquet")
              if not p.parent.name.startswith(".")}
    assert 0 < len(before) < 16
    # The tables were rewritten after each stored trial: even after kill -9 they hold the stored
    # trials, except one stored in the instant before the kill (its part is complete).
    in_table = set(pd.read_parquet(run_dir / "trials.parquet").trial_id)
    assert in_table <= set(before) and len(set(before) - in_table) <= 2

    result = bench("run", suite, "--out", tmp_path / "out", "--resume", run_dir, "--no-report",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "reports").exists()
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 16 and trials.trial_id.is_unique
    after = {p.parent.name: p.stat().st_mtime_ns for p in run_dir.glob("parts/*/trial.parquet")}
    kept = {tid for tid, status in zip(trials.trial_id, trials.status) if status in ("ok", "diverged")}
    for tid, mtime in before.items():  # stored trials were not run again
        if tid in kept:
            assert after[tid] == mtime
    curves = pd.read_parquet(run_dir / "curves.parquet")
    assert not curves.duplicated(["trial_id", "epoch"]).any()
    assert len(list(run_dir.glob("parts/.*"))) == 0 or all(
        not (p / "trial.parquet").exists() for p in run_dir.glob("parts/.*"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["sessions"]) == 2 and manifest["state"] == "finished"
