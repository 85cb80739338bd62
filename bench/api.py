"""The Python API, for notebooks and scripts: the same suites, runs and numbers as the CLI.

    import bench
    suite = bench.load_suite("suites/activations.toml")     # a path, or TOML text
    run = bench.run(suite, workers=2, out="results")        # -> Run
    run.trials, run.curves, run.layers                      # pandas DataFrames
    run.check()                                             # the claims, with their verdicts
    run.report(format="md")                                 # report files, as `bench report`
    bench.open_run("results/activations/<run-id>").compare(run)

Mistakes raise ``bench.UserError`` (the CLI prints the same message and exits 2).
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import UserError
from bench.suite import Suite, expand, parse_suite
from bench.suite import load_suite as _load_suite_file


def load_suite(source: str | Path) -> Suite:
    """A suite from a ``.toml`` path or from TOML text, validated as ``bench run`` validates
    it. A string ending in ``.toml`` or naming a file is a path; else one with a newline or
    an ``=`` is text."""
    if isinstance(source, Path):
        return _load_suite_file(source)
    if not isinstance(source, str):
        raise UserError(f"load_suite takes a path or TOML text, not {type(source).__name__}")
    one_line = "\n" not in source
    if one_line and (source.endswith(".toml") or _is_file(source) or "=" not in source):
        return _load_suite_file(source)
    return parse_suite(source, source="<text>")


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # too long for a file name: not a path
        return False


def make_suite(name: str, *, task: dict, model: dict, train: dict, seeds: list[int] | None = None,
               sweep: dict | None = None, variants: list[dict] | None = None,
               expect: list[dict] | None = None, description: str = "") -> Suite:
    """A suite built in Python: the same tables as a TOML file, the same validation and the
    same errors. It is stored as TOML text, so a run made from it can be checked and resumed."""
    import tomli_w

    data: dict[str, Any] = {"name": name, "description": description}
    if seeds is not None:
        data["seeds"] = list(seeds)
    data.update(task=task, model=model, train=train)
    for key in ("task", "model", "train"):
        data[key] = _named(data[key], f"[{key}]")
    if sweep:
        data["sweep"] = _named(sweep, "[sweep]")
    if variants:
        data["variant"] = _named(variants, "[[variant]]")
    if expect:
        data["expect"] = _named(expect, "[[expect]]")
    try:
        text = tomli_w.dumps(data)
    except TypeError as exc:  # a value TOML cannot hold (None, an object)
        raise UserError(f"cannot be written as a suite: {exc}", source="<python>") from None
    return parse_suite(text, source="<python>")


def _named(value: Any, where: str) -> Any:
    """``value`` with every function or class in it replaced by its import path, so that a
    function written in a notebook cell can stand wherever a suite takes one (an activation,
    an init, a task kind, the fn of an inline table, a sweep's values)."""
    from bench.plugins import reference

    if isinstance(value, dict):
        return {k: _named(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_named(v, where) for v in value]
    if callable(value):
        try:
            return reference(value)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}", source="<python>") from None
    return value


@dataclass
class Run:
    """A stored run: its folder and its three tables (read when first used). Reading it
    imports no code the folder names unless ``trust_code`` (``bench.open_run(dir,
    trust_code=True)``); a run ``bench.run`` returns trusts the code of the suite it ran."""

    dir: Path
    trust_code: bool = False
    _trusted: frozenset[str] = field(default=frozenset(), repr=False)  # bench.run's own suite's

    @property
    def _trust(self) -> bool | frozenset[str]:
        return True if self.trust_code else self._trusted

    @cached_property
    def _data(self):
        from bench.results.reader import RunData

        return RunData.open(self.dir, trust_code=self._trust)

    @property
    def trials(self) -> pd.DataFrame:
        return self._data.trials

    @property
    def curves(self) -> pd.DataFrame:
        return self._data.curves

    @property
    def layers(self) -> pd.DataFrame:
        return self._data.layers

    @property
    def manifest(self) -> dict:
        return self._data.manifest

    @property
    def suite_name(self) -> str:
        return self._data.suite_name

    def check(self) -> Claims:
        """The claims of the suite stored with the run, each with its verdict."""
        from bench.analysis.check import check

        return Claims(check(self._data))

    def report(self, format: str | tuple[str, ...] = ("html", "md"),  # noqa: A002
               out: str | Path | None = None) -> list[Path]:
        """Write the report as ``bench report`` does (with this run's ``trust_code``);
        returns the files written."""
        from bench.reporting.report import parse_formats, render

        formats = format if isinstance(format, str) else ",".join(format)
        return render(self.dir, Path(out) if out is not None else None, parse_formats(formats),
                      trust_code=self._trust)

    def compare(self, other: Run | str | Path, fail_on: tuple[str, ...] = ()):
        """Changes from this run (A) to ``other`` (B), as ``bench compare A B``."""
        from bench.analysis.compare import Threshold, compare

        other = other if isinstance(other, Run) else open_run(other)
        return compare(self._data, other._data, [Threshold.parse(t) for t in fail_on])

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"


class Claims(list):
    """``Run.check()``'s result: one ClaimResult per claim; ``passed`` when at least one was
    checked and none failed (``bench check`` exits 1 where a claim failed or every claim was
    not checked; a suite with no claims it exits 0, saying so, and ``passed`` is False)."""

    @property
    def passed(self) -> bool:
        """False when a claim failed, and when nothing was checked: every claim "not checked"
        (its trials did not run, e.g. CUDA points without a GPU), or no claims at all."""
        checked = [r for r in self if r.verdict != "not checked"]
        return bool(checked) and all(r.verdict == "pass" for r in checked)

    def to_frame(self) -> pd.DataFrame:
        from bench.analysis.check import describe_point

        return pd.DataFrame([{"claim": r.text(), "metric": r.claim.metric,
                              "value": describe_point(r), "bound": r.bound(),
                              "verdict": r.verdict} for r in self])

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)


def open_run(run_dir: str | Path, *, trust_code: bool = False) -> Run:
    """A run folder written by ``bench run`` (or ``bench.run``). Reading it imports no code
    it names: with ``trust_code=True`` the figures that rebuild models or data with a user
    activation, init or task (named in the folder) import and run it, as ``--trust-code``."""
    run = Run(Path(run_dir), trust_code=bool(trust_code))
    run._data  # noqa: B018  (fail now, with the CLI's message, if it is not a run folder)
    return run


def run(suite: Suite | str | Path, *, workers: int = 0, threads: int = 1,
        out: str | Path = "results", resume: str | Path | None = None, extend: bool = False,
        pack: bool | None = None, scheduler: str | None = None, cluster: str | None = None,
        quick: bool = False) -> Run:
    """Run a suite (a Suite, a path or TOML text) as ``bench run`` does, and return the Run.
    ``workers = 0`` is one process per CPU core. ``quick`` runs only the points the claims
    look at. ``resume`` continues a run folder of the same suite text; ``extend`` (with it)
    lets a changed suite go on that only adds grid points. Progress shows as a bar that
    renders in a notebook or a terminal."""
    from bench.analysis.check import claimed_points
    from bench.execution.run import Interrupted, RunOptions, run_suite

    _refuse_in_a_worker_importing_main()  # first: before the suite's code is imported again
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if quick:
        suite = claimed_points(suite)
        if not expand(suite):
            raise UserError("quick: the suite's claims look at no grid point")
    options = RunOptions(out=Path(out), workers=workers, threads=threads,
                         resume=Path(resume) if resume is not None else None, extend=extend,
                         pack={None: "auto", True: "on", False: "off"}[pack],
                         scheduler=scheduler, cluster=cluster)
    script = _unguarded_script_call()
    if script is not None and _starts_workers(suite, options):
        raise UserError(f"bench.run is called at the top level of the script {script}, not "
                        f"under `{_GUARD}`. The run's worker processes start by importing that "
                        "script, so each would run it again (a run folder each, and trials "
                        f"failing with 'the worker process died'). {_FIX}")
    try:
        store = run_suite(suite, options)
    except Interrupted as stop:  # Ctrl-C / the notebook's stop button: the run is kept
        raise KeyboardInterrupt(f"interrupted: every finished trial is stored in "
                                f"{stop.run_dir}; continue with bench.run(..., resume="
                                f"{str(stop.run_dir)!r})") from None
    # The code this process imported to run the suite is the caller's own: trusted (only it).
    return Run(store.dir, _trusted=frozenset(u.name or u.path for u in suite.imports))


# -- scripts: the spawned workers import the main script ------------------------------------------

_GUARD = 'if __name__ == "__main__":'
_FIX = (f"Put the call, and the code that uses its result, under `{_GUARD}` (see "
        "https://docs.python.org/3/library/multiprocessing.html#the-spawn-and-forkserver-start-methods).")


def _refuse_in_a_worker_importing_main() -> None:
    """A spawned worker process starts by running the main script again (as ``__mp_main__``):
    a ``bench.run`` at its top level would start a run of its own in every worker. The one
    clear error, raised there; the parent sees the worker die (``_unguarded_script_call``
    keeps it from starting one at all where the script can be read)."""
    import multiprocessing

    # What multiprocessing's own check (spawn._check_not_importing_main) reads: true only while
    # a spawned or forkserver process bootstraps, which is when it imports the main script
    # (parent_process() is still None then). A worker that calls bench.run from a function it
    # was given (a pool of the user's own) is not refused.
    if not getattr(multiprocessing.current_process(), "_inheriting", False):
        return
    main = sys.modules.get("__mp_main__") or sys.modules.get("__main__")
    where = getattr(main, "__file__", None) or "your script"
    raise UserError(f"bench.run was called while a worker process imported {where} (worker "
                    "processes start by importing the main script, so its top level runs again "
                    f"in each). {_FIX}")


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"``, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))


def _unguarded_script_call() -> str | None:
    """The main script's path when this call comes from its top level (directly, or through
    functions it calls) outside an ``if __name__ == "__main__":`` block, and spawned processes
    would import that script again; else None (a notebook, ``python -c``, ``python -m
    package``, a guarded call, or a script whose source cannot be read)."""
    main = sys.modules.get("__main__")
    if main is None:
        return None
    # What multiprocessing.spawn tells a worker to import (get_preparation_data, without its
    # side effect of fixing the start method) and which of those it skips (prepare).
    by_name = getattr(getattr(main, "__spec__", None), "name", None)
    if by_name is not None:
        if by_name == "__main__" or by_name.endswith(".__main__"):  # `python -m package`
            return None
    else:
        by_path = getattr(main, "__file__", None)
        if by_path is None or os.path.splitext(os.path.basename(by_path))[0] == "ipython":
            return None  # a notebook, `python -c`, stdin: nothing to import again
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>"
                                     and frame.f_globals is vars(main)):
        frame = frame.f_back
    if frame is None:  # not called while the main script's top level runs
        return None
    filename, line = frame.f_code.co_filename, frame.f_lineno
    try:
        tree = ast.parse(Path(filename).read_text(), filename)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and _is_main_guard(node.test) and node.body
                and node.body[0].lineno <= line <= (node.body[-1].end_lineno or line)):
            return None
    return filename


def _starts_workers(suite: Suite, options) -> bool:
    """Whether the run may start processes that import the main script: local workers, a
    worker for user code, or a Dask LocalCluster (a remote scheduler's workers do not)."""
    from bench.execution.local import _isolated
    from bench.plugins import in_main

    if options.cluster is not None:
        return True
    if options.scheduler is not None:
        return False
    specs = expand(suite)
    in_main_fns = any(in_main(name) for s in specs
                      for name in (s.model.activation, s.model.init, s.task.kind))
    return ((options.resolved_workers() > 1 and not in_main_fns)
            or any(_isolated([s]) for s in specs))
