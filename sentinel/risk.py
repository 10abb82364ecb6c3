"""The risk scale and its thresholds, in one place for the library and the command center.

A risk score is the anomaly detector's 0–10 (:mod:`sentinel.anomaly`). By default a call at
:data:`RISK_ESCALATE` needs a person's approval and one at :data:`RISK_BLOCK` is blocked
(``anomaly_escalation_threshold`` / ``anomaly_block_threshold``, or a policy's ``anomaly:``
section). Displays band a score against the escalation threshold in force: at or above it
``HIGH``, from :data:`MED_FRACTION` of it ``MED``, else ``LOW`` (:func:`risk_band`).
"""

from __future__ import annotations

from typing import Literal

#: Top of the risk scale (scores are 0..RISK_MAX).
RISK_MAX = 10.0
#: Default escalation threshold: a call scoring this or more needs approval.
RISK_ESCALATE = 7.0
#: Default block threshold: a call scoring this or more is blocked.
RISK_BLOCK = 9.0
#: A score from this fraction of the escalation threshold is shown as ``MED``.
MED_FRACTION = 0.5

RiskBand = Literal["HIGH", "MED", "LOW"]


def risk_band(score: float, escalate: float = RISK_ESCALATE) -> RiskBand:
    """``HIGH`` at or above ``escalate``, ``MED`` from :data:`MED_FRACTION` of it, else
    ``LOW``."""
    if score >= escalate:
        return "HIGH"
    if score >= escalate * MED_FRACTION:
        return "MED"
    return "LOW"


__all__ = ["MED_FRACTION", "RISK_BLOCK", "RISK_ESCALATE", "RISK_MAX", "RiskBand", "risk_band"]
