"""What every layer of the library shares, below the guard: the escalation-hook types and the
process-wide registries of stores, event sinks and decision watchers (one per database).

Modules import this *downward* — limits, anomaly detection, the audit trail, notifications and
the policy source never import :mod:`sentinel.guard` — so there is no import circle to break with
function-level imports, and the types on the approval path can be checked.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from sentinel.audit.sink import EventSink
from sentinel.policy import Action, Verdict
from sentinel.store import AsyncStore, Store, Watcher
from sentinel.store.location import (
    DbValue,
    Location,
    PgLocation,
    open_async_pg,
    open_store,
    parse_or_default,
    pg_watcher_for,
    stop_pg_watchers,
)

if TYPE_CHECKING:
    from sentinel.store.location import AnyAsyncStore, AnyWatcher, SyncStore

# --- escalation hooks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Escalation:
    """A hook's opinion about a call: an action (only stricter ones have any effect) and why."""

    action: Action
    reason: str
    source: str  # "anomaly", "limit:<rule id>", …
    risk_score: float | None = None
    explanation: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class GovernedCall:
    """One governed call, from its decision to its outcome: the token hooks are handed.

    ``hooks`` are the hooks that assessed it (in order; set while deciding), so the outcome goes
    to exactly those, even when a reload changed the hooks in force meanwhile. ``notes`` holds
    what each hook keeps between ``assess`` and ``observe`` / ``abandon``, keyed by the hook:
    it lives and dies with the call, so there is no table keyed by ``id(params)`` (an id is
    reused once its dict is freed) and nothing to evict.
    """

    __slots__ = ("function", "params", "agent_id", "hooks", "notes")

    def __init__(self, function: str, params: Mapping[str, Any], agent_id: str | None) -> None:
        self.function = function
        self.params = params
        self.agent_id = agent_id
        self.hooks: tuple[GuardHook, ...] = ()
        self.notes: dict[object, Any] = {}

    def __repr__(self) -> str:
        return f"GovernedCall({self.function!r}, agent={self.agent_id!r}, hooks={len(self.hooks)})"


class GuardHook(Protocol):
    """Something that can make a verdict stricter (limits, anomaly detection) and learns from
    calls that actually ran. Each method gets the call's :class:`GovernedCall` token; whatever a hook
    keeps for a call in between goes in ``call.notes[self]``."""

    def assess(self, call: GovernedCall, verdict: Verdict) -> Escalation | None:
        """Return an escalation, or None. Raising is a governance error (fail_mode applies)."""

    def observe(self, call: GovernedCall, succeeded: bool) -> None:
        """Called after an assessed call ran (``succeeded``: it returned without raising).
        Baselines learn only from calls that ran; limits count them."""

    def abandon(self, call: GovernedCall) -> None:
        """Called when an assessed call did not run (blocked, denied, expired, cancelled,
        governance error), so reservations can be released."""


class HookSet:
    """A guard's escalation hooks as a function of the policy in force.

    Fixed hooks (anomaly detection, or the hooks a caller passed) plus the limits hook while the
    policy has limit rules. Guards ask it per call with the policy they decide under, so a hot
    reload reaches every guard sharing the set at the same moment — derived guards (the OpenAI
    Agents SDK mode) included — and a call never sees a list changing under it: the answer is a
    tuple, never edited, cached for the last policy object.
    """

    def __init__(self, fixed: Iterable[GuardHook] = (), limits: GuardHook | None = None) -> None:
        self.fixed: tuple[GuardHook, ...] = tuple(fixed)
        self.limits = limits
        self._last: tuple[object, tuple[GuardHook, ...]] = (None, self.fixed)

    def __call__(self, policy: Any) -> tuple[GuardHook, ...]:
        last = self._last
        if last[0] is policy:
            return last[1]
        hooks = self.fixed
        if self.limits is not None and policy.has_limits:
            hooks = (*hooks, self.limits)
        self._last = (policy, hooks)  # one tuple assignment: safe to race
        return hooks


class Decision(NamedTuple):
    """What the guard decided for one call, before acting on it. (A tuple: built on every call.)"""

    action: Action
    verdict: Verdict
    reason: str
    rule_id: str | None
    escalations: tuple[Escalation, ...] = ()
    #: The standing grant use that let a require_approval call run (``GrantUse``), else None.
    grant: Any = None

    @property
    def risk_score(self) -> float | None:
        scores = [e.risk_score for e in self.escalations if e.risk_score is not None]
        return max(scores) if scores else None

    @property
    def risk_explanation(self) -> str | None:
        parts = [e.explanation or e.reason for e in self.escalations]
        return "; ".join(parts) if parts else None


# --- stores and sinks are per database, shared by every guard in the process ------------------

_stores: dict[Location, SyncStore] = {}
_async_stores: dict[tuple[Location, asyncio.AbstractEventLoop], AnyAsyncStore] = {}
_sinks: dict[tuple[Location, bool], EventSink] = {}
_shared_lock = threading.Lock()


def location_of(db: DbValue) -> Location:
    """The database ``db`` names, as the registries key it: an absolute SQLite path or a
    :class:`~sentinel.store.location.PgLocation` (None: the default database)."""
    return parse_or_default(db)


def store_for(db: DbValue) -> SyncStore:
    """The process's one synchronous store (one write connection) for the database ``db``
    (a path, a ``postgresql://`` URL or a location): :class:`Store` or ``PgStore``."""
    key = location_of(db)
    with _shared_lock:
        store = _stores.get(key)
        if store is None or store.closed:
            store = open_store(key)
            _stores[key] = store
        return store


def store_at(location: Location) -> SyncStore:
    """:func:`store_for` for a ``location`` that :func:`location_of` already gave (the guard
    resolves its database once): no parsing per call, the registry still asked every time."""
    store = _stores.get(location)  # a dict read: safe without the lock
    if store is None or store.closed:
        return store_for(location)
    return store


def async_store_for(db: DbValue) -> AnyAsyncStore:
    """The process's one asynchronous store for the database ``db`` on the running event
    loop (the guard's async approval path awaits it).

    One per database *per loop*: a store's transactions are serialised by a lock of its loop.
    It takes its settings (lock timeout, expiry grace) from the process's :func:`store_for`
    store, so both wait for a locked database alike. Stores of loops that have been closed since
    are closed here. Raises RuntimeError outside a running loop.
    """
    loop = asyncio.get_running_loop()
    key = location_of(db)
    like = store_for(key)
    with _shared_lock:
        ended = [k for k in _async_stores if k[1].is_closed()]
        stale = [_async_stores.pop(k) for k in ended]
        store = _async_stores.get((key, loop))
        if store is None or store.closed:
            if isinstance(key, PgLocation):
                store = open_async_pg(key, like)
            else:
                assert isinstance(like, Store)
                store = AsyncStore(
                    key, busy_timeout=like.busy_timeout, expiry_grace=like.expiry_grace
                )
            _async_stores[(key, loop)] = store
    for old in stale:  # their loop is gone: nothing can await them any more
        old.close_blocking()
    return store


def watcher_for(db: DbValue) -> AnyWatcher:
    """The process's one decision watcher for the database ``db``."""
    key = location_of(db)
    if isinstance(key, PgLocation):
        return pg_watcher_for(key)
    return Watcher.for_path(key)


# The names the guard and older callers used.
_store_for = store_for
_watcher_for = watcher_for


def close_shared(under: DbValue | None = None) -> None:
    """Flush and close the audit writers, stores and decision watchers shared per database.

    They live for the process (and close at exit); a process that opens many databases in turn
    (a test suite, a job runner) calls this to release their files and threads. ``under`` limits
    it to SQLite databases inside that folder, or to one PostgreSQL database (its URL). A guard
    used afterwards opens them again.
    """
    root: Location | None = None
    if under is not None:
        root = location_of(under)

    def chosen(location: Location | str) -> bool:
        if root is None:
            return True
        if isinstance(root, PgLocation) or isinstance(location, PgLocation):
            return location == root
        return Path(location).is_relative_to(root)

    def chosen_url(url: str) -> bool:
        return root is None or (isinstance(root, PgLocation) and root.dsn() == url)

    with _shared_lock:
        sinks = [k for k in _sinks if chosen(k[0])]
        closing_sinks = [_sinks.pop(k) for k in sinks]
        closing_stores = [_stores.pop(k) for k in [k for k in _stores if chosen(k)]]
        closing_async = [_async_stores.pop(k) for k in [k for k in _async_stores if chosen(k[0])]]
    for sink in closing_sinks:
        sink.close()
    for store in closing_stores:
        store.close()
    for astore in closing_async:
        astore.close_blocking()
    Watcher.stop_shared(chosen)
    stop_pg_watchers(chosen_url)


__all__ = [
    "GovernedCall",
    "Decision",
    "Escalation",
    "GuardHook",
    "HookSet",
    "async_store_for",
    "close_shared",
    "location_of",
    "store_at",
    "store_for",
    "watcher_for",
]
