"""Numbers for people: significant figures, one unit per column, mean ± half-width."""

from __future__ import annotations

import math

import numpy as np

from .stats import Estimate

DASH = "–"


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, without exponents for everyday magnitudes."""
    if x is None or not math.isfinite(x):
        return DASH if x is None or math.isnan(x) else ("∞" if x > 0 else "-∞")
    if x == 0:
        return "0"
    exponent = math.floor(math.log10(abs(x)))
    if exponent < -4 or exponent >= 7:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - exponent)
    return f"{x:.{decimals}f}"


def _decimals_for(half: float) -> int:
    """Decimals that show ``half`` to two significant figures (never negative)."""
    return max(0, 1 - math.floor(math.log10(abs(half))))


def estimate(est: Estimate, scale: float = 1.0) -> str:
    """"0.954 ± 0.012": the mean rounded where its 95% half-width (two figures) ends."""
    if est.n == 0 or not math.isfinite(est.mean):
        return DASH
    mean = est.mean * scale
    half = est.half_width * scale
    if not math.isfinite(half):  # one seed: no interval
        return sig(mean)
    if half == 0:  # the same value in every seed
        return f"{mean:.0f} ± 0" if mean == round(mean) and abs(mean) >= 1 else f"{sig(mean, 4)} ± 0"
    d = _decimals_for(half)
    if d == 0 and abs(half) >= 100:  # round where the half-width's second figure is
        step = 10 ** (math.floor(math.log10(abs(half))) - 1)
        mean, half = round(mean / step) * step, round(half / step) * step
        if max(abs(mean), half) >= 1e7:
            return f"{sig(mean, 2)} ± {sig(half, 2)}"
    return f"{mean:.{d}f} ± {half:.{d}f}"


def signed(x: float, digits: int = 2) -> str:
    text = sig(x, digits)
    return text if text.startswith(("-", DASH)) or x == 0 else "+" + text


def interval(low: float, high: float, scale: float = 1.0, digits: int = 2) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return DASH
    return f"[{sig(low * scale, digits)}, {sig(high * scale, digits)}]"


def p_value(p: float) -> str:
    if p is None or not math.isfinite(p):
        return DASH
    if p < 1e-4:
        return "<0.0001"
    if p < 0.01:
        return f"{p:.2g}"
    return f"{p:.3g}" if p < 0.1 else f"{p:.2f}"  # 0.0499 must not print as 0.05


_MEMORY_UNITS = (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0))
_TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6))


def unit_for(kind: str, values) -> tuple[str, float]:
    """One unit for a whole column, chosen by its median: ("MB", 1e-6) multiplies bytes to MB."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    typical = float(np.median(np.abs(a))) if len(a) else 0.0
    units = {"bytes": _MEMORY_UNITS, "seconds": _TIME_UNITS}[kind]
    for name, size in units:
        if typical >= size:
            return name, 1.0 / size
    name, size = units[-1]
    return name, 1.0 / size
