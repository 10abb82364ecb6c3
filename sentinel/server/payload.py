"""Validate what HTTP clients send and shape what the API returns (no HTTP, no SQL here)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sentinel.approval.base import new_request_id
from sentinel.store.models import PENDING, DecisionTerms, NewRequest, RequestRecord

#: Longest wait an HTTP client may ask for (seconds): one week.
MAX_TIMEOUT = 7 * 24 * 3600.0
DEFAULT_TIMEOUT = 300.0
ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}\Z")
#: An approver name (a group, an operator, a token role): the operators file's name rule.
APPROVER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
#: Most approvals or denials a request can ask for (the rules' limit).
MAX_QUORUM = 20
DIGEST_RE = re.compile(r"[0-9a-f]{64}\Z")


#: Key of the request's context under which the server records who submitted it over the API
#: and the caller's own ``action_id`` (a correlation key, never the request id).
API_CONTEXT_KEY = "sentinel_api"


def derive_request_id(owner: str, client_id: str) -> str:
    """The request id the server gives ``owner``'s request carrying ``client_id``.

    A one-way function of both, 32 hex characters like every other Sentinel id: the same client
    retrying gets the same request, another credential using the same ``action_id`` gets another
    request, and no caller can choose the id (e.g. make it equal to the prefix ``sentinel
    pending`` prints for someone else's request).
    """
    material = b"sentinel-api-request-id\0" + owner.encode() + b"\0" + client_id.encode()
    return hashlib.sha256(material).hexdigest()[:32]


def api_origin(rec: RequestRecord) -> dict[str, Any]:
    """``{"client_action_id": ..., "submitted_by": ...}`` for a request submitted over the API
    (empty for any other request)."""
    if rec.channel != "api" or not isinstance(rec.context, dict):
        return {}
    origin = rec.context.get(API_CONTEXT_KEY)
    return origin if isinstance(origin, dict) else {}


def owned_by(rec: RequestRecord, owner: str) -> bool:
    """True when ``rec`` was submitted over the API by the credential named ``owner``."""
    return api_origin(rec).get("submitted_by") == owner


class PayloadError(ValueError):
    """A request body that cannot be accepted; ``field`` names the culprit."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


def _opt_str(data: dict[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string, got {type(value).__name__}", name)
    if len(value) > limit:
        raise PayloadError(f"{name} is longer than {limit} characters", name)
    return value


def _opt_number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(f"{name} must be a number, got {type(value).__name__}", name)
    try:
        number = float(value)
    except OverflowError:  # an integer like 10**400: JSON allows it, a float cannot hold it
        number = math.inf
    if not math.isfinite(number):
        raise PayloadError(
            f"{name} must be a finite number of magnitude at most {sys.float_info.max:.4g}", name
        )
    return number


def _check_numbers(value: Any, name: str) -> None:
    """Refuse NaN and infinities anywhere inside ``value`` (they cannot be stored as JSON or
    compared honestly); the error names the path, e.g. ``parameters.items[2].amount``."""
    stack: list[tuple[Any, str]] = [(value, name)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise PayloadError(f"{path} must be a finite number, got {item!r}", name)
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}"[:200]) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]"[:200]) for i, v in enumerate(item))


def _parse_time(text: str, name: str) -> float:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # the original sends naive UTC times
        return when.timestamp()
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive UTC offset
        raise PayloadError(f"{name} is not an ISO 8601 time: {text[:40]!r}", name) from None


def _names(data: dict[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 100:
        raise PayloadError(f"terms.{name} must be a list of at most 100 names", f"terms.{name}")
    for item in value:
        if not isinstance(item, str) or not APPROVER_RE.match(item):
            raise PayloadError(
                f"terms.{name}: {str(item)[:40]!r} is not a group, operator or role name",
                f"terms.{name}",
            )
    return tuple(dict.fromkeys(value))


def _count(data: dict[str, Any], name: str) -> int:
    value = data.get(name, 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUORUM:
        raise PayloadError(
            f"terms.{name} must be a whole number from 1 to {MAX_QUORUM}", f"terms.{name}"
        )
    return value


def terms_from_body(data: Any) -> DecisionTerms:
    """The optional ``terms`` object of a submission: who decides it (``approvers``, ``quorum``,
    ``deny_quorum``, ``self_approval``, ``escalate_after`` seconds, ``escalate_to``), as in a
    rule. ``self_approval`` is False unless given: a credential never approves its own request
    unless its submission says it may (separation of duties by default over the API)."""
    if data is None:
        return DecisionTerms(self_approval=False)
    if not isinstance(data, dict):
        raise PayloadError("terms must be a JSON object", "terms")
    known = {"approvers", "quorum", "deny_quorum", "self_approval", "escalate_after", "escalate_to"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PayloadError(f"terms: unknown field {unknown[0][:40]!r}", f"terms.{unknown[0][:40]}")
    self_approval = data.get("self_approval", False)
    if not isinstance(self_approval, bool):
        raise PayloadError("terms.self_approval must be true or false", "terms.self_approval")
    escalate_after = _opt_number(data, "escalate_after")
    if escalate_after is not None and escalate_after <= 0:
        raise PayloadError("terms.escalate_after must be a positive number of seconds",
                           "terms.escalate_after")  # fmt: skip
    return DecisionTerms(
        quorum=_count(data, "quorum"),
        approvers=_names(data, "approvers"),
        self_approval=self_approval,
        deny_quorum=_count(data, "deny_quorum"),
        escalate_after=escalate_after,
        escalate_to=_names(data, "escalate_to"),
    )


def new_request_from_body(
    data: Any,
    now: float | None = None,
    owner: str = "anonymous",
    requester: dict[str, Any] | None = None,
) -> NewRequest:
    """The original webhook body (``action_id, function_name, rule_id, parameters, reason,
    agent_id, context, timestamp, timeout_at`` and optionally ``timeout_seconds``, ``digest``,
    ``value_at_risk``, ``terms`` — see :func:`terms_from_body`) as a :class:`NewRequest`, asked
    by ``requester`` (the API records the token). Raises :class:`PayloadError`.

    The request id is chosen here, never by the caller: a caller's ``action_id`` is kept as a
    correlation key (in the context under :data:`API_CONTEXT_KEY`, with ``owner``, the name of
    the credential that sent it) and the id is :func:`derive_request_id` of both."""
    from sentinel.normalize import digest as digest_of
    from sentinel.redact import redact

    if not isinstance(data, dict):
        raise PayloadError(f"the body must be a JSON object, got {type(data).__name__}")
    now = time.time() if now is None else now
    client_id = _opt_str(data, "action_id", 64)
    if client_id is not None and not ID_RE.match(client_id):
        raise PayloadError("action_id must be 8-64 letters, digits, '-' or '_'", "action_id")
    request_id = derive_request_id(owner, client_id) if client_id else new_request_id()
    function = _opt_str(data, "function_name", 200)
    if not function or not function.strip():
        raise PayloadError("function_name is required", "function_name")
    parameters = data.get("parameters", {})
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise PayloadError("parameters must be a JSON object", "parameters")
    _check_numbers(parameters, "parameters")
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        raise PayloadError("context must be a JSON object or null", "context")
    if context is not None:
        _check_numbers(context, "context")
    timeout = _opt_number(data, "timeout_seconds")
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise PayloadError(f"timeout_seconds must be in (0, {int(MAX_TIMEOUT)}]", "timeout_seconds")
    timeout_at = _opt_str(data, "timeout_at", 64)
    if timeout_at is not None:
        left = _parse_time(timeout_at, "timeout_at") - now
        if left <= 0:
            raise PayloadError("timeout_at is in the past", "timeout_at")
        timeout = min(timeout or MAX_TIMEOUT, left, MAX_TIMEOUT)
    _opt_str(data, "timestamp", 64)  # accepted for compatibility; the server's clock is used
    digest = _opt_str(data, "digest", 64)
    if digest is not None and not DIGEST_RE.match(digest):
        raise PayloadError("digest must be 64 lower-case hex characters", "digest")
    value = _opt_number(data, "value_at_risk")
    rule_id = _opt_str(data, "rule_id", 200)
    terms = terms_from_body(data.get("terms"))
    arg_schema = _arguments_schema(data.get("arguments_schema"))
    shown_context = dict(redact(context)) if context is not None else {}
    # Set by the server only: a caller's own "sentinel_api" entry is replaced.
    shown_context[API_CONTEXT_KEY] = {"client_action_id": client_id, "submitted_by": owner}
    return NewRequest(
        id=request_id,
        function=function.strip(),
        # The redacted copy only: the real values are never stored (the digest binds them).
        arguments=redact(parameters),
        # An agent that redacted its parameters sends the digest of the real arguments; an agent
        # that sent the real arguments gets them digested here.
        digest=digest or digest_of(parameters),
        timeout_seconds=timeout or DEFAULT_TIMEOUT,
        agent_id=_opt_str(data, "agent_id", 200),
        context=shown_context,
        rule_id=rule_id,
        rule_ids=(rule_id,) if rule_id else (),
        reason=_opt_str(data, "reason", 2000) or "",
        value_at_risk=value,
        channel="api",
        created_at=now,
        terms=terms,
        requester=requester,
        arg_schema=arg_schema,
    )


#: Largest ``arguments_schema`` a submission may carry (its JSON text).
MAX_SCHEMA_BYTES = 64 * 1024


def _arguments_schema(value: Any) -> dict[str, Any] | None:
    """The optional JSON Schema of the parameters (an operator's edit is checked against it)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("properties"), dict):
        raise PayloadError(
            'arguments_schema must be a JSON Schema object with "properties"', "arguments_schema"
        )
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise PayloadError("arguments_schema is not JSON", "arguments_schema") from None
    if size > MAX_SCHEMA_BYTES:
        raise PayloadError(
            f"arguments_schema is larger than {MAX_SCHEMA_BYTES} bytes", "arguments_schema"
        )
    return value


def reason_from_body(data: Any) -> str | None:
    """The optional ``reason`` of an approve / deny body (empty body allowed)."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PayloadError('the body must be a JSON object like {"reason": "..."}')
    return _opt_str(data, "reason", 2000) or None


#: Most parameters one approve body may change.
MAX_EDITED = 100


def edits_from_body(data: Any, approve: bool) -> dict[str, Any] | None:
    """The optional ``arguments`` of an approve body: ``{parameter: new JSON value}`` (edit, then
    approve). None when absent; a deny body carrying one, or one that is not an object of
    values, is a PayloadError naming ``arguments``."""
    if not isinstance(data, dict) or data.get("arguments") is None:
        return None
    edits = data["arguments"]
    if not approve:
        raise PayloadError("arguments: only an approval can change the arguments", "arguments")
    if not isinstance(edits, dict) or not edits:
        raise PayloadError(
            'arguments must be an object of the values to change, like {"amount": 400}',
            "arguments",
        )
    if len(edits) > MAX_EDITED:
        raise PayloadError(f"arguments: at most {MAX_EDITED} parameters per edit", "arguments")
    return dict(edits)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def effective_status(rec: RequestRecord, now: float) -> str:
    """``expired`` for a pending row past its expiry (no one can decide it any more)."""
    if rec.status == PENDING and rec.expires_at <= now:
        return "expired"
    return rec.status


def status_json(
    rec: RequestRecord, now: float | None = None, asked: str | None = None
) -> dict[str, Any]:
    """``GET /approval/{id}/status``: the original fields plus ``approved_by`` (what the
    original client reads) and the digest the decision binds to.

    ``action_id`` is the id the caller asked about (``asked``: its own correlation key, which the
    original client checks the reply against) or else the request id; ``request_id`` is always
    the request id."""
    now = time.time() if now is None else now
    status = effective_status(rec, now)
    return {
        "action_id": asked or rec.id,
        "request_id": rec.id,
        "client_action_id": api_origin(rec).get("client_action_id"),
        "status": status,
        "approved_by": rec.decided_by if status == "approved" else None,
        "decided_by": rec.decided_by,
        "decided_at": _iso(rec.decided_at),
        "reason": rec.decision_reason,
        "digest": rec.digest,
        "expires_at": _iso(rec.expires_at),
        # Approved with edited arguments: the caller must run the call with these values.
        "edit": None if rec.edit is None else rec.edit.to_dict(),
    }


def pending_json(rec: RequestRecord) -> dict[str, Any]:
    """One pending request as listed by ``GET /approvals/pending`` (redacted arguments only)."""
    origin = api_origin(rec)
    return {
        "action_id": rec.id,
        "client_action_id": origin.get("client_action_id"),
        "submitted_by": origin.get("submitted_by"),
        "status": rec.status,
        "function_name": rec.function,
        "agent_id": rec.agent_id,
        "parameters": rec.arguments,
        "context": rec.context,
        "rule_id": rec.rule_id,
        "reason": rec.reason,
        "value_at_risk": rec.value_at_risk,
        "risk_score": rec.risk_score,
        "digest": rec.digest,
        "timestamp": _iso(rec.created_at),
        "timeout_at": _iso(rec.expires_at),
        # Who may decide, and how far the votes are (the same as the command center's card).
        "terms": rec.terms.to_dict(),
        "approvals": len(rec.approvals),
        "votes": _votes(rec),
    }


def _votes(rec: RequestRecord) -> list[dict[str, Any]]:
    return [
        {"operator": v.operator, "verdict": v.verdict, "signed": v.signature is not None}
        for v in rec.votes
    ]


def decision_json(rec: RequestRecord, message: str) -> dict[str, Any]:
    """The reply to an approve / deny (and to a refused one, with HTTP 403 or 409), with the
    tally so far: approvals of the quorum, denials of the deny quorum, who voted."""
    return {
        "action_id": rec.id,
        "status": rec.status,
        "decided_by": rec.decided_by,
        "decided_at": _iso(rec.decided_at),
        "reason": rec.decision_reason,
        "message": message,
        "approvals": len(rec.approvals),
        "quorum": rec.terms.quorum,
        "denials": sum(1 for v in rec.votes if not v.approves),
        "deny_quorum": rec.terms.deny_quorum,
        "votes": _votes(rec),
        "edit": None if rec.edit is None else rec.edit.to_dict(),
    }


__all__ = [
    "API_CONTEXT_KEY",
    "PayloadError",
    "api_origin",
    "derive_request_id",
    "owned_by",
    "decision_json",
    "edits_from_body",
    "effective_status",
    "new_request_from_body",
    "pending_json",
    "reason_from_body",
    "status_json",
    "terms_from_body",
]
