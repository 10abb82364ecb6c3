"""What a windowed-sum limit adds to an allowed call.

Two processes' worth of setups in one script, each against its own database: a policy whose rules
target the function but do not match it (the allowed-call fast path), and the same policy plus a
``limit: {sum: amount, max: …, window: 24h, per: agent}`` rule counting the function. Prints, per
call, wall time and CPU time (all threads: a call a limit looked at is also recorded by the
background event writer, whose flush is included) for both, and the difference. Repeated with the
counter already holding many calls in the window (the check reads a running total, so it should
not grow). Finally the store's check-and-reserve transaction alone.

    python benchmarks/limits.py [--n 3000] [--prefill 0,1000,10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# benchmarks/queue.py would shadow the standard library's queue module for imports from here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

BASE = """
rules:
  - id: big
    function_pattern: "transfer*"
    conditions: [{param: amount, operator: gt, value: 100000}]
    action: require_approval
"""
LIMIT = """
  - id: daily_spend
    function_pattern: transfer
    limit: {sum: amount, max: 1000000000000, window: 24h, per: agent}
    action: require_approval
"""


def measure(fn: Any, n: int, flush: Any, rounds: int = 5) -> tuple[float, float]:
    """Best of ``rounds``: (wall µs, CPU µs) per call, the event flush included."""
    best: list[tuple[float, float]] = []
    for _ in range(rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            fn(5, "acme")
        flush()
        best.append(((time.perf_counter() - t0) / n * 1e6, (time.process_time() - c0) / n * 1e6))
    return min(best)


def setup(folder: Path, text: str) -> tuple[Any, Any]:
    from sentinel import SentinelConfig, protect
    from sentinel.runtime import _sinks

    folder.mkdir()
    rules = folder / "rules.yaml"
    rules.write_text(textwrap.dedent(text).lstrip())
    cfg = SentinelConfig(
        rules_path=rules, db_path=folder / "sentinel.db", agent_id="bench", hot_reload=False
    )

    @protect(cfg)
    def transfer(amount: int, destination: str) -> int:
        return amount

    transfer(1, "warm")

    def flush() -> None:
        for sink in _sinks.values():
            sink.flush()

    return transfer, flush


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--prefill", default="0,1000,10000")
    parser.add_argument(
        "--quiet-when-no-escalation",
        action="store_true",
        help="what-if: let the guard skip recording an allowed call when no hook escalated "
        "(a proposed change to Guard._quiet; patched in this process only)",
    )
    args = parser.parse_args()
    if args.quiet_when_no_escalation:
        from sentinel.guard import Guard

        def quiet(self: Any, decision: Any) -> bool:
            return (
                not self.record_allowed and not decision.escalations and not decision.verdict.shadow
            )

        Guard._quiet = quiet  # type: ignore[method-assign]
        print("(what-if: Guard._quiet ignores hooks that did not escalate)")
    from sentinel.runtime import store_for as _store_for
    from sentinel.store.limits import LimitCheck

    with tempfile.TemporaryDirectory() as tmp:
        plain, flush_plain = setup(Path(tmp) / "plain", BASE)
        limited, flush_limited = setup(Path(tmp) / "limited", BASE + LIMIT)
        store = _store_for(Path(tmp) / "limited" / "sentinel.db")
        key = "daily_spend|sum:amount|agent=bench"
        filled = 0
        print(f"allowed call, best of 5 x {args.n} calls, per call (wall / CPU of all threads)")
        for target in (int(x) for x in args.prefill.split(",")):
            while filled < target:  # calls already counted in the window
                batch = min(500, target - filled)
                store.limit_reserve([LimitCheck(key, 86400, 1e12, 1.0)] * batch)
                filled += batch
            pw, pc = measure(plain, args.n, flush_plain)
            lw, lc = measure(limited, args.n, flush_limited)
            print(
                f"  {filled:>6} calls in the window: no limit {pw:6.2f} / {pc:6.2f} µs   "
                f"windowed sum {lw:6.2f} / {lc:6.2f} µs   difference {lw - pw:6.2f} / "
                f"{lc - pc:6.2f} µs (target <= 50)"
            )
        checks = [LimitCheck(key, 86400, 1e12, 5.0)]
        times = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            store.limit_reserve(checks)
            times.append((time.perf_counter() - t0) * 1e6)
        print(
            f"  of which the store's check-and-reserve transaction: median "
            f"{statistics.median(times):.1f} µs"
        )


if __name__ == "__main__":
    main()
