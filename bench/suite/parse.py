"""Read a suite file, validate it at the boundary, and expand it into trials.

Every mistake becomes one ``UserError`` that names the file, the key (and where it was set:
``[model]``, ``[sweep]`` or a ``[[variant]]``), the bad value and the valid choices.

A suite is code: a ``[task] kind``, an activation or an init may be any importable function
("package.module:name"), which the full check imports and calls once. ``user_code=False``
(``--dry-run``) checks everything else and only the names and the spelling of the import
paths: no user module is imported, no user function called (``Suite.imports`` lists them).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bench.errors import Problem, UserError, choices_in, did_you_mean, unknown_name
from bench.plugins import kind_of, split_table, user_path
from bench.suite.format import SECTIONS, Expect, RawSuite
from bench.suite.grid import GridPoint, Suite, check_tune_seeds
from bench.suite.preflight import nonfinite, too_large
from bench.training.spec import TrialSpec
from bench.training.tasks import TASKS, ArgumentError, TaskConfig, UncheckedUserTaskConfig, UserTaskConfig

_MAX_MESSAGES = 8


def load_suite(path: str | Path, *, user_code: bool = True) -> Suite:
    """Read and validate a suite file; raises ``UserError`` on any mistake. With
    ``user_code=False`` no user module is imported and no user function called
    (``parse_suite``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the suite: {exc.strerror}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise UserError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})",
                        source=str(path)) from None
    return parse_suite(text, source=str(path), user_code=user_code)


def parse_suite(text: str, source: str = "<suite>", *, user_code: bool = True) -> Suite:
    """Validate a suite's text. ``user_code=True`` (what a run needs) also imports every user
    activation, init and task and calls each once on a small input, so that bad user code is
    one clear error before anything trains. ``user_code=False`` (``--dry-run``, reading)
    imports and calls none of it: the names and import paths are checked by their spelling,
    what only a call could tell is left to the full check, and the suite cannot be trained."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"not valid TOML: {exc}", source=source) from None
    infinite = nonfinite(data)  # before validation: a range check would hide inf in a message
    if infinite:
        raise _raise_problems(infinite, source)
    try:
        raw = RawSuite.model_validate(data)
    except ValidationError as exc:
        raise _user_error(exc, source, RawSuite, section=None) from None

    messages: list[str] = []
    _check_dotted_keys(raw, messages)
    if messages:
        raise UserError("\n".join(messages[:_MAX_MESSAGES]), source=source)

    points: dict[tuple, GridPoint] = {}
    configs: list[dict[str, Any]] = []
    seen_errors: dict[str, Problem] = {}
    for combo in itertools.product(*raw.sweep.values()):
        swept = dict(zip(raw.sweep, combo))
        for variant in raw.variant or [{"name": ""}]:
            point = _validate_point(raw, swept, variant, seen_errors, user_code)
            if point is not None:
                # A variant may pin a swept key; points that become equal are run once.
                # Keyed on the config's JSON, which tells true from 1 (pydantic equality does not)
                config = TrialSpec(raw.name, point.variant, 0, point.task, point.model,
                                   point.train).config
                key = (point.variant, json.dumps(config, sort_keys=True, default=repr))
                if key not in points:
                    points[key] = point
                    configs.append(config)
    if seen_errors:
        raise _raise_problems(list(seen_errors.values()), source)
    _check_column_types(configs, source)
    grid = tuple(points.values())
    _check_sizes(grid, source)
    if raw.tune is not None:
        _check_tune(raw, grid, source)
    suite = Suite(raw.name, raw.description, tuple(raw.seeds), grid, tuple(raw.expect), text,
                  source, raw.tune, tuple(_warnings(grid)), user_code)
    from bench.suite.claims import check_claims  # the claims against the grid, before anything trains

    check_claims(suite)
    return suite


def _check_sizes(grid: tuple[GridPoint, ...], source: str) -> None:
    """Each point's memory floor against its device's memory (preflight.py), before anything
    is drawn: a point that cannot fit is an error naming it, not a failed row per seed."""
    problems = []
    for i, point in enumerate(grid):
        named = ", ".join(f"{k} = {v!r}" for k, v in point.overrides)
        where = f"grid point {i + 1}" + (f" ({named})" if named else "")
        problem = too_large(point.task, point.model, point.train, where)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise _raise_problems(problems[:_MAX_MESSAGES], source)


def _check_tune(raw: RawSuite, grid: tuple[GridPoint, ...], source: str) -> None:
    """``[tune]`` against the grid: swept keys, splits to select and report on, the device."""
    tune, problems = raw.tune, []
    for key in tune.keys:
        if key not in raw.sweep:
            problems.append(f"[tune] keys: {key!r} is not a [sweep] key{did_you_mean(key, raw.sweep)}"
                            f"; valid choices: {', '.join(raw.sweep) or '(no [sweep])'}")
    grid = tuple(p for p in grid if _checked(p.task))  # an unread user task: the full check's
    for split, fraction in (("val", "val_fraction"), ("test", "test_fraction")):
        lacking = [p for p in grid if not getattr(p.task, f"has_{split}_split")]
        if lacking:
            what = ("the tuning stage selects on a validation split" if split == "val" else
                    "the evaluation stage reports on a held-out test split")
            problems.append(f"[tune]: {what}, and task {lacking[0].task.kind!r} has none here: "
                            f"set [task] {fraction} (e.g. 0.2)")
    if tune.metric.endswith("accuracy"):
        regression = [p for p in grid if p.task.problem != "classification"]
        if regression:
            problems.append(f"[tune] metric: {tune.metric!r} needs a classification task; "
                            f"{regression[0].task.kind!r} is regression: use 'final_val_loss'")
    devices = list(dict.fromkeys(p.train.device for p in grid))
    if tune.device is not None and tune.device not in devices:
        problems.append(f"[tune] device: {tune.device!r} is not a device of the grid; valid "
                        f"choices: {', '.join(devices)}")
    if problems:
        raise UserError("\n".join(problems[:_MAX_MESSAGES]), source=source)
    check_tune_seeds(tune, raw.seeds, source)


def _warnings(grid: tuple[GridPoint, ...]) -> list[str]:
    """Sweeps that run but measure something else than they seem to."""
    out = []
    confounded = [p for p in grid if p.train.batch_size == "full"
                  and p.train.accumulation_steps > 1 and p.train.lr_scaling != "none"]
    if confounded:
        t = confounded[0].train
        out.append(f"train.accumulation_steps = {t.accumulation_steps} with train.batch_size = "
                   f"\"full\" and train.lr_scaling = {t.lr_scaling!r} ({len(confounded)} grid "
                   "point(s)): the full batch split in k micro-batches is the same optimizer "
                   f"step, so the step's batch does not grow; only the lr is scaled (to "
                   f"{t.lr_effective:g} from {t.lr:g}). Compare k with an integer batch_size, "
                   "or keep lr_scaling = \"none\" with the full batch")
    return out


def _check_column_types(configs: list[dict[str, Any]], source: str) -> None:
    """A config column holds one kind of value over the grid (a Parquet column has one type).
    Built-in keys always do; a user task's arguments (``task.<key>``), or one the same name as
    a built-in task's key, might not."""
    seen: dict[str, dict[str, Any]] = {}
    for config in configs:
        for column, value in config.items():
            family = kind_of(value)
            if family is not None:
                seen.setdefault(column, {}).setdefault(family, value)
    problems = []
    for column, families in seen.items():
        if len(families) > 1:
            examples = "; ".join(f"{f}, e.g. {v!r}" for f, v in families.items())
            message = (f"key {column!r} is {examples} in different grid points: a column of "
                       "the trials table holds one kind of value, so use one kind")
            problems.append(Problem(message, column))
    if problems:
        raise _raise_problems(problems, source)


def parse_claims(text: str, source: str = "<suite>") -> tuple[Expect, ...]:
    """The ``[[expect]]`` claims of a suite's text, without validating (or importing) the
    rest: a stored run's claims can be checked where its user code cannot be imported."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"not valid TOML: {exc}", source=source) from None
    out = []
    for i, table in enumerate(data.get("expect", []), 1):
        try:
            out.append(Expect.model_validate(table))
        except ValidationError as exc:
            problems = _messages(exc, Expect, None, {})
            raise UserError("\n".join(f"[[expect]] #{i}: {p.message}" for p in problems),
                            source=source) from None
    return tuple(out)


def _check_dotted_keys(raw: RawSuite, messages: list[str]) -> None:
    places = [("[sweep]", key) for key in raw.sweep]
    names: set[str] = set()
    for i, variant in enumerate(raw.variant):
        name = variant.get("name")
        where = f"[[variant]] #{i + 1}"
        if not isinstance(name, str) or not name:
            messages.append(f"{where}: needs a name = \"...\"")
        elif name in names:
            messages.append(f"{where}: name {name!r} is used twice")
        names.add(name if isinstance(name, str) else "")
        places += [(f"[[variant]] {name!r}", key) for key in variant if key != "name"]
    for where, key in places:
        section = key.split(".", 1)[0]
        if "." not in key or section not in SECTIONS:
            messages.append(f"{where} {key!r}: keys are dotted paths into [task], [model] or "
                            f"[train], e.g. \"model.activation\"{did_you_mean(section, SECTIONS)}")
    for key, values in raw.sweep.items():
        if not values:
            messages.append(f"[sweep] {key!r}: the list of values is empty")
        elif len({repr(v) for v in values}) != len(values):
            messages.append(f"[sweep] {key!r} = {values!r} repeats a value")


def _set_dotted(tables: dict[str, dict], key: str, value: Any) -> None:
    section, *path = key.split(".")
    node = tables[section]
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}  # validation then names the key that is not a table
        node = node[part]
    node[path[-1]] = value


def _checked(task: TaskConfig) -> bool:
    """False for a user task read without running user code: what it draws is not known."""
    return not isinstance(task, UncheckedUserTaskConfig)


def _validate_point(raw: RawSuite, swept: dict[str, Any], variant: dict[str, Any],
                    errors: dict[str, Problem], user_code: bool = True) -> GridPoint | None:
    tables = {s: copy.deepcopy(getattr(raw, s)) for s in SECTIONS}
    origin: dict[str, str] = {}
    name = variant.get("name", "")
    overrides: dict[str, Any] = {}
    for key, value in swept.items():
        _set_dotted(tables, key, value)
        origin[key] = f"[sweep] {key!r}"
        overrides[key] = value
    for key, value in variant.items():
        if key != "name":
            _set_dotted(tables, key, value)
            origin[key] = f"[[variant]] {name!r} {key!r}"
            overrides[key] = value

    validated: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        table = tables[section]
        if section == "task":
            table = _task_table(table, origin, errors)
            if table is None:
                continue
            cls = _task_class(table.get("kind"), origin, errors)
            if cls is None:
                continue
            if cls is UserTaskConfig and not user_code:
                cls = UncheckedUserTaskConfig
        try:
            validated[section] = cls.model_validate(table, context={"user_code": user_code})
        except ValidationError as exc:
            for problem in _messages(exc, cls, section, origin):
                errors.setdefault(problem.message, problem)
            continue
        if cls is UserTaskConfig and not _user_task_draws(validated["task"], origin, errors):
            del validated["task"]
        elif cls is UncheckedUserTaskConfig and not _user_task_draws(
                validated["task"], origin, errors, call=False):
            del validated["task"]
    if len(validated) < len(SECTIONS):
        return None
    target = validated["train"].target
    if target is not None and _checked(validated["task"]):
        task = validated["task"]
        where = origin.get("train.target", origin.get("train.target.metric", "[train] target"))
        if "accuracy" in target.metric and task.problem != "classification":
            message = (f"{where}: metric {target.metric!r} needs a classification task; "
                       f"{task.kind!r} is {task.problem}: use 'loss' or 'test_loss'")
            errors.setdefault(message, Problem(message, "train.target.metric", target.metric,
                                               ("loss", "test_loss")))
            return None
        split = target.metric.partition("_")[0]
        if split in ("test", "val") and not getattr(task, f"has_{split}_split"):
            message = (f"{where}: metric {target.metric!r} needs a held-out {split} split, and "
                       f"task {task.kind!r} has none here (set [task] {split}_fraction): use "
                       "'loss' or 'accuracy'")
            errors.setdefault(message, Problem(message, "train.target.metric", target.metric,
                                               ("loss", "accuracy")))
            return None
    return GridPoint(name, tuple(overrides.items()), validated["task"], validated["model"],
                     validated["train"])


def _task_table(table: dict[str, Any], origin: dict[str, str],
                errors: dict[str, Problem]) -> dict[str, Any] | None:
    """``kind = { fn = "pkg.mod:f", n = 100 }``, the inline-table form of a user task, as the
    flat table ``kind = "pkg.mod:f"``, ``n = 100`` (None, with the problem recorded, when the
    table has no fn)."""
    kind = table.get("kind")
    if not isinstance(kind, dict):
        return table
    where = origin.get("task.kind", "[task] kind")
    try:
        fn, args = split_table(kind, "kind")
        inline = json.loads(args or "{}")
        if "kind" in inline:
            raise ValueError("kind = { fn = ..., kind = ... }: the function is fn; kind cannot "
                             "be an argument")
        both = sorted(k for k in inline if k in table and f"task.{k}" not in origin)
        if both:
            raise ValueError(f"{', '.join(both)} given both in the inline table and as "
                             "[task] keys: give each once")
    except ValueError as exc:
        message = f"{where}: {exc}"
        errors.setdefault(message, Problem(message, "task.kind"))
        return None
    # a [sweep] or [[variant]] value of task.<key> wins over the inline table's, as over [task]
    return {**inline, **{k: v for k, v in table.items() if k != "kind"}, "kind": fn}


def _task_class(kind: Any, origin: dict[str, str],
                errors: dict[str, Problem]) -> type[BaseModel] | None:
    """A built-in task's config class, UserTaskConfig for an import path or a registered name,
    or None with the problem recorded."""
    where = origin.get("task.kind", "[task] kind")
    if isinstance(kind, str) and kind in TASKS:
        return TASKS[kind][0]
    if isinstance(kind, str):
        try:
            user_path("task", kind, TASKS)
            return UserTaskConfig
        except ValueError as exc:
            message = f"{where}: {exc}"
    elif kind is None:
        message = f"{where}: required key is missing; valid choices: {', '.join(sorted(TASKS))}"
    else:
        message = f"{where}: {unknown_name('task', kind, TASKS)}"
    errors.setdefault(message, Problem(message, "task.kind", kind, choices_in(message)))
    return None


def _user_task_draws(task: UserTaskConfig, origin: dict[str, str],
                     errors: dict[str, Problem], call: bool = True) -> bool:
    """Import the user's task and draw it once; a failure names the key and the path. With
    ``call=False`` only what needs no import: the arguments and the import path's spelling."""
    try:
        if not call:
            from bench.plugins import check_user_path

            task.check_arguments()
            check_user_path("task", task.kind, TASKS)
            return True
        return task.resolved is not None
    except ArgumentError as exc:
        key = f"task.{exc.key}"
        where = origin.get(key, f"[task] {exc.key}")
        message = f"{where}: {exc}"
        errors.setdefault(message, Problem(message, key, task.kwargs.get(exc.key),
                                           choices_in(message)))
    except ValueError as exc:
        where = origin.get("task.kind", "[task] kind")
        message = f"{where}: {exc}"
        errors.setdefault(message, Problem(message, "task.kind", task.kind, choices_in(message)))
    return False


def _user_error(exc: ValidationError, source: str, cls: type[BaseModel],
                section: str | None) -> UserError:
    return _raise_problems(_messages(exc, cls, section, {}), source)


def _raise_problems(problems: list[Problem], source: str) -> UserError:
    problems = problems[:_MAX_MESSAGES]
    return UserError("\n".join(p.message for p in problems), source=source, problems=problems)


def _messages(exc: ValidationError, cls: type[BaseModel], section: str | None,
              origin: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
        # Drop pydantic's union-branch labels such as 'int' or "literal['full']".
        loc = [p for p in loc if p not in {"int", "str", "float", "bool"} and "[" not in p]
        value = err.get("input")
        if loc and loc[-1] in ("activation_args", "init_args"):  # checked there; the user
            loc, value = [*loc[:-1], loc[-1].removesuffix("_args")], None  # wrote the name
        dotted = ".".join(([section] if section else []) + loc)
        where = _where(dotted, section, origin)
        kind = err["type"]
        if kind == "extra_forbidden":
            valid = _fields(cls, loc[:-1])
            out.append(Problem(f"{where}: unknown key{did_you_mean(loc[-1], valid)}; "
                               f"valid keys: {', '.join(valid)}", dotted, value, tuple(valid)))
        elif kind == "missing":
            out.append(Problem(f"{where}: required key is missing", dotted))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if kind == "literal_error":
                choices = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
                msg = (f"{value!r} is not one of the valid choices{did_you_mean(value, choices)}; "
                       f"valid choices: {', '.join(choices)}")
            elif not msg.startswith(repr(value)) and value is not None and not isinstance(value, dict):
                msg = f"{value!r}: {msg[0].lower()}{msg[1:]}"
            out.append(Problem(f"{where}: {msg}", dotted, value, choices_in(msg)))
    return list({p.message: p for p in out}.values())


def _where(dotted: str, section: str | None, origin: dict[str, str]) -> str:
    for key in sorted(origin, key=len, reverse=True):
        if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + "."):
            return origin[key]
    if section is None:
        return f"key {dotted!r}" if dotted else "suite"
    head, _, rest = dotted.partition(".")
    return f"[{head}] {rest}" if rest else f"[{head}]"


def _fields(cls: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = cls.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        inner = [a for a in getattr(annotation, "__args__", (annotation,))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        cls = inner[0]
    return sorted(cls.model_fields)
