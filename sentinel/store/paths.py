"""Where the database lives, and creating it safely before SQLite touches it."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from sentinel.errors import StoreError


class DatabaseValueError(StoreError, ValueError):
    """A database value (``SENTINEL_DB``, ``--db``, ``db_path``) that is not a usable path."""


#: Mode of the folder holding the database (owner and group only).
DIR_MODE = 0o770
#: Mode of the database file; SQLite copies it to ``-wal``/``-shm``.
FILE_MODE = 0o660

#: File-system types on which SQLite's WAL locking (shared memory, POSIX locks) is unsafe.
_UNSAFE_FS = (
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "smb3",
    "afs",
    "9p",
    "fuse.sshfs",
    "ceph",
    "glusterfs",
)


#: What a database value may be; named in every rejection.
DB_ACCEPTED = "a file path (e.g. ./.sentinel/sentinel.db) or sqlite:///absolute/path.db"

#: URL schemes of PostgreSQL: a SQLite-only parse names them (sentinel.store.location takes them).
_POSTGRES = ("postgresql", "postgres")

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
#: ``postgresql:host/db``, ``mysql:x``: a scheme of two or more characters and a colon not
#: followed by a slash is a URL without slashes, not a file name.
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:(?![\\/])")
_QUERY_PASSWORD = re.compile(r"(?i)((?:^|[?&])password=)[^&#]*")


def mask_password(text: str) -> str:
    """``text`` (a URL, or anything that may be one) with every password replaced by ``***``:
    the ``user:password@`` part and a ``password=`` query parameter.

    Errs on the side of hiding: the password runs to the *last* ``@`` (an unescaped ``@`` or
    ``/`` in a password never leaks a piece of it)."""
    match = _URL.match(text)
    if match:
        rest = text[match.end() :]
        colon = rest.find(":")
        at = rest.rfind("@")
        if colon != -1 and at > colon and not any(c in rest[:colon] for c in "/?#@"):
            text = text[: match.end()] + rest[: colon + 1] + "***" + rest[at:]
    return _QUERY_PASSWORD.sub(r"\1***", text)


_masked = mask_password


def parse_sqlite_value(
    value: str | os.PathLike[str], *, source: str = "database", accepted: str = DB_ACCEPTED
) -> Path:
    """The SQLite file path that ``value`` names (a plain path or ``sqlite:///path``), or
    :class:`DatabaseValueError` naming ``source`` and what is ``accepted``.

    Any URL of another scheme (``mysql://``, ``https://``, ``postgresql://`` too: see
    :func:`sentinel.store.location.parse_location`) or a ``name:`` value is refused *before*
    anything is created, so a mistyped value never becomes a folder named after a connection
    string.
    """
    text = os.fspath(value)
    if not text.strip():
        raise DatabaseValueError(f"{source} is empty; expected {accepted}")
    match = _URL.match(text)
    if match:
        scheme = match.group(1).lower()
        base = scheme.split("+", 1)[0]
        if base == "sqlite":
            rest = text[match.end() :]
            if not rest.startswith("/") or not rest.strip("/"):
                raise DatabaseValueError(
                    f"{source} {_masked(text)!r}: sqlite URLs need an absolute path "
                    f"(sqlite:///path/to/file.db); expected {accepted}"
                )
            return Path("/" + rest.lstrip("/"))
        if base in _POSTGRES:
            raise DatabaseValueError(
                f"{source} {_masked(text)!r}: a PostgreSQL URL where a SQLite database file is "
                f"needed; expected {accepted}"
            )
        raise DatabaseValueError(
            f"{source} {_masked(text)!r}: {scheme}:// is not a supported database; "
            f"expected {accepted}"
        )
    if _URL_LIKE.match(text):
        raise DatabaseValueError(
            f"{source} {_masked(text)!r} looks like a URL, not a path; expected {accepted}"
        )
    return Path(text).expanduser()


def parse_db_value(value: str | os.PathLike[str], *, source: str = "database") -> Path:
    """The SQLite file path that ``value`` names (see :func:`parse_sqlite_value`): for the
    places that need a file (the SQLite :class:`~sentinel.store.sync.Store`, the demo). Every
    place a user names *the* database parses it with
    :func:`sentinel.store.location.parse_location`, which also takes ``postgresql://``."""
    return parse_sqlite_value(value, source=source)


def default_db_path() -> Path:
    """``$SENTINEL_DB``, else ``$SENTINEL_HOME/sentinel.db``, else ``./.sentinel/sentinel.db``
    (a SQLite file: :func:`sentinel.store.location.default_location` also takes a URL)."""
    explicit = os.environ.get("SENTINEL_DB")
    if explicit:
        return parse_db_value(explicit, source="SENTINEL_DB")
    home = os.environ.get("SENTINEL_HOME")
    if home:
        return Path(home).expanduser() / "sentinel.db"
    return Path.cwd() / ".sentinel" / "sentinel.db"


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The absolute database path for ``path`` (``None`` = :func:`default_db_path`)."""
    if path is None:
        return Path(os.path.abspath(default_db_path()))
    return Path(os.path.abspath(parse_db_value(path)))


def filesystem_type(path: Path) -> str | None:
    """The file-system type of the mount holding ``path`` (Linux ``/proc/self/mounts``), or None."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return None
    target = os.path.realpath(path)
    best, fstype = "", None
    for fields in mounts:
        if len(fields) < 3:
            continue
        mnt = fields[1].replace("\\040", " ")
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, fields[2]
    return fstype


def _mkdir(folder: Path) -> None:
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, mode=DIR_MODE)
    except FileExistsError:
        if not folder.is_dir():
            raise StoreError(
                f"cannot create database folder {folder}: a file is in the way"
            ) from None
        return
    except OSError as exc:
        raise StoreError(f"cannot create database folder {folder}: {exc.strerror or exc}") from exc
    # mkdir's mode is filtered by the umask; set it exactly (owner + group only).
    os.chmod(folder, DIR_MODE)


def prepare(path: Path, *, create: bool) -> bool:
    """Check ``path`` is usable and, with ``create``, make its folder and an empty file.

    Returns True when the database file was created now. Raises :class:`StoreError` for a path that
    is a directory, on a network file system, or missing when ``create`` is False.
    """
    if path.is_dir():
        raise StoreError(
            f"database path {path} is a directory; pass the path of a file such as {path / 'sentinel.db'}"
        )
    folder = path.parent
    if not path.exists():
        if not create:
            raise StoreError(f"no Sentinel database at {path} — set SENTINEL_HOME or pass --db")
        _mkdir(folder)
    fstype = filesystem_type(folder)
    if fstype is not None and (fstype in _UNSAFE_FS or fstype.startswith("nfs")):
        raise StoreError(
            f"database path {path} is on a {fstype} file system; SQLite's WAL locking is unsafe there "
            "(use a local disk)"
        )
    if path.exists():
        return False
    # Create the file ourselves with owner/group-only permissions, before SQLite opens it, so the
    # -wal and -shm files (which copy its mode) never become world-readable.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise StoreError(
                f"cannot create database {path}: {exc.strerror} (read-only location?)"
            ) from exc
        raise StoreError(f"cannot create database {path}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def live_dir(db_path: Path) -> Path:
    """Folder of the per-process liveness lock files (``<db folder>/live``)."""
    return db_path.parent / "live"


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the database file, or None when it does not exist. A change means the
    file was deleted or replaced under us: connections still open write to the old inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def database_size(path: Path) -> int:
    """Bytes on disk of the database file and its write-ahead log."""
    size = 0
    for suffix in ("", "-wal"):
        try:
            size += os.stat(f"{path}{suffix}").st_size
        except OSError:
            pass
    return size
