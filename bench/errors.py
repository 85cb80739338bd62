"""The one error type for user mistakes, and the "did you mean" helper that names the fix."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One mistake: its message, the dotted key (``model.activation``), the bad value and the
    valid choices (valid names, or valid keys for an unknown key)."""

    message: str
    key: str | None = None
    value: object = None
    choices: tuple[str, ...] = ()


_CHOICES = re.compile(r"valid (?:choices|keys): ([^;]+)")


def choices_in(message: str) -> tuple[str, ...]:
    """The choices a message lists ("...; valid choices: a, b"), as a tuple."""
    match = _CHOICES.search(message)
    return tuple(c.strip() for c in match.group(1).split(",")) if match else ()


class UserError(Exception):
    """A mistake in what the user asked for: printed as one message, exit status 2.

    ``key``, ``value`` and ``choices`` (of the first problem) and ``problems`` (all of them)
    are kept as attributes so that callers (and the Python API) can act on them, not only
    print them.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None,
                 value: object = None, choices: Iterable[str] = (),
                 problems: Iterable[Problem] = ()):
        self.problems = tuple(problems)
        first = self.problems[0] if self.problems else None
        self.source = source
        self.key = key if key is not None or first is None else first.key
        self.value = value if value is not None or first is None else first.value
        self.choices = tuple(choices) or (first.choices if first else ())
        if source:  # every line names the file, so each stands alone in a log
            message = "\n".join(f"{source}: {line}" for line in message.splitlines())
        super().__init__(message)


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """' did you mean 'relu'?' when something close exists, else ''."""
    choices = list(choices)
    text = str(value)
    prefixed = [c for c in choices if text and c.startswith(text)]  # 'acc' -> 'accuracy'
    close = prefixed[:1] or difflib.get_close_matches(text, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, value: object, choices: Iterable[str]) -> str:
    """The standard sentence for a name that is not in a registry."""
    choices = sorted(choices)
    return (f"{value!r} is not a known {kind}{did_you_mean(value, choices)}; "
            f"valid choices: {', '.join(choices)}")
