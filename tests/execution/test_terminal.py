"""What a run prints: a progress line that fits 80 columns, skipped trials as one line."""

import io
import re

import pytest
from rich.console import Console

from bench.execution.reporter import progress_bar
from bench.execution.run import RunOptions, run_suite
from tests.helpers import make_suite, one_spec


@pytest.mark.parametrize("width", [80, 120])
def test_the_progress_line_keeps_its_count_and_eta_at_any_width(width):
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    progress = progress_bar(console)
    long = one_spec().label() + ": loss 0.01234 acc 0.999 " + "x" * 200
    with progress:
        task = progress.add_task("a-suite-with-a-long-name", total=192, last="")
        progress.update(task, advance=37, last=long)
        progress.refresh()
    lines = [line for line in out.getvalue().replace("\r", "\n").split("\n") if "37/192" in line]
    assert lines, out.getvalue()
    for line in lines:
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line)  # the terminal's control codes
        assert len(text.rstrip()) <= width
        assert "ETA" in text and "…" in text  # the trial's text is cut, not the count


def test_skipped_trials_are_one_line_and_not_progress(tmp_path):
    suite = make_suite("""
seeds = [0, 1, 2]
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
[sweep]
"train.device" = ["cpu", "cuda"]
""", name="skips")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: nothing is skipped")
    out = io.StringIO()
    store = run_suite(suite, RunOptions(out=tmp_path, workers=1),
                      Console(file=out, width=100, color_system=None))
    text = out.getvalue()
    assert "3 cuda trial(s) recorded as skipped:" in text
    assert "cuda seed=" not in text, text  # no line per skipped trial
    assert list(store.statuses().values()).count("skipped") == 3  # yet every one is a row
    assert "[3/3]" in text and "[4/" not in text  # the count is of the trials that train
