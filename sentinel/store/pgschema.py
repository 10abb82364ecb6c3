"""The PostgreSQL schema and its versioned migrations (the SQLite one is :mod:`sentinel.store.schema`).

Versions count the same as SQLite's ``user_version``: a PostgreSQL database at version N holds the
end state of the first N steps of :data:`sentinel.store.schema.MIGRATIONS`. :data:`PG_STEPS` lists
``(version reached, script)``: the first step builds version 11 at once (the SQLite schema when
the PostgreSQL backend arrived); every later SQLite step gets its PostgreSQL step APPENDED here
with the same number (``tests/store/test_contract.py`` fails when the two disagree). The version
is the one row of ``schema_version``.

Differences from the SQLite schema, all deliberate:

* ``REAL`` is ``DOUBLE PRECISION`` (PostgreSQL's ``REAL`` is 4 bytes: a timestamp would lose
  minutes), ``INTEGER`` is ``BIGINT``, ``BLOB`` is ``BYTEA``;
* ids compare byte-wise (``COLLATE "C"``): the prefix lookup is a range scan that must mean
  "starts with" whatever the database's collation;
* the triggers are PL/pgSQL functions, one per table; a trigger's ``WHEN`` cannot hold a subquery
  there, so the conditions are inside the functions. ``TRUNCATE`` skips row triggers, so a
  statement trigger refuses it on ``requests`` and ``events``;
* the case-insensitive history indexes are on ``lower(column)`` (the dialect spells
  ``COLLATE NOCASE`` as ``lower(x) = lower(?)``).
"""

from __future__ import annotations

from typing import Any

from sentinel.errors import StoreError
from sentinel.store.dialect import MIGRATE_LOCK, NOTICE_CHANNEL

_PG_V11 = r"""
CREATE TABLE schema_version (
    version INTEGER NOT NULL
);
INSERT INTO schema_version (version) VALUES (0);

CREATE TABLE requests (
    id                TEXT COLLATE "C" PRIMARY KEY,
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending','approved','denied','expired','cancelled')),
    function          TEXT NOT NULL,
    arguments         TEXT NOT NULL,
    digest            TEXT NOT NULL,
    agent_id          TEXT,
    pid               BIGINT NOT NULL,
    pid_start         BIGINT,
    host              TEXT NOT NULL,
    lock_path         TEXT,
    context           TEXT,
    rule_id           TEXT,
    rule_ids          TEXT NOT NULL DEFAULT '[]',
    reason            TEXT NOT NULL DEFAULT '',
    value_at_risk     DOUBLE PRECISION,
    risk_score        DOUBLE PRECISION,
    risk_explanation  TEXT,
    policy_version    TEXT,
    channel           TEXT NOT NULL DEFAULT 'queue',
    timeout_seconds   DOUBLE PRECISION NOT NULL,
    created_at        DOUBLE PRECISION NOT NULL,
    expires_at        DOUBLE PRECISION NOT NULL,
    decided_at        DOUBLE PRECISION,
    decided_by        TEXT,
    operator          TEXT,
    decision_reason   TEXT,
    terms             TEXT,
    requester         TEXT,
    votes             TEXT NOT NULL DEFAULT '[]',
    escalated_at      DOUBLE PRECISION,
    escalated_to      TEXT
);
CREATE INDEX requests_pending ON requests(created_at) WHERE status = 'pending';
CREATE INDEX requests_decided ON requests(decided_at) WHERE decided_at IS NOT NULL;
CREATE INDEX requests_pending_newest ON requests(created_at, id) WHERE status = 'pending';

-- A decided request never changes again; a decision at or after the expiry is refused; the
-- expiry and creation time never change; a pending request is never deleted.
CREATE FUNCTION sentinel_requests_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status = 'pending' THEN
            RAISE EXCEPTION 'pending requests cannot be deleted';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'request already decided';
    END IF;
    IF NEW.status IN ('approved', 'denied') AND NEW.decided_at >= OLD.expires_at THEN
        RAISE EXCEPTION 'request expired: a decision at or after expires_at is refused';
    END IF;
    IF NEW.expires_at IS DISTINCT FROM OLD.expires_at
       OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR NEW.timeout_seconds IS DISTINCT FROM OLD.timeout_seconds THEN
        RAISE EXCEPTION 'the expiry of a request cannot change';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER requests_guard BEFORE UPDATE OR DELETE ON requests
    FOR EACH ROW EXECUTE FUNCTION sentinel_requests_guard();

CREATE TABLE events (
    seq            BIGINT PRIMARY KEY,
    ts             DOUBLE PRECISION NOT NULL,
    kind           TEXT NOT NULL,
    request_id     TEXT COLLATE "C",
    agent_id       TEXT,
    function       TEXT,
    digest         TEXT,
    policy_version TEXT,
    rule_id        TEXT,
    value_at_risk  DOUBLE PRECISION,
    actor          TEXT,
    reason         TEXT,
    data           TEXT NOT NULL DEFAULT '{}',
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX events_kind ON events(kind, seq);
CREATE INDEX events_function ON events(lower(function), seq);
CREATE INDEX events_agent ON events(lower(agent_id), seq);
CREATE INDEX events_request ON events(request_id, seq) WHERE request_id IS NOT NULL;
CREATE INDEX events_rule ON events(rule_id, seq) WHERE rule_id IS NOT NULL;
CREATE INDEX events_ts ON events(ts);

-- Events are append-only; the one deletion path is a prune that first records its checkpoint.
CREATE TABLE prune_window (
    up_to_seq  BIGINT NOT NULL,
    head_hash  TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE FUNCTION sentinel_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'events are append-only';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM prune_window WHERE OLD.seq <= up_to_seq) THEN
        RAISE EXCEPTION 'events are append-only (prune only through a checkpoint)';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER events_guard BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION sentinel_events_guard();

-- TRUNCATE fires no row trigger: refuse it outright on the two guarded tables.
CREATE FUNCTION sentinel_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% cannot be truncated (events are append-only, decisions final)', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER requests_no_truncate BEFORE TRUNCATE ON requests
    FOR EACH STATEMENT EXECUTE FUNCTION sentinel_no_truncate();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION sentinel_no_truncate();

-- The hourly rollup, kept by the store's event append in the same transaction.
CREATE TABLE event_rollup (
    hour    BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    rule_id TEXT NOT NULL DEFAULT '',
    n       BIGINT NOT NULL,
    value   DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, kind, rule_id)
);

-- Superseded by limit_totals (SQLite step 6) but part of the SQLite end state.
CREATE TABLE limit_usage (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    amount     DOUBLE PRECISION NOT NULL,
    hold_until DOUBLE PRECISION
);
CREATE INDEX limit_usage_key ON limit_usage(key, ts);
CREATE TABLE limit_totals (
    key   TEXT COLLATE "C" PRIMARY KEY,
    total DOUBLE PRECISION NOT NULL,
    n     BIGINT NOT NULL
);

CREATE TABLE anomaly_baselines (
    agent      TEXT NOT NULL,
    function   TEXT NOT NULL,
    param      TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('number', 'category', 'rate')),
    n          BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    weight     DOUBLE PRECISION NOT NULL,
    first_at   DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    median DOUBLE PRECISION, mad DOUBLE PRECISION, sigma DOUBLE PRECISION,
    mean DOUBLE PRECISION, std DOUBLE PRECISION,
    log_median DOUBLE PRECISION, log_sigma DOUBLE PRECISION, log_mean DOUBLE PRECISION,
    log_std DOUBLE PRECISION,
    lo DOUBLE PRECISION, hi DOUBLE PRECISION, last DOUBLE PRECISION,
    singles    BIGINT,
    capped     BIGINT NOT NULL DEFAULT 0,
    fast DOUBLE PRECISION, slow DOUBLE PRECISION,
    PRIMARY KEY (agent, function, param, kind)
);
CREATE TABLE anomaly_windows (
    agent    TEXT NOT NULL,
    function TEXT NOT NULL,
    param    TEXT NOT NULL,
    vals     BYTEA NOT NULL,
    times    BYTEA NOT NULL,
    UNIQUE (agent, function, param)
);
CREATE TABLE anomaly_values (
    agent    TEXT NOT NULL,
    function TEXT NOT NULL,
    param    TEXT NOT NULL,
    vkey     TEXT NOT NULL,
    shown    TEXT NOT NULL,
    count    BIGINT NOT NULL,
    first_at DOUBLE PRECISION NOT NULL,
    last_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (agent, function, param, vkey)
);

CREATE TABLE audit_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- 32 hex digits from a strong random source, as SQLite's lower(hex(randomblob(16))).
INSERT INTO audit_meta (key, value) VALUES ('db_id', replace(gen_random_uuid()::text, '-', ''));
"""

# Step 12: every change of a request's status, votes or escalation notifies NOTICE_CHANNEL with
# its id, whoever made it (the store, a raw UPDATE): waiting processes LISTEN and re-read the row.
# NOTIFY is transactional: the notice is sent at COMMIT, once per id and transaction.
_PG_NOTICE = f"""
CREATE FUNCTION sentinel_requests_notice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{NOTICE_CHANNEL}', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER requests_notice AFTER UPDATE ON requests FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.votes IS DISTINCT FROM NEW.votes
          OR OLD.escalated_at IS DISTINCT FROM NEW.escalated_at
          OR OLD.escalated_to IS DISTINCT FROM NEW.escalated_to)
    EXECUTE FUNCTION sentinel_requests_notice();
"""

# Step 13: edit, then approve (the same two columns as SQLite's step 13).
_PG_EDITS = """
ALTER TABLE requests ADD COLUMN arg_schema TEXT;
ALTER TABLE requests ADD COLUMN edit TEXT;
"""

#: Step 14, standing grants: the tables of SQLite's step 14 and its three guards as one trigger
#: function (terms fixed, ended once, counters only grow within the caps).
_PG_GRANTS = r"""
CREATE TABLE grants (
    id          TEXT COLLATE "C" PRIMARY KEY,
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active','revoked','expired','exhausted')),
    agent       TEXT NOT NULL,
    function    TEXT NOT NULL,
    bounds      TEXT NOT NULL DEFAULT '[]',
    expires_at  DOUBLE PRECISION,
    max_count   BIGINT,
    max_total   DOUBLE PRECISION,
    used_count  BIGINT NOT NULL DEFAULT 0,
    used_total  DOUBLE PRECISION NOT NULL DEFAULT 0,
    rule_id     TEXT,
    request_id  TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    created_by  TEXT NOT NULL,
    operator    TEXT,
    signer      TEXT,
    signature   TEXT,
    reason      TEXT,
    ended_at    DOUBLE PRECISION,
    ended_by    TEXT,
    end_reason  TEXT
);
CREATE INDEX grants_active ON grants(agent, function) WHERE status = 'active';
CREATE INDEX grants_created ON grants(created_at);
CREATE FUNCTION sentinel_grants_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.agent IS DISTINCT FROM OLD.agent
       OR NEW.function IS DISTINCT FROM OLD.function OR NEW.bounds IS DISTINCT FROM OLD.bounds
       OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
       OR NEW.max_count IS DISTINCT FROM OLD.max_count
       OR NEW.max_total IS DISTINCT FROM OLD.max_total
       OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR NEW.created_by IS DISTINCT FROM OLD.created_by
       OR NEW.signer IS DISTINCT FROM OLD.signer OR NEW.signature IS DISTINCT FROM OLD.signature
       OR NEW.rule_id IS DISTINCT FROM OLD.rule_id
       OR NEW.request_id IS DISTINCT FROM OLD.request_id THEN
        RAISE EXCEPTION 'the terms of a grant cannot change';
    END IF;
    IF OLD.status != 'active' THEN
        RAISE EXCEPTION 'grant already ended';
    END IF;
    IF NEW.used_count < OLD.used_count OR NEW.used_total < OLD.used_total
       OR (NEW.max_count IS NOT NULL AND NEW.used_count > NEW.max_count)
       OR (NEW.max_total IS NOT NULL AND NEW.used_total > NEW.max_total * (1 + 1e-9)) THEN
        RAISE EXCEPTION 'grant use counters only grow, never past the caps';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER grants_guard BEFORE UPDATE ON grants FOR EACH ROW
    EXECUTE FUNCTION sentinel_grants_guard();
CREATE TABLE grant_uses (
    grant_id   TEXT COLLATE "C" NOT NULL,
    n          BIGINT NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    agent      TEXT NOT NULL,
    function   TEXT NOT NULL,
    digest     TEXT,
    value      DOUBLE PRECISION,
    event_seq  BIGINT,
    PRIMARY KEY (grant_id, n)
);
"""

#: ``(version reached, script)``, oldest first. APPEND ONLY, one step per new SQLite step.
PG_STEPS: list[tuple[int, str]] = [
    (11, _PG_V11), (12, _PG_NOTICE), (13, _PG_EDITS), (14, _PG_GRANTS),
]  # fmt: skip

_HAS_VERSION = "SELECT to_regclass('schema_version') IS NOT NULL"
_VERSION = "SELECT version FROM schema_version"
_SET_VERSION = "UPDATE schema_version SET version = %s"
_LOCK = f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK:d})"


def pg_schema_version() -> int:
    """The schema version this code writes on PostgreSQL."""
    return PG_STEPS[-1][0]


def pg_current_version(conn: Any) -> int:
    """The schema version of the database on autocommit connection ``conn`` (0: no schema)."""
    return _current(conn)


def _current(conn: Any) -> int:
    if not conn.execute(_HAS_VERSION).fetchone()[0]:
        return 0
    row = conn.execute(_VERSION).fetchone()
    return 0 if row is None else int(row[0])


def migrate_pg(conn: Any, where: str, steps: list[tuple[int, str]] = PG_STEPS) -> int:
    """Bring the database to the latest version; returns the number of steps applied.

    ``conn``: an autocommit psycopg connection. One transaction under an advisory lock, so two
    processes opening a new database at once apply each step exactly once; PostgreSQL's DDL is
    transactional, so a step that fails leaves the database as it was.
    """
    latest = steps[-1][0]
    current = _current(conn)
    if current == latest:
        return 0
    if current > latest:
        raise StoreError(
            f"database {where} has schema version {current}, newer than this Sentinel "
            f"understands ({latest}); upgrade Sentinel"
        )
    conn.execute("BEGIN")
    try:
        conn.execute(_LOCK)
        current = _current(conn)
        applied = 0
        for version, script in steps:
            if version <= current:
                continue
            conn.execute(script)
            conn.execute(_SET_VERSION, (version,))
            applied += 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied
