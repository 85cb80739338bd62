"""The package layout is the pipeline: import-linter's contracts (pyproject.toml) hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_layer_imports_a_higher_one():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed: pip install -e '.[test]'")
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("package", ["training", "suite", "results", "analysis", "execution",
                                     "reporting"])
def test_each_subpackage_says_what_it_is_for_and_exports(package):
    import importlib

    module = importlib.import_module(f"bench.{package}")
    assert module.__doc__ and len(module.__doc__.strip().splitlines()) >= 2
    assert module.__all__, f"bench.{package} exports nothing"
    for name in module.__all__:
        assert getattr(module, name) is not None
