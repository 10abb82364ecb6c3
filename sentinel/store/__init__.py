"""Durable approval queue and event log (SQLite, WAL). The only package that contains SQL.

* :class:`Store` (sqlite3, thread-safe) and :class:`AsyncStore` (aiosqlite) share one set of
  operations: submit / get / list_pending / decide / expire / cancel / sweep / append_events /
  history / metrics / data_version.
* :class:`Watcher`: one thread per process that resolves futures when requests are decided.
* :func:`default_db_path`: ``$SENTINEL_DB``, ``$SENTINEL_HOME/sentinel.db`` or
  ``./.sentinel/sentinel.db``.
"""

from sentinel.store.aio import AsyncStore
from sentinel.store.bounds import GrantBound
from sentinel.store.codec import GENESIS_HASH, canonical_json, event_hash
from sentinel.store.grants import GrantRecord, GrantUse, GrantUseRow, NewGrant
from sentinel.store.models import (
    APPROVED,
    CANCELLED,
    DENIED,
    EXPIRED,
    FINAL_STATES,
    PENDING,
    PROTECTING_KINDS,
    ArgumentEdit,
    DecisionTerms,
    EventRecord,
    FieldChange,
    HistoryFilter,
    MetricsSnapshot,
    NewRequest,
    OperatorIdentity,
    PendingSummary,
    RequestRecord,
    Vote,
)
from sentinel.store.ops import conflict_message
from sentinel.store.paths import default_db_path
from sentinel.store.schema import MIGRATIONS, schema_version
from sentinel.store.sync import Store
from sentinel.store.watcher import Watcher

__all__ = [
    "APPROVED",
    "CANCELLED",
    "DENIED",
    "EXPIRED",
    "FINAL_STATES",
    "GENESIS_HASH",
    "MIGRATIONS",
    "PENDING",
    "PROTECTING_KINDS",
    "AsyncStore",
    "DecisionTerms",
    "EventRecord",
    "GrantBound",
    "GrantRecord",
    "GrantUse",
    "GrantUseRow",
    "HistoryFilter",
    "MetricsSnapshot",
    "NewGrant",
    "NewRequest",
    "OperatorIdentity",
    "PendingSummary",
    "RequestRecord",
    "ArgumentEdit",
    "FieldChange",
    "Store",
    "Vote",
    "Watcher",
    "canonical_json",
    "conflict_message",
    "default_db_path",
    "event_hash",
    "schema_version",
]
