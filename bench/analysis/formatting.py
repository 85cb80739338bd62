"""Numbers for people: significant figures, one unit per column, mean ± half-width; and text
from a run made safe for Markdown (:func:`md_escape`)."""

from __future__ import annotations

import math
import re

import numpy as np

from bench.analysis.statistics import Estimate
from bench.results.reader import show

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


# -- Markdown --------------------------------------------------------------------------------------

# Characters that start inline Markdown anywhere in a line: emphasis, code, links and images,
# table cells, strikethrough, math ("$", on GitHub), and the backslash that escapes them. An "_"
# between two letters or digits (``xavier_uniform``) can neither open nor close emphasis in
# CommonMark, so it stays as it is, readable.
_MD_INLINE = re.compile(r"([\\`*\[\]|~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# What makes a line a block of its own when it starts it: a heading, a setext underline, a list
# item ("-", "+", "1." or "1)" before a space or the end), a thematic break ("- - -", "+++").
_MD_LINE_START = re.compile(r"^(?:([#=])|([-+])(?=\s|$|[-+])|(\d{1,9})([.)])(?=\s|$))")
# Everything the CommonMark spec (and browsers) take for a line break, and other controls.
_MD_BREAKS = re.compile(r"[\r\n\v\f\x00-\x08\x0e-\x1f\x7f\x85\u2028\u2029]+")
# A numeric interval such as "[0.012, 0.031]" or "[–, 1.2e-05]", not followed by what would make
# it a link ("(", "[", ":"): shown as it is, so the tables' numbers stay readable.
_NUMBER = r"[-+−]?(?:\d[\d.,]*(?:e[-+]?\d+)?%?|∞|–)"
_MD_INTERVAL = re.compile(rf"\[{_NUMBER}, {_NUMBER}\](?![(\[:])")


def _md_inline(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_INLINE.sub(r"\\\1", text)


def md_escape(text: object) -> str:
    r"""``text`` (anything a user or a run folder supplied) as one line of literal Markdown text.

    What it is escaped against, wherever a template puts it (a paragraph, a list item, a table
    cell, emphasis): raw HTML (``<``, ``>``, ``&`` become entities, as the HTML report's
    autoescape does), line breaks (turned into spaces, so no new heading, list or table row can
    start), the inline specials (a backslash, `` ` ``, ``* [ ] | ~ $``, and ``_`` outside a
    word: no link, image, code span, emphasis, math or extra table cell), and at its start the
    markers of a block: ``#``, ``=``, ``-``/``+`` before a space, ``1.``/``1)`` before a space,
    leading spaces (an indented code block).
    Numbers are left as they are (``-0.021``, ``0.95 ± 0.01``, ``[0.01, 0.02]``).
    """
    text = _MD_BREAKS.sub(" ", str(text)).strip()
    out, end = [], 0
    for match in _MD_INTERVAL.finditer(text):
        out.append(_md_inline(text[end:match.start()]))
        out.append(match.group(0))
        end = match.end()
    out.append(_md_inline(text[end:]))
    text = "".join(out)
    if text.startswith("["):  # an interval at the start: a link reference definition needs ":"
        return text           # after "]", which the interval's look-ahead refused
    return _MD_LINE_START.sub(
        lambda m: "\\" + (m.group(1) or m.group(2)) if m.group(3) is None
        else m.group(3) + "\\" + m.group(4), text, count=1)


def md_code(text: object) -> str:
    """``text`` as a Markdown code span: literal, whatever backticks or HTML it holds."""
    text = _MD_BREAKS.sub(" ", str(text))
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# -- settings: a grid point's keys and values, as every table, figure and sentence names them --

SHORT_NAMES = {"train.accumulation_steps": "k", "model.activation": "activation"}


def short(key: str) -> str:
    """``train.lr`` -> ``lr``: the name a column header uses."""
    return SHORT_NAMES.get(key, key.split(".", 1)[-1])


def setting(key: str, value) -> str:
    """One key of a setting: ``lr = 0.01``."""
    return f"{short(key)} = {show(value)}"


def setting_text(keys, values) -> str:
    """A setting: ``activation = relu, lr = 0.01`` ("all trials" for none)."""
    return ", ".join(setting(k, v) for k, v in zip(keys, values)) or "all trials"
