"""Every SQL statement the library runs, defined once (shared by Store, AsyncStore, Watcher, the
limit counters, the anomaly baselines and audit verification).

The one exception is :mod:`sentinel.store.schema`: the migration scripts (DDL) and the statements
that apply them stay next to the schema they build. ``tests/store/test_sql_boundary.py`` fails on
a SQL statement in any other module of ``sentinel`` or ``sentinel_tui``.
"""

from __future__ import annotations

from sentinel.store.codec import BASELINE_STAT_COLUMNS, EVENT_COLUMNS, REQUEST_COLUMNS

_RCOLS = ", ".join(REQUEST_COLUMNS)
_ECOLS = ", ".join(EVENT_COLUMNS)
R_COLS = _RCOLS
E_COLS = _ECOLS

BEGIN_WRITE = "BEGIN IMMEDIATE"
#: A write transaction whose only state shared with other writers is the audit chain's head
#: (a submission: a new row under its own id, then its event). On SQLite the same single-writer
#: transaction as BEGIN_WRITE (another spelling, so that a dialect can tell the two apart); on
#: PostgreSQL the write lock is taken only when the chain head is read (LAST_EVENT), so the row
#: insert before it runs beside other writers instead of inside their queue.
BEGIN_APPEND = "BEGIN IMMEDIATE TRANSACTION"
BEGIN_READ = "BEGIN"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
SYNC_FULL = "PRAGMA synchronous=FULL"
SYNC_NORMAL = "PRAGMA synchronous=NORMAL"
DATA_VERSION = "PRAGMA data_version"
#: Per-connection settings (``.format(n)``: milliseconds / bytes, integers).
SET_BUSY_TIMEOUT = "PRAGMA busy_timeout = {:d}"
SET_JOURNAL_SIZE_LIMIT = "PRAGMA journal_size_limit = {:d}"
JOURNAL_MODE = "PRAGMA journal_mode"
SET_WAL = "PRAGMA journal_mode=WAL"

#: Idempotent insert: returns the new row, or nothing when the id already exists.
INSERT_REQUEST = (
    f"INSERT OR IGNORE INTO requests ({_RCOLS}) "
    f"VALUES ({', '.join('?' * len(REQUEST_COLUMNS))}) RETURNING {_RCOLS}"
)
SELECT_REQUEST = f"SELECT {_RCOLS} FROM requests WHERE id = ?"
#: Whether a request has an event of a kind (a parked approval's claim).
SELECT_REQUEST_EVENT_KIND = "SELECT seq FROM events WHERE request_id = ? AND kind = ? LIMIT 1"
#: Prefix lookup as a range scan on the primary key; at most 2 rows tell "unique" from "ambiguous".
SELECT_REQUEST_PREFIX = (
    f"SELECT {_RCOLS} FROM requests WHERE id >= ? AND id < ? ORDER BY id LIMIT 2"
)
#: Up to ? candidate ids (and what they are) for an id prefix: the ambiguity error lists them.
SELECT_REQUEST_PREFIX_CANDIDATES = (
    "SELECT id, function, status FROM requests WHERE id >= ? AND id < ? ORDER BY id LIMIT ?"
)
SELECT_PENDING = (
    f"SELECT {_RCOLS} FROM requests WHERE status = 'pending' ORDER BY created_at, id LIMIT ?"
)
#: Newest pending first, keyset-paged on (created_at, id): a page never reads the rows before it.
SELECT_PENDING_NEWEST = (
    f"SELECT {_RCOLS} FROM requests WHERE status = 'pending' "
    "ORDER BY created_at DESC, id DESC LIMIT ?"
)
SELECT_PENDING_NEWEST_BEFORE = (
    f"SELECT {_RCOLS} FROM requests WHERE status = 'pending' AND (created_at, id) < (?, ?) "
    "ORDER BY created_at DESC, id DESC LIMIT ?"
)
#: Pending counts grouped for the status line (one pass over the partial pending index's rows).
PENDING_GROUPS = (
    "SELECT agent_id, function, CAST(risk_score AS INTEGER), count(*), "
    "coalesce(sum(value_at_risk), 0), min(created_at) "
    "FROM requests WHERE status = 'pending' GROUP BY 1, 2, 3"
)
SELECT_PENDING_LIVENESS = (
    "SELECT id, pid, pid_start, host, lock_path, expires_at FROM requests WHERE status = 'pending'"
)

#: Compare-and-set of a decision: only a pending, unexpired row changes.
DECIDE = (
    "UPDATE requests SET status = ?, decided_at = ?, decided_by = ?, operator = ?, "
    "decision_reason = ?, votes = ?, edit = ? "
    f"WHERE id = ? AND status = 'pending' AND expires_at > ? RETURNING {_RCOLS}"
)
#: A vote that does not finish the request (a quorum still short of its count).
VOTE = (
    "UPDATE requests SET votes = ? "
    f"WHERE id = ? AND status = 'pending' AND expires_at > ? RETURNING {_RCOLS}"
)
#: Mark a pending, unexpired, not yet escalated row escalated (once: a second call changes nothing).
ESCALATE = (
    "UPDATE requests SET escalated_at = ?, escalated_to = ? "
    "WHERE id = ? AND status = 'pending' AND expires_at > ? AND escalated_at IS NULL "
    f"RETURNING {_RCOLS}"
)
#: Compare-and-set pending → expired / cancelled (no expiry condition: the caller's deadline rules).
FINISH = (
    "UPDATE requests SET status = ?, decided_at = ?, decided_by = ?, decision_reason = ? "
    f"WHERE id = ? AND status = 'pending' RETURNING {_RCOLS}"
)

LAST_EVENT = "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
INSERT_EVENT = f"INSERT INTO events ({_ECOLS}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
EVENTS_AFTER = f"SELECT {_ECOLS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
COUNT_EVENTS = "SELECT count(*) FROM events"
#: (requests, pending, schema version) for ``sentinel db info``.
DATABASE_COUNTS = (
    "SELECT (SELECT count(*) FROM requests), "
    "(SELECT count(*) FROM requests WHERE status = 'pending'), "
    "(SELECT user_version FROM pragma_user_version)"
)
#: Bytes the database takes (``sentinel db info`` on a server, where there is no file to stat).
DATABASE_SIZE = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
#: The hourly rollup, kept in the inserting transaction (one row per hour/kind/rule of a batch).
ROLLUP_ADD = (
    "INSERT INTO event_rollup (hour, kind, rule_id, n, value) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (hour, kind, rule_id) DO UPDATE SET n = n + excluded.n, value = value + excluded.value"
)

# --- audit (sentinel/audit) -------------------------------------------------------------------
AUDIT_DB_ID = "SELECT value FROM audit_meta WHERE key = 'db_id'"
# Two subqueries: each min/max alone is one index lookup; together in one SELECT they scan the
# table (0.1-0.4 s at a million events, paid by every anchor and verify).
EVENT_BOUNDS = "SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)"
EVENT_HASH_AT = "SELECT hash FROM events WHERE seq = ?"
PRUNE_WINDOWS = "SELECT up_to_seq, head_hash, created_at FROM prune_window ORDER BY up_to_seq"
INSERT_PRUNE_WINDOW = "INSERT INTO prune_window (up_to_seq, head_hash, created_at) VALUES (?, ?, ?)"
DELETE_EVENTS_UPTO = "DELETE FROM events WHERE seq <= ?"
EXPORT = f"SELECT {_ECOLS} FROM events WHERE {{where}} AND seq > ? ORDER BY seq LIMIT ?"
PROTECTED_BETWEEN = (
    "SELECT kind, count(*), sum(value_at_risk) FROM events "
    "WHERE kind IN ('blocked', 'denied', 'expired') AND ts >= ? AND ts < ? GROUP BY kind"
)
HISTORY = f"SELECT {_ECOLS} FROM events WHERE {{where}} ORDER BY seq DESC LIMIT ?"

#: The watcher's routine query: full rows of watched ids that are no longer pending.
WATCH_DONE = (
    f"SELECT {_RCOLS} FROM requests "
    "WHERE id IN (SELECT value FROM json_each(?)) AND status != 'pending'"
)
#: Which of the newly watched ids exist at all (unknown ids fail their future).
WATCH_EXISTING = "SELECT id FROM requests WHERE id IN (SELECT value FROM json_each(?))"

# --- metrics ------------------------------------------------------------------------------
# Whole hours come from event_rollup; a partial first hour (an unaligned ``since``) from events.
ROLLUP_COUNTS = "SELECT kind, sum(n), sum(value) FROM event_rollup WHERE hour >= ? GROUP BY kind"
RAW_COUNTS = (
    "SELECT kind, count(*), coalesce(sum(value_at_risk), 0) FROM events "
    "WHERE ts >= ? AND ts < ? GROUP BY kind"
)
ROLLUP_HOURLY = "SELECT kind, hour, sum(n) FROM event_rollup WHERE hour >= ? GROUP BY kind, hour"
ROLLUP_RULES = (
    "SELECT rule_id, sum(n) FROM event_rollup WHERE hour >= ? AND rule_id != '' "
    "AND kind IN ('allowed', 'blocked', 'approval_requested') GROUP BY rule_id"
)
RAW_RULES = (
    # unary + keeps the planner on the ts index (the kind index would scan most of the table)
    "SELECT rule_id, count(*) FROM events WHERE ts >= ? AND ts < ? AND rule_id IS NOT NULL "
    "AND +kind IN ('allowed', 'blocked', 'approval_requested') GROUP BY rule_id"
)
DECISION_LATENCIES = (
    "SELECT decided_at - created_at FROM requests "
    "WHERE decided_at >= ? AND status IN ('approved', 'denied') ORDER BY decided_at DESC LIMIT 10000"
)
PENDING_SUMMARY = "SELECT count(*), min(created_at) FROM requests WHERE status = 'pending'"

# --- limit counters (sentinel/store/limits.py) ---------------------------------------------
LIMIT_USAGE = "SELECT sum(total), sum(n), max(key) FROM limit_totals WHERE key >= ? AND key <= ?"
LIMIT_ADD = (
    "INSERT INTO limit_totals (key, total, n) VALUES (?, ?, 1) "
    "ON CONFLICT (key) DO UPDATE SET total = total + excluded.total, n = n + 1"
)
#: Slices that have left the window (run once per counter per slice).
LIMIT_PRUNE = "DELETE FROM limit_totals WHERE key >= ? AND key < ?"
#: A released call leaves its slice; an emptied slice is reset exactly (no float drift).
LIMIT_RELEASE = (
    "UPDATE limit_totals SET n = n - 1, total = CASE WHEN n <= 1 THEN 0 ELSE total - ? END "
    "WHERE key = ? AND n > 0"
)

# --- anomaly baselines (sentinel/store/baselines.py) ---------------------------------------
_BKEY = ("agent", "function", "param", "kind")
_BCOLS = ", ".join(_BKEY + BASELINE_STAT_COLUMNS)
_BSTATS = ", ".join(("param", "kind") + BASELINE_STAT_COLUMNS)

BASELINE_FOR_CALL = f"SELECT {_BSTATS} FROM anomaly_baselines WHERE agent = ? AND function = ?"
#: The same, with a flag per category row: is this call's value (``vkey``) already known?
BASELINE_FOR_CALL_SEEN = (
    f"SELECT {', '.join('b.' + c for c in ('param', 'kind') + BASELINE_STAT_COLUMNS)}, "
    "(b.kind = 'category' AND EXISTS (SELECT 1 FROM anomaly_values v WHERE v.agent = b.agent "
    "AND v.function = b.function AND v.param = b.param AND v.vkey = j.value)) "
    "FROM anomaly_baselines b LEFT JOIN json_each(?) j ON j.key = b.param "
    "WHERE b.agent = ? AND b.function = ?"
)
BASELINE_ONE = (
    f"SELECT {_BSTATS} FROM anomaly_baselines "
    "WHERE agent = ? AND function = ? AND param = ? AND kind = ?"
)
BASELINE_ALL = f"SELECT agent, function, {_BSTATS} FROM anomaly_baselines ORDER BY agent, function, param, kind"
BASELINE_UPSERT = (
    f"INSERT INTO anomaly_baselines ({_BCOLS}) "
    f"VALUES ({', '.join('?' * len(_BKEY + BASELINE_STAT_COLUMNS))}) "
    "ON CONFLICT (agent, function, param, kind) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in BASELINE_STAT_COLUMNS)
)
BASELINE_WINDOW = (
    "SELECT vals, times FROM anomaly_windows WHERE agent = ? AND function = ? AND param = ?"
)
BASELINE_UPSERT_WINDOW = (
    "INSERT INTO anomaly_windows (agent, function, param, vals, times) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (agent, function, param) DO UPDATE SET vals = excluded.vals, times = excluded.times"
)
#: Which of these value digests were seen before (``vkey`` digests include the parameter name).
BASELINE_SEEN = (
    "SELECT vkey FROM anomaly_values WHERE agent = ? AND function = ? "
    "AND vkey IN (SELECT value FROM json_each(?))"
)
BASELINE_VALUE_COUNT = (
    "SELECT count FROM anomaly_values WHERE agent = ? AND function = ? AND param = ? AND vkey = ?"
)
BASELINE_BUMP_VALUE = (
    "UPDATE anomaly_values SET count = count + 1, last_at = ? "
    "WHERE agent = ? AND function = ? AND param = ? AND vkey = ?"
)
BASELINE_INSERT_VALUE = (
    "INSERT INTO anomaly_values (agent, function, param, vkey, shown, count, first_at, last_at) "
    "VALUES (?, ?, ?, ?, ?, 1, ?, ?)"
)
BASELINE_DROP_VALUES = "DELETE FROM anomaly_values WHERE agent = ? AND function = ? AND param = ?"
BASELINE_TOP_VALUES = (
    "SELECT shown, count FROM anomaly_values WHERE agent = ? AND function = ? AND param = ? "
    "ORDER BY count DESC, last_at DESC LIMIT ?"
)
_BFILTER = "(? IS NULL OR agent = ?) AND (? IS NULL OR function = ?)"
BASELINE_COUNT_MATCHING = f"SELECT count(*) FROM anomaly_baselines WHERE {_BFILTER}"
BASELINE_DELETE = f"DELETE FROM anomaly_baselines WHERE {_BFILTER}"
BASELINE_DELETE_WINDOWS = f"DELETE FROM anomaly_windows WHERE {_BFILTER}"
BASELINE_DELETE_VALUES = f"DELETE FROM anomaly_values WHERE {_BFILTER}"

# --- standing grants (sentinel/store/grants.py) -------------------------------------------
GRANT_COLUMNS = (
    "id", "status", "agent", "function", "bounds", "expires_at", "max_count", "max_total",
    "used_count", "used_total", "rule_id", "request_id", "created_at", "created_by", "operator",
    "signer", "signature", "reason", "ended_at", "ended_by", "end_reason",
)  # fmt: skip
_GCOLS = ", ".join(GRANT_COLUMNS)
GRANT_USE_COLUMNS = ("grant_id", "n", "ts", "agent", "function", "digest", "value", "event_seq")
INSERT_GRANT = (
    f"INSERT INTO grants ({_GCOLS}) VALUES ({', '.join('?' * len(GRANT_COLUMNS))}) "
    f"RETURNING {_GCOLS}"
)
SELECT_GRANT = f"SELECT {_GCOLS} FROM grants WHERE id = ?"
SELECT_GRANT_PREFIX = f"SELECT {_GCOLS} FROM grants WHERE id >= ? AND id < ? ORDER BY id LIMIT 6"
#: The active grants of one (agent, function), oldest first (the partial index).
GRANTS_ACTIVE_FOR = (
    f"SELECT {_GCOLS} FROM grants WHERE agent = ? AND function = ? AND status = 'active' "
    "ORDER BY created_at, id"
)
#: Every active grant (the guard's cache; the expiry sweep).
GRANTS_ACTIVE = f"SELECT {_GCOLS} FROM grants WHERE status = 'active' ORDER BY created_at, id"
GRANTS_ALL = f"SELECT {_GCOLS} FROM grants ORDER BY created_at DESC, id DESC LIMIT ?"
GRANTS_BY_STATUS = (
    f"SELECT {_GCOLS} FROM grants WHERE status = ? ORDER BY created_at DESC, id DESC LIMIT ?"
)
#: One use, compare-and-set on the count read in the same transaction.
GRANT_USE = (
    "UPDATE grants SET used_count = ?, used_total = ?, status = ?, ended_at = ?, ended_by = ?, "
    "end_reason = ? WHERE id = ? AND status = 'active' AND used_count = ? RETURNING id"
)
#: End an active grant (revoked / expired).
GRANT_END = (
    "UPDATE grants SET status = ?, ended_at = ?, ended_by = ?, end_reason = ? "
    f"WHERE id = ? AND status = 'active' RETURNING {_GCOLS}"
)
INSERT_GRANT_USE = (
    f"INSERT INTO grant_uses ({', '.join(GRANT_USE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(GRANT_USE_COLUMNS))})"
)
GRANT_USES = (
    f"SELECT {', '.join(GRANT_USE_COLUMNS)} FROM grant_uses WHERE grant_id = ? "
    "ORDER BY n DESC LIMIT ?"
)

# --- copying a whole database to another backend (sentinel/store/copy.py) -----------------
#: Every table of the schema's end state (both backends), its columns in a fixed order and the
#: key it is read in. ``tests/store/test_copy.py`` fails when a schema step adds a table or a
#: column this does not list (a copy would silently drop it).
COPY_TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "audit_meta": (("key", "value"), "key"),
    "requests": (REQUEST_COLUMNS, "id"),
    "events": (EVENT_COLUMNS, "seq"),
    "prune_window": (("up_to_seq", "head_hash", "created_at"), "up_to_seq"),
    "event_rollup": (("hour", "kind", "rule_id", "n", "value"), "hour, kind, rule_id"),
    "limit_usage": (("id", "key", "ts", "amount", "hold_until"), "id"),
    "limit_totals": (("key", "total", "n"), "key"),
    "anomaly_baselines": (_BKEY + BASELINE_STAT_COLUMNS, "agent, function, param, kind"),
    "anomaly_windows": (("agent", "function", "param", "vals", "times"), "agent, function, param"),
    "anomaly_values": (
        ("agent", "function", "param", "vkey", "shown", "count", "first_at", "last_at"),
        "agent, function, param, vkey",
    ),
    "grants": (GRANT_COLUMNS, "id"),
    "grant_uses": (GRANT_USE_COLUMNS, "grant_id, n"),
}
COPY_SELECT = {
    t: f"SELECT {', '.join(c)} FROM {t} ORDER BY {k}" for t, (c, k) in COPY_TABLES.items()
}
COPY_INSERT = {
    t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
    for t, (c, _k) in COPY_TABLES.items()
}
COPY_COUNT = {t: f"SELECT count(*) FROM {t}" for t in COPY_TABLES}
#: A destination is empty when it holds no row but the ``db_id`` its creation wrote.
COPY_NOT_EMPTY = {
    t: (
        "SELECT 1 FROM audit_meta WHERE key != 'db_id' LIMIT 1"
        if t == "audit_meta"
        else f"SELECT 1 FROM {t} LIMIT 1"
    )
    for t in COPY_TABLES
}
#: The secondary indexes of a table (name, definition): dropped before a copy loads it and built
#: again after, in the same transaction (building an index once is cheaper than keeping it up
#: to date row by row: a third of the copy's time at a million events).
COPY_INDEXES = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
)
COPY_DROP_INDEX = "DROP INDEX {}"
#: The columns' types as the destination has them (for a binary load): no rows, just the shape.
COPY_SHAPE = {t: f"SELECT {', '.join(c)} FROM {t} LIMIT 0" for t, (c, _k) in COPY_TABLES.items()}
#: Memory for the copy's index builds: 16 MB of SQLite page cache (it lives in the copying
#: process: 256 MB took its peak RSS from 121 to 416 MB for no clear gain); on PostgreSQL 256 MB
#: of the server's maintenance_work_mem (an index over a million events sorts in memory).
COPY_MEMORY = "PRAGMA cache_size = -16384"
#: The destination's own new ``db_id`` gives way to the source's (the anchors name it).
COPY_CLEAR_META = "DELETE FROM audit_meta"
#: After rows were copied with their ids, new ids continue after the largest (SQLite does this by
#: itself; PostgreSQL's serial needs telling: see the dialect).
COPY_SYNC_IDS = "SELECT max(id) FROM limit_usage"
