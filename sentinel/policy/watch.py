"""A file watcher that costs nothing while idle: one daemon thread per watched rules file.

It watches the file's *folder* (editors save by writing a new file and renaming it over the old
one, and Kubernetes ConfigMaps swap a symlink, so watching the file itself would miss edits) with
:mod:`watchfiles` (inotify / FSEvents / kqueue through Rust). The thread sleeps in the kernel; the
Rust loop wakes every ``step`` ms only to check the stop flag. If native watching fails (no
inotify instances left, an unsupported filesystem) it falls back to polling the folder.

The callback decides whether the file really changed (content hash), so spurious folder events
(another file saved next to it) cost one small read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("sentinel.policy")

#: Milliseconds of quiet before a burst of file events is delivered (editors write in steps).
DEBOUNCE_MS = 50
#: How often (ms) the native loop checks its stop flag; also the delivery granularity.
STEP_MS = 50
#: Polling interval when native watching is unavailable.
POLL_MS = 250


class FileWatcher:
    """Calls ``on_change()`` (on the watcher thread) after the folder of ``path`` changes."""

    def __init__(self, path: Path, on_change: Callable[[], None], *, name: str = "") -> None:
        self.path = path
        self.folder = path.parent
        self.on_change = on_change
        self._stop = threading.Event()
        self._polling = False
        self.thread = threading.Thread(
            target=self._run, name=name or f"sentinel-rules-watch:{path.name}", daemon=True
        )
        self.started = threading.Event()  # set once the native watch is armed

    def start(self) -> FileWatcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to finish (it notices within ``STEP_MS``); does not wait."""
        self._stop.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and not self._stop.is_set()

    def _run(self) -> None:
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

    def _deliver(self) -> None:
        try:
            self.on_change()
        except Exception:  # a broken callback must not end the watch
            log.exception("rules reload callback failed for %s", self.path)
