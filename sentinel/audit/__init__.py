"""The audit trail: event sink (batched writes), JSONL mirror, signed anchors, verification,
export and retention.

* :mod:`sentinel.audit.sink` — how guard events reach the ``events`` table;
* :mod:`sentinel.audit.mirror` — daily JSONL files following the table;
* :mod:`sentinel.audit.anchors` / :mod:`sentinel.audit.keys` — signed ``(seq, hash)`` anchors
  outside the database folder;
* :mod:`sentinel.audit.verify` — checks table, files and anchors;
* :mod:`sentinel.audit.export` — JSONL / CSV export and value protected over a period;
* :mod:`sentinel.audit.prune` — retention with a signed checkpoint.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sentinel.audit.sink import EventSink
from sentinel.runtime import store_for

if TYPE_CHECKING:
    from sentinel.store.location import PgLocation


def attach_config(
    sink: EventSink, config: Any, db_path: str | os.PathLike[str] | PgLocation
) -> EventSink:
    """Wire ``sink`` to what ``config`` asks for: the JSONL mirror when ``audit_log`` is on (in
    ``audit_log_dir``) and periodic anchors when a signing key is in the environment
    (``SENTINEL_AUDIT_KEY`` or ``SENTINEL_AUDIT_SIGNING_KEY``). Idempotent."""
    from sentinel.audit.keys import load_signer

    store = store_for(db_path)
    mirror_dir = config.audit_log_dir if getattr(config, "audit_log", False) else None
    sink.attach_audit(store, mirror_dir=mirror_dir, signer=load_signer())
    return sink


def attach(guard: Any) -> EventSink:
    """:func:`attach_config` for a :class:`~sentinel.guard.Guard`'s shared sink."""
    return attach_config(guard._get_sink(), guard.config, guard.config.db)


__all__ = ["EventSink", "attach", "attach_config"]
