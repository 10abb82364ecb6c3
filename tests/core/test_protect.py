"""@protect end to end: real rules files, real SQLite store, sync and async."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sentinel import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
    SentinelBlockedError,
    SentinelConfig,
    SentinelConfigError,
    SentinelDeniedError,
    SentinelTimeoutError,
    protect,
)
from tests.helpers import signed_decide

POLICY = """
version: "1.0"
default_action: allow
rules:
  - id: no_delete
    function_pattern: "delete_*"
    action: block
    message: "Delete operations are disabled"
  - id: big_transfer
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} to {destination} needs approval"
"""


class Decider(ApprovalInterface):
    """A real channel that answers at once (what a webhook or chat bot would do)."""

    def __init__(
        self, status: ApprovalStatus, reason: str | None = None, delay: float = 0.0
    ) -> None:
        self.status = status
        self.reason = reason
        self.delay = delay
        self.seen: list[ApprovalRequest] = []

    async def request_approval(self, request: ApprovalRequest) -> ApprovalResult:
        self.seen.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return ApprovalResult(
            self.status, request.request_id, approved_by="bot", reason=self.reason
        )


@pytest.fixture
def rules(write_rules) -> Path:
    return write_rules(POLICY)


def config(rules: Path, db: Path, **kw: Any) -> SentinelConfig:
    return SentinelConfig(rules_path=rules, db_path=db, agent_id="sales", **kw)


def events(db: Path) -> list[Any]:
    from sentinel import runtime as guard
    from sentinel.store import Store

    for (path, _sync), sink in list(guard._sinks.items()):
        if path == db.absolute():
            sink.flush()
    store = Store(db)
    try:
        return list(reversed(store.history(None, limit=1000)))
    finally:
        store.close()


def test_allowed_sync_call_runs_and_is_recorded(rules: Path, db_path: Path) -> None:
    @protect(config(rules, db_path, audit_log=True))
    def transfer(amount: float, destination: str) -> str:
        """Move money."""
        return f"sent {amount} to {destination}"

    assert transfer(50, destination="ACC-1") == "sent 50 to ACC-1"
    assert transfer.__name__ == "transfer"
    assert transfer.__doc__ == "Move money."
    assert list(inspect.signature(transfer).parameters) == ["amount", "destination"]
    kinds = [e.kind for e in events(db_path)]
    assert kinds == ["allowed", "executed"]


def test_allowed_calls_are_not_recorded_without_audit_log(rules: Path, db_path: Path) -> None:
    @protect(config(rules, db_path))
    def transfer(amount: float, destination: str) -> str:
        return "ok"

    @protect(config(rules, db_path))
    def delete_user(user_id: int) -> None:
        return None

    assert transfer(1, "x") == "ok"
    with pytest.raises(SentinelBlockedError):
        delete_user(1)
    assert [e.kind for e in events(db_path)] == ["blocked"]  # blocks are always recorded


async def test_allowed_async_call_runs(rules: Path, db_path: Path) -> None:
    @protect(config(rules, db_path))
    async def transfer(amount: float, destination: str) -> str:
        await asyncio.sleep(0)
        return "ok"

    assert inspect.iscoroutinefunction(transfer)
    assert await transfer(5, "x") == "ok"


def test_blocked_call_never_runs(rules: Path, db_path: Path) -> None:
    ran = []

    @protect(config(rules, db_path))
    def delete_user(user_id: int) -> None:
        ran.append(user_id)

    with pytest.raises(SentinelBlockedError) as info:
        delete_user(7)
    assert ran == []
    assert info.value.rule_id == "no_delete"
    assert info.value.reason == "Delete operations are disabled"
    assert str(info.value).startswith(
        "[sales] Action 'delete_user' blocked: Delete operations are disabled"
    )
    blocked = [e for e in events(db_path) if e.kind == "blocked"]
    assert len(blocked) == 1 and blocked[0].rule_id == "no_delete"


def test_function_exceptions_pass_through_and_are_recorded(rules: Path, db_path: Path) -> None:
    @protect(config(rules, db_path, audit_log=True))
    def transfer(amount: float, destination: str) -> None:
        raise ValueError("insufficient funds")

    with pytest.raises(ValueError, match="insufficient funds"):
        transfer(10, "x")
    failed = [e for e in events(db_path) if e.kind == "failed"]
    assert failed and failed[0].data["error_type"] == "ValueError"


def test_methods_are_protected_without_self(rules: Path, db_path: Path) -> None:
    cfg = config(rules, db_path, approval_interface=Decider(ApprovalStatus.APPROVED))

    class Bank:
        def __init__(self) -> None:
            self.log: list[float] = []

        @protect(cfg)
        def transfer(self, amount: float, destination: str) -> str:
            self.log.append(amount)
            return "done"

    bank = Bank()
    assert bank.transfer(5000, "ACC-9") == "done"
    assert bank.log == [5000]
    request = cfg.approval_interface.seen[0]  # type: ignore[union-attr]
    assert "self" not in request.parameters
    assert request.parameters == {"amount": 5000, "destination": "ACC-9"}


def test_approval_granted_runs_with_rendered_reason(rules: Path, db_path: Path) -> None:
    channel = Decider(ApprovalStatus.APPROVED)

    @protect(config(rules, db_path, approval_interface=channel))
    def transfer(amount: float, destination: str) -> str:
        return "moved"

    assert transfer("5000", destination="ACC-9") == "moved"  # numeric string still needs approval
    request = channel.seen[0]
    assert request.reason == "Transfer of 5000 to ACC-9 needs approval"
    assert request.rule_id == "big_transfer"
    assert request.value_at_risk == 5000
    assert len(request.digest) == 64
    from sentinel.store import Store

    row = Store(db_path).get(request.request_id)
    assert row.status == "approved"
    assert row.operator is not None and row.operator["channel"] == "Decider"


def test_denied_raises_denied_error(rules: Path, db_path: Path) -> None:
    ran = []

    @protect(config(rules, db_path, approval_interface=Decider(ApprovalStatus.DENIED, "too big")))
    def transfer(amount: float, destination: str) -> None:
        ran.append(1)

    with pytest.raises(SentinelDeniedError) as info:
        transfer(5000, "x")
    assert ran == []
    assert "too big" in info.value.reason
    assert info.value.request_id


def test_expiry_is_its_own_outcome(rules: Path, db_path: Path) -> None:
    @protect(config(rules, db_path, timeout_seconds=0.3, show_waiting_hint=False))
    def transfer(amount: float, destination: str) -> None:
        raise AssertionError("must not run")

    start = time.monotonic()
    with pytest.raises(SentinelTimeoutError) as info:
        transfer(5000, "x")
    assert time.monotonic() - start < 3
    from sentinel.store import Store

    row = Store(db_path).get(info.value.request_id)
    assert row.status == "expired"  # never "denied"
    kinds = [e.kind for e in events(db_path)]
    assert "expired" in kinds and "denied" not in kinds


def test_queue_decision_from_another_thread_unblocks(rules: Path, db_path: Path, capsys) -> None:
    from sentinel.identity import current_operator
    from sentinel.store import Store

    @protect(config(rules, db_path, timeout_seconds=30))
    def transfer(amount: float, destination: str) -> str:
        return "moved"

    def operator() -> None:
        store = Store(db_path)
        for _ in range(200):
            pending = store.list_pending()
            if pending:
                signed_decide(store, pending[0].id, True, current_operator("cli"), "looks fine")
                return
            time.sleep(0.02)

    t = threading.Thread(target=operator)
    t.start()
    assert transfer(5000, "ACC-9") == "moved"
    t.join()
    err = capsys.readouterr().err
    assert "waiting for approval" in err and "sentinel approve" in err


def test_sync_function_inside_running_loop(rules: Path, db_path: Path) -> None:
    """The original raised RuntimeError: This event loop is already running."""

    @protect(config(rules, db_path, approval_interface=Decider(ApprovalStatus.APPROVED)))
    def transfer(amount: float, destination: str) -> str:
        return "moved"

    async def agent() -> str:
        return transfer(5000, "x")

    assert asyncio.run(agent()) == "moved"


async def test_async_context_fn_with_arguments(rules: Path, db_path: Path) -> None:
    channel = Decider(ApprovalStatus.APPROVED)

    async def context(amount: float) -> dict[str, Any]:
        return {"balance": 10_000, "after": 10_000 - amount}

    @protect(config(rules, db_path, approval_interface=channel), context_fn=context)
    async def transfer(amount: float, destination: str) -> str:
        return "ok"

    assert await transfer(4000, "x") == "ok"
    assert channel.seen[0].context == {"balance": 10_000, "after": 6000}


def test_context_fn_error_fails_secure(rules: Path, db_path: Path) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("balance service down")

    @protect(
        config(rules, db_path, approval_interface=Decider(ApprovalStatus.APPROVED)),
        context_fn=broken,
    )
    def transfer(amount: float, destination: str) -> None:
        raise AssertionError("must not run")

    with pytest.raises(SentinelBlockedError, match="balance service down"):
        transfer(5000, "x")
    assert "governance_error" in [e.kind for e in events(db_path)]


def test_context_fn_error_fail_safe_runs_and_records(rules: Path, db_path: Path) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("balance service down")

    cfg = config(
        rules, db_path, fail_mode="safe", approval_interface=Decider(ApprovalStatus.DENIED)
    )

    @protect(cfg, context_fn=broken)
    def transfer(amount: float, destination: str) -> str:
        return "ran"

    assert transfer(5000, "x") == "ran"
    kinds = [e.kind for e in events(db_path)]
    assert "fail_safe_passthrough" in kinds and "executed" in kinds


def test_unserialisable_arguments_never_crash(rules: Path, db_path: Path) -> None:
    import datetime as dt

    channel = Decider(ApprovalStatus.APPROVED)

    class Opaque:
        pass

    @protect(config(rules, db_path, approval_interface=channel))
    def transfer(
        amount: Decimal, destination: str, when: dt.datetime, raw: bytes, tags: set, obj: Opaque
    ) -> str:
        return "ok"

    args = (Decimal("5000.50"), "x", dt.datetime(2026, 1, 1), b"\x01", {"a"}, Opaque())
    assert transfer(*args) == "ok"
    assert channel.seen[0].parameters["amount"] == 5000.5
    assert channel.seen[0].parameters["when"] == "2026-01-01T00:00:00"
    assert [e.kind for e in events(db_path)][-1] == "executed"


def test_arguments_changed_after_approval_are_blocked(rules: Path, db_path: Path) -> None:
    recipients = ["ACC-1"]

    class Mutating(Decider):
        async def request_approval(self, request: ApprovalRequest) -> ApprovalResult:
            recipients.append("ATTACKER")  # another coroutine changes the live argument
            return await super().request_approval(request)

    @protect(config(rules, db_path, approval_interface=Mutating(ApprovalStatus.APPROVED)))
    def transfer(amount: float, destination: list[str]) -> None:
        raise AssertionError("must not run with changed arguments")

    with pytest.raises(SentinelBlockedError, match="changed after approval"):
        transfer(5000, recipients)


def test_bad_rules_file_fails_at_decoration(write_rules, db_path: Path) -> None:
    bad = write_rules("rules:\n  - id: x\n    function_pattern: '*'\n    action: explode\n")
    with pytest.raises(SentinelConfigError) as info:
        protect(SentinelConfig(rules_path=bad, db_path=db_path))
    assert str(bad.name) in str(info.value)


def test_store_unavailable_blocks_approval_calls(rules: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    @protect(SentinelConfig(rules_path=rules, db_path=blocker / "sentinel.db"))
    def transfer(amount: float, destination: str) -> None:
        raise AssertionError("must not run")

    with pytest.raises(SentinelBlockedError, match="governance error"):
        transfer(5000, "x")


def test_positional_args_and_kwargs_are_visible_to_rules(rules: Path, db_path: Path) -> None:
    @protect(config(rules, db_path, approval_interface=Decider(ApprovalStatus.DENIED)))
    def transfer(**kwargs: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(SentinelDeniedError):
        transfer(amount=5000, destination="x")


def test_preview_releases_what_hooks_reserved(rules: Path, db_path: Path) -> None:
    from sentinel.guard import Guard

    calls: list[str] = []

    class Recorder:
        def assess(self, call, verdict):
            calls.append("assess")

        def observe(self, call, succeeded):
            calls.append("observe")

        def abandon(self, call):
            calls.append("abandon")

    guard = Guard(config(rules, db_path), hooks=[Recorder()])
    assert guard.preview("transfer", {"amount": 5000, "destination": "x"}).action.value == "require_approval"
    assert calls == ["assess", "abandon"]
    calls.clear()
    with pytest.raises(SentinelBlockedError):
        guard.run_sync("delete_user", {"user_id": 1}, lambda: None)
    assert calls == ["assess", "abandon"]
    calls.clear()
    assert guard.run_sync("transfer", {"amount": 5, "destination": "x"}, lambda: "ran") == "ran"
    assert calls == ["assess", "observe"]


# --- per-function plans: the allowed fast path must never answer what it cannot know -----------

GATED = """
version: "1.0"
default_action: allow
rules:
  - id: big
    function_pattern: "pay*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: block
    message: "too much"
"""


def test_plan_follows_a_reloaded_policy(write_rules, db_path: Path) -> None:
    path = write_rules(GATED)
    cfg = config(path, db_path)

    @protect(cfg)
    def refund(amount: int) -> str:
        return "ran"

    @protect(cfg)
    async def arefund(amount: int) -> str:
        return "ran"

    assert refund(5) == "ran"  # no rule targets it: planned as "allow without looking"
    assert asyncio.run(arefund(5)) == "ran"
    path.write_text(GATED.replace('"pay*"', '"*refund"'), encoding="utf-8")
    assert cfg.policy_source().reload() is not None
    with pytest.raises(SentinelBlockedError):
        refund(5000)
    with pytest.raises(SentinelBlockedError):
        asyncio.run(arefund(5000))
    assert refund(5) == "ran"


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f(5000, "x"),  # positional, over the gate
        lambda f: f(amount=5000, note="x"),  # keywords take the evaluated path
        lambda f: f("5000", "x"),  # not an int: the gate cannot settle it
        lambda f: f(5000.5, "x"),
        lambda f: f(10**30, "x"),
    ],
)
def test_gate_never_lets_a_matching_call_through(write_rules, db_path: Path, call) -> None:
    ran: list[Any] = []

    @protect(config(write_rules(GATED), db_path))
    def payout(amount: Any, note: str) -> None:
        ran.append(amount)

    payout(5, "x")
    payout(1000, "x")  # the bound itself does not match `gt`
    with pytest.raises(SentinelBlockedError):
        call(payout)
    assert ran == [5, 1000]


def test_gate_on_a_method_and_with_case_folded_names(write_rules, db_path: Path) -> None:
    cfg = config(write_rules(GATED), db_path)

    class Bank:
        @protect(cfg)
        def pay(self, amount: int) -> str:
            return "ran"

    @protect(cfg)
    def pay_other(Amount: int) -> str:  # a folded spelling of the rule's parameter
        return "ran"

    assert Bank().pay(5) == "ran"
    with pytest.raises(SentinelBlockedError):
        Bank().pay(5000)
    with pytest.raises(SentinelBlockedError):
        pay_other(5000)


def test_turning_recording_on_later_is_not_skipped_by_a_plan(rules: Path, db_path: Path) -> None:
    cfg = config(rules, db_path)

    @protect(cfg)
    def lookup(key: str) -> str:
        return key

    assert lookup("a") == "a"
    assert events(db_path) == []
    guard = lookup.__sentinel_guard__  # type: ignore[attr-defined]
    guard.record_allowed = True
    assert lookup("b") == "b"
    assert [e.kind for e in events(db_path)] == ["allowed", "executed"]


def test_close_shared_releases_files_and_guards_reopen_them(rules: Path, db_path: Path) -> None:
    import os

    from sentinel.guard import close_shared

    @protect(config(rules, db_path, audit_log=True))
    def transfer(amount: float, destination: str) -> str:
        return "sent"

    assert transfer(50, destination="ACC-1") == "sent"
    events(db_path)  # flushed
    db_files = {str(db_path.absolute()), str(db_path.absolute()) + "-wal"}

    def open_db_files() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{fd}") in db_files
            except FileNotFoundError:  # the descriptor listdir itself used
                pass
        return count

    assert open_db_files() > 0
    close_shared(under=db_path.parent)
    assert open_db_files() == 0
    assert transfer(60, destination="ACC-2") == "sent"  # a fresh writer, nothing lost
    kinds = [e.kind for e in events(db_path)]
    assert kinds == ["allowed", "executed", "allowed", "executed"]
