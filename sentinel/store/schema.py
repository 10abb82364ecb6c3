"""Schema and versioned migrations.

The database's ``PRAGMA user_version`` is the number of steps of :data:`MIGRATIONS` applied.
Later features (audit anchors, anomaly baselines, limit counters…) add a step by APPENDING to the
list; never edit or reorder a released step.

The one module besides :mod:`sentinel.store.sql` that holds SQL: the migration scripts (DDL) and
the few statements that apply them stay here, next to the schema they build.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from sentinel.errors import StoreError

_V1 = """
CREATE TABLE requests (
    id                TEXT PRIMARY KEY,
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending','approved','denied','expired','cancelled')),
    function          TEXT NOT NULL,
    arguments         TEXT NOT NULL,          -- JSON, as sent
    display_arguments TEXT NOT NULL,          -- JSON, redacted
    digest            TEXT NOT NULL,
    agent_id          TEXT,
    pid               INTEGER NOT NULL,
    pid_start         INTEGER,                -- /proc/<pid>/stat field 22 (guards pid reuse)
    host              TEXT NOT NULL,
    lock_path         TEXT,                   -- flock held by the waiting process while alive
    context           TEXT,                   -- JSON
    rule_id           TEXT,
    rule_ids          TEXT NOT NULL DEFAULT '[]',
    reason            TEXT NOT NULL DEFAULT '',
    value_at_risk     REAL,
    risk_score        REAL,
    risk_explanation  TEXT,
    policy_version    TEXT,
    channel           TEXT NOT NULL DEFAULT 'queue',
    timeout_seconds   REAL NOT NULL,
    created_at        REAL NOT NULL,
    expires_at        REAL NOT NULL,
    decided_at        REAL,
    decided_by        TEXT,
    operator          TEXT,                   -- JSON OperatorIdentity
    decision_reason   TEXT
);
CREATE INDEX requests_pending ON requests(created_at) WHERE status = 'pending';
CREATE INDEX requests_decided ON requests(decided_at) WHERE decided_at IS NOT NULL;

-- A decided request never changes again (exactly-once, enforced by the database itself).
CREATE TRIGGER requests_final BEFORE UPDATE ON requests
WHEN OLD.status != 'pending'
BEGIN SELECT RAISE(ABORT, 'request already decided'); END;
CREATE TRIGGER requests_no_delete BEFORE DELETE ON requests
WHEN OLD.status = 'pending'
BEGIN SELECT RAISE(ABORT, 'pending requests cannot be deleted'); END;

CREATE TABLE events (
    seq            INTEGER PRIMARY KEY,
    ts             REAL NOT NULL,
    kind           TEXT NOT NULL,
    request_id     TEXT,
    agent_id       TEXT,
    function       TEXT,
    digest         TEXT,
    policy_version TEXT,
    rule_id        TEXT,
    value_at_risk  REAL,
    actor          TEXT,
    reason         TEXT,
    data           TEXT NOT NULL DEFAULT '{}',
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX events_kind ON events(kind, seq);
CREATE INDEX events_function ON events(function COLLATE NOCASE, seq);
CREATE INDEX events_agent ON events(agent_id COLLATE NOCASE, seq);
CREATE INDEX events_request ON events(request_id, seq);
CREATE INDEX events_rule ON events(rule_id, seq);
CREATE INDEX events_ts ON events(ts);

-- Events are append-only. The single deletion path is a future, explicit prune: it must, in the
-- same transaction, first record the signed checkpoint it prunes up to in prune_window; the
-- delete trigger only lets through rows at or below that checkpoint.
CREATE TABLE prune_window (
    up_to_seq  INTEGER NOT NULL,
    head_hash  TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM prune_window WHERE OLD.seq <= up_to_seq)
BEGIN SELECT RAISE(ABORT, 'events are append-only (prune only through a checkpoint)'); END;
"""

# Per-hour rollup of events (kind, rule, count, value at risk) kept by a trigger in the inserting
# transaction, so metrics over a million events read a few hundred rows instead of scanning.
_V2 = """
CREATE TABLE event_rollup (
    hour    INTEGER NOT NULL,                 -- CAST(ts / 3600 AS INTEGER)
    kind    TEXT NOT NULL,
    rule_id TEXT NOT NULL DEFAULT '',         -- '' = no rule
    n       INTEGER NOT NULL,
    value   REAL NOT NULL DEFAULT 0,          -- sum of value_at_risk
    PRIMARY KEY (hour, kind, rule_id)
) WITHOUT ROWID;
INSERT INTO event_rollup (hour, kind, rule_id, n, value)
    SELECT CAST(ts / 3600 AS INTEGER), kind, coalesce(rule_id, ''), count(*), coalesce(sum(value_at_risk), 0)
    FROM events GROUP BY 1, 2, 3;
CREATE TRIGGER events_rollup AFTER INSERT ON events
BEGIN
    INSERT INTO event_rollup (hour, kind, rule_id, n, value)
    VALUES (CAST(NEW.ts / 3600 AS INTEGER), NEW.kind, coalesce(NEW.rule_id, ''), 1, coalesce(NEW.value_at_risk, 0))
    ON CONFLICT (hour, kind, rule_id) DO UPDATE SET n = n + 1, value = value + excluded.value;
END;
"""

# Limit counters (sentinel/store/limits.py): one row per counted call; reserved rows carry
# hold_until, confirmed rows NULL. Indexed for "this key's rows in the window".
_LIMITS = """
CREATE TABLE limit_usage (
    id         INTEGER PRIMARY KEY,
    key        TEXT NOT NULL,               -- rule id + scope, e.g. 'daily_spend|agent=bot-1'
    ts         REAL NOT NULL,               -- when the call was checked (window position)
    amount     REAL NOT NULL,               -- 1 for rate limits, the summed value otherwise
    hold_until REAL                         -- reserved until then; NULL once the call ran
);
CREATE INDEX limit_usage_key ON limit_usage(key, ts);
"""

# Anomaly baselines (sentinel/store/baselines.py): one row of precomputed statistics per
# (agent, function, parameter, kind) so scoring reads a few small rows and never the history; the
# bounded window of recent values behind a numeric row lives apart (read only when learning); the
# values seen per string parameter (novelty) are counted per value.
_ANOMALY = """
CREATE TABLE anomaly_baselines (
    agent      TEXT NOT NULL,               -- '' = no agent id
    function   TEXT NOT NULL,
    param      TEXT NOT NULL,               -- parameter name; '' for the call rate
    kind       TEXT NOT NULL CHECK (kind IN ('number', 'category', 'rate')),
    n          INTEGER NOT NULL,            -- values learned, ever
    size       INTEGER NOT NULL,            -- values in the window / distinct values
    weight     REAL NOT NULL,               -- effective count at updated_at (decay)
    first_at   REAL NOT NULL,
    updated_at REAL NOT NULL,
    median     REAL, mad REAL, sigma REAL, mean REAL, std REAL,
    log_median REAL, log_sigma REAL, log_mean REAL, log_std REAL,
    lo         REAL, hi REAL, last REAL,
    singles    INTEGER,                     -- category: values seen exactly once
    capped     INTEGER NOT NULL DEFAULT 0,  -- category: too many distinct values to track
    fast       REAL, slow REAL,             -- rate: decayed call counters at updated_at
    PRIMARY KEY (agent, function, param, kind)
) WITHOUT ROWID;
CREATE TABLE anomaly_windows (
    agent    TEXT NOT NULL,
    function TEXT NOT NULL,
    param    TEXT NOT NULL,
    vals     BLOB NOT NULL,                 -- float64 values, oldest first
    times    BLOB NOT NULL,                 -- float64 epoch seconds, same order
    UNIQUE (agent, function, param)
);
CREATE TABLE anomaly_values (
    agent    TEXT NOT NULL,
    function TEXT NOT NULL,
    param    TEXT NOT NULL,
    vkey     TEXT NOT NULL,                 -- digest of the value
    shown    TEXT NOT NULL,                 -- redacted, shortened value for display
    count    INTEGER NOT NULL,
    first_at REAL NOT NULL,
    last_at  REAL NOT NULL,
    PRIMARY KEY (agent, function, param, vkey)
) WITHOUT ROWID;
"""

# Audit (sentinel/audit): the per-hour rollup is kept by the store's event append (one upsert per
# hour/kind/rule per batch instead of a trigger per row: the trigger cost ~17 µs per event); the
# request and rule indexes skip the many events without a request or rule (allowed calls); the
# database gets a random id that names its anchor file outside the database folder.
_AUDIT = """
DROP TRIGGER events_rollup;
DROP INDEX events_request;
CREATE INDEX events_request ON events(request_id, seq) WHERE request_id IS NOT NULL;
DROP INDEX events_rule;
CREATE INDEX events_rule ON events(rule_id, seq) WHERE rule_id IS NOT NULL;
CREATE TABLE audit_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO audit_meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
"""

# Limit totals (sentinel/store/limits.py): each limit counter as up to 61 rows, one per 1/60th of
# its window (count and sum of the calls checked in that slice), so a check reads one short key
# range however many calls the window holds. Supersedes limit_usage (step 3), which stays unused.
_LIMIT_TOTALS = """
CREATE TABLE limit_totals (
    key   TEXT PRIMARY KEY,
    total REAL NOT NULL,
    n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO limit_totals (key, total, n)
    SELECT key, sum(amount), count(*) FROM limit_usage GROUP BY key;
"""

# Expiry in the database itself: a pending row cannot be approved or denied with a decision time
# at or after its expiry (the store's compare-and-set never writes one; a raw UPDATE that does is
# refused), and a row's expiry and creation time never change (so nobody extends a request to
# approve it late). A decision time left NULL is not refused here: the waiting call checks the
# expiry against its own clock in any case (sentinel/guard.py, _late_approval).
_EXPIRY = """
CREATE TRIGGER requests_decided_in_time BEFORE UPDATE ON requests
WHEN OLD.status = 'pending' AND NEW.status IN ('approved', 'denied')
     AND NEW.decided_at >= OLD.expires_at
BEGIN SELECT RAISE(ABORT, 'request expired: a decision at or after expires_at is refused'); END;
CREATE TRIGGER requests_expiry_fixed BEFORE UPDATE OF expires_at, created_at, timeout_seconds
ON requests
WHEN NEW.expires_at IS NOT OLD.expires_at OR NEW.created_at IS NOT OLD.created_at
     OR NEW.timeout_seconds IS NOT OLD.timeout_seconds
BEGIN SELECT RAISE(ABORT, 'the expiry of a request cannot change'); END;
"""

#: The newest-first pending page orders by (created_at, id): with id in the index the page is read
#: in index order with no sort of all pending rows (10,000 pending: a sort per page otherwise).
_PENDING_NEWEST = """
CREATE INDEX requests_pending_newest ON requests(created_at, id) WHERE status = 'pending';
"""

#: The redacted arguments are stored once: ``arguments`` has always held the redacted copy (the
#: real values are never stored; the digest binds them), so ``display_arguments`` was the same
#: JSON a second time.
_ONE_ARGUMENTS_COPY = """
ALTER TABLE requests DROP COLUMN display_arguments;
"""

#: Decisions by more than one person (issue 16): the rule's terms (quorum, approvers, …), who
#: asked, and the votes cast so far — each with its operator's signature, which only the waiting
#: call's check makes count (whoever can write this table can write anything into it).
_VOTES = """
ALTER TABLE requests ADD COLUMN terms TEXT;
ALTER TABLE requests ADD COLUMN requester TEXT;
ALTER TABLE requests ADD COLUMN votes TEXT NOT NULL DEFAULT '[]';
"""

#: Escalation (issue 16): when nobody decided within the rule's ``escalate_after``, the waiting
#: call records once, on the pending row, when it escalated and to whom (the command center shows
#: it; the waiting call's own clock and terms decide who may approve, never these columns).
_ESCALATION = """
ALTER TABLE requests ADD COLUMN escalated_at REAL;
ALTER TABLE requests ADD COLUMN escalated_to TEXT;
"""

# Step 12 is PostgreSQL's: the trigger that notifies waiting processes of a change (LISTEN/NOTIFY,
# sentinel/store/pgschema.py). SQLite wakes waiters with datagram hints and data_version, so the
# step changes nothing here; it exists so both backends count versions the same.
_DECISION_NOTICE = ""

#: Edit, then approve (issue 18): the JSON Schema of a request's arguments, recorded at
#: submission (an operator's edit is typed and checked against it), and the edit an approval
#: made (the changed values, who changed them, the edit digest its signature covers).
_EDITS = """
ALTER TABLE requests ADD COLUMN arg_schema TEXT;
ALTER TABLE requests ADD COLUMN edit TEXT;
"""

#: Standing grants (issue 18): an operator's "yes to calls like this, within these bounds, for this
#: long", and each use of one. A grant's terms never change after it is made (its signature covers
#: them); it ends once (revoked / expired / exhausted) and never becomes active again; its use
#: counters only grow and never pass its caps. Each use is a row of ``grant_uses`` numbered by the
#: grant's count (so two uses can never share a number) and names its ``grant_used`` event.
_GRANTS = """
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active','revoked','expired','exhausted')),
    agent       TEXT NOT NULL,
    function    TEXT NOT NULL,
    bounds      TEXT NOT NULL DEFAULT '[]',     -- JSON [{param, op, value}]
    expires_at  REAL,                           -- NULL: until revoked
    max_count   INTEGER,
    max_total   REAL,                           -- cap on the sum of the calls' value
    used_count  INTEGER NOT NULL DEFAULT 0,
    used_total  REAL NOT NULL DEFAULT 0,
    rule_id     TEXT,                           -- the rule it was made for (informational)
    request_id  TEXT,                           -- the request it was made from, if any
    created_at  REAL NOT NULL,
    created_by  TEXT NOT NULL,                  -- operator label
    operator    TEXT,                           -- JSON OperatorIdentity
    signer      TEXT,                           -- operator name the signature is under
    signature   TEXT,                           -- ed25519 over the terms (sentinel/trust/grants.py)
    reason      TEXT,
    ended_at    REAL,
    ended_by    TEXT,
    end_reason  TEXT
);
CREATE INDEX grants_active ON grants(agent, function) WHERE status = 'active';
CREATE INDEX grants_created ON grants(created_at);
CREATE TRIGGER grants_terms_fixed BEFORE UPDATE ON grants
WHEN NEW.id IS NOT OLD.id OR NEW.agent IS NOT OLD.agent OR NEW.function IS NOT OLD.function
     OR NEW.bounds IS NOT OLD.bounds OR NEW.expires_at IS NOT OLD.expires_at
     OR NEW.max_count IS NOT OLD.max_count OR NEW.max_total IS NOT OLD.max_total
     OR NEW.created_at IS NOT OLD.created_at OR NEW.created_by IS NOT OLD.created_by
     OR NEW.signer IS NOT OLD.signer OR NEW.signature IS NOT OLD.signature
     OR NEW.rule_id IS NOT OLD.rule_id OR NEW.request_id IS NOT OLD.request_id
BEGIN SELECT RAISE(ABORT, 'the terms of a grant cannot change'); END;
CREATE TRIGGER grants_final BEFORE UPDATE ON grants
WHEN OLD.status != 'active'
BEGIN SELECT RAISE(ABORT, 'grant already ended'); END;
CREATE TRIGGER grants_use_only_grows BEFORE UPDATE ON grants
WHEN NEW.used_count < OLD.used_count OR NEW.used_total < OLD.used_total
     OR (NEW.max_count IS NOT NULL AND NEW.used_count > NEW.max_count)
     OR (NEW.max_total IS NOT NULL AND NEW.used_total > NEW.max_total * (1 + 1e-9))
BEGIN SELECT RAISE(ABORT, 'grant use counters only grow, never past the caps'); END;
CREATE TABLE grant_uses (
    grant_id   TEXT NOT NULL,
    n          INTEGER NOT NULL,                -- the grant's used_count after this use
    ts         REAL NOT NULL,
    agent      TEXT NOT NULL,
    function   TEXT NOT NULL,
    digest     TEXT,
    value      REAL,
    event_seq  INTEGER,
    PRIMARY KEY (grant_id, n)
) WITHOUT ROWID;
"""

#: Ordered migration steps; step i brings user_version from i to i + 1. APPEND ONLY.
MIGRATIONS: list[str] = [
    _V1, _V2, _LIMITS, _ANOMALY, _AUDIT, _LIMIT_TOTALS, _EXPIRY, _PENDING_NEWEST,
    _ONE_ARGUMENTS_COPY, _VOTES, _ESCALATION, _DECISION_NOTICE, _EDITS, _GRANTS,
]  # fmt: skip


def schema_version() -> int:
    """The schema version this code writes."""
    return len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: str, steps: Sequence[str] = MIGRATIONS) -> int:
    """Bring the database to the latest version; returns the number of steps applied.

    Runs under ``BEGIN IMMEDIATE`` so two processes opening a new database at once apply each step
    exactly once (the second sees the new user_version after the first commits).
    """
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current == len(steps):
        return 0
    if current > len(steps):
        raise StoreError(
            f"database {path} has schema version {current}, newer than this Sentinel "
            f"understands ({len(steps)}); upgrade Sentinel"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        applied = 0
        for number in range(current, len(steps)):
            for statement in _split(steps[number]):
                conn.execute(statement)
            applied += 1
        conn.execute(f"PRAGMA user_version = {len(steps)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied


def _split(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain ';' inside BEGIN…END)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        stripped = line.split("--", 1)[0]
        buf += stripped
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
