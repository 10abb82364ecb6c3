"""An operator deciding in its own process (run as a script by tests/trust, never imported).

``decider.py DB REQUEST_ID approve|deny GO``: loads this operator's key ($SENTINEL_OPERATOR_KEY)
and the trusted operators file ($SENTINEL_OPERATORS_FILE) through ``Decider.local``, prints
``{"event": "ready"}``, waits until the file GO exists (so several deciders start their decision
at the same moment), then decides through the store. Prints ``{"event": "decided", "status": …,
"votes": N}`` or ``{"event": "refused", "error": type name, "message": …, "status": …}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(db: str, request_id: str, verdict: str, go: str) -> int:
    from sentinel.errors import DecisionConflict, DecisionRefused
    from sentinel.store import Store
    from sentinel.trust.decide import Decider

    decider = Decider.local("cli")
    store = Store(db)
    _say({"event": "ready", "name": decider.name})
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.001)
    try:
        rec = decider.decide(store, request_id, verdict == "approve", f"{decider.name} says so")
        _say({"event": "decided", "status": rec.status, "votes": len(rec.votes)})
    except (DecisionConflict, DecisionRefused) as exc:
        record = getattr(exc, "record", None)
        _say({"event": "refused", "error": type(exc).__name__, "message": str(exc),
              "status": record.status if record is not None else None})  # fmt: skip
    store.close()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.exit(main(*sys.argv[1:5]))
