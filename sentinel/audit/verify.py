"""Verifying the audit trail: the event table, the JSONL mirror and the signed anchors.

What is checked, and reported with the first bad position:

* **table** — from genesis (or from the newest signed prune checkpoint) every ``seq`` follows the
  one before, every ``prev_hash`` is the previous ``hash``, every ``hash`` recomputes. A changed
  byte, a removed, inserted or reordered event all break one of these.
* **anchors** — each correctly signed anchor's ``(seq, hash)`` must be in the table: a truncated
  tail (table ends before an anchor) or a history recomputed from scratch (hash differs) is
  caught. Events deleted below a ``prune_window`` row count as tampering unless a signed
  ``checkpoint`` records that prune.
* **the anchor store** — every other file in the anchor folder names a chain (its id and database
  file): one naming this database file under another id means the database was replaced,
  recreated or its id rewritten; one whose database file is gone, has another id or no longer
  holds the anchored head is reported too. The database cannot vouch for itself: its ``db_id``
  is written by whoever writes the events.
* **approvals** — every ``executed`` / ``failed`` event of a request follows an ``approved`` event
  of that request.
* **JSONL** — the same chain rules over the files in name order, each line against the table.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sentinel.audit.anchors import (
    ANCHOR,
    CHECKPOINT,
    anchor_files,
    anchor_path,
    db_location,
    is_url,
    read_records,
    valid_db_id,
)
from sentinel.audit.keys import Verifier
from sentinel.audit.mirror import mirror_files, split_line
from sentinel.store import sql
from sentinel.store.codec import GENESIS_HASH, body_text

PAGE = 20_000
_MAX_APPROVAL_PROBLEMS = 20  # the rest are counted, not listed
_OUTCOMES = ("executed", "failed")


@dataclass
class Problem:
    """One finding. ``where`` is ``table seq N``, ``<file>:<line>`` or ``anchors:<line>``."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class Report:
    """The outcome of :func:`verify`: ``ok`` is False when any problem was found."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table_events: int = 0
    jsonl_events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    anchors_checked: int = 0
    anchor_folder: str | None = None
    other_anchor_files: int = 0  # files of other database ids checked in the folder

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": [{"where": p.where, "what": p.what} for p in self.problems],
            "warnings": self.warnings,
            "notes": self.notes,
            "table_events": self.table_events,
            "jsonl_events": self.jsonl_events,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "anchors_checked": self.anchors_checked,
            "anchor_folder": self.anchor_folder,
            "other_anchor_files": self.other_anchor_files,
        }


def _sha(prev: str, body: str) -> str:
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


class _TableWalk:
    """Reads the table in seq order once, checking the chain, and answers hash_at(seq) for
    increasing seqs (the JSONL check walks alongside)."""

    def __init__(self, store: Any, start_seq: int, start_prev: str, report: Report) -> None:
        self.store = store
        self.report = report
        self.expect_seq = start_seq
        self.prev = start_prev
        self.broken = False
        self.hashes: dict[int, str] = {}
        self._after = start_seq - 1
        self._done = False
        self.approved: set[str] = set()
        self.unapproved: list[tuple[int, str]] = []  # (seq, request id) of outcomes without one

    def run(self, anchors: dict[int, tuple[str, int]]) -> None:
        store, report = self.store, self.report
        expect, prev = self.expect_seq, self.prev
        after = self._after
        approved, unapproved = self.approved, self.unapproved
        while True:
            rows = store.event_rows(after, PAGE)
            if not rows:
                break
            for row in rows:
                seq = row[0]
                if seq != expect:
                    what = (
                        f"expected seq {expect}, found {seq}: events {expect}..{seq - 1} are missing"
                        if seq > expect
                        else f"expected seq {expect}, found {seq}: out of order"
                    )
                    report.problems.append(Problem(f"table seq {seq}", what))
                    self.broken = True
                    return
                if row[13] != prev:
                    report.problems.append(
                        Problem(
                            f"table seq {seq}",
                            "prev_hash does not match the previous event's hash "
                            "(an event before it was removed, inserted, reordered or rewritten)",
                        )
                    )
                    self.broken = True
                    return
                h = _sha(prev, body_text(*row[:14]))
                if h != row[14]:
                    report.problems.append(
                        Problem(
                            f"table seq {seq}", "hash does not match the event's contents (edited)"
                        )
                    )
                    self.broken = True
                    return
                anchored = anchors.get(seq)
                if anchored is not None and anchored[0] != h:
                    report.problems.append(
                        Problem(
                            f"table seq {seq}",
                            f"differs from the signed anchor (anchors line {anchored[1]}): "
                            "the history was rewritten and its hashes recomputed",
                        )
                    )
                    self.broken = True
                    return
                kind = row[2]
                if kind == "approved":
                    approved.add(row[3])
                elif kind in _OUTCOMES and row[3] is not None and row[3] not in approved:
                    # An approved call's outcome carries its request id; the approval is written
                    # (by the store, when decided) before the waiting call can run.
                    unapproved.append((seq, row[3]))
                prev = h
                expect += 1
            report.table_events += len(rows)
            after = rows[-1][0]
            if len(rows) < PAGE:
                break
        self.expect_seq, self.prev = expect, prev


def _load_anchors(
    store: Any, db_id: str | None, anchor_dir: Path | None, verifier: Verifier, report: Report
) -> tuple[dict[int, tuple[str, int]], dict[int, tuple[str, int]], Path | None]:
    """Signed anchors and checkpoints: seq -> (hash, line)."""
    anchors: dict[int, tuple[str, int]] = {}
    checkpoints: dict[int, tuple[str, int]] = {}
    try:
        # The folder comes from the configuration alone, never from the database's id.
        path = anchor_path(store.path, "-", anchor_dir)
    except ValueError as exc:
        report.warnings.append(str(exc))
        return anchors, checkpoints, None
    if db_id is None:
        # Every database gets an id when created (schema step 5); only a hand edit removes it.
        report.problems.append(
            Problem("audit_meta", "the database has no db_id: its identity was removed by hand")
        )
        return anchors, checkpoints, path
    if not valid_db_id(db_id):
        report.problems.append(
            Problem("audit_meta", f"db_id {db_id[:80]!r} is not an id: it was edited by hand")
        )
        return anchors, checkpoints, path
    path = path.with_name(f"{db_id}.jsonl")
    lines = read_records(path, db_id, verifier)
    if not lines:
        report.warnings.append(
            f"no anchors for this database in {path}: a truncated tail or a fully recomputed "
            "history cannot be detected (run `sentinel audit anchor` with a signing key)"
        )
    for line in lines:
        if line.status == "unknown key" or (verifier.empty and line.record is not None):
            report.warnings.append(
                f"anchors:{line.line_no}: signed with {line.record and line.record.get('alg')} "
                "but no key to check it was given (SENTINEL_AUDIT_KEY / SENTINEL_AUDIT_PUBLIC_KEY)"
            )
            continue
        if not line.ok:
            report.problems.append(
                Problem(f"anchors:{line.line_no}", f"anchor record: {line.status}")
            )
            continue
        assert line.record is not None
        target = checkpoints if line.record.get("type") == CHECKPOINT else anchors
        if line.record.get("type") not in (ANCHOR, CHECKPOINT):
            report.problems.append(Problem(f"anchors:{line.line_no}", "unknown record type"))
            continue
        target[int(line.record["seq"])] = (str(line.record["hash"]), line.line_no)
        report.anchors_checked += 1
    return anchors, checkpoints, path


def _other_database(location: str) -> tuple[str | None, Any] | str:
    """(db id, a function seq -> hash or None) of a database file, opened read-only, or why it
    cannot be read."""
    if is_url(location):
        return "is a PostgreSQL database (not opened from here)"
    if not os.path.exists(location):
        return "missing"
    try:
        conn = sqlite3.connect(f"file:{quote(location)}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        return f"cannot be read ({exc})"
    try:
        row = conn.execute(sql.AUDIT_DB_ID).fetchone()
        bounds = conn.execute(sql.EVENT_BOUNDS).fetchone()

        def hash_at(seq: int) -> str | None:
            found = conn.execute(sql.EVENT_HASH_AT, (seq,)).fetchone()
            return None if found is None else str(found[0])

        return (None if row is None else str(row[0])), (bounds, hash_at, conn)
    except sqlite3.Error as exc:
        conn.close()
        return f"cannot be read ({exc})"


def _check_store(
    own: Path, db_id: str | None, here: str, verifier: Verifier, report: Report
) -> None:
    """Every other anchor file in the folder against the chain it names (see the module doc)."""
    report.anchor_folder = str(own.parent)
    for path in anchor_files(own.parent):
        if path == own:
            continue
        report.other_anchor_files += 1
        where = f"anchors/{path.name}"
        newest: dict[str, Any] | None = None
        location: str | None = None
        for line in read_records(path, path.stem, verifier):
            if line.status == "unknown key" or (verifier.empty and line.record is not None):
                continue  # said once for the whole run by the missing-key warning
            if not line.ok or line.record is None:
                report.problems.append(
                    Problem(f"{where}:{line.line_no}", f"anchor record: {line.status}")
                )
                continue
            if line.record.get("db_path"):
                location = str(line.record["db_path"])  # the newest says where it lives now
            if newest is None or int(line.record["seq"]) >= int(newest["seq"]):
                newest = line.record
        if newest is None:
            continue
        other_id, seq, head = path.stem, int(newest["seq"]), str(newest["hash"])
        anchored = f"anchored in {path.name} as id {other_id} up to seq {seq} ({head[:16]}…)"
        if location is None:
            report.warnings.append(
                f"{where}: written by an older Sentinel without the database's path, so it "
                "cannot be matched to a database file; anchor that database again to bind it"
            )
            continue
        if location == here:
            report.problems.append(
                Problem(
                    where,
                    f"this database file ({here}) was {anchored}, but it now has id {db_id}: "
                    "the anchored chain is gone (the database was replaced, recreated or its id "
                    f"rewritten). If that was on purpose, move {path.name} out of the anchor folder",
                )
            )
            continue
        state = _other_database(location)
        if state == "missing":
            report.problems.append(
                Problem(
                    where,
                    f"the database {location} {anchored} no longer exists. If it was retired on "
                    f"purpose, move {path.name} out of the anchor folder",
                )
            )
            continue
        if isinstance(state, str):
            report.warnings.append(
                f"{where}: the database {location} {state}; verify it with "
                "`sentinel audit verify --db`"
            )
            continue
        found_id, (bounds, hash_at, conn) = state
        try:
            if found_id != other_id:
                report.problems.append(
                    Problem(
                        where,
                        f"the database {location} was {anchored}, but it now has id {found_id}: "
                        "it was replaced, recreated or its id rewritten",
                    )
                )
            elif bounds[1] is None or seq > bounds[1]:
                report.problems.append(
                    Problem(
                        where,
                        f"the database {location} was {anchored}, but its table ends at seq "
                        f"{bounds[1] or 0}: the tail was truncated",
                    )
                )
            elif bounds[0] is not None and seq >= bounds[0] and hash_at(seq) != head:
                report.problems.append(
                    Problem(
                        where,
                        f"the database {location} was {anchored}, but its event {seq} differs: "
                        "the history was rewritten",
                    )
                )
            else:
                report.notes.append(
                    f"{where}: another database ({location}) still holds its anchored head; "
                    "`sentinel audit verify --db` it for its whole chain"
                )
        except sqlite3.Error as exc:
            report.warnings.append(f"{where}: could not read {location}: {exc}")
        finally:
            conn.close()


def verify(
    store: Any,
    *,
    jsonl_dir: str | Path | None = None,
    anchor_dir: Path | None = None,
    verifier: Verifier | None = None,
    require_anchor: bool = False,
) -> Report:
    """Check the table, the anchors and (with ``jsonl_dir``) the mirror. See the module doc."""
    from sentinel.audit.keys import load_verifier

    verifier = load_verifier() if verifier is None else verifier
    report = Report()
    db_id, first, last, _last_hash, windows = store.audit_state()
    report.first_seq, report.last_seq = first, last
    if verifier.empty:
        report.warnings.append(
            "no verification key (SENTINEL_AUDIT_KEY or SENTINEL_AUDIT_PUBLIC_KEY): anchors and "
            "prune checkpoints cannot be checked"
        )
    anchors, checkpoints, own = _load_anchors(store, db_id, anchor_dir, verifier, report)
    if own is not None:
        _check_store(own, db_id, db_location(store.path), verifier, report)
    if require_anchor and not anchors:
        report.problems.append(Problem("anchors", "no signed anchor for this database"))

    # Where the table's chain starts: genesis, or the newest prune checkpoint.
    start_seq, start_prev = 1, GENESIS_HASH
    for up_to, head, _created in windows:
        signed = checkpoints.get(int(up_to))
        if signed is None or signed[0] != head:
            if verifier.empty:
                report.warnings.append(
                    f"events up to seq {up_to} were pruned; the checkpoint cannot be checked without a key"
                )
            else:
                report.problems.append(
                    Problem(
                        f"table seq {int(up_to) + 1}",
                        f"events up to seq {up_to} were deleted but no signed prune checkpoint "
                        "records it (a prune_window row written by hand)",
                    )
                )
        if int(up_to) + 1 > start_seq:
            start_seq, start_prev = int(up_to) + 1, str(head)
    if windows:
        report.notes.append(f"events up to seq {start_seq - 1} were pruned with a checkpoint")
    walk = _TableWalk(store, start_seq, start_prev, report)
    if first is not None and first < start_seq:
        report.problems.append(
            Problem(
                f"table seq {first}",
                f"event below the prune checkpoint ({start_seq - 1}) still present",
            )
        )
    else:
        walk.run(anchors)
    end = walk.expect_seq - 1  # last good seq
    if not walk.broken:
        for seq, (_h, line_no) in sorted(anchors.items()):
            if seq > end:
                report.problems.append(
                    Problem(
                        f"table seq {end + 1}",
                        f"table ends at seq {end} but the signed anchor at anchors:{line_no} "
                        f"records seq {seq}: the tail was truncated",
                    )
                )
                break
        newest = max(anchors, default=None)
        if newest is not None and newest < end:
            report.notes.append(f"events after seq {newest} are not anchored yet")
    _report_unapproved(walk, start_seq, report)
    if jsonl_dir is not None:
        _verify_jsonl(Path(jsonl_dir), store, start_seq, start_prev, checkpoints, anchors, report)
    return report


def _report_unapproved(walk: _TableWalk, start_seq: int, report: Report) -> None:
    """Outcomes of requests with no ``approved`` event before them: a problem, unless the chain
    was pruned (the approval may be in the removed part)."""
    if not walk.unapproved:
        return
    if start_seq > 1:
        report.warnings.append(
            f"{len(walk.unapproved)} executed/failed event(s) of requests whose approval is not "
            f"in the table (first: seq {walk.unapproved[0][0]}, request "
            f"{walk.unapproved[0][1]}); it may have been pruned before seq {start_seq}"
        )
        return
    for seq, request_id in walk.unapproved[:_MAX_APPROVAL_PROBLEMS]:
        report.problems.append(
            Problem(
                f"table seq {seq}",
                f"request {request_id} ran, but no approved event for it comes before "
                "(an outcome recorded without its approval)",
            )
        )
    extra = len(walk.unapproved) - _MAX_APPROVAL_PROBLEMS
    if extra > 0:
        report.problems.append(
            Problem("table", f"{extra} more executed/failed event(s) without an approval")
        )


def _seq_prev(body: str) -> tuple[int, str]:
    """``seq`` and ``prev_hash`` of a canonical event body without parsing all of it.

    Both keys sort after ``data``, and a string value cannot contain an unescaped quote, so the
    last occurrence of each key is the top-level one. Whatever is read here is only trusted once
    the hash over the whole body checks out."""
    i = body.rfind(',"prev_hash":"')
    j = body.rfind(',"seq":')
    if i < 0 or j < 0:
        raise ValueError("not an event")
    prev = body[i + 14 : i + 78]
    end = body.find(",", j + 7)
    if len(prev) != 64 or end < 0:
        raise ValueError("not an event")
    return int(body[j + 7 : end]), prev


def _verify_file(
    fh: Any,
    path: Path,
    state: list[Any],
    table_hash: Any,
    checkpoints: dict[int, tuple[str, int]],
    anchors: dict[int, tuple[str, int]],
    report: Report,
) -> tuple[int, bool] | None:
    """Check one mirror file, continuing the chain in ``state`` ([last seq, last hash]).
    Returns (lines read, whether the last one is torn), or None after a problem."""
    prev_seq, prev_hash = state
    no = 0
    for no, raw in enumerate(fh, 1):
        if not raw.endswith("\n"):
            state[:] = [prev_seq, prev_hash]
            return no, True
        line = raw[:-1]
        parts = split_line(line)

        try:
            if parts is None:
                raise ValueError
            body, h = parts
            seq, prev = _seq_prev(body)
        except (ValueError, KeyError, TypeError):
            report.problems.append(
                Problem(f"{path.name}:{no}", "not an event line (edited or corrupted)")
            )
            return None
        if prev_seq is None:
            # Files start at genesis or right after a signed prune checkpoint; anything else
            # means older files were removed without a prune.
            start_ok = (seq == 1 and prev == GENESIS_HASH) or (
                checkpoints.get(seq - 1, ("",))[0] == prev
            )
            if not start_ok:
                report.problems.append(
                    Problem(
                        f"{path.name}:{no}",
                        f"the files start at seq {seq} without a signed checkpoint before it",
                    )
                )
                return None
        elif seq != prev_seq + 1:
            what = (
                f"expected seq {prev_seq + 1}, found {seq}: events {prev_seq + 1}..{seq - 1} are missing"
                if seq > prev_seq + 1
                else f"expected seq {prev_seq + 1}, found {seq}: out of order or duplicated"
            )
            report.problems.append(Problem(f"{path.name}:{no}", what))
            return None
        elif prev != prev_hash:
            report.problems.append(
                Problem(f"{path.name}:{no}", "prev_hash does not match the previous line's hash")
            )
            return None
        if _sha(prev, body) != h:
            report.problems.append(
                Problem(f"{path.name}:{no}", "hash does not match the line's contents (edited)")
            )
            return None
        in_table = table_hash(seq)
        if in_table is not None and in_table != h:
            report.problems.append(
                Problem(f"{path.name}:{no}", f"differs from the table's event seq {seq}")
            )
            return None
        anchored = anchors.get(seq)
        if anchored is not None and anchored[0] != h:
            report.problems.append(
                Problem(
                    f"{path.name}:{no}",
                    f"differs from the signed anchor (anchors line {anchored[1]})",
                )
            )
            return None
        prev_seq, prev_hash = seq, h
        report.jsonl_events += 1
    state[:] = [prev_seq, prev_hash]
    return no, False


def _verify_jsonl(
    directory: Path,
    store: Any,
    table_start: int,
    table_prev: str,
    checkpoints: dict[int, tuple[str, int]],
    anchors: dict[int, tuple[str, int]],
    report: Report,
) -> None:
    files = mirror_files(directory)
    if not files:
        report.problems.append(Problem(str(directory), "no JSONL files"))
        return
    # Table hashes, read page by page alongside the files.
    cache: dict[int, str] = {}
    cache_after = [table_start - 1]
    table_hash_before = {table_start - 1: table_prev}

    def table_hash(seq: int) -> str | None:
        if seq in table_hash_before:
            return table_hash_before[seq]
        if seq not in cache and seq > cache_after[0]:
            cache.clear()
            rows = store.event_rows(seq - 1, PAGE)
            for row in rows:
                cache[row[0]] = row[14]
            cache_after[0] = rows[-1][0] if rows else seq
        return cache.get(seq)

    state: list[Any] = [None, ""]  # last seq and hash, carried from file to file
    for index, path in enumerate(files):
        with open(path, encoding="utf-8", errors="replace", newline="\n") as fh:
            checked = _verify_file(fh, path, state, table_hash, checkpoints, anchors, report)
        if checked is None:
            return
        no, torn = checked
        if torn:
            if index == len(files) - 1:
                report.warnings.append(
                    f"{path.name}:{no}: torn last line (a crash mid-write); the next "
                    "mirror catch-up cuts it off and rewrites the event from the table"
                )
            else:
                report.problems.append(Problem(f"{path.name}:{no}", "line without an end"))
                return
    prev_seq = state[0]
    last = report.last_seq
    if prev_seq is not None and last is not None and prev_seq < last:
        report.problems.append(
            Problem(
                f"{files[-1].name}:end",
                f"the files end at seq {prev_seq} but the table goes to seq {last}: the files were "
                "truncated, or the mirror is behind (`sentinel audit mirror` catches up)",
            )
        )
    elif prev_seq is not None and last is not None and prev_seq > last and report.ok:
        report.problems.append(
            Problem(
                f"table seq {last + 1}",
                f"the files go to seq {prev_seq} but the table ends at {last}",
            )
        )
