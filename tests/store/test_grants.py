"""``sentinel db grants`` on the real PostgreSQL server: connected as the agent role, the agent's
code path works (submit, events, cancel, escalate, limits, baselines) and deciding is refused
with permission denied; the operator role decides."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql as pgsql

from sentinel.errors import StoreError
from sentinel.store.limits import LimitCheck
from sentinel.store.pggrants import AGENT_PRIVILEGES, grant_statements
from sentinel.store.postgres import PgStore
from tests.helpers import PYTHON, ROOT, python_env
from tests.store.factories import learn_plan, new_request, operator

if TYPE_CHECKING:
    from tests.pg import PgCluster


POLICY = """
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "sentinel.cli", "db", "grants", *args],
                          capture_output=True, text=True, env=python_env(), cwd=ROOT,
                          timeout=60)  # fmt: skip


def _as(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{role}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
def roles(pg_cluster: PgCluster, pg_url: str) -> Iterator[dict[str, str]]:
    """An agent and an operator login role (created for this test, dropped after), and the
    database with the schema migrated by its owner (the test role)."""
    PgStore(pg_url).close()
    stamp = f"{int(time.time() * 1000) % 10**9}"
    names = {"agent": f"agent_{stamp}", "operator": f"operator_{stamp}"}
    with pg_cluster.admin() as conn:
        for name in names.values():
            conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw-" + name + "'").format(
                pgsql.Identifier(name)))  # fmt: skip
    try:
        yield names
    finally:
        dbname = urlsplit(pg_url).path.lstrip("/")
        with pg_cluster.admin(dbname) as conn:
            for name in names.values():
                conn.execute(pgsql.SQL("DROP OWNED BY {}").format(pgsql.Identifier(name)))
        with pg_cluster.admin() as conn:
            conn.execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN "
                f"('{names['agent']}', '{names['operator']}')"
            )
            for name in names.values():
                conn.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(name)))


def test_every_table_of_the_schema_has_its_agent_privileges(pg_url: str) -> None:
    PgStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}  # fmt: skip
    assert tables == set(AGENT_PRIVILEGES)


def test_the_agent_submits_but_cannot_decide(pg_url: str, roles: dict[str, str]) -> None:
    agent, op = roles["agent"], roles["operator"]
    out = _cli("--agent-role", agent, "--operator-role", op, "--apply", "--db", pg_url)
    assert out.returncode == 0, out.stderr
    assert "statements applied" in out.stdout and "***" in out.stdout
    agent_url = _as(pg_url, agent, f"pw-{agent}")
    operator_url = _as(pg_url, op, f"pw-{op}")

    with PgStore(agent_url) as store:
        # the agent's code path: submit, events, escalate, cancel its own wait, limits, baselines
        rec = store.submit(new_request())
        mine = store.submit(new_request())
        store.append_events([{"kind": "allowed", "function": "read_file"}])
        assert store.escalate(rec.id, ["security"]) is not None
        cancelled = store.cancel(mine.id, "caller gave up")
        assert cancelled is not None and cancelled.status == "cancelled"
        (usage,) = store.limit_reserve([LimitCheck("daily|agent=bot", 3600.0, 100.0, 5.0)])
        assert usage.reservation is not None and not usage.exceeded
        assert store.limit_release([usage.reservation]) == 1
        store.baseline_learn("bot", "transfer", learn_plan(100.0, "acct-1"))
        store.baseline_learn("bot", "transfer", learn_plan(200.0, "acct-2"))
        assert store.get(rec.id).status == "pending"
        late = store.submit(new_request(timeout_seconds=0.01, created_at=time.time() - 60))
        assert store.sweep() >= 1  # the agent's sweeper expires an overdue row
        assert store.get(late.id).status == "expired"
        # deciding through the store: the decision columns are not the agent's
        with pytest.raises(StoreError, match="permission denied"):
            store.decide(rec.id, True, operator("mallory"))

    with psycopg.connect(agent_url, autocommit=True) as conn:
        # a raw UPDATE that writes only columns the agent may write is still refused
        with pytest.raises(pg_errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "UPDATE requests SET status = 'approved', decided_at = %s WHERE id = %s",
                (time.time(), rec.id),
            )
        with pytest.raises(pg_errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("UPDATE requests SET votes = '[{}]' WHERE id = %s", (rec.id,))
        # nor can it insert a request that is already decided
        with pytest.raises(pg_errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO requests (id, status, function, arguments, digest, pid, host, "
                "timeout_seconds, created_at, expires_at) VALUES "
                "(%s, 'approved', 'f', '{}', 'd', 1, 'h', 60, 0, 1e12)",
                ("f" * 32,),
            )
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("DELETE FROM events")
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_meta SET value = 'x'")
        # a cancelled row stays cancelled: the agent's update policy sees pending rows only
        cur = conn.execute("UPDATE requests SET status = 'pending' WHERE id = %s", (mine.id,))
        assert cur.rowcount == 0

    with PgStore(operator_url) as store:
        decided = store.decide(rec.id, True, operator("alice"), "fine")
        assert decided.status == "approved"
        assert [e.kind for e in store.events_after(0, 100)][-1] == "approved"


def test_grants_print_without_a_database_and_refuse_bad_roles() -> None:
    out = _cli("--agent-role", "agents", "--operator-role", "ops")
    assert out.returncode == 0
    assert out.stdout.splitlines()[1] == "BEGIN;" and out.stdout.rstrip().endswith("COMMIT;")
    assert 'CREATE POLICY sentinel_agent_finish ON requests FOR UPDATE TO "agents"' in out.stdout
    bad = _cli("--agent-role", 'x"; DROP TABLE events; --', "--operator-role", "ops")
    assert bad.returncode == 1 and "--agent-role" in bad.stderr and "not a plain role" in bad.stderr
    with pytest.raises(StoreError, match="must differ"):
        grant_statements("same", "same")
    no_db = _cli("--agent-role", "a", "--operator-role", "o", "--apply")
    assert no_db.returncode == 1 and "--apply needs --db postgresql://" in no_db.stderr


def test_a_missing_role_is_named(pg_url: str) -> None:
    PgStore(pg_url).close()
    out = _cli("--agent-role", "nobody_here", "--operator-role", "ops_none", "--apply",
               "--db", pg_url)  # fmt: skip
    assert out.returncode == 1 and 'role "nobody_here" does not exist' in out.stderr
    assert urlsplit(pg_url).password not in out.stderr



def test_a_guarded_call_as_the_agent_role_waits_for_the_operator_role(
    pg_url: str, roles: dict[str, str], write_rules: Any
) -> None:
    import threading

    from sentinel import SentinelConfig, protect
    agent, op = roles["agent"], roles["operator"]
    assert _cli("--agent-role", agent, "--operator-role", op, "--apply",
                "--db", pg_url).returncode == 0  # fmt: skip
    agent_url = _as(pg_url, agent, f"pw-{agent}")
    operator_url = _as(pg_url, op, f"pw-{op}")
    cfg = SentinelConfig(rules_path=write_rules(POLICY), db=agent_url, agent_id="payments",
                         timeout_seconds=90, show_waiting_hint=False)  # fmt: skip

    @protect(cfg)
    def transfer(amount: int, destination: str) -> str:
        return f"sent {amount} to {destination}"

    out: dict[str, Any] = {}
    call = threading.Thread(target=lambda: out.setdefault("result", transfer(5000, "ACC-1")))
    call.start()
    deadline = time.monotonic() + 60
    with PgStore(operator_url) as store:
        while not (pending := store.list_pending()) and time.monotonic() < deadline:
            time.sleep(0.05)
    (request,) = pending

    def approve(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "sentinel.cli", "approve", request.id, "--reason",
                               "ok", "--db", url], capture_output=True, text=True,
                              env=python_env(), cwd=ROOT, timeout=60)  # fmt: skip

    forged = approve(agent_url)  # the agent's own credentials cannot decide
    assert forged.returncode == 1 and "permission denied" in forged.stderr
    assert call.is_alive()
    done = approve(operator_url)
    assert done.returncode == 0, done.stderr
    call.join(60)
    assert out["result"] == "sent 5000 to ACC-1"
