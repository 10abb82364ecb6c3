"""Per-call cost of Policy.evaluate for a small (20-rule) and a large (1,000-rule) policy.

Run: .venv/bin/python benchmarks/policy_eval.py [--calls N] [--repeat R]
Prints best-of-R microseconds per call for several call shapes. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import random
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from sentinel.policy import Policy, policy_from_data


def make_policy(n_rules: int, *, targeted: int = 5) -> Policy:
    """``n_rules`` rules over ~n/5 distinct function families; ``targeted`` hit transfer_funds."""
    rng = random.Random(7)
    rules = []
    for i in range(targeted):
        rules.append(
            {
                "id": f"transfer_{i}",
                "function_pattern": "transfer_*" if i % 2 else "transfer_funds",
                "conditions": [
                    {"param": "amount", "operator": "gt", "value": 1000 * (i + 1)},
                    {"param": "currency", "operator": "in", "value": ["USD", "EUR"]},
                ],
                "action": "require_approval" if i % 2 else "block",
                "message": "Transfer of {amount} to {destination}",
                "priority": 100 + i,
            }
        )
    ops = ["gt", "eq", "contains", "regex", "startswith"]
    for i in range(n_rules - targeted):
        op = ops[i % len(ops)]
        value = {"gt": 10, "eq": "x", "contains": "y", "regex": "^a.*z$", "startswith": "p"}[op]
        rules.append(
            {
                "id": f"r{i}",
                "function_pattern": f"tool_{i % max(1, n_rules // 5)}_*",
                "conditions": [{"param": f"p{i % 7}", "operator": op, "value": value}],
                "action": rng.choice(["allow", "block", "require_approval"]),
            }
        )
    return policy_from_data({"rules": rules})


def bench(
    policy: Policy, function: str, params: dict[str, object], calls: int, repeat: int
) -> float:
    evaluate = policy.evaluate
    times = timeit.repeat(
        lambda: evaluate(function, params, "agent-1"), number=calls, repeat=repeat
    )
    return min(times) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    shapes = [
        ("no rule targets the function", "read_file", {"path": "/tmp/x"}),
        ("5 rules target it, none match", "transfer_funds", {"amount": 10, "currency": "USD"}),
        ("5 rules target it, 3 match", "transfer_funds", {"amount": 4000, "currency": "USD", "destination": "acme"}),
        ("numeric string amount", "transfer_funds", {"amount": "4000", "currency": "USD"}),
    ]  # fmt: skip
    for n in (20, 1000):
        policy = make_policy(n)
        print(f"policy with {n} rules:")
        for label, fn, params in shapes:
            us = bench(policy, fn, params, args.calls, args.repeat)
            print(f"  {label:<34} {us:6.2f} µs/call  -> {policy.evaluate(fn, params).action.value}")


if __name__ == "__main__":
    main()
