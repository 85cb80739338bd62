"""``bench list [suites]``: what a suite can name (tasks, activations, inits, optimizers), and
the shipped suites."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.plugins import GROUPS, registered
from bench.training.activations import ACTIVATIONS
from bench.training.inits import INITS
from bench.training.optimizers import OPTIMIZERS
from bench.training.tasks import TASKS


class List:
    """List what a suite can name, or the shipped suites."""

    name = "list"

    def add_to(self, sub, raw) -> None:
        listing = sub.add_parser("list", help="list tasks, activations, inits and optimizers; "
                                              "`list suites`: the shipped suites")
        listing.add_argument("what", nargs="?", choices=["suites"],
                             help="suites: the shipped suites (`run NAME` runs one) and what each asks")

    def locate(self, args: argparse.Namespace) -> None:
        pass

    def __call__(self, args: argparse.Namespace, console: Console) -> int:
        _list(console, args.what)
        return 0


def _list(console: Console, what: str | None = None) -> None:
    if what == "suites":
        _list_suites(console)
        return
    plugins = {what: {escape(name): escape(f"{path} (from {package})")
                      for name, (path, package) in registered(group).items()}
               for what, group in GROUPS.items()}
    tasks = Table(title=escape("tasks ([task] kind = ..., or 'package.module:name' with the "
                               "function's keyword arguments as the other keys)"))
    tasks.add_column("kind")
    tasks.add_column("keys (default)")
    tasks.add_column("about")
    for name, (cfg, _) in TASKS.items():
        keys = ", ".join(f"{k} ({f.default})" for k, f in cfg.model_fields.items() if k != "kind")
        tasks.add_row(name, keys, (cfg.__doc__ or "").strip().splitlines()[0])
    for name, about in plugins["task"].items():
        tasks.add_row(name, "the function's keyword arguments", about)
    console.print(tasks)
    for title, entries in (("activations ([model] activation = ..., or 'package.module:name'"
                            " or { fn = ..., arg = ... })",
                            {**{k: a.doc for k, a in ACTIVATIONS.items()}, **plugins["activation"]}),
                           ("inits ([model] init = ..., or 'package.module:name' or "
                            "{ fn = ..., arg = ... })", {**INITS, **plugins["init"]}),
                           ("optimizers ([train] optimizer = ...)", OPTIMIZERS)):
        table = Table(title=escape(title))
        table.add_column("name")
        table.add_column("about")
        for name, about in entries.items():
            table.add_row(name, about)
        console.print(table)
    from bench.suite.locate import shipped_paths
    console.print(f"shipped suites ({len(shipped_paths())}): `list suites` shows them; `run NAME` "
                  "runs one, e.g. `run activations`", highlight=False, markup=False,
                  soft_wrap=True)


def _list_suites(console: Console) -> None:
    """The shipped suites, by the name ``run`` takes, with their TOML description (read with
    tomllib, never validated or run: no user code is imported)."""
    from bench.suite.locate import shipped_dir, shipped_suites

    suites = shipped_suites()
    table = Table(title=escape(f"shipped suites ({shipped_dir()}): `run NAME` runs one, "
                               "`run NAME --dry-run` prints its grid"))
    table.add_column("name")
    table.add_column("about")
    for s in suites:
        about = s.description if s.name == s.key else f"{s.description} (name = {s.name!r})"
        table.add_row(escape(s.key), escape(about))
    console.print(table)
    if not suites:
        console.print(f"no shipped suites found in {shipped_dir()}", highlight=False,
                      markup=False, soft_wrap=True)
