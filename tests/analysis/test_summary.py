"""Matched comparisons, rankings and findings on synthetic trials whose answers are known."""

import itertools
import re

import numpy as np
import pandas as pd
import pytest

from bench.analysis.findings import at_ceiling, best_and_fastest, factor_effect
from bench.analysis.summary import BY_COLUMN, Section, headline, pairwise, rankings

KEYS = ["model.activation", "model.init", "train.accumulation_steps"]


def _frame():
    """relu beats sigmoid by 0.4 everywhere; init changes nothing; k = 8 uses 1/5 the memory."""
    rows = []
    noise = iter(np.random.default_rng(0).normal(0, 0.005, size=64))
    for act, init, k, seed in itertools.product(["sigmoid", "relu"], ["default", "xavier"], [1, 8],
                                                range(4)):
        rows.append({"model.activation": act, "model.init": init, "train.accumulation_steps": k,
                     "seed": seed, "status": "ok",
                     "final_accuracy": (0.9 if act == "relu" else 0.5) + next(noise),
                     "peak_memory_bytes": 100.0 if k == 1 else 20.0,
                     "time_per_epoch_s": 0.001 * (3 if k == 8 else 1)})
    return pd.DataFrame(rows)


def _section(frame):
    metrics = [BY_COLUMN[c] for c in ("final_accuracy", "peak_memory_bytes", "time_per_epoch_s")]
    return Section("spiral", "classification", frame, KEYS, BY_COLUMN["final_accuracy"], metrics,
                   headline(frame, KEYS, metrics))


def test_pairs_are_matched_on_every_other_key():
    frame = _frame()
    comps = pairwise(frame, KEYS, "model.activation", BY_COLUMN["final_accuracy"])
    assert len(comps) == 4  # one pair per (init, k)
    assert {tuple(c.context.values()) for c in comps} == {("default", 1), ("default", 8),
                                                          ("xavier", 1), ("xavier", 8)}
    for c in comps:
        assert (c.a, c.b) == ("sigmoid", "relu")
        assert c.diff.diff == pytest.approx(-0.4, abs=0.02)
        assert c.verdict(BY_COLUMN["final_accuracy"]) == "relu better"
        assert c.diff.n_a == c.diff.n_b == 4


def test_rankings_say_which_steps_are_significant():
    frame = _frame()
    main = BY_COLUMN["final_accuracy"]
    comps = pairwise(frame, KEYS, "model.activation", main)
    lines = rankings(frame, KEYS, main, comps)
    assert lines[0].startswith("Across the 4 settings") and "relu 4/4, sigmoid 0/4" in lines[0]
    for line in lines[1:]:
        assert re.search(r"top group relu (89\.\d|9\d\.\d)%; significantly worse than relu: "
                         r"sigmoid (49\.\d|5\d\.\d)%$", line), line


def test_a_difference_between_non_neighbours_is_not_hidden():
    """relu >> sigmoid with a noisy tanh between them: tanh may join the top group, but
    sigmoid must still be called worse than relu."""
    rng = np.random.default_rng(1)
    rows = [{"model.activation": act, "seed": s, "status": "ok", "final_accuracy": acc}
            for act, base, spread in (("relu", 0.93, 0.001), ("tanh", 0.74, 0.3),
                                      ("sigmoid", 0.50, 0.001))
            for s, acc in enumerate(base + spread * rng.standard_normal(3))]
    frame = pd.DataFrame(rows)
    main = BY_COLUMN["final_accuracy"]
    comps = pairwise(frame, ["model.activation"], "model.activation", main)
    (line,) = rankings(frame, ["model.activation"], main, comps)
    assert "significantly worse than relu: sigmoid" in line and "top group relu" in line


def test_too_few_seeds_is_said_plainly():
    frame = _frame()
    frame = frame[frame.seed == 0]
    comps = pairwise(frame, KEYS, "model.activation", BY_COLUMN["final_accuracy"])
    assert all(c.verdict(BY_COLUMN["final_accuracy"]).startswith("too few seeds (n = 1, 1)")
               for c in comps)
    lines = rankings(frame, KEYS, BY_COLUMN["final_accuracy"], comps)
    assert lines[0].startswith("Too few seeds")
    assert all(line.endswith("(too few seeds to call any difference)") for line in lines[1:])


def test_an_activation_that_always_diverged_is_named_not_dropped():
    frame = _frame()
    frame.loc[frame["model.activation"] == "sigmoid", ["final_accuracy", "status"]] = [np.nan, "diverged"]
    main = BY_COLUMN["final_accuracy"]
    comps = pairwise(frame, KEYS, "model.activation", main)
    assert all(c.verdict(main) == "no finite train accuracy for sigmoid (diverged)" for c in comps)
    lines = rankings(frame, KEYS, main, comps)
    assert all(line.endswith("diverged in every seed: sigmoid") for line in lines[1:])


def test_factor_effects_give_verdicts_and_resource_ratios():
    section = _section(_frame())
    (init,) = factor_effect(section, "model.init")
    assert "over 4 matched settings" in init and "no significant difference in 4" in init
    (k,) = factor_effect(section, "train.accumulation_steps")
    assert "peak memory ×0.20 (100 → 20 B, medians)" in k
    assert "time per epoch ×3.0 (1.0 → 3.0 ms, medians)" in k


def _accuracies(values: dict) -> Section:
    """One setting per activation, 4 seeds each, at the given accuracies (a list per seed or
    one value for all)."""
    rows = []
    for act, acc in values.items():
        for seed in range(4):
            a = acc[seed] if isinstance(acc, list) else acc
            rows.append({"model.activation": act, "seed": seed, "status": "ok",
                         "final_accuracy": a, "final_loss": 1 - a,
                         "time_per_epoch_s": 0.001})
    frame = pd.DataFrame(rows)
    metrics = [BY_COLUMN["final_accuracy"], BY_COLUMN["final_loss"]]
    keys = ["model.activation"]
    return Section("spiral", "classification", frame, keys, BY_COLUMN["final_accuracy"], metrics,
                   headline(frame, keys, metrics))


def _best(section: Section) -> list:
    return [f for f in best_and_fastest(section) if f.label in ("Best setting",
                                                                  "No single best setting")]


def test_a_tie_at_the_ceiling_is_said_as_a_tie_not_a_winner():
    """99.93% against 99.9% and 99.6%: all within half a point of 100%, the measurement is
    saturated, so no setting is named the best; the one at 97% is not in the tie."""
    section = _accuracies({"relu": 0.9993, "tanh": 0.999, "gelu": [0.996] * 3 + [0.997],
                           "sigmoid": 0.97})
    (finding,) = _best(section)
    assert finding.label == "No single best setting"
    assert finding.text.startswith("a tie at the ceiling: 3 settings")
    assert "activation = relu; activation = tanh; activation = gelu" in finding.text
    assert "sigmoid" not in finding.text and "cannot rank them" in finding.text


def test_an_exact_tie_below_the_ceiling_is_a_tie_and_a_clear_best_is_a_best():
    tie = _best(_accuracies({"relu": 0.8, "tanh": 0.8, "sigmoid": 0.6}))
    assert [f.label for f in tie] == ["No single best setting"]
    assert tie[0].text.startswith("a tie: 2 settings share the best train accuracy, 80")
    assert "ceiling" not in tie[0].text
    (best,) = _best(_accuracies({"relu": 0.9993, "tanh": 0.95, "sigmoid": 0.6}))
    assert best.label == "Best setting" and "activation = relu" in best.text
    assert "tie" not in best.text


@pytest.mark.parametrize("metric,mean,ceiling", [
    ("final_accuracy", 0.996, True), ("final_accuracy", 0.994, False),
    ("dead_fraction", 0.004, True), ("dead_fraction", 0.006, False),
    ("final_loss", 0.0, False), ("final_accuracy", float("nan"), False)])
def test_the_ceiling_is_half_a_point_from_a_shares_bound(metric, mean, ceiling):
    assert at_ceiling(BY_COLUMN[metric], mean) is ceiling
