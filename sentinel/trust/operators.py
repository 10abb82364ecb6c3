"""The trusted operators: who may sign decisions, with their public keys and groups.

A JSON file that agents can read but not write::

    {"version": 1, "operators": [
      {"name": "alice", "public_key": "ed25519:…", "groups": ["finance"],
       "added_at": 1765000000.0, "revoked_at": null}]}

Where: ``$SENTINEL_OPERATORS_FILE``; else ``/etc/sentinel/operators.json`` when it exists (or when
root runs the command); else ``operators.json`` in the configuration folder. Loading refuses a
file — or a folder on its way — that someone other than its owner could change, or whose owner is
neither root nor this user: an agent able to write it could trust its own key. Every problem in the
file is an error naming the file, the entry and the field; nothing of a bad file is used. Changes
are written atomically (temp file + rename) and keep the file's mode.

Every call that may need signatures loads the file, so a load that found it good (or missing)
remembers the result with a fingerprint: the ``lstat`` of the path and of each folder above it
(and, when one of them is a symlink, the real path and the ``lstat`` of it and of its folders).
A later load takes the remembered result only when the fingerprint is the same; any change to
the file, its mode or owner, a folder's mode or owner, a symlink or a folder swapped, a missing
file appearing, means a full load with every check. A file changed in the last
:data:`SETTLE_NS` is never remembered: a change within its file system's timestamp granularity
would not show in its stat.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import SentinelConfigError
from sentinel.secure_files import (
    config_dir,
    folder_problem,
    make_folder,
    read_small,
    unsafe,
    write_atomic,
)
from sentinel.trust.keys import parse_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

OPERATORS_ENV = "SENTINEL_OPERATORS_FILE"
SYSTEM_FILE = Path("/etc/sentinel/operators.json")
FILE_NAME = "operators.json"
#: Operator names are recorded with decisions and shown on cards: short and printable.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
GROUP_RE = NAME_RE
#: Seconds an add/revoke waits for another one to finish.
LOCK_WAIT = 10.0
FIELDS = ("name", "public_key", "groups", "added_at", "revoked_at", "kind")
#: ``operator``: a person's key, signing as themself. ``service``: ``sentinel serve``'s key, which
#: signs API decisions on behalf of the token's named operator (role and groups bound in).
KINDS = ("operator", "service")


def operators_path(env: Mapping[str, str] | None = None) -> Path:
    """The trusted operators file this process uses (see the module docstring)."""
    env = os.environ if env is None else env
    explicit = env.get(OPERATORS_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    if SYSTEM_FILE.exists() or os.geteuid() == 0:
        return SYSTEM_FILE
    return config_dir(env) / FILE_NAME


@dataclass(frozen=True)
class TrustedOperator:
    """One entry of the trusted operators file."""

    name: str
    public_key: str
    groups: tuple[str, ...] = ()
    added_at: float = 0.0
    revoked_at: float | None = None
    kind: str = "operator"
    key_id: str = field(default="", compare=False)
    key: Ed25519PublicKey | None = field(default=None, compare=False, repr=False)

    def revoked_by(self, when: float) -> bool:
        """Whether the key was revoked at or before ``when``."""
        return self.revoked_at is not None and self.revoked_at <= when

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "public_key": self.public_key,
            "groups": list(self.groups),
            "added_at": self.added_at,
            "revoked_at": self.revoked_at,
        }
        if self.kind != "operator":
            data["kind"] = self.kind
        return data

    def active(self, at: float) -> bool:
        """Trusted at ``at``: added (any time) and not revoked at or before it."""
        return not self.revoked_by(at)


@dataclass(frozen=True)
class TrustedOperators:
    """The loaded file: entries in file order, looked up by key id and by name."""

    path: Path | None
    operators: tuple[TrustedOperator, ...] = ()
    by_key: Mapping[str, TrustedOperator] = field(default_factory=dict, repr=False)
    by_name: Mapping[str, TrustedOperator] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, operators: Iterable[TrustedOperator], path: Path | None = None) -> TrustedOperators:
        """Check and index ``operators`` (duplicate names or keys are an error)."""
        ops = tuple(operators)
        by_key: dict[str, TrustedOperator] = {}
        by_name: dict[str, TrustedOperator] = {}
        where = f"operators file {path}" if path is not None else "operators"
        for n, op in enumerate(ops):
            if op.name in by_name:
                raise SentinelConfigError(
                    f"{where}, entry {n + 1} ({op.name!r}): field 'name': the name is already "
                    f"used by entry {ops.index(by_name[op.name]) + 1}",
                    hint="each operator appears once; revoke and add under a new name to rotate",
                )
            if op.key_id in by_key:
                raise SentinelConfigError(
                    f"{where}, entry {n + 1} ({op.name!r}): field 'public_key': the same key is "
                    f"already trusted as {by_key[op.key_id].name!r}",
                    hint="a key belongs to one operator: a decision must name who made it",
                )
            by_name[op.name] = op
            by_key[op.key_id] = op
        return cls(path, ops, by_key, by_name)

    def __len__(self) -> int:
        return len(self.operators)

    def active_people(self, at: float | None = None) -> tuple[TrustedOperator, ...]:
        """The unrevoked operator (not service) entries."""
        when = time.time() if at is None else at
        return tuple(op for op in self.operators if not op.is_service and op.active(when))


def make_operator(
    name: str,
    public_key: str,
    groups: Iterable[str] = (),
    *,
    added_at: float | None = None,
    revoked_at: float | None = None,
    kind: str = "operator",
    where: str = "operator",
) -> TrustedOperator:
    """A checked entry; errors name ``where`` and the field."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SentinelConfigError(
            f"{where}: field 'name': {name!r} is not a valid operator name",
            hint="1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
        )
    try:
        key, key_id = parse_public_key(public_key)
    except ValueError as exc:
        raise SentinelConfigError(
            f"{where}: field 'public_key': {exc}",
            hint="use the line printed by: sentinel operator init",
        ) from None
    if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
        raise SentinelConfigError(f"{where}: field 'groups' must be a list of names")
    groups = tuple(groups)
    for g in groups:
        if not GROUP_RE.match(g):
            raise SentinelConfigError(f"{where}: field 'groups': {g!r} is not a valid group name")
    if kind not in KINDS:
        raise SentinelConfigError(
            f"{where}: field 'kind': {kind!r} is not one of {', '.join(KINDS)}"
        )
    stamps = {"added_at": added_at, "revoked_at": revoked_at}
    for fname, value in stamps.items():
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise SentinelConfigError(
                f"{where}: field {fname!r}: {value!r} is not a time (seconds since the epoch)"
            )
    return TrustedOperator(
        name=name,
        public_key=public_key,
        groups=tuple(dict.fromkeys(groups)),
        added_at=float(added_at) if added_at is not None else round(time.time(), 3),
        revoked_at=float(revoked_at) if revoked_at is not None else None,
        kind=kind,
        key_id=key_id,
        key=key,
    )


def _refusal(why: str, path: Path) -> SentinelConfigError:
    return SentinelConfigError(
        f"operators file refused: {why}",
        hint=f"agents may read it but must not be able to change it: sudo chown root:root {path} "
        f"&& sudo chmod 644 {path} (its folder: chmod 755, owned by root)",
    )


def parse_operators(raw: bytes, path: Path | None = None) -> TrustedOperators:
    """The operators in the JSON text ``raw``; an error names the file, the entry and the field."""
    where = f"operators file {path}" if path is not None else "operators"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SentinelConfigError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("operators"), list):
        raise SentinelConfigError(
            f"{where} has no 'operators' list", hint='{"version": 1, "operators": [...]}'
        )
    if data.get("version", 1) != 1:
        raise SentinelConfigError(f"{where}: version {data.get('version')!r} is not 1")
    ops = []
    for n, entry in enumerate(data["operators"]):
        label = f"{where}, entry {n + 1}"
        if not isinstance(entry, dict):
            raise SentinelConfigError(f"{label} is not an object")
        if isinstance(entry.get("name"), str):
            label += f" ({entry['name']!r})"
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise SentinelConfigError(f"{label}: unknown field {unknown[0]!r}")
        for required in ("name", "public_key"):
            if required not in entry:
                raise SentinelConfigError(f"{label}: field {required!r} is missing")
        ops.append(
            make_operator(
                entry["name"],
                entry["public_key"],
                entry.get("groups", []) if entry.get("groups") is not None else [],
                added_at=entry.get("added_at", 0.0),
                revoked_at=entry.get("revoked_at"),
                kind=entry.get("kind", "operator"),
                where=label,
            )
        )
    return TrustedOperators.of(ops, path)


#: A file changed less than this many nanoseconds ago is read in full on every load (see the
#: module doc): a change within a timestamp tick (a few ms; 1-2 s on some file systems) could
#: leave its stat as it was.
SETTLE_NS = 2_000_000_000
#: The clock the settling is measured with (tests move it).
_now_ns = time.time_ns
#: Remembered loads, by absolute path: (the path and its folders, the fingerprint, the result,
#: whether the file was missing).
_loaded: dict[str, tuple[tuple[str, ...], tuple[Any, ...], TrustedOperators, bool]] = {}
_StatKey = tuple[int, int, int, int, int, int, int]


def _stat_key(st: os.stat_result) -> _StatKey:
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns,
            st.st_ctime_ns)  # fmt: skip


def _chain(text: str) -> tuple[str, ...]:
    """``text`` (absolute) and every folder above it, up to ``/``."""
    out = [text]
    while True:
        up = os.path.dirname(text)
        if up == text:
            return tuple(out)
        out.append(up)
        text = up


def _lstats(paths: tuple[str, ...]) -> tuple[tuple[_StatKey | None, ...], bool]:
    """(the lstat of each path, None where it does not exist; whether one is a symlink).
    Raises OSError for any other error."""
    out: list[_StatKey | None] = []
    link = False
    for p in reversed(paths):  # from "/" down: below a missing folder, nothing exists
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            out.extend([None] * (len(paths) - len(out)))
            break
        link = link or stat.S_ISLNK(st.st_mode)
        out.append(_stat_key(st))
    out.reverse()
    return tuple(out), link


def _fingerprint(text: str, chain: tuple[str, ...]) -> tuple[tuple[Any, ...], _StatKey | None]:
    """(what a load of ``text`` depends on, the lstat of the real file or None when missing)."""
    stats, link = _lstats(chain)
    if not link and "/.." not in text:  # no symlink, no '..': the path is its own real path
        return (os.geteuid(), stats), stats[0]
    real = os.path.realpath(text)
    real_stats = _lstats(_chain(real))[0]
    return (os.geteuid(), stats, real, real_stats), real_stats[0]


def load_operators(path: Path | None = None, *, missing_ok: bool = False) -> TrustedOperators:
    """Load and check the trusted operators file (default :func:`operators_path`).

    Refused when the file or a folder on its way could be changed by someone other than its
    owner, or when its owner is neither root nor this user. A missing file is an error, or an
    empty set when ``missing_ok``. A file whose fingerprint has not changed since it was last
    found good is not read again (see the module doc)."""
    path = operators_path() if path is None else Path(path).absolute()
    text = str(path)
    entry = _loaded.get(text)
    chain = entry[0] if entry is not None else _chain(text)
    try:
        seen: tuple[tuple[Any, ...], _StatKey | None] | None = _fingerprint(text, chain)
    except OSError:
        seen = None  # not remembered: the full load below says what is wrong, if anything
    if entry is not None:
        if seen is not None and entry[1] == seen[0] and (missing_ok or not entry[3]):
            return entry[2]
        _loaded.pop(text, None)
    trusted, st = _load(path, missing_ok)
    if seen is not None and _settled(seen[1], st):
        if len(_loaded) >= 64:
            _loaded.clear()
        _loaded[text] = (chain, seen[0], trusted, st is None)
    return trusted


def _settled(before: _StatKey | None, st: os.stat_result | None) -> bool:
    """Whether what was read (``st``: the file's fstat, None: missing) is what the fingerprint
    saw (``before``) and old enough for any later change to show in its stat."""
    if st is None or before is None:
        return st is None and before is None
    return before == _stat_key(st) and _now_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= SETTLE_NS


def _load(path: Path, missing_ok: bool) -> tuple[TrustedOperators, os.stat_result | None]:
    """The full load of :func:`load_operators`, and the stat of the file read (None: missing)."""
    real = Path(os.path.realpath(path))
    try:
        why = folder_problem(real.parent)
    except FileNotFoundError:
        why = None  # no folder: no file either, reported below
    if why is not None:
        raise _refusal(why, path)
    try:
        raw, st = read_small(real, "operators file")
    except FileNotFoundError:
        if missing_ok:
            return TrustedOperators.of((), path), None
        raise SentinelConfigError(
            f"operators file {path} does not exist",
            hint=f"add the first operator with: sentinel operator add NAME --key ... "
            f"(or set {OPERATORS_ENV})",
        ) from None
    why = unsafe(st, "operators file", real)
    if why is not None:
        raise _refusal(why, path)
    return parse_operators(raw, path), st


def write_operators(path: Path, operators: TrustedOperators | Iterable[TrustedOperator]) -> None:
    """Write the file atomically, keeping an existing file's mode (a new one is 0644: readable by
    agents, writable by its owner only; a missing folder is made 0755)."""
    path = Path(path).absolute()
    ops = operators.operators if isinstance(operators, TrustedOperators) else tuple(operators)
    TrustedOperators.of(ops, path)  # never write what could not be loaded
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    make_folder(path.parent, 0o755)
    why = folder_problem(path.parent)
    if why is not None:
        raise _refusal(why, path)
    text = json.dumps({"version": 1, "operators": [op.to_dict() for op in ops]}, indent=2)
    write_atomic(path, (text + "\n").encode("utf-8"), mode)


@contextmanager
def _changing(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file's folder while reading, changing and writing the file,
    so that two admins adding or revoking at the same moment both keep their change."""
    folder = path.absolute().parent
    make_folder(folder, 0o755)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # Anyone who can read the folder can lock it: wait a bounded time, never hang forever.
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SentinelConfigError(
                        f"operators file {path}: another process has held the lock on {folder} "
                        f"for {LOCK_WAIT:g}s; nothing was changed",
                        hint=f"try again; if it persists, find the process with: fuser -v {folder}",
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def add_operator(
    path: Path, name: str, public_key: str, groups: Iterable[str] = (), *, kind: str = "operator"
) -> TrustedOperator:
    """Trust ``public_key`` as ``name`` (``kind="service"``: a ``sentinel serve`` key that signs
    on behalf of API tokens' operators). Refused when the name or the key is already there."""
    new = make_operator(name, public_key, groups, kind=kind, where=f"operator {name!r}")
    with _changing(path):
        current = _load(Path(path).absolute(), True)[0]  # under the lock: always read in full
        _check_new(path, current, new)
        write_operators(path, (*current.operators, new))
    return new


def _check_new(path: Path, current: TrustedOperators, new: TrustedOperator) -> None:
    name = new.name
    if name in current.by_name:
        raise SentinelConfigError(
            f"operators file {path}: an operator named {name!r} is already trusted"
            + (" (revoked)" if current.by_name[name].revoked_at is not None else ""),
            hint="pick another name; a revoked entry is kept so that its old decisions verify",
        )
    if new.key_id in current.by_key:
        raise SentinelConfigError(
            f"operators file {path}: this key is already trusted as "
            f"{current.by_key[new.key_id].name!r}"
        )


def revoke_operator(path: Path, name: str, at: float | None = None) -> TrustedOperator:
    """Mark ``name``'s key revoked from ``at`` (default now). The entry is kept: decisions it
    signed before that time still verify; later ones are refused."""
    path = Path(path)
    if not path.absolute().parent.is_dir():
        load_operators(path)  # the error naming the missing file; no folder made for it
    with _changing(path):
        current = _load(path.absolute(), False)[0]  # under the lock: always read in full
        op = current.by_name.get(name)
        if op is None:
            raise SentinelConfigError(f"operators file {path}: no operator named {name!r}")
        if op.revoked_at is not None:
            raise SentinelConfigError(
                f"operators file {path}: operator {name!r} was already revoked at {op.revoked_at}"
            )
        done = replace(op, revoked_at=round(time.time(), 3) if at is None else float(at))
        write_operators(path, tuple(done if o.name == name else o for o in current.operators))
    return done
