"""Operator keys: one Ed25519 key pair per person, the private half readable by that OS user only.

* The private key is a PEM (PKCS#8) file, by default ``operator-key.pem`` in the configuration
  folder (:func:`sentinel.trust._files.config_dir`), written with mode 0600. A key file that
  anyone else could read, or that someone else owns, is refused when loaded — like ssh does.
* The public half is written as one line, ``ed25519:<base64 of the 32 raw bytes>``: what an admin
  puts in the trusted operators file (``sentinel operator add NAME --key ed25519:…``).
* A key id, ``ed25519:<16 hex>`` (the SHA-256 of the raw public key, cut short; the same form as
  the audit anchor keys' ids), names a key in a signature without revealing anything.

Needs the ``cryptography`` package (``pip install 'sentinel-guard[signing]'``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import SentinelConfigError
from sentinel.secure_files import config_dir, make_folder, mode_text, read_small, write_atomic

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

KEY_FILE_NAME = "operator-key.pem"
KEY_ENV = "SENTINEL_OPERATOR_KEY"
PUBLIC_PREFIX = "ed25519:"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SentinelConfigError(
            "operator keys need the cryptography package",
            hint="pip install 'sentinel-guard[signing]'",
        ) from None
    return ed25519


def default_key_path(env: Mapping[str, str] | None = None) -> Path:
    """``$SENTINEL_OPERATOR_KEY``, else ``operator-key.pem`` in the configuration folder."""
    env = os.environ if env is None else env
    explicit = env.get(KEY_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    return config_dir(env) / KEY_FILE_NAME


def public_key_text(public: Ed25519PublicKey) -> str:
    """The one-line form of a public key: ``ed25519:<base64 raw>``."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def key_id_of_raw(raw: bytes) -> str:
    return PUBLIC_PREFIX + hashlib.sha256(raw).hexdigest()[:16]


def parse_public_key(text: object) -> tuple[Ed25519PublicKey, str]:
    """The key and its id from its one-line form; ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.startswith(PUBLIC_PREFIX):
        raise ValueError(f"{text!r} is not an 'ed25519:<base64>' public key")
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{text!r} is not valid base64 after 'ed25519:'") from None
    if len(raw) != 32:
        raise ValueError(f"{text!r} holds {len(raw)} bytes, an Ed25519 public key has 32")
    return _crypto().Ed25519PublicKey.from_public_bytes(raw), key_id_of_raw(raw)


@dataclass(frozen=True)
class OperatorKey:
    """An operator's private key, loaded. ``public_key`` is the line an admin adds."""

    path: Path
    key_id: str
    public_key: str
    _private: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey, path: Path) -> OperatorKey:
        text = public_key_text(private.public_key())
        return cls(path, parse_public_key(text)[1], text, private)


def _pem(private: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_key(path: Path, *, force: bool = False) -> OperatorKey:
    """Write a new key pair's private half to ``path`` (mode 0600; a missing folder is made 0700).

    An existing file is never replaced unless ``force``: it may be the only copy of a key the
    admin already trusts. The file appears complete or not at all (temp file + rename)."""
    ed25519 = _crypto()
    path = Path(path).absolute()
    if os.path.lexists(path) and not force:
        raise SentinelConfigError(
            f"operator key {path} already exists; it is kept",
            hint="pass --force to replace it (the old key stops working once the admin "
            "trusts the new one), or --key PATH for another file",
        )
    make_folder(path.parent, 0o700)
    private = ed25519.Ed25519PrivateKey.generate()
    write_atomic(path, _pem(private), 0o600)
    return OperatorKey.from_private(private, path)


def load_key(path: Path | None = None) -> OperatorKey:
    """The private key at ``path`` (default :func:`default_key_path`).

    Refused, naming the path and the fix, when it is readable or writable by group or others or
    owned by another user: a key others can read signs for them too."""
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    path = Path(path if path is not None else default_key_path()).absolute()
    try:
        raw, st = read_small(path, "operator key")
    except FileNotFoundError:
        raise SentinelConfigError(
            f"operator key {path} does not exist", hint="create it with: sentinel operator init"
        ) from None
    if st.st_uid != os.geteuid():
        raise SentinelConfigError(
            f"operator key {path} is owned by uid {st.st_uid}, not by this user "
            f"(uid {os.geteuid()}): it is refused",
            hint=f"chown {os.geteuid()} {path} && chmod 600 {path}",
        )
    if st.st_mode & 0o077:
        raise SentinelConfigError(
            f"operator key {path} has mode {mode_text(st)}: readable or writable by group or "
            "others, so it is refused",
            hint=f"chmod 600 {path}",
        )
    try:
        private = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise SentinelConfigError(
            f"operator key {path} is not an unencrypted PEM private key: {exc}"
        ) from None
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise SentinelConfigError(f"operator key {path} is not an Ed25519 key")
    return OperatorKey.from_private(private, path)
