"""Secret masking and terminal-safe text.

Two jobs, both applied to anything an agent supplies before a person or a log sees it:

* :func:`redact` masks secrets by parameter name (``password``, ``token``, ``api_key`` …) and by
  value pattern (API key formats, bearer tokens, JWTs, private keys, card numbers that pass Luhn).
* :func:`safe_text` makes untrusted text safe to print on a terminal: control characters, escape
  sequences, bidi overrides and zero-width characters become visible escapes, and long text is
  shortened with a marker saying how much was cut.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"

#: Longest string kept in a redacted copy (stored requests, events, what people see).
MAX_KEPT_CHARS = 65_536

#: Parameter names whose values are always masked (matched case-insensitively, anywhere in the key).
DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "private_key",
    "authorization",
    "auth_header",
    "credential",
    "cookie",
    "session_id",
    "card_number",
    "cardnumber",
    "cc_number",
    "cvv",
    "cvc",
    "ssn",
)

_VALUE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
    ),
    re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", re.I),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),  # JWT
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),  # OpenAI / Anthropic style
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API key
)
_CARD_CANDIDATE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return f"[REDACTED card …{digits[-4:]}]"
    return match.group(0)


def redact_string(text: str) -> str:
    """Mask secret-looking substrings of ``text`` (key formats, bearer tokens, cards)."""
    if len(text) < 12:
        return text
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(MASK, text)
    return _CARD_CANDIDATE.sub(_mask_card, text)


class Redactor:
    """Masks secrets in nested JSON-like values. Reuse one instance: key matching is cached."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        keys = [k.lower() for k in (*DEFAULT_SECRET_KEYS, *extra_keys) if k]
        self._keys = tuple(dict.fromkeys(keys))
        self._cache: dict[str, bool] = {}

    def is_secret_key(self, key: str) -> bool:
        """True when a parameter of this name holds a secret."""
        hit = self._cache.get(key)
        if hit is None:
            norm = key.lower().replace("-", "_")
            hit = any(k.replace("-", "_") in norm for k in self._keys)
            if len(self._cache) < 10_000:
                self._cache[key] = hit
        return hit

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` with secrets masked. Never mutates its input.

        Strings longer than :data:`MAX_KEPT_CHARS` are cut (with a note of how much): the stored
        and shown copies stay small while the digest, computed over the real arguments, still
        binds every byte."""
        if isinstance(value, str):
            if len(value) > MAX_KEPT_CHARS:
                cut = len(value) - MAX_KEPT_CHARS
                return redact_string(value[:MAX_KEPT_CHARS]) + f"… [+{cut:,} chars not kept]"
            return redact_string(value)
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = str(k)
                out[key] = (
                    MASK if (self.is_secret_key(key) and v not in (None, "")) else self.redact(v)
                )
            return out
        if isinstance(value, (list, tuple)):
            return [self.redact(v) for v in value]
        return value


_DEFAULT = Redactor()


def redact(value: Any, extra_keys: Iterable[str] = ()) -> Any:
    """Mask secrets in ``value`` (by key name and by value pattern)."""
    extra = tuple(extra_keys)
    return (_DEFAULT if not extra else Redactor(extra)).redact(value)


# --- terminal safety -----------------------------------------------------------------------

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _escape_char(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _is_unsafe(ch: str) -> bool:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return True
    if code < 0x7F:
        return False
    # Cf: format chars (bidi overrides, zero-width joiners…); Cc handled above; Co/Cs/Cn: private,
    # surrogate, unassigned; Zl/Zp: line/paragraph separators.
    return unicodedata.category(ch) in ("Cf", "Co", "Cs", "Cn", "Zl", "Zp")


_FAST_SAFE = re.compile(r"[\x20-\x7e]*\Z")


def safe_text(value: Any, max_len: int | None = None, *, multiline: bool = False) -> str:
    """Render untrusted ``value`` as text that is safe on a terminal.

    Control characters, escape sequences, bidi overrides and zero-width characters become visible
    escapes (``\\x1b``, ``\\u202e``), so nothing an agent sends can move the cursor, change the
    title, write the clipboard or reorder what the operator reads. With ``multiline`` newlines are
    kept. Text longer than ``max_len`` is cut with a note of how much was left out.
    """
    text = value if isinstance(value, str) else str(value)
    # Bound the work on huge inputs before escaping (10 MB arguments must not stall a UI).
    if max_len is not None and len(text) > max_len * 4 + 64:
        omitted_raw = len(text) - (max_len * 4 + 64)
        text = text[: max_len * 4 + 64]
    else:
        omitted_raw = 0
    if not _FAST_SAFE.match(text):
        text = "".join(
            (ch if (multiline and ch == "\n") else _escape_char(ch)) if _is_unsafe(ch) else ch
            for ch in text
        )
    if max_len is not None and (len(text) > max_len or omitted_raw):
        total_cut = len(text) - max_len + omitted_raw if len(text) > max_len else omitted_raw
        marker = f"… (+{total_cut:,} chars)"
        keep = max(0, max_len - len(marker))
        text = text[:keep] + marker
    return text


def shorten(text: str, max_len: int) -> str:
    """Cut ``text`` to ``max_len`` characters with an ellipsis."""
    return text if len(text) <= max_len else text[: max(0, max_len - 1)] + "…"
