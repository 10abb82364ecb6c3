"""Roles and grants for a PostgreSQL Sentinel database (``sentinel db grants``).

Two roles besides the owner (the role that ran ``sentinel db migrate``):

* the **agent** role — what guarded processes connect as. It may submit a request, append
  events, cancel or expire its own pending request, escalate it, reserve and release limits and
  learn anomaly baselines: exactly the statements of the agent's code path
  (:mod:`sentinel.store.ops`, ``limits``, ``baselines``). It may **not** decide: it has no
  ``UPDATE`` on the decision columns (``operator``, ``votes``), and a row-level policy refuses
  any row it inserts or updates whose status is ``approved`` or ``denied`` (a column privilege
  cannot say which *values* a column may take; ``status`` must stay writable for a cancel).
  It cannot delete requests or events, prune, or write the audit identity.
* the **operator** role — deciders, the command center, ``sentinel serve``, prune: every read
  and write of the store (no ``TRUNCATE``, no DDL).

Row-level security is enabled on ``requests`` only; the owner is not subject to it. Another
role given table privileges later sees no request rows until it gets a policy of its own.

Signed decisions already make a forged row useless (the waiting call checks the operator's
signature on every vote, not the row); these grants are defence in depth: a compromised agent
cannot even write the row.
"""

from __future__ import annotations

import re

from sentinel.errors import StoreError

#: The tables of the PostgreSQL schema and what the agent role may do on each (``UPDATE (…)``:
#: those columns only). ``tests/store/test_grants.py`` fails when the schema has a table that is
#: not listed here (a new table must decide its agent privileges).
AGENT_PRIVILEGES: dict[str, tuple[str, ...]] = {
    # submit (INSERT … RETURNING), cancel / expire (FINISH), escalate; never DECIDE / VOTE
    "requests": (
        "SELECT",
        "INSERT",
        "UPDATE (status, decided_at, decided_by, decision_reason, escalated_at, escalated_to)",
    ),
    "events": ("SELECT", "INSERT"),
    "event_rollup": ("SELECT", "INSERT", "UPDATE (n, value)"),  # the append's upsert
    "limit_totals": ("SELECT", "INSERT", "UPDATE (total, n)", "DELETE"),  # reserve, release, prune
    "limit_usage": ("SELECT",),  # superseded, unused
    "anomaly_baselines": ("SELECT", "INSERT", "UPDATE"),
    "anomaly_windows": ("SELECT", "INSERT", "UPDATE"),
    "anomaly_values": ("SELECT", "INSERT", "UPDATE", "DELETE"),  # a capped parameter drops them
    "audit_meta": ("SELECT",),  # anchors at exit read the id
    "prune_window": ("SELECT",),  # the events' delete guard reads it
    "schema_version": ("SELECT",),
    # standing grants: an agent consumes (its counters, exhausted) and records expiry; it never
    # creates one (no INSERT: a forged grant row cannot even be written) nor edits its terms
    "grants": ("SELECT", "UPDATE (used_count, used_total, status, ended_at, ended_by, end_reason)"),
    "grant_uses": ("SELECT", "INSERT"),
}
#: The operator role: everything a store does (deciding, pruning, resetting baselines).
OPERATOR_PRIVILEGES: dict[str, tuple[str, ...]] = {
    table: ("SELECT",) if table in ("audit_meta", "schema_version") else
    ("SELECT", "INSERT", "UPDATE", "DELETE")
    for table in AGENT_PRIVILEGES
}  # fmt: skip

#: Statuses the agent role may leave a request in (its own cancel, the expiry of its wait).
AGENT_STATUSES = ("pending", "cancelled", "expired")

_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}\Z")


def _ident(role: str, what: str) -> str:
    if not _ROLE.fullmatch(role):
        raise StoreError(
            f"{what} {role!r} is not a plain role name (letters, digits, _ and $, at most 63, "
            "not starting with a digit)"
        )
    return '"' + role + '"'


def grant_statements(agent_role: str, operator_role: str) -> list[str]:
    """The statements that give ``agent_role`` and ``operator_role`` their privileges (see the
    module doc), starting from none: run them as the tables' owner, in one transaction; running
    them again gives the same result."""
    agent = _ident(agent_role, "--agent-role")
    operator = _ident(operator_role, "--operator-role")
    if agent == operator:
        raise StoreError("the agent and operator roles must differ (agents may not decide)")
    tables = ", ".join(AGENT_PRIVILEGES)
    allowed = ", ".join(f"'{s}'" for s in AGENT_STATUSES)
    out = [
        f"REVOKE ALL ON {tables} FROM {agent}, {operator}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {agent}",
        f"GRANT USAGE ON SCHEMA public TO {agent}, {operator}",
    ]
    for table, privileges in AGENT_PRIVILEGES.items():
        out.append(f"GRANT {', '.join(privileges)} ON {table} TO {agent}")
    for table, privileges in OPERATOR_PRIVILEGES.items():
        out.append(f"GRANT {', '.join(privileges)} ON {table} TO {operator}")
    out += [
        "ALTER TABLE requests ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS sentinel_agent_read ON requests",
        "DROP POLICY IF EXISTS sentinel_agent_submit ON requests",
        "DROP POLICY IF EXISTS sentinel_agent_finish ON requests",
        "DROP POLICY IF EXISTS sentinel_operator ON requests",
        f"CREATE POLICY sentinel_agent_read ON requests FOR SELECT TO {agent} USING (true)",
        # A new request is pending and undecided: no votes, no operator, no decision.
        f"CREATE POLICY sentinel_agent_submit ON requests FOR INSERT TO {agent} "
        "WITH CHECK (status = 'pending' AND decided_at IS NULL AND decided_by IS NULL "
        "AND operator IS NULL AND votes = '[]')",
        # Only a pending row, and only to pending (escalation), cancelled or expired.
        f"CREATE POLICY sentinel_agent_finish ON requests FOR UPDATE TO {agent} "
        f"USING (status = 'pending') WITH CHECK (status IN ({allowed}))",
        f"CREATE POLICY sentinel_operator ON requests FOR ALL TO {operator} "
        "USING (true) WITH CHECK (true)",
    ]
    return out


def grant_script(agent_role: str, operator_role: str) -> str:
    """:func:`grant_statements` as one script for ``psql`` (a single transaction)."""
    lines = ["-- run as the owner of the Sentinel tables (the role that ran db migrate)", "BEGIN;"]
    lines += [f"{statement};" for statement in grant_statements(agent_role, operator_role)]
    return "\n".join([*lines, "COMMIT;"])


def apply_grants(url: str, agent_role: str, operator_role: str) -> list[str]:
    """Run :func:`grant_statements` on the database at ``url`` (connect as the tables' owner) in
    one transaction; returns the statements run. The roles must exist already."""
    import psycopg

    from sentinel.store.postgres import describe_pg, mask_url

    statements = grant_statements(agent_role, operator_role)
    try:
        with psycopg.connect(
            url, connect_timeout=10, application_name="sentinel db grants"
        ) as conn:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
    except psycopg.Error as exc:
        raise describe_pg(exc, mask_url(url), 5.0) from exc
    return statements


__all__ = [
    "AGENT_PRIVILEGES", "AGENT_STATUSES", "OPERATOR_PRIVILEGES", "apply_grants", "grant_script",
    "grant_statements",
]  # fmt: skip
