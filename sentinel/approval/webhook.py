"""The webhook approval channel: POST the request to a URL, then poll a status URL for the decision.

Compatible with agentic-sentinel 0.1.0's ``WebhookApprovalInterface`` (same constructor, headers and
body fields), with its defects fixed:

* every request carries ``X-Sentinel-Timestamp`` and ``X-Sentinel-Signature: sha256=<hex>``, an
  HMAC-SHA256 over ``timestamp + "." + body`` when a ``secret`` is set;
* with a secret, a status reply counts only if it is signed the same way, is fresh (its timestamp is
  within ``max_skew_seconds`` of now) and names this request's ``action_id`` (so a signed reply for
  one request cannot be replayed for another);
* the parameters sent are the redacted display copy, serialised so that nothing can make it fail;
* non-JSON bodies, arrays, non-string or unknown status words, 404s, 5xx and network errors never
  crash the call: the channel keeps polling (errors with exponential back-off) until the deadline;
* the deadline is exact: every HTTP request is bounded by the time that is left.

The request is also a row in the store (the guard submits it first), so the command center can
decide it too; the first decision wins by compare-and-set.

The signing helpers here (:func:`sign`, :func:`verify`, :func:`signed_headers`) are the one wire
format shared by the channel, ``sentinel serve`` and outbound notifications.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sentinel.approval.base import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
)
from sentinel.errors import SentinelConfigError

if TYPE_CHECKING:
    from sentinel.config import SentinelConfig

log = logging.getLogger("sentinel.webhook")

#: Header names (the first two are the original package's).
TOKEN_HEADER = "X-Sentinel-Token"
ACTION_HEADER = "X-Sentinel-Action-ID"
TIMESTAMP_HEADER = "X-Sentinel-Timestamp"
SIGNATURE_HEADER = "X-Sentinel-Signature"
SIGNATURE_PREFIX = "sha256="

#: A reply or request whose timestamp is further than this from now is refused (seconds).
DEFAULT_MAX_SKEW = 300.0
#: What ``X-Sentinel-Timestamp`` may hold: ASCII decimal epoch seconds, an optional fraction.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")

#: Status words a reply may use. Approval needs the exact word; any denial-like word denies
#: (reading a refusal as a refusal is always the safe direction).
_APPROVE_WORDS = frozenset({"approved"})
_DENY_WORDS = frozenset({"denied", "deny", "rejected", "declined", "refused"})
_PENDING_WORDS = frozenset({"pending", "received", "waiting", "queued"})
_EXPIRED_WORDS = frozenset({"expired", "timeout", "timed_out"})
_CANCELLED_WORDS = frozenset({"cancelled", "canceled"})

_MAX_REPLY_BYTES = 1 << 20


# --- signing (shared wire format) ----------------------------------------------------------------


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``timestamp + "." + body``."""
    mac = hmac.new(_key(secret), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(
    secret: str | bytes,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
    max_skew: float = DEFAULT_MAX_SKEW,
) -> str | None:
    """Check a signature. Returns None when it is valid, else a short reason why not.

    The timestamp must be plain decimal epoch seconds (``1700000000``, optionally with a fraction):
    ``float()`` would also take ``nan``, ``inf``, ``1e9``, ``+1_700_000_000`` and surrounding
    space, and NaN compares false with everything, so a skew check on it passes. A ``max_skew``
    that is not a finite number >= 0 refuses every timestamp (a misconfiguration must not turn
    the freshness check off).
    """
    if not timestamp or not signature:
        return "unsigned"
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        return f"bad timestamp {timestamp[:40]!r}: not decimal epoch seconds"
    ts = float(timestamp)  # digits only: always finite
    if not (isinstance(max_skew, (int, float)) and math.isfinite(max_skew) and max_skew >= 0):
        return f"max_skew {max_skew!r} is not a finite number of seconds >= 0"
    if not abs((time.time() if now is None else now) - ts) <= max_skew:  # False for NaN now, too
        return "stale timestamp"
    try:
        expected = sign(secret, timestamp, body)
    except UnicodeEncodeError:
        return "bad timestamp"
    if not hmac.compare_digest(
        expected.encode("ascii"), signature.strip().encode("utf-8", "replace")
    ):
        return "bad signature"
    return None


def signed_headers(
    secret: str | bytes | None, body: bytes, now: float | None = None
) -> dict[str, str]:
    """``X-Sentinel-Timestamp`` (epoch seconds) and, with a secret, ``X-Sentinel-Signature``."""
    timestamp = str(int(time.time() if now is None else now))
    headers = {TIMESTAMP_HEADER: timestamp}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON of anything (values that JSON cannot hold are converted, never fatal)."""
    from sentinel.normalize import to_jsonable

    return json.dumps(
        to_jsonable(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def request_body(request: ApprovalRequest, timeout_seconds: float) -> dict[str, Any]:
    """The original body fields (plus digest, value at risk and timeout) for one request."""
    params = request.display_parameters
    if params is None:  # a channel used on its own, outside the guard: redact here
        from sentinel.redact import redact

        params = redact(request.parameters)
    body: dict[str, Any] = {
        "action_id": request.request_id,
        "agent_id": request.agent_id,
        "function_name": request.function_name,
        "rule_id": request.rule_id,
        "parameters": params,
        "reason": request.reason,
        "timestamp": _iso(request.created_at),
        "timeout_at": _iso(time.time() + timeout_seconds),
        "timeout_seconds": round(timeout_seconds, 3),
        "digest": request.digest or None,
        "value_at_risk": request.value_at_risk,
    }
    if request.context:
        body["context"] = request.context
    return body


# --- reading status replies ---------------------------------------------------------------------


@dataclass(frozen=True)
class StatusReply:
    """What one status poll said. ``outcome``: ``decided`` (status approved/denied), ``ended``
    (expired / cancelled on the server side), ``pending``, ``ignored`` (unusable reply; keep
    polling at the normal pace) or ``retry`` (server or network trouble; back off)."""

    outcome: str
    status: ApprovalStatus | None = None
    approved_by: str | None = None
    reason: str | None = None
    note: str | None = None


def read_status_reply(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    action_id: str,
    digest: str | None = None,
    secret: str | bytes | None = None,
    now: float | None = None,
    max_skew: float = DEFAULT_MAX_SKEW,
) -> StatusReply:
    """Interpret a status response. Pure and total: it never raises, whatever the server sent."""
    if status_code == 404:
        return StatusReply("ignored", note="status URL answered 404 (request not known yet)")
    if status_code in (408, 425, 429) or status_code >= 500:
        return StatusReply("retry", note=f"status URL answered {status_code}")
    if not 200 <= status_code < 300:
        return StatusReply("ignored", note=f"status URL answered {status_code}")
    if len(body) > _MAX_REPLY_BYTES:
        return StatusReply("ignored", note="status reply is too large")
    if secret:
        why = verify(
            secret,
            _header(headers, TIMESTAMP_HEADER),
            _header(headers, SIGNATURE_HEADER),
            body,
            now=now,
            max_skew=max_skew,
        )
        if why is not None:
            return StatusReply("ignored", note=f"status reply refused: {why}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return StatusReply("ignored", note="status reply is not JSON")
    if not isinstance(data, dict):
        return StatusReply(
            "ignored", note=f"status reply is a JSON {type(data).__name__}, not an object"
        )
    reply_id = data.get("action_id")
    if secret and reply_id != action_id:
        # A signed reply must name this request, or it could be a replay of another request's.
        return StatusReply("ignored", note="signed status reply does not name this action_id")
    if reply_id is not None and reply_id != action_id:
        return StatusReply("ignored", note="status reply is for another action_id")
    reply_digest = data.get("digest")
    if digest and isinstance(reply_digest, str) and reply_digest and reply_digest != digest:
        return StatusReply("ignored", note="status reply is for different arguments (digest)")
    raw = data.get("status", "pending")
    if not isinstance(raw, str):
        return StatusReply("ignored", note=f"status is a {type(raw).__name__}, not a string")
    word = raw.strip().lower()
    who = _text(data.get("approved_by")) or _text(data.get("decided_by"))
    reason = _text(data.get("reason"), 500)
    if word in _APPROVE_WORDS:
        if data.get("edit"):
            # Approved with edited arguments: this channel runs the call as sent, so it must not
            # run at all (never with arguments other than the ones approved).
            return StatusReply(
                "decided",
                ApprovalStatus.DENIED,
                who,
                "approved with edited arguments, which the webhook channel cannot run; "
                "not executed",
            )
        return StatusReply("decided", ApprovalStatus.APPROVED, who, reason)
    if word in _DENY_WORDS:
        return StatusReply("decided", ApprovalStatus.DENIED, who, reason)
    if word in _PENDING_WORDS:
        return StatusReply("pending")
    if word in _EXPIRED_WORDS:
        return StatusReply("ended", ApprovalStatus.TIMEOUT, who, reason or "expired on the server")
    if word in _CANCELLED_WORDS:
        return StatusReply(
            "ended", ApprovalStatus.CANCELLED, who, reason or "cancelled on the server"
        )
    return StatusReply("ignored", note=f"unknown status word {raw[:40]!r}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


def _text(value: Any, limit: int = 120) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    from sentinel.redact import safe_text

    return safe_text(value.strip(), limit)


# --- the channel -----------------------------------------------------------------------------


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - depends on the installation
        raise SentinelConfigError(
            "the webhook approval channel needs httpx, which is not installed",
            field="approval_interface",
            hint="pip install 'sentinel-guard[webhook]'",
        ) from None
    return httpx


def _check_url(url: str, field_name: str, env: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SentinelConfigError(
            f"{field_name} must be an http(s) URL, got {url!r}",
            field=field_name,
            hint=f"pass {field_name}= or set {env}",
        )
    return url


class WebhookApprovalInterface(ApprovalInterface):
    """Ask for approval over HTTP: POST the request to ``webhook_url``, then poll
    ``status_url_template`` (``{action_id}`` is replaced by the request id) for the decision.

    ``token`` is sent as ``X-Sentinel-Token`` (and as a bearer token, so ``sentinel serve`` accepts
    it); ``secret`` signs every request and makes signed replies mandatory. ``timeout_seconds``
    bounds the whole exchange (the guard's own deadline for the request applies too, whichever is
    sooner); ``request_timeout`` bounds one HTTP request; ``max_retries`` is the number of attempts
    to deliver the initial POST.
    """

    def __init__(
        self,
        webhook_url: str,
        status_url_template: str,
        token: str | None = None,
        timeout_seconds: float = 300,
        poll_interval_seconds: float = 2,
        max_retries: int = 3,
        secret: str | None = None,
        *,
        request_timeout: float = 10.0,
        max_skew_seconds: float = DEFAULT_MAX_SKEW,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.webhook_url = _check_url(webhook_url, "webhook_url", "SENTINEL_WEBHOOK_URL")
        self.status_url_template = _check_url(
            status_url_template, "webhook_status_url", "SENTINEL_STATUS_URL"
        )
        if "{action_id}" not in self.status_url_template:
            raise SentinelConfigError(
                f"status URL template {status_url_template!r} has no {{action_id}} placeholder",
                field="webhook_status_url",
                hint="e.g. http://127.0.0.1:8765/approval/{action_id}/status",
            )
        for name, value in (
            ("timeout_seconds", timeout_seconds),
            ("poll_interval_seconds", poll_interval_seconds),
            ("request_timeout", request_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise SentinelConfigError(
                    f"{name} must be a positive number of seconds, got {value!r}", field=name
                )
        if (
            isinstance(max_skew_seconds, bool)
            or not isinstance(max_skew_seconds, (int, float))
            or not 0 <= max_skew_seconds < math.inf  # NaN fails this too
        ):
            raise SentinelConfigError(
                f"max_skew_seconds must be a finite number of seconds >= 0, got {max_skew_seconds!r}",
                field="max_skew_seconds",
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise SentinelConfigError(
                f"max_retries must be a whole number >= 1, got {max_retries!r}", field="max_retries"
            )
        self.token = token or None
        self.secret = secret or None
        self.timeout_seconds = float(timeout_seconds)
        self.poll_interval_seconds = float(poll_interval_seconds)
        self.max_retries = max_retries
        self.request_timeout = float(request_timeout)
        self.max_skew_seconds = float(max_skew_seconds)
        self.max_backoff_seconds = max(float(max_backoff_seconds), self.poll_interval_seconds)
        _import_httpx()  # fail at construction, not in the middle of a call

    @classmethod
    def from_config(cls, config: SentinelConfig) -> WebhookApprovalInterface:
        """Build the channel from a :class:`~sentinel.config.SentinelConfig` (``SENTINEL_WEBHOOK_*``)."""
        if not config.webhook_url:
            raise SentinelConfigError(
                "approval_interface='webhook' needs a webhook URL",
                field="webhook_url",
                hint="set SENTINEL_WEBHOOK_URL (and SENTINEL_STATUS_URL)",
            )
        if not config.webhook_status_url:
            raise SentinelConfigError(
                "approval_interface='webhook' needs a status URL template with {action_id}",
                field="webhook_status_url",
                hint="set SENTINEL_STATUS_URL, e.g. http://127.0.0.1:8765/approval/{action_id}/status",
            )
        return cls(
            config.webhook_url,
            config.webhook_status_url,
            token=config.webhook_token,
            timeout_seconds=float(config.timeout_seconds or 300),
            poll_interval_seconds=float(config.webhook_poll_interval or 2.0),
            secret=config.webhook_secret,
            request_timeout=float(config.webhook_timeout or 10.0),
        )

    # -- the exchange -----------------------------------------------------------------------

    def status_url(self, action_id: str) -> str:
        """The status URL for one request (the id is hex, safe in a path)."""
        return self.status_url_template.replace("{action_id}", action_id)

    def _headers(self, action_id: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", ACTION_HEADER: action_id}
        if self.token:
            headers[TOKEN_HEADER] = self.token
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(signed_headers(self.secret, body))
        return headers

    async def request_approval(self, request: ApprovalRequest) -> ApprovalResult:
        """POST the request, poll for the decision, return it. Never raises for network trouble."""
        httpx = _import_httpx()
        limit = min(self.timeout_seconds, max(0.0, float(request.timeout_seconds)))
        deadline = time.monotonic() + limit
        action_id = request.request_id
        timed_out = ApprovalResult(
            ApprovalStatus.TIMEOUT,
            action_id,
            reason="no decision from the webhook before the deadline",
            timeout_seconds=limit,
            digest=request.digest or None,
        )
        warned: set[str] = set()
        # trust_env stays on (proxies from the environment), except for loopback targets.
        async with httpx.AsyncClient(
            follow_redirects=False, trust_env=_trust_env(self.webhook_url)
        ) as client:
            delivered = await self._deliver(client, httpx, request, deadline, warned)
            if isinstance(delivered, ApprovalResult):
                return delivered
            if not delivered:
                return timed_out
            return await self._poll(client, httpx, request, deadline, warned) or timed_out

    async def _deliver(
        self,
        client: Any,
        httpx: Any,
        request: ApprovalRequest,
        deadline: float,
        warned: set[str],
    ) -> bool | ApprovalResult:
        """POST the request. True when delivered, False at the deadline, an ERROR result when
        every attempt failed or the receiver refused it."""
        action_id = request.request_id
        body = dumps(request_body(request, max(0.0, deadline - time.monotonic())))
        last = "no attempt made"
        for attempt in range(self.max_retries):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                response = await self._send(
                    client,
                    httpx,
                    "POST",
                    self.webhook_url,
                    remaining,
                    self._headers(action_id, body),
                    body,
                )
            except _Deadline:
                return False
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"[:300]
            else:
                code = response.status_code
                if 200 <= code < 300:
                    return True
                last = f"HTTP {code}"
                if 400 <= code < 500 and code not in (408, 425, 429):
                    # The receiver refused it (bad token, bad body): retrying cannot help.
                    return self._error(request, f"webhook refused the request: {last}")
            _warn_once(warned, "deliver", f"webhook delivery attempt {attempt + 1} failed: {last}")
            if attempt + 1 < self.max_retries and not await _sleep_until(
                deadline, min(2.0**attempt, self.max_backoff_seconds)
            ):
                return False
        return self._error(
            request, f"failed to send webhook after {self.max_retries} attempts ({last})"
        )

    def _error(self, request: ApprovalRequest, reason: str) -> ApprovalResult:
        log.warning("sentinel webhook: %s", reason)
        return ApprovalResult(
            ApprovalStatus.ERROR, request.request_id, reason=reason, digest=request.digest or None
        )

    async def _poll(
        self,
        client: Any,
        httpx: Any,
        request: ApprovalRequest,
        deadline: float,
        warned: set[str],
    ) -> ApprovalResult | None:
        action_id = request.request_id
        url = self.status_url(action_id)
        failures = 0
        while True:
            if not await _sleep_until(deadline, self._pause(failures)):
                return None
            remaining = deadline - time.monotonic()
            try:
                response = await self._send(
                    client, httpx, "GET", url, remaining, self._headers(action_id, b""), None
                )
            except _Deadline:
                return None
            except httpx.HTTPError as exc:
                failures += 1
                _warn_once(warned, "network", f"status poll failed: {type(exc).__name__}: {exc}")
                continue
            reply = read_status_reply(
                response.status_code,
                response.headers,
                response.content,
                action_id=action_id,
                digest=request.digest or None,
                secret=self.secret,
                max_skew=self.max_skew_seconds,
            )
            if reply.outcome == "retry":
                failures += 1
                _warn_once(warned, "retry", reply.note or "status poll failed")
                continue
            failures = 0
            if reply.outcome == "ignored":
                _warn_once(warned, reply.note or "ignored", reply.note or "status reply ignored")
                continue
            if reply.outcome == "pending":
                continue
            assert reply.status is not None
            return ApprovalResult(
                reply.status,
                action_id,
                approved_by=reply.approved_by,
                reason=reply.reason,
                decided_at=time.time(),
                metadata={"channel": "webhook", "status_url": url},
                digest=request.digest or None,
            )

    def _pause(self, failures: int) -> float:
        if failures == 0:
            return self.poll_interval_seconds
        base = min(self.poll_interval_seconds * 2.0**failures, self.max_backoff_seconds)
        return base * (0.75 + random.random() * 0.5)  # jitter: many agents must not retry in step

    async def _send(
        self,
        client: Any,
        httpx: Any,
        method: str,
        url: str,
        remaining: float,
        headers: dict[str, str],
        body: bytes | None,
    ) -> Any:
        """One HTTP request that cannot outlive the deadline (httpx timeouts are per phase, so a
        server dripping bytes could otherwise hold it; the outer timeout is the exact bound)."""
        per_request = max(0.001, min(self.request_timeout, remaining))
        try:
            async with asyncio.timeout(per_request):
                return await client.request(
                    method, url, headers=headers, content=body, timeout=httpx.Timeout(per_request)
                )
        except TimeoutError:
            if remaining <= self.request_timeout:
                raise _Deadline() from None
            raise httpx.ReadTimeout(f"no answer within {per_request:.1f}s") from None


class _Deadline(Exception):
    """The overall deadline was reached during a request."""


async def _sleep_until(deadline: float, seconds: float) -> bool:
    """Sleep ``seconds`` but never past ``deadline``; False when the deadline has come."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    await asyncio.sleep(min(seconds, remaining))
    return deadline - time.monotonic() > 0


def _warn_once(warned: set[str], key: str, message: str) -> None:
    if key not in warned:
        warned.add(key)
        log.warning("sentinel webhook: %s", message)


def _trust_env(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host not in ("127.0.0.1", "localhost", "::1")


__all__ = [
    "ACTION_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOKEN_HEADER",
    "StatusReply",
    "WebhookApprovalInterface",
    "dumps",
    "read_status_reply",
    "request_body",
    "sign",
    "signed_headers",
    "verify",
]
