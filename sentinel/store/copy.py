"""Copying a whole Sentinel database to another backend (``sentinel db copy``).

Every table of the schema (:data:`~sentinel.store.sql.COPY_TABLES`) is read in key order from one
consistent snapshot of the source and written, in batches, into the destination inside ONE write
transaction: a copy that fails or is interrupted leaves the destination as empty as it was, so
it is simply run again (no resume needed). Memory stays flat: the source is streamed (a SQLite
cursor stepping through the table, a PostgreSQL server-side cursor) and at most one batch is
held. Rows are copied value for value, so every event keeps its ``seq``, ``prev_hash`` and
``hash`` and the chain verifies on the copy; ``audit_meta`` (the ``db_id`` that names the
database's anchor file) is copied too, so the source's signed anchors vouch for the copy.

The statements are :mod:`sentinel.store.sql`'s, in SQLite's dialect; PostgreSQL runs their
translation (:mod:`sentinel.store.dialect`), and loads each batch with ``COPY … FROM STDIN``
(:func:`~sentinel.store.dialect.bulk_load`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sentinel.errors import StoreError
from sentinel.store import sql
from sentinel.store.dialect import POSTGRES, bulk_load
from sentinel.store.paths import DatabaseValueError

#: Rows per batch: big enough that per-batch costs vanish, small enough that memory stays flat.
BATCH = 20_000
#: Seconds a copy waits for the destination's write lock (other writers) before giving up.
LOCK_TIMEOUT = 30.0

#: Tables loaded in PostgreSQL's binary format: their values' Python types are fixed by the
#: store's codec (the event columns), so the types the destination reports always fit. The
#: others go as text, which PostgreSQL converts whatever SQLite's loose typing stored.
_BINARY = frozenset({"events"})

#: ``progress(table, rows copied so far, rows in the table)``, called after each batch.
Progress = Callable[[str, int, int], None]


class DestinationNotEmpty(StoreError):
    """The destination already holds data (a copy only goes into an empty database)."""


@dataclass(frozen=True)
class Location:
    """Where one side of a copy is: ``backend`` is ``sqlite`` (``target`` a path) or
    ``postgresql`` (``target`` a URL); ``shown`` is printable (password masked)."""

    backend: str
    target: str
    shown: str


def parse_location(value: str, *, source: str) -> Location:
    """The database ``value`` names (a path, ``sqlite:///path`` or ``postgresql://…``), or a
    :class:`~sentinel.store.paths.DatabaseValueError` naming ``source`` (``--from``, ``--to``).
    A PostgreSQL password may also come from ``SENTINEL_DB_PASSWORD_FILE`` or libpq's own
    variables (see :mod:`sentinel.store.location`)."""
    from sentinel.store import location

    found = location.parse_location(value, source=source)
    if isinstance(found, location.PgLocation):
        if not (found.host or found.dbname or urlsplit(found.url).username):
            raise DatabaseValueError(
                f"{source} {found.display!r}: a PostgreSQL URL needs a host or a database "
                "(postgresql://user@host:5432/sentinel)"
            )
        return Location("postgresql", found.dsn(), found.display)
    full = str(Path(os.path.abspath(found)))
    return Location("sqlite", full, full)


@dataclass
class CopyResult:
    """What a copy moved: rows per table, the chain head on both sides, how long it took."""

    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)
    source_head: tuple[int, str] | None = None
    destination_head: tuple[int, str] | None = None
    db_id: str | None = None
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return self.rows.get("events", 0)


class _End:
    """One side of a copy: a connection and how its backend runs the store's statements."""

    shown: str

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def stream(self, statement: str, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        raise NotImplementedError

    def load(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def ddl(self, statement: str) -> None:
        """Run a definition read from the database's own catalog, as it is."""
        raise NotImplementedError

    def fail(self, exc: BaseException) -> StoreError:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _SqliteEnd(_End):
    def __init__(self, path: str) -> None:
        from sentinel.store.sync import open_connection

        self.shown = path
        self.conn = open_connection(Path(path), LOCK_TIMEOUT)

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(statement, params).fetchall()

    def stream(self, statement: str, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        cur = self.conn.execute(statement)
        while rows := cur.fetchmany(batch):
            yield rows

    def load(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql.COPY_INSERT[table], rows)

    def ddl(self, statement: str) -> None:
        self.conn.execute(statement)

    def fail(self, exc: BaseException) -> StoreError:
        from sentinel.store.failures import describe

        return describe(exc, self.shown, LOCK_TIMEOUT)

    def close(self) -> None:
        self.conn.close()


class _PgEnd(_End):
    def __init__(self, url: str, shown: str) -> None:
        import psycopg

        self.shown = shown
        try:
            self.conn = psycopg.connect(
                url, autocommit=True, connect_timeout=10, application_name="sentinel db copy"
            )
            self.run(sql.SET_BUSY_TIMEOUT.format(int(LOCK_TIMEOUT * 1000)))
        except psycopg.Error as exc:
            raise self.fail(exc) from exc
        self._cursors = 0
        self._types: dict[str, list[int]] = {}

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        texts = POSTGRES.translate(statement)
        rows: list[tuple[Any, ...]] = []
        with self.conn.cursor() as cur:
            for n, text in enumerate(texts):
                cur.execute(text, list(params) if n == len(texts) - 1 else None)
            if cur.description:
                rows = cur.fetchall()
        return rows

    def stream(self, statement: str, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        (text,) = POSTGRES.translate(statement)
        self._cursors += 1
        # A server-side cursor (inside the read transaction): the server holds the result.
        # Binary: no numbers printed and parsed again on the way.
        with self.conn.cursor(name=f"sentinel_copy_{self._cursors}", binary=True) as cur:
            cur.itersize = batch
            cur.execute(text)
            while rows := cur.fetchmany(batch):
                yield rows

    def load(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        from psycopg.copy import QueuedLibpqWriter

        binary = table in _BINARY
        with self.conn.cursor() as cur:
            types = None
            if binary:
                types = self._types.get(table)
                if types is None:
                    cur.execute(POSTGRES.translate(sql.COPY_SHAPE[table])[0])
                    types = self._types[table] = [d.type_code for d in cur.description or ()]
            # The queued writer sends on its own thread while this one formats the next rows.
            statement = bulk_load(sql.COPY_INSERT[table], binary=binary)
            with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
                if types is not None:
                    copy.set_types(types)
                for row in rows:
                    copy.write_row(row)

    def ddl(self, statement: str) -> None:
        self.conn.execute(statement)

    def fail(self, exc: BaseException) -> StoreError:
        from sentinel.store.postgres import describe_pg

        return describe_pg(exc, self.shown, LOCK_TIMEOUT)

    def close(self) -> None:
        self.conn.close()


def _driver_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (sqlite3.Error, psycopg.Error)


def prepare(location: Location, *, create: bool) -> None:
    """Open ``location`` with the store once, so its schema is the latest (``create``: make a
    missing SQLite file; a PostgreSQL database must exist on the server)."""
    if location.backend == "sqlite":
        from sentinel.store.sync import Store

        Store(location.target, create=create).close()
        return
    from sentinel.store.pgschema import pg_schema_version
    from sentinel.store.postgres import PgStore

    store = PgStore(location.target, create=create)
    store.close()
    if store.migrated_from < pg_schema_version() and not create:
        raise StoreError(
            f"database {location.shown} has schema version {store.migrated_from}, behind this "
            f"Sentinel's {pg_schema_version()}: run `sentinel db migrate --db URL` on it first"
        )


def _open(location: Location) -> _End:
    if location.backend == "sqlite":
        return _SqliteEnd(location.target)
    return _PgEnd(location.target, location.shown)


def _head(end: _End) -> tuple[int, str] | None:
    rows = end.run(sql.LAST_EVENT)
    return None if not rows else (int(rows[0][0]), str(rows[0][1]))


def _refuse_non_empty(dst: _End) -> None:
    held = [t for t, stmt in sql.COPY_NOT_EMPTY.items() if dst.run(stmt)]
    if held:
        raise DestinationNotEmpty(
            f"destination {dst.shown} is not empty (it holds {', '.join(held)}): a copy only goes "
            "into a new, empty database — two audit chains cannot be merged. Create a new "
            "database (or file) and copy into that"
        )


def copy_database(
    source: Location,
    destination: Location,
    *,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> CopyResult:
    """Copy every table of ``source`` into the empty ``destination`` (see the module doc).

    Both are brought to the latest schema first (a missing SQLite destination file is created).
    Raises :class:`DestinationNotEmpty` when the destination holds data, and
    :class:`~sentinel.errors.StoreError` for anything the databases refuse; the destination is
    then unchanged.
    """
    if source.backend == destination.backend and source.target == destination.target:
        raise StoreError(f"--from and --to are the same database ({source.shown})")
    prepare(source, create=False)
    prepare(destination, create=True)
    started = time.perf_counter()
    result = CopyResult(source.shown, destination.shown)
    errors = _driver_errors()
    src = _open(source)
    try:
        dst = _open(destination)
    except BaseException:
        src.close()
        raise
    side: _End = src
    try:
        src.run(sql.BEGIN_READ)  # one snapshot: writers to the source go on meanwhile
        totals = {t: int(src.run(stmt)[0][0]) for t, stmt in sql.COPY_COUNT.items()}
        result.source_head = _head(src)
        side = dst
        dst.run(sql.COPY_MEMORY)
        dst.run(sql.BEGIN_WRITE)
        _refuse_non_empty(dst)
        dst.run(sql.COPY_CLEAR_META)
        for table, select in sql.COPY_SELECT.items():
            done = 0
            indexes = [(str(n), str(d)) for n, d in dst.run(sql.COPY_INDEXES, (table,))]
            for name, _definition in indexes:
                dst.ddl(sql.COPY_DROP_INDEX.format(f'"{name}"'))
            side = src
            for rows in src.stream(select, batch):
                side = dst
                dst.load(table, rows)
                done += len(rows)
                if progress is not None:
                    progress(table, done, totals[table])
                side = src
            side = dst
            for _name, definition in indexes:
                dst.ddl(definition)
            result.rows[table] = done
            if progress is not None and done == 0:
                progress(table, 0, 0)
        side = dst
        dst.run(sql.COPY_SYNC_IDS)
        result.destination_head = _head(dst)
        if result.destination_head != result.source_head:
            raise StoreError(
                f"the copy's last event {result.destination_head} is not the source's "
                f"{result.source_head}: nothing was written"
            )
        meta = dst.run(sql.AUDIT_DB_ID)
        result.db_id = str(meta[0][0]) if meta else None
        dst.run(sql.COMMIT)
        side = src
        src.run(sql.ROLLBACK)  # the read snapshot: nothing to keep
    except errors as exc:
        _rollback(src, dst)
        raise side.fail(exc) from exc
    except BaseException:
        _rollback(src, dst)
        raise
    finally:
        src.close()
        dst.close()
    result.seconds = time.perf_counter() - started
    return result


def _rollback(*ends: _End) -> None:
    for end in ends:
        try:
            end.run(sql.ROLLBACK)
        except Exception:
            pass


__all__ = [
    "BATCH",
    "CopyResult",
    "DestinationNotEmpty",
    "Location",
    "copy_database",
    "parse_location",
]
