"""Replay of recorded calls against a candidate policy: 100,000 calls, a 200-rule policy.

Builds a database with N decision events (allowed / blocked / approval_requested, each with its
redacted arguments, over ~40 tool names and 10 agents), then times
:func:`sentinel.policy.replay.replay_history` — reading the history and evaluating every call —
for a 200-rule candidate policy. Prints the events per second and what would change.

    python benchmarks/replay.py [--events 100000] [--rules 200]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# benchmarks/queue.py would shadow the standard library's queue module for imports from here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

TOOLS = [f"tool_{i}_{verb}" for i in range(10) for verb in ("read", "write", "send", "delete")]


def candidate(n_rules: int) -> Any:
    from sentinel.policy import policy_from_data

    rng = random.Random(3)
    ops = [
        ("amount", "gt", lambda: rng.randint(100, 5000)),
        ("destination", "in", lambda: [f"acct-{rng.randint(0, 50)}" for _ in range(5)]),
        ("path", "startswith", lambda: rng.choice(["/etc", "/var", "/home"])),
        ("note", "regex", lambda: "urgent|asap"),
        ("count", "lte", lambda: rng.randint(1, 20)),
    ]
    rules = []
    for i in range(n_rules):
        param, op, value = ops[i % len(ops)]
        rules.append(
            {
                "id": f"r{i}",
                "function_pattern": rng.choice(
                    [
                        rng.choice(TOOLS),
                        f"tool_{rng.randint(0, 9)}_*",
                        f"*_{rng.choice(['send', 'delete'])}",
                    ]
                ),
                "conditions": [{"param": param, "operator": op, "value": value()}],
                "action": rng.choice(["allow", "require_approval", "block"]),
                "message": f"rule {i}: {{{param}}}",
            }
        )
    return policy_from_data({"rules": rules})


def fill(db: Path, n: int) -> None:
    from sentinel.store import Store

    rng = random.Random(5)
    kinds = ["allowed"] * 8 + ["blocked", "approval_requested"]
    now = time.time()
    with Store(db) as store:
        batch: list[dict[str, Any]] = []
        for i in range(n):
            kind = rng.choice(kinds)
            args = {
                "amount": rng.randint(1, 10_000),
                "destination": f"acct-{rng.randint(0, 80)}",
                "path": rng.choice(["/etc/passwd", "/var/log/x", "/home/u/f", "/tmp/y"]),
                "note": rng.choice(["", "urgent please", "later"]),
                "count": rng.randint(0, 30),
            }
            event: dict[str, Any] = {
                "kind": kind,
                "ts": now - (n - i) * 2.0,
                "function": rng.choice(TOOLS),
                "agent_id": f"agent-{rng.randint(0, 9)}",
                "value_at_risk": float(args["amount"]),
                "data": {"arguments" if kind == "approval_requested" else "args": args},
            }
            if kind != "allowed":
                event["rule_id"] = f"old_{rng.randint(0, 20)}"
            batch.append(event)
            if len(batch) == 5000:
                store.append_events(batch)
                batch = []
        if batch:
            store.append_events(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=200)
    args = parser.parse_args()
    from sentinel.policy.replay import replay_history
    from sentinel.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "sentinel.db"
        t0 = time.perf_counter()
        fill(db, args.events)
        print(f"recorded {args.events:,} decision events in {time.perf_counter() - t0:.1f} s")
        policy = candidate(args.rules)
        with Store(db, create=False) as store:
            t0 = time.perf_counter()
            report = replay_history(policy, store)
            elapsed = time.perf_counter() - t0
        print(
            f"replay of {report.events:,} calls against a {args.rules}-rule policy: "
            f"{elapsed:.2f} s ({report.events / elapsed:,.0f} calls/s; target <= 10 s)"
        )
        print(
            f"  {report.evaluated:,} evaluated, {report.unchanged:,} unchanged, "
            f"{report.changed:,} would change in {len(report.flips)} (transition, rule) groups"
        )
        for (before, after), (n, value) in sorted(report.transitions().items()):
            print(f"    {before:>16} -> {after:<16} {n:>7,} calls  value at risk {value:,.0f}")


if __name__ == "__main__":
    main()
