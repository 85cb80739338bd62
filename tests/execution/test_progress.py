"""The progress bar moves while a pack trains: executors report each unit's share of epochs
done (in this process, and from worker processes through shared memory), and the runner shows
it as trials' worth of progress, so the ETA does not wait for a whole pack."""

import io

import pytest
from rich.console import Console
from rich.progress import Progress

from bench.execution.local import run_processes, run_serial
from bench.execution.run import RunOptions, run_suite
from bench.suite import expand
from tests.helpers import make_suite

PACK = """
seeds = [0, 1, 2, 3]
[task]
kind = "spiral"
points_per_class = {points}
[model]
hidden = [32]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.01
epochs = {epochs}
log_every = 50
"""


def _specs(epochs: int, points: int = 100):
    return expand(make_suite(PACK.format(epochs=epochs, points=points), name="progress"))


def test_a_pack_in_this_process_reports_every_epoch_up_to_one():
    specs = _specs(epochs=7)
    seen, rows = [], []
    run_serial([specs], 1, lambda spec, result: rows.append(result.status),
               lambda unit, share: seen.append((tuple(s.trial_id for s in unit), share)))
    assert rows == ["ok"] * 4
    assert [share for _, share in seen] == pytest.approx([(i + 1) / 7 for i in range(7)])
    assert {ids for ids, _ in seen} == {tuple(s.trial_id for s in specs)}  # the whole pack


def test_a_pack_in_a_worker_process_is_seen_partway_through():
    """Two units on two workers, each long enough (about a second) for the coordinator's
    polls to catch it midway; the shares it reads only grow, and each unit's trials arrive."""
    specs = _specs(epochs=400, points=500)
    units = [specs[:2], specs[2:]]
    seen: dict[tuple, list[float]] = {}
    rows = []
    run_processes(units, 2, 1, lambda spec, result: rows.append(result.status),
                  lambda unit, share: seen.setdefault(tuple(s.trial_id for s in unit),
                                                      []).append(share))
    assert rows == ["ok"] * 4
    assert set(seen) <= {tuple(s.trial_id for s in u) for u in units} and seen
    for shares in seen.values():
        assert shares == sorted(shares) and all(0 <= s <= 1 for s in shares)
    assert any(0 < s < 1 for shares in seen.values() for s in shares), seen


def test_the_bar_advances_by_fractions_of_a_pack_and_ends_at_its_trials(tmp_path, monkeypatch):
    shown = []
    update = Progress.update

    def recording(self, task, **kwargs):
        if "completed" in kwargs:
            shown.append(kwargs["completed"])
        return update(self, task, **kwargs)

    monkeypatch.setattr(Progress, "update", recording)
    suite = make_suite(PACK.format(epochs=300, points=500), name="progress")
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    store = run_suite(suite, RunOptions(out=tmp_path, workers=1, pack="on"), console)
    assert list(store.statuses().values()) == ["ok"] * 4
    before_rows = shown[:shown.index(1)] if 1 in shown else shown
    assert any(0 < c < 4 and c != int(c) for c in before_rows), shown  # midway through the pack
    assert shown == sorted(shown) and shown[-1] == 4  # never backwards, and every trial counted
