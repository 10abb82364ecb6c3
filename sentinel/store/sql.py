"""Every SQL statement the store runs, defined once (shared by Store, AsyncStore and Watcher)."""

from __future__ import annotations

from sentinel.store.codec import EVENT_COLUMNS, REQUEST_COLUMNS

_RCOLS = ", ".join(REQUEST_COLUMNS)
_ECOLS = ", ".join(EVENT_COLUMNS)
R_COLS = _RCOLS
E_COLS = _ECOLS

BEGIN_WRITE = "BEGIN IMMEDIATE"
BEGIN_READ = "BEGIN"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
SYNC_FULL = "PRAGMA synchronous=FULL"
SYNC_NORMAL = "PRAGMA synchronous=NORMAL"
DATA_VERSION = "PRAGMA data_version"

#: Idempotent insert: returns the new row, or nothing when the id already exists.
INSERT_REQUEST = (
    f"INSERT OR IGNORE INTO requests ({_RCOLS}) "
    f"VALUES ({', '.join('?' * len(REQUEST_COLUMNS))}) RETURNING {_RCOLS}"
)
SELECT_REQUEST = f"SELECT {_RCOLS} FROM requests WHERE id = ?"
#: Prefix lookup as a range scan on the primary key; at most 2 rows tell "unique" from "ambiguous".
SELECT_REQUEST_PREFIX = (
    f"SELECT {_RCOLS} FROM requests WHERE id >= ? AND id < ? ORDER BY id LIMIT 2"
)
SELECT_PENDING = (
    f"SELECT {_RCOLS} FROM requests WHERE status = 'pending' ORDER BY created_at, id LIMIT ?"
)
SELECT_PENDING_LIVENESS = (
    "SELECT id, pid, pid_start, host, lock_path, expires_at FROM requests WHERE status = 'pending'"
)

#: Compare-and-set of a decision: only a pending, unexpired row changes.
DECIDE = (
    "UPDATE requests SET status = ?, decided_at = ?, decided_by = ?, operator = ?, decision_reason = ? "
    f"WHERE id = ? AND status = 'pending' AND expires_at > ? RETURNING {_RCOLS}"
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
#: The hourly rollup, kept in the inserting transaction (one row per hour/kind/rule of a batch).
ROLLUP_ADD = (
    "INSERT INTO event_rollup (hour, kind, rule_id, n, value) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (hour, kind, rule_id) DO UPDATE SET n = n + excluded.n, value = value + excluded.value"
)

# --- audit (sentinel/audit) -------------------------------------------------------------------
AUDIT_DB_ID = "SELECT value FROM audit_meta WHERE key = 'db_id'"
EVENT_BOUNDS = "SELECT min(seq), max(seq) FROM events"
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
