"""Reporting: a stored run drawn and written as one HTML file and a Markdown file with PNGs.

``render`` (``report``) builds the report's content once (title and answer first, then each
section's tables, figures and checks, provenance last) and writes both formats from the
jinja2 ``templates``. ``figures`` draws the seaborn figures, one module per family.

The top of the pipeline below the API: it reads results and analysis, and never trains. The
names load on first use (matplotlib is imported only when a report is drawn).
"""

import importlib

_EXPORTS = {"render": "report", "build": "report", "title": "report", "figures": "figures"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"bench.reporting.{_EXPORTS[name]}")
        return module if name == _EXPORTS[name] else getattr(module, name)
    raise AttributeError(f"module 'bench.reporting' has no attribute {name!r}")
