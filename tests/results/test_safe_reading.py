"""Reading a run folder imports no code it names unless asked (``--trust-code``,
``trust_code=True``), and ``bench.run`` in a script without the ``__main__`` guard is one clear
error rather than a run folder per worker."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import bench
from bench.cli import main
from bench.errors import UserError
from bench.results.reader import RunData
from bench.training.activations import resolve as resolve_activation
from bench.training.inits import resolve as resolve_init
from bench.training.tasks import resolve_task

ROOT = Path(__file__).resolve().parents[2]
MODULE = "actbench_marked_act"  # a user activation that leaves a mark when it is imported

SUITE = f"""
name = "trusted"
seeds = [0]
[task]
kind = "spiral"
points_per_class = 20
[model]
hidden = [4]
activation = "{MODULE}:act"
[train]
optimizer = "adam"
lr = 0.01
epochs = 3
"""


def _forget_user_code():
    """As a fresh process stands: the module not imported, no resolver holding it."""
    sys.modules.pop(MODULE, None)
    for resolver in (resolve_activation, resolve_init, resolve_task):
        resolver.cache_clear()


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    """A real run of a user activation; the module stays importable, its mark is wiped."""
    tmp = tmp_path_factory.mktemp("trusted")
    marker = tmp / "imported.txt"
    (tmp / f"{MODULE}.py").write_text(textwrap.dedent(f"""
        import torch
        with open({str(marker)!r}, "a") as f:
            f.write("imported\\n")

        def act(x):
            \"\"\"relu, by another name\"\"\"
            return torch.relu(x)
        """))
    sys.path.insert(0, str(tmp))
    _forget_user_code()
    try:
        run = bench.run(bench.load_suite(SUITE), workers=1, out=tmp / "results")
        assert run.trials["status"].tolist() == ["ok"]
        yield run.dir, marker, run
    finally:
        sys.path.remove(str(tmp))
        _forget_user_code()


@pytest.fixture
def fresh(user_run):
    run_dir, marker, _ = user_run
    marker.unlink(missing_ok=True)
    _forget_user_code()
    yield run_dir, marker
    _forget_user_code()


def _figures(out: Path) -> set[str]:
    return {p.stem for p in (out / "figures").glob("*.png")}


def test_report_and_check_import_nothing_the_folder_names(fresh, tmp_path):
    run_dir, marker = fresh
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r"), "--format", "md"]) == 0
    assert main(["check", str(run_dir)]) == 0
    assert main(["compare", str(run_dir), str(run_dir)]) == 0
    assert not marker.exists()  # the module was never imported
    md = (tmp_path / "r" / "report.md").read_text()
    assert (f"fig7_decision_boundaries left out: it rebuilds models with user code named in "
            f"this run folder ({MODULE}:act); pass --trust-code") in md
    assert "fig7_decision_boundaries" not in _figures(tmp_path / "r")
    assert "fig1_loss" in _figures(tmp_path / "r")  # the tables' figures are all there


def test_trust_code_draws_the_figure_with_the_users_code(fresh, tmp_path):
    run_dir, marker = fresh
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r"), "--format", "md",
                 "--trust-code"]) == 0
    assert marker.exists()
    assert "fig7_decision_boundaries" in _figures(tmp_path / "r")
    assert "--trust-code" not in (tmp_path / "r" / "report.md").read_text()


def test_open_run_trusts_nothing_unless_asked_and_report_inherits_it(fresh, tmp_path):
    run_dir, marker = fresh
    run = bench.open_run(run_dir)
    run.report(format="md", out=tmp_path / "safe")
    assert run.check() is not None and not marker.exists()
    assert bench.plots.decision_boundaries(run) is None and not marker.exists()
    assert "--trust-code" in (tmp_path / "safe" / "report.md").read_text()
    trusted = bench.open_run(run_dir, trust_code=True)
    trusted.report(format="md", out=tmp_path / "trusted")
    assert marker.exists()
    assert "fig7_decision_boundaries" in _figures(tmp_path / "trusted")


def test_the_run_bench_run_returns_trusts_its_own_suites_code(user_run, tmp_path):
    run_dir, _, run = user_run
    run.report(format="md", out=tmp_path / "r")  # the code this process ran the suite with
    assert "fig7_decision_boundaries" in _figures(tmp_path / "r")
    other = bench.Run(run_dir, _trusted=frozenset({"somewhere_else:act"}))
    assert other._data.untrusted(other.trials.iloc[0]) == [f"{MODULE}:act"]


def test_bench_run_on_the_command_line_reports_with_its_suites_code(user_run, tmp_path):
    suite = tmp_path / "trusted.toml"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "--workers", "1", "--out", str(tmp_path / "out"),
                 "--reports", str(tmp_path / "reports")]) == 0
    (report,) = (tmp_path / "reports" / "trusted").iterdir()
    assert "fig7_decision_boundaries" in _figures(report)


def _crafted(run_dir: Path, dest: Path, marker: Path) -> Path:
    """A copy of ``run_dir`` doctored to name ``os:system`` as its task, with a command as the
    task's argument: a report that drew the task again would run it. The doctored row comes
    first, under the trial id of a spiral row (the one a figure asks for)."""
    crafted = dest / "crafted"
    shutil.copytree(run_dir, crafted)
    manifest = json.loads((crafted / "manifest.json").read_text())
    manifest["suite"]["text"] = manifest["suite"]["text"].replace('kind = "spiral"',
                                                                  'kind = "os:system"')
    (crafted / "manifest.json").write_text(json.dumps(manifest))
    trials = pd.read_parquet(crafted / "trials.parquet")
    evil = trials.iloc[[0]].copy()
    evil["task.kind"] = "os:system"
    evil["model.activation"] = "relu"
    evil["task_args"] = json.dumps({"command": f"touch {marker}"})
    trials["model.activation"] = "relu"
    pd.concat([evil, trials], ignore_index=True).to_parquet(crafted / "trials.parquet")
    return crafted


def test_a_crafted_task_kind_is_never_called(fresh, tmp_path):
    run_dir, _ = fresh
    marker = tmp_path / "system-was-called"
    crafted = _crafted(run_dir, tmp_path, marker)
    assert main(["report", str(crafted), "--out", str(tmp_path / "r"), "--format", "md"]) == 0
    main(["check", str(crafted)])
    assert not marker.exists()
    assert "os:system" in (tmp_path / "r" / "report.md").read_text()  # said, not called
    run = RunData.open(crafted)
    with pytest.raises(UserError, match="--trust-code"):
        run.task_data(run.trials.iloc[0])
    assert run.model(run.trials.iloc[1]) is None and not marker.exists()


def test_built_in_code_needs_no_trust(fresh):
    run_dir, _ = fresh
    run = RunData.open(run_dir)
    row = run.trials.iloc[0].copy()
    row["model.activation"] = "tanh"
    assert run.untrusted(row.drop("trial_id")) == []
    assert run.untrusted(run.trials.iloc[0]) == [f"{MODULE}:act"]


# -- bench.run in a script: the spawned workers import it again -------------------------------

SCRIPT = '''
import bench

suite = bench.load_suite("""
name = "script"
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
epochs = 2
""")
'''
CALL = 'run = bench.run(suite, workers=2, out="results", pack=False)\nprint("trials:", len(run.trials))\n'


def _script(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "my_script.py"
    path.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def _run_folders(tmp_path: Path) -> list[Path]:
    return sorted(p.parent for p in tmp_path.glob("results/*/*/manifest.json"))


def test_a_script_without_the_main_guard_is_one_clear_error(tmp_path):
    result = _script(tmp_path, SCRIPT + CALL)
    assert result.returncode != 0
    assert 'under `if __name__ == "__main__":`' in result.stderr
    assert "my_script.py" in result.stderr
    assert "while running this trial" not in result.stdout + result.stderr  # no failed rows
    assert not _run_folders(tmp_path)  # refused before any folder is made, workers or not


@pytest.mark.slow
def test_the_same_script_with_the_guard_runs(tmp_path):
    guarded = SCRIPT + 'if __name__ == "__main__":\n' + textwrap.indent(CALL, "    ")
    result = _script(tmp_path, guarded)
    assert result.returncode == 0, result.stderr
    assert "trials: 2" in result.stdout
    (run_dir,) = _run_folders(tmp_path)
    assert pd.read_parquet(run_dir / "trials.parquet")["status"].tolist() == ["ok", "ok"]


def test_a_worker_importing_the_script_refuses_to_run(tmp_path):
    """Where the parent cannot tell (the call is not on its stack), the worker itself says it."""
    text = SCRIPT + textwrap.dedent('''
        import multiprocessing

        def noop():
            pass

        if __name__ == "__main__":
            p = multiprocessing.get_context("spawn").Process(target=noop)
            p.start()
            p.join()
            print("worker exit code:", p.exitcode)
        else:  # a spawned process, importing this script as __mp_main__
            bench.run(suite, workers=1, out="results")
        ''')
    result = _script(tmp_path, text)
    assert "worker exit code: 1" in result.stdout
    assert "bench.run was called while a worker process imported" in result.stderr
    assert 'under `if __name__ == "__main__":`' in result.stderr
    assert not _run_folders(tmp_path)
