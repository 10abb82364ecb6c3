"""A waiting agent for the trust tests (run as a script by tests/trust, never imported).

``waiter.py DB RULES MARKER CALL [CALL ...]``: each CALL is ``AMOUNT:TO``, made in order through
a ``@protect``-ed ``transfer_funds`` that appends ``AMOUNT TO`` to MARKER when — and only when —
it really runs (with $WAITER_ASYNC=1 an ``async def`` one, awaited in ``asyncio.run``). Before
each call it prints ``{"event": "calling", "n": N}``; after it
``{"event": "result", "n": N, "outcome": ran|blocked|denied|expired, "error": type name,
"message": …, "request_id": …}``. The operators file and the home come from the environment
(SENTINEL_OPERATORS_FILE, SENTINEL_HOME) that the test passes explicitly.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(db: str, rules: str, marker: str, calls: list[str]) -> int:
    from sentinel.config import SentinelConfig
    from sentinel.errors import SentinelBlockedError, SentinelDeniedError, SentinelTimeoutError
    from sentinel.protect import protect

    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id="waiter", show_waiting_hint=False,
        hot_reload=False,
    )  # fmt: skip

    def send(amount: int, to: str) -> str:
        with open(marker, "a", encoding="utf-8") as f:
            f.write(f"{amount} {to}\n")
        return "sent"

    if os.environ.get("WAITER_ASYNC") == "1":

        @protect(config)
        async def transfer_funds(amount: int, to: str) -> str:  # the rule matches this name
            return send(amount, to)

        guarded: Any = transfer_funds

        def call(amount: int, to: str) -> Any:
            return asyncio.run(guarded(amount, to))
    else:

        @protect(config)
        def transfer_funds(amount: int, to: str) -> str:
            return send(amount, to)

        guarded = call = transfer_funds

    for n, spec in enumerate(calls):
        amount, to = spec.split(":", 1)
        _say({"event": "calling", "n": n})
        out: dict[str, Any] = {"event": "result", "n": n}
        try:
            call(int(amount), to)
            out["outcome"] = "ran"
        except SentinelBlockedError as exc:
            if isinstance(exc, SentinelDeniedError):
                out["outcome"] = "denied"
            elif isinstance(exc, SentinelTimeoutError):
                out["outcome"] = "expired"
            else:
                out["outcome"] = "blocked"
            out.update(error=type(exc).__name__, message=str(exc), request_id=exc.request_id)
        guarded.__sentinel_guard__.flush()  # type: ignore[attr-defined]
        _say(out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
