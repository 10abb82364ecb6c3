"""The SQL dialects the store speaks: every difference between SQLite and PostgreSQL, in one place.

The statements are written once, in SQLite's dialect (:mod:`sentinel.store.sql`, the history
filters of :mod:`sentinel.store.query`). :data:`POSTGRES` translates each one mechanically the
first time it runs (the result is cached per statement text):

* parameters ``?`` become ``%s`` (and a literal ``%`` becomes ``%%``), outside string literals;
* ``INSERT OR IGNORE INTO …`` becomes ``INSERT INTO … ON CONFLICT DO NOTHING``;
* in ``ON CONFLICT … DO UPDATE SET c = c + excluded.c`` the existing row's ``c`` is qualified
  with the table name (PostgreSQL calls a bare ``c`` there ambiguous);
* ``CAST(x AS INTEGER)`` truncates, as in SQLite (PostgreSQL's cast rounds);
* ``json_each(?)`` becomes ``json_array_elements_text`` / ``json_each_text`` of the parameter;
* ``x = ? COLLATE NOCASE`` becomes ``lower(x) = lower(?)``, ``LIKE`` becomes ``ILIKE`` (SQLite's
  LIKE ignores case), and a unary ``+column`` (a SQLite planner hint) is dropped;
* ``WHERE 1`` (an empty history filter) becomes ``WHERE TRUE``;
* ``? IS NULL`` becomes ``CAST(? AS TEXT) IS NULL`` (PostgreSQL must know a parameter's type;
  every parameter the store's statements test for NULL is a text filter).

The few statements with no mechanical counterpart are in :data:`_PG_OVERRIDES`, keyed by the
SQLite text. The one that matters most is :data:`~sentinel.store.sql.BEGIN_WRITE`: SQLite's
``BEGIN IMMEDIATE`` makes a write transaction the only writer of the database; on PostgreSQL
it is ``BEGIN`` (read committed, so each statement sees what the writer before committed) plus
a transaction-level advisory lock on :data:`WRITE_LOCK`, held until COMMIT or ROLLBACK. Every
write transaction of every process on every host takes it first (a submission,
:data:`~sentinel.store.sql.BEGIN_APPEND`, takes it just before it reads the chain head: its new
row needs no lock), so the audit chain head read
by one appender is still the head when it inserts (the chain stays linear), a vote sees the
votes before it, and a limit check-and-reserve is atomic — the same exclusivity SQLite gives.
A writer waits for it at most the store's lock timeout (``busy_timeout``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from sentinel.store import sql

#: Key of the transaction-level advisory lock every PostgreSQL write transaction holds (the
#: bytes of "SNTW"). One key: the exclusivity of SQLite's single writer, across hosts.
WRITE_LOCK = 0x534E5457
#: Key of the lock held while the schema is migrated (so two first openers do not both migrate).
MIGRATE_LOCK = 0x534E544D

#: Channel the ``requests`` trigger notifies (payload: the request id) when a request's status,
#: votes or escalation change (schema step 12). A hint to re-read the row, never the truth.
NOTICE_CHANNEL = "sentinel_requests"
#: Statements that exist only on PostgreSQL (the decision watcher's and liveness's): no SQLite form.
PG_LISTEN = f"LISTEN {NOTICE_CHANNEL}"
#: A waiting process's liveness: a session-level advisory lock on its random 63-bit key, held by
#: its long-lived listener session until the process (or its host) is gone.
PG_HOLD_KEY = "SELECT pg_try_advisory_lock(%s)"
#: Every liveness key some session of this database holds (a bigint key is classid:objid, subid 1).
PG_HELD_KEYS = (
    "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
    "WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
#: What the listener runs to find out whether its session is still there.
PG_PROBE = "SELECT 1"
#: Server-side TCP keepalives of a session (a vanished host's session ends, releasing its key).
PG_KEEPALIVES = (
    "SET tcp_keepalives_idle = {idle:d}",
    "SET tcp_keepalives_interval = {interval:d}",
    "SET tcp_keepalives_count = {count:d}",
)

#: Statements whose PostgreSQL form is not a mechanical translation. An empty tuple: nothing to
#: run (a SQLite file setting that has no server counterpart).
_PG_OVERRIDES: dict[str, tuple[str, ...]] = {
    sql.BEGIN_WRITE: (
        "BEGIN ISOLATION LEVEL READ COMMITTED",
        f"SELECT pg_advisory_xact_lock({WRITE_LOCK:d})",
    ),
    # The lock is taken by LAST_EVENT (below), before the chain head is read.
    sql.BEGIN_APPEND: ("BEGIN ISOLATION LEVEL READ COMMITTED",),
    # Every append reads the head under the write lock (taken again inside a BEGIN_WRITE
    # transaction: advisory locks are re-entrant). Read committed: the SELECT's snapshot is taken
    # after the lock is granted, so it sees the head the previous appender committed.
    sql.LAST_EVENT: (f"SELECT pg_advisory_xact_lock({WRITE_LOCK:d})", sql.LAST_EVENT),
    # One consistent snapshot for every statement of the transaction (metrics, audit state).
    sql.BEGIN_READ: ("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",),
    # synchronous=FULL: a decision is on disk before anyone can see it, whatever the server's
    # default; NORMAL: the server's (or role's, database's) configured default.
    sql.SYNC_FULL: ("SET synchronous_commit = on",),
    sql.SYNC_NORMAL: ("SET synchronous_commit TO DEFAULT",),
    # Changes whenever anything is committed on the server (a hint to re-read, like SQLite's).
    sql.DATA_VERSION: ("SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint",),
    sql.JOURNAL_MODE: (),
    sql.SET_WAL: (),
    # The schema version is the row of schema_version (sentinel/store/pgschema.py).
    sql.DATABASE_COUNTS: (
        "SELECT (SELECT count(*) FROM requests), "
        "(SELECT count(*) FROM requests WHERE status = 'pending'), "
        "(SELECT version FROM schema_version)",
    ),
    sql.DATABASE_SIZE: ("SELECT pg_database_size(current_database())",),
    sql.COPY_MEMORY: ("SET maintenance_work_mem = '256MB'",),
    # Indexes a copy may drop and rebuild: not those behind a primary key or unique constraint.
    sql.COPY_INDEXES: (
        "SELECT i.indexname, i.indexdef FROM pg_indexes i "
        "WHERE i.schemaname = current_schema() AND i.tablename = %s AND NOT EXISTS ("
        "SELECT 1 FROM pg_constraint c WHERE c.conindid = "
        "(quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
    ),
    # Rows copied with their ids: the serial continues after the largest (SQLite's rowid does).
    sql.COPY_SYNC_IDS: (
        "SELECT setval(pg_get_serial_sequence('limit_usage', 'id'), "
        "coalesce(max(id), 0) + 1, false) FROM limit_usage",
    ),
}
#: ``PRAGMA busy_timeout = N`` (formatted): how long to wait for a lock → ``lock_timeout``.
_BUSY = re.compile(r"\A\s*PRAGMA busy_timeout = (\d+)\s*\Z")
_JOURNAL_LIMIT = re.compile(r"\A\s*PRAGMA journal_size_limit = \d+\s*\Z")

_OR_IGNORE = re.compile(r"\bINSERT OR IGNORE INTO\b")
_RETURNING = re.compile(r"\sRETURNING\s")
_TABLE = re.compile(r"\bINSERT INTO (\w+)")
_UPSERT = re.compile(r"(\bON CONFLICT\s*\([^)]*\)\s*DO UPDATE SET )(.*)\Z", re.S)
_CAST_INT = re.compile(r"\bCAST\(([\w.]+) AS INTEGER\)")
_JSON_ARRAY = re.compile(r"\bSELECT value FROM json_each\(\?\)")
_JSON_EACH = re.compile(r"\bjson_each\(\?\)")
_NOCASE = re.compile(r"([\w.]+) = \? COLLATE NOCASE")
_LIKE = re.compile(r"\bLIKE\b")
_UNARY_PLUS = re.compile(r"(?<=[\s(])\+(?=[A-Za-z_])")
_IS_NULL = re.compile(r"(?<![\w)])\?(?= IS NULL\b)")
_WHERE_1 = re.compile(r"\bWHERE 1(?=\s+(AND|ORDER|LIMIT|GROUP)\b|\s*\Z)")


def _placeholders(text: str) -> str:
    """``?`` → ``%s`` outside '…' literals; every ``%`` → ``%%`` (psycopg reads the whole text,
    literals included, for placeholders)."""
    out: list[str] = []
    quoted = False
    for ch in text:
        if ch == "'":
            quoted = not quoted
            out.append(ch)
        elif ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def _qualify_upsert(statement: str) -> str:
    """``DO UPDATE SET c = c + excluded.c`` → ``… SET c = t.c + excluded.c`` (t: the table)."""
    table = _TABLE.search(statement)
    m = _UPSERT.search(statement)
    if table is None or m is None:
        return statement
    name = table.group(1)
    assignments = []
    for part in m.group(2).split(","):
        column, sep, rhs = part.partition("=")
        col = column.strip()
        if sep and re.fullmatch(r"\w+", col):
            rhs = re.sub(rf"(?<![\w.]){re.escape(col)}\b", f"{name}.{col}", rhs)
        assignments.append(column + sep + rhs)
    return statement[: m.start(2)] + ",".join(assignments)


def to_postgres(statement: str) -> tuple[str, ...]:
    """The PostgreSQL statement(s) for one SQLite statement of the store (see the module doc)."""
    override = _PG_OVERRIDES.get(statement)
    if override is not None:
        return override
    busy = _BUSY.match(statement)
    if busy:
        return (f"SET lock_timeout = {int(busy.group(1)):d}",)
    if _JOURNAL_LIMIT.match(statement):
        return ()
    if statement.lstrip().upper().startswith("PRAGMA"):
        raise ValueError(f"no PostgreSQL form for the SQLite setting {statement!r}")
    text = statement
    if _OR_IGNORE.search(text):
        text = _OR_IGNORE.sub("INSERT INTO", text)
        ret = _RETURNING.search(text)
        if ret is None:
            text += " ON CONFLICT DO NOTHING"
        else:
            text = text[: ret.start()] + " ON CONFLICT DO NOTHING" + text[ret.start() :]
    text = _qualify_upsert(text)
    text = _CAST_INT.sub(r"CAST(trunc(\1) AS BIGINT)", text)
    text = _JSON_ARRAY.sub("SELECT value FROM json_array_elements_text(CAST(? AS json))", text)
    text = _JSON_EACH.sub("json_each_text(CAST(? AS json))", text)
    text = _NOCASE.sub(r"lower(\1) = lower(?)", text)
    text = _LIKE.sub("ILIKE", text)
    text = _UNARY_PLUS.sub("", text)
    text = _WHERE_1.sub("WHERE TRUE", text)
    text = _IS_NULL.sub("CAST(? AS TEXT)", text)
    return (_placeholders(text),)


_INSERT_VALUES = re.compile(r"\A\s*INSERT INTO (\w+) \(([\w, ]+)\) VALUES \([?, ]+\)\s*\Z")


def bulk_load(statement: str, *, binary: bool = False) -> str:
    """PostgreSQL's bulk form of a plain ``INSERT INTO t (cols) VALUES (?, …)``: ``COPY t (cols)
    FROM STDIN`` (rows written through the driver's copy, ~10x faster than one INSERT per row;
    ``binary``: in PostgreSQL's binary format, the driver told the column types). SQLite has no
    such statement: it runs the INSERT once per row (``executemany``)."""
    m = _INSERT_VALUES.match(statement)
    if m is None:
        raise ValueError(f"no bulk form for {statement[:80]!r}: only a plain INSERT … VALUES")
    return f"COPY {m.group(1)} ({m.group(2)}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")


@dataclass
class Dialect:
    """How one backend spells the store's statements: ``translate`` maps a statement of
    :mod:`sentinel.store.sql` to what the driver runs (none, one or several statements; the
    parameters and the fetched result belong to the last)."""

    name: str
    _cache: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def translate(self, statement: str) -> tuple[str, ...]:
        """The statement(s) to run for ``statement`` (cached per text)."""
        if self.name == "sqlite":
            return (statement,)
        found = self._cache.get(statement)
        if found is None:
            found = to_postgres(statement)
            with self._lock:
                if len(self._cache) > 4096:  # history filters make new texts; keep it bounded
                    self._cache.clear()
                self._cache[statement] = found
        return found


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgresql")

__all__ = [
    "MIGRATE_LOCK",
    "NOTICE_CHANNEL",
    "PG_HELD_KEYS",
    "PG_HOLD_KEY",
    "PG_KEEPALIVES",
    "PG_LISTEN",
    "PG_PROBE",
    "POSTGRES",
    "SQLITE",
    "WRITE_LOCK",
    "Dialect",
    "bulk_load",
    "to_postgres",
]
