"""The event sink: batched events reach the table and the mirror; when the audit trail cannot be
written, calls are refused under fail_mode="secure" and nothing is lost."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from sentinel import SentinelBlockedError, SentinelConfig, protect
from sentinel.arguments import CallArguments
from sentinel.audit import attach
from sentinel.audit.sink import EventSink, GuardEvent, finalize_event
from sentinel.audit.verify import verify
from sentinel.normalize import digest, to_jsonable
from sentinel.protect import get_guard
from sentinel.redact import Redactor
from sentinel.store import Store
from sentinel.store.codec import EVENT_COLUMNS as _COLUMNS


@pytest.mark.parametrize("sync", [True, False], ids=["audit_sync", "batched"])
def test_an_unwritable_mirror_blocks_the_next_calls_and_loses_nothing(
    write_rules, db_path: Path, tmp_path: Path, anchors: Path, sync: bool
) -> None:
    logs = tmp_path / "logs"
    config = SentinelConfig(
        rules_path=write_rules("rules: []\n"),
        db_path=db_path,
        audit_log=True,
        audit_log_dir=logs,
        audit_sync=sync,
    )

    @protect(config)
    def transfer(amount: int) -> int:
        return amount

    guard = get_guard(config, None)
    attach(guard)
    assert transfer(1) == 1
    shutil.rmtree(logs)  # the audit folder disappears mid-run
    assert transfer(2) == 2  # its events are committed; the mirror write fails after the commit
    if sync:
        with pytest.raises(OSError):
            guard.flush()  # flush says the trail cannot be written
    else:
        guard.flush()  # what the background writer does within 50 ms (keeps the failure)
    with pytest.raises(SentinelBlockedError, match="audit mirror unavailable"):
        transfer(3)
    with pytest.raises(SentinelBlockedError):
        transfer(4)
    logs.mkdir()
    assert transfer(5) == 5  # the folder is back: the mirror catches up, calls run again
    guard.flush()
    with Store(db_path) as store:
        report = verify(store, jsonl_dir=logs)
        kinds = [r[2] for r in store.event_rows(0, 100)]
    assert report.ok, report.problems
    assert report.jsonl_events == report.table_events
    assert kinds.count("governance_error") == 2  # both refusals are on record
    assert kinds.count("executed") == 3  # calls 1, 2 and 5 ran


def test_batched_events_are_written_within_the_flush_interval_and_at_exit(
    write_rules, db_path: Path
) -> None:
    config = SentinelConfig(rules_path=write_rules("rules: []\n"), db_path=db_path, audit_log=True)

    @protect(config)
    def transfer(amount: int) -> int:
        return amount

    for i in range(20):
        transfer(i)
    deadline = time.monotonic() + 5
    with Store(db_path) as store:
        while store.count_events() < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.count_events() == 40


def test_the_fast_path_gives_the_same_digest_and_redaction_as_the_general_one() -> None:
    redactor = Redactor(["tenant"])
    params = {
        "amount": 12.5,
        "to": "acme",
        "password": "x",
        "tenant": "T-1",
        "note": "card 4111 1111 1111 1111 and Bearer abcdefghijk0123",
        "n": None,
        "ok": True,
    }
    fast = finalize_event(GuardEvent("allowed", 0.0, arguments=CallArguments(params)), redactor)
    slow_params = to_jsonable(params)
    assert fast["digest"] == digest(slow_params)
    assert fast["data"]["args"] == redactor.redact(slow_params)
    # A value that needs normalising takes the general path and gets the same treatment.
    odd_args = {"x": float("nan"), "y": b"\x00"}
    odd = finalize_event(GuardEvent("allowed", 0.0, arguments=CallArguments(odd_args)), redactor)
    assert odd["digest"] == digest(to_jsonable(odd_args))


def test_emit_now_keeps_an_event_it_could_not_write() -> None:
    written: list[list[dict]] = []
    failing = [True]

    def writer(batch: list[dict]) -> None:
        if failing[0]:
            raise OSError("disk full")
        written.append(batch)

    sink = EventSink(writer, sync=True)
    with pytest.raises(OSError):
        sink.emit_now({"kind": "blocked", "function": "rm"})
    assert sink.failure and "disk full" in sink.failure
    failing[0] = False
    sink.flush()
    assert [e["kind"] for e in written[0]] == ["blocked"]
    assert sink.failure is None
    sink.close()


def test_an_anchor_that_cannot_be_written_warns_but_does_not_block(
    write_rules, db_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SENTINEL_AUDIT_KEY", "k")
    monkeypatch.setenv("SENTINEL_ANCHOR_DIR", str(db_path.parent / "anchors"))  # refused: inside
    config = SentinelConfig(
        rules_path=write_rules("rules: []\n"), db_path=db_path, audit_log=True, audit_sync=True
    )

    @protect(config)
    def transfer(amount: int) -> int:
        return amount

    attach(get_guard(config, None))
    assert [transfer(i) for i in range(3)] == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if "could not anchor" in r.getMessage()]
    assert len(warnings) == 1 and "inside the database folder" in warnings[0]
    assert get_guard(config, None)._get_sink().failure is None


def test_a_guard_can_name_the_redactor_of_the_policy_in_force_per_event() -> None:
    sink_redactor, policy_redactor = Redactor(), Redactor(["tenant"])
    args = CallArguments({"tenant": "T-1", "n": 1})
    allowed = finalize_event(
        GuardEvent("allowed", 0.0, arguments=args, redactor=policy_redactor), sink_redactor
    )
    assert allowed["data"]["args"] == {"tenant": "[REDACTED]", "n": 1}
    # Without one, the sink's own redactor applies.
    plain = finalize_event(GuardEvent("allowed", 0.0, arguments=args), sink_redactor)
    assert plain["data"]["args"] == {"tenant": "T-1", "n": 1}


def test_a_mirror_folder_that_cannot_be_created_blocks_calls(
    write_rules, db_path: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    config = SentinelConfig(
        rules_path=write_rules("rules: []\n"),
        db_path=db_path,
        audit_log=True,
        audit_log_dir=blocker / "logs",
    )

    @protect(config)
    def transfer(amount: int) -> int:
        return amount

    sink = attach(get_guard(config, None))
    assert sink.failure and "audit mirror unavailable" in sink.failure
    with pytest.raises(SentinelBlockedError, match="audit mirror unavailable"):
        transfer(1)


def test_raw_records_become_the_same_events_as_the_dict_form() -> None:
    """The caller hands the sink raw fields (allowed_record / executed_record); the writer thread
    must build exactly the events the GuardEvent form gives, so the stored rows and hashes are
    equal."""
    from sentinel.audit.sink import _expand, allowed_record, executed_record

    sink_redactor, policy_redactor = Redactor(), Redactor(["tenant"])
    params = {"tenant": "T-1", "n": 7, "note": "password=hunter2 for the run"}
    shadow = {"shadow": [{"rule_id": "r1", "action": "block", "message": "m"}]}
    pre = allowed_record(
        1.5, "lookup", "bot-1", "r0", "v9", 7.0, CallArguments(params), policy_redactor,
        dict(shadow),
    )  # fmt: skip
    got = [
        _expand(pre, sink_redactor),
        _expand(executed_record(pre, 2.5, 0.0012345, "tenant T-1", policy_redactor), sink_redactor),
    ]
    shared: dict[str, Any] = {
        "function": "lookup",
        "agent_id": "bot-1",
        "rule_id": "r0",
        "policy_version": "v9",
        "value_at_risk": 7.0,
        "redactor": policy_redactor,
    }
    base = finalize_event(
        GuardEvent("allowed", 1.5, arguments=CallArguments(params), data=dict(shadow), **shared),
        sink_redactor,
    )
    outcome = finalize_event(
        GuardEvent(
            "executed",
            2.5,
            digest=base["digest"],
            data={"duration_ms": round(0.0012345 * 1000.0, 3)},
            result="tenant T-1",
            **shared,
        ),
        sink_redactor,
    )
    assert got == [base, outcome]
    assert got[0]["data"]["args"]["tenant"] == "[REDACTED]"
    assert "hunter2" not in str(got)
    assert got[1]["digest"] == got[0]["digest"] == digest(to_jsonable(params))


def test_a_burst_of_audited_calls_is_written_completely_in_order_and_verifies(
    write_rules, db_path: Path, tmp_path: Path, anchors: Path
) -> None:
    logs = tmp_path / "logs"
    config = SentinelConfig(
        rules_path=write_rules("rules: []\n"), db_path=db_path, audit_log=True, audit_log_dir=logs
    )

    @protect(config)
    def transfer(amount: int) -> int:
        return amount

    guard = get_guard(config, None)
    attach(guard)
    n = 10_000
    for i in range(n):
        assert transfer(i) == i
    guard.flush()
    with Store(db_path) as store:
        rows = store.event_rows(0, 3 * n)
        report = verify(store, jsonl_dir=logs)
    assert report.ok, report.problems
    assert report.jsonl_events == report.table_events == len(rows)
    calls = [r for r in rows if r[2] in ("allowed", "executed")]
    assert [r[2] for r in calls] == ["allowed", "executed"] * n
    events = [dict(zip(_COLUMNS, r, strict=False)) for r in calls]
    for i in range(n):
        allowed, executed = events[2 * i], events[2 * i + 1]
        assert allowed["digest"] == executed["digest"] == digest(to_jsonable({"amount": i}))
        assert f'"amount":{i}' in allowed["data"]
        assert f'"result":"{i}"' in executed["data"]
        assert allowed["ts"] <= executed["ts"]
