"""How long a call that runs under a standing grant takes to be decided, next to a plain allow.

Each setup is its own SQLite database and guard (``Guard.run_sync``, the path ``@protect`` takes):

* ``allow``            — the policy allows the call outright (the fast path, nothing recorded);
* ``allow, audited``   — the same with ``audit_log=True`` (an ``allowed`` event per call);
* ``grant``            — the rules send the call for approval; a grant with a bound and no cap
  answers it: the gate's cached grant set (re-read when ``data_version`` changes), the atomic
  consume in the database (one write transaction: the use counted, a ``grant_uses`` row and a
  ``grant_used`` event in the hash chain), then the ``allowed`` / ``executed`` events queued;
* ``grant, capped``    — the same with ``max_count`` and ``max_total`` (large enough to last);
* ``grant, default``   — ``grant`` with ``require_signed_decisions`` left at its default (on once an
  operators file exists) and no operators file: each call looks whether the file appeared;
* ``grant, signed``    — ``grant`` with signed decisions on: the grant's Ed25519 signature checked
  (once per grant row, then cached) and the operators file checked on every call (as approvals
  do: its fingerprint compared, the file read again only when it changed — so the run waits until
  the file written by the setup is old enough to be remembered, ``SETTLE_NS``).

Prints median and p99 of the per-call wall time (the invoked function does nothing) and the
flush of the queued events at the end, amortised. Then the store's consume transaction alone.

    python benchmarks/grants.py [--n 3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

RULES = """
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: transfer
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def bench(name: str, guard: Any, amount: int, n: int) -> tuple[str, float, float, float]:
    from sentinel.runtime import _sinks

    params = {"amount": amount, "destination": "ACC-1"}
    for _ in range(200):  # warm: caches, the first write of the sink
        guard.run_sync("transfer", params, lambda: None)
    for sink in _sinks.values():
        sink.flush()
    samples: list[float] = []
    t0 = time.perf_counter()
    for _ in range(n):
        s = time.perf_counter_ns()
        guard.run_sync("transfer", params, lambda: None)
        samples.append((time.perf_counter_ns() - s) / 1000)
    for sink in _sinks.values():
        sink.flush()
    total = (time.perf_counter() - t0) / n * 1e6
    p50, p99 = percentiles(samples)
    return name, p50, p99, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()

    from sentinel import SentinelConfig
    from sentinel.guard import Guard
    from sentinel.identity import current_operator
    from sentinel.store import GrantBound, NewGrant, Store
    from sentinel.trust import add_operator, generate_key
    from sentinel.trust.decide import Decider

    tmp = Path(tempfile.mkdtemp(prefix="sentinel-bench-grants-"))
    rules = tmp / "rules.yaml"
    rules.write_text(textwrap.dedent(RULES).lstrip())
    # Big enough never to run out during the run.
    bound = (GrantBound("amount", "lte", 5000), GrantBound("destination", "in", ["ACC-1"]))

    def guard(db: Path, *, audit: bool = False, signed: bool | None = False) -> Guard:
        return Guard(
            SentinelConfig(
                rules_path=rules, db_path=db, agent_id="bench", hot_reload=False,
                audit_log=audit, require_signed_decisions=signed, timeout_seconds=5,
            )
        )  # fmt: skip

    def with_grant(folder: str, **terms: Any) -> Path:
        db = tmp / folder / "sentinel.db"
        store = Store(db)
        try:
            store.create_grant(NewGrant("bench", "transfer", bound, **terms), current_operator())
        finally:
            store.close()
        return db

    rows = [
        bench("allow", guard(tmp / "a" / "sentinel.db"), 10, args.n),
        bench("allow, audited", guard(tmp / "b" / "sentinel.db", audit=True), 10, args.n),
        bench("grant", guard(with_grant("c")), 2000, args.n),
        bench(
            "grant, capped",
            guard(with_grant("d", max_count=10**9, max_total=1e15)),
            2000,
            args.n,
        ),
    ]
    os.environ["SENTINEL_OPERATORS_FILE"] = str(tmp / "no-trust" / "operators.json")
    rows.append(bench("grant, default", guard(with_grant("g"), signed=None), 2000, args.n))
    # Signed: a trusted operator's key, the grant signed with it.
    key = generate_key(tmp / "key.pem")
    operators = tmp / "trusted" / "operators.json"
    operators.parent.mkdir()
    operators.parent.chmod(0o755)
    add_operator(operators, "bench-op", key.public_key, [])
    os.environ["SENTINEL_OPERATORS_FILE"] = str(operators)
    os.environ["SENTINEL_OPERATOR_KEY"] = str(key.path)
    db = tmp / "e" / "sentinel.db"
    store = Store(db)
    try:
        Decider.local("cli").create_grant(store, NewGrant("bench", "transfer", bound))
    finally:
        store.close()
    from sentinel.trust import operators as trust_file

    settle = getattr(trust_file, "SETTLE_NS", 0) / 1e9  # (older versions read it every call)
    time.sleep(max(0.0, settle - (time.time() - operators.stat().st_mtime) + 0.1))
    rows.append(bench("grant, signed", guard(db, signed=True), 2000, args.n))

    print(f"per call, n={args.n} (µs; 'amortised' includes flushing the queued events)")
    print(f"{'setup':<18}{'median':>10}{'p99':>10}{'amortised':>12}")
    for name, p50, p99, total in rows:
        print(f"{name:<18}{p50:>10.1f}{p99:>10.1f}{total:>12.1f}")
    base = rows[0][1]
    for name, p50, _p99, _t in rows[1:]:
        print(f"  {name}: +{p50 - base:.1f} µs median over a plain allow")

    # The consume transaction alone (what the gate adds on top of the policy's own work).
    store = Store(with_grant("f"))
    try:
        params = {"amount": 2000, "destination": "ACC-1"}
        for _ in range(200):
            store.consume_grant("bench", "transfer", params, 2000.0)
        samples = []
        for _ in range(args.n):
            s = time.perf_counter_ns()
            store.consume_grant("bench", "transfer", params, 2000.0, digest="d" * 64)
            samples.append((time.perf_counter_ns() - s) / 1000)
        p50, p99 = percentiles(samples)
        print(f"store.consume_grant alone: median {p50:.1f} µs, p99 {p99:.1f} µs")
        samples = []
        for _ in range(args.n):
            s = time.perf_counter_ns()
            store.data_version()
            samples.append((time.perf_counter_ns() - s) / 1000)
        p50, p99 = percentiles(samples)
        print(f"store.data_version (the cache check): median {p50:.1f} µs, p99 {p99:.1f} µs")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
