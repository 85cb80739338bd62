"""Every suite shipped in suites/ loads, carries claims, and its claims hold: CI runs the grid
points the claims look at (at full length, on the CPU) and checks them with `bench check`."""

from pathlib import Path

import pytest

from bench.check import check, claimed_points
from bench.rundata import RunData
from bench.runner import RunOptions, run_suite
from bench.suite import expand, load_suite

SUITES = sorted((Path(__file__).resolve().parent.parent / "suites").glob("*.toml"))


def test_there_are_shipped_suites():
    assert {p.name for p in SUITES} >= {"activations.toml", "seed_replication.toml"}


@pytest.mark.slow
@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_shipped_suite_claims_hold(path, tmp_path):
    suite = load_suite(path)
    assert suite.expect, f"{path.name} has no [[expect]] claims"
    short = claimed_points(suite)
    assert 0 < len(expand(short)) <= 30, "the claimed points are too many for CI"
    store = run_suite(short, RunOptions(out=tmp_path, workers=2))
    results = check(RunData.open(store.dir), suite.expect)
    assert [r.verdict for r in results] == ["pass"] * len(results), [
        (r.index, r.verdict, r.worst) for r in results]
