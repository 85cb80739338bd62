"""Exit statuses that tell the truth, and the command line's conventions: the program's name,
--version, help on every argument, a comparison that writes only when asked and says when the
two runs were not trained alike."""

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bench
from bench.analysis.compare import compare, markdown
from bench.cli import build_parser, main
from bench.execution.run import RunOptions, run_suite
from bench.results.reader import RunData
from bench.training.activations import resolve
from tests.helpers import make_suite, user_module

ROOT = Path(__file__).resolve().parent.parent

TINY = """
name = "tiny"
seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 20
[model]
hidden = [4]
activation = "relu"
[train]
optimizer = "sgd"
lr = 0.1
epochs = 3
"""

# Raises in forward while training, not in the (4 x 3) check a suite's activation gets at load:
# the suite loads, and each of its trials fails with this error.
BROKEN = """
    import torch

    def act(x):
        if x.shape[0] != 4:
            raise RuntimeError("broken in training")
        return torch.relu(x)
    """


@pytest.fixture(autouse=True)
def _fresh_resolver():
    resolve.cache_clear()
    yield
    resolve.cache_clear()


def _suite(tmp_path, text: str) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def _run(tmp_path, path, *extra) -> int:
    return main(["run", str(path), "--workers", "1", "--out", str(tmp_path / "out"),
                 "--no-report", *extra])


def _python(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


# -- 1. exit statuses ---------------------------------------------------------------------------

def test_a_failed_trial_fails_the_run(tmp_path, monkeypatch, capsys):
    mod = user_module(tmp_path, monkeypatch, BROKEN, "broken_in_training")
    path = _suite(tmp_path, TINY + f'[sweep]\n"model.activation" = ["{mod}:act", "relu"]\n')
    assert _run(tmp_path, path) == 1
    captured = capsys.readouterr()
    assert "2 trials failed: RuntimeError: broken in training" in captured.out
    err = " ".join(captured.err.split())
    assert "2 trials failed" in err and "exit status 1" in err and "--resume" in err
    (run_dir,) = (tmp_path / "out" / "tiny").iterdir()
    trials = RunData.open(run_dir).trials
    assert sorted(trials.status) == ["failed", "failed", "ok", "ok"]  # the relu trials trained


def test_diverged_and_skipped_trials_are_results_not_failures(tmp_path, capsys):
    # lr = 1e30 sends sgd's loss to NaN; a CUDA point on a machine without one is a skipped row
    path = _suite(tmp_path, TINY + '[sweep]\n"train.lr" = [0.1, 1e30]\n'
                                   '"train.device" = ["cpu", "cuda"]\n')
    assert _run(tmp_path, path) == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "out" / "tiny").iterdir()
    statuses = set(RunData.open(run_dir).trials.status)
    assert "diverged" in statuses and "failed" not in statuses
    if not torch.cuda.is_available():
        assert "skipped" in statuses


def test_a_report_that_cannot_be_drawn_still_fails_the_run(tmp_path, monkeypatch, capsys):
    from bench.commands import report

    def broken(*args, **kwargs):
        raise RuntimeError("no figures today")

    monkeypatch.setattr(report, "write_report", broken)
    path = _suite(tmp_path, TINY)
    assert main(["run", str(path), "--workers", "1", "--out", str(tmp_path / "out"),
                 "--reports", str(tmp_path / "reports")]) == 1
    assert "report not written: RuntimeError: no figures today" in capsys.readouterr().err


# A claim no trial can answer (a sigmoid net has no dead units: the metric has no value), and
# one that holds.
UNCHECKABLE = """
[[expect]]
description = "sigmoid has few dead units"
where = { "model.activation" = "sigmoid" }
metric = "dead_fraction"
max = 0.5
"""
HOLDS = """
[[expect]]
description = "the loss is finite"
where = { "model.activation" = "relu" }
metric = "final_loss"
max = 1000
"""
SWEEP = '[sweep]\n"model.activation" = ["relu", "sigmoid"]\n'


@pytest.fixture(scope="module")
def claim_runs(tmp_path_factory):
    """One run, stored twice: with only the uncheckable claim, and with both claims."""
    tmp = tmp_path_factory.mktemp("claims")
    text = TINY.replace('name = "tiny"\n', "") + SWEEP
    return {label: run_suite(make_suite(text + claims, name=label),
                             RunOptions(out=tmp, workers=1)).dir
            for label, claims in (("none", UNCHECKABLE), ("some", UNCHECKABLE + HOLDS))}


def test_check_fails_when_no_claim_could_be_checked(claim_runs, capsys):
    assert main(["check", str(claim_runs["none"])]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "0 passed, 0 failed, 1 not checked" in out
    assert "no claim could be checked" in out and "exit status 1" in out
    # one claim checked and held: the one not checked is reported, and the check passes
    assert main(["check", str(claim_runs["some"])]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 passed, 0 failed, 1 not checked" in out and "no claim could be checked" not in out


def test_claims_passed_needs_a_claim_checked(claim_runs):
    nothing = bench.open_run(claim_runs["none"]).check()
    assert [c.verdict for c in nothing] == ["not checked"] and not nothing.passed
    some = bench.open_run(claim_runs["some"]).check()
    assert [c.verdict for c in some] == ["not checked", "pass"] and some.passed
    assert not bench.Claims().passed  # no claims: nothing was checked either


def test_quick_fails_when_no_claim_could_be_checked(tmp_path, capsys):
    path = _suite(tmp_path, TINY + SWEEP + UNCHECKABLE)
    assert _run(tmp_path, path, "--quick") == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "quick: 2 of 4 trials" in out and "no claim could be checked" in out


def test_exit_statuses_are_documented():
    top = build_parser().format_help()
    run = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for text in (top, run):
        flat = " ".join(text.split())
        assert "exit status:" in flat
        for code, what in (("0", "it worked"), ("1", "a trial failed"), ("2", "a user error"),
                           ("130", "interrupted")):
            assert f"{code} {what}" in flat, (code, flat)
    flat = " ".join(run.split())
    assert "A diverged trial" in flat and "not a failure" in flat and "skipped row" in flat


# -- 2. conventions -----------------------------------------------------------------------------

def test_python_m_bench_names_itself_and_prints_its_version(tmp_path):
    result = _python(sys.executable, "-m", "bench", "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m bench ")
    result = _python(sys.executable, "-m", "bench", "run", "--help", cwd=tmp_path)
    assert result.stdout.startswith("usage: python -m bench run ")
    result = _python(sys.executable, "-m", "bench", "--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"actbench {bench.__version__}\n")


def test_the_installed_script_names_itself(tmp_path):
    script = Path(sys.executable).with_name("actbench")
    if not script.is_file():
        pytest.skip(f"no actbench script beside {sys.executable} (the package is not installed)")
    result = _python(script, "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: actbench ")
    assert "  actbench run suites/activations.toml" in result.stdout
    result = _python(script, "--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"actbench {bench.__version__}\n")


def test_top_level_help_is_prose_with_examples_not_the_docstring(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":smile:" not in out  # the module docstring is reST for readers
    assert "Benchmark how activations" in out and "examples:" in out
    assert "  python -m bench run suites/activations.toml --quick\n" in out  # as written
    assert "  python -m bench compare RUN_A RUN_B --fail-on final_accuracy:-0.02\n" in out


def test_every_argument_of_every_command_has_help():
    parser = build_parser()
    parsers = {"": parser, **{name: p for a in parser._actions
                              if isinstance(a, argparse._SubParsersAction)
                              for name, p in a.choices.items()}}
    assert {"run", "report", "check", "compare", "list", "perf"} <= set(parsers)
    missing = [f"{name or '(top)'} {action.dest}" for name, p in parsers.items()
               for action in p._actions
               if not isinstance(action, argparse._HelpAction)
               and (not action.help or action.help == argparse.SUPPRESS)]
    assert not missing, missing


@pytest.fixture(scope="module")
def pack_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packing")
    suite = make_suite(TINY.replace('name = "tiny"\n', "") + SWEEP, name="cmp")
    return {pack: run_suite(suite, RunOptions(out=tmp / pack, workers=1, pack=pack)).dir
            for pack in ("on", "off")}


PACK_NOTE = ("note: run A trained packed seeds, run B one trial at a time: time and memory "
             "columns are not comparable")


def test_compare_writes_nothing_unless_asked(pack_runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(pack_runs["off"]), str(pack_runs["off"])]) == 0
    assert list(tmp_path.iterdir()) == []  # no reports/<suite>/compare_*.md unasked
    out = capsys.readouterr().out
    assert "markdown:" not in out and "note:" not in out  # a run against itself: alike
    assert main(["compare", str(pack_runs["off"]), str(pack_runs["off"]), "--out",
                 "cmp.md"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["cmp.md"]


def test_compare_notes_runs_not_trained_alike(pack_runs, tmp_path, capsys):
    from bench.analysis.compare import execution_notes

    out = tmp_path / "cmp.md"
    assert main(["compare", str(pack_runs["on"]), str(pack_runs["off"]), "--out",
                 str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert PACK_NOTE in printed
    assert f"**Note:** {PACK_NOTE.removeprefix('note: ')}" in out.read_text()

    a, b = RunData.open(pack_runs["off"]), RunData.open(pack_runs["off"])
    assert execution_notes(a, b) == []
    session = {**a.manifest["sessions"][0], "executor": "processes", "workers": 4, "threads": 2}
    trials = a.trials.assign(device_name="NVIDIA H200")
    other = dataclasses.replace(b, manifest={**b.manifest, "sessions": [session]},
                                trials=trials)
    notes = execution_notes(a, other)
    assert notes == [
        "run A ran on the serial executor with 1 worker x 1 thread, run B on the processes "
        "executor with 4 workers x 2 threads: time columns are not comparable",
        f"run A trained on {a.trials.device_name.iloc[0]}, run B on NVIDIA H200: time and "
        "memory columns are not comparable"]
    result = compare(a, other)
    assert result.notes == notes and "**Note:** run A ran on the serial executor" in markdown(result)
    # a run from before packing (no pack_size column) trained one trial at a time
    old = dataclasses.replace(a, trials=a.trials.drop(columns="pack_size"))
    assert execution_notes(old, a) == []
