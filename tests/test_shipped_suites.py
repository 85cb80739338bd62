"""Every suite shipped in suites/ loads, carries claims, and its claims hold: CI runs the grid
points the claims look at (at full length, on the CPU) and checks them with `bench check`."""

from pathlib import Path

import pytest

from bench.analysis.check import check, claimed_points
from bench.execution.run import RunOptions, run_suite
from bench.provenance import cuda_unavailable_reason
from bench.results.reader import RunData
from bench.suite import expand, load_suite

SUITES = sorted((Path(__file__).resolve().parent.parent / "suites").glob("*.toml"))
# seed_replication's claims are checked in tests/training/test_seed_replication.py, on the run whose
# exact numbers that module pins: running its two 1000-epoch trials twice would cost CI 14 s.
# mnist1d's 85 trials (8000 Adam steps each) take about 8 minutes on 2 cores, more than this
# test suite's budget: .ci/run checks its claims on its shipped seeds and on seeds + 1000 with
# scripts/fresh_seeds.py, before the tests.
CI_RUN_CHECKS = {"mnist1d"}
CHECKED_HERE = [p for p in SUITES if p.stem != "seed_replication" and p.stem not in CI_RUN_CHECKS]


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
    # CI's budget: 30 trained trials per suite; nets only drawn at init (epochs = 0) are cheap.
    # A tuned suite trains its tuning grid first: 400 short trials (the flagship's are 100
    # full-batch epochs, about a second each).
    budget = 400 if suite.tune is not None else 30
    assert specs and len(trained) <= budget and len(specs) <= 1000, "too many trials for CI"
    store = run_suite(short, RunOptions(out=tmp_path, workers=2))
    results = check(RunData.open(store.dir), suite.expect)
    assert [r.verdict for r in results] == ["pass"] * len(results), [
        (r.index, r.verdict, r.worst) for r in results]


def test_the_fresh_seed_check_shifts_every_seed(monkeypatch):
    """scripts/fresh_seeds.py (run by .ci/run after the tests) re-checks each suite's claims
    on its seeds + 1000, a tuned suite's tuning seeds too; a failing suite fails it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fresh_seeds", SUITES[0].parent.parent
                                                  / "scripts" / "fresh_seeds.py")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    calls = []
    monkeypatch.setattr(fresh, "bench", lambda argv: calls.append(argv) or (1 if "he_deep"
                                                                            in argv[1] else 0))
    flagship = [p for p in SUITES if p.stem in ("activations", "he_deep_relu")]
    assert fresh.main([str(p) for p in flagship]) == 1
    monkeypatch.setattr(fresh, "KNOWN_TO_FAIL", {"he_deep_relu": "listed"})
    assert fresh.main([str(p) for p in flagship]) == 0
    by_suite = {Path(a[1]).stem: a for a in calls}
    tuned = load_suite(flagship[0])
    argv = by_suite["activations"]
    assert argv[argv.index("--seeds") + 1] == ",".join(str(s + 1000) for s in tuned.seeds)
    assert argv[argv.index("--tune-seeds") + 1] == ",".join(str(s + 1000) for s in tuned.tune.seeds)
    assert "--quick" in argv
