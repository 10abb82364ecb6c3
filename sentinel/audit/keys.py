"""Keys that sign audit anchors and prune checkpoints.

Two kinds, chosen by environment variables:

* ``SENTINEL_AUDIT_KEY``: a shared secret; anchors carry ``HMAC-SHA256``. Whoever holds it can both
  write and check anchors (simple; every agent process can anchor periodically).
* ``SENTINEL_AUDIT_SIGNING_KEY`` / ``SENTINEL_AUDIT_PUBLIC_KEY``: paths of an Ed25519 private key
  (PEM, kept by the operator) and its public half (PEM, enough to verify). Agents hold only the
  public key, so they cannot forge an anchor. Needs the ``cryptography`` package
  (``pip install 'sentinel[signing]'``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HMAC_ALG = "hmac-sha256"
ED25519_ALG = "ed25519"


class AuditKeyError(ValueError):
    """A key variable is set but the key cannot be used (named in the message)."""


@dataclass(frozen=True)
class Signer:
    """Signs anchor bytes. ``key_id`` names the key without revealing it."""

    alg: str
    key_id: str
    _secret: Any

    def sign(self, message: bytes) -> str:
        if self.alg == HMAC_ALG:
            return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        return base64.b64encode(self._secret.sign(message)).decode("ascii")


@dataclass(frozen=True)
class Verifier:
    """Checks anchor signatures with every key it was given (HMAC secret and/or public key)."""

    keys: Mapping[str, Any]  # alg -> key material
    key_ids: Mapping[str, str]

    def verify(self, alg: str, message: bytes, signature: str) -> bool:
        key = self.keys.get(alg)
        if key is None:
            return False
        if alg == HMAC_ALG:
            expected = hmac.new(key, message, hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, str(signature))
        try:
            key.verify(base64.b64decode(signature), message)
        except Exception:
            return False
        return True

    @property
    def empty(self) -> bool:
        return not self.keys


def _hmac_id(secret: bytes) -> str:
    return "hmac:" + hashlib.sha256(b"sentinel-audit-key-id" + secret).hexdigest()[:16]


def _ed_id(public: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def _read_pem(var: str, path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"{var}: cannot read key file {path}: {exc.strerror or exc}") from None


def _crypto(var: str) -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise AuditKeyError(
            f"{var} is set but Ed25519 needs the cryptography package: pip install 'sentinel[signing]'"
        ) from None
    return serialization


def load_signer(env: Mapping[str, str] | None = None) -> Signer | None:
    """The signer configured in the environment (Ed25519 private key first, then HMAC), or None."""
    env = os.environ if env is None else env
    path = env.get("SENTINEL_AUDIT_SIGNING_KEY")
    if path:
        serialization = _crypto("SENTINEL_AUDIT_SIGNING_KEY")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(
                _read_pem("SENTINEL_AUDIT_SIGNING_KEY", path), password=None
            )
        except ValueError as exc:
            raise AuditKeyError(
                f"SENTINEL_AUDIT_SIGNING_KEY: {path} is not a PEM private key: {exc}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditKeyError(f"SENTINEL_AUDIT_SIGNING_KEY: {path} is not an Ed25519 key")
        return Signer(ED25519_ALG, _ed_id(key.public_key()), key)
    secret = env.get("SENTINEL_AUDIT_KEY")
    if secret:
        raw = secret.encode("utf-8")
        return Signer(HMAC_ALG, _hmac_id(raw), raw)
    return None


def load_verifier(env: Mapping[str, str] | None = None) -> Verifier:
    """Every verification key in the environment (HMAC secret, Ed25519 public or private key)."""
    env = os.environ if env is None else env
    keys: dict[str, Any] = {}
    ids: dict[str, str] = {}
    secret = env.get("SENTINEL_AUDIT_KEY")
    if secret:
        keys[HMAC_ALG] = secret.encode("utf-8")
        ids[HMAC_ALG] = _hmac_id(keys[HMAC_ALG])
    pub_path = env.get("SENTINEL_AUDIT_PUBLIC_KEY")
    if pub_path:
        serialization = _crypto("SENTINEL_AUDIT_PUBLIC_KEY")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            pub = serialization.load_pem_public_key(
                _read_pem("SENTINEL_AUDIT_PUBLIC_KEY", pub_path)
            )
        except ValueError as exc:
            raise AuditKeyError(
                f"SENTINEL_AUDIT_PUBLIC_KEY: {pub_path} is not a PEM public key: {exc}"
            ) from None
        if not isinstance(pub, Ed25519PublicKey):
            raise AuditKeyError(f"SENTINEL_AUDIT_PUBLIC_KEY: {pub_path} is not an Ed25519 key")
        keys[ED25519_ALG] = pub
        ids[ED25519_ALG] = _ed_id(pub)
    elif env.get("SENTINEL_AUDIT_SIGNING_KEY"):
        signer = load_signer({"SENTINEL_AUDIT_SIGNING_KEY": env["SENTINEL_AUDIT_SIGNING_KEY"]})
        assert signer is not None
        keys[ED25519_ALG] = signer._secret.public_key()
        ids[ED25519_ALG] = signer.key_id
    return Verifier(keys, ids)


def verifier_for(signer: Signer) -> Verifier:
    """A verifier that checks what ``signer`` signs (the HMAC secret, or the Ed25519 public
    half): a writer checks the anchors already in the folder with its own key."""
    if signer.alg == HMAC_ALG:
        return Verifier({HMAC_ALG: signer._secret}, {HMAC_ALG: signer.key_id})
    return Verifier({ED25519_ALG: signer._secret.public_key()}, {ED25519_ALG: signer.key_id})


def generate_ed25519(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (private key mode 0600). Returns the key id."""
    serialization = _crypto("sentinel audit keygen")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return _ed_id(key.public_key())
