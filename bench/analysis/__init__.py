"""Analysis: what a stored run says, in numbers with their uncertainty.

``statistics``: means with t-intervals over seeds, Welch's test, Holm's correction.
``sections``: a run's sections (the settings compared), each with the per-point estimates and
matched comparisons of ``summary`` and the plain sentences of ``findings``. ``ranking``: a
tuned run's ranking at each setting's pick; ``tuning``: the picks themselves. ``check``
evaluates a suite's claims against a run (``bench check``), ``compare`` two runs (``bench
compare``). ``formatting`` writes numbers for people, ``tables`` draws a table as Markdown, in
the terminal or in HTML.

Reads runs (results) and suites; never trains and never writes a run folder.
"""

from bench.analysis.check import check
from bench.analysis.compare import Threshold, compare
from bench.analysis.ranking import rankings
from bench.analysis.sections import sections
from bench.analysis.statistics import Difference, Estimate, holm, mean_ci, welch
from bench.analysis.summary import METRICS, Metric, Section
from bench.analysis.tuning import Pick, pick

__all__ = ["METRICS", "Difference", "Estimate", "Metric", "Pick", "Section", "Threshold", "check",
           "compare", "holm", "mean_ci", "pick", "rankings", "sections", "welch"]
