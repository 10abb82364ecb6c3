"""Who may call the approval API: named bearer tokens (stored as hashes) and HMAC signatures.

* **Tokens** have a name (the operator identity recorded with each decision, ``api:<name>``, and
  the operator name ``sentinel serve``'s service key signs for), a role — ``operator`` may do
  everything; ``agent`` may only submit requests and read their status, so an agent's credential
  can never approve its own calls — and optional groups (what a rule's ``approvers`` can name
  them by; signed with each decision). They live in a JSON file (mode 0600) as SHA-256 hashes —
  a token is shown once, when it is created — or in ``SENTINEL_API_TOKENS``
  (``name:token[:role[:group+group…]]``, comma-separated) for containers.
* **The tokens file lives outside the database folder**, which agents write to (an agent able to
  edit it could give itself an operator token): ``$SENTINEL_CONFIG_DIR/api-tokens.json``, else
  ``$XDG_CONFIG_HOME/sentinel/api-tokens.json``, else ``~/.config/sentinel/api-tokens.json``. Like
  ssh with a private key, a file — or a folder on its way — that another user could write
  (group/other-writable, or owned by someone other than this user or root) is refused, naming the
  path and its mode.
* **The server re-reads the file when it changes** (checked on each token request by its inode,
  size, mtime and ctime): a file that is unsafe, unreadable or half-written keeps the last good
  tokens (and logs why); a deleted file withdraws every file token — never the other way round.
* **Signatures** (``X-Sentinel-Timestamp`` + ``X-Sentinel-Signature``, see
  :mod:`sentinel.approval.webhook`) authenticate with the agent role: whoever holds the webhook
  secret is an agent, never an operator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import SentinelConfigError
from sentinel.secure_files import (
    CONFIG_DIR_ENV,
    config_dir,
    folder_problem,
    unsafe,
    write_atomic,
)
from sentinel.store.location import PgLocation

OPERATOR = "operator"
AGENT = "agent"
ROLES = (OPERATOR, AGENT)

#: Token names double as operator identities: keep them short and printable.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
TOKEN_PREFIX = "snt_"
TOKENS_ENV = "SENTINEL_API_TOKENS"
TOKENS_FILE_NAME = "api-tokens.json"
#: Largest tokens file read (a file of thousands of tokens is far smaller).
MAX_TOKENS_FILE = 1 << 20

log = logging.getLogger("sentinel.server")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its name, role and how it proved it (``token`` / ``signature``)."""

    name: str
    role: str
    via: str
    groups: tuple[str, ...] = ()

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


def hash_token(token: str) -> str:
    """SHA-256 hex of a token. Tokens are 256-bit random strings, so a fast hash is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (``snt_`` + 43 URL-safe characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def default_tokens_path(env: Mapping[str, str] | None = None) -> Path:
    """The tokens file: ``api-tokens.json`` in :func:`config_dir` — never the database folder."""
    return config_dir(env) / TOKENS_FILE_NAME


def legacy_tokens_path(db_path: Path | PgLocation) -> Path | None:
    """Where the tokens file used to be by default: ``<db folder>/api-tokens.json`` (None for
    a PostgreSQL database: no version kept tokens beside one)."""
    if not isinstance(db_path, Path):
        return None
    return Path(db_path).absolute().parent / TOKENS_FILE_NAME


def _real(path: Path) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def check_outside_db_folder(tokens_path: Path, db_path: Path | PgLocation) -> None:
    """Refuse a tokens file inside the database's folder: agents write there. (A PostgreSQL
    database has no folder on this machine that agents write.)"""
    if not isinstance(db_path, Path):
        return
    tokens, folder = _real(tokens_path), _real(Path(db_path).absolute().parent)
    if tokens == folder or folder in tokens.parents:
        raise SentinelConfigError(
            f"tokens file {tokens_path} is inside the database folder {folder}, which agents "
            "write to: an agent could add itself an operator token there",
            hint=f"keep it in {config_dir()} (the default, or set {CONFIG_DIR_ENV}) or pass "
            "--tokens with a path outside the database folder",
        )


def legacy_refusal(legacy: Path, target: Path) -> SentinelConfigError:
    """The error for a tokens file found at the old default place (see the README)."""
    names = "unreadable"
    try:
        # Agents may have put anything there: read only a small regular file, never a FIFO
        # (which would hang the command) or a huge file; names are checked before shown.
        fd = os.open(legacy, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_TOKENS_FILE:
                raw = os.read(fd, MAX_TOKENS_FILE + 1)
                names = ", ".join(f"{e.name} ({e.role})" for e in _parse_tokens(legacy, raw))
        finally:
            os.close(fd)
    except (OSError, SentinelConfigError):
        pass
    return SentinelConfigError(
        f"found a tokens file at the old default place {legacy} (tokens: {names or 'none'}). "
        "It is refused: that is the database folder, which agents write to, so an agent may "
        "have added itself a token there",
        hint=f"check that you created every token listed, then move it: mkdir -p -m 700 "
        f"{target.parent} && mv -n {legacy} {target} — or delete it and create new tokens "
        "with: sentinel serve --add-token NAME",
    )


def _refuse(why: str) -> SentinelConfigError:
    return SentinelConfigError(
        f"tokens refused: {why}",
        hint="only the user running sentinel serve may be able to change the tokens: "
        "chmod 600 the file, chmod 700 its folder (and chown them to this user)",
    )


def check_folder(folder: Path) -> None:
    """Refuse a tokens folder that another user could write, or one above it that lets someone
    rename it away (sticky folders such as /tmp are fine above, not as the folder itself)."""
    why = folder_problem(folder, "tokens folder")
    if why is not None:
        raise _refuse(why)


def _check_name(name: str, where: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SentinelConfigError(
            f"{where}: token name {name!r} is not valid",
            hint="use 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
        )
    return name


def _check_role(role: str, where: str) -> str:
    if role not in ROLES:
        raise SentinelConfigError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    return role


def _check_groups(groups: object, where: str) -> tuple[str, ...]:
    """Group names (the operators file's rules: 1-64 letters, digits, '.', '_', '-', '@')."""
    if isinstance(groups, str) or not isinstance(groups, (list, tuple)):
        raise SentinelConfigError(
            f"{where}: field 'groups' must be a list of group names, not {groups!r}"
        )
    for group in groups:
        if not isinstance(group, str) or not NAME_RE.match(group):
            raise SentinelConfigError(
                f"{where}: field 'groups': {group!r} is not a valid group name",
                hint="1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
            )
    return tuple(dict.fromkeys(groups))


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: str
    sha256: str
    created_at: float | None = None
    groups: tuple[str, ...] = ()


class TokenRegistry:
    """The set of API tokens the server accepts: a tokens file (re-read when it changes) and/or
    ``SENTINEL_API_TOKENS`` entries (fixed for the process; they win over a file entry's name)."""

    def __init__(
        self,
        entries: list[TokenEntry] | None = None,
        *,
        path: Path | None = None,
        env_entries: list[TokenEntry] | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        # Strings, not Paths, for the per-request stat calls (Path objects cost more than stat).
        self._path_str = "" if path is None else os.fspath(Path(path).absolute())
        self._folder_str = "" if path is None else os.fspath(Path(path).absolute().parent)
        self._file_entries: list[TokenEntry] = list(entries or [])
        self._env_entries: list[TokenEntry] = list(env_entries or [])
        self._stamp: Stamp | None = None  # the version of the file in force (None: no file)
        self._seen: Stamp | str | None = None  # the last version looked at, good or not
        self._lock = threading.Lock()
        #: Why the file on disk is not the one in force (None when it is), for logs and tests.
        self.last_error: str | None = None
        self.entries: dict[str, TokenEntry] = {}
        self._rebuild()

    def __len__(self) -> int:
        return len(self.entries)

    def _rebuild(self) -> None:
        merged = {e.name: e for e in self._file_entries}
        merged.update((e.name, e) for e in self._env_entries)
        self.entries = merged

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None, env: str | None = None) -> TokenRegistry:
        """Tokens from ``path`` (when it exists) plus ``SENTINEL_API_TOKENS``-style ``env`` text.

        Strict, for start-up: an unsafe or malformed file raises :class:`SentinelConfigError`.
        Later changes to the file are picked up by :meth:`refresh`."""
        reg = cls(path=path, env_entries=parse_env_tokens(env or ""))
        if path is not None:
            try:
                entries, stamp = _read_checked(Path(path))
            except FileNotFoundError:
                reg._seen = "missing"
            else:
                reg._file_entries, reg._stamp, reg._seen = entries, stamp, stamp
                reg._rebuild()
        return reg

    def refresh(self) -> None:
        """Re-read the tokens file if it changed since it was last looked at.

        Fail closed, never open: a missing file withdraws every file token; a file that is
        unsafe, unreadable or malformed (e.g. half-written by a non-atomic editor) keeps the
        last good tokens, records why in :attr:`last_error` and logs it once per version."""
        if self.path is None:
            return
        with self._lock:
            try:
                now: Stamp | str = _current_stamp(self._path_str, self._folder_str)
            except FileNotFoundError:
                now = "missing"
            except OSError as exc:
                now = f"stat failed: {exc.strerror or exc}"
            if now == self._seen:
                return
            self._seen = now
            if now == "missing":
                if self._file_entries:
                    log.warning(
                        "tokens file %s was removed: its %d token(s) are no longer accepted",
                        self.path,
                        len(self._file_entries),
                    )
                self._file_entries, self._stamp, self.last_error = [], None, None
                self._rebuild()
                return
            if isinstance(now, str):
                self._keep(f"cannot look at tokens file {self.path}: {now}")
                return
            try:
                entries, stamp = _read_checked(self.path)
            except FileNotFoundError:
                self._seen = None  # it went away between stat and open: look again next time
                return
            except SentinelConfigError as exc:
                self._keep(str(exc))
                return
            self._seen = stamp
            self._file_entries, self._stamp, self.last_error = entries, stamp, None
            self._rebuild()
            log.warning("tokens file %s re-read: %d token(s)", self.path, len(entries))

    def _keep(self, why: str) -> None:
        self.last_error = why
        log.error(
            "%s — keeping the last good tokens (%d from the file)", why, len(self._file_entries)
        )

    # -- checking -------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal for a presented token, or None. Compares every entry in constant time
        (after picking up a change to the tokens file)."""
        if not token:
            return None
        self.refresh()
        presented = hash_token(token.strip()).encode("ascii")
        found: TokenEntry | None = None
        for entry in self.entries.values():
            if hmac.compare_digest(presented, entry.sha256.encode("ascii")):
                found = entry
        if found is None:
            return None
        return Principal(found.name, found.role, "token", found.groups)


def parse_env_tokens(text: str) -> list[TokenEntry]:
    """Parse ``name:token[:role[:group+group…]],...`` (``SENTINEL_API_TOKENS``); errors name
    the item."""
    out: list[TokenEntry] = []
    for n, item in enumerate(p.strip() for p in text.split(",")):
        if not item:
            continue
        parts = item.split(":")
        where = f"{TOKENS_ENV} item {n + 1}"
        if len(parts) not in (2, 3, 4) or not parts[1]:
            raise SentinelConfigError(
                f"{where} is not name:token[:role[:group+group]]",
                hint="e.g. alice:snt_xxx:operator:finance+ops,bot:snt_yyy:agent",
            )
        role = parts[2] if len(parts) >= 3 and parts[2] else OPERATOR
        if len(parts[1]) < 16:
            raise SentinelConfigError(f"{where}: the token is too short (16 characters at least)")
        groups = _check_groups(parts[3].split("+"), where) if len(parts) == 4 else ()
        out.append(
            TokenEntry(
                _check_name(parts[0], where),
                _check_role(role, where),
                hash_token(parts[1]),
                groups=groups,
            )
        )
    return out


#: What identifies one version of the tokens file (and its folder): a change re-reads it.
Stamp = tuple[int, ...]


def _stamp(st: os.stat_result, folder: os.stat_result) -> Stamp:
    return (
        st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid,
        folder.st_ino, folder.st_mode, folder.st_uid,
    )  # fmt: skip


def _current_stamp(path: Path | str, folder: str | None = None) -> Stamp:
    """The stamp of ``path`` now (two stat calls: cheap enough to do on every request);
    ``folder`` is ``path``'s folder, precomputed by a caller that asks often."""
    if folder is None:
        folder = os.fspath(Path(path).absolute().parent)
    return _stamp(os.stat(path), os.stat(folder))


def _read_checked(path: Path) -> tuple[list[TokenEntry], Stamp]:
    """Read ``path`` after checking who can change it; the stamp is of the version read."""
    path = Path(path)
    real = _real(path)
    try:
        check_folder(real.parent)
        # O_NOFOLLOW: the checked name is the one opened; O_NONBLOCK: a FIFO cannot hang us.
        fd = os.open(
            real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        )
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SentinelConfigError(
            f"cannot read tokens file {path}: {exc.strerror or exc}"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(f"tokens file {real} is not a regular file")
        why = unsafe(st, "tokens file", real)
        if why is not None:
            raise _refuse(why)
        if st.st_size > MAX_TOKENS_FILE:
            raise SentinelConfigError(f"tokens file {path} is larger than {MAX_TOKENS_FILE} bytes")
        stamp = _stamp(st, os.stat(path.absolute().parent))  # as _current_stamp sees it
        chunks, size = [], 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > MAX_TOKENS_FILE:
                raise SentinelConfigError(
                    f"tokens file {path} is larger than {MAX_TOKENS_FILE} bytes"
                )
            chunks.append(chunk)
    except OSError as exc:
        raise SentinelConfigError(
            f"cannot read tokens file {path}: {exc.strerror or exc}"
        ) from None
    finally:
        os.close(fd)
    return _parse_tokens(path, b"".join(chunks)), stamp


def read_tokens_file(path: Path) -> list[TokenEntry]:
    """Read a tokens file: refused (naming the path and its mode) when another user could change
    it; a malformed file is an error naming the file and what is wrong."""
    try:
        return _read_checked(path)[0]
    except FileNotFoundError:
        raise SentinelConfigError(f"cannot read tokens file {path}: it does not exist") from None


def _parse_tokens(path: Path, raw: bytes) -> list[TokenEntry]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise SentinelConfigError(f"tokens file {path} is not valid JSON: {exc}") from None
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, dict):
        raise SentinelConfigError(f"tokens file {path} has no 'tokens' object")
    out = []
    for name, spec in tokens.items():
        where = f"tokens file {path}, token {name!r}"
        if not isinstance(spec, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(spec.get("sha256"))):
            raise SentinelConfigError(f"{where} has no valid sha256")
        out.append(
            TokenEntry(
                _check_name(name, where),
                _check_role(str(spec.get("role", OPERATOR)), where),
                str(spec["sha256"]),
                spec.get("created_at")
                if isinstance(spec.get("created_at"), (int, float))
                else None,
                _check_groups([] if spec.get("groups") is None else spec["groups"], where),
            )
        )
    return out


def write_tokens_file(path: Path, entries: list[TokenEntry]) -> None:
    """Write the tokens file atomically (temp file, fsync, rename, fsync the folder) with mode
    0600 (hashes only). A missing folder is made with mode 0700; an existing one must be safe."""
    path = Path(path)
    folder = path.absolute().parent
    missing = (
        [folder, *(p for p in folder.parents if not p.exists())] if not folder.exists() else []
    )
    for made in reversed(missing):  # every folder made here is 0700, whatever the umask
        made.mkdir(mode=0o700, exist_ok=True)
        os.chmod(made, 0o700)
    check_folder(folder)
    tokens: dict[str, dict[str, object]] = {}
    for e in sorted(entries, key=lambda e: e.name):
        spec: dict[str, object] = {"sha256": e.sha256, "role": e.role, "created_at": e.created_at}
        if e.groups:
            spec["groups"] = list(e.groups)
        tokens[e.name] = spec
    data = {"version": 1, "tokens": tokens}
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), 0o600)


def add_token(
    path: Path, name: str, role: str = OPERATOR, groups: tuple[str, ...] | list[str] = ()
) -> str:
    """Create (or replace) the token ``name`` in the file; returns the token — shown only now."""
    _check_name(name, "--add-token")
    _check_role(role, "--role")
    checked = _check_groups(list(groups), "--group")
    entries = {e.name: e for e in (read_tokens_file(path) if path.exists() else [])}
    token = new_token()
    entries[name] = TokenEntry(name, role, hash_token(token), round(time.time(), 3), checked)
    write_tokens_file(path, list(entries.values()))
    return token


def remove_token(path: Path, name: str) -> bool:
    """Remove ``name`` from the file; False when it was not there."""
    entries = {e.name: e for e in (read_tokens_file(path) if path.exists() else [])}
    if entries.pop(name, None) is None:
        return False
    write_tokens_file(path, list(entries.values()))
    return True


__all__ = [
    "AGENT",
    "OPERATOR",
    "ROLES",
    "Principal",
    "TokenEntry",
    "TokenRegistry",
    "CONFIG_DIR_ENV",
    "add_token",
    "check_folder",
    "check_outside_db_folder",
    "config_dir",
    "default_tokens_path",
    "legacy_refusal",
    "legacy_tokens_path",
    "hash_token",
    "new_token",
    "parse_env_tokens",
    "read_tokens_file",
    "remove_token",
    "write_tokens_file",
]
