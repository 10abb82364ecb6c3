"""A test agent process: submits approval requests to the store and waits for their decisions.

Usage:
  queue_agent.py submit-wait DB N [TIMEOUT]   submit N requests, wait for each (Watcher), print results
  queue_agent.py hold DB                      submit one request, print its id, then sleep until killed

Prints one JSON object per line (flushed): {"event": "submitted", "id": …} and
{"event": "result", "id": …, "status": …, "decided_by": …}.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

from sentinel.store import NewRequest, Store, Watcher


def _say(**obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _new(timeout: float) -> NewRequest:
    return NewRequest(
        id=uuid.uuid4().hex,
        function="transfer_funds",
        arguments={"amount": 1200, "to": "acct-7"},
        digest="cd" * 32,
        timeout_seconds=timeout,
        agent_id=f"agent-{os.getpid()}",
        rule_id="large-transfer",
        value_at_risk=1200.0,
    )


def submit_wait(db: str, n: int, timeout: float) -> None:
    store = Store(db)
    watcher = Watcher.for_path(db)
    futures = {}
    for _ in range(n):
        rec = store.submit(_new(timeout))
        futures[rec.id] = watcher.watch(rec.id)  # watch at once, like the guard
        _say(event="submitted", id=rec.id)
    deadline = time.monotonic() + timeout
    for rid, fut in futures.items():
        try:
            rec = fut.result(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            rec = store.expire(rid)  # CAS; obey whatever won
        assert rec is not None
        _say(event="result", id=rid, status=rec.status, decided_by=rec.decided_by)
    store.close()


def hold(db: str) -> None:
    store = Store(db)
    rec = store.submit(_new(600))
    Watcher.for_path(db).watch(rec.id)
    _say(event="submitted", id=rec.id, pid=os.getpid())
    time.sleep(600)


if __name__ == "__main__":
    mode, db = sys.argv[1], sys.argv[2]
    if mode == "submit-wait":
        submit_wait(db, int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 60.0)
    elif mode == "hold":
        hold(db)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
