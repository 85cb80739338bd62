"""Statistics over seeds: means with t-intervals, Welch's test for a difference, Holm's correction.

Every interval is a two-sided Student t-interval (the seeds are few, so no normal
approximation), and every comparison is Welch's unequal-variance t-test, which does not assume
that two activations spread alike over seeds. Values that are NaN or infinite (a diverged
trial's loss, a target never reached) are left out, and ``n`` says how many remained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class _LazyScipyStats:
    """scipy.stats, imported on first use: it costs about a second, and a run that never
    summarizes (a worker, ``run --no-report``, ``--dry-run``) should not pay it."""

    def __getattr__(self, name: str):
        from scipy import stats

        return getattr(stats, name)


_st = _LazyScipyStats()

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
MIN_SEEDS = 2  # a t-interval or a t-test needs at least two seeds per group
POWER = 0.8    # for the smallest detectable difference: found 4 times in 5


def _finite(values) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its two-sided t-interval (NaN bounds when ``n`` < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def t_half_width(std, n, confidence: float = CONFIDENCE):
    """Half-width of the t-interval of a mean, t(1-α/2, n-1) · s / √n; elementwise over arrays
    of ``std`` and ``n`` (a figure's band, one x at a time). NaN where n < 2."""
    n = np.asarray(n, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):  # a huge finite loss before divergence
        tcrit = _st.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1))
        half = tcrit * np.asarray(std, dtype=float) / np.sqrt(n)
    return np.where(n >= MIN_SEEDS, half, np.nan)


def mean_ci(values, confidence: float = CONFIDENCE) -> Estimate:
    """Mean of the finite values and its t-interval: mean ± t(1-α/2, n-1) · s / √n."""
    a = _finite(values)
    n = len(a)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(a.mean())
    if n < MIN_SEEDS:
        return Estimate(mean, math.nan, math.nan, n)
    half = float(t_half_width(a.std(ddof=1), n, confidence))
    return Estimate(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with Welch's t-interval and two-sided p-value.

    ``p`` is NaN when there is nothing to test: too few seeds (``n`` < 2 in a group), or no
    spread over seeds on either side (the difference is then exact, and its interval a point).
    """

    diff: float
    low: float
    high: float
    p: float
    n_a: int
    n_b: int
    se: float = math.nan    # the difference's standard error (Welch)
    df: float = math.nan    # Welch–Satterthwaite degrees of freedom

    def detectable(self, power: float = POWER, alpha: float = ALPHA) -> float:
        """The smallest true difference these seeds would detect with probability ``power``
        in a two-sided Welch test at ``alpha``: (t(1-α/2, df) + t(power, df)) · se, with the
        spread the seeds showed. NaN without two seeds a side."""
        if not (math.isfinite(self.se) and math.isfinite(self.df)):
            return math.nan
        return float((_st.t.ppf(1 - alpha / 2, self.df) + _st.t.ppf(power, self.df)) * self.se)

    @property
    def testable(self) -> bool:
        """Two seeds a side, and some spread over seeds to test against."""
        return min(self.n_a, self.n_b) >= MIN_SEEDS and math.isfinite(self.p)

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.testable and self.p < alpha


def welch(a, b, confidence: float = CONFIDENCE) -> Difference:
    """Welch's unequal-variance t-test of mean(a) - mean(b), with the Welch–Satterthwaite df."""
    a, b = _finite(a), _finite(b)
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return Difference(math.nan, math.nan, math.nan, math.nan, na, nb)
    diff = float(a.mean() - b.mean())
    if min(na, nb) < MIN_SEEDS:
        return Difference(diff, math.nan, math.nan, math.nan, na, nb)
    with np.errstate(over="ignore"):  # a huge finite loss just before divergence
        va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    se2 = va + vb
    if se2 == 0:  # every seed gives the same value on both sides: nothing to test against
        return Difference(diff, diff, diff, math.nan, na, nb, 0.0, math.nan)
    df = se2 ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    se = math.sqrt(se2)
    t = diff / se
    p = float(2 * _st.t.sf(abs(t), df))
    half = float(_st.t.ppf(0.5 + confidence / 2, df) * se)
    return Difference(diff, diff - half, diff + half, p, na, nb, se, float(df))


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN and is not counted as a test)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = len(tested)
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out
