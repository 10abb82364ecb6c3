"""Every event kind comes from a real protected call, carries the call's fields, and no secret
reaches the database file or the JSONL mirror."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentinel import (
    SentinelBlockedError,
    SentinelConfig,
    SentinelDeniedError,
    SentinelTimeoutError,
    protect,
)
from sentinel.audit import attach
from sentinel.audit.verify import verify
from sentinel.identity import current_operator
from sentinel.protect import get_guard
from sentinel.store import Store
from tests.helpers import signed_decide

RULES = """
rules:
  - id: no_deletes
    function_pattern: "delete_*"
    action: block
    message: deletes are not allowed
  - id: big_payments
    function_pattern: "pay"
    conditions: [{param: amount, operator: gt, value: 100}]
    action: require_approval
    timeout_seconds: 5
  - id: quick_payments
    function_pattern: "quick_pay"
    action: require_approval
    timeout_seconds: 0.3
  - id: watch_reads
    function_pattern: "read_*"
    action: block
    mode: shadow
"""

#: Every kind the guard, the store, hot reload and the anomaly detector write.
ALL_KINDS = {
    "allowed",
    "executed",
    "failed",
    "blocked",
    "approval_requested",
    "approved",
    "denied",
    "expired",
    "cancelled",
    "governance_error",
    "fail_safe_passthrough",
    "policy_loaded",
    "policy_rejected",
    "anomaly_escalated",
}


def decide_next(db: Path, approve: bool) -> threading.Thread:
    """An operator in another thread who decides the next pending request."""

    def operator() -> None:
        with Store(db) as store:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                rows = store.list_pending()
                if rows:
                    signed_decide(store, rows[0].id, approve, current_operator("tui"), "checked")
                    return
                time.sleep(0.02)

    t = threading.Thread(target=operator)
    t.start()
    return t


def events(db: Path) -> list[Any]:
    with Store(db) as store:
        return list(reversed(store.history(limit=10_000)))


def test_every_event_kind_comes_from_a_real_protected_call(
    write_rules: Callable[..., Path], db_path: Path, tmp_path: Path, anchors: Path
) -> None:
    rules = write_rules(RULES)
    logs = tmp_path / "logs"
    config = SentinelConfig(
        rules_path=rules, db_path=db_path, agent_id="bot-1", audit_log=True, audit_log_dir=logs
    )

    @protect(config)
    def transfer(amount: float, to: str) -> str:
        return f"sent {amount}"

    @protect(config)
    def explode(x: int) -> None:
        raise RuntimeError("boom")

    @protect(config)
    def delete_user(user: str) -> str:
        return "deleted"

    @protect(config)
    def read_file(path: str) -> str:
        return "text"

    @protect(config)
    def pay(amount: float) -> float:
        return amount

    @protect(config)
    def quick_pay(amount: float) -> float:
        return amount

    @protect(config)
    async def apay(amount: float) -> float:
        return amount

    attach(get_guard(config, None))
    assert transfer(5, "acme") == "sent 5"  # allowed + executed
    with pytest.raises(RuntimeError):
        explode(1)  # allowed + failed
    with pytest.raises(SentinelBlockedError):
        delete_user("bob")  # blocked
    assert read_file("/etc/hosts") == "text"  # shadow match is recorded on the allowed event
    t = decide_next(db_path, True)
    assert pay(500) == 500  # approval_requested, approved, executed
    t.join()
    t = decide_next(db_path, False)
    with pytest.raises(SentinelDeniedError):
        pay(700)  # denied
    t.join()
    with pytest.raises(SentinelTimeoutError):
        quick_pay(1)  # expired

    async def cancel_one() -> None:
        task = asyncio.ensure_future(get_guard(config, None).wrap(apay)(500))
        with Store(db_path) as store:
            for _ in range(500):
                if store.list_pending():
                    break
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    write_rules(RULES + '  - {id: apay_rule, function_pattern: "apay", action: require_approval}\n')
    source = config.policy_source()
    deadline = time.monotonic() + 10
    while "apay_rule" not in [r.id for r in source.current.rules] and time.monotonic() < deadline:
        time.sleep(0.02)  # policy_loaded
    asyncio.run(cancel_one())  # cancelled

    write_rules(RULES.replace("action: block\n    message", "action: blok\n    message"))
    deadline = time.monotonic() + 10
    while source.problem is None and time.monotonic() < deadline:
        time.sleep(0.02)  # policy_rejected
    assert source.problem is not None

    def broken_context() -> dict[str, Any]:
        raise LookupError("no tenant")

    def raw_pay(amount: float) -> float:
        return amount

    raw_pay.__name__ = "pay"
    secure = protect(config, context_fn=broken_context)(raw_pay)
    with pytest.raises(SentinelBlockedError, match="governance error"):
        secure(900)  # governance_error
    safe_cfg = SentinelConfig(
        rules_path=rules,
        db_path=db_path,
        agent_id="bot-1",
        fail_mode="safe",
        audit_log=True,
        audit_log_dir=logs,
    )
    safe = protect(safe_cfg, context_fn=broken_context)(raw_pay)
    assert safe(900) == 900  # fail_safe_passthrough (+ its outcome)

    anomaly_cfg = SentinelConfig(
        rules_path=write_rules("rules: []\n", "plain.yaml"),
        db_path=db_path,
        agent_id="bot-2",
        anomaly_detection=True,
    )

    @protect(anomaly_cfg)
    def wire(amount: float) -> float:
        return amount

    for a in (50, 60, 70, 80, 90):
        wire(a)
    with pytest.raises(SentinelBlockedError):
        wire(5000)  # anomaly_escalated (+ blocked)

    get_guard(config, None).flush()
    got = events(db_path)
    kinds = {e.kind for e in got}
    assert ALL_KINDS <= kinds, f"missing: {ALL_KINDS - kinds}"

    by_kind: dict[str, list[Any]] = {}
    for e in got:
        by_kind.setdefault(e.kind, []).append(e)
    # Each call event carries the agent, function, digest, policy version and value at risk.
    for kind in ("allowed", "executed", "blocked", "approval_requested", "approved", "denied"):
        e = by_kind[kind][0]
        assert e.function and e.digest and e.policy_version, (kind, e)
    assert by_kind["blocked"][0].rule_id == "no_deletes"
    assert by_kind["approved"][0].request_id and by_kind["approved"][0].actor
    assert by_kind["approved"][0].value_at_risk == 500
    assert by_kind["denied"][0].reason == "checked"
    executed = [e for e in by_kind["executed"] if e.request_id == by_kind["approved"][0].request_id]
    assert executed and executed[0].data["result"] == "500"
    assert by_kind["failed"][0].data["error_type"] == "RuntimeError"
    assert by_kind["failed"][0].data["error"] == "boom"
    assert "duration_ms" in by_kind["executed"][0].data
    shadow = [e for e in by_kind["allowed"] if e.function == "read_file"]
    assert shadow[0].data["shadow"][0]["rule_id"] == "watch_reads"
    # The approval request was written before anyone could decide it.
    req = by_kind["approval_requested"][0]
    assert req.seq < by_kind["approved"][0].seq

    # The mirror holds the same events, and the whole trail verifies.
    get_guard(config, None).flush()
    with Store(db_path) as store:
        report = verify(store, jsonl_dir=logs)
    assert report.ok, report.problems
    assert report.jsonl_events == report.table_events == len(got)


SECRETS = ("hunter2-correct-horse", "abcdefghijklmnop0123456789", "TENANT-XYZZY-42")


def db_bytes(db: Path) -> bytes:
    Store(db).close()  # checkpoint nothing away: read the file and its WAL as they are
    return b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))


def secret_calls(config: SentinelConfig) -> tuple[Callable[..., Any], ...]:
    @protect(config)
    def login(user: str, password: str, note: str, tenant_code: str) -> str:
        raise PermissionError(f"login failed with {note}")

    @protect(config)
    def transfer(user: str, password: str, note: str) -> str:
        return f"ok {note}"

    @protect(config)
    def delete_account(user: str, password: str, note: str) -> str:
        return "no"

    @protect(config)
    def pay(amount: float, password: str, note: str) -> str:
        return f"paid with {note}"

    return login, transfer, delete_account, pay


def test_no_secret_is_written_to_the_database_or_the_mirror(
    write_rules: Callable[..., Path], db_path: Path, tmp_path: Path, anchors: Path
) -> None:
    rules = write_rules(RULES + "redact_keys: [tenant_code]\n")
    logs = tmp_path / "logs"
    config = SentinelConfig(rules_path=rules, db_path=db_path, audit_log=True, audit_log_dir=logs)
    password, bearer, tenant = SECRETS[0], "Bearer " + SECRETS[1], SECRETS[2]
    login, transfer, delete_account, _pay = secret_calls(config)
    attach(get_guard(config, None))
    with pytest.raises(PermissionError):
        login("bob", password=password, note=f"header {bearer}", tenant_code=tenant)
    assert transfer("bob", password, f"use {bearer} now").startswith("ok")
    with pytest.raises(SentinelBlockedError):
        delete_account("bob", password=password, note=f"use {bearer}")
    get_guard(config, None).flush()
    raw = db_bytes(db_path)
    mirror = b"".join(p.read_bytes() for p in logs.glob("*.jsonl"))
    assert b"[REDACTED]" in mirror and b"delete_account" in raw
    for secret in SECRETS:
        assert secret.encode() not in mirror, secret
        assert secret.encode() not in raw, secret
    # The digest still binds the real arguments.
    got = events(db_path)
    allowed = [e for e in got if e.kind == "allowed" and e.function == "login"][0]
    assert allowed.data["args"]["tenant_code"] == "[REDACTED]"
    from sentinel.normalize import digest

    real = {"user": "bob", "password": password, "note": f"header {bearer}", "tenant_code": tenant}
    assert allowed.digest == digest(real)
    failed = [e for e in got if e.kind == "failed"][0]
    assert "[REDACTED]" in failed.data["error"]


def test_no_secret_of_an_approval_request_is_written_to_the_database(
    write_rules: Callable[..., Path], db_path: Path, tmp_path: Path, anchors: Path
) -> None:
    config = SentinelConfig(rules_path=write_rules(RULES), db_path=db_path)
    *_, pay = secret_calls(config)
    t = decide_next(db_path, True)
    assert pay(500, password=SECRETS[0], note=f"auth Bearer {SECRETS[1]}").startswith("paid")
    t.join()
    get_guard(config, None).flush()
    raw = db_bytes(db_path)
    with Store(db_path) as store:
        req = [e for e in store.history(limit=10) if e.kind == "approval_requested"][0]
    assert req.data["arguments"]["password"] == "[REDACTED]"  # the events are clean either way
    assert SECRETS[0].encode() not in raw
