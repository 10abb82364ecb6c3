"""The store's operations, written once for both drivers (sqlite3 and aiosqlite).

Each operation is a generator that yields :class:`Q` (a statement plus what to fetch) and receives
the result; :mod:`sentinel.store.sync` and :mod:`sentinel.store.aio` run the same generators, so
the SQL and the transaction logic exist in one place. Operations never touch files or clocks
other than through their arguments.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from sentinel.errors import (
    AmbiguousRequestId,
    DecisionConflict,
    DuplicateVote,
    EditRefused,
    RequestNotFound,
)
from sentinel.store import liveness, sql
from sentinel.store.codec import (
    GENESIS_HASH,
    body_text,
    dumps,
    event_from_row,
    normalize_event,
    operator_dict,
    operator_json,
    request_from_row,
    votes_json,
)
from sentinel.store.models import (
    APPROVED,
    CANCELLED,
    CLAIMED,
    DENIED,
    EXPIRED,
    PROTECTING_KINDS,
    ArgumentEdit,
    EventRecord,
    HistoryFilter,
    MetricsSnapshot,
    NewRequest,
    OperatorIdentity,
    PendingSummary,
    RequestRecord,
    Vote,
)
from sentinel.store.query import where_clause

Fetch = Literal["one", "all", "none", "rowcount", "many"]


@dataclass(frozen=True, slots=True)
class Q:
    """One statement to run and what the operation wants back."""

    sql: str
    params: Sequence[Any] = ()
    fetch: Fetch = "none"


Op = Generator[Q, Any, Any]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is waiting for a submitted request (stored for liveness checks)."""

    pid: int
    pid_start: int | None
    host: str
    lock_path: str | None


# --- helpers --------------------------------------------------------------------------------


def _append(events: list[dict[str, Any]]) -> Generator[Q, Any, list[tuple[Any, ...]]]:
    """Chain and insert normalized events; must run inside a write transaction.

    Returns the stored rows: tuples in :data:`EVENT_COLUMNS` order followed by the canonical body
    text the hash covers (the JSONL mirror's line). The hourly rollup is updated in the same
    transaction with one upsert per (hour, kind, rule) of the batch.
    """
    last = yield Q(sql.LAST_EVENT, (), "one")
    seq, prev = (last[0], last[1]) if last else (0, GENESIS_HASH)
    rows: list[tuple[Any, ...]] = []
    rollup: dict[tuple[int, str, str], list[Any]] = {}
    for ev in events:
        seq += 1
        body = (
            seq,
            ev["ts"],
            ev["kind"],
            ev["request_id"],
            ev["agent_id"],
            ev["function"],
            ev["digest"],
            ev["policy_version"],
            ev["rule_id"],
            ev["value_at_risk"],
            ev["actor"],
            ev["reason"],
            ev["data"],
            prev,
        )
        text = body_text(*body)
        prev = hashlib.sha256((prev + text).encode("utf-8")).hexdigest()
        rows.append((*body, prev, text))
        key = (int(ev["ts"] / 3600), ev["kind"], ev["rule_id"] or "")
        acc = rollup.get(key)
        if acc is None:
            rollup[key] = [1, ev["value_at_risk"] or 0.0]
        else:
            acc[0] += 1
            acc[1] += ev["value_at_risk"] or 0.0
    yield Q(sql.INSERT_EVENT, [r[:15] for r in rows], "many")
    yield Q(sql.ROLLUP_ADD, [(h, k, r, n, v) for (h, k, r), (n, v) in rollup.items()], "many")
    return rows


def _request_event(kind: str, rec: RequestRecord, now: float, **extra: Any) -> dict[str, Any]:
    data = extra.pop("data", {})
    return normalize_event(
        {
            "kind": kind,
            "ts": now,
            "request_id": rec.id,
            "agent_id": rec.agent_id,
            "function": rec.function,
            "digest": rec.digest,
            "policy_version": rec.policy_version,
            "rule_id": rec.rule_id,
            "value_at_risk": rec.value_at_risk,
            "data": data,
            **extra,
        }
    )


def _when(ts: float | None) -> str:
    if ts is None:
        return "an unknown time"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def conflict_message(rec: RequestRecord) -> str:
    """Why a decision on ``rec`` was refused: who decided it first and when, or that it expired."""
    if rec.status == EXPIRED:
        # expires_at, not decided_at: a row marked expired late (by a sweeper, or by this very
        # refusal) expired at its deadline, not when someone noticed.
        return f"request {rec.id} expired at {_when(rec.expires_at)} with no decision"
    if rec.status == CANCELLED:
        why = f": {rec.decision_reason}" if rec.decision_reason else ""
        return f"request {rec.id} was cancelled at {_when(rec.decided_at)}{why}"
    return f"request {rec.id} was already {rec.status} by {rec.decided_by or 'unknown'} at {_when(rec.decided_at)}"


# --- writes ---------------------------------------------------------------------------------


def submit(new: NewRequest, caller: Caller) -> Op:
    if not new.id or not isinstance(new.id, str):
        raise ValueError("request id must be a non-empty string")
    if not (isinstance(new.timeout_seconds, (int, float)) and math.isfinite(new.timeout_seconds)):
        raise ValueError(f"timeout_seconds must be a finite number, got {new.timeout_seconds!r}")
    for name in ("value_at_risk", "risk_score"):
        v = getattr(new, name)
        if v is not None and not math.isfinite(float(v)):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    created_at = float(new.created_at)
    row: dict[str, Any] = {
        "id": new.id,
        "status": "pending",
        "function": new.function,
        "arguments": dumps(new.arguments),
        "digest": new.digest,
        "agent_id": new.agent_id,
        "pid": caller.pid,
        "pid_start": caller.pid_start,
        "host": caller.host,
        "lock_path": liveness.PARKED if new.parked else caller.lock_path,
        "context": None if new.context is None else dumps(new.context),
        "rule_id": new.rule_id,
        "rule_ids": dumps(list(new.rule_ids)),
        "reason": new.reason,
        "value_at_risk": new.value_at_risk,
        "risk_score": new.risk_score,
        "risk_explanation": new.risk_explanation,
        "policy_version": new.policy_version,
        "channel": new.channel,
        "timeout_seconds": float(new.timeout_seconds),
        "created_at": created_at,
        "expires_at": created_at + float(new.timeout_seconds),
        "decided_at": None,
        "decided_by": None,
        "operator": None,
        "decision_reason": None,
        "terms": None if new.terms.is_default else dumps(new.terms.to_dict()),
        "requester": None if new.requester is None else dumps(new.requester),
        "votes": "[]",
        "escalated_at": None,
        "escalated_to": None,
        "arg_schema": None if new.arg_schema is None else dumps(new.arg_schema),
        "edit": None,
    }
    yield Q(sql.BEGIN_APPEND)  # the row is new: only the chain append needs the write lock
    inserted = yield Q(sql.INSERT_REQUEST, tuple(row.values()), "one")
    if inserted is None:  # same id submitted before: return what is stored
        found = yield Q(sql.SELECT_REQUEST, (new.id,), "one")
        yield Q(sql.COMMIT)
        return request_from_row(found)
    rec = request_from_row(inserted)
    data = {
        "arguments": new.arguments,  # the redacted copy (the only one there is)
        "context": new.context,
        "rule_ids": list(new.rule_ids),
        "reason": new.reason,
        "risk_score": new.risk_score,
        "risk_explanation": new.risk_explanation,
        "timeout_seconds": float(new.timeout_seconds),
        "expires_at": row["expires_at"],
        "channel": new.channel,
        "pid": caller.pid,
        "host": caller.host,
    }
    if not new.terms.is_default:
        data["terms"] = new.terms.to_dict()
    if new.requester is not None:
        data["requester"] = new.requester
    if new.parked:
        data["parked"] = True
    yield from _append(
        [_request_event("approval_requested", rec, created_at, reason=new.reason, data=data)]
    )
    yield Q(sql.COMMIT)
    return rec


def unsigned_vote(
    approve: bool, operator: OperatorIdentity, reason: str | None, now: float
) -> Vote:
    """The vote of a decision made without a signature: named by the decider's OS account."""
    return Vote(
        operator=operator.account,
        verdict="approve" if approve else "deny",
        decided_at=now,
        account=operator.account,
        label=operator.label,
        channel=operator.channel,
        reason=reason,
    )


def cast_vote(
    approve: bool, operator: OperatorIdentity, reason: str | None, vote: Vote | None, now: float
) -> Vote:
    """The vote a decision records: ``vote`` as given (its verdict must be ``approve``'s; a
    ``reason`` it lacks is added — the reason is not signed), or an unsigned one."""
    if vote is None:
        return unsigned_vote(approve, operator, reason, now)
    if vote.approves != approve or vote.verdict not in ("approve", "deny"):
        raise ValueError(f"vote verdict {vote.verdict!r} does not match approve={approve}")
    if reason is not None and vote.reason is None:
        return replace(vote, reason=reason)
    return vote


def decide(
    request_id: str,
    vote: Vote,
    operator: OperatorIdentity,
    now: float,
    edit: ArgumentEdit | None = None,
) -> Op:
    """Record ``vote`` on a pending, unexpired request; finish it when the votes reach the
    request's quorum (approved) or its deny quorum (denied). One vote per operator name.

    ``edit``: the approval changes the arguments (see :class:`ArgumentEdit`). Only an approving
    vote that finishes the request alone can carry one (a quorum would have to agree on the
    same edit; :class:`EditRefused` otherwise, nothing written); every name it changes must be a
    parameter of the request."""
    yield Q(sql.BEGIN_WRITE)
    found = yield Q(sql.SELECT_REQUEST, (request_id,), "one")
    if found is None:
        yield Q(sql.ROLLBACK)
        raise RequestNotFound(f"no approval request with id {request_id!r}")
    current = request_from_row(found)
    if current.is_pending and now >= current.expires_at:
        # Past its expiry but not yet marked: record the expiry now, then refuse.
        expired = yield from _finish(
            current.id, EXPIRED, now, None, "expired before a decision", "expiry"
        )
        yield Q(sql.COMMIT)
        final = expired or current
        raise DecisionConflict(conflict_message(final), record=final)
    if not current.is_pending:
        yield Q(sql.ROLLBACK)
        raise DecisionConflict(conflict_message(current), record=current)
    earlier = next((v for v in current.votes if v.operator == vote.operator), None)
    if earlier is not None:
        yield Q(sql.ROLLBACK)
        raise DuplicateVote(
            f"operator {vote.operator!r} already voted on request {current.id} "
            f"({earlier.verdict} at {_when(earlier.decided_at)}): each operator counts once",
            record=current,
        )
    if edit is not None:
        why = edit_refusal(current, vote, edit)
        if why is not None:
            yield Q(sql.ROLLBACK)
            raise EditRefused(why)
    votes = (*current.votes, vote)
    terms = current.terms
    same = [v for v in votes if v.verdict == vote.verdict]
    status: str | None = None
    if vote.approves and len(same) >= max(1, terms.quorum):
        status = APPROVED
    elif not vote.approves and len(same) >= max(1, terms.deny_quorum):
        status = DENIED
    tally = {
        "approvals": sum(v.approves for v in votes),
        "denials": sum(not v.approves for v in votes),
        "quorum": terms.quorum,
    }
    data = {
        "operator": dict(operator_dict(operator)),
        "latency_seconds": round(now - current.created_at, 6),
        "channel": operator.channel,
        "vote": {
            "operator": vote.operator,
            "verdict": vote.verdict,
            "signed": bool(vote.signature),
        },
    }
    if terms.quorum > 1 or terms.deny_quorum > 1:
        data["tally"] = tally
    if edit is not None:
        # Both versions and who changed what: the changed fields before and after, the edit
        # digest the approval is bound to, and the whole arguments as approved.
        data["edit"] = {
            **edit.to_dict(),
            "arguments_before": current.arguments,
            "arguments_after": {**current.arguments, **edit.values},
        }
    if status is None:
        row = yield Q(sql.VOTE, (votes_json(votes), request_id, now), "one")
        kind = "voted"
    else:
        row = yield Q(
            sql.DECIDE,
            (
                status,
                now,
                operator.label,
                operator_json(operator),
                vote.reason,
                votes_json(votes),
                None if edit is None else dumps(edit.to_dict()),
                request_id,
                now,
            ),
            "one",
        )
        kind = status
    if row is None:  # pragma: no cover - the row was checked inside this transaction
        yield Q(sql.ROLLBACK)
        raise DecisionConflict(conflict_message(current), record=current)
    rec = request_from_row(row)
    yield from _append(
        [_request_event(kind, rec, now, actor=operator.label, reason=vote.reason, data=data)]
    )
    yield Q(sql.COMMIT)
    return rec


def edit_refusal(current: RequestRecord, vote: Vote, edit: ArgumentEdit) -> str | None:
    """Why ``edit`` cannot be recorded with ``vote`` on ``current`` (None: it can)."""
    short = current.id[:8]
    if not vote.approves:
        return f"request {short}: only an approval can carry edited arguments"
    if max(1, current.terms.quorum) > 1 or current.votes:
        return (
            f"request {short} needs {current.terms.quorum} approvals: edit-then-approve needs a "
            "request one approval decides (approve it as sent, or deny it with a hint)"
        )
    if not edit.values:
        return f"request {short}: the edit changes nothing"
    known = set(current.arguments) | set((current.arg_schema or {}).get("properties") or ())
    unknown = sorted(k for k in edit.values if k not in known)
    if unknown:
        return f"request {short} has no parameter {', '.join(map(repr, unknown))}"
    if not edit.digest:
        return f"request {short}: the edit has no digest"
    return None


def escalate(
    request_id: str, to: Sequence[str], may_decide: Sequence[str] | None, now: float
) -> Op:
    """Record, once, that nobody decided ``request_id`` in time and ``to`` may decide it now:
    the row's ``escalated_at`` / ``escalated_to`` and one ``escalated`` event, in one transaction.
    ``may_decide`` (who may decide from now on, for the event) defaults to the row's approvers
    and ``to``. Returns the record when this call escalated it; None when the request is unknown,
    no longer pending, past its expiry or already escalated (nothing is written then)."""
    names = [str(n) for n in to]
    if not names:
        raise ValueError("escalate: name at least one group or operator to escalate to")
    yield Q(sql.BEGIN_WRITE)
    row = yield Q(sql.ESCALATE, (now, dumps(names), request_id, now), "one")
    if row is None:
        yield Q(sql.ROLLBACK)
        return None
    rec = request_from_row(row)
    after = round(now - rec.created_at, 6)
    data = {
        "to": names,
        "may_decide": [
            str(n)
            for n in (
                dict.fromkeys((*rec.terms.approvers, *names)) if may_decide is None else may_decide
            )
        ],
        "after_seconds": after,
        "votes": len(rec.votes),
    }
    reason = f"no decision after {after:g}s: escalated to {', '.join(names)}"
    yield from _append([_request_event("escalated", rec, now, reason=reason, data=data)])
    yield Q(sql.COMMIT)
    return rec


def _finish(
    request_id: str, status: str, now: float, actor: str | None, reason: str | None, by: str
) -> Generator[Q, Any, RequestRecord | None]:
    row = yield Q(sql.FINISH, (status, now, actor, reason, request_id), "one")
    if row is None:
        return None
    rec = request_from_row(row)
    yield from _append(
        [_request_event(status, rec, now, actor=actor, reason=reason, data={"by": by})]
    )
    return rec


def finish(request_id: str, status: str, reason: str | None, now: float, by: str) -> Op:
    """CAS pending → ``status`` (expired / cancelled); returns the record as it is now, or None."""
    yield Q(sql.BEGIN_WRITE)
    rec = yield from _finish(request_id, status, now, None, reason, by)
    if rec is None:
        found = yield Q(sql.SELECT_REQUEST, (request_id,), "one")
        yield Q(sql.ROLLBACK)
        return None if found is None else request_from_row(found)
    yield Q(sql.COMMIT)
    return rec


def claim(request_id: str, now: float, data: dict[str, Any]) -> Op:
    """Record, at most once, that the call an approved request allows is about to run: True when
    this claim is the first, False when it was claimed before (or the row is not approved), None
    when there is no such request. Compare-and-set under the write lock: of two processes
    resuming the same parked request, exactly one gets True."""
    yield Q(sql.BEGIN_WRITE)
    found = yield Q(sql.SELECT_REQUEST, (request_id,), "one")
    if found is None:
        yield Q(sql.ROLLBACK)
        return None
    rec = request_from_row(found)
    used = yield Q(sql.SELECT_REQUEST_EVENT_KIND, (request_id, CLAIMED), "one")
    if used is not None or rec.status != "approved":
        yield Q(sql.ROLLBACK)
        return False
    yield from _append([_request_event(CLAIMED, rec, now, data=data)])
    yield Q(sql.COMMIT)
    return True


def sweep_apply(dead: list[tuple[str, str]], overdue: list[str], now: float) -> Op:
    """One transaction: cancel rows of dead waiters (id, reason) and expire overdue rows."""
    yield Q(sql.BEGIN_WRITE)
    n = 0
    for request_id, reason in dead:
        if (yield from _finish(request_id, CANCELLED, now, None, reason, "sweeper")) is not None:
            n += 1
    for request_id in overdue:
        if (
            yield from _finish(
                request_id, EXPIRED, now, None, "expired before a decision", "sweeper"
            )
        ) is not None:
            n += 1
    yield Q(sql.COMMIT)
    return n


def append_events(events: list[dict[str, Any]], now: float, records: bool = True) -> Op:
    rows = [normalize_event(e, now) for e in events]
    if not rows:
        return []
    yield Q(sql.BEGIN_WRITE)
    stored = yield from _append(rows)
    yield Q(sql.COMMIT)
    if not records:
        return stored
    return [event_from_row(r[:15]) for r in stored]


def prune(up_to_seq: int, now: float) -> Op:
    """Record the checkpoint (seq and hash of the last pruned event) and delete events up to it.

    One transaction: the delete trigger lets rows through only at or below a recorded checkpoint.
    Returns (up_to_seq, head_hash, deleted) or None when there is no such event.
    """
    yield Q(sql.BEGIN_WRITE)
    row = yield Q(sql.EVENT_HASH_AT, (int(up_to_seq),), "one")
    if row is None:
        yield Q(sql.ROLLBACK)
        return None
    yield Q(sql.INSERT_PRUNE_WINDOW, (int(up_to_seq), row[0], now))
    deleted = yield Q(sql.DELETE_EVENTS_UPTO, (int(up_to_seq),), "rowcount")
    yield Q(sql.COMMIT)
    return int(up_to_seq), row[0], int(deleted)


def audit_state() -> Op:
    """One snapshot: (db_id, first seq, last seq, last hash, prune checkpoints oldest first)."""
    yield Q(sql.BEGIN_READ)
    meta = yield Q(sql.AUDIT_DB_ID, (), "one")
    bounds = yield Q(sql.EVENT_BOUNDS, (), "one")
    last = yield Q(sql.LAST_EVENT, (), "one")
    windows = yield Q(sql.PRUNE_WINDOWS, (), "all")
    yield Q(sql.COMMIT)
    return (
        None if meta is None else meta[0],
        bounds[0],
        bounds[1],
        None if last is None else last[1],
        [tuple(w) for w in windows],
    )


def event_rows(after_seq: int, limit: int) -> Op:
    """Raw event rows (tuples in column order), oldest first: chain verification reads these."""
    return (yield Q(sql.EVENTS_AFTER, (int(after_seq), int(limit)), "all"))


def export_page(flt: HistoryFilter | None, after_seq: int, limit: int) -> Op:
    """Events matching ``flt`` with seq > after_seq, oldest first."""
    where, params = where_clause(flt, None)
    rows = yield Q(sql.EXPORT.format(where=where), (*params, int(after_seq), int(limit)), "all")
    return [event_from_row(r) for r in rows]


def value_protected(since: float | None, until: float | None) -> Op:
    """Sum of value_at_risk over the protecting kinds with since <= ts < until, and their counts."""
    rows = yield Q(
        sql.PROTECTED_BETWEEN,
        (-1e300 if since is None else float(since), 1e300 if until is None else float(until)),
        "all",
    )
    return {kind: (int(n), float(v or 0.0)) for kind, n, v in rows}


# --- reads ----------------------------------------------------------------------------------


#: Length of every id Sentinel generates (uuid4 hex, or the API's derived id). Only a key this
#: long can be taken as an exact id ahead of longer ids it is a prefix of; anything shorter is a
#: prefix and must match exactly one request, even when some request's whole id equals it (a
#: request whose id is the short prefix printed for another one must never win over it).
FULL_ID_LENGTH = 32
#: Candidates named in an ambiguity error.
AMBIGUOUS_SHOWN = 5
#: Shortest prefix taken as an id: with one or two characters a typo decides whichever request
#: happens to be the only one starting with it (`sentinel deny 6`).
MIN_PREFIX_LENGTH = 4


def get(id_or_prefix: str) -> Op:
    """The request with this id, or the only request whose id starts with it.

    The one lookup every id-taking verb uses (CLI show/approve/deny, the API, the command center):
    a key shorter than :data:`FULL_ID_LENGTH` that matches more than one id raises
    :class:`AmbiguousRequestId` listing the candidates; no match raises :class:`RequestNotFound`.
    """
    key = (id_or_prefix or "").strip()
    if not key:
        raise RequestNotFound("empty request id")
    if len(key) < MIN_PREFIX_LENGTH:
        raise RequestNotFound(
            f"request id {key!r} is too short: give at least {MIN_PREFIX_LENGTH} characters of the "
            "id (`sentinel pending` prints 12)"
        )
    if len(key) >= FULL_ID_LENGTH:
        row = yield Q(sql.SELECT_REQUEST, (key,), "one")
        if row is not None:
            return request_from_row(row)
    rows = yield Q(sql.SELECT_REQUEST_PREFIX, (key, key + "\U0010ffff"), "all")
    if not rows:
        raise RequestNotFound(f"no approval request with id {key!r}")
    if len(rows) > 1:
        found = yield Q(
            sql.SELECT_REQUEST_PREFIX_CANDIDATES,
            (key, key + "\U0010ffff", AMBIGUOUS_SHOWN + 1),
            "all",
        )
        names = [f"{rid} ({str(fn)[:40]}, {status})" for rid, fn, status in found[:AMBIGUOUS_SHOWN]]
        raise AmbiguousRequestId(key, names, more=len(found) > AMBIGUOUS_SHOWN)
    return request_from_row(rows[0])


def list_pending(limit: int) -> Op:
    rows = yield Q(sql.SELECT_PENDING, (int(limit),), "all")
    return [request_from_row(r) for r in rows]


def pending_newest(limit: int, before: tuple[float, str] | None) -> Op:
    if int(limit) < 1:
        raise ValueError(f"pending_newest: limit must be at least 1, got {limit!r}")
    if before is None:
        rows = yield Q(sql.SELECT_PENDING_NEWEST, (int(limit),), "all")
    else:
        try:
            created_at, rid = float(before[0]), str(before[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(
                f"pending_newest: before must be (created_at, id) of the last row shown, got {before!r}"
            ) from exc
        rows = yield Q(sql.SELECT_PENDING_NEWEST_BEFORE, (created_at, rid, int(limit)), "all")
    return [request_from_row(r) for r in rows]


def pending_summary() -> Op:
    rows = yield Q(sql.PENDING_GROUPS, (), "all")
    by_agent: dict[str | None, int] = {}
    by_function: dict[str, int] = {}
    by_risk: dict[int | None, int] = {}
    total = 0
    value = 0.0
    oldest: float | None = None
    for agent, function, risk, n, v, first in rows:
        total += n
        value += float(v)
        by_agent[agent] = by_agent.get(agent, 0) + n
        by_function[function] = by_function.get(function, 0) + n
        by_risk[risk] = by_risk.get(risk, 0) + n
        oldest = first if oldest is None else min(oldest, first)
    return PendingSummary(total, by_agent, by_function, by_risk, value, oldest)


def pending_liveness() -> Op:
    return (yield Q(sql.SELECT_PENDING_LIVENESS, (), "all"))


def history(flt: HistoryFilter | None, before_seq: int | None, limit: int) -> Op:
    where, params = where_clause(flt, before_seq)
    rows = yield Q(sql.HISTORY.format(where=where), (*params, int(limit)), "all")
    return [event_from_row(r) for r in rows]


def events_after(after_seq: int, limit: int) -> Op:
    rows = yield Q(sql.EVENTS_AFTER, (int(after_seq), int(limit)), "all")
    return [event_from_row(r) for r in rows]


def database_counts() -> Op:
    """(requests, pending, events, schema version)."""
    row = yield Q(sql.DATABASE_COUNTS, (), "one")
    events = yield Q(sql.COUNT_EVENTS, (), "one")
    return int(row[0]), int(row[1]), int(events[0]), int(row[2])


def database_size() -> Op:
    """Bytes the database takes (as the database itself counts them)."""
    row = yield Q(sql.DATABASE_SIZE, (), "one")
    return int(row[0] or 0)


def count_events() -> Op:
    row = yield Q(sql.COUNT_EVENTS, (), "one")
    return int(row[0])


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _since(
    t: float | None,
) -> Generator[Q, Any, tuple[dict[str, int], dict[str, float], dict[str, int]]]:
    """Counts and value at risk per kind, and rule hits, for events with ts >= t (None = all)."""
    counts: dict[str, int] = {}
    values: dict[str, float] = {}
    rules: dict[str, int] = {}
    if t is None:
        first_hour = -(2**62)
    else:
        first_hour = math.ceil(t / 3600)
        partial_end = first_hour * 3600.0
        if t < partial_end:
            for kind, n, v in (yield Q(sql.RAW_COUNTS, (t, partial_end), "all")):
                counts[kind] = counts.get(kind, 0) + n
                values[kind] = values.get(kind, 0.0) + v
            for rule, n in (yield Q(sql.RAW_RULES, (t, partial_end), "all")):
                rules[rule] = rules.get(rule, 0) + n
    for kind, n, v in (yield Q(sql.ROLLUP_COUNTS, (first_hour,), "all")):
        counts[kind] = counts.get(kind, 0) + int(n)
        values[kind] = values.get(kind, 0.0) + float(v or 0.0)
    for rule, n in (yield Q(sql.ROLLUP_RULES, (first_hour,), "all")):
        rules[rule] = rules.get(rule, 0) + int(n)
    return counts, values, rules


def metrics(since: float | None, now: float) -> Op:
    today = (
        datetime.fromtimestamp(now, UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
        .timestamp()
    )
    hour_now = math.floor(now / 3600)
    first_hour = hour_now - 23
    yield Q(sql.BEGIN_READ)  # one consistent snapshot for all the numbers
    counts, values, rules = yield from _since(since)
    counts_today, values_today, _ = yield from _since(today if since is None else max(since, today))
    lat = sorted(
        r[0]
        for r in (yield Q(sql.DECISION_LATENCIES, (0.0 if since is None else since,), "all"))
        if r[0] is not None
    )
    pending, oldest = yield Q(sql.PENDING_SUMMARY, (), "one")
    hourly: dict[str, list[int]] = {}
    for kind, h, n in (yield Q(sql.ROLLUP_HOURLY, (first_hour,), "all")):
        if 0 <= h - first_hour < 24:
            hourly.setdefault(kind, [0] * 24)[h - first_hour] = int(n)
    yield Q(sql.COMMIT)
    top = sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return MetricsSnapshot(
        counts=counts,
        counts_today=counts_today,
        value_protected=float(sum(values.get(k, 0.0) for k in PROTECTING_KINDS)),
        value_protected_today=float(sum(values_today.get(k, 0.0) for k in PROTECTING_KINDS)),
        latency_p50=_percentile(lat, 0.50),
        latency_p95=_percentile(lat, 0.95),
        pending=int(pending or 0),
        oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
        hourly=hourly,
        top_rules=top,
        anomalies=int(counts.get("anomaly_escalated", 0)),
    )


def data_version() -> Op:
    return int((yield Q(sql.DATA_VERSION, (), "one"))[0])


def now() -> float:
    return time.time()


__all__ = ["Caller", "EventRecord", "Op", "Q", "conflict_message"]
