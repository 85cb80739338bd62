"""Suites: a TOML file (or a ``make_suite`` dict) checked at the boundary and expanded into trials.

``load_suite`` / ``parse_suite`` (``parse``) read and validate a suite (its format:
``format``): every key, its type and its choices, the ``[[expect]]`` claims against the grid
(``claims``) and the preflight's bounds (``preflight``: non-finite numbers, memory estimates,
the work a run will do). A ``Suite`` is its grid of ``GridPoint``s (``grid``); ``expand`` turns
it into ``TrialSpec``s, and ``stages`` plans the two stages of a ``[tune]`` suite. ``locate``
finds shipped suites and run folders by name.

Above training and results; below analysis, execution and reporting.
"""

from bench.suite.claims import RESULT_METRICS
from bench.suite.format import Expect, Tune
from bench.suite.grid import GridPoint, Suite, expand
from bench.suite.locate import resolve_run, resolve_suite, shipped_suites
from bench.suite.parse import load_suite, parse_claims, parse_suite
from bench.suite.stages import first_stage, planned_total, second_stage, settings, tuning_specs

__all__ = ["RESULT_METRICS", "Expect", "GridPoint", "Suite", "Tune", "expand", "first_stage",
           "load_suite", "parse_claims", "parse_suite", "planned_total", "resolve_run",
           "resolve_suite", "second_stage", "settings", "shipped_suites", "tuning_specs"]
