"""History filters and paging; metrics on a known dataset."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from sentinel.store import HistoryFilter, Store
from tests.store.factories import new_request, operator


def test_parse_filter_terms() -> None:
    f = HistoryFilter.parse(
        "status:denied,expired fn:transfer* agent:billing value:>1000 big  spender"
    )
    assert f.kinds == ("denied", "expired")
    assert f.function == "transfer*" and f.agent == "billing"
    assert (f.value_op, f.value) == (">", 1000.0)
    assert f.text == "big spender"
    assert HistoryFilter.parse("value:250").value_op == "="
    assert HistoryFilter.parse("") == HistoryFilter() and HistoryFilter.parse("").is_empty
    assert HistoryFilter.parse('"http://x" rule:r1 id:ab').text == "http://x"
    since = HistoryFilter.parse("since:2h").since
    assert since is not None and abs(since - (time.time() - 7200)) < 5
    assert (
        HistoryFilter.parse("since:2026-01-31T00:00").since
        == datetime(2026, 1, 31, tzinfo=UTC).timestamp()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour:red", "unknown filter field 'colour'"),
        ("value:lots", "value"),
        ("status:", "needs a value"),
        ('"unterminated', "cannot parse"),
        ("since:yesterday-ish", "cannot read time"),
    ],
)
def test_parse_filter_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HistoryFilter.parse(text)


def _dataset(store: Store) -> None:
    store.append_events(
        [
            {"kind": "allowed", "function": "read_file", "agent_id": "ops", "rule_id": "reads"},
            {
                "kind": "blocked",
                "function": "drop_table",
                "agent_id": "ops",
                "rule_id": "no-drop",
                "value_at_risk": 100,
            },
            {
                "kind": "blocked",
                "function": "transfer_funds",
                "agent_id": "billing",
                "rule_id": "limit",
                "value_at_risk": 5000,
            },
            {
                "kind": "executed",
                "function": "transfer_funds",
                "agent_id": "billing",
                "value_at_risk": 999,
            },
            {
                "kind": "failed",
                "function": "transfer_funds",
                "agent_id": "billing",
                "value_at_risk": 999,
            },
        ]
    )


def test_history_filters_and_keyset_paging(store: Store) -> None:
    _dataset(store)
    assert [e.seq for e in store.history()] == [5, 4, 3, 2, 1]
    assert [e.function for e in store.history(HistoryFilter.parse("status:blocked"))] == [
        "transfer_funds",
        "drop_table",
    ]
    assert {e.kind for e in store.history(HistoryFilter.parse("fn:TRANSFER*"))} == {
        "blocked",
        "executed",
        "failed",
    }
    assert [e.seq for e in store.history(HistoryFilter.parse("agent:ops"))] == [2, 1]
    assert [e.seq for e in store.history(HistoryFilter.parse("value:>=999"))] == [5, 4, 3]
    assert [e.seq for e in store.history(HistoryFilter.parse("drop"))] == [2]
    assert [e.seq for e in store.history(HistoryFilter.parse("rule:limit"))] == [3]
    page1 = store.history(limit=2)
    page2 = store.history(before_seq=page1[-1].seq, limit=2)
    page3 = store.history(before_seq=page2[-1].seq, limit=2)
    assert [e.seq for e in page1 + page2 + page3] == [5, 4, 3, 2, 1]
    assert store.history(before_seq=1) == []
    # LIKE wildcards typed by an operator are literal, not patterns
    assert store.history(HistoryFilter(function="transfer%")) == []


def test_metrics_on_known_dataset(store: Store) -> None:
    _dataset(store)
    now = time.time()
    approved = store.submit(new_request(value_at_risk=10, created_at=now - 4))
    denied = store.submit(new_request(value_at_risk=20, created_at=now - 2))
    expired = store.submit(new_request(value_at_risk=40, created_at=now - 1))
    store.submit(new_request(value_at_risk=80, created_at=now - 30, rule_id="waiting"))
    store.decide(approved.id, True, operator())
    store.decide(denied.id, False, operator())
    store.expire(expired.id)
    m = store.metrics()
    # value protected = blocked + denied + expired only (not approved, executed, failed or pending)
    assert m.value_protected == 100 + 5000 + 20 + 40
    assert m.value_protected_today == m.value_protected
    assert m.counts["blocked"] == 2 and m.counts["approval_requested"] == 4
    assert m.counts["approved"] == m.counts["denied"] == m.counts["expired"] == 1
    assert m.pending == 1
    assert m.oldest_pending_age is not None and 29 <= m.oldest_pending_age < 60
    assert m.latency_p50 is not None and m.latency_p95 is not None
    assert 2 <= m.latency_p50 <= m.latency_p95 < 10  # decided ~4 s and ~2 s after creation
    assert m.hourly["blocked"][-1] == 2 and len(m.hourly["blocked"]) == 24
    assert m.top_rules[0] == ("large-transfer", 3)
    assert ("no-drop", 1) in m.top_rules
    later = store.metrics(since=time.time() + 60)
    assert later.counts == {} and later.value_protected == 0 and later.pending == 1


def test_metrics_since_matches_brute_force_over_hour_boundaries(store: Store) -> None:
    import random

    rng = random.Random(5)
    now = time.time()
    events = [
        {
            "kind": rng.choice(["allowed", "blocked", "denied", "expired", "executed"]),
            "ts": now - rng.uniform(0, 3 * 86400),
            "rule_id": rng.choice([None, "a", "b"]),
            "value_at_risk": rng.choice([None, 10.0, 250.5]),
        }
        for _ in range(600)
    ]
    store.append_events(events)
    for since in (None, now - 86400 * 2.5, now - 3601.5, now - 59, now - 7200):
        chosen = [e for e in events if since is None or e["ts"] >= since]
        m = store.metrics(since=since)
        expected_counts: dict[str, int] = {}
        for e in chosen:
            expected_counts[e["kind"]] = expected_counts.get(e["kind"], 0) + 1
        assert m.counts == expected_counts, since
        protected = sum(
            e["value_at_risk"] or 0 for e in chosen if e["kind"] in ("blocked", "denied", "expired")
        )
        assert m.value_protected == pytest.approx(protected)
        hits: dict[str, int] = {}
        for e in chosen:
            if e["rule_id"] and e["kind"] in ("allowed", "blocked"):
                hits[e["rule_id"]] = hits.get(e["rule_id"], 0) + 1
        assert dict(m.top_rules) == hits
    hourly_total = sum(sum(v) for v in store.metrics().hourly.values())
    assert hourly_total == sum(1 for e in events if e["ts"] >= (int(now // 3600) - 23) * 3600)
