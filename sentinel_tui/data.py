"""The command center's only door to data: a thin adapter over :mod:`sentinel.store` and
:mod:`sentinel.policy`.

Called only from thread workers (never from widgets or message handlers), so no call here may
block the event loop. No SQL: the store owns the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import DecisionConflict, DecisionRefused, SentinelError
from sentinel.policy.diff import PolicyDiff
from sentinel.policy.replay import ReplayReport
from sentinel.policy.widening import Widening
from sentinel.policy_source import PolicyFollower, PolicyProblem
from sentinel.store.location import (
    Location,
    PgLocation,
    open_store,
    parse_location,
    parse_or_default,
)
from sentinel.store.models import (
    EventRecord,
    HistoryFilter,
    MetricsSnapshot,
    OperatorIdentity,
    PendingSummary,
    RequestRecord,
)
from sentinel.trust.decide import Decider

if TYPE_CHECKING:
    from sentinel_tui.grant_dialog import GrantDraft


@dataclass(frozen=True)
class RuleRow:
    """One policy rule as the Rules view shows it."""

    position: int
    id: str
    name: str | None
    pattern: str
    action: str
    priority: int | None
    enabled: bool
    shadow: bool
    message: str


@dataclass(frozen=True)
class PolicyInfo:
    """The policy file as loaded.

    When the file on disk is invalid, ``error`` / ``problem`` say why and ``rules``,
    ``version`` and ``policy`` are still those of the last good policy (None before any good
    load): an invalid edit never replaces what is shown. ``diff`` is the last change between
    two good policies (kept while a later edit is invalid), ``changed_at`` when it was seen.
    """

    path: Path | None
    version: str | None
    loaded_at: float | None
    rules: tuple[RuleRow, ...]
    default_action: str | None
    error: str | None = None  # validation failure (file:line: message)
    problem: PolicyProblem | None = None  # file, line, what, message
    diff: PolicyDiff | None = None
    changed_at: float | None = None
    #: How the last change (``diff``) widened what is allowed (empty: kept or tightened).
    widened: tuple[Widening, ...] = ()
    policy: Any = field(default=None, compare=False, repr=False)  # sentinel.policy.Policy

    @property
    def valid(self) -> bool:
        return self.error is None and self.version is not None


@dataclass(frozen=True)
class ReplayInfo:
    """What the rules file on disk would change against the recorded history."""

    path: Path
    active_version: str | None
    candidate_version: str | None
    since: float | None
    report: ReplayReport | None
    error: str | None = None
    same_as_active: bool = False


@dataclass(frozen=True)
class DecisionOutcome:
    """What happened to one decision: ``record`` is the request as it is now."""

    request_id: str
    approve: bool
    ok: bool
    record: RequestRecord | None
    error: str | None = None  # conflict or failure text
    refused: bool = False  # this operator may not decide it (nothing was recorded)

    @property
    def voted(self) -> bool:
        """A vote recorded short of the quorum: the request is still pending."""
        return self.ok and self.record is not None and self.record.is_pending


@dataclass(frozen=True)
class GrantOutcome:
    """What happened to an approve-and-grant: ``record`` is the request as it is now (decided
    elsewhere when ``ok`` is False and it is not pending), ``grant`` the grant made."""

    request_id: str
    ok: bool
    record: RequestRecord | None
    grant: Any = None
    error: str | None = None
    refused: bool = False  # this operator may not approve it (nothing was recorded)

    @property
    def decided_elsewhere(self) -> bool:
        return not self.ok and self.record is not None and not self.record.is_pending


@dataclass(frozen=True)
class RevokeOutcome:
    """What happened to a revocation: ``grant`` as it is now."""

    grant_id: str
    ok: bool
    grant: Any
    error: str | None = None


@dataclass(frozen=True)
class SigningState:
    """Whether this command center's decisions are signed, for the status bar.

    ``name`` is the trusted operator they are signed as; ``expected`` says the waiting calls
    want signatures (the operators file lists someone), and ``problem`` why this operator
    cannot give them (no key, a key nobody trusts, a revoked key, an unreadable file)."""

    signs: bool
    name: str | None
    expected: bool
    problem: str | None = None

    @classmethod
    def of(cls, decider: Decider) -> SigningState:
        if decider.signs:
            return cls(True, decider.name, True)
        if not decider.signing_expected:
            return cls(False, None, False)
        entry = decider.entry
        if decider.key is None:
            problem = "no trusted operator key — sentinel operator init"
        elif entry is None:
            problem = "operator key not trusted — ask an admin: sentinel operator add"
        elif entry.revoked_at is not None:
            problem = f"operator key of {entry.name} revoked — ask an admin for a new entry"
        else:
            problem = "operator key cannot sign here"
        return cls(False, None, True, problem=problem)


def _rule_row(position: int, rule: Any) -> RuleRow:
    action = getattr(rule, "action", "")
    return RuleRow(
        position=position,
        id=str(getattr(rule, "id", "?")),
        name=getattr(rule, "name", None),
        pattern=str(getattr(rule, "function_pattern", "*")),
        action=str(getattr(action, "value", action)),
        priority=getattr(rule, "priority", None),
        enabled=bool(getattr(rule, "enabled", True)),
        shadow=bool(getattr(rule, "shadow", False)),
        message=str(getattr(rule, "message", "") or ""),
    )


class DataSource:
    """Store + policy access for the app. Thread-safe; the store is opened on first use."""

    def __init__(
        self,
        db_path: Path | str | PgLocation | None = None,
        rules_path: Path | str | None = None,
        *,
        operator: OperatorIdentity | None = None,
        clock: Callable[[], float] = time.time,
    ):
        # A path or a postgresql:// URL; parsed now (nothing opened), so a bad value fails here.
        self._db_arg = db_path
        self.rules_path = Path(rules_path) if rules_path is not None else None
        self._store: Any = None  # Store or PgStore, opened on first use
        self._lock = threading.Lock()
        self._operator = operator
        self._decider: Decider | None = None
        self._trust_stamp: tuple[object, ...] | None = None
        self._decider_error: str | None = None
        self._clock = clock
        # The rules file, followed by the library (sentinel.policy_source.PolicyFollower);
        # only the display times are the command center's own.
        self._follower: PolicyFollower | None = None
        self._policy_lock = threading.RLock()
        self._reloading = threading.local()
        self._watch_rules = True
        self._on_policy_change: Callable[[PolicyInfo | None, bool], None] | None = None
        self._shown_version: str | None = None
        self._loaded_at: float | None = None
        self._changed_at: float | None = None

    @property
    def db_path(self) -> Location:
        """The database: a SQLite file, or a PostgreSQL location (``str()`` masks its
        password), resolved like the store resolves it."""
        if self._db_arg is None:
            return parse_or_default(None)
        return parse_location(self._db_arg, source="--db")  # as given: a relative path stays so

    @property
    def db_display(self) -> str:
        """The database as the status bar shows it (a PostgreSQL password masked)."""
        return str(self.db_path)

    @property
    def store(self) -> Any:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.db_path)
            return self._store

    def close(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None and hasattr(store, "close"):
            store.close()

    # --- reads ---------------------------------------------------------------------------------

    def data_version(self) -> int:
        return int(self.store.data_version())

    def pending(self, limit: int) -> list[RequestRecord]:
        return list(self.store.list_pending(limit=limit))

    def pending_newest(self, limit: int) -> list[RequestRecord]:
        """The newest ``limit`` pending requests, newest first (never every pending row)."""
        return list(self.store.pending_newest(limit))

    def pending_summary(self) -> PendingSummary:
        return self.store.pending_summary()

    def get(self, request_id: str) -> RequestRecord:
        return self.store.get(request_id)

    def parse_filter(self, text: str) -> HistoryFilter:
        """Operator filter text → HistoryFilter (raises ValueError/SentinelError on bad syntax)."""
        text = text.strip()
        if not text:
            return HistoryFilter()
        return HistoryFilter.parse(text)

    def history(
        self, flt: HistoryFilter, before_seq: int | None, limit: int
    ) -> list[EventRecord]:
        return list(self.store.history(flt, before_seq=before_seq, limit=limit))

    def metrics(self) -> MetricsSnapshot:
        return self.store.metrics()

    def latest_seq(self, kinds: tuple[str, ...]) -> int:
        """The newest event's sequence number among ``kinds`` (0 when there is none)."""
        rows = self.store.history(HistoryFilter(kinds=kinds), before_seq=None, limit=1)
        return int(rows[0].seq) if rows else 0

    def events_since(self, kinds: tuple[str, ...], after_seq: int, limit: int = 50) -> list[EventRecord]:
        """Events of ``kinds`` newer than ``after_seq``, oldest first (at most ``limit``, the
        newest ones)."""
        rows = self.store.history(HistoryFilter(kinds=kinds), before_seq=None, limit=limit)
        return [e for e in reversed(rows) if e.seq > after_seq]

    # --- housekeeping --------------------------------------------------------------------------

    def sweep(self) -> int:
        """Cancel requests whose agent process died and expire overdue ones (the store's
        sweeper; safe from any number of processes). Returns how many changed."""
        return int(self.store.sweep())

    # --- decisions -----------------------------------------------------------------------------

    def operator(self) -> OperatorIdentity:
        if self._operator is None:
            from sentinel.identity import current_operator

            self._operator = current_operator(channel="tui")
        return self._operator

    def decider(self) -> Decider:
        """Who decides here and the key they sign with (loaded once, in a worker). Raises
        SentinelConfigError for an operators file or key that cannot be trusted (tried again
        at the next call: every decision meanwhile is refused)."""
        if self._decider is None:
            try:
                decider = Decider.local("tui")
            except SentinelError as exc:
                self._decider_error = str(exc)
                raise
            if self._operator is not None:
                from dataclasses import replace

                decider = replace(decider, operator=self._operator)
            decider.names  # noqa: B018 - the OS group lookup here, never at a key press
            self._decider, self._decider_error = decider, None
        return self._decider

    def signing_if_changed(self) -> SigningState | None:
        """The signing state again when the operators file or this operator's key changed
        since it was last read (an admin trusted or revoked a key while the command center
        runs), else None. File I/O: call from a worker."""
        if self._trust_stamp is None or _trust_files_stamp() == self._trust_stamp:
            return None  # not read yet (signing() at start does), or unchanged
        self._decider = None
        return self.signing()

    def signing(self) -> SigningState:
        """Whether decisions made here are signed (loads the decider: call from a worker)."""
        self._trust_stamp = _trust_files_stamp()
        try:
            return SigningState.of(self.decider())
        except SentinelError as exc:
            return SigningState(False, None, True, problem=f"operator key: {exc}")

    def refusal(self, record: RequestRecord, approve: bool) -> str | None:
        """Why this operator may not decide ``record`` (shown at the key press), or None."""
        try:
            return self.decider().refusal(record, approve)
        except SentinelError as exc:
            return str(exc)

    def quick_refusal(
        self, record: RequestRecord, approve: bool, now: float | None = None
    ) -> str | None:
        """:meth:`refusal` without I/O, for the UI thread at a key press: the decider loaded by
        a worker, or why it could not be loaded. None before it is loaded (the decision worker
        checks again before anything is written)."""
        decider, error = self._decider, self._decider_error
        if decider is not None:
            return decider.refusal(record, approve, now)
        return error

    def decide_all(
        self, request_ids: list[str], approve: bool, reason: str | None
    ) -> list[DecisionOutcome]:
        """:meth:`decide` each request. The operators file and the key are read again once,
        first: a key trusted or revoked since the command center started counts at once."""
        self._decider = None
        return [self.decide(rid, approve, reason) for rid in request_ids]

    def decide(self, request_id: str, approve: bool, reason: str | None) -> DecisionOutcome:
        """Check, sign and record a decision. A conflict or a refusal is an outcome, not an
        exception (a refusal records nothing)."""
        try:
            record = self.decider().decide(self.store, request_id, approve, reason or None)
        except DecisionRefused as exc:
            return DecisionOutcome(request_id, approve, False, None, error=str(exc), refused=True)
        except DecisionConflict as exc:
            return DecisionOutcome(request_id, approve, False, exc.record, error=str(exc))
        except SentinelError as exc:
            return DecisionOutcome(request_id, approve, False, None, error=str(exc))
        return DecisionOutcome(request_id, approve, True, record)

    def decide_edit(
        self, request_id: str, values: dict[str, str], reason: str | None
    ) -> DecisionOutcome:
        """Approve with edited arguments (``values``: parameter → text typed in the edit form,
        typed by the request's schema), checked against the rules in force here too. A refusal
        (a value that does not fit, an edited call the rules block) or a conflict (decided
        meanwhile) is an outcome that recorded nothing."""
        follower = self._follower
        try:
            policy = follower.state().policy if follower is not None else None
        except Exception:
            policy = None
        try:
            record = self.decider().decide(
                self.store, request_id, True, reason or None, edits=values, policy=policy
            )
        except DecisionRefused as exc:
            return DecisionOutcome(request_id, True, False, None, error=str(exc), refused=True)
        except DecisionConflict as exc:
            return DecisionOutcome(request_id, True, False, exc.record, error=str(exc))
        except SentinelError as exc:
            return DecisionOutcome(request_id, True, False, None, error=str(exc))
        return DecisionOutcome(request_id, True, True, record)

    # --- policy --------------------------------------------------------------------------------

    def watch_policy(
        self, on_change: Callable[[PolicyInfo | None, bool], None], *, watch: bool = True
    ) -> None:
        """Deliver the policy state as ``on_change(info, manual)`` after every change: the
        library's :class:`~sentinel.policy_source.PolicyFollower` loads the rules file (with
        its settle window: a half-saved file is never shown), keeps the last good policy and
        the widening diff, and (``watch``) follows the file. ``on_change`` runs on the watcher
        thread or a worker and must not block (the app posts a message). No I/O here: the
        follower starts in the first :meth:`load_policy` (a worker)."""
        self._on_policy_change = on_change
        self._watch_rules = watch

    def load_policy(self, manual: bool = False) -> None:
        """Load (first call) or re-validate the rules file now, then deliver the state to the
        ``on_change`` of :meth:`watch_policy` (``manual``: the operator asked). An invalid file
        is reported in the state, never raised. Called from a worker (file I/O)."""
        if self.rules_path is None:
            self._deliver(None, manual)
            return
        with self._policy_lock:
            follower = self._follower
            if follower is None:
                from sentinel.policy_source import PolicyFollower

                follower = PolicyFollower(self.rules_path, watch=self._watch_rules)
                follower.subscribe(self._policy_changed)
                self._follower = follower
        self._reloading.active = True  # this thread's own reload is delivered once, below
        try:
            follower.reload()
        finally:
            self._reloading.active = False
        self._deliver(follower, manual)

    def stop_policy(self) -> None:
        """Stop following the rules file (the app is gone); nothing is delivered after."""
        with self._policy_lock:
            follower, self._follower = self._follower, None
            self._on_policy_change = None
        if follower is not None:
            follower.close()

    def policy_info(self) -> PolicyInfo | None:
        """The policy state as the Rules view shows it (no I/O; None without a rules file)."""
        with self._policy_lock:
            return self._info_locked()

    def _policy_changed(self) -> None:
        """The follower's subscriber (a watcher thread, or a worker's reload)."""
        if getattr(self._reloading, "active", False):
            return  # load_policy on this thread delivers it, with ``manual``
        with self._policy_lock:
            follower = self._follower
        if follower is not None:
            self._deliver(follower, False)

    def _deliver(self, follower: Any, manual: bool) -> None:
        # Under the lock: two threads delivering never hand over their states out of order.
        with self._policy_lock:
            callback = self._on_policy_change
            if callback is None or follower is not self._follower:
                return
            info = self._info_locked()
            try:
                callback(info, manual)
            except RuntimeError:
                pass  # the app has stopped

    def _info_locked(self) -> PolicyInfo | None:
        if self.rules_path is None:
            return None
        follower = self._follower
        if follower is None:
            return None
        state = follower.state()
        policy, problem = state.policy, state.problem
        now = self._clock()
        if policy is not None and policy.version != self._shown_version:
            # When the command center first saw it (its clock: frozen in tests).
            if self._shown_version is not None:
                self._changed_at = now
            self._shown_version = policy.version
            self._loaded_at = now
        error = problem.message if problem is not None else None
        if policy is None:
            return PolicyInfo(self.rules_path, None, now, (), None, error=error, problem=problem)
        last = state.last_loaded
        default = getattr(policy, "default_action", None)
        return PolicyInfo(
            path=Path(policy.source) if policy.source is not None else self.rules_path,
            version=str(policy.version),
            loaded_at=self._loaded_at,
            rules=tuple(_rule_row(i + 1, r) for i, r in enumerate(policy.rules)),
            default_action=str(getattr(default, "value", default)) if default else None,
            error=error,
            problem=problem,
            diff=last.diff if last is not None else None,
            changed_at=self._changed_at if last is not None else None,
            widened=last.widened if last is not None else (),
            policy=policy,
        )

    def replay(self, since: float | None) -> ReplayInfo:
        """Replay the rules file as it is on disk now (maybe not yet the policy shown) against
        the decisions recorded since ``since``: what would change."""
        from sentinel.policy import parse_policy
        from sentinel.policy.replay import replay_history

        path = self.rules_path
        if path is None:
            raise SentinelError("no rules file (start with --rules PATH)")
        follower = self._follower
        policy = follower.state().policy if follower is not None else None
        active = policy.version if policy is not None else None
        try:
            text = path.read_text(encoding="utf-8")
            candidate = parse_policy(text, str(path))
        except (SentinelError, OSError, UnicodeDecodeError) as exc:
            return ReplayInfo(path, active, None, since, None, error=str(exc))
        report = replay_history(candidate, self.store, since=since)
        return ReplayInfo(
            path, active, candidate.version, since, report, same_as_active=candidate.version == active
        )

    # --- standing grants -----------------------------------------------------------------------

    def grants(self, limit: int = 500) -> list[Any]:
        """Grants, newest first (:class:`~sentinel.store.grants.GrantRecord`)."""
        return list(self.store.list_grants(limit=limit))

    def approve_with_grant(self, draft: GrantDraft, reason: str | None = None) -> GrantOutcome:
        """Approve ``draft.request_id`` and create ``draft.grant`` as one decision
        (:meth:`Decider.approve_with_grant <sentinel.trust.decide.Decider.approve_with_grant>`:
        checked, and signed like a decision when this operator signs). The operators file and
        the key are read again first. A conflict or a refusal is an outcome, not an exception;
        then nothing was recorded."""
        from dataclasses import replace

        rid = draft.request_id
        self._decider = None
        try:
            decider = self.decider()
            record = self.store.get(rid)
            if not record.is_pending:
                return GrantOutcome(rid, False, record, error=f"already {record.status}")
            new = replace(draft.grant, reason=reason) if reason else draft.grant
            approved, grant = decider.approve_with_grant(self.store, record.id, new, reason)
        except DecisionRefused as exc:
            return GrantOutcome(rid, False, None, error=str(exc), refused=True)
        except DecisionConflict as exc:
            rec = exc.record if isinstance(exc.record, RequestRecord) else None
            return GrantOutcome(rid, False, rec, error=str(exc))
        except (SentinelError, ValueError) as exc:
            return GrantOutcome(rid, False, None, error=str(exc))
        return GrantOutcome(rid, True, approved, grant=grant)

    def revoke_grant(self, grant_id: str, reason: str | None = None) -> RevokeOutcome:
        """Revoke a grant now, as this command center's operator. A grant that had already
        ended is an outcome (``grant`` as it is now), not an exception."""
        try:
            operator = self.decider().operator
            grant = self.store.revoke_grant(grant_id, operator, reason)
        except DecisionConflict as exc:
            return RevokeOutcome(grant_id, False, exc.record, error=str(exc))
        except SentinelError as exc:
            return RevokeOutcome(grant_id, False, None, error=str(exc))
        return RevokeOutcome(grant_id, True, grant)


def _trust_files_stamp() -> tuple[object, ...]:
    """(path, mtime, size) of the operators file and this operator's key: what tells that
    either changed."""
    from sentinel.trust import default_key_path, operators_path

    stamp: list[object] = []
    for path in (operators_path(), default_key_path()):
        try:
            st = path.stat()
            stamp.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamp.append((str(path), None))
    return tuple(stamp)
