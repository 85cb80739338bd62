"""Names for what the command line takes: a shipped suite by its name, a run folder by its suite.

``bench run activations`` runs the shipped ``activations`` suite from any folder, and
``bench check regression`` (or ``regression/latest``) checks the newest run of ``regression``
under ``results/``. A path that exists always wins over a name.

Where the shipped suites are. They have one copy, ``suites/*.toml`` at the repository root:
the README's commands (``python -m bench run suites/activations.toml``), the tests, CI's
scripts and the committed reports all name them there, so they are not moved. The build
(``pyproject.toml``: ``[tool.setuptools.package-dir]`` maps the package ``bench.suites`` to the
folder ``suites``, and its package data is ``*.toml``) installs that same folder inside the
package, as ``bench/suites/*.toml``, in every wheel and in the sdist. So:

* installed (``pip install .``, not editable): the suites are ``bench/suites/`` beside this
  module;
* a checkout (``python -m bench`` from the repository root, ``PYTHONPATH``, or an editable
  install): there is no ``bench/suites/`` folder, and the suites are ``suites/`` beside the
  package, in the folder that holds ``pyproject.toml``.

A symlink ``suites -> bench/suites`` was not chosen (Windows checkouts and some archivers break
it), nor two copies (they drift). Listing and looking up the suites reads file names and,
for ``bench list suites``, each file's ``name`` and ``description`` with ``tomllib``: no suite
is validated and no user code is imported until one is run.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError, did_you_mean

PACKAGE = Path(__file__).resolve().parent.parent  # bench/
LATEST = "latest"


def shipped_dir() -> Path:
    """The folder of the shipped suites: the package's own (an install), else the checkout's
    ``suites/`` beside the package. A folder that does not exist when neither is there."""
    installed = PACKAGE / "suites"
    if installed.is_dir():
        return installed
    checkout = PACKAGE.parent
    if (checkout / "suites").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "suites"
    return installed


@dataclass(frozen=True)
class ShippedSuite:
    """One shipped suite: the name ``bench run NAME`` takes (the file's stem), its file, and
    the ``name`` and ``description`` its TOML gives ("" where the file does not parse)."""

    key: str
    path: Path
    name: str
    description: str


def shipped_paths() -> dict[str, Path]:
    """Each shipped suite's file by the name ``bench run`` takes, sorted by name."""
    folder = shipped_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml")) if p.is_file()}


def shipped_suites() -> list[ShippedSuite]:
    """The shipped suites with their TOML ``name`` and ``description`` (read, never run)."""
    out = []
    for key, path in shipped_paths().items():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            data = {"description": f"(cannot be read: {type(exc).__name__})"}
        name = data.get("name")
        description = data.get("description")
        out.append(ShippedSuite(key, path, name if isinstance(name, str) else key,
                                description if isinstance(description, str) else ""))
    return out


def _looks_like_a_path(text: str) -> bool:
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return text.endswith(".toml") or any(sep in text for sep in seps) or text in {".", ".."}


def resolve_suite(arg: str | os.PathLike) -> Path:
    """The suite file ``arg`` names: a file that exists (a path always wins); else, for a bare
    name (no ``.toml``, no path separator), the shipped suite of that name. An unknown name is a
    UserError listing the shipped names; anything else is returned as given, for
    ``load_suite`` to say what is wrong with it."""
    text = os.fspath(arg)
    path = Path(text)
    if path.is_file():
        return path
    shipped = shipped_paths()
    if _looks_like_a_path(text):
        stem = path.stem if path.suffix == ".toml" else ""
        if stem in shipped and not path.exists():  # `bench run suites/x.toml` elsewhere
            raise UserError(f"cannot read the suite: No such file or directory; the shipped suite "
                            f"{stem!r} runs from any folder as `python -m bench run {stem}`",
                            source=text, key="SUITE", value=text, choices=tuple(shipped))
        return path
    if text in shipped:
        return shipped[text]
    names = ", ".join(shipped) or f"none found (looked in {shipped_dir()})"
    raise UserError(f"no such file here, and {text!r} is not a shipped suite"
                    f"{did_you_mean(text, shipped)}; shipped suites (`python -m bench list suites`): "
                    f"{names}", source=text, key="SUITE", value=text, choices=tuple(shipped))


_NUMBERED = re.compile(r"(?P<stamp>.+)-(?P<n>\d+)")


def _run_order(name: str) -> tuple[str, int]:
    """Run ids sort by their timestamp, then by the ``-N`` a second run of the same second
    gets (``...Z-10`` after ``...Z-9``, which plain string order gets wrong)."""
    match = _NUMBERED.fullmatch(name)
    return (match["stamp"], int(match["n"])) if match else (name, 0)


def runs_in(folder: Path) -> list[Path]:
    """The run folders of one suite's folder (each has a manifest.json), oldest first;
    temporary folders (their names start with '.') are left out."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    runs = [p for p in entries if not p.name.startswith(".") and (p / "manifest.json").is_file()]
    return sorted(runs, key=lambda p: _run_order(p.name))


def latest_run(folder: Path, *, arg: str | None = None) -> Path:
    """The newest run folder in ``folder`` (a suite's folder, e.g. ``results/regression``)."""
    runs = runs_in(folder)
    if not runs:
        raise UserError(f"no run folder: {folder} has no run in it (a folder with a "
                        "manifest.json)", source=arg or str(folder))
    return runs[-1]


def _suites_with_runs(root: Path) -> list[str]:
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and runs_in(p))
    except OSError:
        return []


def resolve_run(arg: str | os.PathLike, root: Path = Path("results")) -> Path:
    """The run folder ``arg`` names: a folder that exists (a path always wins); else
    ``SUITE`` or ``SUITE/latest`` (the newest run of SUITE under ``root``, by run id, that has a
    manifest.json), ``SUITE/RUN_ID`` (that run under ``root``) or ``FOLDER/latest`` (the newest
    run in an existing FOLDER). A name that matches nothing is a UserError saying where it
    looked; any other path is returned as given, for the command to say what is wrong."""
    text = os.fspath(arg)
    path = Path(text)
    root = Path(root)
    if path.exists():
        return path
    if path.name == LATEST:
        base = path.parent
        if str(base) in {"", "."}:
            raise UserError(f"{LATEST!r} needs a suite: SUITE/{LATEST}, e.g. "
                            f"regression/{LATEST}", source=text)
        if base.is_dir():
            return latest_run(base, arg=text)
        if not base.is_absolute() and len(base.parts) == 1:
            return latest_run(_suite_folder(root, base.name, text), arg=text)
        return path
    if path.is_absolute() or len(path.parts) > 2:
        return path
    folder = _suite_folder(root, path.parts[0], text)
    if len(path.parts) == 1:
        if (folder / "manifest.json").is_file():  # a run folder right under root
            return folder
        return latest_run(folder, arg=text)
    run = folder / path.parts[1]
    if not run.is_dir():
        ids = [p.name for p in runs_in(folder)]
        raise UserError(f"no such run folder: not a folder here, and {run} does not exist"
                        f"{did_you_mean(path.parts[1], ids)}; runs of {path.parts[0]!r} "
                        f"there: {', '.join(ids) or 'none'} (or {path.parts[0]}/{LATEST})",
                        source=text)
    return run


def _suite_folder(root: Path, suite: str, arg: str) -> Path:
    folder = root / suite
    if folder.is_dir():
        return folder
    have = _suites_with_runs(root)
    where = (f"suites with runs there: {', '.join(have)}" if have else
             f"{root} has no runs" if root.is_dir() else f"{root} does not exist")
    raise UserError(f"no such run folder: not a folder here, and no runs of {suite!r} under "
                    f"{root} ({folder} does not exist){did_you_mean(suite, have)}; {where}",
                    source=arg)
