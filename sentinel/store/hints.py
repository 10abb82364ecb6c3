"""Wake-up hints: a datagram a decider sends to the waiting process after it commits.

A hint only says "look again"; the waiting process re-reads the database and trusts nothing but
the row. It makes wake-ups sub-millisecond while the watcher polls slowly (low idle CPU). Hints use
Linux abstract unix sockets named after the waiter's liveness lock file, so no file is created and
nothing needs cleaning up. Anyone on the host could send one: the worst it does is cause a re-read.
On systems without abstract sockets, hints are off and the watcher's polling alone wakes callers.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
from collections.abc import Iterable

from sentinel.store.liveness import PARKED

#: Off on systems without abstract unix sockets, or with SENTINEL_WAKE_HINTS=0 (polling only).
ENABLED = sys.platform.startswith("linux") and os.environ.get("SENTINEL_WAKE_HINTS", "1") != "0"

_send_lock = threading.Lock()
_sender: socket.socket | None = None


def address(lock_path: str) -> bytes:
    """The abstract socket address of the process holding ``lock_path``."""
    return b"\0sentinel-hint:" + hashlib.sha256(lock_path.encode("utf-8")).hexdigest()[:40].encode()


def bind(lock_path: str) -> socket.socket | None:
    """A datagram socket receiving hints for this process, or None when unavailable/in use."""
    if not ENABLED:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(address(lock_path))
    except OSError:
        sock.close()
        return None
    return sock


def send(lock_paths: Iterable[str | None], payload: bytes = b"!") -> None:
    """Best effort: tell each waiting process to re-read (never raises, never blocks)."""
    global _sender
    if not ENABLED:
        return
    targets = {p for p in lock_paths if p and p != PARKED}
    if not targets:
        return
    with _send_lock:
        if _sender is None:
            try:
                _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                _sender.setblocking(False)
            except OSError:
                return
        for path in targets:
            try:
                _sender.sendto(payload, address(path))
            except OSError:
                pass  # nobody listening, buffer full…: the watcher's polling covers it
