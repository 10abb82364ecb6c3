"""Turning sqlite3 errors into StoreError messages that name the problem and the path."""

from __future__ import annotations

import sqlite3

from sentinel.errors import StoreError


def _read_only_place(path: str) -> bool:
    """True when the database's folder exists but cannot be written (read-only mount, mode)."""
    import os

    folder = os.path.dirname(os.path.abspath(path)) or "."
    return os.path.isdir(folder) and not os.access(folder, os.W_OK)


def describe(exc: BaseException, path: str, busy_timeout: float) -> StoreError:
    """A :class:`StoreError` for a sqlite3 / OS error on database ``path``."""
    text = str(exc)
    low = text.lower()
    code = getattr(exc, "sqlite_errorname", None)
    if "locked" in low or "busy" in low:
        msg = (
            f"database {path} is locked by another process: still busy after waiting {busy_timeout:g}s "
            f"({code or text})"
        )
    elif "readonly" in low or "read-only" in low or "read only" in low:
        msg = f"database {path} is read-only: cannot record anything (check the file and folder permissions)"
    elif "disk is full" in low or "full" in low and "database" in low:
        msg = f"disk full: cannot write database {path} ({text})"
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        msg = f"database {path} is corrupted or not a Sentinel database ({text})"
    elif "unable to open" in low and _read_only_place(path):
        msg = f"database {path} is on a read-only file system or folder: cannot record anything"
    elif "unable to open" in low:
        msg = f"cannot open database {path} ({text}; check that the folder exists and is writable)"
    elif "no such table" in low:
        msg = f"database {path} is not a Sentinel database ({text})"
    elif isinstance(exc, sqlite3.Error):
        msg = f"database {path}: {text}" + (f" ({code})" if code else "")
    else:
        msg = f"database {path}: {exc.__class__.__name__}: {text}"
    err = StoreError(msg)
    err.__cause__ = exc
    return err
