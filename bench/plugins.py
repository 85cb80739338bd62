"""User code a suite names: by import path (``"package.module:name"``) or by a name that an
installed package registers under an entry-point group (``actbench.activations``,
``actbench.inits``, ``actbench.tasks``).

Every failure is a ValueError that names the path and says what went wrong; the suite's
validation turns it into a UserError that also names the key.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable

GROUPS = {"activation": "actbench.activations", "init": "actbench.inits", "task": "actbench.tasks"}


def registered(group: str) -> dict[str, tuple[str, str]]:
    """Names that installed packages register under an entry-point ``group``:
    name -> (import path, source package)."""
    from importlib.metadata import entry_points

    out = {}
    for ep in entry_points(group=group):
        out[ep.name] = (ep.value, ep.dist.name if ep.dist is not None else "?")
    return out


def import_object(path: str) -> object:
    """``"package.module:attr"`` -> the object; ValueError says what went wrong."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not an import path of the form 'package.module:name'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own error while importing
        raise ValueError(f"cannot import {module_name!r} for {path!r}: "
                         f"{type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{path!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def user_path(what: str, name: str, builtins: Iterable[str]) -> str:
    """The import path of a user-defined ``what`` (activation, init, task) that is not a
    built-in: a registered name's path, or ``name`` itself when it is an import path.
    Otherwise a ValueError listing every valid name."""
    plugins = registered(GROUPS[what])
    if name in plugins:
        return plugins[name][0]
    if ":" in name:
        return name
    from .errors import did_you_mean

    choices = sorted({*builtins, *plugins})
    raise ValueError(f"{name!r} is not a known {what}{did_you_mean(name, choices)}; "
                     f"valid choices: {', '.join(choices)}; or an import path "
                     "'package.module:name'")


def split_table(value: object, what: str) -> tuple[object, str | None]:
    """``{ fn = "pkg.mod:f", k = v }`` -> ("pkg.mod:f", canonical JSON of the rest); any other
    value -> (value, None). Keeps a config flat and hashable."""
    if not isinstance(value, dict):
        return value, None
    table = dict(value)
    fn = table.pop("fn", None)
    if not isinstance(fn, str):
        raise ValueError(f"{what} = {{ fn = \"package.module:name\", ... }} needs fn, "
                         "the import path")
    return fn, json.dumps(table, sort_keys=True)
