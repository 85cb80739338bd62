"""Worker processes (bench/execution/workers.py): how they start, that forked and spawned
workers give the same trials, and what a death or an escaped exception looks like."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from bench.execution import workers
from bench.execution.local import Slots
from bench.execution.workers import Worker, WorkerDied, ready, start_method
from bench.results.lock import RunLock, holder
from bench.results.writer import encode
from bench.suite import expand
from bench.training.loop import run_trial
from tests.helpers import make_suite, user_module

FORK = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is used on Linux only")
# What differs between two runs of one trial: when and where it ran, and how long it took.
_VARIES = {"time_total_s", "time_per_epoch_s", "time_warmup_s", "samples_per_s", "started_at",
           "worker"}

SUITE = """

seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 40
[model]
hidden = [8]
activation = "relu"
[train]
optimizer = "sgd"
lr = 0.1
epochs = 3
[sweep]
"model.activation" = ["relu", "tanh"]
"""


@FORK
def test_a_fresh_process_forks_and_one_with_a_thread_spawns():
    code = "from bench.execution.workers import start_method; print(start_method())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "fork"
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert start_method() == "spawn"  # another thread may hold a lock a child inherits
    finally:
        stop.set()
        thread.join()
    assert start_method("spawn") == "spawn" and start_method("fork") == "fork"
    with pytest.raises(ValueError, match="valid are auto, fork, spawn"):
        start_method("forkserver")


@FORK
def test_forked_and_spawned_workers_give_the_same_bytes_as_this_process(tmp_path):
    specs = expand(make_suite(SUITE))
    here = {s.trial_id: encode(run_trial(s, 1), "sha") for s in specs}
    for method in ("fork", "spawn"):
        got = {}
        slots = Slots(2, 1, "sha", method=method).start()
        assert {w.method for w in slots.workers} == {method} and slots.started_with == method
        slots.run([[s] for s in specs], lambda s, r, got=got: got.__setitem__(s.trial_id, r))
        slots.close()
        assert got.keys() == here.keys()
        for trial_id, encoded in got.items():
            # Timings differ from run to run; every stored number besides them is the same.
            for table in ("curves", "layers"):
                assert encoded.files[f"{table}.parquet"] == here[trial_id].files[
                    f"{table}.parquet"], (method, table)
            row, want = encoded.trial, here[trial_id].trial
            assert row.keys() == want.keys()
            for key in row.keys() - _VARIES:
                assert row[key] == want[key] or row[key] != row[key] and want[key] != want[key], (
                    method, key)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_killed_worker_is_seen_as_dead_and_its_slot_gets_a_new_one(tmp_path, method):
    if method == "fork" and not sys.platform.startswith("linux"):
        pytest.skip("fork is used on Linux only")
    specs = expand(make_suite(SUITE))
    worker = Worker(1, None, method)
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.join()
    assert ready([worker], timeout=5) == [worker]
    with pytest.raises(WorkerDied):
        worker.submit(specs[:1])
        worker.answer()
    worker.kill()
    # Through the slots: a worker killed mid-run costs its unit one attempt, and the run goes on
    # in a fresh worker.
    slots = Slots(1, 1, None, method=method).start()
    os.kill(slots.workers[0].process.pid, signal.SIGKILL)
    got = {}
    slots.run([[s] for s in specs], lambda s, r: got.__setitem__(s.trial_id, r.status))
    slots.close()
    assert set(got.values()) == {"ok"} and len(got) == len(specs)
    assert slots.attempts == {specs[0].trial_id: 1}


@FORK
def test_an_exception_that_escapes_the_trial_reaches_the_coordinator(tmp_path, monkeypatch):
    def broken(unit, threads, report=None):
        raise ValueError("not a trial's error: the harness's")

    monkeypatch.setattr(workers, "run_pack", broken)  # a forked child has it too
    worker = Worker(1, None, "fork")
    try:
        worker.submit(expand(make_suite(SUITE))[:1])
        assert ready([worker], timeout=30) == [worker]
        with pytest.raises(ValueError, match="the harness's"):
            worker.answer()
        assert worker.process.is_alive()  # the worker itself goes on
    finally:
        worker.close()
    assert worker.process.exitcode == 0


@FORK
def test_a_forked_worker_does_not_keep_its_coordinators_lock(tmp_path):
    """The coordinator dies (kill -9) while a forked child lives on: the next writer takes the
    lock at once, rather than waiting for the child."""
    script = textwrap.dedent(f"""
        import multiprocessing, os, time
        from bench.results.lock import RunLock
        lock = RunLock.acquire({str(tmp_path)!r})
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        child.start()
        open({str(tmp_path / "child.pid")!r}, "w").write(str(child.pid))
        os._exit(0)  # no release: as if killed
    """)
    # Not captured: the child would hold the pipe open, and the run would wait for it.
    subprocess.run([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    child = int((tmp_path / "child.pid").read_text())
    try:
        assert os.path.exists(f"/proc/{child}")  # the child is alive
        assert holder(tmp_path) is None  # its writer is gone
        lock = RunLock.acquire(tmp_path)
        assert lock.stale is not None and json.loads(
            (tmp_path / "writer.lock").read_text())["pid"] == os.getpid()
        lock.release()
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_death_with_a_unit_queued_behind_charges_only_the_running_one(tmp_path, monkeypatch):
    """Short units are handed two at a time: when the worker dies, the unit it was running is
    charged an attempt and the one queued behind it runs again, uncharged."""
    name = user_module(tmp_path, monkeypatch, f"""
        import os
        import torch

        def boom(x):
            if x.shape[0] != 4 and os.getpid() != {os.getpid()}:
                os._exit(3)
            return torch.tanh(x)
        """, "queued_crash")
    suite = SUITE.replace('["relu", "tanh"]', f'["{name}:boom", "tanh"]')
    specs = expand(make_suite(suite.replace("seeds = [0, 1]", "seeds = [0]")))  # boom, tanh
    crashing = [s for s in specs if "boom" in s.model.activation]
    slots = Slots(1, 1, None)
    slots._unit_s = 0.0  # as if the units so far were short: two at a time from the first
    got, handed = {}, []
    submit = Worker.submit

    def watched(worker, unit):
        handed.append([s.trial_id for s in unit])
        submit(worker, unit)

    monkeypatch.setattr(Worker, "submit", watched)
    slots.run([[s] for s in specs], lambda s, r: got.__setitem__(s.trial_id, r.status))
    slots.close()
    assert handed[:2] == [[specs[0].trial_id], [specs[1].trial_id]]  # tanh queued behind boom
    assert {tid for tid, status in got.items() if status == "failed"} == {
        s.trial_id for s in crashing}
    assert set(got.values()) == {"ok", "failed"} and len(got) == len(specs)
    # The crashing trial used up its attempts; the one queued behind it was charged none.
    assert slots.attempts == {s.trial_id: 2 for s in crashing} and len(crashing) == 1


@FORK
@pytest.mark.parametrize("terminal", [False, True], ids=["log", "terminal"])
def test_bench_run_forks_its_workers_with_or_without_the_live_bar(tmp_path, terminal):
    """The workers start before the live bar's thread, so a run in a terminal forks too; the
    session in the manifest says how they started."""
    if terminal and shutil.which("script") is None:
        pytest.skip("no `script` to give the run a terminal")
    suite = tmp_path / "workers.toml"
    suite.write_text('name = "workers"\n' + SUITE)
    argv = [sys.executable, "-m", "bench", "run", str(suite), "--workers", "2", "--no-report",
            "--out", str(tmp_path / "runs")]
    if terminal:  # a pseudo-terminal: rich draws the live bar, from a thread of its own
        argv = ["script", "-qec", shlex.join(argv), "/dev/null"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    if terminal:
        assert "━" in done.stdout  # the bar was drawn
    (manifest,) = (tmp_path / "runs").glob("*/*/manifest.json")
    sessions = json.loads(manifest.read_text())["sessions"]
    assert [s["worker_start"] for s in sessions] == ["fork"]


@FORK
def test_a_forked_worker_ends_on_sigterm_whatever_its_coordinator_does_with_it():
    """`bench run` turns SIGTERM into KeyboardInterrupt for itself; a forked worker inherits
    that handler, and must not keep it: the coordinator's kill ends it at once."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        worker = Worker(1, None, "fork")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ready([worker], timeout=0.5) == []  # up and waiting for a unit
    worker.kill()
    assert worker.process.exitcode == -signal.SIGTERM
