"""Exporting events (JSONL for SIEM, CSV for spreadsheets) and value protected over a period.

Exported values are the stored ones, which are already redacted; they are passed through the
redactor once more so nothing secret-looking leaves even if an older row predates a rule.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from sentinel.redact import Redactor
from sentinel.store.codec import EVENT_COLUMNS
from sentinel.store.models import PROTECTING_KINDS, EventRecord, HistoryFilter

FORMATS = ("jsonl", "csv")
#: The event's columns with a readable UTC time after ``seq``.
CSV_COLUMNS = (EVENT_COLUMNS[0], "time", *EVENT_COLUMNS[1:])
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def iso(ts: float) -> str:
    """ISO 8601 UTC with microseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def iter_events(store: Any, flt: HistoryFilter | None, page: int = 5000) -> Iterator[EventRecord]:
    """Events matching ``flt``, oldest first, read page by page."""
    after = 0
    while True:
        rows = store.export_page(flt, after, page)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].seq


def event_dict(event: EventRecord, redactor: Redactor) -> dict[str, Any]:
    """The export form of an event: every field, ``time`` in ISO 8601, text redacted."""
    return {
        "seq": event.seq,
        "time": iso(event.ts),
        "ts": event.ts,
        "kind": event.kind,
        "request_id": event.request_id,
        "agent_id": event.agent_id,
        "function": event.function,
        "digest": event.digest,
        "policy_version": event.policy_version,
        "rule_id": event.rule_id,
        "value_at_risk": event.value_at_risk,
        "actor": event.actor,
        "reason": None if event.reason is None else redactor.redact(event.reason),
        "data": redactor.redact(event.data),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value  # a spreadsheet must not run agent-supplied text as a formula
    return value


def export(
    store: Any,
    out: TextIO,
    fmt: str,
    flt: HistoryFilter | None = None,
    redactor: Redactor | None = None,
) -> int:
    """Write matching events to ``out`` as ``jsonl`` or ``csv``; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    redactor = redactor or Redactor()
    n = 0
    if fmt == "jsonl":
        for event in iter_events(store, flt):
            out.write(json.dumps(event_dict(event, redactor), ensure_ascii=False) + "\n")
            n += 1
        return n
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for event in iter_events(store, flt):
        row = event_dict(event, redactor)
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
        n += 1
    return n


def value_protected(
    store: Any, since: float | None = None, until: float | None = None
) -> dict[str, Any]:
    """Value protected in ``[since, until)``: the sum of ``value_at_risk`` over blocked, denied and
    expired events (the one definition, ``DESIGN.md``), with counts per kind."""
    per_kind = store.value_protected(since, until)
    by_kind = {
        k: {"count": per_kind.get(k, (0, 0.0))[0], "value": per_kind.get(k, (0, 0.0))[1]}
        for k in PROTECTING_KINDS
    }
    return {
        "since": since,
        "until": until,
        "value_protected": float(sum(v["value"] for v in by_kind.values())),
        "by_kind": by_kind,
    }
