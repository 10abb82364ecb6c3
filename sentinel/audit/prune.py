"""Retention: remove events older than a date, on purpose and provably so.

``prune`` first brings the JSONL mirror up to date, then appends a signed ``checkpoint`` (the seq
and hash of the last removed event) to the anchor file, then deletes the rows in one transaction
that records the same checkpoint in ``prune_window`` (the delete trigger refuses anything else),
then removes the mirror's files that hold only removed events. Verification starts from the
checkpoint, so a prune is told apart from tampering; a deletion without a signed checkpoint is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.audit.anchors import (
    CHECKPOINT,
    AnchorConflict,
    anchor_path,
    append_record,
    conflicts,
    make_record,
)
from sentinel.audit.keys import Signer, verifier_for
from sentinel.audit.mirror import FILE_RE, JsonlMirror, mirror_files
from sentinel.store.models import HistoryFilter


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed: events up to ``up_to_seq`` (``deleted`` rows) and mirror files."""

    up_to_seq: int | None
    head_hash: str | None
    deleted: int
    files_removed: tuple[str, ...]


def day_start(text: str) -> float:
    """Epoch seconds of ``YYYY-MM-DD`` 00:00 UTC (a clear error otherwise)."""
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"--before must be a date like 2026-01-31, got {text!r}") from None
    return day.timestamp()


def prune(
    store: Any,
    before: str,
    signer: Signer | None,
    *,
    jsonl_dir: str | Path | None = None,
    anchor_dir: Path | None = None,
) -> PruneResult:
    """Remove events dated before ``before`` (``YYYY-MM-DD``, UTC). Needs a signer: the checkpoint
    must be signed or verification would (rightly) call the gap tampering."""
    cutoff = day_start(before)
    if signer is None:
        raise ValueError(
            "prune records a signed checkpoint: set SENTINEL_AUDIT_KEY or SENTINEL_AUDIT_SIGNING_KEY"
        )
    # A checkpoint on a rewritten chain would hide the anchors below it: refuse, like `anchor`.
    found = conflicts(store, anchor_dir, verifier_for(signer))
    if found:
        raise AnchorConflict(
            "the audit chain contradicts the anchor folder, nothing pruned: "
            + "; ".join(found)
            + " (run `sentinel audit verify`)"
        )
    if jsonl_dir is not None:
        JsonlMirror(jsonl_dir).catch_up(store)  # nothing leaves the table before it is mirrored
    db_id, first, last, _h, _w = store.audit_state()
    if last is None or db_id is None:
        return PruneResult(None, None, 0, ())
    keep = store.export_page(HistoryFilter(since=cutoff), 0, 1)
    # The newest event always stays: the next event chains onto the table's head, and an empty
    # table would restart the chain at seq 1 from genesis, behind the checkpoint.
    up_to = min(keep[0].seq - 1 if keep else last, last - 1)
    removed_files: list[str] = []
    if up_to < (first or 1):
        return PruneResult(None, None, 0, ())
    row = store.event_rows(up_to - 1, 1)
    if not row or row[0][0] != up_to:
        raise RuntimeError(f"event seq {up_to} not found; run `sentinel audit verify`")
    head = row[0][14]
    append_record(
        anchor_path(store.path, db_id, anchor_dir),
        make_record(CHECKPOINT, db_id, up_to, head, signer, store.path),
    )
    result = store.prune_events(up_to)
    deleted = 0 if result is None else result[2]
    if jsonl_dir is not None:
        day = datetime.fromtimestamp(cutoff, UTC).strftime("%Y-%m-%d")
        for path in mirror_files(Path(jsonl_dir)):
            match = FILE_RE.match(path.name)
            if match is None or match.group(1) >= day:
                break
            if _last_seq(path) <= up_to:
                path.unlink()
                removed_files.append(path.name)
    return PruneResult(up_to, head, deleted, tuple(removed_files))


def _last_seq(path: Path) -> int:
    import json

    last = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.endswith("\n"):
                try:
                    last = int(json.loads(line)["seq"])
                except (ValueError, KeyError, TypeError):
                    return 1 << 62  # unreadable: keep the file, verify will say why
    return last
