"""The anomaly score, its baseline and limit standings on the approval card."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sentinel_tui.app import SentinelApp
from sentinel_tui.config import TuiConfig
from sentinel_tui.render import risk_level, safe
from sentinel_tui.render_guard import guard_section, sparkline
from sentinel_tui.sample import SAMPLE_RULES
from tests.tui.conftest import wait_for


def make_app(db_path: Path, **kw: Any) -> SentinelApp:
    return SentinelApp(db_path, None, tick_interval=0, config=TuiConfig(bell=False), **kw)


async def test_real_anomaly_escalation_shows_score_explanation_and_baseline(
    db_path: Path, tmp_path: Path, agents: Any
) -> None:
    """A real agent process with anomaly detection: five transfers of 50…90, then 300, which
    the detector escalates to approval. The card shows what the detector attached."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    agent = agents("anomaly", str(db_path), str(rules), "300")
    agent.expect("CALLING")
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.queue.card.record is not None)
        record = app.queue.card.record
        assert record is not None and record.risk_score is not None
        assert 7 <= record.risk_score < 10  # escalated, not blocked
        card = app.queue.card.text.plain
        assert f"anomaly {record.risk_score:.1f}/10" in card
        assert "require approval" in card and "approval ≥7" in card
        assert "amount 300 is" in card and "median 70 of the last 5 calls" in card
        # 50 60 70 80 90 scaled lowest to highest, then the new value above the range.
        assert "amount last 5: ▁▃▅▆█ ┃█⇡" in card
        assert "min 50 · median 70 · max 90 · new 300 (above the range ⇡)" in card
        assert '"anomaly"' not in card  # never as raw JSON
        # The table's risk word uses the same 0–10 scale.
        assert app.queue.table.get_row_at(0)[1].plain == "▲ HIGH"
        await pilot.press("d")
        agent.expect("DENIED")


def test_risk_words_follow_the_0_to_10_scale() -> None:
    class R:  # the two fields of RequestRecord that risk_level reads
        def __init__(self, score: float | None, value: float | None = None) -> None:
            self.risk_score, self.value_at_risk = score, value

    levels = {s: risk_level(R(s), 10_000, 7.0)[0] for s in (0.82, 2.0, 3.5, 6.9, 7.0, 9.5)}  # type: ignore[arg-type]
    assert levels == {0.82: "LOW", 2.0: "LOW", 3.5: "MED", 6.9: "MED", 7.0: "HIGH", 9.5: "HIGH"}
    # the old 0..1 setting keeps its meaning; a big value is never LOW for a low score
    assert risk_level(R(7.5), 10_000, 0.7)[0] == "HIGH"  # type: ignore[arg-type]
    assert risk_level(R(1.0, 50_000), 10_000, 7.0)[0] == "HIGH"  # type: ignore[arg-type]


def test_limit_and_hostile_notes_render_readably() -> None:
    context = {
        "balance": 10,
        "sentinel": {
            "anomaly": {"score": "high", "explanation": "x\x1b]52;c;ZXZpbA==\x07 [@click=app.quit]",
                        "baseline": [1, "two", 3], "value": 0},
            "limit:daily_spend": {"limits": [{
                "rule": "daily_spend", "kind": "sum", "param": "amount", "window": "24h",
                "per": "agent=bot-1", "used": 4200, "cap": 5000, "this_call": 1000,
                "would_be": 5200, "exceeded": True}]},
            "other": {"k": 1},
        },
    }
    text = guard_section(context, safe).plain
    assert "\x1b" not in text and "\\x1b]52;" in text and "[@click=app.quit]" in text
    assert "risk ?" in text  # a score that is not a number is not made up
    assert "min 1 · median 2 · max 3 · new 0 (below the range ⇣)" in text
    assert "limit daily_spend (sum of amount in 24h, agent=bot-1)" in text
    assert "4,200 used + 1,000 this call → 5,200 of 5,000  ✖ OVER THE CAP" in text
    assert re.search(r"█+▒+ 4,200", text)


def test_sparkline_marks_the_new_value_on_the_baseline_scale() -> None:
    assert sparkline([10, 20, 30], 20).plain == "▁▅█ ┃▅◂"
    assert sparkline([5, 5, 5]).plain == "▄▄▄"
    assert sparkline([]).plain == ""
