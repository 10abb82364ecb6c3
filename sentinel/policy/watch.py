"""A file watcher that costs nothing while idle: one daemon thread per watched rules file.

It watches the file's *folder* (editors save by writing a new file and renaming it over the old
one, and Kubernetes ConfigMaps swap a symlink, so watching the file itself would miss edits).

On Linux it reads inotify directly, because only inotify says when a writer has *closed* the
file (``IN_CLOSE_WRITE``): a file modified in place and not closed yet is a save in progress,
whatever its content looks like, and :attr:`FileWatcher.writing` stays True until it is closed
(or the name points to a new file: a rename or a delete). :mod:`watchfiles` drops close events,
so elsewhere (macOS, BSD) and when inotify is unavailable it is the fallback (FSEvents / kqueue
through Rust, or polling); there :attr:`FileWatcher.knows_close` is False and the reloader has
only the settle window to go by.

The callback decides whether the file really changed (content hash), so spurious folder events
(another file saved next to it) cost one small read.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from sentinel.fdwait import readable

log = logging.getLogger("sentinel.policy")

#: Milliseconds of quiet before a burst of file events is delivered (editors write in steps).
DEBOUNCE_MS = 50
#: How often (ms) the watchfiles fallback checks its stop flag (inotify sleeps until woken).
STEP_MS = 50
#: Polling interval when native watching is unavailable.
POLL_MS = 250

# inotify(7)
_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
    | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF
)  # fmt: skip
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


class _Gone(Exception):
    """The watched folder was deleted or moved (the watch must be set up again)."""


class _Inotify:
    """The folder's inotify descriptor and what it says about one name in it."""

    def __init__(self, folder: Path, name: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._libc = libc
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        wd = libc.inotify_add_watch(fd, os.fsencode(folder), _MASK)
        if wd < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {folder}: {os.strerror(err)}")
        self.fd = fd
        self.name = os.fsencode(name)
        self.generation = 0  # events seen for the file's name
        self.writing = False  # modified in place and not closed since

    def read(self) -> bool:
        """Consume every pending event (never blocks); True when there was any."""
        got = False
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return got
            if not buf:
                return got
            got = True
            offset = 0
            while offset + _HEADER.size <= len(buf):
                _wd, mask, _cookie, length = _HEADER.unpack_from(buf, offset)
                offset += _HEADER.size
                name = buf[offset : offset + length].rstrip(b"\0")
                offset += length
                self._event(mask, name)

    def _event(self, mask: int, name: bytes) -> None:
        if mask & (_IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED):
            raise _Gone()
        if mask & _IN_Q_OVERFLOW:
            # Events were lost: whether a write is open is unknown, so keep what we knew and
            # make the reloader start its settle window again.
            self.generation += 1
            return
        if name != self.name:
            return
        self.generation += 1
        if mask & _IN_MODIFY:
            self.writing = True
        elif mask & _IN_CLOSE_WRITE:
            self.writing = False
        elif mask & (_IN_MOVED_TO | _IN_MOVED_FROM | _IN_DELETE):
            # The name now points to another file (or none): an open writer writes elsewhere.
            self.writing = False

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


class FileWatcher:
    """Calls ``on_change()`` (on the watcher thread) after the folder of ``path`` changes."""

    def __init__(self, path: Path, on_change: Callable[[], None], *, name: str = "") -> None:
        self.path = path
        self.folder = path.parent
        self.on_change = on_change
        self._stop = threading.Event()
        self._polling = False
        self._native: _Inotify | None = None
        self._lock = threading.RLock()  # the inotify fd is read by this thread and reload()
        self.thread = threading.Thread(
            target=self._run, name=name or f"sentinel-rules-watch:{path.name}", daemon=True
        )
        self.started = threading.Event()  # set once the watch is armed
        self._wake_r, self._wake_w = os.pipe()  # stop() wakes the inotify loop at once
        os.set_blocking(self._wake_r, False)

    def start(self) -> FileWatcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to finish (at once with inotify, else within ``STEP_MS``); does not
        wait."""
        self._stop.set()
        with self._lock:
            wake, self._wake_w = self._wake_w, -1
        if wake >= 0:  # once: a second write could hit a reused descriptor number
            try:
                os.write(wake, b"x")
            except OSError:
                pass  # the thread already ended and closed its end: nothing left to wake
            finally:
                os.close(wake)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and not self._stop.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def knows_close(self) -> bool:
        """True when the watch sees writers close the file (inotify): :meth:`state` then says
        whether a save is still in progress."""
        return self._native is not None

    def state(self) -> tuple[int, bool]:
        """Read pending events now; ``(generation, writing)``: how many events named the file
        so far, and whether it was modified in place and not closed since. ``(0, False)``
        without inotify (:attr:`knows_close` False)."""
        with self._lock:
            native = self._native
            if native is None:
                return 0, False
            try:
                native.read()
            except (_Gone, OSError):
                return native.generation, native.writing
            return native.generation, native.writing

    def _run(self) -> None:
        try:
            if sys.platform.startswith("linux"):
                self._run_inotify()
            if not self._stop.is_set():
                self._run_watchfiles()
        finally:
            os.close(self._wake_r)  # the write end is closed by stop()

    def _run_inotify(self) -> None:
        """Returns when stopped, or to fall back to watchfiles when inotify is unavailable."""
        while not self._stop.is_set():
            try:
                native = _Inotify(self.folder, self.path.name)
            except (OSError, AttributeError) as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
                    self.started.set()
                    self._deliver()  # the folder is gone: reported as a deleted file
                    self._stop.wait(1.0)
                    continue
                log.warning("inotify unavailable for %s (%s); using watchfiles", self.folder, exc)
                return
            with self._lock:
                self._native = native
            try:
                self.started.set()
                self._deliver()  # the file may have changed between the initial load and now
                self._loop(native)
            except _Gone:
                self._deliver()
                self._stop.wait(0.2)
            finally:
                with self._lock:
                    self._native = None
                    native.close()

    def _loop(self, native: _Inotify) -> None:
        # Sleeps in the kernel until the folder changes or stop() writes to the wake pipe: no
        # periodic wake-ups while idle.
        while not self._stop.is_set():
            ready = readable([native.fd, self._wake_r], None)
            if self._stop.is_set():
                return
            if native.fd not in ready:
                continue
            with self._lock:
                native.read()
            # Debounce: deliver once the burst has been quiet for DEBOUNCE_MS.
            while not self._stop.is_set():
                more = readable([native.fd], DEBOUNCE_MS / 1000)
                if not more:
                    break
                with self._lock:
                    native.read()
            if not self._stop.is_set():
                self._deliver()

    def _run_watchfiles(self) -> None:
        from watchfiles._rust_notify import RustNotify  # what watchfiles.watch() drives

        while not self._stop.is_set():
            try:
                with RustNotify(
                    [str(self.folder)], False, self._polling, POLL_MS, False, True
                ) as notify:
                    # Armed: re-check once, in case the file changed between the initial load
                    # (or a failure) and now.
                    self.started.set()
                    self._deliver()
                    while not self._stop.is_set():
                        # Blocks in Rust without the GIL; wakes every STEP_MS to check the flag.
                        raw = notify.watch(DEBOUNCE_MS, STEP_MS, 3_600_000, self._stop)
                        if raw == "stop":
                            return
                        if isinstance(raw, set) and raw:
                            self._deliver()
            except Exception as exc:  # the folder vanished, inotify exhausted, …
                if self._stop.is_set():
                    return
                if not self._polling:
                    log.warning(
                        "watching %s natively failed (%s); polling instead", self.folder, exc
                    )
                self._polling = True
                self.started.set()
                self._deliver()  # the file may have changed while we were not looking
                self._stop.wait(1.0)

    def abandon(self) -> None:
        """Forget the watch without its thread (a forked child): close the descriptor."""
        self._stop.set()
        native, self._native = self._native, None
        if native is not None:
            native.close()

    def _deliver(self) -> None:
        try:
            self.on_change()
        except Exception:  # a broken callback must not end the watch
            log.exception("rules reload callback failed for %s", self.path)
