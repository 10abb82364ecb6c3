"""Messages that thread workers post to the app. Handlers on the main thread own all UI state."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from sentinel.store.models import EventRecord, MetricsSnapshot, RequestRecord
from sentinel_tui.data import (
    DecisionOutcome,
    GrantOutcome,
    PolicyInfo,
    ReplayInfo,
    RevokeOutcome,
    SigningState,
)


class QueueSnapshot(Message):
    """The pending requests after a data change, plus records of requests that left."""

    def __init__(
        self,
        rows: list[RequestRecord],
        version: int,
        gone: list[RequestRecord],
        total: int | None = None,
        oldest_created_at: float | None = None,
        complete: bool = True,
    ) -> None:
        super().__init__()
        self.rows = rows  # the newest pending requests, newest first (a window, not all of them)
        self.version = version
        self.gone = gone
        self.total = len(rows) if total is None else total  # every pending request, counted
        self.oldest_created_at = oldest_created_at
        self.complete = complete  # rows are every pending request (nothing older left out)


class Decided(Message):
    """One or more decisions finished (success or conflict)."""

    def __init__(self, outcomes: list[DecisionOutcome], batch: bool = False) -> None:
        super().__init__()
        self.outcomes = outcomes
        self.batch = batch


class HistoryPage(Message):
    """A page of audit events for the filter ``query`` (``append``: the next older page)."""

    def __init__(
        self, query: str, events: list[EventRecord], append: bool, error: str | None = None
    ) -> None:
        super().__init__()
        self.query = query
        self.events = events
        self.append = append
        self.error = error


class MetricsReady(Message):
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class PolicyLoaded(Message):
    """The rules file was (re)loaded; ``info.error`` says why it is invalid."""

    def __init__(self, info: PolicyInfo | None, manual: bool = False) -> None:
        super().__init__()
        self.info = info
        self.manual = manual  # the operator asked (``r``): say the outcome even if unchanged


class ReplayReady(Message):
    """The rules file on disk was replayed against history (``info.error``: it could not be)."""

    def __init__(self, info: ReplayInfo | None) -> None:
        super().__init__()
        self.info = info


class NotificationsFailed(Message):
    """New ``notification_failed`` events (oldest first)."""

    def __init__(self, events: list[EventRecord]) -> None:
        super().__init__()
        self.events = events


class Swept(Message):
    """The sweeper cancelled or expired ``count`` requests (they leave the queue on the next poll)."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count


class DataError(Message):
    """A store read failed; shown in the status bar, the app keeps running."""

    def __init__(self, where: str, error: str) -> None:
        super().__init__()
        self.where = where
        self.error = error


class IdentityKnown(Message):
    """Who this operator is (``label``: OS account, host, SSH client), for the status bar."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


class SigningKnown(Message):
    """Whether decisions made here are signed (the operators file and this operator's key)."""

    def __init__(self, signing: SigningState) -> None:
        super().__init__()
        self.signing = signing


class EditDecided(Message):
    """An approval with edited arguments finished (``form``: the edit form that asked)."""

    def __init__(self, form: Any, outcome: DecisionOutcome) -> None:
        super().__init__()
        self.form = form
        self.outcome = outcome


class GrantRecorded(Message):
    """An approve-and-grant finished (``outcome.ok``) or recorded nothing (conflict, refusal)."""

    def __init__(self, outcome: GrantOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class RequestChecked(Message):
    """The request a grant dialog is open on, as the store has it now (None: not found)."""

    def __init__(self, request_id: str, record: RequestRecord | None) -> None:
        super().__init__()
        self.request_id = request_id
        self.record = record


class GrantsLoaded(Message):
    """The grants, newest first (``error``: they could not be read)."""

    def __init__(self, grants: list[Any], error: str | None = None) -> None:
        super().__init__()
        self.grants = grants
        self.error = error


class GrantRevoked(Message):
    """A revocation finished (``outcome.ok``) or found the grant already ended."""

    def __init__(self, outcome: RevokeOutcome) -> None:
        super().__init__()
        self.outcome = outcome
