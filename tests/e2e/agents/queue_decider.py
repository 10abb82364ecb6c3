"""A test operator process: races to decide every pending request until EXPECTED are decided.

Usage: queue_decider.py DB NAME EXPECTED [MAX_SECONDS]
Prints one JSON line per attempt: {"id", "won": bool, "status"}; approves or denies at random.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import replace

from sentinel.errors import DecisionConflict
from sentinel.store import HistoryFilter, OperatorIdentity, Store
from sentinel.trust.decide import Decider


def main(db: str, name: str, expected: int, max_seconds: float) -> None:
    store = Store(db)
    op = OperatorIdentity(
        account=name, uid=1000, login_uid=None, login_account=None, host="test", ssh_client=None
    )
    # Signed with the tester's key when the test's operators file trusts it (signing on).
    decider = replace(Decider.local("cli"), operator=op)
    decided = HistoryFilter(kinds=("approved", "denied"))
    deadline = time.monotonic() + max_seconds
    rng = random.Random(name)
    while time.monotonic() < deadline:
        pending = store.list_pending()
        rng.shuffle(pending)
        for rec in pending:
            try:
                out = decider.decide(store, rec.id, rng.random() < 0.5)
                line = {"id": rec.id, "won": True, "status": out.status}
            except DecisionConflict as exc:
                line = {"id": rec.id, "won": False, "status": exc.record.status}
            sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        if len(store.history(decided, limit=expected)) >= expected:
            break
        if not pending:
            time.sleep(0.002)
    store.close()


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        float(sys.argv[4]) if len(sys.argv) > 4 else 60.0,
    )
