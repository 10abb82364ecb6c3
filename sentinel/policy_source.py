"""Where a process gets its policy from: one shared, swappable holder per rules file.

Every protected function using the same rules file shares one :class:`PolicySource`. Reading
``source.current`` is a single attribute load, so a call always sees one whole policy: a swap
(hot reload) replaces the reference atomically and calls in flight keep the policy they started
with.

Hot reload: with ``watch=True`` (``SentinelConfig.hot_reload``, the default) a daemon thread
watches the file's folder (:mod:`sentinel.policy.watch`). A saved edit is loaded and validated
(including the file's ``tests:``) and swapped in; an invalid edit leaves the last good policy in
force, is logged once, kept in :attr:`PolicySource.last_error` / :attr:`PolicySource.problem`,
and recorded as a ``policy_rejected`` event in every database a guard uses this file with
(a good reload is a ``policy_loaded`` event), so another process — the command center — sees it.
Subscribers (the command center's Rules view) get a :class:`PolicyChange` for every outcome.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from sentinel.errors import PolicyError
from sentinel.policy import Policy, load_policy
from sentinel.policy.diff import PolicyDiff, diff_policies
from sentinel.policy.loader import DEFAULT_MAX_BYTES, load_policy_bytes

log = logging.getLogger("sentinel.policy")

#: Event kinds a reload records (for ``store.history(HistoryFilter(kinds=POLICY_EVENT_KINDS))``).
POLICY_EVENT_KINDS = ("policy_loaded", "policy_rejected")


@dataclass(frozen=True)
class PolicyProblem:
    """Why the file on disk is not the policy in force: ``kind`` is ``invalid``, ``deleted`` or
    ``unreadable``; ``line`` is set when the problem has a place in the file."""

    kind: Literal["invalid", "deleted", "unreadable"]
    file: str
    line: int | None
    message: str  # the full located message: "rules.yaml:6: rule 'x': … (hint: …)"
    kept_version: str  # the version still in force
    at: float


@dataclass(frozen=True)
class PolicyChange:
    """What a reload did. ``kind``: ``loaded`` (``policy`` replaced ``previous``), ``rejected``
    (the file is invalid, deleted or unreadable; ``policy`` is the last good one, still in force)
    or ``restored`` (the file is back to the policy in force; the earlier problem is gone)."""

    kind: Literal["loaded", "rejected", "restored"]
    path: Path
    policy: Policy
    previous: Policy | None
    problem: PolicyProblem | None
    at: float

    @property
    def diff(self) -> PolicyDiff | None:
        """Rules added / removed / changed by a ``loaded`` change (None otherwise)."""
        if self.kind != "loaded":
            return None
        return diff_policies(self.previous, self.policy)


Subscriber = Callable[[PolicyChange], None]


class PolicySource:
    """The policy in force for one rules file."""

    _instances: ClassVar[dict[Path, PolicySource]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Raises PolicyError (a SentinelConfigError) when the file is missing or invalid.
        self.current: Policy = load_policy(self.path)
        self.problem: PolicyProblem | None = None
        self._subscribers: list[Subscriber] = []
        self._databases: set[Path] = set()
        self._reload_lock = threading.Lock()
        self._watcher: Any = None
        self._settled_stamp: tuple[int, int, int] | None = None
        self._logged: str | None = None  # the last problem logged (log each one once)

    # -- sharing ---------------------------------------------------------------------------------

    @classmethod
    def for_path(cls, path: str | os.PathLike[str], *, watch: bool = True) -> PolicySource:
        """The shared source for ``path`` (loaded once per process; watched once when ``watch``)."""
        given = Path(path).absolute()
        key = given.resolve()
        with cls._lock:
            source = cls._instances.get(key)
            if source is None:
                source = cls(given)
                cls._instances[key] = source
        if watch:
            source.start_watching()
        return source

    @classmethod
    def reset(cls) -> None:
        """Stop every watcher and forget every loaded source (tests, ``clear_wrapper_cache``)."""
        with cls._lock:
            sources = list(cls._instances.values())
            cls._instances.clear()
        for source in sources:
            source.stop_watching()

    # -- state ----------------------------------------------------------------------------------

    @property
    def last_error(self) -> str | None:
        """The message of the current problem (None when the file on disk is in force)."""
        return self.problem.message if self.problem is not None else None

    @property
    def watching(self) -> bool:
        """True while a watcher thread follows the file."""
        return self._watcher is not None and self._watcher.alive

    def swap(self, policy: Policy) -> None:
        """Put ``policy`` in force for every later call (one reference assignment)."""
        self.current = policy
        self.problem = None
        self._logged = None

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(change)`` after every reload outcome (on the watcher thread, or the
        thread calling :meth:`reload`). Returns a function that unsubscribes."""
        with self._reload_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._reload_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def record_events_to(self, db_path: str | os.PathLike[str]) -> None:
        """Record reload outcomes as ``policy_loaded`` / ``policy_rejected`` events in this
        database (every guard using the file registers its database)."""
        with self._reload_lock:
            self._databases.add(Path(db_path).absolute())

    # -- watching -------------------------------------------------------------------------------

    def start_watching(self) -> None:
        """Start the watcher thread (idempotent; one per file per process)."""
        with self._reload_lock:
            if self._watcher is not None and self._watcher.alive:
                return
            from sentinel.policy.watch import FileWatcher

            self._settled_stamp = _stamp(self.path)
            self._watcher = FileWatcher(self.path, self._on_file_event).start()

    def stop_watching(self) -> None:
        """Stop the watcher thread (it exits within ~50 ms)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _on_file_event(self) -> None:
        # A file written in place, in pieces, can be valid YAML halfway through (cut right after
        # `action: allow`, a rule loses its conditions). Load an in-place edit only once the file
        # has stopped changing for SETTLE_SECONDS. A file renamed into place (a new inode: how
        # editors and ConfigMaps save) was complete before it appeared and loads at once.
        previous = self._settled_stamp
        last = _stamp(self.path)
        renamed = last is not None and previous is not None and last[2] != previous[2]
        need = SETTLE_STEP if renamed else SETTLE_SECONDS
        stable_since = time.monotonic()
        deadline = stable_since + SETTLE_GIVE_UP
        while time.monotonic() < deadline:
            time.sleep(SETTLE_STEP)
            now = _stamp(self.path)
            if now != last:
                renamed = now is not None and last is not None and now[2] != last[2]
                need = SETTLE_STEP if renamed else SETTLE_SECONDS
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= need:
                break
        self._settled_stamp = last
        self.reload()

    # -- reloading ------------------------------------------------------------------------------

    def reload(self) -> PolicyChange | None:
        """Re-read the file now (the watcher calls this; the command center's ``r`` key too).

        Returns what happened, or None when the file holds the policy already in force and
        nothing was wrong before. Never raises for a bad file: the last good policy stays.
        """
        with self._reload_lock:
            change = self._reload_locked()
            subscribers = list(self._subscribers) if change is not None else []
            databases = sorted(self._databases) if change is not None else []
        if change is None:
            return None
        self._report(change, databases)
        for callback in subscribers:
            try:
                callback(change)
            except Exception:
                log.exception("policy change subscriber %r failed", callback)
        return change

    def _reload_locked(self) -> PolicyChange | None:
        now = time.time()
        previous = self.current
        try:
            data = _read_rules_file(self.path)
        except FileNotFoundError:
            return self._reject(
                "deleted",
                None,
                f"{self.path}: rules file deleted; the last good policy "
                f"({previous.version[:12]}) stays in force",
                now,
            )
        except OSError as exc:
            return self._reject(
                "unreadable",
                None,
                f"{self.path}: cannot read rules file ({exc.strerror or exc}); the last good "
                f"policy ({previous.version[:12]}) stays in force",
                now,
            )
        if hashlib.sha256(data).hexdigest() == previous.version:
            if self.problem is None:
                return None  # a touch, or another file in the folder changed
            self.problem = None
            self._logged = None
            log.info("rules file %s is valid again (version %s)", self.path, previous.version[:12])
            return PolicyChange("restored", self.path, previous, previous, None, now)
        try:
            policy = load_policy_bytes(data, self.path)
        except PolicyError as exc:
            return self._reject("invalid", exc.line, str(exc), now)
        self.swap(policy)
        log.info(
            "rules reloaded from %s: version %s -> %s",
            self.path,
            previous.version[:12],
            policy.version[:12],
        )
        return PolicyChange("loaded", self.path, policy, previous, None, now)

    def _reject(
        self,
        kind: Literal["invalid", "deleted", "unreadable"],
        line: int | None,
        message: str,
        now: float,
    ) -> PolicyChange | None:
        if self.problem is not None and self.problem.message == message:
            return None  # the same problem again (another save of the same broken text)
        self.problem = PolicyProblem(kind, str(self.path), line, message, self.current.version, now)
        if self._logged != message:
            self._logged = message
            log.error("rules file rejected, keeping the last good policy: %s", message)
        return PolicyChange("rejected", self.path, self.current, self.current, self.problem, now)

    def _report(self, change: PolicyChange, databases: list[Path]) -> None:
        """Record the change in every registered database (best effort: a reload never fails
        because the audit database is unavailable; the log still says what happened)."""
        if not databases:
            return
        event = policy_event(change)
        for db in databases:
            try:
                from sentinel.guard import _store_for  # the process's one connection per db

                _store_for(db).append_events([dict(event, data=dict(event["data"]))])
            except Exception as exc:
                log.warning("could not record %s in %s: %s", event["kind"], db, exc)


def _read_rules_file(path: Path) -> bytes:
    """Read a rules file for reload: a regular file only, at most one byte over the size cap.

    The path may have been swapped for a symlink to a FIFO (opening it would block the watcher
    forever while it holds the reload lock) or to a device such as /dev/zero (reading it whole
    would exhaust memory), so open without blocking, refuse anything but a regular file, and
    bound the read; the loader reports an oversized file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks: list[bytes] = []
        left = DEFAULT_MAX_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def policy_event(change: PolicyChange) -> dict[str, Any]:
    """The event recorded for a reload outcome (``policy_loaded`` or ``policy_rejected``)."""
    data: dict[str, Any] = {
        "path": str(change.path),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "rules": len(change.policy.rules),
    }
    if change.kind == "rejected" and change.problem is not None:
        problem = change.problem
        data.update(problem=problem.kind, line=problem.line, kept_version=problem.kept_version)
        return {
            "kind": "policy_rejected",
            "ts": change.at,
            "policy_version": change.policy.version,
            "reason": problem.message,
            "data": data,
        }
    if change.kind == "loaded":
        diff = change.diff
        assert diff is not None
        data.update(previous_version=diff.old_version, diff=diff.to_dict())
        reason = f"rules reloaded: {diff.summary()}"
    else:
        data["previous_version"] = change.policy.version
        reason = "rules file valid again"
    return {
        "kind": "policy_loaded",
        "ts": change.at,
        "policy_version": change.policy.version,
        "reason": reason,
        "data": data,
    }


def _restart_watchers_after_fork() -> None:
    # A forked child has no watcher threads: start fresh ones for the sources it inherited.
    for source in list(PolicySource._instances.values()):
        if source._watcher is not None:
            source._watcher = None
            source._reload_lock = threading.Lock()
            try:
                source.start_watching()
            except Exception:
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_watchers_after_fork)

#: Seconds a rules file edited in place must stay unchanged before it is loaded.
SETTLE_SECONDS = 0.5
#: Polling step of that wait (and the whole wait for a file renamed into place).
SETTLE_STEP = 0.05
#: Load anyway after this long (a file that never stops changing is validated as it is).
SETTLE_GIVE_UP = 10.0


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


__all__ = ["POLICY_EVENT_KINDS", "PolicyChange", "PolicyProblem", "PolicySource", "policy_event"]
