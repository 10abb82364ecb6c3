"""Converting between stored rows and record dataclasses; the event hash chain."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict
from typing import Any

from sentinel.normalize import canonical_text
from sentinel.store.models import (
    ArgumentEdit,
    DecisionTerms,
    EventRecord,
    OperatorIdentity,
    RequestRecord,
    Vote,
)

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

#: Columns of ``anomaly_baselines`` after its key (agent, function, param, kind), in
#: :class:`~sentinel.store.baselines.BaselineRow` order.
BASELINE_STAT_COLUMNS: tuple[str, ...] = (
    "n", "size", "weight", "first_at", "updated_at",
    "median", "mad", "sigma", "mean", "std",
    "log_median", "log_sigma", "log_mean", "log_std",
    "lo", "hi", "last", "singles", "capped", "fast", "slow",
)  # fmt: skip

REQUEST_COLUMNS = (
    "id",
    "status",
    "function",
    "arguments",
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
    "terms",
    "requester",
    "votes",
    "escalated_at",
    "escalated_to",
    "arg_schema",
    "edit",
)

_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")


# Built once: json.dumps() with options constructs a new encoder on every call, which costs more
# than encoding a small event. (The canonical encoder is sentinel.normalize's: there is one.)
_DUMPS = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
).encode

#: Sorted keys, no whitespace, UTF-8 text; NaN/inf refused (they have no JSON form).
canonical_json = canonical_text


def dumps(obj: Any) -> str:
    """JSON text of a value the store keeps (non-JSON leaves become their ``str``)."""
    return _DUMPS(obj)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """``sha256(prev_hash + canonical_json(event without hash))`` as hex.

    ``fields`` holds every event column except ``hash`` (``data`` as a parsed JSON value). The audit
    verifier recomputes exactly this.
    """
    body = {k: fields[k] for k in EVENT_COLUMNS if k != "hash"}
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


_enc = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for str (C)
_frepr = float.__repr__  # what json.dumps uses for float


def body_text(
    seq: int,
    ts: float,
    kind: str,
    request_id: str | None,
    agent_id: str | None,
    function: str | None,
    digest: str | None,
    policy_version: str | None,
    rule_id: str | None,
    value_at_risk: float | None,
    actor: str | None,
    reason: str | None,
    data: str,
    prev_hash: str,
) -> str:
    """``canonical_json`` of an event body, built from its stored column values (``data`` as its
    stored JSON text) without parsing or re-encoding ``data``.

    Byte-identical to ``canonical_json`` of the parsed body for every row the store writes (``data``
    text is itself canonical), about five times cheaper: the hash chain is computed and verified
    with this. Arguments are in column order, so ``body_text(*row[:14])`` works on a row tuple.
    """
    e = _enc  # inline conditionals: a helper call per field would cost more than the encoding
    return (
        f'{{"actor":{"null" if actor is None else e(actor)},'
        f'"agent_id":{"null" if agent_id is None else e(agent_id)},"data":{data},'
        f'"digest":{"null" if digest is None else e(digest)},'
        f'"function":{"null" if function is None else e(function)},"kind":{e(kind)},'
        f'"policy_version":{"null" if policy_version is None else e(policy_version)},'
        f'"prev_hash":{e(prev_hash)},"reason":{"null" if reason is None else e(reason)},'
        f'"request_id":{"null" if request_id is None else e(request_id)},'
        f'"rule_id":{"null" if rule_id is None else e(rule_id)},"seq":{int(seq)},'
        f'"ts":{_frepr(ts if ts.__class__ is float else float(ts))},"value_at_risk":'
        f"{'null' if value_at_risk is None else _frepr(value_at_risk if value_at_risk.__class__ is float else float(value_at_risk))}}}"
    )


def row_hash(row: tuple[Any, ...] | list[Any]) -> str:
    """The chain hash of a stored row (the first 14 columns, in :data:`EVENT_COLUMNS` order)."""
    return hashlib.sha256((row[13] + body_text(*row[:14])).encode("utf-8")).hexdigest()


def _finite(name: str, value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"event field {name!r} must be a finite number, got {value!r}")
    return number


_TEXT_FIELDS = (
    "request_id",
    "agent_id",
    "function",
    "digest",
    "policy_version",
    "rule_id",
    "actor",
    "reason",
)
_KINDS_SEEN: set[str] = set()  # kinds already validated (a handful; skips the regex per event)


def normalize_event(event: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Validate one caller-supplied event dict; returns column → value with ``data`` as JSON text.

    Raises ValueError naming an unknown key, a bad kind or a non-finite number. Runs once per
    recorded event, so the common case (str fields, float numbers) avoids conversions.
    """
    if not event.keys() <= EVENT_INPUT_KEYS:
        unknown = set(event) - EVENT_INPUT_KEYS
        raise ValueError(f"unknown event field(s): {', '.join(sorted(unknown))}")
    kind = event.get("kind")
    if kind not in _KINDS_SEEN:
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise ValueError(f"event kind must be a lower-case identifier, got {kind!r}")
        if len(_KINDS_SEEN) < 1000:
            _KINDS_SEEN.add(kind)
    out: dict[str, Any] = {}
    get = event.get
    for key in _TEXT_FIELDS:
        value = get(key)
        out[key] = value if value is None or value.__class__ is str else str(value)
    out["kind"] = kind
    ts = get("ts")
    if ts is None:
        ts = time.time() if now is None else now
    out["ts"] = ts if ts.__class__ is float and ts - ts == 0.0 else _finite("ts", ts)
    var = get("value_at_risk")
    out["value_at_risk"] = (
        var
        if var is None or (var.__class__ is float and var - var == 0.0)
        else _finite("value_at_risk", var)
    )
    data = get("data")
    out["data"] = "{}" if data is None or (data.__class__ is dict and not data) else dumps(data)
    return out


def seal_event(row: dict[str, Any], seq: int, prev_hash: str) -> dict[str, Any]:
    """Add seq, prev_hash and hash to a normalized event row."""
    sealed = dict(row, seq=seq, prev_hash=prev_hash)
    sealed["hash"] = row_hash(tuple(sealed[c] for c in EVENT_COLUMNS[:14]))
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
        terms=terms_from_json(v["terms"]),
        requester=_object_or_none(v["requester"]),
        votes=votes_from_json(v["votes"]),
        escalated_at=v["escalated_at"],
        escalated_to=names_from_json(v["escalated_to"]),
        arg_schema=_object_or_none(v["arg_schema"]),
        edit=edit_from_json(v["edit"]),
    )


def edit_from_json(text: str | None) -> ArgumentEdit | None:
    """The stored edit of an approval; anything unreadable reads as an edit that cannot be
    applied (no values, no digest): the waiting call refuses it rather than run the plain call
    the operator did not approve."""
    if not text:
        return None
    data = _object_or_none(text)
    try:
        return ArgumentEdit.from_dict(data or {})
    except (TypeError, ValueError):
        return ArgumentEdit({}, (), "")


def names_from_json(text: str | None) -> tuple[str, ...]:
    """A stored list of names (escalated_to); anything else reads as none."""
    try:
        data = loads(text) if text else None
    except ValueError:
        return ()
    if not isinstance(data, list):
        return ()
    return tuple(str(n) for n in data if isinstance(n, str))


def votes_from_json(text: str | None) -> tuple[Vote, ...]:
    """The stored votes; entries that are not objects are dropped (the waiting call verifies
    every vote it counts, so nothing here can make one count)."""
    try:
        data = loads(text) if text else None
    except ValueError:
        return ()
    if not isinstance(data, list):
        return ()
    votes = []
    for item in data:
        if isinstance(item, dict):
            try:
                votes.append(Vote.from_dict(item))
            except (TypeError, ValueError):
                continue
    return tuple(votes)


def terms_from_json(text: str | None) -> DecisionTerms:
    """The stored terms (shown to operators; never enforced from here — see DecisionTerms)."""
    data = _object_or_none(text)
    try:
        return DecisionTerms.from_dict(data)
    except (TypeError, ValueError):
        return DecisionTerms()


def _object_or_none(text: str | None) -> dict[str, Any] | None:
    try:
        data = loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def votes_json(votes: tuple[Vote, ...]) -> str:
    return dumps([v.to_dict() for v in votes])


def operator_dict(operator: OperatorIdentity) -> dict[str, Any]:
    return dict(asdict(operator), label=operator.label)


def operator_json(operator: OperatorIdentity) -> str:
    return dumps(operator_dict(operator))
