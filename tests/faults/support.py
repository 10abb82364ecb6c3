"""Shared checks for the fault suite: chain verification, database invariants, child processes.

Every fault test ends by proving the same things against the database itself: the audit chain
recomputes from ``events_after`` pages, every request that left ``pending`` has exactly one
final event, and nothing is still pending that should not be.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sentinel.store import FINAL_STATES, GENESIS_HASH, Store, event_hash
from tests.helpers import PYTHON, python_env

AGENT = str(Path(__file__).with_name("agents") / "fault_agent.py")

#: Event kinds that end a request (exactly one per decided request id).
FINAL_KINDS = ("approved", "denied", "expired", "cancelled")

RULES = """\
version: "1.0"
default_action: block
rules:
  - id: reads
    function_pattern: "read_*"
    action: allow
  - id: deletes
    function_pattern: "delete_*"
    action: block
    message: "deletes are disabled"
  - id: small_transfer
    function_pattern: "transfer*"
    conditions: [{param: amount, operator: lte, value: 1000}]
    action: allow
  - id: large_transfer
    function_pattern: "transfer*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
    message: "transfer of {amount} needs approval"
"""


def first_pending(source: Store | Path, timeout: float = 20) -> Any:
    """The oldest pending request, waiting for one; ``source`` is a store or a database path
    (which may not exist yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows: list[Any] = []
        if isinstance(source, Store):
            rows = source.list_pending()
        elif source.exists():
            with Store(source) as store:
                rows = store.list_pending()
        if rows:
            return rows[0]
        time.sleep(0.01)
    raise AssertionError("no pending request")


def raw_connection(db: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, as another process writing the database by hand would use."""
    return sqlite3.connect(str(db), isolation_level=None, timeout=10)


def all_events(store: Any, page: int = 1000) -> list[Any]:
    """Every event, oldest first, read in pages."""
    out: list[Any] = []
    after = 0
    while True:
        batch = store.events_after(after, page)
        if not batch:
            return out
        out.extend(batch)
        after = batch[-1].seq


def verify_chain(store: Any) -> int:
    """Recompute the hash chain from scratch; return the number of events. Fails naming the seq."""
    prev = GENESIS_HASH
    expected_seq = None
    events = all_events(store)
    for ev in events:
        if expected_seq is not None:
            assert ev.seq == expected_seq, f"gap in the chain: expected seq {expected_seq}, got {ev.seq}"
        assert ev.prev_hash == prev, f"event {ev.seq}: prev_hash does not link to event {ev.seq - 1}"
        fields = {
            "seq": ev.seq, "ts": ev.ts, "kind": ev.kind, "request_id": ev.request_id,
            "agent_id": ev.agent_id, "function": ev.function, "digest": ev.digest,
            "policy_version": ev.policy_version, "rule_id": ev.rule_id,
            "value_at_risk": ev.value_at_risk, "actor": ev.actor, "reason": ev.reason,
            "data": ev.data, "prev_hash": ev.prev_hash,
        }  # fmt: skip
        assert event_hash(prev, fields) == ev.hash, f"event {ev.seq}: hash does not recompute"
        prev = ev.hash
        expected_seq = ev.seq + 1
    return len(events)


def integrity_ok(db: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(str(db))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def final_events_by_request(store: Any) -> Counter[str]:
    """request id -> number of final events (approved/denied/expired/cancelled) recorded."""
    return Counter(
        ev.request_id for ev in all_events(store) if ev.kind in FINAL_KINDS and ev.request_id
    )


def request_rows(db: Path | str) -> dict[str, tuple[str, str | None]]:
    """id -> (status, arguments JSON) read straight from the table (test-side read only), from a
    SQLite file or a ``postgresql://`` database."""
    import sqlite3

    if str(db).startswith("postgresql://"):
        import psycopg

        with psycopg.connect(str(db)) as pg:
            return {r[0]: (r[1], r[2]) for r in pg.execute("SELECT id, status, arguments FROM requests")}
    conn = sqlite3.connect(str(db))
    try:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, status, arguments FROM requests")}
    finally:
        conn.close()


def assert_decided_once(store: Any, db: Path | str, allow_pending: Iterable[str] = ()) -> dict[str, Any]:
    """Every request is final (except ``allow_pending``) and has exactly one final event whose
    kind equals its status. Returns id -> status."""
    rows = request_rows(db)
    finals = final_events_by_request(store)
    kinds: dict[str, str] = {}
    for ev in all_events(store):
        if ev.kind in FINAL_KINDS and ev.request_id:
            kinds[ev.request_id] = ev.kind
    keep = set(allow_pending)
    for rid, (status, _args) in rows.items():
        if rid in keep and status == "pending":
            assert finals[rid] == 0, f"{rid}: pending but has a final event"
            continue
        assert status in FINAL_STATES, f"request {rid} is still {status}"
        assert finals[rid] == 1, f"request {rid} has {finals[rid]} final events (want exactly 1)"
        assert kinds[rid] == status, f"request {rid}: row {status} but event {kinds[rid]}"
    extra = set(finals) - set(rows)
    assert not extra, f"final events for unknown requests: {sorted(extra)[:5]}"
    return {rid: s for rid, (s, _a) in rows.items()}


#: Every child started by a test; tests/faults/conftest.py kills what a failed test left running.
LIVE: list[Proc] = []


class Proc:
    """A child Python process whose stdout lines are collected by a reader thread."""

    def __init__(self, args: list[str], script: str = AGENT, **env: str) -> None:
        LIVE.append(self)
        self.proc = subprocess.Popen(
            [PYTHON, script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=python_env(**env),
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"child never printed {prefix!r}; stdout {self.seen[-5:]}, stderr {''.join(self.err)[-2000:]}"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    time.sleep(0.05)
                    if self.lines.empty():
                        raise AssertionError(
                            f"child exited ({self.proc.returncode}) before {prefix!r}; stderr: {''.join(self.err)[-2000:]}"
                        ) from None
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def json_lines(self) -> list[dict[str, Any]]:
        """Drain every remaining stdout line (after the process ended) as JSON objects."""
        self.proc.wait(timeout=120)
        time.sleep(0.05)
        out = [json.loads(x) for x in self.seen if x.startswith("{")]
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return out
            if line.startswith("{"):
                out.append(json.loads(line))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def cli(*args: str, db: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sentinel.cli ARGS --db DB`` in a child process."""
    return subprocess.run(
        [PYTHON, "-m", "sentinel.cli", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=timeout,
    )
