"""Is the process waiting for a request still alive?

Each process that submits requests holds an exclusive ``flock`` on its own lock file under
``<db folder>/live/`` from its first submission until it exits. The kernel drops the lock on any
death (SIGKILL included), so a sweeper that can take the lock knows the waiter is gone. The pid
plus its start time (``/proc/<pid>/stat`` field 22) is a second check that survives pid reuse.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from sentinel.store.paths import DIR_MODE, FILE_MODE

_lock = threading.Lock()
_held: dict[str, tuple[int, str]] = {}  # live dir → (fd, lock path) held by this process


def hostname() -> str:
    """This machine's name as requests record it: ``$SENTINEL_HOST`` (a container or runner may
    claim its own identity), else the OS hostname."""
    return os.environ.get("SENTINEL_HOST", "").strip() or socket.gethostname()


#: A ``lock_path`` starting with this names a PostgreSQL session-level advisory lock key instead
#: of a lock file: the waiter's listener session holds it (see :mod:`sentinel.store.pgwatch`).
SESSION_PREFIX = "pg:"


#: The ``lock_path`` of a parked request (:attr:`~sentinel.store.models.NewRequest.parked`):
#: no process waits for it, so no sweep may cancel it as "waiting process exited".
PARKED = "parked:"


def session_key(lock_path: str | None) -> int | None:
    """The advisory lock key of a ``pg:<key>`` lock path, else None."""
    if not lock_path or not lock_path.startswith(SESSION_PREFIX):
        return None
    try:
        return int(lock_path[len(SESSION_PREFIX) :])
    except ValueError:
        return None


def pid_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    try:
        return int(text.rsplit(b")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _reset_after_fork() -> None:
    # A forked child shares the parent's lock (same open file description). Forget it so the
    # child takes its own lock; closing the inherited fd does not release the parent's lock.
    for fd, _ in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def hold(live_dir: Path) -> str:
    """Take (once per process) this process's liveness lock under ``live_dir``; returns its path."""
    key = str(live_dir)
    with _lock:
        got = _held.get(key)
        if got is not None:
            return got[1]
        if not live_dir.is_dir():
            try:
                live_dir.mkdir(mode=DIR_MODE, parents=True)
                os.chmod(live_dir, DIR_MODE)
            except FileExistsError:
                pass
        pid = os.getpid()
        path = str(live_dir / f"{hostname()}-{pid}-{pid_start_time(pid) or 0}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held[key] = (fd, path)
        return path


def lock_is_free(lock_path: str) -> bool:
    """True when nobody holds ``lock_path`` (or it no longer exists): its owner is dead."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # cannot tell: treat as alive (expiry still applies)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def waiter_is_dead(pid: int, pid_start: int | None, host: str, lock_path: str | None) -> bool:
    """True only when the waiting process is certainly gone (same host; lock free or pid gone)."""
    if lock_path == PARKED:
        return False  # nobody waits: the run resumes from its checkpoint; expiry handles it
    if host != hostname():
        return False  # another machine: cannot judge; expiry handles it
    if lock_path and session_key(lock_path) is None:
        return lock_is_free(lock_path)
    start = pid_start_time(pid)
    return start is None or (pid_start is not None and start != pid_start)


def remove_stale_locks(live_dir: Path) -> int:
    """Delete lock files of dead processes; returns how many."""
    removed = 0
    try:
        names = os.listdir(live_dir)
    except OSError:
        return 0
    mine = {p for _, p in _held.values()}
    for name in names:
        path = str(live_dir / name)
        if not name.endswith(".lock") or path in mine:
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            os.unlink(path)  # names carry pid + start time: no live process can reuse this one
            removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


class SessionLiveness:
    """Judges waiters recorded as ``pg:<key>`` (a session-level advisory lock, see
    :mod:`sentinel.store.pgwatch`) from the keys the server says some session holds.

    A key that is held: alive. Not held, same host: the pid decides (its listener may just be
    reconnecting). Not held, another host: dead once this sweeper has seen it missing for
    ``grace`` seconds (a waiter whose session dropped, e.g. a server restart, takes its key
    again on reconnecting, well within the grace). Other lock paths: :func:`waiter_is_dead`.
    """

    def __init__(self, grace: float) -> None:
        self.grace = float(grace)
        self._missing: dict[int, float] = {}  # key -> when first seen not held (monotonic)
        self._lock = threading.Lock()

    @staticmethod
    def keys(rows: list[tuple[object, ...]]) -> set[int]:
        """The liveness keys named by pending_liveness rows (lock path at index 4)."""
        found = {session_key(r[4]) for r in rows if isinstance(r[4], str)}
        found.discard(None)
        return found  # type: ignore[return-value]

    def judge(
        self, rows: list[tuple[object, ...]], held: set[int], now: float | None = None
    ) -> Callable[[int, int | None, str, str | None], bool]:
        """A ``waiter_is_dead`` for the sweep of ``rows``, given the ``held`` keys."""
        import time

        at = time.monotonic() if now is None else now
        keys = self.keys(rows)
        with self._lock:
            self._missing = {
                k: self._missing.get(k, at) for k in keys if k not in held
            }  # forgets keys that are held again or whose rows are gone
            missing = dict(self._missing)
        me = hostname()

        def is_dead(pid: int, pid_start: int | None, host: str, lock_path: str | None) -> bool:
            key = session_key(lock_path)
            if key is None:
                return waiter_is_dead(pid, pid_start, host, lock_path)
            if key not in missing:
                return False
            if host == me:
                start = pid_start_time(pid)
                return start is None or (pid_start is not None and start != pid_start)
            return at - missing[key] >= self.grace

        return is_dead
