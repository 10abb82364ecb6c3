"""Standing grants over the HTTP API (operator credentials only, like deciding):

* ``GET /grants`` (``?status=active&limit=N``) and ``GET /grants/{grant_id}`` (with its uses);
* ``POST /grants`` ``{"agent", "function", "where": ["amount <= 500", …] | "bounds": [{param, op,
  value}], "for": "1h" | "forever", "count", "max_total", "reason", "confirm"}`` → 201;
* ``POST /grants/{grant_id}/revoke`` ``{"reason"}``;
* ``POST /approval/{action_id}/approve-with-grant`` ``{"reason", "for", "where", "count",
  "max_total", "confirm"}``: approves the request and creates the grant in one transaction
  (bounds default to the request's own values).

Grants are signed by the server's service key on behalf of the token (as its decisions are); the
terms are read by :func:`sentinel.grant_terms.draft`, so a bad bound or a wide grant (no bound,
no value bound: ``"confirm": true`` needed) is refused with the same words as on the command line.
"""

from __future__ import annotations

import functools
import math
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sentinel.errors import (
    AmbiguousGrantId,
    DecisionConflict,
    DecisionRefused,
    DuplicateVote,
    GrantConflict,
    GrantNotFound,
    SentinelConfigError,
)
from sentinel.server import payload

if TYPE_CHECKING:
    from sentinel.server.app import ApprovalApi
    from sentinel.server.auth import Principal

_KEYS = {"agent", "function", "where", "bounds", "for", "count", "max_total", "reason", "confirm"}
MAX_WHERE = 50


def _object(data: Any, allowed: set[str]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise payload.PayloadError("the body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise payload.PayloadError(f"unknown field {unknown[0]!r}", field=unknown[0])
    return data


def _terms(data: dict[str, Any]) -> dict[str, Any]:
    """The grant-shaping fields, type-checked (422 naming the field otherwise)."""
    where = data.get("where")
    if where is not None and (
        not isinstance(where, list) or not all(isinstance(w, str) for w in where)
        or len(where) > MAX_WHERE
    ):  # fmt: skip
        raise payload.PayloadError(
            f"where: a list of at most {MAX_WHERE} bound texts", field="where"
        )
    bounds = data.get("bounds")
    if bounds is not None:
        if where is not None:
            raise payload.PayloadError("give either where or bounds, not both", field="bounds")
        if not isinstance(bounds, list) or len(bounds) > MAX_WHERE:
            raise payload.PayloadError("bounds: a list of {param, op, value}", field="bounds")
    duration = data.get("for")
    if duration is not None and not isinstance(duration, str):
        raise payload.PayloadError('for: a duration such as "1h", or "forever"', field="for")
    count = data.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise payload.PayloadError("count: a whole number of at least 1", field="count")
    total = data.get("max_total")
    if total is not None and (
        isinstance(total, bool) or not isinstance(total, (int, float))
        or not math.isfinite(total) or total <= 0
    ):  # fmt: skip
        raise payload.PayloadError("max_total: a number above 0", field="max_total")
    confirm = data.get("confirm", False)
    if not isinstance(confirm, bool):
        raise payload.PayloadError("confirm: true or false", field="confirm")
    reason = data.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 2000):
        raise payload.PayloadError("reason: text of at most 2000 characters", field="reason")
    return {
        "wheres": where, "bounds": bounds, "duration": duration, "count": count,
        "max_total": None if total is None else float(total), "confirm": confirm,
        "reason": reason,
    }  # fmt: skip


def _draft(terms: dict[str, Any], **call: Any) -> Any:
    from sentinel.grant_terms import draft
    from sentinel.store.bounds import GrantBound

    bounds = terms.pop("bounds")
    try:
        built = draft(**terms, **call)
        if bounds is not None:
            from dataclasses import replace

            parsed = tuple(GrantBound.from_dict(b) for b in bounds)
            if not parsed and not terms["confirm"]:
                raise ValueError("bounds is empty: a grant with no bound needs confirm: true")
            built = replace(built, grant=replace(built.grant, bounds=parsed))
    except ValueError as exc:
        field = "confirm" if type(exc).__name__ == "WideGrant" else "where"
        text = str(exc).replace("--yes", '"confirm": true').replace("--where", "where")
        raise payload.PayloadError(text, field=field) from None
    return built


def _grant_json(grant: Any, now: float) -> dict[str, Any]:
    out = grant.to_dict(now)
    out.pop("operator", None)
    return out


class GrantsApi:
    """The grant handlers of one :class:`ApprovalApi` (its store, its signing)."""

    def __init__(self, api: ApprovalApi) -> None:
        self.api = api

    async def _decider(self, principal: Principal) -> Any:
        from sentinel.server.app import ApiError, api_operator

        try:
            return await run_in_threadpool(
                self.api.signing.decider, principal, api_operator(principal)
            )
        except SentinelConfigError as exc:
            raise ApiError(503, f"grants unavailable: {exc}") from None

    async def _get(self, grant_id: str) -> Any:
        from sentinel.server.app import ApiError

        if not payload.ID_RE.match(grant_id):
            raise ApiError(404, "no grant with this id")
        try:
            return await run_in_threadpool(self.api.store.get_grant, grant_id)
        except AmbiguousGrantId as exc:
            raise ApiError(409, str(exc), field="grant_id", candidates=exc.candidates) from None
        except GrantNotFound:
            raise ApiError(404, "no grant with this id") from None

    async def collection(self, request: Request, principal: Principal, body: bytes) -> Response:
        """``/grants``: GET lists, POST creates (one route, so a 405 names both methods)."""
        if request.method == "POST":
            return await self.create(request, principal, body)
        return await self.list(request, principal, body)

    async def list(self, request: Request, principal: Principal, body: bytes) -> Response:
        from sentinel.server.app import ApiError

        status = request.query_params.get("status")
        if status is not None and status not in ("active", "revoked", "expired", "exhausted"):
            raise ApiError(
                422, "status must be active, revoked, expired or exhausted", field="status"
            )
        raw = request.query_params.get("limit", "200")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not 1 <= int(raw) <= 10000:
            raise ApiError(422, "limit must be a whole number from 1 to 10000", field="limit")
        try:
            await run_in_threadpool(self.api.store.expire_grants)
        except Exception:  # noticing expiry is best effort; the list shows the state anyway
            pass
        grants = await run_in_threadpool(self.api.store.list_grants, status, int(raw))
        now = time.time()
        return self.api.respond([_grant_json(g, now) for g in grants])

    async def show(self, request: Request, principal: Principal, body: bytes) -> Response:
        grant = await self._get(request.path_params["grant_id"])
        uses = await run_in_threadpool(self.api.store.grant_uses, grant.id, 100)
        out = _grant_json(grant, time.time())
        out["uses"] = [
            {"n": u.n, "ts": u.ts, "agent": u.agent, "digest": u.digest, "value": u.value,
             "event_seq": u.event_seq}
            for u in uses
        ]  # fmt: skip
        return self.api.respond(out)

    async def create(self, request: Request, principal: Principal, body: bytes) -> Response:
        from sentinel.server.app import ApiError

        data = _object(self.api.parse_json(body), _KEYS)
        agent, function = data.get("agent"), data.get("function")
        if not isinstance(agent, str) or len(agent) > 200:
            raise payload.PayloadError("agent: the agent id ('' for none)", field="agent")
        if not isinstance(function, str) or not function.strip() or len(function) > 200:
            raise payload.PayloadError("function: the function name", field="function")
        if data.get("for") is None:
            raise payload.PayloadError('for: how long, e.g. "1h" or "forever"', field="for")
        built = _draft(_terms(data), agent=agent, function=function)
        decider = await self._decider(principal)
        try:
            grant = await run_in_threadpool(decider.create_grant, self.api.store, built.grant)
        except DecisionRefused as exc:
            raise ApiError(403, str(exc)) from None
        return self.api.respond(_grant_json(grant, time.time()), 201)

    async def revoke(self, request: Request, principal: Principal, body: bytes) -> Response:
        from sentinel.server.app import ApiError, api_operator

        reason = payload.reason_from_body(self.api.parse_json(body, allow_empty=True))
        grant = await self._get(request.path_params["grant_id"])
        try:
            grant = await run_in_threadpool(
                self.api.store.revoke_grant, grant.id, api_operator(principal), reason
            )
        except GrantConflict as exc:
            out: dict[str, Any] = {"error": str(exc)}
            if exc.record is not None:
                out["grant"] = _grant_json(exc.record, time.time())
            return self.api.respond(out, 409)
        except GrantNotFound:
            raise ApiError(404, "no grant with this id") from None
        return self.api.respond(_grant_json(grant, time.time()))

    async def approve(self, request: Request, principal: Principal, body: bytes) -> Response:
        data = _object(self.api.parse_json(body, allow_empty=True), _KEYS - {"agent", "function"})
        terms = _terms(data)
        rec, _ = await self.api.lookup(request.path_params["action_id"], principal)
        built = _draft(
            terms,
            agent=rec.agent_id,
            function=rec.function,
            arguments=rec.arguments,
            value_at_risk=rec.value_at_risk,
            rule_id=rec.rule_id,
            request_id=rec.id,
        )
        decider = await self._decider(principal)
        try:
            rec, grant = await run_in_threadpool(
                functools.partial(
                    decider.approve_with_grant, self.api.store, rec.id, built.grant,
                    terms["reason"],
                )
            )  # fmt: skip
        except (DecisionRefused, DuplicateVote) as refused:
            now = getattr(refused, "record", None) or rec
            out = payload.decision_json(now, str(refused))
            out["error"] = str(refused)
            return self.api.respond(out, 403)
        except DecisionConflict as conflict:
            now = conflict.record if isinstance(getattr(conflict, "record", None), type(rec)) else rec
            out = payload.decision_json(now, str(conflict))
            out["error"] = str(conflict)
            return self.api.respond(out, 409)
        out = payload.decision_json(rec, "request approved; standing grant created")
        out["grant"] = _grant_json(grant, time.time())
        out["notes"] = list(built.notes)
        return self.api.respond(out)


__all__ = ["GrantsApi"]
