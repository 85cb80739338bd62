"""The first ten minutes: shipped suites by name (`bench run activations`, `bench list suites`),
run folders by suite (`bench check regression`, `regression/latest`), and the suites shipped in
the package, so that a plain (non-editable) `pip install .` runs them from any folder."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.suite.locate import resolve_run, resolve_suite, runs_in, shipped_dir, shipped_suites

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "suites").glob("*.toml"))

TINY = """
name = "tiny"
description = "one trial, two epochs"
seeds = [0]

[task]
kind = "spiral"
points_per_class = 20

[model]
hidden = [4]
activation = "relu"

[train]
optimizer = "adam"
lr = 0.01
epochs = 2
"""


def fake_run(folder: Path, run_id: str, manifest: bool = True) -> Path:
    run = folder / run_id
    run.mkdir(parents=True)
    if manifest:
        (run / "manifest.json").write_text(json.dumps({"run_id": run_id}))
    return run


# -- the shipped suites, by name -------------------------------------------------------------


def test_a_checkout_finds_the_root_suites_folder():
    import bench
    if Path(bench.__file__).resolve().parent != ROOT / "bench":
        pytest.skip(f"bench is imported from an install ({bench.__file__}), not this checkout")
    assert shipped_dir() == ROOT / "suites"
    assert [s.path for s in shipped_suites()] == SHIPPED


def test_each_shipped_suite_is_named_as_its_file():
    # `bench run NAME` stores its run under results/<the TOML name>/ and `bench check NAME`
    # looks there: the two are one name.
    for s in shipped_suites():
        assert s.name == s.key == tomllib.loads(s.path.read_text())["name"]
        assert s.description, f"{s.path.name} has no description for `bench list suites`"


@pytest.mark.parametrize("name", ["activations", "regression"])
def test_a_shipped_name_is_its_file_from_any_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_suite(name) == ROOT / "suites" / f"{name}.toml"


def test_a_file_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "regression").write_text(TINY)  # a file named like a shipped suite
    assert resolve_suite("regression") == Path("regression")
    assert resolve_suite(tmp_path / "x.toml") == tmp_path / "x.toml"  # for load_suite to refuse
    assert resolve_suite("sub/regression") == Path("sub/regression")  # a path, not a name


def test_an_unknown_name_lists_the_shipped_ones_with_did_you_mean(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        resolve_suite("regresion")
    message = str(err.value)
    assert "did you mean 'regression'?" in message and "activations, " in message
    assert set(err.value.choices) == {p.stem for p in SHIPPED}


def test_a_shipped_suites_path_outside_the_checkout_says_how_to_name_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="bench run activations"):
        resolve_suite("suites/activations.toml")


def test_run_by_name_from_another_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "regression", "--dry-run"]) == 0
    assert "regression: 3 grid points" in capsys.readouterr().out
    assert main(["run", "activatoins", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'activations'?" in err and "Traceback" not in err


def test_list_suites_shows_each_with_its_description(capsys):
    assert main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    for s in shipped_suites():
        assert s.key in out
    assert "ReLU vs Tanh vs a line" in out  # regression's description


def test_plain_list_points_to_list_suites(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "relu" in out and "list suites" in out


# -- run folders, by suite -------------------------------------------------------------------


def test_latest_is_the_newest_run_id_with_a_manifest(tmp_path):
    suite = tmp_path / "results" / "tiny"
    fake_run(suite, "20240101T000000Z")
    fake_run(suite, "20240101T000000Z-9")
    newest = fake_run(suite, "20240101T000000Z-10")  # after -9, which string order gets wrong
    fake_run(suite, "20250101T000000Z", manifest=False)  # never started: not a run
    fake_run(suite, ".20260101T000000Z.host.1.0123abcd")  # a temporary folder
    root = tmp_path / "results"
    assert [p.name for p in runs_in(suite)][-1] == newest.name
    for arg in ("tiny", "tiny/latest", suite / "latest"):
        assert resolve_run(arg, root) == newest
    assert resolve_run("tiny/20240101T000000Z", root) == suite / "20240101T000000Z"


def test_a_path_that_exists_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path / "results" / "tiny", "20240101T000000Z")
    (tmp_path / "tiny").mkdir()  # a folder here, named like the suite: it is what was meant
    assert resolve_run("tiny") == Path("tiny")
    nowhere = tmp_path / "nowhere"  # an absolute path is left to the command's own error
    assert resolve_run(nowhere) == nowhere


def test_a_name_that_matches_nothing_says_where_it_looked(tmp_path):
    root = tmp_path / "results"
    with pytest.raises(UserError, match=f"{root} does not exist"):
        resolve_run("tiny", root)
    fake_run(root / "tiny", "20240101T000000Z")
    with pytest.raises(UserError, match=r"did you mean 'tiny'\?.*suites with runs there: tiny"):
        resolve_run("tinny/latest", root)
    with pytest.raises(UserError, match="runs of 'tiny' there: 20240101T000000Z"):
        resolve_run("tiny/20990101T000000Z", root)
    (root / "empty").mkdir()
    with pytest.raises(UserError, match="has no run in it"):
        resolve_run("empty", root)
    with pytest.raises(UserError, match="needs a suite"):
        resolve_run("latest", root)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """One real run of a one-trial suite, in <tmp>/results/tiny/, run from <tmp>."""
    tmp = tmp_path_factory.mktemp("by_name")
    (tmp / "tiny.toml").write_text(TINY)
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        assert main(["run", "tiny.toml", "--workers", "1", "--no-report"]) == 0
    finally:
        os.chdir(cwd)
    (run,) = runs_in(tmp / "results" / "tiny")
    return tmp, run


@pytest.mark.parametrize("arg", ["tiny", "tiny/latest"])
def test_check_report_and_compare_take_a_suite_name(arg, tiny_results, monkeypatch, capsys):
    tmp, run = tiny_results
    monkeypatch.chdir(tmp)
    capsys.readouterr()
    assert main(["check", arg]) == 0
    captured = capsys.readouterr()
    assert f"{arg}: {Path('results') / 'tiny' / run.name}" in captured.err  # which run it took
    assert "no [[expect]] claims" in captured.out
    out = tmp / f"report_{arg.replace('/', '_')}"
    assert main(["report", arg, "--format", "md", "--out", str(out)]) == 0
    assert (out / "report.md").is_file()
    assert main(["compare", arg, "tiny/" + run.name]) == 0


def test_resume_takes_a_suite_name_under_out(tiny_results, monkeypatch, capsys):
    tmp, run = tiny_results
    monkeypatch.chdir(tmp)
    capsys.readouterr()
    assert main(["run", "tiny.toml", "--resume", "tiny/latest", "--workers", "1",
                 "--no-report"]) == 0
    assert f"run folder: {Path('results') / 'tiny' / run.name}" in capsys.readouterr().out
    assert runs_in(tmp / "results" / "tiny") == [run]  # no second run folder
    # --out is the root that names are looked up in
    assert main(["run", "tiny.toml", "--resume", "tiny/latest", "--out", "elsewhere"]) == 2
    assert "elsewhere does not exist" in capsys.readouterr().err


# -- the package data: a non-editable install --------------------------------------------------


def test_the_package_list_names_every_folder_of_the_package():
    # pyproject.toml lists the packages (so that bench.suites can map to suites/): a new folder
    # under bench/ must be added there, or a wheel leaves it out.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = ROOT / "bench"
    folders = {"bench"} | {"bench." + ".".join(p.relative_to(package).parts)
                           for p in package.rglob("*") if p.is_dir() and "__pycache__" not in p.parts}
    assert folders | {"bench.suites"} == set(config["packages"])
    assert config["package-dir"] == {"bench.suites": "suites"}
    assert "*.toml" in config["package-data"]["bench.suites"]


def test_a_wheel_ships_the_suites_and_an_install_finds_them_from_another_folder(tmp_path):
    pytest.importorskip("setuptools")
    # Built from a copy of what the build reads, so the checkout gets no build/ folder.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("bench", "suites"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps",
                            "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "dist")],
                           cwd=src, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("actbench-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {f"bench/suites/{p.name}" for p in SHIPPED} <= names
        assert {"bench/reporting/templates/report.html.j2", "bench/reporting/templates/report.md.j2"} <= names
        assert zf.read("bench/suites/regression.toml") == (ROOT / "suites/regression.toml").read_bytes()
        zf.extractall(tmp_path / "site")  # what `pip install` lays out in site-packages
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    probe = subprocess.run(
        [sys.executable, "-c", "import bench, bench.suite.locate as l; "
         "print(bench.__file__); print(l.resolve_suite('regression'))"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    module, suite = probe.stdout.split()
    site = tmp_path / "site"
    assert Path(module) == site / "bench" / "__init__.py"  # the installed copy, not the checkout
    assert Path(suite) == site / "bench" / "suites" / "regression.toml"
    listed = subprocess.run([sys.executable, "-m", "bench", "list", "suites"], cwd=elsewhere,
                            env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert all(p.stem in listed.stdout for p in SHIPPED)
    dry = subprocess.run([sys.executable, "-m", "bench", "run", "regression", "--dry-run"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "regression: 3 grid points" in dry.stdout
