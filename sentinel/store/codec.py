"""Converting between stored rows and record dataclasses; the event hash chain."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict
from typing import Any

from sentinel.store.models import EventRecord, OperatorIdentity, RequestRecord

#: prev_hash of the first event.
GENESIS_HASH = "0" * 64

#: Columns of ``events`` in table order (the fields of :class:`EventRecord`).
EVENT_COLUMNS = (
    "seq",
    "ts",
    "kind",
    "request_id",
    "agent_id",
    "function",
    "digest",
    "policy_version",
    "rule_id",
    "value_at_risk",
    "actor",
    "reason",
    "data",
    "prev_hash",
    "hash",
)
#: Keys a caller may give in an event dict (seq, prev_hash and hash are assigned by the store).
EVENT_INPUT_KEYS = frozenset(EVENT_COLUMNS) - {"seq", "prev_hash", "hash"}

REQUEST_COLUMNS = (
    "id",
    "status",
    "function",
    "arguments",
    "display_arguments",
    "digest",
    "agent_id",
    "pid",
    "pid_start",
    "host",
    "lock_path",
    "context",
    "rule_id",
    "rule_ids",
    "reason",
    "value_at_risk",
    "risk_score",
    "risk_explanation",
    "policy_version",
    "channel",
    "timeout_seconds",
    "created_at",
    "expires_at",
    "decided_at",
    "decided_by",
    "operator",
    "decision_reason",
)

_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text; NaN/inf refused (they have no JSON form)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def dumps(obj: Any) -> str:
    """JSON text of a value the store keeps (non-JSON leaves become their ``str``)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
    )


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """``sha256(prev_hash + canonical_json(event without hash))`` as hex.

    ``fields`` holds every event column except ``hash`` (``data`` as a parsed JSON value). The audit
    verifier recomputes exactly this.
    """
    body = {k: fields[k] for k in EVENT_COLUMNS if k != "hash"}
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def _finite(name: str, value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"event field {name!r} must be a finite number, got {value!r}")
    return number


def normalize_event(event: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Validate one caller-supplied event dict; returns column → value with ``data`` as JSON text.

    Raises ValueError naming an unknown key, a bad kind or a non-finite number.
    """
    unknown = set(event) - EVENT_INPUT_KEYS
    if unknown:
        raise ValueError(f"unknown event field(s): {', '.join(sorted(unknown))}")
    kind = event.get("kind")
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ValueError(f"event kind must be a lower-case identifier, got {kind!r}")
    out: dict[str, Any] = {}
    for key in (
        "request_id",
        "agent_id",
        "function",
        "digest",
        "policy_version",
        "rule_id",
        "actor",
        "reason",
    ):
        value = event.get(key)
        out[key] = None if value is None else str(value)
    out["kind"] = kind
    out["ts"] = _finite("ts", event.get("ts", time.time() if now is None else now))
    out["value_at_risk"] = _finite("value_at_risk", event.get("value_at_risk"))
    data = event.get("data")
    out["data"] = dumps({} if data is None else data)
    return out


def seal_event(row: dict[str, Any], seq: int, prev_hash: str) -> dict[str, Any]:
    """Add seq, prev_hash and hash to a normalized event row."""
    sealed = dict(row, seq=seq, prev_hash=prev_hash)
    hashed = dict(sealed, data=json.loads(row["data"]))
    sealed["hash"] = event_hash(prev_hash, hashed)
    return sealed


def event_from_row(row: tuple[Any, ...]) -> EventRecord:
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    values["data"] = loads(values["data"]) or {}
    return EventRecord(**values)


def request_from_row(row: tuple[Any, ...]) -> RequestRecord:
    v = dict(zip(REQUEST_COLUMNS, row, strict=True))
    return RequestRecord(
        id=v["id"],
        status=v["status"],
        function=v["function"],
        arguments=loads(v["arguments"]) or {},
        display_arguments=loads(v["display_arguments"]) or {},
        digest=v["digest"],
        agent_id=v["agent_id"],
        pid=v["pid"],
        host=v["host"],
        context=loads(v["context"]),
        rule_id=v["rule_id"],
        rule_ids=tuple(loads(v["rule_ids"]) or ()),
        reason=v["reason"],
        value_at_risk=v["value_at_risk"],
        risk_score=v["risk_score"],
        risk_explanation=v["risk_explanation"],
        policy_version=v["policy_version"],
        channel=v["channel"],
        created_at=v["created_at"],
        expires_at=v["expires_at"],
        decided_at=v["decided_at"],
        decided_by=v["decided_by"],
        operator=loads(v["operator"]),
        decision_reason=v["decision_reason"],
        timeout_seconds=v["timeout_seconds"],
        pid_start=v["pid_start"],
        lock_path=v["lock_path"],
    )


def operator_json(operator: OperatorIdentity) -> str:
    return dumps(dict(asdict(operator), label=operator.label))
