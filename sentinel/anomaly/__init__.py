"""Statistical anomaly detection: baselines per agent, function and parameter, kept in the
store (shared by every process, surviving restarts), scored with robust statistics.

Turn it on with ``SentinelConfig(anomaly_detection=True)`` (or ``SENTINEL_ANOMALY=1``); the guard
then runs :class:`AnomalyHook` on every call. A call scoring at ``anomaly_escalation_threshold``
(7.0) needs a person's approval, at ``anomaly_block_threshold`` (9.0) it is blocked; a rule's
block is never lowered. Per-function thresholds and the detector's settings live in the policy's
optional ``anomaly:`` section (:mod:`sentinel.anomaly.settings`).

Only calls that ran, returned and were not themselves anomalous are learned
(:mod:`sentinel.anomaly.hook`), so repeating an anomaly never makes it normal.
"""

from __future__ import annotations

from sentinel.anomaly.baseline import BaselineView, describe, reset
from sentinel.anomaly.hook import AnomalyHook, Assessment
from sentinel.anomaly.score import Finding
from sentinel.anomaly.settings import FunctionSettings

__all__ = [
    "AnomalyHook",
    "Assessment",
    "BaselineView",
    "Finding",
    "FunctionSettings",
    "describe",
    "reset",
]
