"""Names read from a run folder that become parts of a path: checked before any path is built.

A suite's name is checked when the suite loads (``bench.suite``: a folder name, letters, digits,
``_``, ``.``, ``-``, starting with a letter or digit), but a run folder is only data: its
manifest.json can be edited, copied from elsewhere, or written by a bug. ``bench report`` and
``bench compare`` build ``reports/<suite>/<run-id>/...`` from it, so a suite name or run id of
``../../X`` would write outside ``reports/``. :func:`check_run_names` applies the suite rule to
every name of a run that a path is built from; a name that breaks it is a UserError naming the
file, the key, the value and the rule.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bench.errors import UserError

if TYPE_CHECKING:
    from bench.results.reader import RunData

# The rule of ``bench.suite._RawSuite.name`` (a pydantic validator there, not importable as a
# function): keep the two the same.
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RULE = ("a folder name: letters, digits, '_', '.', '-', starting with a letter or digit "
        "(so no '/', no spaces, not '..')")


def is_folder_name(value: object) -> bool:
    """Whether ``value`` may be one path component that stays where it is put."""
    return isinstance(value, str) and FOLDER_NAME.fullmatch(value) is not None


def check_folder_name(value: object, *, source: str, key: str, file: str = "manifest.json") -> str:
    """``value`` itself when it is a folder name, else a UserError naming ``file``, ``key``,
    ``value`` and the rule."""
    if is_folder_name(value):
        return value
    raise UserError(f"{file}: {key} is {value!r}, which is not {RULE}; a report path is built "
                    "from it, so the run folder is refused rather than written outside reports/",
                    source=source, key=key, value=value)


def check_run_names(run: RunData) -> None:
    """Every name of ``run`` that a report or comparison path is built from (its suite name
    and run id, as ``RunData.suite_name`` and ``RunData.run_id`` read them), checked where it
    comes from: the manifest, else the trials table or the folder's own name (an old run)."""
    source = str(run.dir)
    suite = run.manifest.get("suite")
    if isinstance(suite, dict) and suite.get("name"):
        where = ("manifest.json", "suite.name")
    elif len(run.trials) and "suite" in run.trials:
        where = ("trials.parquet", "suite")
    else:
        where = ("the run folder's path", "the name of the folder above the run folder")
    check_folder_name(run.suite_name, source=source, key=where[1], file=where[0])
    where = (("manifest.json", "run_id") if run.manifest.get("run_id")
             else ("the run folder's path", "the run folder's name"))
    check_folder_name(run.run_id, source=source, key=where[1], file=where[0])
