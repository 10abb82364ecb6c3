"""PostgreSQL selected the way users select it (SENTINEL_DB, --db, SentinelConfig(db=...)):
guarded calls approved by another process, every CLI verb, the host on each request, and the
failures a user meets first (no schema, wrong password, no server), with the password masked."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, SentinelDeniedError, protect
from sentinel.errors import SentinelConfigError
from sentinel.store.location import PgLocation, open_store
from tests.helpers import PYTHON, python_env

POLICY = """
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} to {destination} needs approval"
"""


@pytest.fixture
def rules(write_rules: Any) -> Path:
    return write_rules(POLICY)


@pytest.fixture
def db(pg_url: str) -> str:
    """A PostgreSQL database with Sentinel's schema (what `sentinel db migrate` makes)."""
    open_store(pg_url).close()
    return pg_url


def _password(url: str) -> str:
    return urlsplit(url).password or ""


def cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", *argv],
        env=python_env(**env), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def wait_pending(url: str, n: int = 1, timeout: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    with open_store(url, create=False) as store:
        while time.monotonic() < deadline:
            pending = store.list_pending()
            if len(pending) >= n:
                return pending
            time.sleep(0.05)
    raise AssertionError(f"fewer than {n} pending requests after {timeout}s")


def guarded(rules: Path, db: str, **kw: Any) -> Any:
    settings: dict[str, Any] = {"agent_id": "payments", "timeout_seconds": 90, **kw}
    cfg = SentinelConfig(rules_path=rules, db=db, show_waiting_hint=False, **settings)

    @protect(cfg)
    def transfer(amount: int, destination: str) -> str:
        return f"sent {amount} to {destination}"

    return transfer


def test_config_db_field_and_env_select_postgresql(
    db: str, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = SentinelConfig(rules_path=rules, db=db)
    assert isinstance(cfg.db, PgLocation) and cfg.db_path == cfg.db
    assert _password(db) not in repr(cfg)
    assert SentinelConfig(rules_path=rules, db_path=db).db == cfg.db  # the 0.1.0 name
    monkeypatch.setenv("SENTINEL_DB", db)
    assert SentinelConfig(rules_path=rules).db == cfg.db
    with pytest.raises(SentinelConfigError, match="name different databases"):
        SentinelConfig(rules_path=rules, db=db, db_path="/tmp/other.db")


def test_sync_guarded_call_approved_by_another_process(
    db: str, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_HOST", "worker-7")
    transfer = guarded(rules, db)
    out: dict[str, Any] = {}
    agent = threading.Thread(target=lambda: out.setdefault("result", transfer(5000, "ACC-1")))
    agent.start()
    (request,) = wait_pending(db)
    assert request.host == "worker-7"
    run = cli("approve", request.id[:10], "--reason", "checked", SENTINEL_DB=db)
    assert run.returncode == 0, run.stderr
    assert "approved" in run.stdout and _password(db) not in run.stdout + run.stderr
    agent.join(60)
    assert out["result"] == "sent 5000 to ACC-1"
    with open_store(db, create=False) as store:
        assert store.get(request.id).status == "approved"


def test_async_guarded_call_denied_by_another_process(db: str, rules: Path) -> None:
    cfg = SentinelConfig(
        rules_path=rules, db=db, agent_id="payments", timeout_seconds=90, show_waiting_hint=False
    )

    @protect(cfg)
    async def transfer(amount: int, destination: str) -> str:
        return "sent"

    async def main() -> None:
        call = asyncio.ensure_future(transfer(7000, "ACC-2"))
        pending = await asyncio.to_thread(wait_pending, db)
        run = await asyncio.to_thread(cli, "deny", pending[0].id, "--db", db, "--reason", "no")
        assert run.returncode == 0, run.stderr
        with pytest.raises(SentinelDeniedError):
            await asyncio.wait_for(call, 60)

    asyncio.run(main())


def test_cli_verbs_on_postgresql_by_env_and_flag(
    db: str, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_HOST", "runner-3")
    transfer = guarded(rules, db, timeout_seconds=120)
    agent = threading.Thread(target=lambda: _swallow(transfer, 2500, "ACC-9"), daemon=True)
    agent.start()
    (request,) = wait_pending(db)
    secret = _password(db)
    by_env = {"SENTINEL_DB": db}

    runs = {
        "pending": cli("pending", **by_env),
        "pending --json": cli("pending", "--json", "--db", db),
        "show": cli("show", request.id[:8], "--db", db),
        "show --json": cli("show", request.id, "--json", **by_env),
        "db info": cli("db", "info", **by_env),
        "db info --json": cli("db", "info", "--json", "--db", db),
        "db migrate": cli("db", "migrate", "--db", db),
        "anomaly baseline": cli("anomaly", "baseline", "--db", db),
        "rules replay": cli("rules", "replay", str(rules), **by_env),
    }
    for name, run in runs.items():
        assert run.returncode == 0, (name, run.stderr)
        assert secret not in run.stdout + run.stderr, name
    assert "runner-3" in runs["pending"].stdout and "HOST" in runs["pending"].stdout
    assert json.loads(runs["pending --json"].stdout)[0]["host"] == "runner-3"
    assert any(
        line.split(":", 1)[0].strip() == "host" and "runner-3" in line
        for line in runs["show"].stdout.splitlines()
    ), runs["show"].stdout
    assert json.loads(runs["show --json"].stdout)["host"] == "runner-3"
    info = json.loads(runs["db info --json"].stdout)
    assert info["backend"] == "postgresql" and info["pending"] == 1
    assert ":***@" in info["location"]
    assert "postgresql" in runs["db info"].stdout and ":***@" in runs["db info"].stdout
    assert "already the latest" in runs["db migrate"].stdout

    approve = cli("approve", request.id, **by_env)
    assert approve.returncode == 0, approve.stderr
    agent.join(60)
    again = cli("deny", request.id, "--db", db)
    assert again.returncode == 1 and "approved" in again.stderr  # decided once, by the first

    history = cli("history", "--db", db)
    assert history.returncode == 0, history.stderr
    assert "approval_requested" in history.stdout and "runner-3" in history.stdout
    events = json.loads(cli("history", "--json", **by_env).stdout)
    kinds = {e["kind"]: e for e in events}
    assert kinds["approval_requested"]["host"] == "runner-3"
    assert kinds["approved"]["host"] == "runner-3"
    verify = cli("audit", "verify", "--db", db)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert secret not in history.stdout + verify.stdout + verify.stderr


def _swallow(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        pass


def test_database_without_schema_says_run_migrate(pg_url: str, rules: Path) -> None:
    for argv in (["pending", "--db", pg_url], ["db", "info", "--db", pg_url]):
        run = cli(*argv)
        assert run.returncode == 1
        assert "run `sentinel db migrate`" in run.stderr, run.stderr
        assert _password(pg_url) not in run.stderr
    migrate = cli("db", "migrate", "--db", pg_url)
    assert migrate.returncode == 0, migrate.stderr
    assert "migrated from schema version 0" in migrate.stdout
    assert cli("pending", "--db", pg_url).stdout.strip() == "no pending requests"


def test_wrong_password_is_a_clear_error_with_the_password_masked(db: str, rules: Path) -> None:
    wrong = db.replace(f":{_password(db)}@", ":Hunter2Wrong@")
    run = cli("pending", "--db", wrong)
    assert run.returncode == 1
    assert "password authentication failed" in run.stderr
    assert "Hunter2Wrong" not in run.stderr and ":***@" in run.stderr
    transfer = guarded(rules, wrong)
    with pytest.raises(SentinelBlockedError) as info:
        transfer(5000, "ACC-1")
    assert "Hunter2Wrong" not in str(info.value)


def test_unreachable_server_blocks_the_guarded_call(rules: Path, pg_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = sock.getsockname()[1]
        dead = urlunsplit(urlsplit(pg_url)._replace(netloc=f"sentinel:S3cretPw@127.0.0.1:{port}"))
        transfer = guarded(rules, dead)
        with pytest.raises(SentinelBlockedError) as info:
            transfer(5000, "ACC-1")
    text = str(info.value)
    assert "cannot reach database" in text and "S3cretPw" not in text
    # An allowed call needs no database: it still runs.
    assert transfer(10, "ACC-1") == "sent 10 to ACC-1"


def test_mysql_url_refused_everywhere_nothing_created(
    tmp_path: Path, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SentinelConfigError, match="mysql:// is not a supported database"):
        SentinelConfig(rules_path=rules, db="mysql://u:Pw0rd@h/x")
    run = cli("pending", **{"SENTINEL_DB": "mysql://u:Pw0rd@h/x"})
    assert run.returncode == 1 and "mysql://u:***@h/x" in run.stderr and "Pw0rd" not in run.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_silent_server_blocks_the_guarded_call_at_the_connect_timeout(rules: Path) -> None:
    """A server that accepts the connection and never answers (a hung host): the guarded call
    is blocked when the URL's connect_timeout runs out, not left hanging."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        url = f"postgresql://sentinel:S3cretPw@127.0.0.1:{port}/sentinel?connect_timeout=1"
        transfer = guarded(rules, url)
        with pytest.raises(SentinelBlockedError) as info:
            transfer(5000, "ACC-1")
    text = str(info.value)
    assert "cannot reach database" in text and "timeout expired" in text, text
    assert "S3cretPw" not in text


def test_runtime_shares_one_native_store_set_per_database(db: str) -> None:
    from sentinel.runtime import async_store_for, store_for, watcher_for
    from sentinel.store.pgaio import AsyncPgStore
    from sentinel.store.pgwatch import PgWatcher
    from sentinel.store.postgres import PgStore

    store = store_for(db)
    assert isinstance(store, PgStore)
    assert store_for(PgLocation(db)) is store  # keyed by the location, however it is named
    assert isinstance(watcher_for(db), PgWatcher) and watcher_for(PgLocation(db)) is watcher_for(db)

    async def main() -> None:
        astore = async_store_for(db)
        assert isinstance(astore, AsyncPgStore) and async_store_for(db) is astore
        assert await astore.list_pending() == []

    asyncio.run(main())
