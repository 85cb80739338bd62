"""The run folder: atomic parts, table types and order, rebuilding from parts."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench.results.writer import RunStore
from bench.suite import expand
from bench.training.loop import run_trial
from tests.helpers import make_suite

SUITE = """
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
[[variant]]
name = "mlp"
[[variant]]
name = "linear"
"model.hidden" = []
[[variant]]
name = "gpu"
"train.device" = "cuda:7"
"""


def test_an_empty_run_has_tables_with_their_key_columns(tmp_path):
    store = RunStore.create(tmp_path, "empty", {})
    store.consolidate()
    for name, columns in [("trials", ["trial_id", "status", "error", "final_loss"]),
                          ("curves", ["trial_id", "epoch", "loss"]),
                          ("layers", ["trial_id", "epoch", "layer", "dead_fraction"])]:
        schema = pq.read_schema(store.dir / f"{name}.parquet")
        assert set(columns) <= set(schema.names)


def test_types_order_and_rebuild_from_parts(tmp_path):
    specs = expand(make_suite(SUITE))
    order = [s.trial_id for s in specs]
    store = RunStore.create(tmp_path, "t", {})
    for spec in reversed(specs):  # stored out of order, as a pool finishes them
        store.add(run_trial(spec))
    store.consolidate(order)
    trials = pd.read_parquet(store.dir / "trials.parquet")
    assert list(trials.trial_id) == order
    schema = pq.read_schema(store.dir / "trials.parquet")
    assert str(schema.field("model.hidden").type) == "list<element: int64>"
    assert str(schema.field("train.batch_size").type) == "string"
    assert str(schema.field("train.target.value").type) == "double"
    assert str(schema.field("epochs_to_target").type) == "int64"
    assert trials.set_index("variant").loc["linear", "model.hidden"].map(list).tolist() == [[], []]
    assert (trials[trials.variant == "gpu"].status == "skipped").all()

    fresh = {n: pq.read_table(store.dir / f"{n}.parquet") for n in ("trials", "curves", "layers")}
    (store.dir / "trials.parquet").unlink()
    reopened = RunStore.open(store.dir)
    assert reopened.done() == {s.trial_id for s in specs if s.variant != "gpu"}
    reopened.consolidate(order)
    for name, table in fresh.items():
        again = pq.read_table(store.dir / f"{name}.parquet")
        assert again.column_names == table.column_names
        assert again.column_names[0] == "trial_id"
        assert again.equals(table)


def test_a_part_left_half_written_is_ignored_and_removed(tmp_path):
    store = RunStore.create(tmp_path, "t", {})
    half = store.parts / ".abc.123"
    half.mkdir()
    (half / "trial.parquet").write_bytes(b"not parquet")
    assert RunStore.open(store.dir).statuses() == {}
    assert not half.exists()


def test_epochs_zero_meters_one_micro_batch():
    def peak(batch, k):
        spec = expand(make_suite(SUITE.replace("epochs = 3", f"epochs = 0\nbatch_size = {batch}\n"
                                                               f"accumulation_steps = {k}")
                                 .replace("points_per_class = 20", "points_per_class = 400")
                                 .replace("hidden = [4]", "hidden = [256]")))[0]
        return run_trial(spec).trial["peak_memory_bytes"]
    assert peak(100, 10) == pytest.approx(peak(100, 1), rel=0.05)
    assert peak(100, 10) < 0.5 * peak(1000, 1)
