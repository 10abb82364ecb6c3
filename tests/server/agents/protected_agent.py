"""A test agent process: one @protect'ed call that needs approval; prints the outcome as JSON.

Usage: protected_agent.py RULES DB CHANNEL AMOUNT [CALLS]
CHANNEL is ``queue`` or ``webhook`` (webhook settings come from SENTINEL_* variables).
Prints {"event": "start"}, then per call {"event": "result", "ok": bool, "value"|"error": ...}.
"""

from __future__ import annotations

import json
import sys
import time

from sentinel import SentinelConfig, protect


def say(**obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    rules, db, channel, amount = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    calls = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    config = SentinelConfig(
        rules_path=rules,
        db_path=db,
        approval_interface=channel,
        agent_id="e2e-agent",
        show_waiting_hint=False,
    )

    @protect(config)
    def transfer_funds(amount: int, to: str) -> str:
        return f"sent {amount} to {to}"

    say(event="start")
    for _ in range(calls):
        start = time.perf_counter()
        try:
            value = transfer_funds(amount, to="acct-7")
            say(
                event="result",
                ok=True,
                value=value,
                seconds=time.perf_counter() - start,
                unblocked=time.time(),
            )
        except Exception as exc:
            say(
                event="result",
                ok=False,
                error=f"{type(exc).__name__}: {exc}",
                unblocked=time.time(),
            )


if __name__ == "__main__":
    main()
