"""One writer per run folder: an advisory lock that ``bench run`` holds for as long as it writes.

    <run>/writer.lock    {"pid": 4242, "host": "node7", "since": "...", "command": "..."}

The lock is ``flock`` on that file, taken without waiting and held until the writer ends. The
kernel drops it when the process dies, however it dies, so a lock left by a killed run is
stale by construction and the next writer simply takes it (and says whose it was). Where
``flock`` does not exist or does not work (some network file systems) the file's pid and host
decide instead: a holder on this host whose process is gone is stale; a holder on another
host is believed.

Readers (``check``, ``report``, ``compare``) never take the lock and never delete anything;
:func:`holder` tells them whether a live writer is at work, so they can say the tables may be
mid-run.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path

from bench.errors import UserError
from bench.provenance import now_utc

try:
    import fcntl
except ImportError:  # Windows: the pid file alone decides
    fcntl = None

LOCK_NAME = "writer.lock"
HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, but alive
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _is_live(info: dict | None) -> bool:
    """Whether the holder ``info`` describes is still running (by pid; other hosts: yes)."""
    if not info or not isinstance(info.get("pid"), int):
        return False
    if info.get("host") != HOST:
        return True
    return info["pid"] != os.getpid() and pid_alive(info["pid"])


def describe(info: dict) -> str:
    return (f"pid {info.get('pid')} on host {info.get('host')} since {info.get('since')}"
            + (f" ({info['command']})" if info.get("command") else ""))


def holder(run_dir: Path) -> dict | None:
    """The live writer of ``run_dir``, if any (read-only: takes nothing, deletes nothing)."""
    info = _read(Path(run_dir) / LOCK_NAME)
    return info if _is_live(info) else None


# Locks this process holds, by the lock file's (device, inode): [fd, holders]. A process that
# opens a folder it already writes (the API resuming the store it holds) shares its own lock.
_HELD: dict[tuple[int, int], list[int]] = {}


def _close_in_child() -> None:
    """A forked child (a worker, workers.py) does not hold its parent's locks: its copies of
    their descriptors are closed, so that a lock lasts as long as its writer and no longer (a
    flock is the open file's, shared by every copy of the descriptor until the last closes)."""
    for fd, _ in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class RunLock:
    """The writer's lock on one run folder (see the module docstring)."""

    def __init__(self, key: tuple[int, int], fd: int, stale: dict | None):
        self._key, self._fd = key, fd
        self._pid = os.getpid()  # a forked child's copy is not the lock (_close_in_child)
        self.stale = stale  # the holder whose lock was left behind, when one was taken over

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        """Take the lock, or raise UserError (exit 2) naming the holder."""
        path = Path(run_dir) / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            stat = os.fstat(fd)
        except OSError as exc:
            raise UserError(f"cannot open {LOCK_NAME}: {exc.strerror}", source=str(run_dir)) from None
        key = (stat.st_dev, stat.st_ino)
        if key in _HELD:
            os.close(fd)
            _HELD[key][1] += 1
            return cls(key, _HELD[key][0], None)
        previous = _read(path)
        locked = False
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise _busy(run_dir, previous) from None
                # ENOLCK / EOPNOTSUPP: no flock here; the pid file decides below
        if not locked and _is_live(previous):
            os.close(fd)
            raise _busy(run_dir, previous)
        lock = cls(key, fd, previous if previous and previous.get("pid") else None)
        _HELD[key] = [fd, 1]
        info = {"pid": os.getpid(), "host": HOST, "since": now_utc(),
                "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        return lock

    def release(self) -> None:
        if self._fd < 0 or os.getpid() != self._pid:
            return
        held = _HELD.get(self._key)
        if held is not None and held[1] > 1:  # another holder in this process keeps it
            held[1] -= 1
            self._fd = -1
            return
        _HELD.pop(self._key, None)
        try:
            os.ftruncate(self._fd, 0)  # no holder now; the file stays (others may be opening it)
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self._fd = -1


def _busy(run_dir: Path, info: dict | None) -> UserError:
    who = describe(info) if info else "another process (its pid is not recorded yet)"
    return UserError(f"this run folder is in use: {who} is writing to it. One process writes "
                     "to a run folder at a time; wait for it to finish, or stop it (Ctrl-C "
                     "keeps every finished trial) and `--resume` again", source=str(run_dir))
