"""Which database a value names: a SQLite file or a PostgreSQL server, and opening it.

One parser for every way a user names the database (``SENTINEL_DB``, ``--db``,
``SentinelConfig(db=...)``): a plain path or ``sqlite:///path`` is a SQLite file (a
:class:`~pathlib.Path`), ``postgresql://`` / ``postgres://`` is a :class:`PgLocation`, anything
else is a :class:`~sentinel.store.paths.DatabaseValueError` naming where the value came from,
with any password masked, before anything is created.

A :class:`PgLocation` keeps the URL (which may hold a password) apart from its display form:
``str()``, ``repr()`` and :attr:`PgLocation.display` are masked, only :meth:`PgLocation.dsn`
hands out the secret, to the driver. A password comes from the URL, from libpq itself
(``PGPASSWORD``, ``PGPASSFILE`` / ``~/.pgpass``, which the driver reads), or from the file
named by ``SENTINEL_DB_PASSWORD_FILE`` (refused when its group or others may read it).

This module never imports the PostgreSQL driver: SQLite users need not install it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from sentinel.errors import StoreError
from sentinel.store.paths import DB_ACCEPTED, DatabaseValueError, mask_password, parse_sqlite_value

if TYPE_CHECKING:
    from sentinel.store.aio import AsyncStore
    from sentinel.store.pgwatch import PgWatcher
    from sentinel.store.postgres import PgStore
    from sentinel.store.sync import Store
    from sentinel.store.watcher import Watcher

    #: A synchronous store of either backend.
    SyncStore = Store | PgStore
    #: An asynchronous store of either backend (AsyncPgStore is an AsyncStore).
    AnyAsyncStore = AsyncStore
    #: A decision watcher of either backend.
    AnyWatcher = Watcher | PgWatcher

#: The variable naming a file whose whole content (less a trailing newline) is the password.
PASSWORD_FILE_ENV = "SENTINEL_DB_PASSWORD_FILE"
#: URL schemes that select PostgreSQL (libpq accepts both).
PG_SCHEMES = ("postgresql", "postgres")
#: What a database value may be, PostgreSQL included; named in every rejection.
ACCEPTED = f"{DB_ACCEPTED}, or postgresql://user@host:5432/dbname"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


@dataclass(frozen=True)
class PgLocation:
    """A PostgreSQL database, named by a ``postgresql://`` URL (hashable; equal when the URL is).

    ``str()`` and ``repr()`` show :attr:`display`, the URL with its password masked; the URL
    itself is only handed to the driver by :meth:`dsn`.
    """

    url: str = field(repr=False)
    display: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "display", mask_password(self.url))

    @property
    def backend(self) -> str:
        return "postgresql"

    @property
    def has_password(self) -> bool:
        """True when the URL itself carries a password (userinfo or ``password=``)."""
        parts = urlsplit(self.url)
        if parts.password is not None:
            return True
        return any(k.lower() == "password" for k, _ in parse_qsl(parts.query))

    @property
    def host(self) -> str:
        """The server host as written (``""`` for libpq's default: a local socket)."""
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        return parts.hostname or query.get("host", "")

    @property
    def dbname(self) -> str:
        """The database name as written (``""`` when libpq's default applies)."""
        parts = urlsplit(self.url)
        return parts.path.lstrip("/") or dict(parse_qsl(parts.query)).get("dbname", "")

    @property
    def connect_timeout(self) -> float | None:
        """Seconds to wait for the server, from the URL's ``connect_timeout`` parameter (libpq's
        name), or None for Sentinel's default."""
        query = dict(parse_qsl(urlsplit(self.url).query))
        try:
            value = float(query["connect_timeout"])
        except (KeyError, ValueError):
            return None
        return value if value > 0 else None

    def dsn(self, env: Mapping[str, str] | None = None) -> str:
        """The URL to connect with, its password (if any) in the ``user:password@`` part, where
        every display masks it: from the URL (a ``password=`` parameter is moved there), else
        from ``SENTINEL_DB_PASSWORD_FILE`` when set, else none (libpq's own ``PGPASSWORD`` /
        ``PGPASSFILE`` apply). Raises :class:`DatabaseValueError` for an unreadable or
        group/other-readable password file (naming the file)."""
        env = os.environ if env is None else env
        parts = urlsplit(self.url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        in_query = [v for k, v in query if k.lower() == "password"]
        if parts.password is not None:
            return self.url
        if in_query:
            password = in_query[-1]
            rest = [(k, v) for k, v in query if k.lower() != "password"]
            parts = parts._replace(query=urlencode(rest))
        else:
            file = env.get(PASSWORD_FILE_ENV)
            if not file:
                return self.url
            password = read_password_file(Path(file).expanduser())
        user, at, hostport = parts.netloc.rpartition("@")
        if not at:
            user, hostport = "", parts.netloc
        auth = f"{user}:{quote(password, safe='')}@"
        return urlunsplit((parts.scheme, auth + hostport, parts.path, parts.query, parts.fragment))

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"PgLocation({self.display!r})"


#: Where a store lives: a SQLite file or a PostgreSQL database.
Location = Path | PgLocation
#: What a caller may name a database with (None: the default).
DbValue = str | os.PathLike[str] | PgLocation | None


def read_password_file(path: Path) -> str:
    """The password in ``path`` (its content less one trailing newline).

    Refused, naming the file, when it is missing, not a regular file, empty, or readable by
    its group or others (like every other secret file of Sentinel).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DatabaseValueError(
            f"{PASSWORD_FILE_ENV} {path}: cannot read the password file ({exc.strerror or exc})"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DatabaseValueError(f"{PASSWORD_FILE_ENV} {path} is not a regular file")
        if st.st_mode & 0o077:
            raise DatabaseValueError(
                f"{PASSWORD_FILE_ENV} {path} has mode {stat.S_IMODE(st.st_mode):04o}: readable "
                f"or writable by group/others; make it private (chmod 600 {path})"
            )
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
    password = data.decode("utf-8", errors="strict").removesuffix("\n").removesuffix("\r")
    if not password:
        raise DatabaseValueError(f"{PASSWORD_FILE_ENV} {path} is empty")
    return password


def parse_location(
    value: str | os.PathLike[str] | PgLocation, *, source: str = "database"
) -> Location:
    """The database ``value`` names: a SQLite :class:`~pathlib.Path` or a :class:`PgLocation`.

    Refuses (``DatabaseValueError`` naming ``source``, the password masked, nothing created)
    other URL schemes and ``scheme:`` values that look like a URL without slashes.
    """
    if isinstance(value, PgLocation):
        return value
    text = os.fspath(value)
    match = _SCHEME.match(text)
    if match and match.group(1).lower().split("+", 1)[0] in PG_SCHEMES:
        return _parse_pg(text, match.group(1), source)
    try:
        return parse_sqlite_value(text, source=source, accepted=ACCEPTED)
    except DatabaseValueError:
        raise


def _parse_pg(text: str, scheme: str, source: str) -> PgLocation:
    shown = mask_password(text)
    if scheme.lower() not in PG_SCHEMES:
        raise DatabaseValueError(
            f"{source} {shown!r}: {scheme}:// is not a supported database (the PostgreSQL "
            f"driver is chosen by Sentinel; write postgresql://); expected {ACCEPTED}"
        )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise DatabaseValueError(
            f"{source} {shown!r}: not a valid PostgreSQL URL ({exc})"
        ) from None
    if any(ch.isspace() for ch in text):
        raise DatabaseValueError(
            f"{source} {shown!r}: a PostgreSQL URL has no spaces (quote them as %20)"
        )
    return PgLocation(text)


def parse_or_default(
    value: str | os.PathLike[str] | PgLocation | None, *, source: str = "database"
) -> Location:
    """``value`` parsed, or the default location (``$SENTINEL_DB``, ``$SENTINEL_HOME/sentinel.db``,
    ``./.sentinel/sentinel.db``) when it is None. A SQLite path comes back absolute."""
    if value is None:
        location = default_location()
    else:
        location = parse_location(value, source=source)
    if isinstance(location, Path):
        return Path(os.path.abspath(location))
    return location


def default_location() -> Location:
    """``$SENTINEL_DB`` (a path or URL), else ``$SENTINEL_HOME/sentinel.db``, else
    ``./.sentinel/sentinel.db``."""
    explicit = os.environ.get("SENTINEL_DB")
    if explicit:
        return parse_location(explicit, source="SENTINEL_DB")
    return sentinel_home() / "sentinel.db"


def sentinel_home() -> Path:
    """``$SENTINEL_HOME``, else ``./.sentinel``: the folder of Sentinel's local files."""
    home = os.environ.get("SENTINEL_HOME")
    if home:
        return Path(home).expanduser().absolute()
    return Path.cwd() / ".sentinel"


def describe(location: Location) -> str:
    """How to show ``location`` to a person: the file path, or the URL with its password masked."""
    return str(location)


def open_store(
    value: str | os.PathLike[str] | PgLocation | None = None,
    *,
    create: bool = True,
    source: str = "database",
) -> Store | PgStore:
    """A synchronous store for ``value`` (None: the default location): a
    :class:`~sentinel.store.sync.Store` for a SQLite file, a
    :class:`~sentinel.store.postgres.PgStore` for PostgreSQL. ``create=False`` refuses a
    database that does not exist (SQLite) or lacks the schema (PostgreSQL: run
    ``sentinel db migrate``)."""
    location = parse_or_default(value, source=source)
    if isinstance(location, PgLocation):
        return open_pg(location, create=create)
    from sentinel.store.sync import Store

    return Store(location, create=create)


def open_pg(location: PgLocation, *, create: bool = True, **options: Any) -> PgStore:
    """A :class:`~sentinel.store.postgres.PgStore` for ``location`` (clear error when the
    ``postgres`` extra is not installed)."""
    try:
        from sentinel.store.postgres import PgStore
    except ImportError as exc:
        raise _no_driver(exc) from None
    if location.connect_timeout is not None:
        options.setdefault("connect_timeout", location.connect_timeout)
    return PgStore(location.dsn(), create=create, **options)


def _no_driver(exc: ImportError) -> StoreError:
    return StoreError(
        "PostgreSQL needs the driver: pip install 'sentinel-guard[postgres]' "
        f"(psycopg 3 is not importable: {exc})"
    )


def open_async_store(
    value: str | os.PathLike[str] | PgLocation | None = None,
    *,
    create: bool = True,
    source: str = "database",
) -> AnyAsyncStore:
    """An asynchronous store for ``value``: :class:`~sentinel.store.aio.AsyncStore` for a
    SQLite file; for PostgreSQL the asynchronous PostgreSQL store."""
    location = parse_or_default(value, source=source)
    if isinstance(location, PgLocation):
        return open_async_pg(location, create=create)
    from sentinel.store.aio import AsyncStore

    return AsyncStore(location, create=create)


def open_async_pg(
    location: PgLocation, like: SyncStore | None = None, *, create: bool = True
) -> AnyAsyncStore:
    """The asynchronous store for a PostgreSQL ``location``
    (:class:`~sentinel.store.pgaio.AsyncPgStore`), with the settings of ``like`` (the
    process's synchronous store of the same database) when given."""
    try:
        from sentinel.store.pgaio import AsyncPgStore
    except ImportError as exc:
        raise _no_driver(exc) from None
    options: dict[str, Any] = {}
    if like is not None:
        options["expiry_grace"] = like.expiry_grace
        timeout = getattr(like, "lock_timeout", None)
        if timeout is not None:
            options["lock_timeout"] = timeout
    if location.connect_timeout is not None:
        options["connect_timeout"] = location.connect_timeout
    return AsyncPgStore(location.dsn(), create=create, **options)


def pg_watcher_for(location: PgLocation) -> AnyWatcher:
    """The process's decision watcher for a PostgreSQL ``location``
    (:class:`~sentinel.store.pgwatch.PgWatcher`: LISTEN/NOTIFY, liveness across hosts)."""
    try:
        from sentinel.store.pgwatch import PgWatcher
    except ImportError as exc:
        raise _no_driver(exc) from None
    timeout = location.connect_timeout
    if timeout is None:
        return PgWatcher.for_url(location.dsn())
    return PgWatcher.for_url(location.dsn(), connect_timeout=timeout)


def stop_pg_watchers(chosen: Callable[[str], bool]) -> None:
    """Stop the shared PostgreSQL watchers whose connection URL ``chosen`` accepts (nothing to
    do in a process that never used one)."""
    import sys

    pgwatch = sys.modules.get("sentinel.store.pgwatch")
    if pgwatch is not None:
        pgwatch.PgWatcher.stop_shared(chosen)
