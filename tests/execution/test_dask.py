"""Runs on a Dask cluster: a loopback scheduler and workers started as subprocesses here.

The module's cluster: one scheduler, a CPU worker, and a worker that declares ``GPU=1`` (on a
CPU-only machine its CUDA trials are skipped by the worker itself, which shows they were
routed there). Tests that kill something start their own processes.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

distributed = pytest.importorskip("distributed", reason="Dask is not installed: pip install -e '.[dask]'")

from bench.cli import main  # noqa: E402
from bench.execution import dask_cluster as cluster_module  # noqa: E402
from bench.training.spec import TrialSpec  # noqa: E402
from tests.helpers import bench_command, one_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HOST = socket.gethostname()

SUITE = """
name = "dasky"
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
[sweep]
"model.activation" = ["relu", "tanh"]
"train.device" = ["cpu", "cuda"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], env=ENV, cwd=log.parent,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def worker(address, tmp: Path, name: str, *extra) -> subprocess.Popen:
    return start(["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                  "--name", name, "--local-directory", str(tmp / name), *extra],
                 tmp / f"{name}.log")


def wait_for_workers(address: str, n: int) -> None:
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=60)


def scheduler(tmp: Path):
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    proc = start(["scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
                 tmp / "scheduler.log")
    return address, proc


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dask")
    address, sched = scheduler(tmp)
    cpu = worker(address, tmp, "cpu")
    gpu = worker(address, tmp, "gpu", "--resources", "GPU=1")
    try:
        wait_for_workers(address, 2)
        yield {"address": address, "tmp": tmp, "gpu_worker": f"{HOST}:{gpu.pid}",
               "cpu_worker": f"{HOST}:{cpu.pid}"}
    finally:
        stop(cpu, gpu, sched)


def bench(*args, cwd, timeout=120, env=ENV):
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def write_suite(tmp: Path, epochs: int = 20) -> Path:
    path = tmp / "dasky.toml"
    path.write_text(SUITE.format(epochs=epochs))
    return path


def finished_parts(pattern_root: Path) -> list[Path]:
    """Stored parts of trials that ran (ok or diverged): what --resume keeps."""
    parts = []
    for path in pattern_root.glob("*/parts/[!.]*/trial.parquet"):
        try:
            if pd.read_parquet(path).status.iloc[0] in ("ok", "diverged"):
                parts.append(path)
        except (OSError, ValueError):  # being renamed into place
            continue
    return parts


def only_run(out: Path) -> Path:
    (run_dir,) = (out / "dasky").iterdir()
    return run_dir


def test_a_dask_run_stores_what_a_local_run_stores(dask_cluster, tmp_path):
    """Interrupted with Ctrl-C and resumed on the cluster, a run stores what a local run does."""
    suite = write_suite(tmp_path, epochs=300)
    local = bench("run", suite, "--out", tmp_path / "local", "--workers", "1", "--no-report",
                  "--no-pack", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    args = bench_command("run", suite, "--out", tmp_path / "dask", "--scheduler",
                         dask_cluster["address"], "--no-report", "--no-pack")
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a trial trained and stored: Ctrl-C
        if finished_parts(tmp_path / "dask" / "dasky"):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before Ctrl-C: make its trials longer"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err, (proc.returncode, err[-3000:])
    run_dir = only_run(tmp_path / "dask")
    stored = len(finished_parts(tmp_path / "dask" / "dasky"))  # skipped ones run again
    assert 1 <= stored < 4
    remote = bench("run", suite, "--out", tmp_path / "dask", "--scheduler",
                   dask_cluster["address"], "--no-report", "--no-pack", "--resume", run_dir,
                   cwd=tmp_path)
    assert remote.returncode == 0, remote.stderr
    assert f"{8 - stored} to run" in remote.stderr
    a, b = (pd.read_parquet(only_run(tmp_path / d) / "trials.parquet").set_index("trial_id")
            for d in ("local", "dask"))
    assert sorted(a.index) == sorted(b.index) and len(b) == 8
    b = b.loc[a.index]
    ok = a.status == "ok"
    assert ok.sum() == 4 and (b.status[ok] == "ok").all()
    pd.testing.assert_series_equal(a.final_loss[ok], b.final_loss[ok], rtol=1e-6)
    # CPU trials ran on the workers; CUDA trials went only to the worker that declares a GPU,
    # which (on a machine without CUDA) recorded them as skipped with its own reason.
    assert set(b.worker[ok]) <= {dask_cluster["cpu_worker"], dask_cluster["gpu_worker"]}
    cuda = b["train.device"] == "cuda"
    assert set(b.worker[cuda]) == {dask_cluster["gpu_worker"]}
    if not torch.cuda.is_available():
        assert (b.status[cuda] == "skipped").all()
        assert b.error[cuda].str.contains("CUDA is not available").all()
    manifest = json.loads((only_run(tmp_path / "dask") / "manifest.json").read_text())
    assert manifest["executor"] == "dask" and manifest["workers"] == 2
    assert manifest["scheduler"] == dask_cluster["address"]
    assert manifest["sessions"][-1]["gpu_workers"] == 1


def test_cuda_trials_without_a_gpu_worker_are_skipped_with_the_reason():
    class Client:  # what run_dask asks of a cluster with CPU workers only
        def scheduler_info(self, n_workers=-1):
            return {"address": "tcp://x:1", "workers": {"w": {"resources": {}}}}

        def submit(self, *args, **kwargs):
            raise AssertionError("a CUDA trial was submitted to a cluster without GPUs")

    spec = one_spec(train='optimizer = "sgd"\nlr = 0.1\nepochs = 2\ndevice = "cuda"')
    got: list[tuple[TrialSpec, object]] = []
    cluster_module.run_dask([[spec]], Client(), 1, lambda s, r: got.append((s, r)))
    ((s, r),) = got
    assert s == spec and r.status == "skipped" and "--resources GPU=1" in r.trial["error"]


def test_a_worker_killed_mid_run_costs_only_time(tmp_path):
    """The only worker dies while it holds a trial; a second one, started then, finishes the
    run: every trial is stored exactly once."""
    address, sched = scheduler(tmp_path)
    victim = worker(address, tmp_path, "victim")
    rescuer = None
    try:
        wait_for_workers(address, 1)
        suite = write_suite(tmp_path, epochs=300)
        proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--out",
                                 str(tmp_path / "out"), "--scheduler", address, "--no-pack",
                                 "--no-report"], cwd=tmp_path, env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with distributed.Client(address, timeout=30) as client:
            deadline = time.monotonic() + 60
            held: list[str] = []
            while time.monotonic() < deadline and not held:  # the victim is running a trial
                held = [k for keys in client.processing().values() for k in keys
                        if str(k).startswith("actbench-")]
                time.sleep(0.05)
            assert held, "the victim never got a trial"
            os.kill(victim.pid, signal.SIGKILL)  # dies holding it; then help arrives
            rescuer = worker(address, tmp_path, "rescuer")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        # Each trial was delivered once (the store would silently replace a second copy).
        assert sorted(line.split("]")[0] for line in err.splitlines()
                      if line.startswith("[") and "/8]" in line) == [f"[{i}/8" for i in
                                                                     range(1, 9)]
    finally:
        stop(victim, *([rescuer] if rescuer else []), sched)
    run_dir = only_run(tmp_path / "out")
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 8 and trials.trial_id.is_unique
    cpu = trials["train.device"] == "cpu"
    assert (trials.status[cpu] == "ok").all()
    assert f"{HOST}:{rescuer.pid}" in set(trials.worker[cpu])  # it took over
    curves = pd.read_parquet(run_dir / "curves.parquet")
    assert not curves.duplicated(["trial_id", "epoch"]).any()
    assert len(curves) == 4 * 61  # every CPU trial's 61 logged epochs, once


def test_an_unreachable_scheduler_fails_fast_with_exit_2(tmp_path):
    suite = write_suite(tmp_path)
    start_time = time.monotonic()
    result = bench("run", suite, "--out", tmp_path / "out",
                   "--scheduler", f"tcp://127.0.0.1:{free_port()}", cwd=tmp_path, timeout=60,
                   env={**ENV, "ACTBENCH_DASK_CONNECT_TIMEOUT_S": "3"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no Dask scheduler answered within 3 s" in result.stderr
    assert time.monotonic() - start_time < 30
    assert not (tmp_path / "out").exists()  # nothing was started, so nothing half-written


def test_a_scheduler_that_goes_away_ends_the_run_with_what_was_saved(tmp_path):
    address, sched = scheduler(tmp_path)
    w = worker(address, tmp_path, "lonely")
    try:
        wait_for_workers(address, 1)
        suite = write_suite(tmp_path, epochs=400)
        proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--out",
                                 str(tmp_path / "out"), "--scheduler", address, "--no-pack",
                                 "--no-report"], cwd=tmp_path, env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a trial trained on the worker and stored
            if finished_parts(tmp_path / "out" / "dasky"):
                break
            time.sleep(0.1)
        stop(sched)
        _, err = proc.communicate(timeout=60)
    finally:
        stop(w, sched)
    assert proc.returncode == 1, err
    assert "lost the Dask scheduler" in err and "--resume" in err
    # Dask's client may log the closed stream's traceback; none comes from actbench itself
    assert "/bench/" not in "".join(line for line in err.splitlines() if 'File "' in line)
    assert "finished trials are stored in" in err
    run_dir = only_run(tmp_path / "out")
    stored = pd.read_parquet(run_dir / "trials.parquet")
    assert 1 <= (stored.status == "ok").sum() < 4  # what finished is kept; --resume runs the rest
    assert json.loads((run_dir / "manifest.json").read_text())["state"] == "scheduler lost"


def test_cluster_local_2_end_to_end(tmp_path):
    suite = write_suite(tmp_path)
    result = bench("run", suite, "--out", tmp_path / "out", "--cluster", "local:2",
                   "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = only_run(tmp_path / "out")
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 8 and (trials.status[trials["train.device"] == "cpu"] == "ok").all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["executor"] == "dask" and manifest["workers"] == 2
    # The nanny's MALLOC_TRIM_THRESHOLD_ (2.4x slower epochs) is kept out of our workers
    assert manifest["sessions"][-1]["workers_with_malloc_trim_threshold"] == 0
    workers = set(trials.worker[trials["train.device"] == "cpu"])
    assert all(w.startswith(HOST) for w in workers)


@pytest.mark.parametrize("bad", ["local:0", "remote", "local:x"])
def test_bad_cluster_is_a_user_error(tmp_path, bad, capsys):
    code = main(["run", str(write_suite(tmp_path)), "--cluster", bad, "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--cluster" in err and "local:N" in err
    assert not (tmp_path / "out").exists()


class _Info:
    """A stub client: just the scheduler's view of its workers."""

    def __init__(self, **workers):
        self.workers = workers

    def scheduler_info(self, n_workers=-1):
        return {"address": "tcp://stub:1", "workers": self.workers}


def test_workers_that_run_two_trials_at_once_are_refused():
    from bench.errors import UserError
    with pytest.raises(UserError, match="--nthreads 1"):
        cluster_module.check_workers(_Info(a={"nthreads": 1}, b={"nthreads": 4}))
    cluster_module.check_workers(_Info(a={"nthreads": 1}))


def test_a_run_no_worker_can_finish_is_noticed():
    cpu = [one_spec()]
    cuda = [one_spec(train='optimizer = "sgd"\nlr = 0.1\nepochs = 2\ndevice = "cuda"')]
    assert cluster_module.can_run(_Info(a={}), [cpu])
    assert not cluster_module.can_run(_Info(), [cpu])               # every worker gone
    assert not cluster_module.can_run(_Info(a={}), [cuda])          # no GPU worker left
    assert cluster_module.can_run(_Info(a={"resources": {"GPU": 1}}), [cuda])


def test_a_long_sweep_is_submitted_in_bounded_batches(monkeypatch):
    """At most MAX_IN_FLIGHT units are on the scheduler at once; each completion lets one more
    in, and every unit's trials still arrive in full."""
    distributed = pytest.importorskip("distributed")
    from bench.execution import dask_cluster as cluster
    from bench.suite import expand
    from tests.helpers import make_suite

    monkeypatch.setattr(cluster, "MAX_IN_FLIGHT", 2)
    specs = expand(make_suite("""
        seeds = [0, 1, 2, 3, 4, 5, 6]
        [task]
        kind = "spiral"
        points_per_class = 20
        [model]
        hidden = [4]
        activation = "relu"
        [train]
        optimizer = "sgd"
        lr = 0.1
        epochs = 2
        """, name="batches"))
    delivered, outstanding = [], []
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=None) as client:
        submit = client.submit

        def counted(*args, **kwargs):
            outstanding.append(len(outstanding) + 1 - len(delivered))
            return submit(*args, **kwargs)

        monkeypatch.setattr(client, "submit", counted)
        cluster.run_dask([[s] for s in specs], client, 1,
                         lambda spec, result: delivered.append((spec.trial_id, result.status)))
    assert sorted(delivered) == sorted((s.trial_id, "ok") for s in specs)
    assert len(outstanding) == 7 and max(outstanding) <= 2, outstanding
