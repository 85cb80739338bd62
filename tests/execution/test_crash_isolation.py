"""A process that dies in user code fails the trial it ran, not its neighbours and not the run;
and the workers of a coordinator that is killed do not outlive it."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.execution.run import RunOptions, run_suite
from bench.results.reader import RunData
from bench.training.activations import resolve
from tests.helpers import make_suite, user_module

ROOT = Path(__file__).resolve().parents[2]

# Crashes its process on the first forward of a trial (not on the (4 x 3) check at load). In
# the test process itself it raises instead, so that a trial run there fails as an error
# rather than taking pytest down with it.
CRASHY = f"""
    import os
    import torch

    def boom(x):
        if x.shape[0] != 4:
            if os.getpid() == {os.getpid()}:
                raise RuntimeError("this would have killed the coordinator")
            os._exit(3)
        return torch.tanh(x)
    """


@pytest.fixture(autouse=True)
def _fresh_resolver():
    resolve.cache_clear()
    yield
    resolve.cache_clear()


def _crash_suite(tmp_path, monkeypatch, epochs: int):
    name = user_module(tmp_path, monkeypatch, CRASHY, "crashy_act")
    return make_suite(f"""
        seeds = [0]
        [task]
        kind = "spiral"
        points_per_class = 20
        [model]
        hidden = [4]
        activation = "tanh"
        [train]
        optimizer = "sgd"
        lr = 0.1
        epochs = {epochs}
        [sweep]
        "model.activation" = ["{name}:boom", "tanh", "relu"]
        """)


def _statuses(run_dir) -> dict[str, tuple[str, str | None]]:
    trials = RunData.open(run_dir).trials
    return {row["model.activation"]: (row["status"], row["error"])
            for _, row in trials.iterrows()}


def _assert_only_the_crash_failed(run_dir) -> None:
    got = _statuses(run_dir)
    assert set(got) == {"crashy_act:boom", "tanh", "relu"}
    assert got["tanh"][0] == got["relu"][0] == "ok", got
    status, error = got["crashy_act:boom"]
    assert status == "failed" and "worker process died" in error, got


def test_a_dying_worker_fails_only_the_trial_it_ran(tmp_path, monkeypatch):
    # Long enough that the tanh trial is still training in the other worker when the crash
    # comes: a pool that breaks as a whole would charge it with the death too.
    suite = _crash_suite(tmp_path, monkeypatch, epochs=2000)
    store = run_suite(suite, RunOptions(out=tmp_path / "results", workers=2))
    _assert_only_the_crash_failed(store.dir)
    assert "(2 attempts)" in _statuses(store.dir)["crashy_act:boom"][1]


def test_serial_runs_user_code_in_a_child_so_a_crash_fails_one_trial(tmp_path, monkeypatch):
    suite = _crash_suite(tmp_path, monkeypatch, epochs=5)
    store = run_suite(suite, RunOptions(out=tmp_path / "results", workers=1))
    assert store.manifest["executor"] == "serial"
    _assert_only_the_crash_failed(store.dir)
    # a resume runs the failed trial again: it fails again, and the resume finishes too
    again = run_suite(suite, RunOptions(resume=store.dir, workers=1))
    _assert_only_the_crash_failed(again.dir)
    assert len(RunData.open(again.dir).trials) == 3


# -- the coordinator killed --------------------------------------------------------------------

MARKED = """
    import os
    import pathlib
    import torch

    STARTED = False

    def marked(x):
        global STARTED
        if x.shape[0] != 4 and not STARTED:  # a trial's first forward, in a worker
            STARTED = True
            (pathlib.Path({dir!r}) / f"started-{{os.getpid()}}").touch()
        return torch.tanh(x)
    """

COORDINATOR = """
import sys
from pathlib import Path
sys.path[:0] = [{modules!r}, {root!r}]
from bench.execution.run import RunOptions, run_suite
from bench.suite import parse_suite
suite = parse_suite({text!r}, source="slow.toml")
run_suite(suite, RunOptions(out=Path({out!r}), workers=2))
"""


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie left for init to reap."""
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_workers_die_with_a_killed_coordinator(tmp_path):
    modules, marks = tmp_path / "modules", tmp_path / "marks"
    modules.mkdir()
    marks.mkdir()
    (modules / "marked_act.py").write_text(textwrap.dedent(MARKED.format(dir=str(marks))))
    text = textwrap.dedent("""
        name = "slow"
        seeds = [0, 1]
        [task]
        kind = "spiral"
        points_per_class = 20
        [model]
        hidden = [4]
        activation = "marked_act:marked"
        [train]
        optimizer = "sgd"
        lr = 0.1
        epochs = 100000000
        """)  # a user activation: the two seeds are two units, one per worker
    script = COORDINATOR.format(modules=str(modules), root=str(ROOT), text=text,
                                out=str(tmp_path / "results"))
    log = (tmp_path / "coordinator.log").open("w")
    coordinator = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=log,
                                   start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while len(workers) < 2:
            assert coordinator.poll() is None, (tmp_path / "coordinator.log").read_text()
            assert time.monotonic() < deadline, "the workers never started training"
            time.sleep(0.2)
            workers = [int(p.name.split("-")[1]) for p in marks.iterdir()]
        assert all(_alive(pid) for pid in workers)
        coordinator.kill()  # SIGKILL: no finally, no atexit, nothing runs in it
        coordinator.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived the coordinator"
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait()
        for pid in workers:  # leave nothing behind, whatever the outcome
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
