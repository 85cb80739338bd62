"""The statistics over seeds, against scipy and against the formulas on tiny inputs."""

import math

import numpy as np
import pytest
from scipy import stats as st

from bench.analysis.statistics import holm, mean_ci, welch


def test_mean_ci_by_hand():
    # [1, 2, 3]: mean 2, s = 1, t(0.975, 2) = 4.302653, half-width = 4.302653 / sqrt(3)
    est = mean_ci([1.0, 2.0, 3.0])
    assert est.mean == 2.0 and est.n == 3
    assert est.half_width == pytest.approx(4.302652729696 / math.sqrt(3), rel=1e-9)
    assert (est.low, est.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_mean_ci_matches_scipy(seed):
    x = np.random.default_rng(seed).normal(size=3 + seed)
    low, high = st.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=st.sem(x))
    est = mean_ci(x)
    assert (est.low, est.high) == pytest.approx((low, high), rel=1e-12)


def test_mean_ci_drops_non_finite_and_reports_n():
    est = mean_ci([1.0, np.nan, 3.0, np.inf])
    assert est.n == 2 and est.mean == 2.0
    one = mean_ci([5.0, np.nan])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.low) and math.isnan(one.high)
    none = mean_ci([])
    assert none.n == 0 and math.isnan(none.mean)


@pytest.mark.parametrize("seed", range(6))
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, size=3 + seed % 3)
    b = rng.normal(0.7, 2.5, size=2 + seed)
    ref = st.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    d = welch(a, b)
    assert d.diff == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert d.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert (d.n_a, d.n_b) == (len(a), len(b))


def test_welch_by_hand():
    # a = [1, 2, 3], b = [4, 6, 8]: va = 1/3, vb = 4/3, se = sqrt(5/3),
    # df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2) = 25/9 / (17/18) = 50/17
    d = welch([1, 2, 3], [4, 6, 8])
    t = -4 / math.sqrt(5 / 3)
    assert d.diff == -4
    assert d.p == pytest.approx(2 * st.t.sf(abs(t), 50 / 17), rel=1e-12)
    assert d.significant() == (d.p < 0.05)


def test_welch_too_few_seeds_is_not_a_test():
    d = welch([0.9], [0.5, 0.6])
    assert d.diff == pytest.approx(0.35)
    assert math.isnan(d.p) and not d.testable and not d.significant()


def test_welch_without_spread_is_not_a_test():
    same = welch([1.0, 1.0], [1.0, 1.0])
    assert same.diff == 0 and math.isnan(same.p) and not same.testable and not same.significant()
    apart = welch([2.0, 2.0], [1.0, 1.0])
    assert apart.diff == 1.0 and apart.low == apart.high == 1.0  # exact, but nothing to test
    assert math.isnan(apart.p) and not apart.significant()


def test_holm_by_hand():
    # sorted: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone: 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.5, np.nan, 0.9])
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([1.0, 1.0])  # 0.5 * 2 capped at 1, then monotone
    assert holm([0.2]) == pytest.approx([0.2])
