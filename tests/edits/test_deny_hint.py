"""``deny_hint`` on rules: validated when the rules load (file, line, why), carried by the block
and denial exceptions in plain Python, and part of what an integration's model reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, protect
from sentinel.errors import PolicyError, SentinelDeniedError
from sentinel.integrations._common import check_block_message, render_block
from sentinel.policy import parse_policy
from tests.helpers import signed_decide

HINTED = """
version: "1.0"
default_action: allow
rules:
  - id: huge
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 10000}
    action: block
    message: "Transfers above 10,000 are not allowed"
    deny_hint: "split transfers above 10,000 into approved batches"
  - id: big
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    deny_hint: "ask the customer to confirm first"
"""


def test_hint_loads_and_is_looked_up_by_rule() -> None:
    policy = parse_policy(HINTED)
    assert policy.hint_for("huge") == "split transfers above 10,000 into approved batches"
    assert policy.hint_for("big") == "ask the customer to confirm first"
    assert policy.hint_for(None) is None and policy.hint_for("nope") is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('    action: allow\n    deny_hint: "x"\n', "an allow rule stops nothing"),
        ('    action: block\n    deny_hint: "   "\n', "`deny_hint` is blank"),
        ('    action: block\n    deny_hint: ""\n', "deny_hint"),
        ("    action: block\n    deny_hint: [a, b]\n", "deny_hint"),
    ],
)
def test_a_bad_hint_is_a_load_error_naming_it(rule: str, message: str) -> None:
    text = 'version: "1.0"\nrules:\n  - id: r1\n    function_pattern: "f"\n' + rule
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "rules.yaml")
    assert message in str(info.value) and "rules.yaml" in str(info.value)


def test_plain_python_block_and_denial_carry_the_hint(tmp_path: Path, db_path: Path) -> None:
    import threading
    import time

    from sentinel.store import Store

    rules = tmp_path / "rules.yaml"
    rules.write_text(HINTED)
    cfg = SentinelConfig(rules_path=rules, db=db_path, timeout_seconds=30, show_waiting_hint=False)

    @protect(cfg)
    def transfer(amount: int) -> int:
        return amount

    with pytest.raises(SentinelBlockedError) as blocked:
        transfer(50_000)
    assert blocked.value.hint == "split transfers above 10,000 into approved batches"
    assert "(hint: split transfers above 10,000 into approved batches)" in str(blocked.value)

    def deny() -> None:
        with Store(db_path) as store:
            for _ in range(500):
                pending = store.list_pending()
                if pending:
                    signed_decide(store, pending[0].id, False, reason="no")
                    return
                time.sleep(0.01)

    t = threading.Thread(target=deny)
    t.start()
    with pytest.raises(SentinelDeniedError) as denied:
        transfer(5000)
    t.join()
    assert denied.value.hint == "ask the customer to confirm first"
    text = render_block(denied.value, None, "transfer")
    assert text.endswith("Do not retry this call. Hint: ask the customer to confirm first.")
    custom = check_block_message("{tool}: {reason} ({hint})", "t")
    assert render_block(denied.value, custom, "transfer").endswith("(ask the customer to confirm first)")


def test_the_webhook_channel_never_runs_an_approval_made_with_edits() -> None:
    import json

    from sentinel.approval.base import ApprovalStatus
    from sentinel.approval.webhook import read_status_reply

    body = {"action_id": "a" * 16, "status": "approved", "approved_by": "alice"}
    plain = read_status_reply(200, {}, json.dumps(body).encode(), action_id="a" * 16)
    assert plain.status is ApprovalStatus.APPROVED
    edited = read_status_reply(
        200, {}, json.dumps({**body, "edit": {"values": {"amount": 1}}}).encode(), action_id="a" * 16
    )
    assert edited.status is ApprovalStatus.DENIED and "cannot run" in (edited.reason or "")
