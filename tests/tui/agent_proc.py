"""A real agent process for command-center tests (run as a subprocess, never imported by tests).

``submit DB SPEC_JSON``   submit requests, print ``SUBMITTED <id>`` for each, then wait for every
                          decision and print ``OUTCOME <id> <status> <decided_by> | <reason>``.
``protect DB RULES SPEC`` call a ``@protect``-ed function that needs approval; print
                          ``RESULT <value>`` or ``DENIED <decided_by>`` / ``BLOCKED <reason>``.
``calls DB RULES``         read one JSON object of arguments a line from stdin and call the
                          ``@protect``-ed ``transfer_funds`` with each (one process, one guard);
                          print ``CALLING <n>`` and then ``RESULT <n> <value>`` / ``DENIED <n> …``.
``decide DB ID approve|deny ACCOUNT``  decide as another operator (prints ``DECIDED`` or ``CONFLICT``).
``anomaly DB RULES AMOUNT``  with anomaly detection on, make five ordinary transfers (50 … 90,
                          they form the baseline), then one of AMOUNT, which the detector escalates
                          to approval; prints ``CALLING`` and then what it returned or raised.
``events DB SPEC_JSON``   append audit events (list of dicts), print ``EVENTS <n>``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _request(spec: dict[str, Any]) -> Any:
    from sentinel.store import NewRequest

    args = spec.get("arguments", {"amount": spec.get("value", 100)})
    return NewRequest(
        id=spec["id"],
        function=spec.get("function", "transfer_funds"),
        arguments=args,
        digest="0" * 64,
        timeout_seconds=float(spec.get("timeout", 600)),
        agent_id=spec.get("agent", "payments-agent"),
        context=spec.get("context"),
        rule_id=spec.get("rule", "large_transfer"),
        reason=spec.get("reason", "needs approval"),
        value_at_risk=spec.get("value"),
        risk_score=spec.get("risk"),
        risk_explanation=spec.get("risk_explanation"),
        policy_version=spec.get("policy_version", "0123456789abcdef" * 4),
        created_at=float(spec.get("created_at", time.time() - float(spec.get("age", 0)))),
    )


def submit(db: str, specs: list[dict[str, Any]]) -> int:
    from sentinel.store import Store, Watcher

    store = Store(db)
    futures = []
    for spec in specs:
        rec = store.submit(_request(spec))
        print(f"SUBMITTED {rec.id}", flush=True)
        futures.append(Watcher.for_path(db).watch(rec.id))
    for fut in futures:
        rec = fut.result(timeout=120)
        print(f"OUTCOME {rec.id} {rec.status} {rec.decided_by} | {rec.decision_reason}", flush=True)
    return 0


def protect_call(db: str, rules: str, spec: dict[str, Any]) -> int:
    from sentinel.config import SentinelConfig
    from sentinel.errors import SentinelBlockedError, SentinelDeniedError
    from sentinel.protect import protect

    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id="payments-agent", timeout_seconds=120,
        show_waiting_hint=False,
    )

    @protect(config)
    def transfer_funds(amount: float, destination: str) -> str:
        return f"transferred {amount} to {destination}"

    print("CALLING", flush=True)
    try:
        print(f"RESULT {transfer_funds(**spec)}", flush=True)
    except SentinelDeniedError as exc:
        print(f"DENIED {exc.decided_by}", flush=True)
    except SentinelBlockedError as exc:
        print(f"BLOCKED {exc.reason}", flush=True)
    return 0


def many_calls(db: str, rules: str) -> int:
    from sentinel.config import SentinelConfig
    from sentinel.errors import SentinelBlockedError, SentinelDeniedError
    from sentinel.protect import protect

    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id="payments-agent", timeout_seconds=120,
        show_waiting_hint=False,
    )

    @protect(config)
    def transfer_funds(amount: float, destination: str) -> str:
        return f"transferred {amount} to {destination}"

    print("READY", flush=True)
    for n, line in enumerate(sys.stdin, 1):
        print(f"CALLING {n}", flush=True)
        try:
            print(f"RESULT {n} {transfer_funds(**json.loads(line))}", flush=True)
        except SentinelDeniedError as exc:
            print(f"DENIED {n} {exc.decided_by}", flush=True)
        except SentinelBlockedError as exc:
            print(f"BLOCKED {n} {exc.reason}", flush=True)
    return 0


def anomaly_call(db: str, rules: str, amount: float) -> int:
    from sentinel.config import SentinelConfig
    from sentinel.errors import SentinelBlockedError, SentinelDeniedError
    from sentinel.protect import protect

    # block_at 10: an outlier escalates to approval (a person decides) instead of being blocked.
    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id="payments-agent", timeout_seconds=120,
        show_waiting_hint=False, anomaly_detection=True, anomaly_block_threshold=10.0,
    )

    @protect(config)
    def transfer_funds(amount: float, destination: str) -> str:
        return f"transferred {amount} to {destination}"

    for usual in (50, 60, 70, 80, 90):
        transfer_funds(amount=usual, destination="ACC-1001")
    print("CALLING", flush=True)
    try:
        print(f"RESULT {transfer_funds(amount=amount, destination='ACC-1001')}", flush=True)
    except SentinelDeniedError as exc:
        print(f"DENIED {exc.decided_by}", flush=True)
    except SentinelBlockedError as exc:
        print(f"BLOCKED {exc.reason}", flush=True)
    return 0


def decide(db: str, request_id: str, verdict: str, account: str) -> int:
    from sentinel.errors import DecisionConflict
    from sentinel.store import OperatorIdentity, Store

    op = OperatorIdentity(account, 4242, None, None, "otherhost", None, channel="cli")
    try:
        Store(db).decide(request_id, verdict == "approve", op, reason="from another terminal")
    except DecisionConflict:
        print("CONFLICT", flush=True)
        return 1
    print("DECIDED", flush=True)
    return 0


def events(db: str, specs: list[dict[str, Any]]) -> int:
    from sentinel.store import Store

    Store(db).append_events(specs)
    print(f"EVENTS {len(specs)}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    cmd, db = argv[0], argv[1]
    if cmd == "submit":
        return submit(db, json.loads(argv[2]))
    if cmd == "protect":
        return protect_call(db, argv[2], json.loads(argv[3]))
    if cmd == "calls":
        return many_calls(db, argv[2])
    if cmd == "anomaly":
        return anomaly_call(db, argv[2], float(argv[3]))
    if cmd == "decide":
        return decide(db, argv[2], argv[3], argv[4])
    if cmd == "events":
        return events(db, json.loads(argv[2]))
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
