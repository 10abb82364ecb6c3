"""Who may call the approval API: named bearer tokens (stored as hashes) and HMAC signatures.

* **Tokens** have a name (the operator identity recorded with each decision, ``api:<name>``) and a
  role: ``operator`` may do everything; ``agent`` may only submit requests and read their status,
  so an agent's credential can never approve its own calls. They live in a JSON file (mode 0600)
  as SHA-256 hashes — a token is shown once, when it is created — or in ``SENTINEL_API_TOKENS``
  (``name:token[:role]``, comma-separated) for containers.
* **Signatures** (``X-Sentinel-Timestamp`` + ``X-Sentinel-Signature``, see
  :mod:`sentinel.approval.webhook`) authenticate with the agent role: whoever holds the webhook
  secret is an agent, never an operator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import SentinelConfigError

OPERATOR = "operator"
AGENT = "agent"
ROLES = (OPERATOR, AGENT)

#: Token names double as operator identities: keep them short and printable.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
TOKEN_PREFIX = "snt_"
TOKENS_ENV = "SENTINEL_API_TOKENS"
TOKENS_FILE_NAME = "api-tokens.json"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its name, role and how it proved it (``token`` / ``signature``)."""

    name: str
    role: str
    via: str

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


def hash_token(token: str) -> str:
    """SHA-256 hex of a token. Tokens are 256-bit random strings, so a fast hash is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (``snt_`` + 43 URL-safe characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def default_tokens_path(db_path: Path) -> Path:
    """The tokens file next to the database: ``<db folder>/api-tokens.json``."""
    return Path(db_path).absolute().parent / TOKENS_FILE_NAME


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


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: str
    sha256: str
    created_at: float | None = None


class TokenRegistry:
    """The set of API tokens the server accepts (from a file and/or the environment)."""

    def __init__(self, entries: list[TokenEntry] | None = None) -> None:
        self.entries: dict[str, TokenEntry] = {}
        for entry in entries or []:
            self.entries[entry.name] = entry

    def __len__(self) -> int:
        return len(self.entries)

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None, env: str | None = None) -> TokenRegistry:
        """Tokens from ``path`` (when it exists) plus ``SENTINEL_API_TOKENS``-style ``env`` text."""
        reg = cls(read_tokens_file(path) if path is not None and path.exists() else [])
        for entry in parse_env_tokens(env or ""):
            reg.entries[entry.name] = entry
        return reg

    # -- checking -------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal for a presented token, or None. Compares every entry in constant time."""
        if not token:
            return None
        presented = hash_token(token.strip()).encode("ascii")
        found: TokenEntry | None = None
        for entry in self.entries.values():
            if hmac.compare_digest(presented, entry.sha256.encode("ascii")):
                found = entry
        return None if found is None else Principal(found.name, found.role, "token")


def parse_env_tokens(text: str) -> list[TokenEntry]:
    """Parse ``name:token[:role],...`` (``SENTINEL_API_TOKENS``); errors name the item."""
    out: list[TokenEntry] = []
    for n, item in enumerate(p.strip() for p in text.split(",")):
        if not item:
            continue
        parts = item.split(":")
        where = f"{TOKENS_ENV} item {n + 1}"
        if len(parts) not in (2, 3) or not parts[1]:
            raise SentinelConfigError(
                f"{where} is not name:token[:role]", hint="e.g. alice:snt_xxx,bot:snt_yyy:agent"
            )
        role = parts[2] if len(parts) == 3 else OPERATOR
        if len(parts[1]) < 16:
            raise SentinelConfigError(f"{where}: the token is too short (16 characters at least)")
        out.append(
            TokenEntry(_check_name(parts[0], where), _check_role(role, where), hash_token(parts[1]))
        )
    return out


def read_tokens_file(path: Path) -> list[TokenEntry]:
    """Read a tokens file; a malformed file is an error naming the file and what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SentinelConfigError(
            f"cannot read tokens file {path}: {exc.strerror or exc}"
        ) from None
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
            )
        )
    return out


def write_tokens_file(path: Path, entries: list[TokenEntry]) -> None:
    """Write the tokens file atomically with mode 0600 (hashes only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "version": 1,
        "tokens": {
            e.name: {"sha256": e.sha256, "role": e.role, "created_at": e.created_at}
            for e in sorted(entries, key=lambda e: e.name)
        },
    }
    fd, tmp = tempfile.mkstemp(prefix=".api-tokens.", dir=str(path.parent))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def add_token(path: Path, name: str, role: str = OPERATOR) -> str:
    """Create (or replace) the token ``name`` in the file; returns the token — shown only now."""
    _check_name(name, "--add-token")
    _check_role(role, "--role")
    entries = {e.name: e for e in (read_tokens_file(path) if path.exists() else [])}
    token = new_token()
    entries[name] = TokenEntry(name, role, hash_token(token), round(time.time(), 3))
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
    "add_token",
    "default_tokens_path",
    "hash_token",
    "new_token",
    "parse_env_tokens",
    "read_tokens_file",
    "remove_token",
    "write_tokens_file",
]
