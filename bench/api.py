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

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import UserError
from .suite import Suite, expand, parse_suite
from .suite import load_suite as _load_suite_file


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
    from .plugins import reference

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
    """A stored run: its folder and its three tables (read when first used)."""

    dir: Path

    @cached_property
    def _data(self):
        from .rundata import RunData

        return RunData.open(self.dir)

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
        from .check import check

        return Claims(check(self._data))

    def report(self, format: str | tuple[str, ...] = ("html", "md"),  # noqa: A002
               out: str | Path | None = None) -> list[Path]:
        """Write the report as ``bench report`` does; returns the files written."""
        from .report import parse_formats, render

        formats = format if isinstance(format, str) else ",".join(format)
        return render(self.dir, Path(out) if out is not None else None, parse_formats(formats))

    def compare(self, other: Run | str | Path, fail_on: tuple[str, ...] = ()):
        """Changes from this run (A) to ``other`` (B), as ``bench compare A B``."""
        from .compare import Threshold, compare

        other = other if isinstance(other, Run) else open_run(other)
        return compare(self._data, other._data, [Threshold.parse(t) for t in fail_on])

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"


class Claims(list):
    """``Run.check()``'s result: one ClaimResult per claim; ``passed`` when none failed."""

    @property
    def passed(self) -> bool:
        return all(r.verdict != "fail" for r in self)

    def to_frame(self) -> pd.DataFrame:
        from .check import describe_point

        return pd.DataFrame([{"claim": r.text(), "metric": r.claim.metric,
                              "value": describe_point(r), "bound": r.bound(),
                              "verdict": r.verdict} for r in self])

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)


def open_run(run_dir: str | Path) -> Run:
    """A run folder written by ``bench run`` (or ``bench.run``)."""
    run = Run(Path(run_dir))
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
    from .check import claimed_points
    from .runner import Interrupted, RunOptions, run_suite

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if quick:
        suite = claimed_points(suite)
        if not expand(suite):
            raise UserError("quick: the suite's claims look at no grid point")
    options = RunOptions(out=Path(out), workers=workers, threads=threads,
                         resume=Path(resume) if resume is not None else None, extend=extend,
                         pack={None: "auto", True: "on", False: "off"}[pack],
                         scheduler=scheduler, cluster=cluster)
    try:
        store = run_suite(suite, options)
    except Interrupted as stop:  # Ctrl-C / the notebook's stop button: the run is kept
        raise KeyboardInterrupt(f"interrupted: every finished trial is stored in "
                                f"{stop.run_dir}; continue with bench.run(..., resume="
                                f"{str(stop.run_dir)!r})") from None
    return Run(store.dir)
