"""The approval API: a Starlette app over the same store the agents and the command center use.

Endpoints (compatible with agentic-sentinel 0.1.0's dashboard API):

=================================  =========  ==============================================
``GET  /health``                   open       liveness
``GET  /openapi.json``             any role   this API's OpenAPI 3.0 description
``POST /approval``                 agent      submit a request (the webhook body) → pending row
                                              (the server chooses the id; ``action_id`` is kept
                                              as the caller's correlation key)
``GET  /approval/{id}/status``     agent      status, approved_by, decided_by, reason (agents:
                                              only their own requests)
``POST /approval/{id}/approve``    operator   a vote, signed with the service key for the token;
                                              ``{"arguments": {"amount": 400}}`` approves the
                                              call with those values changed (checked against
                                              the request's schema: 422 naming the parameter);
                                              200 decided, 202 a quorum still short (the tally),
                                              403 refused (not an approver, own request,
                                              already voted: nothing recorded), 409 who decided
``POST /approval/{id}/deny``       operator   the same
``GET  /approvals/pending``        operator   pending requests, oldest first (redacted)
=================================  =========  ==============================================

Operators are also allowed everything agents are. No CORS headers are ever sent (browsers on
other origins cannot call it), and with a secret every response is signed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sentinel.approval.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOKEN_HEADER,
    signed_headers,
    verify,
)
from sentinel.errors import (
    AmbiguousRequestId,
    DecisionConflict,
    DecisionRefused,
    DuplicateVote,
    EditRefused,
    RequestNotFound,
    SentinelConfigError,
    StoreError,
)
from sentinel.server import payload
from sentinel.server.auth import AGENT, OPERATOR, Principal, TokenRegistry
from sentinel.server.openapi import openapi_document
from sentinel.server.pending import PendingIndex
from sentinel.server.signing import ServiceSigning, default_service_key_path
from sentinel.store.location import PgLocation
from sentinel.store.models import OperatorIdentity

log = logging.getLogger("sentinel.server")

#: Largest request body accepted (bytes).
MAX_BODY = 1 << 20
#: Largest page of pending requests.
MAX_PAGE = 10_000
#: Rows returned when no ``limit`` is given (oldest first): a poll stays cheap even when
#: thousands wait; ask for more with ``?limit=`` (up to MAX_PAGE).
DEFAULT_PAGE = 100


@dataclass
class ServerSettings:
    """What the app needs: the store, who may call it, and what to do on new requests."""

    #: The database: a SQLite file or a PostgreSQL location (a path or URL string is parsed).
    db_path: Path | PgLocation | str
    tokens: TokenRegistry
    secret: str | None = None
    notify: Callable[[Any, Any], Any] | None = None  # (store, record) → None, must not block
    # Notify for every new pending request in the database (not only HTTP submissions):
    # a config-like object for notify_pending, or None.
    notify_all: Any = None
    watch_interval: float = 0.5
    sweep_interval: float = 5.0
    max_skew: float = 300.0
    #: How API decisions are signed; None: no service key (decisions are refused once the
    #: operators file lists anyone, since the waiting calls would refuse them unsigned).
    signing: ServiceSigning | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status = status
        self.message = message
        self.extra = extra
        super().__init__(message)


def api_operator(principal: Principal) -> OperatorIdentity:
    """The identity recorded for a decision made through the API: the token's name."""
    return OperatorIdentity(
        account=f"api:{principal.name}",
        uid=os.getuid(),  # the server's account: the process that wrote the row
        login_uid=None,
        login_account=None,
        host=socket.gethostname(),
        ssh_client=None,
        channel="api",
    )


class ApprovalApi:
    """Handlers bound to one store and one set of credentials."""

    def __init__(self, settings: ServerSettings) -> None:
        from sentinel.store.location import open_store

        self.settings = settings
        self.store = open_store(settings.db_path)
        self.signing = settings.signing or ServiceSigning(None, default_service_key_path())
        self._sweeper: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.pending_index = PendingIndex(self.store)  # kept current from the audit log

    # -- plumbing ---------------------------------------------------------------------------

    def respond(
        self, data: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return self.respond_bytes(body, status, headers)

    def respond_bytes(
        self, body: bytes, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        out = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        out.update(signed_headers(self.settings.secret, body))
        if headers:
            out.update(headers)
        return Response(body, status_code=status, headers=out, media_type="application/json")

    def error(self, exc: ApiError) -> Response:
        data = {"error": exc.message, **exc.extra}
        headers = {"WWW-Authenticate": 'Bearer realm="sentinel"'} if exc.status == 401 else None
        return self.respond(data, exc.status, headers)

    async def body(self, request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (
            not (length.isascii() and length.isdigit()) or len(length) > 12 or int(length) > MAX_BODY
        ):
            raise ApiError(413, f"request body larger than {MAX_BODY} bytes")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, f"request body larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def authenticate(self, request: Request, body: bytes) -> Principal:
        auth = request.headers.get("authorization", "")
        token = None
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        elif request.headers.get(TOKEN_HEADER):
            token = request.headers[TOKEN_HEADER].strip()  # the original client's header
        if token:
            principal = self.settings.tokens.authenticate(token)
            if principal is not None:
                return principal
            raise ApiError(401, "invalid token")
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature and self.settings.secret:
            why = verify(
                self.settings.secret,
                request.headers.get(TIMESTAMP_HEADER),
                signature,
                body,
                max_skew=self.settings.max_skew,
            )
            if why is None:
                return Principal("signed", AGENT, "signature")
            raise ApiError(401, f"signature refused: {why}")
        raise ApiError(401, "authentication required: Authorization: Bearer <token>")

    def endpoint(
        self, role: str, handler: Callable[[Request, Principal, bytes], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: read the body, authenticate, check the role, map errors to JSON."""

        async def run(request: Request) -> Response:
            try:
                body = await self.body(request)
                principal = self.authenticate(request, body)
                if role == OPERATOR and not principal.is_operator:
                    raise ApiError(
                        403, f"'{principal.name}' is an agent credential: operators only"
                    )
                return await handler(request, principal, body)
            except ApiError as exc:
                return self.error(exc)
            except payload.PayloadError as exc:
                return self.error(ApiError(422, str(exc), field=exc.field))
            except StoreError as exc:
                log.error("store error: %s", exc)
                return self.error(ApiError(503, f"store unavailable: {exc}"))
            except Exception:  # never leak a traceback to a client; log it here
                log.exception("unexpected error in %s %s", request.method, request.url.path)
                return self.error(ApiError(500, "internal error"))

        return run

    @staticmethod
    def parse_json(body: bytes, allow_empty: bool = False) -> Any:
        if not body.strip():
            if allow_empty:
                return None
            raise ApiError(400, "the body must be JSON")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ApiError(400, "the body is not valid JSON") from None

    async def _get(self, request_id: str) -> Any:
        try:
            return await run_in_threadpool(self.store.get, request_id)
        except AmbiguousRequestId as exc:
            raise ApiError(
                409, str(exc), field="action_id", candidates=exc.candidates
            ) from None
        except RequestNotFound:
            raise ApiError(404, "no approval request with this id") from None

    async def lookup(self, request_id: str, principal: Principal) -> tuple[Any, str | None]:
        """The request ``request_id`` names for ``principal``, and the id to echo as
        ``action_id`` (the caller's own correlation key when it asked by that).

        An operator names any request by its id or a unique prefix of it (an ambiguous prefix
        is a 409 listing the candidates). An agent credential reads only the requests it
        submitted, by its own ``action_id`` or by the request id; anything else is a 404, so
        it cannot learn what other agents asked for."""
        if not payload.ID_RE.match(request_id):
            raise ApiError(404, "no approval request with this id")
        if principal.is_operator:
            return await self._get(request_id), None
        mine = payload.derive_request_id(principal.name, request_id)
        for candidate, asked in ((mine, request_id), (request_id, None)):
            if len(candidate) < 32:
                continue  # agents name whole ids only, never prefixes
            try:
                rec = await run_in_threadpool(self.store.get, candidate)
            except RequestNotFound:
                continue
            if rec.id == candidate and payload.owned_by(rec, principal.name):
                return rec, asked
        raise ApiError(404, "no approval request with this id")

    # -- handlers ---------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return self.respond({"status": "healthy", "service": "sentinel-api"})

    async def openapi(self, request: Request, principal: Principal, body: bytes) -> Response:
        return self.respond(openapi_document())

    async def submit(self, request: Request, principal: Principal, body: bytes) -> Response:
        new = payload.new_request_from_body(
            self.parse_json(body),
            owner=principal.name,
            # Who asked: the token, so that where self-approval is off it cannot approve this.
            requester={"token": principal.name, "role": principal.role},
        )
        try:
            existing = await run_in_threadpool(self.store.get, new.id)
        except RequestNotFound:
            existing = None
        if existing is not None and existing.id == new.id:
            if existing.function != new.function or existing.digest != new.digest:
                client_id = payload.api_origin(existing).get("client_action_id")
                raise ApiError(
                    409, "action_id is already used by a different request", action_id=client_id
                )
            rec = existing  # a re-post (retry) never resets a decided request
        else:
            rec = await run_in_threadpool(self.store.submit, new)
            if self.settings.notify is not None and self.settings.notify_all is None:
                try:
                    self.settings.notify(self.store, rec)
                except Exception:  # notifications never fail a submission
                    log.exception("notification hook failed")
        data = payload.status_json(rec)
        data["message"] = "approval request received"
        return self.respond(data, 202)

    async def status(self, request: Request, principal: Principal, body: bytes) -> Response:
        rec, asked = await self.lookup(request.path_params["action_id"], principal)
        return self.respond(payload.status_json(rec, asked=asked))

    async def approve(self, request: Request, principal: Principal, body: bytes) -> Response:
        return await self._decide(request, principal, body, True)

    async def deny(self, request: Request, principal: Principal, body: bytes) -> Response:
        return await self._decide(request, principal, body, False)

    async def _decide(
        self, request: Request, principal: Principal, body: bytes, approve: bool
    ) -> Response:
        """One vote by ``principal``, checked and signed by the :class:`Decider` (the service key
        on behalf of the token), like every other place that decides."""
        data = self.parse_json(body, allow_empty=True)
        reason = payload.reason_from_body(data)
        edits = payload.edits_from_body(data, approve)
        rec, _ = await self.lookup(request.path_params["action_id"], principal)
        try:
            decider = await run_in_threadpool(
                self.signing.decider, principal, api_operator(principal)
            )
        except SentinelConfigError as exc:  # the operators file cannot be trusted now
            log.error("cannot decide over the API: %s", exc)
            raise ApiError(503, f"decisions unavailable: {exc}") from None
        try:
            rec = await run_in_threadpool(
                functools.partial(
                    decider.decide, self.store, rec.id, approve, reason, edits=edits, typed=False
                )
            )
        except EditRefused as bad:  # an edit that does not fit: nothing recorded
            field = f"arguments.{bad.parameter}" if bad.parameter else "arguments"
            raise ApiError(422, str(bad), field=field) from None
        except (DecisionRefused, DuplicateVote) as refused:
            now = getattr(refused, "record", None) or rec
            data = payload.decision_json(now, str(refused))
            data["error"] = str(refused)
            return self.respond(data, 403)
        except DecisionConflict as conflict:
            now = conflict.record if conflict.record is not None else rec
            data = payload.decision_json(now, str(conflict))
            data["error"] = "request is no longer pending"
            return self.respond(data, 409)
        if rec.is_pending:  # a vote towards a quorum: counted, not yet decided
            verb = "approval" if approve else "denial"
            data = payload.decision_json(rec, f"{verb} by {decider.name} recorded; still pending")
            return self.respond(data, 202)
        verb = "approved" if approve else "denied"
        return self.respond(payload.decision_json(rec, f"request {verb}"))

    async def pending(self, request: Request, principal: Principal, body: bytes) -> Response:
        raw = request.query_params.get("limit", str(DEFAULT_PAGE))
        # isascii: "²".isdigit() is True but int("²") raises; the length cap keeps int() cheap.
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not 1 <= int(raw) <= MAX_PAGE:
            raise ApiError(422, f"limit must be a whole number from 1 to {MAX_PAGE}", field="limit")
        body = await run_in_threadpool(self.pending_index.body, int(raw), time.time())
        return self.respond_bytes(body)

    # -- background sweep -------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        """Expire overdue rows and cancel rows whose waiting process died, so the queue the API
        shows stays true even when no agent or command center is running."""
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await run_in_threadpool(self.store.sweep)
            except Exception as exc:
                log.warning("sweep failed: %s", exc)

    async def _watch_forever(self) -> None:
        """``notify_all``: announce every new pending request, whoever submitted it."""
        from sentinel.notify.watch import PendingWatcher

        watcher = await run_in_threadpool(PendingWatcher, self.store, self.settings.notify_all)
        while True:
            await asyncio.sleep(self.settings.watch_interval)
            try:
                await run_in_threadpool(watcher.poll)
            except Exception as exc:
                log.warning("notification watch failed: %s", exc)

    async def startup(self) -> None:
        if self.settings.sweep_interval > 0:
            self._sweeper = asyncio.ensure_future(self._sweep_forever())
        if self.settings.notify_all is not None:
            self._watcher = asyncio.ensure_future(self._watch_forever())

    async def shutdown(self) -> None:
        for task in (self._sweeper, self._watcher):
            if task is not None:
                task.cancel()
        self.store.close()


async def _not_found(request: Request, exc: Exception) -> Response:
    return Response(b'{"error":"not found"}', status_code=404, media_type="application/json")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    headers = dict(getattr(exc, "headers", None) or {})  # keeps Starlette's Allow header
    return Response(
        b'{"error":"method not allowed"}',
        status_code=405,
        media_type="application/json",
        headers=headers,
    )


def create_app(settings: ServerSettings) -> Starlette:
    """The Starlette application for ``settings`` (run it with uvicorn)."""
    from contextlib import asynccontextmanager

    api = ApprovalApi(settings)
    from sentinel.server.grants import GrantsApi

    grants = GrantsApi(api)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await api.startup()
        try:
            yield
        finally:
            await api.shutdown()

    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/openapi.json", api.endpoint(AGENT, api.openapi), methods=["GET"]),
        Route("/approval", api.endpoint(AGENT, api.submit), methods=["POST"]),
        Route("/approval/{action_id}/status", api.endpoint(AGENT, api.status), methods=["GET"]),
        Route(
            "/approval/{action_id}/approve", api.endpoint(OPERATOR, api.approve), methods=["POST"]
        ),
        Route("/approval/{action_id}/deny", api.endpoint(OPERATOR, api.deny), methods=["POST"]),
        Route("/approvals/pending", api.endpoint(OPERATOR, api.pending), methods=["GET"]),
        # Standing grants (sentinel/server/grants.py): operators only, like deciding.
        Route(
            "/approval/{action_id}/approve-with-grant",
            api.endpoint(OPERATOR, grants.approve),
            methods=["POST"],
        ),
        Route("/grants", api.endpoint(OPERATOR, grants.collection), methods=["GET", "POST"]),
        Route("/grants/{grant_id}", api.endpoint(OPERATOR, grants.show), methods=["GET"]),
        Route(
            "/grants/{grant_id}/revoke", api.endpoint(OPERATOR, grants.revoke), methods=["POST"]
        ),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.api = api
    return app


__all__ = ["ApiError", "ApprovalApi", "ServerSettings", "api_operator", "create_app"]
