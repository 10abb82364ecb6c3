"""The API's pending list follows the database through the audit log, without re-reading it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.identity import current_operator
from sentinel.server import pending as pending_module
from sentinel.server.pending import PendingIndex
from sentinel.store import NewRequest, Store
from tests.helpers import signed_decide


def new(store: Store, timeout: float = 600, created: float | None = None) -> str:
    rid = uuid.uuid4().hex
    store.submit(
        NewRequest(
            id=rid,
            function="f",
            arguments={"x": 1},
            digest="a" * 64,
            timeout_seconds=timeout,
            created_at=time.time() if created is None else created,
        )
    )
    return rid


def ids(index: PendingIndex, limit: int = 10_000) -> list[str]:
    return [row["action_id"] for row in json.loads(index.body(limit, time.time()))]


def truth(store: Store) -> list[str]:
    now = time.time()
    return [r.id for r in store.list_pending(100_000) if r.expires_at > now]


def test_changes_are_replayed_not_reloaded(db_path: Path) -> None:
    server_side = Store(db_path)
    other = Store(db_path)  # another connection: an agent, the TUI, the CLI
    try:
        a, b = new(other), new(other)
        index = PendingIndex(server_side)
        assert ids(index) == [a, b]
        c = new(other)
        signed_decide(other, a, True, current_operator("cli"))
        assert ids(index) == [b, c]
        other.cancel(b, "gone")
        d = new(other)
        other.expire(c)
        assert ids(index) == [d]
        assert ids(index, limit=1) == [d]
        assert index.reloads == 1
    finally:
        server_side.close()
        other.close()


def test_requests_past_their_time_disappear_before_anyone_marks_them(db_path: Path) -> None:
    with Store(db_path) as store:
        short = new(store, timeout=0.2)
        long = new(store)
        index = PendingIndex(store)
        assert ids(index) == [short, long]
        time.sleep(0.3)
        assert ids(index) == [long]


def test_a_burst_larger_than_the_replay_limit_reloads(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending_module, "MAX_REPLAY", 3)
    with Store(db_path) as store:
        index = PendingIndex(store)
        assert ids(index) == []
        made = [new(store) for _ in range(6)]
        assert ids(index) == made
        assert index.reloads == 2


ops = st.lists(
    st.tuples(
        st.sampled_from(["submit", "old", "approve", "deny", "cancel", "expire", "look"]),
        st.integers(0, 50),
    ),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
def test_the_index_always_matches_the_database(
    tmp_path: Path, steps: list[tuple[str, int]]
) -> None:
    db = tmp_path / f"{uuid.uuid4().hex}.db"
    writer = Store(db)
    reader = Store(db)
    try:
        index = PendingIndex(reader)
        made: list[str] = []
        for op, n in steps:
            if op == "submit":
                made.append(new(writer))
            elif op == "old":  # created earlier than everything: goes first in the order
                made.append(new(writer, created=time.time() - 100 - n))
            elif op == "look":
                assert ids(index) == truth(writer)
            elif made:
                rid = made[n % len(made)]
                if op in ("approve", "deny"):
                    try:
                        signed_decide(writer, rid, op == "approve", current_operator("cli"))
                    except Exception:
                        pass  # already decided: nothing changes
                elif op == "cancel":
                    writer.cancel(rid, "x")
                else:
                    writer.expire(rid)
        assert ids(index) == truth(writer)
    finally:
        writer.close()
        reader.close()
