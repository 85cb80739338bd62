"""The run folder against everything besides kill-and-resume: a changed suite on --resume,
unreadable parts, two writers, readers that must not touch anything, a full disk."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.errors import UserError
from bench.execution.run import RunOptions, Stopped, run_suite
from bench.results import lock as runlock
from bench.results import writer as store_module
from bench.results.folder import QUARANTINE, quarantined, read_manifest
from bench.results.reader import RunData
from bench.results.writer import RunStore
from tests.helpers import make_suite

BODY = """
seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 20
[model]
hidden = [4]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.02
epochs = {epochs}
[sweep]
"model.activation" = {activations}
"""


def suite(epochs=4, activations='["relu", "tanh"]', extra=""):
    return make_suite(BODY.format(epochs=epochs, activations=activations) + extra, name="safe")


def run(s, tmp_path, **options):
    return run_suite(s, RunOptions(out=tmp_path / "results", workers=1, **options))


@pytest.fixture
def finished(tmp_path):
    return run(suite(), tmp_path).dir


# -- 1. --resume validates identity -------------------------------------------------------------

def test_resume_with_a_changed_suite_is_refused_with_a_diff(finished, tmp_path):
    with pytest.raises(UserError) as err:
        run(suite(epochs=2, activations='["relu", "tanh", "sigmoid"]'), tmp_path, resume=finished)
    message = str(err.value)
    assert "not the suite this run was run with" in message and "--extend" in message
    assert "-epochs = 4" in message and "+epochs = 2" in message
    trials = pd.read_parquet(finished / "trials.parquet")
    assert len(trials) == 4 and set(trials["train.epochs"]) == {4}  # nothing mixed in


def test_every_stored_trial_records_its_suite_hash(finished):
    manifest = read_manifest(finished)
    trials = pd.read_parquet(finished / "trials.parquet")
    assert set(trials["suite_sha256"]) == {manifest["suite"]["sha256"]}


def test_extend_adds_grid_points_and_keeps_the_stored_suite(finished, tmp_path):
    wider = suite(activations='["relu", "tanh", "sigmoid"]')
    run(wider, tmp_path, resume=finished, extend=True)
    trials = pd.read_parquet(finished / "trials.parquet")
    assert len(trials) == 6 and set(trials["train.epochs"]) == {4}
    manifest = read_manifest(finished)
    assert manifest["suite"]["sha256"] == wider.sha256
    (old,) = manifest["suite_history"]
    assert old["sha256"] == suite().sha256 and '"tanh"]' in old["text"]
    # a later plain --resume of the extended suite goes on, and the old parts still count
    again = run(wider, tmp_path, resume=finished)
    assert again.done() == set(trials["trial_id"])


def test_extend_never_changes_the_settings_of_stored_trials(finished, tmp_path):
    with pytest.raises(UserError, match="does not only add grid points"):
        run(suite(epochs=2), tmp_path, resume=finished, extend=True)
    with pytest.raises(UserError, match="does not only add grid points"):  # a point removed
        run(suite(activations='["relu"]'), tmp_path, resume=finished, extend=True)
    assert len(pd.read_parquet(finished / "trials.parquet")) == 4


TUNED = """
[tune]
keys = ["train.lr"]
metric = "final_val_loss"
seeds = [10]
"""


def tuned(lrs="[0.01, 0.05]", activations='["relu", "tanh"]'):
    body = BODY.format(epochs=3, activations=activations) + f'"train.lr" = {lrs}\n' + TUNED
    held_out = 'points_per_class = 20\nval_fraction = 0.25\ntest_fraction = 0.25'
    return make_suite(body.replace('points_per_class = 20', held_out),
                      name="safe")


def test_extend_of_a_tuned_suite_may_add_a_setting_not_a_tuned_value(tmp_path):
    folder = run(tuned(), tmp_path).dir
    with pytest.raises(UserError, match="tuned values of"):
        run(tuned(lrs="[0.01, 0.05, 0.2]"), tmp_path, resume=folder, extend=True)
    run(tuned(activations='["relu", "tanh", "sigmoid"]'), tmp_path, resume=folder, extend=True)
    trials = pd.read_parquet(folder / "trials.parquet")
    assert set(trials["model.activation"]) == {"relu", "tanh", "sigmoid"}
    assert len(trials) == 3 * (2 * 1 + 2)  # 2 lrs x 1 tuning seed, then the pick on 2 seeds


def test_a_part_of_another_suite_is_quarantined(finished, tmp_path):
    other = run(suite(epochs=2), tmp_path).dir
    stray = next((other / "parts").iterdir())
    os.rename(stray, finished / "parts" / stray.name)
    store = RunStore.open(finished)
    store.close()
    assert [p for p, _ in store.quarantined] == [stray.name]
    assert "another suite" in (finished / "parts" / QUARANTINE / stray.name / "reason.txt").read_text()


# -- 2. quarantine, not crash -------------------------------------------------------------------

def _damage(folder: Path) -> dict[str, str]:
    """Three kinds of bad part: a truncated trial.parquet, an empty curves.parquet, a junk
    folder. Returns part name -> what was done."""
    parts = sorted(p for p in (folder / "parts").iterdir() if not p.name.startswith("."))
    trial = parts[0] / "trial.parquet"
    trial.write_bytes(trial.read_bytes()[:40])
    (parts[1] / "curves.parquet").write_bytes(b"")
    junk = folder / "parts" / "not-a-trial"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    return {parts[0].name: "truncated", parts[1].name: "empty curves", junk.name: "junk"}


def test_bad_parts_are_quarantined_and_their_trials_run_again(finished, tmp_path, capsys):
    damaged = _damage(finished)
    run(suite(), tmp_path, resume=finished)
    err = capsys.readouterr().err
    assert err.count("quarantined:") == 3 and "cannot be read" in err
    assert sorted(quarantined(finished)) == sorted(damaged)
    for name in damaged:
        assert (finished / "parts" / QUARANTINE / name / "reason.txt").is_file()
    trials = pd.read_parquet(finished / "trials.parquet")
    assert len(trials) == 4 and (trials["status"] == "ok").all()  # the two trials ran again
    assert len(read_manifest(finished)["quarantined"]) == 3


def test_readers_do_not_quarantine_and_say_how_many_were(finished, tmp_path):
    _damage(finished)
    before = sorted(p.name for p in (finished / "parts").iterdir())
    run_data = RunData.open(finished)  # reads the tables, not the parts
    assert len(run_data.trials) == 4
    assert sorted(p.name for p in (finished / "parts").iterdir()) == before
    run(suite(), tmp_path, resume=finished)
    assert RunData.open(finished).quarantined == sorted(quarantined(finished))
    assert len(RunData.open(finished).quarantined) == 3


@pytest.mark.parametrize("damage, expected", [
    ("truncate trials", "trials.parquet cannot be read"),
    ("manifest list", "manifest.json holds a JSON list"),
    ("manifest junk", "manifest.json is not valid JSON"),
    ("manifest suite", "'suite' holds"),
])
def test_a_malformed_table_or_manifest_is_one_clear_error(finished, damage, expected, capsys):
    from bench.cli import main

    if damage == "truncate trials":
        path = finished / "trials.parquet"
        path.write_bytes(path.read_bytes()[:100])
    else:
        text = {"manifest list": "[]", "manifest junk": "{nope",
                "manifest suite": '{"suite": [1, 2]}'}[damage]
        (finished / "manifest.json").write_text(text)
    for command in (["check", str(finished)], ["report", str(finished), "--out",
                                                   str(finished.parent / "r")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and str(finished) in err


def test_resume_rebuilds_a_truncated_table_from_the_parts(finished, tmp_path):
    path = finished / "trials.parquet"
    path.write_bytes(path.read_bytes()[:100])
    run(suite(), tmp_path, resume=finished)
    assert len(pd.read_parquet(path)) == 4


def test_every_write_is_fsynced_before_its_rename(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append((str(a), str(b))),
                                                     real_replace(a, b))[1])
    monkeypatch.setattr(os, "rename", lambda a, b: (renamed.append((str(a), str(b))),
                                                    real_rename(a, b))[1])
    folder = run(suite(activations='["relu"]'), tmp_path).dir
    for source, target in renamed:
        if Path(source).is_dir() or Path(target).is_dir():
            assert source in synced, f"folder {source} renamed unsynced"
        else:
            assert source in synced, f"{source} renamed to {target} unsynced"
    names = {Path(t).name for _, t in renamed}
    assert {"manifest.json", "trials.parquet", "curves.parquet"} <= names
    assert str(folder / "parts") in synced  # the part's rename made durable


# -- 3. one writer ------------------------------------------------------------------------------

def test_a_second_writer_is_refused_and_told_who_holds_the_folder(finished, tmp_path):
    script = ("import sys, time; from pathlib import Path; from bench.results.lock import RunLock; "
              "lock = RunLock.acquire(Path(sys.argv[1])); print('held', flush=True); "
              "time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(finished)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError) as err:
            run(suite(), tmp_path, resume=finished)
        assert f"pid {holder.pid} on host {runlock.HOST}" in str(err.value)
        assert runlock.holder(finished)["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is gone with it, and the next writer takes it
    assert runlock.holder(finished) is None
    assert run(suite(), tmp_path, resume=finished).done()


def test_the_cli_exits_2_on_a_locked_folder(finished, tmp_path):
    toml = tmp_path / "safe.toml"
    toml.write_text('name = "safe"\n' + BODY.format(epochs=4, activations='["relu", "tanh"]'))
    with _held_elsewhere(finished):
        done = subprocess.run([sys.executable, "-m", "bench", "run", str(toml), "--resume",
                               str(finished), "--workers", "1"], capture_output=True, text=True)
    assert done.returncode == 2 and "in use" in done.stderr and "Traceback" not in done.stderr


class _held_elsewhere:
    """The folder's lock held by another process for the duration."""

    def __init__(self, folder):
        self.folder = folder

    def __enter__(self):
        script = ("import sys, time; from pathlib import Path; from bench.results.lock import RunLock; "
                  "RunLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)")
        self.process = subprocess.Popen([sys.executable, "-c", script, str(self.folder)],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "held"
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def test_a_stale_pid_file_without_flock_is_taken_over(finished, tmp_path, monkeypatch):
    """Where flock does not work, the pid and host decide: a dead pid on this host is stale."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (finished / runlock.LOCK_NAME).write_text(json.dumps(
        {"pid": dead.pid, "host": runlock.HOST, "since": "earlier"}))
    monkeypatch.setattr(runlock, "fcntl", None)
    lock = runlock.RunLock.acquire(finished)
    assert lock.stale["pid"] == dead.pid
    lock.release()
    live = {"pid": os.getppid(), "host": runlock.HOST, "since": "now"}
    (finished / runlock.LOCK_NAME).write_text(json.dumps(live))
    with pytest.raises(UserError, match=f"pid {os.getppid()}"):
        runlock.RunLock.acquire(finished)


def test_readers_never_delete_a_live_writers_temporaries(finished, tmp_path):
    with _held_elsewhere(finished) as other:
        tag = store_module.HOST_TAG
        live = finished / f".trials.parquet.{tag}.{other.process.pid}.0123abcd.tmp"
        live_part = finished / "parts" / f".abc.{tag}.{other.process.pid}.0123abcd"
        live.write_bytes(b"half")
        live_part.mkdir()
        RunData.open(finished)
        from bench.cli import main
        assert main(["check", str(finished)]) == 0
        assert live.exists() and live_part.exists()
    # the writer is gone: the next writer removes what it left, and nothing else
    dead_pid = other.process.pid
    run(suite(), tmp_path, resume=finished)
    assert not live.exists() and not live_part.exists()
    assert dead_pid  # (its pid is dead now)


def test_temporaries_of_a_dead_process_are_cleaned_up(finished, tmp_path):
    leftovers = [finished / ".manifest.json.k9abc",  # the old naming
                 finished / f".manifest.json.{store_module.HOST_TAG}.999999999.0123abcd.tmp",
                 finished / "parts" / ".stale.x.123"]
    leftovers[0].write_text("{}")
    leftovers[1].write_text("{}")
    leftovers[2].mkdir()
    run(suite(), tmp_path, resume=finished)
    assert not any(p.exists() for p in leftovers)
    assert not [p for p in finished.iterdir() if p.name.startswith(".")]


# -- 10. smaller leaks --------------------------------------------------------------------------

def test_a_kill_during_the_first_manifest_write_leaves_no_half_folder(tmp_path, monkeypatch):
    calls = []
    real = store_module.atomic_write_bytes

    def dies(path, data):
        calls.append(path)
        raise KeyboardInterrupt  # as a kill at that instant leaves it (nothing renamed)

    monkeypatch.setattr(store_module, "atomic_write_bytes", dies)
    with pytest.raises(KeyboardInterrupt):
        RunStore.create(tmp_path, "safe", {"suite": {"name": "safe"}})
    monkeypatch.setattr(store_module, "atomic_write_bytes", real)
    assert calls and list((tmp_path / "safe").iterdir()) == []


def test_a_new_run_folder_appears_whole(tmp_path):
    store = RunStore.create(tmp_path, "safe", {"suite": {"name": "safe"}})
    store.close()
    assert read_manifest(store.dir)["run_id"] == store.dir.name
    assert [p.name for p in (tmp_path / "safe").iterdir()] == [store.dir.name]


def test_a_full_disk_stops_the_run_with_what_to_do(tmp_path, monkeypatch):
    real = store_module.write_table
    writes = []

    def full(table, path):
        writes.append(path)
        if len(writes) > 6:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(table, path)

    monkeypatch.setattr(store_module, "write_table", full)
    with pytest.raises(Stopped) as stop:
        run(suite(), tmp_path)
    assert "No space left on device" in stop.value.reason and "--resume" in stop.value.reason
    manifest = read_manifest(stop.value.run_dir)
    assert manifest["state"].startswith("stopped: No space left on device")
    assert "tables may lack stored trials" in manifest["state"]
    assert runlock.holder(stop.value.run_dir) is None  # the lock is given up
    monkeypatch.setattr(store_module, "write_table", real)
    again = run(suite(), tmp_path, resume=stop.value.run_dir)
    assert len(pd.read_parquet(again.dir / "trials.parquet")) == 4


# `python -m bench` with Ctrl-C arriving while a module is being imported (what the first
# second of a run is): a meta-path finder raises KeyboardInterrupt, as the SIGINT handler would.
CTRL_C_WHILE_IMPORTING = """
import runpy, sys
class CtrlC:
    module = sys.argv[1]
    def find_spec(self, name, path=None, target=None):
        if name == self.module:
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
sys.argv = ['bench', *sys.argv[2:]]
runpy.run_module('bench', run_name='__main__', alter_sys=True)
"""


@pytest.mark.parametrize("module", ["rich.console", "torch", "pyarrow.parquet", "tomllib"])
def test_ctrl_c_in_the_first_second_is_one_line_not_a_traceback(tmp_path, module):
    toml = tmp_path / "safe.toml"
    toml.write_text('name = "safe"\n' + BODY.format(epochs=4, activations='["relu"]'))
    done = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING, module, "run", str(toml),
                           "--out", str(tmp_path / "r"), "--workers", "1"],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 130 and "interrupted" in done.stderr
    assert not (tmp_path / "r").exists()


# -- the command line ---------------------------------------------------------------------------

CLAIM = """
[[expect]]
description = "relu trains"
where = { "model.activation" = "relu" }
metric = "final_loss"
max = 100
"""


def test_cli_resume_extend_and_check_name_the_suite_they_use(tmp_path, capsys):
    from bench.cli import main

    toml = tmp_path / "safe.toml"
    toml.write_text('name = "safe"\n' + BODY.format(epochs=4, activations='["relu", "tanh"]'))
    out = tmp_path / "results"
    assert main(["run", str(toml), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    (folder,) = (out / "safe").iterdir()
    capsys.readouterr()
    toml.write_text(toml.read_text() + CLAIM)  # a claim added after the run
    assert main(["run", str(toml), "--resume", str(folder), "--workers", "1", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "+[[expect]]" in err and "--extend" in err
    assert main(["check", str(folder)]) == 0
    said = capsys.readouterr().out
    assert "claims of the suite this run was run with" in said and "no [[expect]]" in said
    assert main(["run", str(toml), "--extend", "--workers", "1", "--out", str(out)]) == 2
    assert "--extend goes with --resume" in capsys.readouterr().err
    assert main(["run", str(toml), "--resume", str(folder), "--extend", "--workers", "1",
                 "--no-report"]) == 0
    capsys.readouterr()
    assert main(["check", str(folder)]) == 0
    said = capsys.readouterr().out
    assert "extended 1 time" in said and "1 passed" in said


def test_check_and_report_say_how_many_parts_were_quarantined(finished, tmp_path, capsys):
    from bench.cli import main

    _damage(finished)
    run(suite(), tmp_path, resume=finished)
    capsys.readouterr()
    assert main(["check", str(finished)]) == 0
    assert "3 stored trials could not be read back" in capsys.readouterr().out
    assert main(["report", str(finished), "--out", str(tmp_path / "r"), "--format", "md"]) == 0
    assert "3 stored trials could not be read back" in capsys.readouterr().out
    assert "3 stored trials could not be read back" in (tmp_path / "r" / "report.md").read_text()


def test_readers_say_a_run_did_not_finish(finished, capsys):
    from bench.cli import main

    manifest = read_manifest(finished)
    manifest["state"] = "running"
    (finished / "manifest.json").write_text(json.dumps(manifest))
    assert main(["check", str(finished)]) == 0
    assert "did not finish" in capsys.readouterr().out


def test_the_api_resumes_and_extends_as_the_cli_does(finished, tmp_path):
    import bench

    wider = suite(activations='["relu", "tanh", "sigmoid"]')
    with pytest.raises(UserError, match="--extend"):
        bench.run(wider, workers=1, resume=finished)
    extended = bench.run(wider, workers=1, resume=finished, extend=True)
    assert len(extended.trials) == 6 and len(extended.manifest["suite_history"]) == 1
