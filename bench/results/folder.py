"""Reading a run folder's bookkeeping without changing it: the manifest, validated, and the
parts set aside in quarantine. Shared by the writer (store.py) and the readers (rundata.py)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import UserError
from bench.results.names import check_folder_name

QUARANTINE = ".quarantine"  # parts/.quarantine/<trial_id>/: parts that could not be read back


def read_manifest(run_dir: Path) -> dict:
    """``run_dir``'s manifest.json as a dict; a missing, unreadable or malformed one is one
    UserError naming the file and what is wrong with it."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        raise UserError("not a run folder (no manifest.json); pass the folder that `bench run` "
                        "printed, e.g. results/<suite>/<run-id>", source=str(run_dir))
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"manifest.json is not valid JSON ({exc}); the run's trials are in "
                        "parts/, but without its manifest the folder cannot be read",
                        source=str(run_dir)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"manifest.json cannot be read: {exc}", source=str(run_dir)) from None
    if not isinstance(manifest, dict):
        raise UserError(f"manifest.json holds a JSON {type(manifest).__name__}, not the run's "
                        "manifest (a JSON object with its suite, run_id and machine)",
                        source=str(run_dir))
    for key in ("suite", "machine", "tuning"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise UserError(f"manifest.json: {key!r} holds {json.dumps(manifest[key])[:60]}, "
                            "not a JSON object", source=str(run_dir), key=key)
    suite = manifest.get("suite") or {}
    for key in ("name", "text", "sha256", "source"):
        if key in suite and not isinstance(suite[key], str):
            raise UserError(f"manifest.json: suite.{key} holds {json.dumps(suite[key])[:60]}, "
                            "not a string", source=str(run_dir), key=f"suite.{key}")
    if suite.get("name"):
        check_folder_name(suite["name"], source=str(run_dir), key="suite.name")
    if manifest.get("run_id"):
        check_folder_name(manifest["run_id"], source=str(run_dir), key="run_id")
    return manifest


def quarantined(run_dir: Path) -> list[str]:
    """The trial ids of the parts set aside in ``parts/.quarantine`` (read-only)."""
    folder = Path(run_dir) / "parts" / QUARANTINE
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".reason.txt"))
