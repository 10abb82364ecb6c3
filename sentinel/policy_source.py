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
Subscribers get a :class:`PolicyChange` for every outcome.

A viewer (the command center) follows the file with a :class:`PolicyFollower`: the same loading,
settle window, last good policy, widening diff and watcher, but it starts and keeps running when
the file is invalid or missing (a guard refuses to start), and it can be stopped.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from sentinel.errors import PolicyError, SentinelConfigError
from sentinel.policy import Policy, load_policy
from sentinel.policy.diff import PolicyDiff, diff_policies
from sentinel.policy.loader import DEFAULT_MAX_BYTES, load_policy_bytes
from sentinel.policy.widening import Widening, find_widenings, summarize
from sentinel.runtime import store_for
from sentinel.store import liveness

if TYPE_CHECKING:
    from sentinel.store.location import PgLocation

log = logging.getLogger("sentinel.policy")

ProblemKind = Literal["invalid", "deleted", "unreadable", "incomplete"]

#: Event kinds a reload records (for ``store.history(HistoryFilter(kinds=POLICY_EVENT_KINDS))``).
POLICY_EVENT_KINDS = ("policy_loaded", "policy_rejected")


@dataclass(frozen=True)
class PolicyProblem:
    """Why the file on disk is not the policy in force: ``kind`` is ``invalid``, ``deleted``,
    ``unreadable`` or ``incomplete`` (a save still in progress, or a file that keeps changing:
    it cannot be told complete yet); ``line`` is set when the problem has a place in the file."""

    kind: ProblemKind
    file: str
    line: int | None
    message: str  # the full located message: "rules.yaml:6: rule 'x': … (hint: …)"
    kept_version: str  # the version still in force ("" when none was ever loaded)
    at: float
    #: What is wrong, without the file and line (``message`` holds both), for a viewer that
    #: shows the place apart.
    what: str = ""


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
    #: How a ``loaded`` change widens what is allowed (``sentinel.policy.widening``).
    widened: tuple[Widening, ...] = ()

    @property
    def diff(self) -> PolicyDiff | None:
        """Rules added / removed / changed by a ``loaded`` change (None otherwise)."""
        if self.kind != "loaded":
            return None
        return diff_policies(self.previous, self.policy)


Subscriber = Callable[[PolicyChange], None]


@dataclass(frozen=True)
class PolicyState:
    """One consistent reading of a source: the policy in force (None before any good load, only
    for a :class:`PolicyFollower`), why the file on disk is not it, and the last ``loaded``
    change (its diff and widening; kept while later edits are rejected)."""

    policy: Policy | None
    problem: PolicyProblem | None
    last_loaded: PolicyChange | None


class PolicySource:
    """The policy in force for one rules file."""

    _instances: ClassVar[dict[Path, PolicySource]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Raises PolicyError (a SentinelConfigError) when the file is missing or invalid.
        self.current: Policy = load_policy(self.path)
        self.problem: PolicyProblem | None = None
        #: The last reload that put a new policy in force (None until one did).
        self.last_loaded: PolicyChange | None = None
        self._subscribers: list[Subscriber] = []
        self._databases: set[Path | PgLocation] = set()
        self._reload_lock = threading.Lock()
        self._watcher: Any = None
        self._settled_stamp: tuple[int, int, int, str | None] | None = None
        self._settle = SETTLE_SECONDS
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

    def state(self) -> PolicyState:
        """The policy in force, the problem and the last loaded change, read together (a
        reload on another thread changes them under one lock)."""
        with self._reload_lock:
            return PolicyState(self.current, self.problem, self.last_loaded)

    def save_in_progress(self) -> bool:
        """True when the watcher sees the file modified in place and not closed yet (a save in
        progress: nothing on disk may be trusted until it completes). Always False without
        close events (no watcher, or no inotify)."""
        watcher = self._watcher
        return watcher is not None and watcher.state()[1]

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

    def record_events_to(self, db_path: str | os.PathLike[str] | PgLocation) -> None:
        """Record reload outcomes as ``policy_loaded`` / ``policy_rejected`` events in this
        database (every guard using the file registers its database: a path or a location)."""
        from sentinel.runtime import location_of

        with self._reload_lock:
            self._databases.add(location_of(db_path))

    # -- watching -------------------------------------------------------------------------------

    def start_watching(self) -> None:
        """Start the watcher thread (idempotent; one per file per process)."""
        with self._reload_lock:
            if self._watcher is not None and self._watcher.alive:
                return
            from sentinel.policy.watch import FileWatcher

            self._settle = settle_seconds()
            self._settled_stamp = _stamp(self.path)
            self._watcher = FileWatcher(self.path, self._on_file_event).start()

    def stop_watching(self) -> None:
        """Stop the watcher thread (it exits within ~50 ms)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _on_file_event(self) -> None:
        """Wait until the file is complete, then reload it (on the watcher thread).

        A file written in place, in pieces, can be valid YAML halfway through (cut right after
        `action: allow`, a rule loses its conditions), so the content alone never says it is
        complete. It is complete when, all at once: no writer has it open with unsaved changes
        (inotify: modified and not closed yet; the name moved to a new file counts as closed),
        its size, mtime, inode, content hash and event count stayed the same for the settle
        window (a file renamed into place was complete before it appeared: one step), and two
        reads give the same bytes and parse to the same result. Until then the last good policy
        stays in force; past the settle window the wait is recorded as an ``incomplete``
        problem, and a file that never becomes complete is never loaded.
        """
        watcher = self._watcher
        if watcher is None:
            return
        settle = self._settle if watcher.knows_close else max(self._settle, BLIND_SETTLE_SECONDS)
        previous = self._settled_stamp
        gen, writing = watcher.state()
        last = (_stamp(self.path), gen)
        if not writing and previous is not None and last[0] == previous:
            self.reload()  # another file in the folder changed (or a touch): nothing to wait for
            return
        renamed = _inode(last[0]) != _inode(previous)
        started = stable_since = time.monotonic()
        told = False
        while not watcher.stopping:
            time.sleep(SETTLE_STEP)
            gen, writing = watcher.state()
            now = (_stamp(self.path), gen)
            t = time.monotonic()
            if now != last:
                renamed = _inode(now[0]) != _inode(last[0])
                last, stable_since = now, t
                continue
            need = SETTLE_STEP if renamed else settle
            if writing or t - stable_since < need:
                if not told and t - started >= (settle if writing else SETTLE_TELL):
                    told = True
                    self._tell_incomplete(writing)
                continue
            settled, _change = self._reload(last)
            if settled:
                self._settled_stamp = last[0]
                return
            last, stable_since = (_stamp(self.path), watcher.state()[0]), time.monotonic()

    def _tell_incomplete(self, writing: bool) -> None:
        why = (
            "a save is in progress (the file was changed in place and is not closed yet)"
            if writing
            else "the file keeps changing (it has not stayed the same for the settle window)"
        )
        with self._reload_lock:
            change = self._reject(
                "incomplete",
                None,
                f"{why}; the last good policy ({self.current.version[:12]}) stays in force "
                "until the file is complete",
                time.time(),
            )
            subscribers = list(self._subscribers) if change is not None else []
            databases = sorted(self._databases, key=str) if change is not None else []
        if change is not None:
            self._publish(change, subscribers, databases)

    # -- reloading ------------------------------------------------------------------------------

    def reload(self) -> PolicyChange | None:
        """Re-read the file now (the watcher calls this; the command center's ``r`` key too).

        Returns what happened, or None when the file holds the policy already in force and
        nothing was wrong before. Never raises for a bad file: the last good policy stays. A
        file that a writer still has open with unsaved changes is not loaded (an
        ``incomplete`` problem), nor one that reads differently twice in a row.
        """
        return self._reload(None)[1]

    def _reload(self, expect: _Stamp | None) -> tuple[bool, PolicyChange | None]:
        """``(settled, change)``: ``settled`` False when the file moved under the reload (it no
        longer matches ``expect``, the watcher's settled stamp, or two reads differ)."""
        with self._reload_lock:
            result = self._reload_locked(expect)
            if isinstance(result, _Unstable):
                return False, None
            change = result
            subscribers = list(self._subscribers) if change is not None else []
            databases = sorted(self._databases, key=str) if change is not None else []
        if change is not None:
            self._publish(change, subscribers, databases)
        return True, change

    def _publish(
        self, change: PolicyChange, subscribers: list[Subscriber], databases: list[Path | PgLocation]
    ) -> None:
        self._report(change, databases)
        for callback in subscribers:
            try:
                callback(change)
            except Exception:
                log.exception("policy change subscriber %r failed", callback)

    def _reload_locked(self, expect: _Stamp | None) -> PolicyChange | None | _Unstable:
        now = time.time()
        previous = self.current
        watcher = self._watcher
        try:
            data = _read_rules_file(self.path)
            again = _read_rules_file(self.path)  # the same bytes twice, or it is still moving
        except FileNotFoundError:
            return self._reject(
                "deleted",
                None,
                f"rules file deleted; the last good policy ({previous.version[:12]}) stays in "
                "force",
                now,
            )
        except OSError as exc:
            return self._reject(
                "unreadable",
                None,
                f"cannot read rules file ({exc.strerror or exc}); the last good policy "
                f"({previous.version[:12]}) stays in force",
                now,
            )
        digest = hashlib.sha256(data).hexdigest()
        if again != data:
            return _UNSTABLE
        if expect is not None and (expect[0] is None or expect[0][3] != digest):
            return _UNSTABLE
        if watcher is not None:
            gen, writing = watcher.state()
            if expect is not None and gen != expect[1]:
                return _UNSTABLE
            if writing:
                return self._reject(
                    "incomplete",
                    None,
                    "a save is in progress (the file was changed in place and is not closed "
                    f"yet); the last good policy ({previous.version[:12]}) stays in force until "
                    "the file is complete",
                    now,
                )
        if digest == previous.version:
            if self.problem is None:
                return None  # a touch, or another file in the folder changed
            self.problem = None
            self._logged = None
            log.info("rules file %s is valid again (version %s)", self.path, previous.version[:12])
            return PolicyChange("restored", self.path, previous, previous, None, now)
        try:
            policy = load_policy_bytes(data, self.path)
        except PolicyError as exc:
            try:
                load_policy_bytes(again, self.path)
            except PolicyError as exc2:
                if str(exc2) != str(exc):
                    return _UNSTABLE
            else:
                return _UNSTABLE
            return self._reject("invalid", exc.line, _what(exc), now, str(exc))
        try:
            second = load_policy_bytes(again, self.path)
        except PolicyError:
            return _UNSTABLE
        if second.model != policy.model:
            return _UNSTABLE  # parsing is deterministic; a difference means something is wrong
        widened = tuple(find_widenings(previous, policy))
        self.swap(policy)
        change = PolicyChange("loaded", self.path, policy, previous, None, now, widened)
        self.last_loaded = change
        log.info(
            "rules reloaded from %s: version %s -> %s",
            self.path,
            previous.version[:12],
            policy.version[:12],
        )
        if widened:
            log.warning(
                "rules edit in %s widens what is allowed: %s", self.path, summarize(list(widened))
            )
        return change

    def _reject(
        self,
        kind: ProblemKind,
        line: int | None,
        what: str,
        now: float,
        message: str | None = None,
    ) -> PolicyChange | None:
        """Record a problem (``message`` defaults to ``"<path>: <what>"``)."""
        if message is None:
            message = f"{self.path}: {what}"
        if self.problem is not None and self.problem.message == message:
            return None  # the same problem again (another save of the same broken text)
        self.problem = PolicyProblem(
            kind, str(self.path), line, message, self.current.version, now, what
        )
        if self._logged != message:
            self._logged = message
            log.error("rules file rejected, keeping the last good policy: %s", message)
        return PolicyChange("rejected", self.path, self.current, self.current, self.problem, now)

    def _report(self, change: PolicyChange, databases: list[Path | PgLocation]) -> None:
        """Record the change in every registered database (best effort: a reload never fails
        because the audit database is unavailable; the log still says what happened)."""
        if not databases:
            return
        event = policy_event(change)
        for db in databases:
            try:

                store_for(db).append_events([dict(event, data=dict(event["data"]))])
            except Exception as exc:
                log.warning("could not record %s in %s: %s", event["kind"], db, exc)


class PolicyFollower:
    """Follows one rules file for a viewer that must run whatever the file holds (the command
    center's Rules view): the library's loading, settle window, last good policy, widening diff
    and watcher, through a private :class:`PolicySource`.

    Unlike a guard, it starts when the file is invalid or missing: until the file first loads,
    :meth:`state` has no policy and its problem says why, and (with ``watch``) a watcher on the
    folder tries again after every change, never while a writer has the file open with unsaved
    changes. Once loaded, the source's own watcher takes over. The source is private (not
    :meth:`PolicySource.for_path`'s shared one) so the viewer keeps the path as given (what it
    shows), records no events (the agents' guards do) and :meth:`close` can stop its watcher.

    Subscribers are called with no argument after anything changed (on a watcher thread, or the
    thread calling :meth:`reload`); they read :meth:`state`.
    """

    def __init__(self, path: str | os.PathLike[str], *, watch: bool = True) -> None:
        self.path = Path(path)
        self.watch = watch
        self.source: PolicySource | None = None
        self._problem: PolicyProblem | None = None  # while no source exists
        self._subscribers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._waiting: Any = None  # the folder watcher until the file first loads
        self._closed = False
        self._started = False

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after every change of :meth:`state`. Returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def state(self) -> PolicyState:
        """The policy in force (None before the file ever loaded), the problem, the last
        loaded change."""
        source = self.source
        if source is None:
            return PolicyState(None, self._problem, None)
        return source.state()

    def start(self) -> PolicyState:
        """Load the file (I/O: call it off any UI thread) and start watching when ``watch``.
        Idempotent; an invalid or missing file is a problem in the state, never raised."""
        with self._lock:
            first = not self._started
            self._started = True
        if first:
            self._open()
        return self.state()

    def reload(self) -> PolicyState:
        """Read the file again now (a manual reload) and return the state."""
        if not self._started:
            return self.start()
        source = self.source
        if source is not None:
            source.reload()  # its subscribers (this follower) are told of any change
        else:
            self._open()
        return self.state()

    def close(self) -> None:
        """Stop watching and tell no one any more (the viewer is gone)."""
        with self._lock:
            self._closed = True
            self._subscribers.clear()
            waiting, self._waiting = self._waiting, None
            source = self.source
        if waiting is not None:
            waiting.stop()
        if source is not None:
            source.stop_watching()

    def _open(self) -> None:
        """Try to load the file into a new source (no source yet)."""
        with self._lock:
            if self.source is not None or self._closed:
                return
            waiting = self._waiting
            problem: PolicyProblem | None = None
            if waiting is not None and waiting.state()[1]:
                problem = self._problem_of(
                    "incomplete",
                    None,
                    "a save is in progress (the file was changed in place and is not closed "
                    "yet); it is loaded once the file is complete",
                )
            else:
                try:
                    source = PolicySource(self.path)
                except PolicyError as exc:
                    problem = self._problem_of("invalid", exc.line, _what(exc), str(exc))
                else:
                    source.subscribe(lambda _change: self._changed())
                    self.source = source
                    self._problem = None
            if self.source is not None:
                self._waiting = None
                if self.watch:
                    self.source.start_watching()
            elif self.watch and waiting is None:
                from sentinel.policy.watch import FileWatcher

                self._waiting = FileWatcher(self.path, self._open_when_settled).start()
            if problem is not None:
                if self._problem is not None and self._problem.message == problem.message:
                    return  # the same problem again: nothing to tell
                self._problem = problem
        if waiting is not None and self.source is not None:
            waiting.stop()  # from its own thread too: stop() only asks it to end
        self._changed()

    def _open_when_settled(self) -> None:
        """The folder changed (waiting watcher's thread): once the file has stayed the same,
        and closed, for the settle window, try to load it; a save in progress is a problem."""
        watcher = self._waiting
        if watcher is None:
            return
        settle = settle_seconds() if watcher.knows_close else max(
            settle_seconds(), BLIND_SETTLE_SECONDS
        )
        last = (_stamp(self.path), watcher.state())
        since = time.monotonic()
        while not watcher.stopping:
            if last[1][1]:
                break  # writing: _open says so; the writer's close wakes this watcher again
            time.sleep(SETTLE_STEP)
            now = (_stamp(self.path), watcher.state())
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= settle:
                break
        if not watcher.stopping:
            self._open()

    def _problem_of(
        self, kind: ProblemKind, line: int | None, what: str, message: str | None = None
    ) -> PolicyProblem:
        message = message if message is not None else f"{self.path}: {what}"
        return PolicyProblem(kind, str(self.path), line, message, "", time.time(), what)

    def _changed(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback()
            except Exception:
                log.exception("policy follower subscriber %r failed", callback)


def _what(exc: PolicyError) -> str:
    """An error's text without its file and line (the hint kept)."""
    return f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message


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
        "host": liveness.hostname(),  # $SENTINEL_HOST, as requests record it
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
        data["widened"] = [w.to_dict() for w in change.widened]
        reason = f"rules reloaded: {diff.summary()}"
        if change.widened:  # first, so a shortened line (`sentinel history`) still shows it
            reason = f"widened by this edit: {summarize(list(change.widened))}; {reason}"
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
            source._watcher.abandon()
            source._watcher = None
            source._reload_lock = threading.Lock()
            try:
                source.start_watching()
            except Exception:
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_watchers_after_fork)

#: Seconds a rules file edited in place must stay the same (and closed) before it is loaded;
#: ``SENTINEL_RELOAD_SETTLE`` overrides it.
SETTLE_SECONDS = 0.5
#: Without close events (no inotify: macOS, BSD, polling) the settle window is at least this.
BLIND_SETTLE_SECONDS = 3.0
#: Polling step of that wait (and the whole wait for a file renamed into place).
SETTLE_STEP = 0.05
#: A file that keeps changing this long is reported as ``incomplete`` (and still not loaded).
SETTLE_TELL = 10.0
#: Longest settle window accepted from ``SENTINEL_RELOAD_SETTLE``.
SETTLE_MAX = 60.0

_Stamp = tuple["tuple[int, int, int, str | None] | None", int]


class _Unstable:
    """The file moved under a reload (returned instead of a change; nothing happened)."""


_UNSTABLE = _Unstable()


def settle_seconds() -> float:
    """The settle window: ``SENTINEL_RELOAD_SETTLE`` (seconds) or :data:`SETTLE_SECONDS`.

    Raises :class:`~sentinel.errors.SentinelConfigError` naming the variable for a value that
    is not a number between 0.05 and 60.
    """
    raw = os.environ.get("SENTINEL_RELOAD_SETTLE", "").strip()
    if not raw:
        return SETTLE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (SETTLE_STEP <= value <= SETTLE_MAX):
        raise SentinelConfigError(
            f"SENTINEL_RELOAD_SETTLE={raw!r}: the settle window must be a number of seconds "
            f"between {SETTLE_STEP} and {SETTLE_MAX:g} (default {SETTLE_SECONDS})"
        )
    return value


def _stamp(path: Path) -> tuple[int, int, int, str | None] | None:
    """Size, mtime, inode and content hash (None when the file cannot be stat'ed)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        digest: str | None = hashlib.sha256(_read_rules_file(path)).hexdigest()
    except OSError:
        digest = None
    return (st.st_mtime_ns, st.st_size, st.st_ino, digest)


def _inode(stamp: tuple[int, int, int, str | None] | None) -> int | None:
    return stamp[2] if stamp is not None else None


__all__ = [
    "POLICY_EVENT_KINDS",
    "PolicyChange",
    "PolicyFollower",
    "PolicyProblem",
    "PolicySource",
    "PolicyState",
    "policy_event",
]
