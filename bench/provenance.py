"""Where and with what a run happened: host, CPU, GPU, versions, git commit."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import torch


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def cuda_unavailable_reason(device: str) -> str | None:
    """Why a ``cuda``/``cuda:N`` device cannot be used here, or None when it can."""
    if not device.startswith("cuda"):
        return None
    if not torch.cuda.is_available():
        build = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}"
        return f"CUDA is not available on this machine (torch {torch.__version__} built {build})"
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return f"{device} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def git_commit(root: Path | None = None) -> str | None:
    """actbench's own commit, never another project's: from actbench's source tree (the git
    work tree whose top level holds this package and actbench's pyproject.toml), with '+dirty'
    when it has local changes; else, for an installed copy, the commit pip recorded (PEP 610
    ``direct_url.json``, installed from a VCS URL); else None. An actbench installed inside
    another project's git tree (site-packages in a repository, a vendored copy) records none."""
    root = Path(__file__).resolve().parent.parent if root is None else root
    if _is_actbench_tree(root):
        try:
            top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root,
                                 capture_output=True, text=True, timeout=5)
            if top.returncode == 0 and Path(top.stdout.strip()).resolve() == root.resolve():
                commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root,
                                        capture_output=True, text=True, timeout=5)
                if commit.returncode == 0:
                    dirty = subprocess.run(["git", "status", "--porcelain",
                                            "--untracked-files=no"], cwd=root,
                                           capture_output=True, text=True, timeout=5)
                    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return recorded_commit()


def _is_actbench_tree(root: Path) -> bool:
    """Whether ``root`` is actbench's source tree: its pyproject.toml names the project."""
    try:
        text = (root / "pyproject.toml").read_text()
    except OSError:
        return False
    return 'name = "actbench"' in text


def recorded_commit() -> str | None:
    """The commit in the installed distribution's PEP 610 direct_url.json, if pip wrote one."""
    from importlib import metadata

    try:
        raw = metadata.distribution("actbench").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        info = json.loads(raw) if raw else {}
    except ValueError:
        return None
    commit = (info.get("vcs_info") or {}).get("commit_id") if isinstance(info, dict) else None
    return commit if isinstance(commit, str) and commit else None


def machine() -> dict:
    import numpy
    import pandas

    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "git_commit": git_commit(),
    }
