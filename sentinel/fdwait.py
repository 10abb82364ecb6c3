"""Waiting for file descriptors to become readable, with no limit on the descriptor number.

``select.select`` refuses descriptors at or above ``FD_SETSIZE`` (1024): a long-lived agent or a
command center with many open files would see its rules watcher, decision watcher or terminal
prompt fail. ``poll`` has no such limit; ``select`` is kept only where ``poll`` does not exist.
"""

from __future__ import annotations

import select
from collections.abc import Iterable
from typing import Protocol


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def readable(fds: Iterable[int | _HasFileno], timeout: float | None) -> set[int]:
    """The descriptors among ``fds`` that are readable (or closed / in error) within ``timeout``.

    ``timeout`` is in seconds; None waits without limit. Raises OSError or ValueError for a
    descriptor that is not open, like ``select`` does.
    """
    numbers = [fd if isinstance(fd, int) else fd.fileno() for fd in fds]
    if any(n < 0 for n in numbers):
        raise ValueError("file descriptor cannot be a negative integer")
    if not hasattr(select, "poll"):  # Windows
        ready, _, _ = select.select(numbers, [], [], timeout)
        return set(ready)
    poller = select.poll()
    for n in numbers:
        poller.register(n, select.POLLIN | select.POLLPRI)
    millis = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    events = poller.poll(millis)
    closed = [n for n, mask in events if mask & select.POLLNVAL]
    if closed:
        raise ValueError(f"file descriptor {closed[0]} is not open")
    return {n for n, _ in events}
