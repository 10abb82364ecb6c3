"""An agent process with write access to the database forging a decision (run as a script by
tests/trust, never imported). It writes with plain ``sqlite3`` as any code holding the file
could, then sends the wake-up datagram any process on the host can send (or, with
``"hint": false``, lets the waiting call's own polling find the change).

``forger.py DB REQUEST_ID SPEC``, SPEC a JSON object:

* ``mode``:
  ``flip``       set the row approved, no vote at all;
  ``unsigned``   add an approving vote named ``operator`` with no signature;
  ``copy``       a fresh vote for this request carrying the signature of ``from``'s approval;
  ``replay``     add request ``from``'s approving votes as they are;
  ``duplicate``  add this request's approving votes a second time (each operator counted twice);
  ``turn``       turn this request's recorded denials into approvals (signatures kept);
  ``sign``       a vote signed with the key at $SENTINEL_OPERATOR_KEY over this request as its row
                 reads, named ``operator``; ``decided_at: "created"`` back-dates it to the
                 request's creation; ``tamper`` overwrites vote fields after signing;
  ``rewrite``    replace the row's ``digest`` and ``arguments`` (the request stays pending).
* ``status``: what to set (default ``approved``; ``rewrite`` leaves it).
* ``columns``: other columns to overwrite in the same write (JSON values are written as JSON
  text), e.g. the row's own copy of the rule's ``terms`` or of the ``requester``.
* ``hint``: send the wake-up datagram (default true).

Prints ``{"event": "forged", "votes": [...]}`` after its commit, or ``{"event": "refused",
"error": …}`` when the database refused the write.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _hint(lock_path: str | None) -> None:
    """The datagram the waiting process listens for (sentinel.store.hints.address); it only
    makes the waiter re-read the row."""
    if not lock_path:
        return
    name = b"\0sentinel-hint:" + hashlib.sha256(lock_path.encode()).hexdigest()[:40].encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"!", name)
        except OSError:
            pass


def _approving(conn: sqlite3.Connection, request_id: str) -> list[dict[str, Any]]:
    (votes,) = conn.execute("SELECT votes FROM requests WHERE id = ?", (request_id,)).fetchone()
    return [v for v in json.loads(votes) if v.get("verdict") == "approve"]


def _signed(row: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    from sentinel.identity import current_operator
    from sentinel.trust import load_key, sign_decision

    key = load_key()  # $SENTINEL_OPERATOR_KEY
    decided_at = row["created_at"] if spec.get("decided_at") == "created" else time.time()
    decided_at = round(float(decided_at), 6)
    vote = {
        "operator": spec["operator"], "verdict": "approve", "decided_at": decided_at,
        "role": None, "groups": [], "account": spec.get("account", current_operator().account),
        "label": "forger", "channel": "sqlite3", "reason": "forged",
    }  # fmt: skip
    vote["signature"] = sign_decision(
        key, request_id=row["id"], digest=row["digest"], verdict="approve",
        operator=vote["operator"], decided_at=decided_at, expires_at=row["expires_at"],
        account=vote["account"],
    )  # fmt: skip
    vote.update(spec.get("tamper", {}))
    return vote


def main(db: str, request_id: str, spec: dict[str, Any]) -> int:
    mode = spec["mode"]
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("BEGIN IMMEDIATE")
    row = dict(conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone())
    votes = json.loads(row["votes"])
    now = time.time()
    if mode == "flip":
        pass
    elif mode == "unsigned":
        votes.append({"operator": spec["operator"], "verdict": "approve", "decided_at": now,
                      "signature": None, "account": spec["operator"]})  # fmt: skip
    elif mode == "copy":
        original = _approving(conn, spec["from"])[0]
        votes.append(dict(original, decided_at=now, reason="copied"))
    elif mode == "replay":
        votes.extend(_approving(conn, spec["from"]))
    elif mode == "duplicate":
        votes.extend(_approving(conn, request_id))
    elif mode == "turn":
        votes = [dict(v, verdict="approve") for v in votes]
    elif mode == "sign":
        votes.append(_signed(row, spec))
    elif mode != "rewrite":
        raise SystemExit(f"unknown mode {mode!r}")
    try:
        # Other columns first: once the status is final, the row's trigger refuses any change.
        for column, value in spec.get("columns", {}).items():
            text = value if isinstance(value, str) else json.dumps(value)
            conn.execute(f"UPDATE requests SET {column} = ? WHERE id = ?", (text, request_id))
        if mode == "rewrite":
            conn.execute(
                "UPDATE requests SET digest = ?, arguments = ? WHERE id = ?",
                (spec["digest"], json.dumps(spec["arguments"]), request_id),
            )
        else:
            conn.execute(
                "UPDATE requests SET status = ?, decided_at = ?, decided_by = 'mallory', "
                "votes = ? WHERE id = ?",
                (spec.get("status", "approved"), now, json.dumps(votes), request_id),
            )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        _say({"event": "refused", "error": str(exc)})
        return 0
    if spec.get("hint", True):
        _hint(row["lock_path"])
    _say({"event": "forged", "votes": votes})
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.exit(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
