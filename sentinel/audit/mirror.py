"""The JSONL mirror of the event table (``audit_log=True`` / ``audit_log_dir``).

Every event becomes one line of ``<dir>/YYYY-MM-DD.jsonl``, named by the UTC date of its ``ts``
but never earlier than the file before it, so reading the files in name order gives every event
in ``seq`` order. A line is the event's canonical JSON (the exact text its hash covers) with
``"hash"`` added at the end, so each line is checkable on its own.

The table is the source of truth and the mirror follows it: :meth:`JsonlMirror.catch_up` appends
every event after the last mirrored ``seq`` (found by reading the tail of the newest file). It
runs after each committed batch and when a process starts, under an exclusive ``flock`` on
``<dir>/.sentinel-mirror.lock``, so several processes share one folder and a crash between the
commit and the mirror loses nothing (the next catch-up writes what is missing; a line torn by a
crash mid-write is cut off first).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.store.codec import body_text

LOCK_NAME = ".sentinel-mirror.lock"
FILE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})\.jsonl\Z")
PAGE = 5000
_TAIL_CHUNK = 1 << 16


def line_of(row: tuple[Any, ...]) -> str:
    """The JSONL line of a stored event row (with its newline). A row fresh from the store's
    append carries its canonical body text as a 16th element."""
    body = row[15] if len(row) > 15 else body_text(*row[:14])
    return f'{body[:-1]},"hash":"{row[14]}"}}\n'


def split_line(line: str) -> tuple[str, str] | None:
    """(canonical body, hash) of a mirror line, or None when it does not have that shape."""
    suffix_len = len(',"hash":"') + 64 + 2
    if len(line) < suffix_len + 2 or not line.endswith('"}'):
        return None
    cut = len(line) - suffix_len
    if line[cut : cut + 9] != ',"hash":"':
        return None
    return line[:cut] + "}", line[cut + 9 : -2]


_day_cache: dict[int, str] = {}


def utc_day(ts: float) -> str:
    """``YYYY-MM-DD`` of ``ts`` in UTC."""
    day = int(ts // 86400)
    name = _day_cache.get(day)
    if name is None:
        name = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")
        if len(_day_cache) > 1000:
            _day_cache.clear()
        _day_cache[day] = name
    return name


def mirror_files(directory: Path) -> list[Path]:
    """The mirror's daily files in name (= seq) order."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [directory / n for n in sorted(names) if FILE_RE.match(n)]


class JsonlMirror:
    """Appends the events of one database to daily JSONL files in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory).absolute()
        self.fsync = fsync
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # reported by the first catch_up, which the sink turns into a failure

        self._lock = threading.Lock()
        self.written = 0

    def catch_up(self, store: Any, rows: list[tuple[Any, ...]] | None = None) -> int:
        """Append every event of ``store`` not yet in the files. Returns how many were written.

        ``rows``: stored rows the caller just committed (seq order); used as they are when they
        continue the files exactly, which saves reading them back. Raises OSError when the folder
        cannot be written (removed, read-only, disk full)."""
        with self._lock:
            fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                last_seq, last_day = self._tail()
                n = 0
                if rows and rows[0][0] == last_seq + 1:
                    last_day = self._append(rows, last_day)
                    last_seq = rows[-1][0]
                    n += len(rows)
                while True:
                    rows = store.event_rows(last_seq, PAGE)
                    if not rows:
                        break
                    last_day = self._append(rows, last_day)
                    last_seq = rows[-1][0]
                    n += len(rows)
                    if len(rows) < PAGE:
                        break
                self.written += n
                return n
            finally:
                os.close(fd)  # releases the lock

    def _append(self, rows: list[tuple[Any, ...]], last_day: str) -> str:
        groups: dict[str, list[str]] = {}
        for row in rows:
            day = utc_day(row[1])
            if day < last_day:
                day = last_day  # never go back to an earlier file: files stay in seq order
            last_day = day
            groups.setdefault(day, []).append(line_of(row))
        for day, lines in groups.items():
            fd = os.open(
                self.directory / f"{day}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
            )
            try:
                os.write(fd, "".join(lines).encode("utf-8"))
                if self.fsync:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
        return last_day

    def _tail(self) -> tuple[int, str]:
        """(last mirrored seq, its file's day); cuts off a line torn by a crash mid-write."""
        for path in reversed(mirror_files(self.directory)):
            line = _last_line(path)
            if line is None:
                continue
            try:
                seq = int(json.loads(line)["seq"])
            except (ValueError, KeyError, TypeError):
                raise OSError(
                    f"cannot continue the audit mirror: the last line of {path} is not an event; "
                    "run `sentinel audit verify --jsonl` to see what happened"
                ) from None
            match = FILE_RE.match(path.name)
            assert match is not None
            return seq, match.group(1)
        return 0, ""


def _last_line(path: Path) -> str | None:
    """The last complete line of ``path``; a partial last line (no newline) is truncated away."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return None
        end = size
        buf = b""
        pos = size
        while pos > 0:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            if buf.count(b"\n") >= 2 or (pos == 0 and b"\n" in buf):
                break
        if not buf.endswith(b"\n"):
            cut = buf.rfind(b"\n")
            keep = pos + cut + 1 if cut >= 0 else 0
            fh.truncate(keep)  # torn write from a crash: the table still has the event
            end = keep
            buf = buf[: cut + 1] if cut >= 0 else b""
        if end == 0 or not buf:
            return None
        lines = buf.rstrip(b"\n").rsplit(b"\n", 1)
        return lines[-1].decode("utf-8", errors="replace")
