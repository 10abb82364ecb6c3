"""Exceptions raised by Sentinel.

Every exception that stops a protected call derives from :class:`SentinelBlockedError`, so a
single ``except SentinelBlockedError`` catches blocks, denials and expiries alike.
"""

from __future__ import annotations

from typing import Any


class SentinelError(Exception):
    """Base class of every Sentinel exception."""


class SentinelConfigError(SentinelError):
    """Invalid configuration: a bad field value, a missing or invalid rules file.

    ``field`` names the configuration field, ``file``/``line`` locate a problem in a rules file
    and ``hint`` says how to fix it. All of them are also part of the message.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.file = file
        self.line = line
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class PolicyError(SentinelConfigError):
    """A rules file that cannot be loaded. Nothing of it is used."""


class SentinelValidationError(SentinelError):
    """Input that fails validation; ``errors`` lists each problem."""

    def __init__(self, message: str, errors: list[Any] | None = None) -> None:
        self.message = message
        self.errors = list(errors or [])
        super().__init__(message)


class SentinelBlockedError(SentinelError):
    """A protected call was not executed.

    Attributes: ``action`` (the function name), ``reason``, ``rule_id``, ``agent_id``,
    ``request_id`` (when an approval was requested), ``awaiting_approval`` and ``hint`` (the
    rule's ``deny_hint``, for the model).
    """

    def __init__(
        self,
        reason: str,
        action: str,
        awaiting_approval: bool = False,
        agent_id: str | None = None,
        *,
        rule_id: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.action = action
        self.awaiting_approval = awaiting_approval
        self.agent_id = agent_id
        self.rule_id = rule_id
        self.request_id = request_id
        #: The rule's ``deny_hint``: what the model may do instead (None: the rule has none).
        self.hint = hint
        super().__init__(self._render())

    @property
    def function_name(self) -> str:
        """The protected function's name (alias of ``action``)."""
        return self.action

    _verb = "blocked"

    def _render(self) -> str:
        prefix = f"[{self.agent_id}] " if self.agent_id else ""
        rule = f" [rule {self.rule_id}]" if self.rule_id else ""
        req = f" [request {self.request_id}]" if self.request_id else ""
        hint = f" (hint: {self.hint})" if getattr(self, "hint", None) else ""
        return f"{prefix}Action '{self.action}' {self._verb}: {self.reason}{rule}{req}{hint}"


class SentinelDeniedError(SentinelBlockedError):
    """An operator denied the approval request. ``decided_by`` names who."""

    _verb = "denied"

    def __init__(
        self,
        reason: str,
        action: str,
        awaiting_approval: bool = False,
        agent_id: str | None = None,
        *,
        rule_id: str | None = None,
        request_id: str | None = None,
        decided_by: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.decided_by = decided_by
        super().__init__(
            reason,
            action,
            awaiting_approval,
            agent_id,
            rule_id=rule_id,
            request_id=request_id,
            hint=hint,
        )


class SentinelTimeoutError(SentinelBlockedError):
    """Nobody decided the approval request before it expired (status ``expired``)."""

    _verb = "expired"

    def __init__(
        self,
        action: str,
        timeout_seconds: float,
        *,
        agent_id: str | None = None,
        rule_id: str | None = None,
        request_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        super().__init__(
            reason or f"approval timed out after {timeout_seconds:g}s with no decision",
            action,
            False,
            agent_id,
            rule_id=rule_id,
            request_id=request_id,
        )


class SentinelApprovalPending(SentinelBlockedError):
    """A parked call (see :class:`sentinel.guard.Park`) needs approval and nobody has decided
    yet: not executed *for now*. The request is in the queue; ``record`` is its row (id,
    function, shown arguments, reason, ``expires_at``). Code that does not know this exception
    treats it as the block it is (fail-secure)."""

    _verb = "awaiting approval"

    def __init__(self, record: Any, agent_id: str | None = None) -> None:
        self.record = record
        self.expires_at: float = float(record.expires_at)
        super().__init__(
            record.reason or "needs approval",
            record.function,
            True,
            agent_id,
            rule_id=record.rule_id,
            request_id=record.id,
        )


class StoreError(SentinelError):
    """The approval database cannot be opened, read or written; the message names the cause."""


class RequestNotFound(StoreError):
    """No approval request has the given id."""


class AmbiguousRequestId(RequestNotFound):
    """An id prefix matches more than one request; ``candidates`` lists (some of) them.

    A subclass of :class:`RequestNotFound` so that every caller that handles "no such request"
    also refuses an ambiguous prefix (never picks one of the candidates).
    """

    def __init__(self, prefix: str, candidates: list[str], more: bool = False) -> None:
        self.prefix = prefix
        self.candidates = list(candidates)
        self.more = more
        listed = ", ".join(self.candidates) + (", ..." if more else "")
        super().__init__(
            f"request id prefix {prefix!r} is ambiguous: it matches {listed}; "
            "type more characters of the id"
        )


class GrantNotFound(StoreError):
    """No standing grant has the given id (or the id prefix is too short)."""


class AmbiguousGrantId(GrantNotFound):
    """A grant id prefix matches more than one grant; ``candidates`` lists (some of) them."""

    def __init__(self, prefix: str, candidates: list[str], more: bool = False) -> None:
        self.prefix = prefix
        self.candidates = list(candidates)
        self.more = more
        listed = ", ".join(self.candidates) + (", ..." if more else "")
        super().__init__(
            f"grant id prefix {prefix!r} is ambiguous: it matches {listed}; "
            "type more characters of the id"
        )


class DecisionConflict(SentinelError):
    """The request is no longer pending: someone decided it first, or it expired.

    ``record`` is the request as it is now (status, decided_by, decided_at).
    """

    def __init__(self, message: str, record: Any = None) -> None:
        self.record = record
        super().__init__(message)


class DuplicateVote(DecisionConflict):
    """This operator already voted on the request: each operator counts once in a quorum.

    ``record`` is the request as it is now (still pending)."""


class GrantConflict(DecisionConflict):
    """A grant operation found the grant (or request) not in the state it needs: the grant
    already ended (revoked, expired, exhausted), an id already taken, or an approval that does
    not decide the request it should make a grant from. ``record`` is the grant or request now."""


class DecisionRefused(SentinelError):
    """This operator may not decide this request (not among its approvers, the agent's own
    identity where the rule forbids self-approval, no operator key where decisions must be
    signed, …). Nothing was recorded."""


class EditRefused(DecisionRefused):
    """An approval with edited arguments that cannot be recorded: a parameter the request does
    not have, a value its schema refuses, an edited call the policy blocks, a request a quorum
    decides. ``parameter`` names the parameter at fault when there is one. Nothing was
    recorded."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(message)


class DecisionNotTrusted(SentinelError):
    """A decision's signature does not prove that a trusted operator made exactly this decision.

    ``reason`` is one of ``malformed``, ``unknown_key``, ``revoked``, ``operator_mismatch``,
    ``mismatch`` (the signed fields differ: request id, digest, verdict, times, role or groups)
    ``expired`` (decided after the request's expiry) and ``untrusted`` (the waiting call's
    check: the votes that count fall short of the rule's quorum); the message says which, and
    how.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"decision not signed by a trusted operator: {detail}")
