"""A child process for the grant torture (run as a script, never imported by tests).

``grant_agent.py DB RULES N GO``  wait until the file GO exists, then make N ``transfer`` calls
that the rules send for approval (a short approval timeout: a call no grant covers expires
quickly); print one JSON line: how many ran (under the grant) and how many did not.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(db: str, rules: str, n: int, go: str) -> int:
    from sentinel.config import SentinelConfig
    from sentinel.errors import SentinelTimeoutError
    from sentinel.protect import protect

    config = SentinelConfig(
        rules_path=rules, db_path=db, agent_id="billing", timeout_seconds=0.05,
        show_waiting_hint=False, hot_reload=False,
    )  # fmt: skip
    ran = 0

    @protect(config)
    def transfer(amount: float, nonce: int) -> None:
        nonlocal ran
        ran += 1

    print("READY", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    refused = 0
    for i in range(n):
        try:
            transfer(2000, i)
        except SentinelTimeoutError:
            refused += 1
    print(json.dumps({"ran": ran, "refused": refused}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
