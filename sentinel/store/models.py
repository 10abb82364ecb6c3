"""Records the store returns. Plain frozen dataclasses: no SQL, no I/O, safe to pass to any UI."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

#: Request states. ``pending`` is the only state a request can leave.
PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
EXPIRED = "expired"
CANCELLED = "cancelled"
FINAL_STATES = (APPROVED, DENIED, EXPIRED, CANCELLED)
#: The event recording that the call an approved *parked* request allows went ahead (once).
CLAIMED = "approval_claimed"

#: Event kinds whose value at risk counts as "value protected" (one definition, used everywhere).
PROTECTING_KINDS = ("blocked", "denied", "expired")


@dataclass(frozen=True)
class OperatorIdentity:
    """Who decided: the OS account from the kernel, where, and over which SSH connection."""

    account: str  # OS account name resolved from the real uid (never from $USER)
    uid: int
    login_uid: int | None  # /proc/self/loginuid when set: the account that logged in
    login_account: str | None
    host: str
    ssh_client: str | None  # "addr port" from SSH_CONNECTION (provenance, not proof)
    display_name: str | None = None  # SENTINEL_OPERATOR; shown next to, never instead of, account
    channel: str = "cli"  # cli | tui | terminal | api | webhook

    @property
    def label(self) -> str:
        """Short one-line form, e.g. ``alice@db1 (Alice) via ssh 10.0.0.5``."""
        text = f"{self.account}@{self.host}"
        if self.login_account and self.login_account != self.account:
            text += f" (login {self.login_account})"
        if self.display_name:
            text += f" [{self.display_name}]"
        if self.ssh_client:
            text += f" via ssh {self.ssh_client.split()[0]}"
        return text


@dataclass(frozen=True)
class PendingSummary:
    """What is waiting, counted in the database (no pending row is loaded to count it)."""

    total: int
    by_agent: dict[str | None, int]  # agent id (None: unnamed agent) → pending requests
    by_function: dict[str, int]  # function → pending requests
    by_risk: dict[int | None, int]  # whole risk score 0–10 (None: not scored) → pending requests
    value_at_risk: float  # sum over the pending requests that name one
    oldest_created_at: float | None  # None when nothing is pending


@dataclass(frozen=True)
class DecisionTerms:
    """Who may decide a request and how many must agree, from the rule that asked (stored with
    the request so every command center shows the same thing; the waiting call enforces its own
    copy, never the stored one).

    ``approvers`` names groups, operators or API token roles (empty: any operator);
    ``self_approval`` False refuses a decision by the agent's own identity; ``quorum`` distinct
    authorised approvals are needed, and ``deny_quorum`` denials end the request (1: one deny
    ends it). After ``escalate_after`` seconds without a decision, ``escalate_to`` may decide too.
    """

    quorum: int = 1
    approvers: tuple[str, ...] = ()
    self_approval: bool = True
    deny_quorum: int = 1
    escalate_after: float | None = None
    escalate_to: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        return self == DecisionTerms()

    def may_decide(self, at_age: float) -> tuple[str, ...]:
        """The names allowed to decide ``at_age`` seconds after the request (empty: anyone)."""
        if not self.approvers:
            return ()
        if self.escalate_after is not None and at_age >= self.escalate_after:
            return tuple(dict.fromkeys(self.approvers + self.escalate_to))
        return self.approvers

    def to_dict(self) -> dict[str, Any]:
        return {
            "quorum": self.quorum,
            "approvers": list(self.approvers),
            "self_approval": self.self_approval,
            "deny_quorum": self.deny_quorum,
            "escalate_after": self.escalate_after,
            "escalate_to": list(self.escalate_to),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DecisionTerms:
        if not data:
            return cls()
        return cls(
            quorum=int(data.get("quorum", 1)),
            approvers=tuple(data.get("approvers") or ()),
            self_approval=bool(data.get("self_approval", True)),
            deny_quorum=int(data.get("deny_quorum", 1)),
            escalate_after=data.get("escalate_after"),
            escalate_to=tuple(data.get("escalate_to") or ()),
        )


@dataclass(frozen=True)
class Vote:
    """One operator's decision on a request, as stored (a quorum collects several).

    ``operator`` is the name that signed (a trusted operator's) or, unsigned, the decider's OS
    account; ``signature`` covers the request id, digest, verdict, operator, time, expiry, role
    and groups (:mod:`sentinel.trust.decision`). The store records votes; only the waiting call's
    check of the signatures makes one count."""

    operator: str
    verdict: str  # approve | deny
    decided_at: float
    signature: str | None = None
    role: str | None = None
    groups: tuple[str, ...] = ()
    account: str | None = None  # the deciding OS account (or token:<name> via the API)
    label: str | None = None  # OperatorIdentity.label of who decided (provenance)
    channel: str | None = None
    reason: str | None = None

    @property
    def approves(self) -> bool:
        return self.verdict == "approve"

    def to_dict(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "verdict": self.verdict,
            "decided_at": self.decided_at,
            "signature": self.signature,
            "role": self.role,
            "groups": list(self.groups),
            "account": self.account,
            "label": self.label,
            "channel": self.channel,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vote:
        return cls(
            operator=str(data.get("operator") or ""),
            verdict=str(data.get("verdict") or ""),
            decided_at=float(data.get("decided_at") or 0.0),
            signature=data.get("signature"),
            role=data.get("role"),
            groups=tuple(data.get("groups") or ()),
            account=data.get("account"),
            label=data.get("label"),
            channel=data.get("channel"),
            reason=data.get("reason"),
        )


@dataclass(frozen=True)
class FieldChange:
    """One parameter an operator changed before approving: its value as shown before (the
    redacted copy the request stored) and the value the call runs with."""

    name: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ArgumentEdit:
    """An approval that changed the call's arguments (edit, then approve).

    ``values`` holds the new JSON value of each changed parameter (only those); the call runs
    with the request's real arguments and these values in their place. ``digest`` is the edit
    digest (:func:`sentinel.edits.edit_digest` of the request's digest and ``values``): the one a
    signed approval of the edited call signs, so a signature over the plain call never approves
    an edit and an edit written into the row afterwards never verifies. ``operator`` / ``label``
    say who changed it (the vote's name and the deciding identity)."""

    values: dict[str, Any]
    changes: tuple[FieldChange, ...]
    digest: str
    operator: str | None = None
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "changes": [c.to_dict() for c in self.changes],
            "digest": self.digest,
            "operator": self.operator,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArgumentEdit:
        values = data.get("values")
        if not isinstance(values, dict):
            raise ValueError("an edit must hold its values as an object")
        changes = tuple(
            FieldChange(str(c.get("name")), c.get("before"), c.get("after"))
            for c in (data.get("changes") or ())
            if isinstance(c, dict)
        )
        return cls(
            values=dict(values),
            changes=changes,
            digest=str(data.get("digest") or ""),
            operator=data.get("operator"),
            label=data.get("label"),
        )

    def describe(self, width: int = 60) -> str:
        """One line naming each change, e.g. ``amount: 5000 → 400; to: 'ACC-1' → 'ACC-2'``."""
        from sentinel.redact import safe_text

        return "; ".join(
            f"{safe_text(c.name, 40)}: {safe_text(_short(c.before), width)} → "
            f"{safe_text(_short(c.after), width)}"
            for c in self.changes
        )


def _short(value: Any) -> str:
    import json

    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class NewRequest:
    """What an agent submits when a call needs approval."""

    id: str
    function: str
    #: The redacted, JSON-safe copy: the one stored and shown. The real values are never stored;
    #: ``digest`` binds them, and the call runs with them.
    arguments: dict[str, Any]
    digest: str  # binding SHA-256 of the real arguments
    timeout_seconds: float
    agent_id: str | None = None
    context: dict[str, Any] | None = None
    rule_id: str | None = None
    rule_ids: tuple[str, ...] = ()
    reason: str = ""
    value_at_risk: float | None = None
    risk_score: float | None = None
    risk_explanation: str | None = None
    policy_version: str | None = None
    channel: str = "queue"
    created_at: float = field(default_factory=time.time)
    terms: DecisionTerms = field(default_factory=DecisionTerms)
    #: Who asked: the waiting process's OS account and host, or the API token that submitted.
    requester: dict[str, Any] | None = None
    #: The JSON Schema of the arguments (``{"type": "object", "properties": …}``), from the
    #: function's signature or the tool's schema: an operator's edit is checked against it.
    #: None: not known (an edit is then refused).
    arg_schema: dict[str, Any] | None = None
    #: No process waits for the decision: the run that asked is saved elsewhere (a LangGraph
    #: checkpoint) and resumes later. The liveness sweep leaves such a row alone; only a
    #: decision or its expiry ends it.
    parked: bool = False

    @property
    def display_arguments(self) -> dict[str, Any]:
        """The same copy as :attr:`arguments` (the name agentic-sentinel's readers used)."""
        return self.arguments


@dataclass(frozen=True)
class RequestRecord:
    """One approval request as stored."""

    id: str
    status: str
    function: str
    arguments: dict[str, Any]  # the redacted copy (the real values are never stored)
    digest: str
    agent_id: str | None
    pid: int
    host: str
    context: dict[str, Any] | None
    rule_id: str | None
    rule_ids: tuple[str, ...]
    reason: str
    value_at_risk: float | None
    risk_score: float | None
    risk_explanation: str | None
    policy_version: str | None
    channel: str
    created_at: float
    expires_at: float
    decided_at: float | None = None
    decided_by: str | None = None  # OperatorIdentity.label
    operator: dict[str, Any] | None = None  # the full OperatorIdentity as a dict
    decision_reason: str | None = None
    timeout_seconds: float | None = None  # as submitted (expires_at = created_at + timeout)
    pid_start: int | None = None  # start time of the waiting process (guards pid reuse)
    lock_path: str | None = None  # liveness lock file held by the waiting process
    terms: DecisionTerms = field(default_factory=DecisionTerms)
    requester: dict[str, Any] | None = None
    votes: tuple[Vote, ...] = ()  # in the order cast
    #: When the waiting call escalated the request (nobody decided within the rule's
    #: ``escalate_after``) and to whom; None / () while not escalated.
    escalated_at: float | None = None
    escalated_to: tuple[str, ...] = ()
    #: The JSON Schema of the arguments recorded at submission (None: not known).
    arg_schema: dict[str, Any] | None = None
    #: The operator's changes when the request was approved with edited arguments.
    edit: ArgumentEdit | None = None

    @property
    def is_pending(self) -> bool:
        return self.status == PENDING

    @property
    def edited_arguments(self) -> dict[str, Any]:
        """The arguments as approved: the stored (redacted) copy with an edit's values in place."""
        if self.edit is None:
            return self.arguments
        return {**self.arguments, **self.edit.values}

    @property
    def approvals(self) -> tuple[Vote, ...]:
        """The approving votes cast so far (one per operator)."""
        return tuple(v for v in self.votes if v.approves)

    @property
    def display_arguments(self) -> dict[str, Any]:
        """The same copy as :attr:`arguments` (the name agentic-sentinel's readers used)."""
        return self.arguments

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON: what ``sentinel queue --json`` prints, and what the API and the
        notifications build their documents from (each in its own published field names).
        Everything stored except the waiting process's lock file; arguments redacted."""
        return {
            "id": self.id,
            "status": self.status,
            "function": self.function,
            "agent_id": self.agent_id,
            "arguments": self.arguments,
            "digest": self.digest,
            "context": self.context,
            "rule_id": self.rule_id,
            "rule_ids": list(self.rule_ids),
            "reason": self.reason,
            "value_at_risk": self.value_at_risk,
            "risk_score": self.risk_score,
            "risk_explanation": self.risk_explanation,
            "policy_version": self.policy_version,
            "channel": self.channel,
            "pid": self.pid,
            "host": self.host,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "timeout_seconds": self.timeout_seconds,
            "decided_at": self.decided_at,
            "decided_by": self.decided_by,
            "operator": self.operator,
            "decision_reason": self.decision_reason,
            "terms": self.terms.to_dict(),
            "requester": self.requester,
            "votes": [v.to_dict() for v in self.votes],
            "escalated_at": self.escalated_at,
            "escalated_to": list(self.escalated_to),
            "arg_schema": self.arg_schema,
            "edit": None if self.edit is None else self.edit.to_dict(),
        }

    def time_left(self, now: float | None = None) -> float:
        """Seconds until expiry (negative once expired)."""
        return self.expires_at - (time.time() if now is None else now)


@dataclass(frozen=True)
class EventRecord:
    """One audit event. ``hash`` chains it to the event before it (``prev_hash``)."""

    seq: int
    ts: float
    kind: str
    request_id: str | None
    agent_id: str | None
    function: str | None
    digest: str | None
    policy_version: str | None
    rule_id: str | None
    value_at_risk: float | None
    actor: str | None
    reason: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class HistoryFilter:
    """A history query. Parse one from what an operator types with :meth:`parse`:
    free text plus ``field:value`` terms: ``status:denied fn:transfer* agent:billing value:>1000``.
    """

    text: str | None = None
    kinds: tuple[str, ...] = ()  # status:/kind: (denied, approved, blocked…)
    function: str | None = None  # glob, case-insensitive
    agent: str | None = None  # glob
    request_id: str | None = None  # prefix
    rule_id: str | None = None
    value_op: str | None = None  # one of > >= < <= =
    value: float | None = None
    since: float | None = None
    until: float | None = None

    @classmethod
    def parse(cls, text: str) -> HistoryFilter:
        """Parse what an operator typed; unknown ``field:`` names raise ValueError naming them."""
        from sentinel.store.query import parse_filter

        return parse_filter(text)

    @property
    def is_empty(self) -> bool:
        """True when the filter matches everything."""
        return self == HistoryFilter()


@dataclass(frozen=True)
class MetricsSnapshot:
    """Numbers for the Metrics view and ``sentinel`` reports."""

    counts: dict[str, int]  # allowed, blocked, approved, denied, expired, cancelled, …
    counts_today: dict[str, int]
    value_protected: float
    value_protected_today: float
    latency_p50: float | None  # seconds from request to decision
    latency_p95: float | None
    pending: int
    oldest_pending_age: float | None
    hourly: dict[str, list[int]]  # kind → counts per hour, last 24 h, oldest first
    top_rules: list[tuple[str, int]]  # (rule_id, hits), most first
    anomalies: int = 0


@dataclass(frozen=True)
class DatabaseInfo:
    """What ``sentinel db info`` shows about the database a store opened."""

    backend: str  # "sqlite"
    location: str  # the file (a URL, password masked, for a server backend)
    schema_version: int
    latest_version: int
    migrated_from: int  # the version found when this store opened it (= schema_version: none)
    requests: int
    pending: int
    events: int
    size_bytes: int  # database plus write-ahead log

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "location": self.location,
            "schema_version": self.schema_version,
            "latest_version": self.latest_version,
            "migrated_from": self.migrated_from,
            "requests": self.requests,
            "pending": self.pending,
            "events": self.events,
            "size_bytes": self.size_bytes,
        }
