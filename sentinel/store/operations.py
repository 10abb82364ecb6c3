"""The store's public operations, written once for every synchronous backend.

:class:`StoreOperations` turns each public method into the operation of :mod:`sentinel.store.ops`
(or limits / baselines) it runs; a backend supplies how to run one (:meth:`_read`,
:meth:`_write`), who is waiting (:meth:`_caller_info`) and how to wake a waiting process after a
change (:meth:`_wake`): :class:`~sentinel.store.sync.Store` (SQLite) and
:class:`~sentinel.store.postgres.PgStore` (PostgreSQL) are those four methods and their
connections, nothing else.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sentinel.errors import DecisionConflict, RequestNotFound
from sentinel.store import liveness, ops
from sentinel.store.models import (
    CANCELLED,
    EXPIRED,
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

if TYPE_CHECKING:
    from sentinel.store.baselines import BaselineRow, LearnPlan
    from sentinel.store.grants import (
        Acceptance,
        GrantRecord,
        GrantUse,
        GrantUseRow,
        NewGrant,
    )
    from sentinel.store.limits import LimitCheck, LimitUsage


#: Is the waiter of a row (pid, pid start, host, lock path) certainly gone?
DeadTest = Callable[[int, "int | None", str, "str | None"], bool]


def sweep_plan(
    rows: list[tuple[Any, ...]],
    now: float,
    grace: float,
    is_dead: DeadTest = liveness.waiter_is_dead,
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Which pending rows to cancel (waiter dead) and expire (overdue), and whom to hint."""
    dead: list[tuple[str, str]] = []
    overdue: list[str] = []
    waiters: list[str] = []
    for request_id, pid, pid_start, host, lock_path, expires_at in rows:
        if is_dead(pid, pid_start, host, lock_path):
            dead.append((request_id, f"agent process {pid} on {host} exited"))
        elif expires_at + grace < now:
            overdue.append(request_id)
            if lock_path:
                waiters.append(lock_path)
    return dead, overdue, waiters


class StoreOperations(ABC):
    """Every public operation of a synchronous store (see the module doc)."""

    #: Seconds past ``expires_at`` before :meth:`sweep` expires a row.
    expiry_grace: float

    @abstractmethod
    def _read(self, op: ops.Op) -> Any:
        """Run a read-only operation on this thread's reader."""

    @abstractmethod
    def _write(self, op: ops.Op, *, durable: bool = False) -> Any:
        """Run a write operation on the writer (``durable``: commit synchronously)."""

    @abstractmethod
    def _caller_info(self) -> ops.Caller:
        """Who waits for a submitted request (liveness)."""

    @abstractmethod
    def _wake(self, lock_paths: Iterable[str | None]) -> None:
        """Tell waiting processes their row changed (a hint: they re-read it)."""

    @abstractmethod
    def _tidy_liveness(self) -> None:
        """Remove liveness traces of waiters that are gone (before a sweep)."""

    def _dead_test(self, rows: list[tuple[Any, ...]]) -> DeadTest:
        """How :meth:`sweep` tells a dead waiter among ``rows`` (pending_liveness rows)."""
        return liveness.waiter_is_dead

    # --- writes -------------------------------------------------------------------------

    def submit(self, new: NewRequest) -> RequestRecord:
        """Insert a pending request and its ``approval_requested`` event (one transaction).

        Idempotent on ``new.id``: submitting the same id again returns the stored record.
        """
        caller = self._caller_info()  # liveness lock is held before the row becomes visible
        rec: RequestRecord = self._write(ops.submit(new, caller))
        return rec

    def decide(
        self,
        request_id: str,
        approve: bool,
        operator: OperatorIdentity,
        reason: str | None = None,
        *,
        vote: Vote | None = None,
        edit: ArgumentEdit | None = None,
    ) -> RequestRecord:
        """Approve or deny a pending, unexpired request (compare-and-set, durable commit).

        The decision is recorded as ``vote`` (a signed vote, see :mod:`sentinel.trust.decide`) or,
        without one, as an unsigned vote named by ``operator.account``. The request is finished
        when the votes reach its quorum (or deny quorum); until then the record returned is
        still pending. ``edit`` approves the call with changed arguments (:class:`ArgumentEdit`,
        built and checked by :meth:`sentinel.trust.decide.Decider.decide` with ``edits=``): it is
        stored with the decision in the same compare-and-set, and its ``approved`` event keeps
        both versions; :class:`~sentinel.errors.EditRefused` (nothing written) when the request
        cannot take it. Raises :class:`DecisionConflict` (``.record`` = the row now) when someone
        decided first or the request expired, :class:`DuplicateVote` when this operator already
        voted, and :class:`RequestNotFound` for an unknown id. ``request_id`` may be a unique
        prefix.
        """
        now = time.time()
        cast = ops.cast_vote(approve, operator, reason, vote, now)
        try:
            full_id = request_id
            if len((request_id or "").strip()) < ops.FULL_ID_LENGTH:
                # Shorter than a whole id: a prefix that must match exactly one request (an
                # exact match on a short id is not preferred: that is how ids were squatted).
                full_id = self.get(request_id).id
            try:
                rec: RequestRecord = self._write(
                    ops.decide(full_id, cast, operator, now, edit), durable=True
                )
            except RequestNotFound:
                full_id = self.get(request_id).id  # a unique prefix, or a clear error
                rec = self._write(ops.decide(full_id, cast, operator, now, edit), durable=True)
        except DecisionConflict as conflict:
            if conflict.record is not None:
                self._wake([conflict.record.lock_path])  # it may have just been marked expired
            raise
        if not rec.is_pending:  # a vote short of the quorum wakes nobody
            self._wake([rec.lock_path])  # wake the waiting process now (it re-reads the row)
        return rec

    def escalate(
        self,
        request_id: str,
        to: Sequence[str],
        now: float | None = None,
        *,
        may_decide: Sequence[str] | None = None,
    ) -> RequestRecord | None:
        """Record that nobody decided in time and ``to`` (groups / operators) may decide now:
        sets the row's ``escalated_at`` / ``escalated_to`` and appends one ``escalated`` event
        (same transaction, same chain). Idempotent: only a pending, unexpired request that was
        not escalated yet changes; returns its record, else None (nothing written).

        Recording an escalation widens nothing by itself: who may approve is decided by the
        waiting call from its own rule terms and the signed decision times."""
        rec: RequestRecord | None = self._write(
            ops.escalate(request_id, to, may_decide, time.time() if now is None else now)
        )
        return rec

    def expire(self, request_id: str) -> RequestRecord | None:
        """CAS pending → expired. Returns the row as it is now (a decision that won stays), None if unknown."""
        rec: RequestRecord | None = self._write(
            ops.finish(
                request_id, EXPIRED, "no decision before the deadline", time.time(), "caller"
            )
        )
        if rec is not None:
            self._wake([rec.lock_path])
        return rec

    def cancel(
        self, request_id: str, reason: str = "cancelled by the caller"
    ) -> RequestRecord | None:
        """CAS pending → cancelled. Returns the row as it is now, None if unknown."""
        rec: RequestRecord | None = self._write(
            ops.finish(request_id, CANCELLED, reason, time.time(), "caller")
        )
        if rec is not None:
            self._wake([rec.lock_path])
        return rec

    def claim(self, request_id: str, data: dict[str, Any] | None = None) -> bool | None:
        """Record, at most once, that the call an approved parked request allows is about to
        run (an ``approval_claimed`` event). True for the first claim, False when it was claimed
        before or the row is not approved, None for an unknown id."""
        claimed: bool | None = self._write(
            ops.claim(request_id, time.time(), dict(data or {})), durable=True
        )
        return claimed

    def sweep(self) -> int:
        """Cancel pending rows whose waiting process died; expire rows past expiry + grace.

        Returns how many rows changed. Safe to run from any number of processes at once.
        """
        now = time.time()
        rows = self._read(ops.pending_liveness())
        dead, overdue, waiters = sweep_plan(rows, now, self.expiry_grace, self._dead_test(rows))
        self._tidy_liveness()
        if not dead and not overdue:
            return 0
        n: int = self._write(ops.sweep_apply(dead, overdue, now), durable=True)
        self._wake(waiters)
        return n

    def append_events(
        self, events: list[dict[str, Any]], *, records: bool = True
    ) -> list[EventRecord] | Any:
        """Append events in one transaction, hash-chained; returns them as stored.

        Each dict holds EventRecord fields except seq/prev_hash/hash (``kind`` required,
        ``ts`` defaults to now). Unknown keys raise ValueError. With ``records=False`` the stored
        rows come back instead (tuples in column order plus the canonical body text), which skips
        building records (batch writers: the audit sink hands them to the JSONL mirror).
        """
        return self._write(ops.append_events(list(events), time.time(), records))

    # --- audit (sentinel.audit) ----------------------------------------------------------------

    def audit_state(self) -> tuple[Any, ...]:
        """(db_id, first seq, last seq, last hash, prune checkpoints) in one snapshot."""
        out: tuple[Any, ...] = self._read(ops.audit_state())
        return out

    def event_rows(self, after_seq: int = 0, limit: int = 10_000) -> list[tuple[Any, ...]]:
        """Raw event rows (column order) with ``seq > after_seq``, oldest first."""
        out: list[tuple[Any, ...]] = self._read(ops.event_rows(after_seq, limit))
        return out

    def export_page(
        self, filter: HistoryFilter | None, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events matching ``filter`` with ``seq > after_seq``, oldest first."""
        out: list[EventRecord] = self._read(ops.export_page(filter, after_seq, limit))
        return out

    def value_protected(
        self, since: float | None = None, until: float | None = None
    ) -> dict[str, tuple[int, float]]:
        """kind -> (count, sum of value_at_risk) over blocked/denied/expired events in [since, until)."""
        out: dict[str, tuple[int, float]] = self._read(ops.value_protected(since, until))
        return out

    def prune_events(self, up_to_seq: int) -> tuple[int, str, int] | None:
        """Delete events with ``seq <= up_to_seq`` after recording that checkpoint (one durable
        transaction). Returns (up_to_seq, its hash, rows deleted), or None if no such event."""
        out: tuple[int, str, int] | None = self._write(
            ops.prune(up_to_seq, time.time()), durable=True
        )
        return out

    # --- reads --------------------------------------------------------------------------

    def get(self, id_or_prefix: str) -> RequestRecord:
        """The request with this id or unique id prefix; raises :class:`RequestNotFound`."""
        rec: RequestRecord = self._read(ops.get(id_or_prefix))
        return rec

    def list_pending(self, limit: int = 1000) -> list[RequestRecord]:
        """Pending requests, oldest first."""
        out: list[RequestRecord] = self._read(ops.list_pending(limit))
        return out

    def pending_newest(
        self, limit: int = 100, before: tuple[float, str] | None = None
    ) -> list[RequestRecord]:
        """Pending requests, newest first, at most ``limit``. For the next (older) page pass the
        last row's ``(created_at, id)`` as ``before``; an empty list means there are no older ones."""
        out: list[RequestRecord] = self._read(ops.pending_newest(limit, before))
        return out

    def pending_summary(self) -> PendingSummary:
        """Pending counts by agent, function and whole risk score, counted in the database."""
        out: PendingSummary = self._read(ops.pending_summary())
        return out

    def history(
        self, filter: HistoryFilter | None = None, before_seq: int | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """Events newest first; pass the last page's smallest ``seq`` as ``before_seq`` for the next."""
        out: list[EventRecord] = self._read(ops.history(filter, before_seq, limit))
        return out

    def metrics(self, since: float | None = None) -> MetricsSnapshot:
        """Counts, value protected, approval latency, pending and hourly figures."""
        snap: MetricsSnapshot = self._read(ops.metrics(since, time.time()))
        return snap

    def events_after(self, after_seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        """Events with ``seq > after_seq``, oldest first (for exporters and chain verification)."""
        out: list[EventRecord] = self._read(ops.events_after(after_seq, limit))
        return out

    # --- limit counters (sentinel.limits; operations in store/limits.py) ---------------------------

    def limit_reserve(self, checks: list[LimitCheck]) -> list[LimitUsage]:
        """Check limit counters and reserve this call in each, atomically (``BEGIN IMMEDIATE``).

        ``checks``: :class:`~sentinel.store.limits.LimitCheck`; returns one
        :class:`~sentinel.store.limits.LimitUsage` per check (with its reservation). A
        reservation counts for the whole window unless released."""
        from sentinel.store import limits

        out: list[LimitUsage] = self._write(limits.reserve(checks, time.time()))
        return out

    def limit_release(self, reservations: list[tuple[str, float]]) -> int:
        """Release reservations (``LimitUsage.reservation``) of calls that did not run."""
        from sentinel.store import limits

        if not reservations:
            return 0
        n: int = self._write(limits.release(reservations))
        return n

    def limit_usage(self, checks: list[LimitCheck]) -> list[LimitUsage]:
        """Read limit counters without reserving anything."""
        from sentinel.store import limits

        out: list[LimitUsage] = self._read(limits.usage(checks, time.time()))
        return out

    # --- anomaly baselines (sentinel.anomaly; operations in store/baselines.py) ---------------------

    def baseline_for_call(self, agent: str, function: str) -> list[BaselineRow]:
        """Every :class:`~sentinel.store.baselines.BaselineRow` of one (agent, function)."""
        from sentinel.store import baselines

        out: list[BaselineRow] = self._read(baselines.for_call(agent, function))
        return out

    def baseline_for_call_seen(
        self, agent: str, function: str, vkeys: dict[str, str]
    ) -> tuple[list[BaselineRow], set[str]]:
        """:meth:`baseline_for_call` plus which parameters' values (``{param: digest}``) were
        seen before."""
        from sentinel.store import baselines

        out: tuple[list[BaselineRow], set[str]] = self._read(
            baselines.for_call_seen(agent, function, vkeys)
        )
        return out

    def baseline_seen(self, agent: str, function: str, vkeys: list[str]) -> set[str]:
        """Which of these string-value digests were seen before for this (agent, function)."""
        from sentinel.store import baselines

        out: set[str] = self._read(baselines.seen(agent, function, vkeys))
        return out

    def baseline_window(self, agent: str, function: str, param: str) -> tuple[bytes, bytes] | None:
        """The recent-values window (float64 blobs: values, times) behind a numeric baseline."""
        from sentinel.store import baselines

        out: tuple[bytes, bytes] | None = self._read(baselines.window(agent, function, param))
        return out

    def baseline_learn(
        self, agent: str, function: str, plan: LearnPlan, now: float | None = None
    ) -> None:
        """Add a call (or a batch, :class:`~sentinel.store.baselines.LearnPlan`) to the
        baselines in one write transaction."""
        from sentinel.store import baselines

        self._write(baselines.learn(agent, function, plan, time.time() if now is None else now))

    def baseline_list(
        self, agent: str | None = None, function: str | None = None
    ) -> list[BaselineRow]:
        """Every baseline row, optionally of one agent and/or function."""
        from sentinel.store import baselines

        out: list[BaselineRow] = self._read(baselines.list_rows(agent, function))
        return out

    def baseline_top_values(
        self, agent: str, function: str, param: str, limit: int = 5
    ) -> list[tuple[str, int]]:
        """The most frequent values seen for a string parameter (redacted as stored)."""
        from sentinel.store import baselines

        out: list[tuple[str, int]] = self._read(baselines.top_values(agent, function, param, limit))
        return out

    def baseline_reset(self, agent: str | None, function: str | None, event: dict[str, Any]) -> int:
        """Delete matching baselines (None = any) and append ``event`` in one transaction;
        returns the number of baseline rows removed."""
        from sentinel.store import baselines

        n: int = self._write(baselines.reset(agent, function, event, time.time()))
        return n

    # --- standing grants (sentinel.grants; operations in store/grants.py) ----------------------

    def create_grant(self, new: NewGrant, operator: OperatorIdentity) -> GrantRecord:
        """Create a standing grant (:class:`~sentinel.store.grants.NewGrant`) made by
        ``operator``: one durable transaction with its ``grant_created`` event. Raises
        :class:`~sentinel.errors.GrantConflict` when ``new.id`` is taken. Signing is the
        caller's (:func:`sentinel.trust.grants.sign_grant` fills ``signer`` / ``signature``)."""
        from sentinel.store import grants

        out: GrantRecord = self._write(grants.create(new, operator, time.time()), durable=True)
        return out

    def get_grant(self, id_or_prefix: str) -> GrantRecord:
        """The grant with this id or unique id prefix (at least 4 characters); raises
        :class:`~sentinel.errors.GrantNotFound` (:class:`~sentinel.errors.AmbiguousGrantId`
        for a prefix matching several)."""
        from sentinel.store import grants

        out: GrantRecord = self._read(grants.get(id_or_prefix))
        return out

    def list_grants(self, status: str | None = None, limit: int = 1000) -> list[GrantRecord]:
        """Grants newest first; ``status``: only those stored with it (``active`` …). An active
        grant past its expiry is listed as stored: use ``GrantRecord.state(now)`` (or
        :meth:`expire_grants` first) to show it as expired."""
        from sentinel.store import grants

        out: list[GrantRecord] = self._read(grants.list_grants(status, limit))
        return out

    def active_grants(self) -> list[GrantRecord]:
        """Every grant stored as active, oldest first (the guard's cache reads this)."""
        from sentinel.store import grants

        out: list[GrantRecord] = self._read(grants.active())
        return out

    def grant_uses(self, grant_id: str, limit: int = 100) -> list[GrantUseRow]:
        """The uses of one grant (full id), newest first: time, agent, digest, value, event seq."""
        from sentinel.store import grants

        out: list[GrantUseRow] = self._read(grants.uses(grant_id, limit))
        return out

    def revoke_grant(
        self, id_or_prefix: str, operator: OperatorIdentity, reason: str | None = None
    ) -> GrantRecord:
        """Revoke an active grant at once (compare-and-set, durable, ``grant_revoked`` event):
        a later call no longer matches it. Raises GrantNotFound, or GrantConflict when it had
        already ended (``.record``: the grant now; one past its expiry is recorded expired)."""
        from sentinel.store import grants

        full = self.get_grant(id_or_prefix).id
        out: GrantRecord = self._write(
            grants.revoke(full, operator, reason, time.time()), durable=True
        )
        return out

    def expire_grants(self) -> int:
        """Record every active grant past its expiry as expired (``grant_expired`` events);
        returns how many. Consuming and revoking also notice expiry on their own."""
        from sentinel.store import grants

        n: int = self._write(grants.expire_due(time.time()))
        return n

    def approve_with_grant(
        self,
        request_id: str,
        new: NewGrant,
        operator: OperatorIdentity,
        reason: str | None = None,
        *,
        vote: Vote | None = None,
    ) -> tuple[RequestRecord, GrantRecord]:
        """Approve a pending request AND create a grant from it, in one durable transaction:
        exactly-once like :meth:`decide` (the same compare-and-set and refusals:
        DecisionConflict, DuplicateVote, RequestNotFound), and the grant exists only if this
        approval decided the request (a vote short of a quorum raises GrantConflict, nothing
        written). ``new`` must name the request's agent (``""`` for none) and function.
        Returns (the approved request, the grant); wakes the waiting call."""
        from sentinel.store import grants

        now = time.time()
        cast = ops.cast_vote(True, operator, reason, vote, now)
        full_id = self.get(request_id).id
        try:
            rec, grant = self._write(
                grants.approve_with(
                    full_id, ops.decide(full_id, cast, operator, now), new, operator, now
                ),
                durable=True,
            )
        except DecisionConflict as conflict:
            record = conflict.record
            if isinstance(record, RequestRecord):
                self._wake([record.lock_path])
            raise
        self._wake([rec.lock_path])
        return rec, grant

    def consume_grant(
        self,
        agent: str | None,
        function: str,
        params: Mapping[str, Any],
        value: float | None,
        *,
        digest: str | None = None,
        rule_id: str | None = None,
        policy_version: str | None = None,
        only: Iterable[str] | None = None,
        accept: Acceptance | None = None,
    ) -> GrantUse | None:
        """Atomically find a valid grant for (``agent``, ``function``) that ``params`` fit and
        that has room for ``value``, and count this call in it (``used_count + 1``,
        ``used_total + value``; ``exhausted`` at a cap), with a ``grant_uses`` row and a
        ``grant_used`` event in the same transaction. Under the database's write lock, so no
        two processes can overspend a grant (as the windowed limits). Grants noticed past their
        expiry are recorded as expired. ``only``: consider only these grant ids; ``accept``:
        the caller's check of a candidate (returns why not, e.g. a bad signature: the row is
        skipped and a ``grant_refused`` event recorded). Returns the use, or None."""
        from sentinel.store import grants

        call = grants.UseRequest(
            agent or "", function, params, value, digest, rule_id, policy_version,
            None if only is None else frozenset(only),
        )  # fmt: skip
        out: GrantUse | None = self._write(grants.consume(call, time.time(), accept))
        return out

    def count_events(self) -> int:
        """Number of events stored."""
        n: int = self._read(ops.count_events())
        return n

    def data_version(self) -> int:
        """Changes whenever the database changed (a hint to re-read, never a decision)."""
        n: int = self._read(ops.data_version())
        return n
