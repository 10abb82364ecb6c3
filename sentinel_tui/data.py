"""The command center's only door to data: a thin adapter over :mod:`sentinel.store` and
:mod:`sentinel.policy`.

Called only from thread workers (never from widgets or message handlers), so no call here may
block the event loop. No SQL: the store owns the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.errors import DecisionConflict, SentinelError
from sentinel.store import Store
from sentinel.store.models import (
    EventRecord,
    HistoryFilter,
    MetricsSnapshot,
    OperatorIdentity,
    RequestRecord,
)


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
    """The policy file as loaded (or the reason it could not be)."""

    path: Path | None
    version: str | None
    loaded_at: float | None
    rules: tuple[RuleRow, ...]
    default_action: str | None
    error: str | None = None  # validation failure (file:line: message)

    @property
    def valid(self) -> bool:
        return self.error is None and self.version is not None


@dataclass(frozen=True)
class DecisionOutcome:
    """What happened to one decision: ``record`` is the request as it is now."""

    request_id: str
    approve: bool
    ok: bool
    record: RequestRecord | None
    error: str | None = None  # conflict or failure text


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
        db_path: Path | str | None = None,
        rules_path: Path | str | None = None,
        *,
        operator: OperatorIdentity | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._db_arg = Path(db_path) if db_path is not None else None
        self.rules_path = Path(rules_path) if rules_path is not None else None
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._operator = operator
        self._clock = clock

    @property
    def db_path(self) -> Path:
        """The database file (resolved like the store resolves it)."""
        if self._db_arg is not None:
            return self._db_arg
        from sentinel.store import default_db_path

        return Path(default_db_path())

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store(self._db_arg)
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

    # --- decisions -----------------------------------------------------------------------------

    def operator(self) -> OperatorIdentity:
        if self._operator is None:
            from sentinel.identity import current_operator

            self._operator = current_operator(channel="tui")
        return self._operator

    def decide(self, request_id: str, approve: bool, reason: str | None) -> DecisionOutcome:
        """Compare-and-set decision. A conflict is an outcome, not an exception."""
        try:
            record = self.store.decide(request_id, approve, self.operator(), reason=reason or None)
        except DecisionConflict as exc:
            return DecisionOutcome(request_id, approve, False, exc.record, error=str(exc))
        except SentinelError as exc:
            return DecisionOutcome(request_id, approve, False, None, error=str(exc))
        return DecisionOutcome(request_id, approve, True, record)

    # --- policy --------------------------------------------------------------------------------

    def load_policy(self) -> PolicyInfo | None:
        """Load and validate the rules file; an invalid file is reported, not raised."""
        if self.rules_path is None:
            return None
        try:
            from sentinel.policy import load_policy
        except ImportError as exc:
            return PolicyInfo(
                self.rules_path, None, time.time(), (), None, error=f"policy engine unavailable: {exc}"
            )
        try:
            policy = load_policy(self.rules_path)
        except SentinelError as exc:
            return PolicyInfo(self.rules_path, None, self._clock(), (), None, error=str(exc))
        except OSError as exc:
            return PolicyInfo(
                self.rules_path, None, self._clock(), (), None, error=f"{self.rules_path}: {exc}"
            )
        default = getattr(policy, "default_action", None)
        return PolicyInfo(
            path=Path(policy.source) if policy.source is not None else self.rules_path,
            version=str(policy.version),
            loaded_at=self._clock(),  # when the command center loaded it (frozen in tests)
            rules=tuple(_rule_row(i + 1, r) for i, r in enumerate(policy.rules)),
            default_action=str(getattr(default, "value", default)) if default else None,
        )
