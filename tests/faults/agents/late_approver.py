"""A separate process that approves a pending request after its expiry by raw SQL (run as a
script by tests/faults/test_approved_after_expiry.py, never imported).

``late_approver.py DB ID STAMP DROP``: take the write lock (``BEGIN IMMEDIATE``) at once so
the waiting call cannot mark the row expired, print ``LOCKED``, wait until the wall clock is past
the row's ``expires_at`` plus 1.5 s, then ``UPDATE`` it to approved with ``decided_at`` = the
row's ``created_at`` (STAMP ``early``, a lie) or now (STAMP ``now``), and commit. With DROP ``1``
the expiry triggers are dropped first, as an attacker with write access would. Prints
``APPROVED`` or ``REFUSED <message>``.
"""

from __future__ import annotations

import sqlite3
import sys
import time


def main(db: str, request_id: str, stamp: str, drop: str) -> int:
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    if drop == "1":
        conn.execute("DROP TRIGGER IF EXISTS requests_decided_in_time")
        conn.execute("DROP TRIGGER IF EXISTS requests_expiry_fixed")
    conn.execute("BEGIN IMMEDIATE")
    created_at, expires_at = conn.execute(
        "SELECT created_at, expires_at FROM requests WHERE id = ?", (request_id,)
    ).fetchone()
    print("LOCKED", flush=True)
    while time.time() <= expires_at + 1.5:
        time.sleep(0.02)
    decided_at = created_at if stamp == "early" else time.time()
    try:
        conn.execute(
            "UPDATE requests SET status = 'approved', decided_by = 'mallory', decided_at = ? "
            "WHERE id = ?",
            (decided_at, request_id),
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        print(f"REFUSED {exc}", flush=True)
        return 0
    print("APPROVED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
