"""examples/homework.ipynb runs headless, top to bottom, on a short setting, through the API."""

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "homework.ipynb"


def test_the_notebook_is_committed_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.slow
def test_the_notebook_runs_and_shows_its_figures_inline(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient")
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel")
    monkeypatch.setenv("ACTBENCH_NOTEBOOK_EPOCHS", "20")
    monkeypatch.setenv("ACTBENCH_NOTEBOOK_OUT", str(tmp_path / "results"))
    monkeypatch.setenv("ACTBENCH_NOTEBOOK_WORKERS", "1")  # no process pool to start
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # decision boundaries, curves, cubic fits, accumulation curves, the notebook's own swish
    assert len(images) == 5
    text = " ".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "final_accuracy" in text and "extrapolation_slope_ratio" in text
    assert "pass" in text  # the claims table of run.check()
    # progress renders as a widget or as plain lines, never as terminal escape codes
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "\x1b[" not in streams
    runs = sorted(p.parent.name for p in (tmp_path / "results").glob("*/*/manifest.json"))
    assert len(runs) == 5
    assert "__main__:swish" in text  # a function written in a cell, run and tabled
