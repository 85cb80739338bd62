"""Every suite shipped in suites/ loads, carries claims, and its claims hold: CI runs the grid
points the claims look at (at full length, on the CPU) and checks them with `bench check`."""

from pathlib import Path

import pytest

from bench.check import check, claimed_points
from bench.provenance import cuda_unavailable_reason
from bench.rundata import RunData
from bench.runner import RunOptions, run_suite
from bench.suite import expand, load_suite

SUITES = sorted((Path(__file__).resolve().parent.parent / "suites").glob("*.toml"))
# seed_replication's claims are checked in tests/test_seed_replication.py, on the run whose
# exact numbers that module pins: running its two 1000-epoch trials twice would cost CI 14 s.
CHECKED_HERE = [p for p in SUITES if p.stem != "seed_replication"]


def test_there_are_shipped_suites():
    assert {p.name for p in SUITES} >= {
        "activations.toml", "seed_replication.toml", "regression.toml", "dying_relu.toml",
        "born_dead.toml", "glorot_bengio.toml", "he_deep_relu.toml", "accumulation.toml",
        "accumulation_full_batch.toml"}


@pytest.mark.slow
@pytest.mark.parametrize("path", CHECKED_HERE, ids=lambda p: p.stem)
def test_shipped_suite_claims_hold(path, tmp_path):
    suite = load_suite(path)
    assert suite.expect, f"{path.name} has no [[expect]] claims"
    short = claimed_points(suite)
    specs = expand(short)
    trained = [s for s in specs if s.train.epochs > 0 and not cuda_unavailable_reason(s.train.device)]
    # CI's budget: 30 trained trials per suite; nets only drawn at init (epochs = 0) are cheap
    assert specs and len(trained) <= 30 and len(specs) <= 1000, "too many trials for CI"
    store = run_suite(short, RunOptions(out=tmp_path, workers=2))
    results = check(RunData.open(store.dir), suite.expect)
    assert [r.verdict for r in results] == ["pass"] * len(results), [
        (r.index, r.verdict, r.worst) for r in results]
