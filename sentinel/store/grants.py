"""Standing grants in the store: records, and the operations behind the store's ``*_grant`` methods.

A *grant* is an operator's "yes" to calls of one agent to one function, within bounds on the
arguments (:mod:`sentinel.store.bounds`), until it expires (``expires_at``; None: until revoked),
for at most ``max_count`` calls and/or a cumulative value of ``max_total`` (the sum of the calls'
value at risk, the policy's value parameter). It is ``active`` until it ends, once, as
``revoked`` (an operator), ``expired`` (noticed past ``expires_at``) or ``exhausted`` (a cap
reached). Its terms never change once made (a trigger refuses it; a signature covers them).

Every operation writes its audit event in the same transaction as the change (hash-chained
``events``; ``data.grant_id`` links it): ``grant_created``, ``grant_revoked``, ``grant_expired``,
``grant_used`` (one per use, also a ``grant_uses`` row naming the event), ``grant_exhausted``
and ``grant_refused`` (a grant row the caller's check did not accept: unsigned, forged).

:func:`consume` is the only way a use is counted: under the write lock (``BEGIN IMMEDIATE`` on
SQLite, the advisory write lock on PostgreSQL) it reads the active grants of the (agent,
function), picks the oldest that fits and has room, and adds the call to its counters — the same
technique as the windowed limits (:mod:`sentinel.store.limits`), so no two processes can
overspend a grant. What a grant does to a decision is the guard's business
(:mod:`sentinel.grants`); the store only keeps the grants honestly.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sentinel.errors import AmbiguousGrantId, GrantConflict, GrantNotFound
from sentinel.store import sql
from sentinel.store.bounds import GrantBound, fits_all
from sentinel.store.codec import dumps, loads, normalize_event, operator_dict, operator_json
from sentinel.store.models import OperatorIdentity
from sentinel.store.ops import MIN_PREFIX_LENGTH, Op, Q, _append, _when

ACTIVE = "active"
REVOKED = "revoked"
EXPIRED = "expired"
EXHAUSTED = "exhausted"
GRANT_STATUSES = (ACTIVE, REVOKED, EXPIRED, EXHAUSTED)
#: Relative tolerance when comparing a running float total with ``max_total``.
_EPSILON = 1e-9

#: Why a grant row is not accepted (signature check), or None: the guard's check of a candidate.
Acceptance = Callable[["GrantRecord"], "str | None"]


@dataclass(frozen=True)
class NewGrant:
    """The terms of a grant to create.

    ``agent``: the agent id the grant is for (``""``: calls made without an agent id);
    ``function``: the exact function name; ``bounds``: every one must hold; ``expires_at``: epoch
    seconds or None (until revoked); ``max_count`` / ``max_total``: caps or None. ``id`` and
    ``created_at`` are chosen when not given (give them to sign the terms before storing:
    :func:`sentinel.trust.grants.sign_grant`); ``signer`` / ``signature``: the operator name and
    the signature over :meth:`GrantRecord.terms` (None: unsigned)."""

    agent: str
    function: str
    bounds: tuple[GrantBound, ...] = ()
    expires_at: float | None = None
    max_count: int | None = None
    max_total: float | None = None
    rule_id: str | None = None
    request_id: str | None = None
    reason: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float | None = None
    signer: str | None = None
    signature: str | None = None

    def __post_init__(self) -> None:
        for name in ("agent", "function"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"grant {name} must be a string, not {getattr(self, name)!r}")
        if not self.function.strip():
            raise ValueError("grant function must be a non-empty function name")
        bounds = tuple(
            b if isinstance(b, GrantBound) else GrantBound.from_dict(b) for b in self.bounds
        )
        object.__setattr__(self, "bounds", bounds)
        if self.max_count is not None and (
            isinstance(self.max_count, bool) or not isinstance(self.max_count, int)
            or self.max_count < 1
        ):  # fmt: skip
            raise ValueError(f"grant max_count must be a whole number >= 1, not {self.max_count!r}")
        for name in ("max_total", "expires_at", "created_at"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"grant {name} must be a number, not {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"grant {name} must be finite, not {value!r}")
            object.__setattr__(self, name, float(value))
        if self.max_total is not None and self.max_total <= 0:
            raise ValueError(f"grant max_total must be above 0, not {self.max_total!r}")
        if not isinstance(self.id, str) or len(self.id) < MIN_PREFIX_LENGTH:
            raise ValueError(f"grant id must be a string of at least 4 characters, not {self.id!r}")


@dataclass(frozen=True)
class GrantRecord:
    """A grant as stored. ``status`` is as written; :meth:`state` also counts an active grant
    past its expiry as ``expired`` (it is recorded so when next noticed)."""

    id: str
    status: str
    agent: str
    function: str
    bounds: tuple[GrantBound, ...]
    expires_at: float | None
    max_count: int | None
    max_total: float | None
    used_count: int
    used_total: float
    rule_id: str | None
    request_id: str | None
    created_at: float
    created_by: str
    operator: dict[str, Any] | None
    signer: str | None
    signature: str | None
    reason: str | None
    ended_at: float | None
    ended_by: str | None
    end_reason: str | None

    def state(self, now: float) -> str:
        """The status as of ``now`` (an active grant past ``expires_at`` is ``expired``)."""
        if self.status == ACTIVE and self.expires_at is not None and now >= self.expires_at:
            return EXPIRED
        return self.status

    def is_valid(self, now: float) -> bool:
        """Active and not past its expiry."""
        return self.state(now) == ACTIVE

    def time_left(self, now: float) -> float | None:
        """Seconds until it expires (0 when ended or past it; None: until revoked)."""
        if not self.is_valid(now):
            return 0.0
        return None if self.expires_at is None else max(0.0, self.expires_at - now)

    @property
    def count_left(self) -> int | None:
        """Calls left under ``max_count`` (None: no count cap)."""
        return None if self.max_count is None else max(0, self.max_count - self.used_count)

    @property
    def total_left(self) -> float | None:
        """Value left under ``max_total`` (None: no value cap)."""
        return None if self.max_total is None else max(0.0, self.max_total - self.used_total)

    def fits(self, params: Mapping[str, Any]) -> bool:
        """Whether a call's arguments satisfy every bound."""
        return fits_all(self.bounds, params)

    def has_room(self, value: float | None) -> bool:
        """Whether one more call of ``value`` stays within the caps (a value cap needs a value:
        a call without one does not fit a grant capped by value)."""
        if self.max_count is not None and self.used_count + 1 > self.max_count:
            return False
        if self.max_total is not None:
            if value is None or not math.isfinite(value) or value < 0:
                return False
            return self.used_total + value <= self.max_total + _EPSILON * max(1.0, self.max_total)
        return True

    def terms(self) -> dict[str, Any]:
        """What a grant signature covers: every term, who made it and when."""
        return {
            "id": self.id,
            "agent": self.agent,
            "function": self.function,
            "bounds": [b.to_dict() for b in self.bounds],
            "expires_at": self.expires_at,
            "max_count": self.max_count,
            "max_total": self.max_total,
            "rule_id": self.rule_id,
            "request_id": self.request_id,
            "created_at": self.created_at,
            "signer": self.signer,
        }

    def describe(self) -> str:
        """One line: bounds, caps and expiry (for cards, lists and event reasons)."""
        parts = [b.text() for b in self.bounds] or ["no bounds"]
        if self.max_count is not None:
            parts.append(f"at most {self.max_count} call(s)")
        if self.max_total is not None:
            parts.append(f"total <= {self.max_total:g}")
        parts.append(
            "until revoked" if self.expires_at is None else f"until {_when(self.expires_at)}"
        )
        return "; ".join(parts)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """JSON-safe form (``sentinel grant list --json``, the API); with ``now``, also the state
        and time left then."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "agent": self.agent,
            "function": self.function,
            "bounds": [b.to_dict() for b in self.bounds],
            "expires_at": self.expires_at,
            "max_count": self.max_count,
            "max_total": self.max_total,
            "used_count": self.used_count,
            "used_total": self.used_total,
            "rule_id": self.rule_id,
            "request_id": self.request_id,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "signer": self.signer,
            "signed": bool(self.signature),
            "reason": self.reason,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
        }
        if now is not None:
            out["state"] = self.state(now)
            out["time_left"] = self.time_left(now)
        return out


@dataclass(frozen=True)
class GrantUse:
    """One counted use: the grant after it (counters include this call), the use's number
    (``n``: the grant's count after it) and the ``grant_used`` event's seq."""

    grant: GrantRecord
    n: int
    seq: int


@dataclass(frozen=True)
class GrantUseRow:
    """A row of ``grant_uses`` (``sentinel grant show``, the Grants view)."""

    grant_id: str
    n: int
    ts: float
    agent: str
    function: str
    digest: str | None
    value: float | None
    event_seq: int | None


@lru_cache(maxsize=1024)
def _bounds_of(text: str) -> tuple[GrantBound, ...]:
    """The bounds stored as JSON ``text`` (parsed once per distinct text: every use reads them)."""
    return tuple(GrantBound.from_dict(b) for b in (loads(text) or []))


@lru_cache(maxsize=1024)
def _operator_of(text: str) -> dict[str, Any] | None:
    found = loads(text)
    return found if isinstance(found, dict) else None


def grant_from_row(row: Sequence[Any]) -> GrantRecord:
    """A :class:`GrantRecord` from a row in :data:`~sentinel.store.sql.GRANT_COLUMNS` order."""
    (gid, status, agent, function, bounds, expires_at, max_count, max_total, used_count,
     used_total, rule_id, request_id, created_at, created_by, operator, signer, signature,
     reason, ended_at, ended_by, end_reason) = row  # fmt: skip
    return GrantRecord(
        id=gid,
        status=status,
        agent=agent,
        function=function,
        bounds=_bounds_of(bounds or "[]"),
        expires_at=None if expires_at is None else float(expires_at),
        max_count=None if max_count is None else int(max_count),
        max_total=None if max_total is None else float(max_total),
        used_count=int(used_count),
        used_total=float(used_total),
        rule_id=rule_id,
        request_id=request_id,
        created_at=float(created_at),
        created_by=created_by,
        operator=_operator_of(operator) if operator else None,
        signer=signer,
        signature=signature,
        reason=reason,
        ended_at=None if ended_at is None else float(ended_at),
        ended_by=ended_by,
        end_reason=end_reason,
    )


def _event(kind: str, grant: GrantRecord, now: float, **extra: Any) -> dict[str, Any]:
    data = {"grant_id": grant.id, **extra.pop("data", {})}
    return normalize_event(
        {
            "kind": kind,
            "ts": now,
            "agent_id": grant.agent or None,
            "function": grant.function,
            "rule_id": grant.rule_id,
            "data": data,
            **extra,
        }
    )


def _terms_data(grant: GrantRecord) -> dict[str, Any]:
    return {
        "bounds": [b.to_dict() for b in grant.bounds],
        "expires_at": grant.expires_at,
        "max_count": grant.max_count,
        "max_total": grant.max_total,
        "from_request": grant.request_id,
        "signed": bool(grant.signature),
        "signer": grant.signer,
    }


# --- operations ------------------------------------------------------------------------------


def _insert(
    new: NewGrant, operator: OperatorIdentity, now: float
) -> Generator[Q, Any, GrantRecord]:
    """Insert the grant and its ``grant_created`` event; runs inside a write transaction."""
    created_at = now if new.created_at is None else new.created_at
    row = (
        new.id, ACTIVE, new.agent, new.function, dumps([b.to_dict() for b in new.bounds]),
        new.expires_at, new.max_count, new.max_total, 0, 0.0, new.rule_id, new.request_id,
        created_at, operator.label, operator_json(operator), new.signer, new.signature,
        new.reason, None, None, None,
    )  # fmt: skip
    stored = yield Q(sql.INSERT_GRANT, row, "one")
    grant = grant_from_row(stored)
    data = {**_terms_data(grant), "operator": dict(operator_dict(operator))}
    yield from _append(
        [
            _event(
                "grant_created",
                grant,
                now,
                request_id=new.request_id,
                actor=operator.label,
                reason=new.reason or f"standing grant: {grant.describe()}",
                data=data,
            )
        ]
    )
    return grant


def create(new: NewGrant, operator: OperatorIdentity, now: float) -> Op:
    """Create a grant (one transaction with its ``grant_created`` event)."""
    yield Q(sql.BEGIN_WRITE)
    found = yield Q(sql.SELECT_GRANT, (new.id,), "one")
    if found is not None:
        yield Q(sql.ROLLBACK)
        raise GrantConflict(f"a grant with id {new.id!r} already exists")
    grant = yield from _insert(new, operator, now)
    yield Q(sql.COMMIT)
    return grant


def get(id_or_prefix: str) -> Op:
    """The grant with this id, or the only one whose id starts with it (at least 4 characters)."""
    key = (id_or_prefix or "").strip()
    if len(key) < MIN_PREFIX_LENGTH:
        raise GrantNotFound(
            f"grant id {key!r} is too short: give at least {MIN_PREFIX_LENGTH} characters of the "
            "id (`sentinel grant list` prints 12)"
        )
    row = yield Q(sql.SELECT_GRANT, (key,), "one")
    if row is not None:
        return grant_from_row(row)
    rows = yield Q(sql.SELECT_GRANT_PREFIX, (key, key + "\U0010ffff"), "all")
    if not rows:
        raise GrantNotFound(f"no grant with id {key!r}")
    if len(rows) > 1:
        names = [f"{r[0]} ({r[3]}, {r[1]})" for r in rows[:5]]
        raise AmbiguousGrantId(key, names, more=len(rows) > 5)
    return grant_from_row(rows[0])


def list_grants(status: str | None, limit: int) -> Op:
    """Grants newest first (``status``: only those with this stored status)."""
    if status is not None and status not in GRANT_STATUSES:
        raise ValueError(f"grant status {status!r} is not one of {', '.join(GRANT_STATUSES)}")
    if status is None:
        rows = yield Q(sql.GRANTS_ALL, (int(limit),), "all")
    else:
        rows = yield Q(sql.GRANTS_BY_STATUS, (status, int(limit)), "all")
    return [grant_from_row(r) for r in rows]


def active() -> Op:
    """Every grant whose stored status is active, oldest first."""
    rows = yield Q(sql.GRANTS_ACTIVE, (), "all")
    return [grant_from_row(r) for r in rows]


def uses(grant_id: str, limit: int) -> Op:
    """The grant's uses, newest first."""
    rows = yield Q(sql.GRANT_USES, (grant_id, int(limit)), "all")
    return [
        GrantUseRow(r[0], int(r[1]), float(r[2]), r[3], r[4], r[5],
                    None if r[6] is None else float(r[6]), r[7])
        for r in rows
    ]  # fmt: skip


def _end(
    grant: GrantRecord, status: str, now: float, by: str | None, reason: str
) -> Generator[Q, Any, GrantRecord | None]:
    row = yield Q(sql.GRANT_END, (status, now, by, reason, grant.id), "one")
    if row is None:
        return None
    ended = grant_from_row(row)
    yield from _append(
        [_event(f"grant_{status}", ended, now, actor=by, reason=reason,
                data={"used_count": ended.used_count, "used_total": ended.used_total})]
    )  # fmt: skip
    return ended


def _ended_message(grant: GrantRecord) -> str:
    who = f" by {grant.ended_by}" if grant.ended_by else ""
    return f"grant {grant.id} was already {grant.status}{who} at {_when(grant.ended_at)}"


def revoke(grant_id: str, operator: OperatorIdentity, reason: str | None, now: float) -> Op:
    """Revoke an active grant (compare-and-set; one transaction with ``grant_revoked``). A grant
    past its expiry is recorded as expired instead, and the revocation refused."""
    yield Q(sql.BEGIN_WRITE)
    row = yield Q(sql.SELECT_GRANT, (grant_id,), "one")
    if row is None:
        yield Q(sql.ROLLBACK)
        raise GrantNotFound(f"no grant with id {grant_id!r}")
    grant = grant_from_row(row)
    if grant.state(now) == EXPIRED and grant.status == ACTIVE:
        ended = yield from _end(grant, EXPIRED, now, None, "expired (noticed on revoke)")
        yield Q(sql.COMMIT)
        raise GrantConflict(_ended_message(ended or grant), record=ended or grant)
    if grant.status != ACTIVE:
        yield Q(sql.ROLLBACK)
        raise GrantConflict(_ended_message(grant), record=grant)
    ended = yield from _end(grant, REVOKED, now, operator.label, reason or "revoked by an operator")
    if ended is None:  # pragma: no cover - checked inside this transaction
        yield Q(sql.ROLLBACK)
        raise GrantConflict(_ended_message(grant), record=grant)
    yield Q(sql.COMMIT)
    return ended


def expire_due(now: float) -> Op:
    """Record every active grant past its expiry as expired (one ``grant_expired`` each)."""
    yield Q(sql.BEGIN_WRITE)
    rows = yield Q(sql.GRANTS_ACTIVE, (), "all")
    n = 0
    for row in rows:
        grant = grant_from_row(row)
        if grant.state(now) == EXPIRED:
            if (yield from _end(grant, EXPIRED, now, None, "expired")) is not None:
                n += 1
    yield Q(sql.COMMIT)
    return n


def approve_with(
    request_id: str, decision: Op, new: NewGrant, operator: OperatorIdentity, now: float
) -> Op:
    """Run ``decision`` (:func:`sentinel.store.ops.decide` on ``request_id``) and, in the same
    transaction, create ``new`` — only if that decision approved the request. The decision
    runs exactly as it would alone (its refusals, its expiry bookkeeping); its final COMMIT is
    held back until the grant is inserted, so both are written or neither. A vote that leaves
    the request pending (a quorum) or a grant for another agent or function is refused
    (:class:`GrantConflict`) and nothing is written."""
    held: Q | None = None
    result: Any = None
    sent: Any = None
    while True:
        try:
            q = decision.send(sent)
        except StopIteration as stop:
            result = stop.value
            break
        except BaseException:
            if held is not None:
                yield held  # the decision committed before refusing (an expiry it recorded)
            raise
        if held is not None:
            sent = yield held
            held = None
            sent = yield q
            continue
        if q.sql == sql.COMMIT:
            held = q
            sent = None
            continue
        sent = yield q
    if held is None:  # pragma: no cover - ops.decide always ends with COMMIT
        raise RuntimeError("approve_with: the decision did not commit")
    rec = result
    if rec.status != "approved":
        yield Q(sql.ROLLBACK)
        raise GrantConflict(
            f"request {rec.id} is still {rec.status} after this vote (its rule needs "
            f"{rec.terms.quorum} approvals): a grant is made only with the approval that "
            "decides the request",
            record=rec,
        )
    if new.agent != (rec.agent_id or "") or new.function != rec.function:
        yield Q(sql.ROLLBACK)
        raise GrantConflict(
            f"a grant made from request {rec.id} must be for its agent {rec.agent_id!r} and "
            f"function {rec.function!r}"
        )
    grant = yield from _insert(new, operator, now)
    yield held
    return rec, grant


@dataclass(frozen=True)
class UseRequest:
    """A call asking to run under a grant (what :func:`consume` matches and records)."""

    agent: str
    function: str
    params: Mapping[str, Any]
    value: float | None
    digest: str | None = None
    rule_id: str | None = None
    policy_version: str | None = None
    only: frozenset[str] | None = None  # consider only these grant ids (None: any)


def consume(call: UseRequest, now: float, accept: Acceptance | None) -> Op:
    """Find the oldest valid grant the call fits and count the call in it, atomically.

    Under the write lock: active grants of (agent, function) past their expiry are recorded as
    expired; the first one whose bounds the arguments satisfy, with room for the call under its
    caps, and that ``accept`` does not refuse (the guard's signature check; a refused one gets a
    ``grant_refused`` event and is skipped) counts the call (``used_count + 1``, ``used_total +
    value``, ``exhausted`` when a cap is reached), gets a ``grant_uses`` row and a
    ``grant_used`` event. Returns the :class:`GrantUse`, or None when no grant applies."""
    yield Q(sql.BEGIN_WRITE)
    rows = yield Q(sql.GRANTS_ACTIVE_FOR, (call.agent, call.function), "all")
    wrote = False
    chosen: GrantRecord | None = None
    refused: list[dict[str, Any]] = []
    for row in rows:
        grant = grant_from_row(row)
        if grant.state(now) == EXPIRED:
            if (yield from _end(grant, EXPIRED, now, None, "expired")) is not None:
                wrote = True
            continue
        if call.only is not None and grant.id not in call.only:
            continue
        if not grant.fits(call.params) or not grant.has_room(call.value):
            continue
        why = accept(grant) if accept is not None else None
        if why is not None:
            refused.append(
                _event("grant_refused", grant, now, digest=call.digest,
                       value_at_risk=call.value, reason=why,
                       data={"signer": grant.signer, "signed": bool(grant.signature)})
            )  # fmt: skip
            continue
        chosen = grant
        break
    if refused:
        yield from _append(refused)
        wrote = True
    if chosen is None:
        yield Q(sql.COMMIT if wrote else sql.ROLLBACK)
        return None
    n = chosen.used_count + 1
    value = call.value
    total = chosen.used_total + (max(0.0, value) if value is not None and math.isfinite(value) else 0.0)
    full = (chosen.max_count is not None and n >= chosen.max_count) or (
        chosen.max_total is not None
        and total >= chosen.max_total - _EPSILON * max(1.0, chosen.max_total)
    )
    status = EXHAUSTED if full else ACTIVE
    ended = (now, None, "cap reached") if full else (None, None, None)
    row = yield Q(
        sql.GRANT_USE, (n, total, status, *ended, chosen.id, chosen.used_count), "one"
    )
    if row is None:  # pragma: no cover - read under the write lock in this transaction
        yield Q(sql.ROLLBACK)
        return None
    after = replace(
        chosen, used_count=n, used_total=total, status=status,
        ended_at=ended[0], ended_by=ended[1], end_reason=ended[2],
    )  # fmt: skip
    events = [
        _event(
            "grant_used",
            after,
            now,
            digest=call.digest,
            rule_id=call.rule_id or after.rule_id,
            policy_version=call.policy_version,
            value_at_risk=call.value,
            actor=f"grant:{after.id}",
            reason=f"ran without waiting under standing grant {after.id[:12]} "
            f"(by {after.created_by}): {after.describe()}",
            data={"n": n, "used_count": after.used_count, "used_total": after.used_total},
        )
    ]
    if full:
        events.append(
            _event("grant_exhausted", after, now, reason="cap reached",
                   data={"used_count": after.used_count, "used_total": after.used_total})
        )  # fmt: skip
    stored = yield from _append(events)
    seq = int(stored[0][0])
    yield Q(
        sql.INSERT_GRANT_USE,
        (after.id, n, now, call.agent, call.function, call.digest, call.value, seq),
    )
    yield Q(sql.COMMIT)
    return GrantUse(after, n, seq)


__all__ = [
    "ACTIVE",
    "EXHAUSTED",
    "EXPIRED",
    "GRANT_STATUSES",
    "REVOKED",
    "Acceptance",
    "GrantRecord",
    "GrantUse",
    "GrantUseRow",
    "NewGrant",
    "UseRequest",
    "grant_from_row",
]
