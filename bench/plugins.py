"""User code a suite names: by import path (``"package.module:name"``) or by a name that an
installed package registers under an entry-point group (``actbench.activations``,
``actbench.inits``, ``actbench.tasks``).

Every failure is a ValueError that names the path and says what went wrong; the suite's
validation turns it into a UserError that also names the key.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, wraps
from typing import TypeVar

T = TypeVar("T")

GROUPS = {"activation": "actbench.activations", "init": "actbench.inits", "task": "actbench.tasks"}


def registered(group: str) -> dict[str, tuple[str, str]]:
    """Names that installed packages register under an entry-point ``group``:
    name -> (import path, source package)."""
    from importlib.metadata import entry_points

    out = {}
    for ep in entry_points(group=group):
        out[ep.name] = (ep.value, ep.dist.name if ep.dist is not None else "?")
    return out


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def split_path(path: str) -> tuple[str, str]:
    """``"package.module:attr"`` -> ("package.module", "attr"), checked by its spelling alone:
    nothing is imported. ValueError when it is not an import path."""
    module_name, _, attr = path.partition(":")
    if not _DOTTED.fullmatch(module_name) or not _DOTTED.fullmatch(attr):
        raise ValueError(f"{path!r} is not an import path of the form 'package.module:name'")
    return module_name, attr


def import_object(path: str) -> object:
    """``"package.module:attr"`` -> the object; ValueError says what went wrong."""
    module_name, attr = split_path(path)
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
    from bench.errors import unknown_name

    raise ValueError(unknown_name(what, name, {*builtins, *plugins})
                     + "; or an import path 'package.module:name'")


def check_user_path(what: str, name: str, builtins: Iterable[str]) -> str:
    """What ``user_path`` checks, and the spelling of the import path, without importing or
    calling anything: the check of a suite that is only read (``--dry-run``). Returns the
    import path; ValueError as ``user_path`` and ``split_path`` raise it."""
    path = user_path(what, name, builtins)
    split_path(path)
    return path


@dataclass(frozen=True)
class UserCode:
    """One piece of user code a suite names: the import path, the keys that name it
    (``model.activation``), and for a name an installed package registers, that name and the
    package."""

    path: str
    keys: tuple[str, ...]
    name: str = ""      # the registered name, "" for an import path written in the suite
    package: str = ""   # the distribution that registers ``name``

    def describe(self) -> str:
        keys = ", ".join(self.keys)
        if self.name:
            return f"{self.name} = {self.path} ({keys}; registered by package {self.package})"
        return f"{self.path} ({keys})"


def user_code(named: Iterable[tuple[str, str, str]]) -> list[UserCode]:
    """The user code behind ``(what, key, name)`` triples (what: activation, init or task; the
    caller leaves built-ins out), in first-seen order, each path once with every key that
    names it. Reads entry-point metadata; imports nothing."""
    plugins = {what: registered(group) for what, group in GROUPS.items()}
    found: dict[tuple[str, str, str], list[str]] = {}
    for what, key, name in named:
        if name in plugins[what]:
            path, package = plugins[what][name]
            entry = (path, name, package)
        elif ":" in name:
            entry = (name, "", "")
        else:
            continue  # not user code (a suite that loaded names none such)
        keys = found.setdefault(entry, [])
        if key not in keys:
            keys.append(key)
    return [UserCode(path, tuple(keys), name, package)
            for (path, name, package), keys in found.items()]


def arguments(args: str) -> dict:
    """The keyword arguments stored as JSON (``model.activation_args``), checked to be a table."""
    kwargs = json.loads(args) if args else {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"arguments {args!r} are not a table of keyword arguments")
    return kwargs


def canonical(args: str) -> str:
    """Stored arguments in one spelling ("" for none), so equal arguments give equal ids."""
    kwargs = arguments(args)
    return json.dumps(kwargs, sort_keys=True) if kwargs else ""


_SCALARS = (str, int, float, bool)


def kind_of(value: object) -> str | None:
    """What a column holds, as a Parquet column sees it: None for no value (an empty list goes
    with any list)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        inner = {kind_of(v) for v in value} - {None}
        return f"a list of {inner.pop().removeprefix('a ')}s" if len(inner) == 1 else (
            None if not inner else "a mixed list")
    return "a string" if isinstance(value, str) else type(value).__name__


def plain_value_problem(value: object) -> str | None:
    """Why ``value`` cannot be a user function's argument (a column of the trials table and
    JSON): None when it is a string, number, boolean, or a list of one of those."""
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return None if kind_of(value) != "a mixed list" else "a list mixes kinds of values"
    return "arguments are strings, numbers, booleans or lists of one of them"


@contextmanager
def python_and_numpy_seeded(seed: int | None):
    """Python's and numpy's global RNGs seeded with ``seed`` inside, and restored after (no-op
    for None): user code that draws from them is reproducible and leaves no trace."""
    import random

    import numpy as np

    if seed is None:
        yield
        return
    states = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])


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
    for key, value in table.items():
        problem = plain_value_problem(value)
        if problem:
            raise ValueError(f"{what} argument {key} = {value!r}: {problem}")
    return fn, json.dumps(table, sort_keys=True) if table else ""  # {fn = ...} alone: no args


MAIN = "__main__:"


def in_main(path: str) -> bool:
    """A function defined in a notebook or a script's top level: importable only in the process
    that defined it, where it may also be redefined between runs."""
    return path.startswith(MAIN)


def resolver(fn: Callable[[str, str], T]) -> Callable[[str, str], T]:
    """Cache ``fn(name, args)``, a resolver of what a suite names. For a function in
    ``__main__`` the cache is also keyed on the object: a notebook cell run again defines a new
    one, which the next run must use. ``cache_clear`` empties it."""
    @cache
    def cached(name: str, args: str, _identity: int) -> T:
        return fn(name, args)

    @wraps(fn)
    def resolve(name: str, args: str = "") -> T:
        identity = 0
        if in_main(name):
            import sys

            identity = id(getattr(sys.modules.get("__main__"), name[len(MAIN):], None))
        return cached(name, args, identity)

    resolve.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return resolve


def reference(obj: object) -> str:
    """The import path that names ``obj``, a function or class given directly (the Python API):
    ``module:qualname``, checked to lead back to ``obj``."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    name = getattr(obj, "__name__", type(obj).__name__)
    if not module or not qualname or "<" in qualname:
        raise ValueError(f"{name!r} has no import path (a lambda or a function defined inside "
                         "another): define it with def at the top level of a module or notebook")
    path = f"{module}:{qualname}"
    try:
        found = import_object(path)
    except ValueError:
        found = None
    if found is not obj:
        raise ValueError(f"{path!r} does not lead back to {name!r}: define it at the top level "
                         "of a module or notebook, under its own name")
    return path
