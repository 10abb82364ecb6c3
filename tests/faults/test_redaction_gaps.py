"""Issue 20 item 6: secrets that reached the database, its WAL, the JSONL mirror, notifications,
the webhook approval channel and ``sentinel show`` in clear.

Each gap is carried by a real ``@protect``-ed call against a real SQLite file: a call that needs
approval (so its arguments are stored, shown and sent) and allowed audited calls whose return
value or exception carries a secret. Every secret string must appear nowhere a person or a log
sees it, while the protected function still receives the real value."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelConfig, protect
from sentinel.audit import attach
from sentinel.errors import SentinelBlockedError
from sentinel.identity import current_operator
from sentinel.notify.deliver import Notifier
from sentinel.protect import get_guard
from sentinel.store import Store
from tests.faults.support import cli
from tests.helpers import signed_decide
from tests.webhook.receiver import Receiver, Reply, json_reply

RULES = """\
version: "1.0"
default_action: block
rules:
  - id: deploys
    function_pattern: "deploy"
    action: require_approval
    timeout_seconds: 30
    message: "deploy needs approval"
  - id: reads
    function_pattern: "read_*"
    action: allow
"""

#: One distinct secret per gap (so a failure names the gap).
TEXT_PASSWORD = "TxtPw-7f3a9c1e55"  # password=… inside free text
HEADER_KEY = "HdrKey-2b8d4e6f77"  # X-Api-Key: … inside free text
URL_PASSWORD = "UrlPw-9c1d3e5f88"  # postgresql://u:…@h/db
PWD = "PwdParam-1a2b3c99"  # a parameter named pwd
DB_PASS = "DbPass-4d5e6f1100"  # a parameter named DB_PASS
PAIR_VALUE = "PairVal-7a8b9c2211"  # [{"name": "password", "value": …}]
BASIC_PASSWORD = "AuthPw-3c4d5e3322"  # Basic auth in a parameter named auth
BASIC = base64.b64encode(f"svc:{BASIC_PASSWORD}".encode()).decode()
EXC_KEY = "ExcKey-5e6f7a4433"  # api_key=… in an exception message
RET_TOKEN = "RetTok-8b9c0d5544"  # token=… in a return value
SHORT = "Q7z9xK2"  # a return value too short for the old 12-character shortcut: "pw=Q7z9xK2"

ARG_SECRETS = (TEXT_PASSWORD, HEADER_KEY, URL_PASSWORD, PWD, DB_PASS, PAIR_VALUE, BASIC_PASSWORD, BASIC)
ALL_SECRETS = (*ARG_SECRETS, EXC_KEY, RET_TOKEN, SHORT)

DSN = f"postgresql://app:{URL_PASSWORD}@db.internal:5432/prod?sslmode=require"


def deploy_args() -> dict[str, Any]:
    return {
        "amount": 5000,
        "note": f"rotate then connect with password={TEXT_PASSWORD} please",
        "header": f'curl -H "X-Api-Key: {HEADER_KEY}" https://api.internal/v1',
        "dsn": DSN,
        "pwd": PWD,
        "DB_PASS": DB_PASS,
        "headers": [{"name": "password", "value": PAIR_VALUE}, {"name": "Accept", "value": "json"}],
        "auth": f"Basic {BASIC}",
    }


def make_calls(config: SentinelConfig, received: list[dict[str, Any]]) -> tuple[Callable[..., Any], ...]:
    @protect(config)
    def deploy(
        amount: int, note: str, header: str, dsn: str, pwd: str, DB_PASS: str,
        headers: list[dict[str, str]], auth: str,
    ) -> str:  # fmt: skip
        received.append(
            {"amount": amount, "note": note, "header": header, "dsn": dsn, "pwd": pwd,
             "DB_PASS": DB_PASS, "headers": headers, "auth": auth}
        )  # fmt: skip
        return "deployed"

    @protect(config)
    def read_upstream(path: str) -> str:
        raise RuntimeError(f"upstream refused api_key={EXC_KEY} for {path}")

    @protect(config)
    def read_session(user: str) -> str:
        return f"session ok token={RET_TOKEN} user={user}"

    @protect(config)
    def read_pin() -> str:
        return f"pw={SHORT}"

    return deploy, read_upstream, read_session, read_pin


def approve_next(db: Path, seen: list[str]) -> threading.Thread:
    """An operator in another thread: runs ``sentinel show`` on the pending request, approves it."""

    def operator() -> None:
        with Store(db) as store:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rows = store.list_pending()
                if rows:
                    for args in (("show", rows[0].id), ("show", rows[0].id, "--json"), ("pending",)):
                        out = cli(*args, db=db)
                        seen.append(out.stdout + out.stderr)
                    signed_decide(store, rows[0].id, True, current_operator("tui"), "checked")
                    return
                time.sleep(0.02)

    t = threading.Thread(target=operator)
    t.start()
    return t


def raw_database(db: Path) -> bytes:
    """The database file and its WAL/SHM exactly as they are on disk (nothing checkpointed away)."""
    return b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))


def assert_nowhere(secrets: tuple[str, ...], **places: bytes | str) -> None:
    for where, blob in places.items():
        data = blob.encode() if isinstance(blob, str) else blob
        leaked = [s for s in secrets if s.encode() in data]
        assert not leaked, f"in clear in {where}: {leaked}"


def run_calls(config: SentinelConfig) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    deploy, read_upstream, read_session, read_pin = make_calls(config, received)
    attach(get_guard(config, None))
    with pytest.raises(RuntimeError, match=EXC_KEY):  # the caller still gets the real error
        read_upstream("/v1/items")
    assert RET_TOKEN in read_session("bob")  # …and the real return value
    assert read_pin() == f"pw={SHORT}"
    assert deploy(**deploy_args()) == "deployed"
    get_guard(config, None).flush()
    assert received == [deploy_args()], "the function must receive the real values"
    return received


def test_no_secret_reaches_db_wal_jsonl_show_or_notification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "home" / "sentinel.db"
    Store(db).close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    logs = tmp_path / "logs"
    with Receiver(lambda *a: Reply(200)) as rx:
        monkeypatch.setenv("SENTINEL_NOTIFY_WEBHOOK", f"{rx.url}/hook")
        config = SentinelConfig(
            rules_path=rules, db_path=db, audit_log=True, audit_log_dir=logs,
            show_waiting_hint=False,
        )  # fmt: skip
        shown: list[str] = []
        t = approve_next(db, shown)
        run_calls(config)
        t.join()
        assert Notifier.shared().flush(10)
        posts = rx.requests("POST")
    assert posts, "the notification was never sent"
    assert len(shown) == 3 and "deploy" in shown[0]
    mirror = b"".join(p.read_bytes() for p in sorted(logs.glob("*.jsonl")))
    raw = raw_database(db)
    assert b"read_session" in mirror and b"read_session" in raw and b"deploy" in raw
    assert_nowhere(
        ALL_SECRETS,
        database_and_wal=raw,
        jsonl=mirror,
        sentinel_show="\n".join(shown),
        notification=b"".join(p.body for p in posts),
    )
    # What is kept around the secret stays readable.
    show = shown[0]
    assert "db.internal:5432/prod" in show and "X-Api-Key" in show and "Accept" in show


def test_no_secret_reaches_the_webhook_approval_channel(tmp_path: Path) -> None:
    db = tmp_path / "home" / "sentinel.db"
    Store(db).close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    secret = "channel-secret"

    def script(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method == "POST":
            return Reply(202, b"{}")
        rid = path.split("/")[2]
        return json_reply({"action_id": rid, "status": "approved", "approved_by": "carol"}, secret=secret)

    with Receiver(script) as rx:
        config = SentinelConfig(
            rules_path=rules, db_path=db, approval_interface="webhook",
            webhook_url=f"{rx.url}/approval", webhook_status_url=f"{rx.url}/approval/{{action_id}}/status",
            webhook_secret=secret, webhook_poll_interval=0.05, show_waiting_hint=False,
        )  # fmt: skip
        run_calls(config)
        posts = rx.requests("POST")
    assert posts and posts[0].json()["parameters"]["pwd"] == "[REDACTED]"
    params = posts[0].json()["parameters"]
    assert params["dsn"] == "postgresql://app:[REDACTED]@db.internal:5432/prod?sslmode=require"
    assert_nowhere(ALL_SECRETS, webhook=b"".join(p.body for p in posts), database_and_wal=raw_database(db))


def test_a_limit_per_a_secret_parameter_keeps_the_secret_out_of_the_database(tmp_path: Path) -> None:
    """``per: [api_key]`` counts each key apart; the counter key is stored in the database and the
    scope is written into the reason and the audit events, so both carry a digest of the key."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "default_action: allow\nrules:\n  - id: rate\n    function_pattern: 'call*'\n"
        "    limit: {count: 1, window: 1h, per: [agent, api_key]}\n    action: block\n"
    )
    db = tmp_path / "home" / "sentinel.db"
    first, second = "LimKey-1a2b3c4d5e6f", "LimKey-9f8e7d6c5b4a"

    @protect(SentinelConfig(rules_path=rules, db_path=db, audit_log=True, audit_sync=True,
                            show_waiting_hint=False, hot_reload=False))  # fmt: skip
    def call_api(api_key: str, query: str) -> str:
        return "ok"

    assert call_api(first, "a") == "ok"
    assert call_api(second, "b") == "ok"  # another key: its own counter
    with pytest.raises(SentinelBlockedError) as info:
        call_api(first, "c")
    assert "api_key=[REDACTED] sha256:" in info.value.reason
    assert_nowhere((first, second), database_and_wal=raw_database(db), reason=info.value.reason)


def test_a_name_value_pair_list_returned_by_a_call_is_masked(tmp_path: Path) -> None:
    """Return values were redacted as printed text, where a pair list no longer shows which
    value belongs to a secret name; it is now masked by structure, as arguments are."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    db = tmp_path / "home" / "sentinel.db"
    secret = "RetPair-6d7e8f9a0b"

    @protect(SentinelConfig(rules_path=rules, db_path=db, audit_log=True, audit_sync=True,
                            show_waiting_hint=False, hot_reload=False))  # fmt: skip
    def read_headers() -> dict[str, Any]:
        return {"headers": [{"name": "X-Api-Key", "value": secret}, {"name": "Accept", "value": "json"}]}

    assert read_headers()["headers"][0]["value"] == secret  # the caller gets the real value
    raw = raw_database(db)
    assert b"read_headers" in raw and b"Accept" in raw
    assert_nowhere((secret,), database_and_wal=raw)
