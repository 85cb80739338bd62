"""Provenance records actbench's own commit only, and tox installs the CPU torch where it says."""

import configparser
import json
import re
import subprocess
from pathlib import Path

import pytest

from bench import provenance

ROOT = Path(__file__).resolve().parent.parent


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin:/usr/local/bin"})


def _repo(path: Path, project: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text(f'[project]\nname = "{project}"\n')
    _git(path, "init", "-q")
    _git(path, "add", "pyproject.toml")
    _git(path, "commit", "-q", "-m", "x")
    return path


def test_the_checkout_records_its_own_commit():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", provenance.git_commit())


def test_another_projects_tree_is_not_actbenchs_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "recorded_commit", lambda: None)
    other = _repo(tmp_path / "other", "someone-elses-project")
    assert provenance.git_commit(other) is None
    # actbench vendored inside another project's repository: the tree is not actbench's own
    outer = _repo(tmp_path / "outer", "outer-project")
    vendored = outer / "vendor" / "actbench"
    vendored.mkdir(parents=True)
    (vendored / "pyproject.toml").write_text('[project]\nname = "actbench"\n')
    assert provenance.git_commit(vendored) is None
    own = _repo(tmp_path / "actbench", "actbench")
    assert re.fullmatch(r"[0-9a-f]{40}", provenance.git_commit(own))


def test_an_install_records_the_commit_pip_wrote(monkeypatch):
    from importlib import metadata

    class Dist:
        def __init__(self, info):
            self.info = info

        def read_text(self, name):
            return json.dumps(self.info) if name == "direct_url.json" else None

    sha = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(
        {"url": "git+https://example.org/actbench", "vcs_info": {"vcs": "git", "commit_id": sha}}))
    assert provenance.recorded_commit() == sha
    monkeypatch.setattr(metadata, "distribution",
                        lambda name: Dist({"url": "file:///x", "dir_info": {}}))
    assert provenance.recorded_commit() is None  # a plain `pip install .`: no commit to claim


def _tox():
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tox.ini")
    return config


def test_tox_pins_the_cpu_torch_before_the_package_and_lint_has_none():
    tox = _tox()
    assert "torch==2.13.0" in tox["testenv"]["deps"]          # deps install before the package
    assert "torch" not in tox["testenv"].get("commands_pre", "")
    lint = tox["testenv:lint"]
    assert lint["skip_install"] == "true" and "torch" not in lint["deps"]
    assert lint.get("commands_pre", "").strip() == ""          # nothing inherited installs torch


def test_tox_lists_every_env():
    tox = _tox()
    listed = {e.strip() for e in tox["tox"]["envlist"].split(",")}
    defined = {s.split(":", 1)[1] for s in tox.sections() if s.startswith("testenv:")} | {"py"}
    assert listed == defined
