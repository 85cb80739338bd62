"""Whether a suite may go on in a run folder (``--resume``): one run folder, one experiment.

The run folder keeps the text of the suite it was run with and its hash, and each stored trial
keeps that hash too (``suite_sha256``). ``--resume`` with the same text goes on. With another
text it is refused, with a diff of what changed, because the new trials would be mixed with
the old in one table. ``--extend`` lets a changed suite go on where the change only *adds*:
every grid point of the stored suite is still in the new one with the same settings, so
every stored trial is one the new suite would have run. A ``[tune]`` suite may add settings
and evaluation seeds, never a tuning value of a setting already tuned (that could change a
pick the evaluation stage already trained on). The stored suite is then kept in the
manifest's ``suite_history`` and the new one becomes the run's suite (and its claims the ones
``bench check`` uses).
"""

from __future__ import annotations

import difflib

from bench.errors import UserError
from bench.provenance import now_utc
from bench.suite import Suite, expand, parse_suite
from bench.suite.stages import first_stage, settings, tuning_specs

_DIFF_LINES = 40


def diff(old_text: str, new_text: str, new_source: str) -> str:
    """A unified diff of the suite texts, at most _DIFF_LINES lines."""
    lines = list(difflib.unified_diff(old_text.splitlines(), new_text.splitlines(),
                                      "the suite this run was run with (manifest.json)",
                                      new_source, lineterm="", n=1))
    if len(lines) > _DIFF_LINES:
        lines = lines[:_DIFF_LINES] + [f"... ({len(lines) - _DIFF_LINES} more lines)"]
    return "\n".join(lines)


def check_resume(manifest: dict, suite: Suite, run_dir: str, extend: bool) -> dict | None:
    """None when ``suite`` is the run's own; the manifest's new ``suite_history`` entry when
    ``extend`` allows a changed suite that only adds grid points; otherwise UserError."""
    stored = manifest.get("suite") or {}
    if stored.get("name") != suite.name:
        raise UserError(f"--resume: this run folder holds suite {stored.get('name')!r}, "
                        f"not {suite.name!r}", source=run_dir)
    if stored.get("sha256") == suite.sha256:
        return None
    old_text = stored.get("text") or ""
    changes = diff(old_text, suite.text, suite.source)
    if not extend:
        raise UserError(
            f"--resume: {suite.source} is not the suite this run was run with, so its trials "
            "would be mixed with the stored ones in one table. What changed:\n" + changes +
            "\nResume with the suite as it was, start a new run (without --resume), or pass "
            "--extend if the change only adds grid points (new values, variants or seeds)",
            source=run_dir)
    try:
        old = parse_suite(old_text, source=f"{run_dir}/manifest.json")
    except UserError as exc:
        raise UserError(f"--extend: the suite stored with this run no longer loads, so what "
                        f"it ran cannot be compared with {suite.source}: {exc}",
                        source=run_dir) from None
    problem = _not_an_extension(old, suite)
    if problem:
        raise UserError(f"--extend: {suite.source} does not only add grid points to the suite "
                        f"this run was run with: {problem}. What changed:\n{changes}\n"
                        "Changed settings need a new run (without --resume)", source=run_dir)
    return {"sha256": stored.get("sha256"), "text": old_text, "source": stored.get("source"),
            "replaced_at": now_utc()}


def _not_an_extension(old: Suite, new: Suite) -> str | None:
    """What in ``new`` is not an addition to ``old`` (None when everything is)."""
    if (old.tune is None) != (new.tune is None):
        return "one has a [tune] table and the other not"
    if old.tune is None:
        missing = _missing(expand(old), expand(new))
        return f"{missing} stored grid point(s) x seed(s) are not in it as they were" if missing else None
    if old.tune.model_dump() != new.tune.model_dump():
        return "its [tune] table differs"
    if not set(old.seeds) <= set(new.seeds):
        return "it drops evaluation seeds"
    missing = _missing(first_stage(old), first_stage(new))
    if missing:
        return f"{missing} trial(s) of the stored tuning stage are not in it as they were"
    new_tuning = {(s.variant, repr(s.context)): _ids(tuning_specs(new, s)) for s in settings(new)}
    for setting in settings(old):
        before = _ids(tuning_specs(old, setting))
        if before and new_tuning.get((setting.variant, repr(setting.context))) != before:
            return (f"the tuned values of {setting.label()} change, which can change its "
                    "pick")
    return None


def _ids(tuning: dict) -> set[str]:
    return {s.trial_id for specs in tuning.values() for s in specs}


def _missing(old_specs, new_specs) -> int:
    return len({s.trial_id for s in old_specs} - {s.trial_id for s in new_specs})
