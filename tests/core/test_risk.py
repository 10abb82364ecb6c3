"""One risk scale and one set of thresholds (sentinel.risk) for the detector's defaults, the
configuration, and every display of a score (the queue table's level, the card's anomaly bar)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sentinel.anomaly.settings import FunctionSettings
from sentinel.config import SentinelConfig
from sentinel.risk import MED_FRACTION, RISK_BLOCK, RISK_ESCALATE, RISK_MAX, risk_band
from sentinel_tui.config import TuiConfig
from sentinel_tui.render import risk_level, safe
from sentinel_tui.render_guard import RISK_LEVELS, anomaly_section


def test_the_bands_turn_at_the_threshold_and_at_its_fraction() -> None:
    assert risk_band(RISK_ESCALATE) == "HIGH"
    assert risk_band(RISK_ESCALATE - 0.01) == "MED"
    assert risk_band(RISK_ESCALATE * MED_FRACTION) == "MED"
    assert risk_band(RISK_ESCALATE * MED_FRACTION - 0.01) == "LOW"
    assert risk_band(8.0, escalate=9.0) == "MED" and risk_band(9.0, escalate=9.0) == "HIGH"


def test_every_default_threshold_is_the_shared_one() -> None:
    config = SentinelConfig()
    assert config.anomaly_escalation_threshold == RISK_ESCALATE
    assert config.anomaly_block_threshold == RISK_BLOCK
    settings = FunctionSettings()
    assert (settings.escalate, settings.block) == (RISK_ESCALATE, RISK_BLOCK)
    assert settings.low_max_risk <= RISK_MAX
    assert TuiConfig().confirm_risk == RISK_ESCALATE


def _record(score: float) -> Any:
    return SimpleNamespace(risk_score=score, value_at_risk=None)


@pytest.mark.parametrize("score", [0.0, 3.4, 3.5, 6.9, 7.0, 9.5, RISK_MAX])
def test_the_queue_level_and_the_card_bar_agree_for_every_score(score: float) -> None:
    level, why = risk_level(_record(score), 0.0, RISK_ESCALATE)
    assert level == risk_band(score) and why == f"risk {score:.1f}/10"
    bar = anomaly_section({"score": score, "escalate_at": RISK_ESCALATE}, safe)
    styles = {str(span.style) for span in bar.spans if "■" in bar.plain[span.start:span.end]
              or "□" in bar.plain[span.start:span.end]}
    assert styles == {RISK_LEVELS[level][1]}
    assert bar.plain.count("■") + bar.plain.count("□") == int(RISK_MAX)
