"""Parked approvals: ask, and let the caller stop instead of waiting.

A *parked* call that needs approval does not wait for the decision in the calling process: the
request is written to the queue under an id derived from a key the caller chooses (for LangGraph:
the thread, the task and the tool-call id), the guard raises
:class:`~sentinel.errors.SentinelApprovalPending`, and the caller saves its run (a checkpoint).
When the run comes back — in this process or another one — the same key finds the same request,
and the guard obeys its decision as stored, checked like any other (digest, signatures, expiry),
and lets the approved call run at most once (the store's ``approval_claimed`` event).

No decision logic lives here: this module only names the request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

__all__ = ["Park", "parked_request_id"]

# A fixed namespace: the same key gives the same id in every process, on every host.
_NAMESPACE = uuid.UUID("5e7d1c2a-8b4f-4c1e-9a6d-0f3b2e1d4c5a")


@dataclass(frozen=True)
class Park:
    """Ask for approval under a deterministic request id and do not wait for the decision.

    ``key`` names the call across restarts (the same key, function and arguments are the same
    request). ``probe=True`` only looks: the request is submitted when missing and its state is
    reported, but nothing is checked, claimed or audited beyond the submission."""

    key: str
    probe: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"Park key must be a non-empty string, got {self.key!r}")


def parked_request_id(key: str, function: str, digest: str) -> str:
    """The request id of a parked call: 32 hex characters like any request id, the same for the
    same key, function and argument digest (other arguments are another request)."""
    return uuid.uuid5(_NAMESPACE, "\x1f".join((key, function, digest))).hex
