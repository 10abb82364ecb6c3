"""Signed anchors of the event chain's head, kept outside the database folder.

A hash chain alone cannot reveal a truncated tail or a history recomputed from scratch; a signed
record of ``(seq, hash)`` kept elsewhere can. Each line of the anchor file is one JSON object:

``{"type": "anchor"|"checkpoint", "db_id", "seq", "hash", "ts", "alg", "key_id", "sig"}``

``sig`` signs the canonical JSON of the other fields. ``checkpoint`` lines are written by
``sentinel audit prune``: the last pruned event, from which verification starts.

The file is ``<anchor dir>/<db id>.jsonl``; the anchor dir is ``$SENTINEL_ANCHOR_DIR`` or
``$XDG_STATE_HOME/sentinel/anchors`` (default ``~/.local/state/sentinel/anchors``). Appends take
an exclusive ``flock`` so several processes can anchor at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.audit.keys import Signer, Verifier

ANCHOR = "anchor"
CHECKPOINT = "checkpoint"
_SIGNED_FIELDS = ("type", "db_id", "seq", "hash", "ts", "alg", "key_id")


def anchor_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where anchor files live (see the module docstring)."""
    env = os.environ if env is None else env
    explicit = env.get("SENTINEL_ANCHOR_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser().absolute() / "sentinel" / "anchors"


def anchor_path(db_path: Path, db_id: str, directory: Path | None = None) -> Path:
    """The anchor file of a database. Refuses a location inside the database's own folder, where
    whoever can rewrite the database could rewrite the anchors too."""
    folder = (directory or anchor_dir()).absolute()
    db_folder = Path(db_path).absolute().parent
    if folder == db_folder or db_folder in folder.parents:
        raise ValueError(
            f"anchor folder {folder} is inside the database folder {db_folder}; "
            "set SENTINEL_ANCHOR_DIR to a folder the agents cannot write"
        )
    return folder / f"{db_id}.jsonl"


def _message(record: Mapping[str, Any]) -> bytes:
    body = {k: record.get(k) for k in _SIGNED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_record(kind: str, db_id: str, seq: int, head: str, signer: Signer) -> dict[str, Any]:
    """A signed anchor or checkpoint record."""
    record: dict[str, Any] = {
        "type": kind,
        "db_id": db_id,
        "seq": int(seq),
        "hash": head,
        "ts": round(time.time(), 6),
        "alg": signer.alg,
        "key_id": signer.key_id,
    }
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


def read_records(path: Path, db_id: str, verifier: Verifier) -> list[AnchorLine]:
    """Every line of an anchor file with its signature checked (missing file: empty list)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out: list[AnchorLine] = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError
            int(record["seq"])
            str(record["hash"])
        except (ValueError, KeyError, TypeError):
            out.append(AnchorLine(no, None, "malformed"))
            continue
        if record.get("db_id") != db_id:
            status = "other database"
        elif record.get("alg") not in verifier.keys:
            status = "unknown key"
        elif verifier.verify(str(record.get("alg")), _message(record), str(record.get("sig"))):
            status = "ok"
        else:
            status = "bad signature"
        out.append(AnchorLine(no, record, status))
    return out


def write_anchor(
    store: Any, signer: Signer, directory: Path | None = None
) -> dict[str, Any] | None:
    """Anchor the current head of ``store``'s chain. Returns the record (None: no events yet)."""
    db_id, _first, last_seq, last_hash, _windows = store.audit_state()
    if last_seq is None or db_id is None:
        return None
    record = make_record(ANCHOR, db_id, last_seq, last_hash, signer)
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
        self.directory = directory
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
