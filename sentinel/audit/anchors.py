"""Signed anchors of the event chain's head, kept outside the database folder.

A hash chain alone cannot reveal a truncated tail or a history recomputed from scratch; a signed
record of ``(seq, hash)`` kept elsewhere can. Each line of the anchor file is one JSON object:

``{"type": "anchor"|"checkpoint", "db_id", "db_path", "seq", "hash", "ts", "alg", "key_id",
"sig"}``

``sig`` signs the canonical JSON of the other fields (``db_path``, the database file's real path,
only when present: records written before it existed keep their signatures). ``checkpoint``
lines are written by ``sentinel audit prune``: the last pruned event, from which verification
starts.

The file is ``<anchor dir>/<db id>.jsonl``; the anchor dir is ``$SENTINEL_ANCHOR_DIR`` or
``$XDG_STATE_HOME/sentinel/anchors`` (default ``~/.local/state/sentinel/anchors``). Appends take
an exclusive ``flock`` so several processes can anchor at once.

The anchor folder, not the database, says which chains exist: ``db_id`` lives in the database,
which whoever tampers with the events can also rewrite. So a new anchor is written only when the
chain extends what the folder already anchors for it (:func:`conflicts`), and verification checks
every file in the folder (:mod:`sentinel.audit.verify`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.audit.keys import Signer, Verifier, verifier_for
from sentinel.store.codec import body_text
from sentinel.store.paths import mask_password

ANCHOR = "anchor"
CHECKPOINT = "checkpoint"
_SIGNED_FIELDS = ("type", "db_id", "seq", "hash", "ts", "alg", "key_id")
_DB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TAIL_BYTES = 65536  # enough for the last few hundred records of a file


class AnchorConflict(ValueError):
    """The chain contradicts what the anchor folder already records for this database; a new
    anchor would make a rewritten history look anchored, so none is written."""


def db_location(db_path: str | os.PathLike[str]) -> str:
    """What names a database in anchor records: a SQLite file's real path (symlinks
    resolved), or a PostgreSQL URL with its password masked."""
    text = os.fspath(db_path)
    if is_url(text):
        return mask_password(text)
    return os.path.realpath(text)


def is_url(location: str) -> bool:
    """True for a server database's URL (``postgresql://…``), not a file path."""
    return "://" in location and not location.startswith("/")


def anchor_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where anchor files live (see the module docstring)."""
    env = os.environ if env is None else env
    explicit = env.get("SENTINEL_ANCHOR_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser().absolute() / "sentinel" / "anchors"


def anchor_path(db_path: str | os.PathLike[str], db_id: str, directory: Path | None = None) -> Path:
    """The anchor file of a database. Refuses a location inside the database's own folder, where
    whoever can rewrite the database could rewrite the anchors too."""
    folder = (directory or anchor_dir()).absolute()
    # A server database has no folder here that its writers could also write.
    db_folder = None if is_url(os.fspath(db_path)) else Path(db_path).absolute().parent
    if db_folder is not None and (folder == db_folder or db_folder in folder.parents):
        raise ValueError(
            f"anchor folder {folder} is inside the database folder {db_folder}; "
            "set SENTINEL_ANCHOR_DIR to a folder the agents cannot write"
        )
    if not valid_db_id(db_id):
        # The id comes from the database: a path in it would move the anchor file (and the
        # folder that verify checks) to wherever the database's writer likes.
        raise ValueError(f"database id {db_id[:80]!r} is not an id (audit_meta.db_id edited?)")
    return folder / f"{db_id}.jsonl"


def valid_db_id(db_id: str) -> bool:
    """Whether ``db_id`` can name an anchor file: 1-64 letters, digits, ``-`` or ``_``."""
    return _DB_ID.fullmatch(db_id) is not None


def _message(record: Mapping[str, Any]) -> bytes:
    body = {k: record.get(k) for k in _SIGNED_FIELDS}
    if "db_path" in record:  # signed when present; absent only in records of older versions
        body["db_path"] = record["db_path"]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_record(
    kind: str,
    db_id: str,
    seq: int,
    head: str,
    signer: Signer,
    db_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """A signed anchor or checkpoint record (``db_path``: the database file it anchors)."""
    record: dict[str, Any] = {
        "type": kind,
        "db_id": db_id,
        "seq": int(seq),
        "hash": head,
        "ts": round(time.time(), 6),
        "alg": signer.alg,
        "key_id": signer.key_id,
    }
    if db_path is not None:
        record["db_path"] = db_location(db_path)
    record["sig"] = signer.sign(_message(record))
    return record


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record under an exclusive lock, fsynced (anchors are rare and must survive)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class AnchorLine:
    """One line of an anchor file as read back."""

    line_no: int
    record: dict[str, Any] | None  # None: not JSON
    status: str  # "ok", "bad signature", "unknown key", "malformed", "other database"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def anchor_files(folder: Path) -> list[Path]:
    """Every anchor file in ``folder`` (one per anchored database), in name order."""
    try:
        return sorted(p for p in folder.glob("*.jsonl") if p.is_file())
    except OSError:
        return []


def read_records(path: Path, db_id: str, verifier: Verifier) -> list[AnchorLine]:
    """Every line of an anchor file with its signature checked (missing file: empty list)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return list(_parse(enumerate(text.splitlines(), 1), db_id, verifier))


def _parse(numbered: Any, db_id: str, verifier: Verifier) -> Iterator[AnchorLine]:
    for no, line in numbered:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError
            int(record["seq"])
            str(record["hash"])
        except (ValueError, KeyError, TypeError):
            yield AnchorLine(no, None, "malformed")
            continue
        if record.get("db_id") != db_id:
            status = "other database"
        elif record.get("alg") not in verifier.keys:
            status = "unknown key"
        elif verifier.verify(str(record.get("alg")), _message(record), str(record.get("sig"))):
            status = "ok"
        else:
            status = "bad signature"
        yield AnchorLine(no, record, status)


def newest_record(path: Path, verifier: Verifier) -> dict[str, Any] | None:
    """The last correctly signed record of an anchor file, read from its tail only (the periodic
    anchorer calls this on every anchor; files grow for months)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _TAIL_BYTES))
            tail = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    lines = tail.splitlines()
    if size > _TAIL_BYTES and lines:
        lines = lines[1:]  # the first one may be cut
    for line in reversed(lines):
        for parsed in _parse([(0, line)], path.stem, verifier):
            if parsed.ok and parsed.record is not None:
                return parsed.record
    return None


def conflicts(
    store: Any,
    directory: Path | None = None,
    verifier: Verifier | None = None,
    state: tuple[Any, ...] | None = None,
) -> list[str]:
    """How ``store``'s chain contradicts the anchor folder (empty: it extends what is anchored).

    * another anchor file names this database file with a different id: the database was
      replaced, recreated or had its id rewritten;
    * this id's newest anchor is past the head (truncated) or its ``(seq, hash)`` is not the
      table's (rewritten), or the events after it do not chain onto it.
    Records whose signature does not check are ignored here; ``verify`` reports them.
    ``state``: ``store.audit_state()`` if the caller already has it."""
    return _conflicts(store, directory, verifier, state)[0]


def _conflicts(
    store: Any,
    directory: Path | None,
    verifier: Verifier | None,
    state: tuple[Any, ...] | None,
) -> tuple[list[str], tuple[Any, ...]]:
    """:func:`conflicts` and the table snapshot it was judged against."""
    from sentinel.audit.keys import load_verifier

    verifier = load_verifier() if verifier is None else verifier
    folder = anchor_path(store.path, "-", directory).parent
    # The anchor files are read before the table: anchors are written only after their events
    # commit, so every anchor read here is at or below the head read next. Read the other way
    # round, another process could commit and anchor in between, and its newer anchor would look
    # like a truncated table (the anchor at exit was then refused and silently missing).
    newest = [(path, newest_record(path, verifier)) for path in anchor_files(folder)]
    if state is None:
        state = store.audit_state()
    db_id, first, last, _head, _windows = state
    own = anchor_path(store.path, db_id or "-", directory)
    here = db_location(store.path)
    out: list[str] = []
    for path, record in newest:
        if record is None:
            continue
        if path != own:
            if record.get("db_path") == here and record.get("db_id") != db_id:
                out.append(
                    f"{path.name} anchors this database file ({here}) as id {record.get('db_id')} "
                    f"up to seq {record['seq']}, but it now has id {db_id}: it was replaced, "
                    "recreated or its id rewritten"
                )
            continue
        seq, anchored = int(record["seq"]), str(record["hash"])
        if last is None or seq > last:
            out.append(
                f"{path.name} anchors seq {seq} but the table ends at seq {last or 0}: "
                "the tail was truncated"
            )
        elif first is not None and seq >= first:
            problem = _extends(store, seq, anchored, last)
            if problem:
                out.append(f"{path.name} anchors seq {seq} ({anchored[:16]}…): {problem}")
    return out, state


def _extends(store: Any, seq: int, anchored: str, last: int) -> str | None:
    """Whether the table holds ``anchored`` at ``seq`` and chains from it to ``last``."""
    rows = store.event_rows(seq - 1, 1)
    if not rows or rows[0][0] != seq or rows[0][14] != anchored:
        return "the table's event there differs (the history was rewritten)"
    prev, expect, after = anchored, seq + 1, seq
    while after < last:
        page = store.event_rows(after, 20_000)
        if not page:
            break
        for row in page:
            body = body_text(*row[:14])
            if (
                row[0] != expect
                or row[13] != prev
                or hashlib.sha256((prev + body).encode("utf-8")).hexdigest() != row[14]
            ):
                return f"the chain after it breaks at seq {row[0]}"
            prev, expect = row[14], expect + 1
        after = page[-1][0]
    return None


def write_anchor(
    store: Any, signer: Signer, directory: Path | None = None
) -> dict[str, Any] | None:
    """Anchor the current head of ``store``'s chain. Returns the record (None: no events yet).

    Raises :class:`AnchorConflict` when the chain contradicts the anchor folder: a routine anchor
    must never launder a rewritten history."""
    found, state = _conflicts(store, directory, verifier_for(signer), None)
    if found:
        raise AnchorConflict(
            "the audit chain contradicts the anchor folder, no anchor written: "
            + "; ".join(found)
            + " (run `sentinel audit verify`)"
        )
    db_id, _first, last_seq, last_hash, _windows = state
    if last_seq is None or db_id is None:
        return None
    record = make_record(ANCHOR, db_id, last_seq, last_hash, signer, store.path)
    append_record(anchor_path(store.path, db_id, directory), record)
    return record


class Anchorer:
    """Anchors periodically from a writer process: after ``every_events`` new events or
    ``every_seconds``, whichever comes first (checked after each committed batch)."""

    def __init__(
        self,
        signer: Signer,
        *,
        every_events: int = 1000,
        every_seconds: float = 60.0,
        directory: Path | None = None,
    ) -> None:
        self.signer = signer
        self.every_events = every_events
        self.every_seconds = every_seconds
        # Resolved now, like the key: the anchor at exit must go to the folder the process was
        # configured with, not to whatever the environment says by then.
        self.directory = directory or anchor_dir()
        self._pending = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def after_commit(self, store: Any, n_events: int, *, force: bool = False) -> None:
        """Count ``n_events`` newly committed events and anchor ``store``'s head when due."""
        with self._lock:
            self._pending += n_events
            now = time.monotonic()
            due = self._pending >= self.every_events or now - self._last >= self.every_seconds
            # force (at exit): anchor whatever the head is now, including events the store wrote
            # itself (decisions, expiries) that this counter never saw.
            if not force and (not due or self._pending == 0):
                return
            write_anchor(store, self.signer, self.directory)
            self._pending = 0
            self._last = now
