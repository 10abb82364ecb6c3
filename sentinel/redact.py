"""Secret masking and terminal-safe text.

Two jobs, both applied to anything an agent supplies before a person or a log sees it:

* :func:`redact` masks secrets by parameter name (``password``, ``pwd``, ``DB_PASS``, ``apiKey``,
  ``auth`` …, matched after folding case and separators), in name/value pair lists
  (``[{"name": "password", "value": …}]``) and by value pattern inside any text: ``key=value`` and
  ``Header: value`` pairs whose key is a secret name, passwords in URLs and DSNs
  (``postgresql://u:[REDACTED]@h/db``), ``Basic``/``Bearer`` credentials, private keys, card
  numbers that pass Luhn and the token formats of the detect-secrets plugin set (AWS, GitHub,
  GitLab, Slack, Stripe, SendGrid, npm, PyPI, Twilio, JWT …).
* :func:`safe_text` makes untrusted text safe to print on a terminal: control characters, escape
  sequences, bidi overrides and zero-width characters become visible escapes, and long text is
  shortened with a marker saying how much was cut.

The token formats are a built-in copy of the ``detect-secrets`` plugin regexes (so redaction is
good out of the box with no extra dependency). When the ``detect-secrets`` package is installed
(``pip install 'sentinel[secrets]'``), its plugins' patterns are applied as well, so formats it
learns in later releases are masked without a Sentinel release. ``SENTINEL_DETECT_SECRETS=0``
turns that import off.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"

#: Longest string kept in a redacted copy (stored requests, events, what people see).
MAX_KEPT_CHARS = 65_536

#: Parameter names whose values are always masked. A key matches when, folded to lower-case
#: letters and digits only (``DB-Password`` → ``dbpassword``, ``apiKey`` → ``apikey``), it
#: contains one of these. Includes the detect-secrets keyword plugin's list.
DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "contrasena",
    "contraseña",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "auth_key",
    "service_key",
    "account_key",
    "client_key",
    "db_key",
    "database_key",
    "db_pass",
    "database_pass",
    "key_pass",
    "private_key",
    "priv_key",
    "authorization",
    "auth_header",
    "credential",
    "cookie",
    "session_id",
    "card_number",
    "cardnumber",
    "cc_number",
)

#: Words that mark a secret only as a whole word of the name (``pass`` in ``DB_PASS`` but not in
#: ``passenger``; ``auth`` but not ``author``; ``ssn`` but not ``business_name``).
SECRET_WORDS: frozenset[str] = frozenset(
    ("pwd", "pw", "pass", "auth", "oauth", "bearer", "cvv", "cvc", "ssn")
)

#: Name fields of name/value pair lists (``[{"name": "password", "value": "…"}]``).
_PAIR_NAME_FIELDS = ("name", "key", "header", "field", "param", "parameter")
_PAIR_VALUE_FIELDS = frozenset(("value", "val", "values", "data"))


def _fold(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[\W_]+")


def _words(key: str) -> list[str]:
    return [w for w in _NON_ALNUM.split(_CAMEL.sub("_", key).lower()) if w]


# Token formats, adapted from the detect-secrets plugins (detect_secrets/plugins/*.py) plus a few
# it lacks (Anthropic/OpenAI project keys, Google API keys, GitHub fine-grained tokens). Each
# alternative matches the secret itself, so the whole match is masked.
_TOKEN_FORMATS = (
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    r"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----.*?(?:---- END SSH2 ENCRYPTED PRIVATE KEY ----|\Z)",
    r"PuTTY-User-Key-File-\d: .*?(?:Private-MAC: \S+|\Z)",
    r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",  # JWT
    r"\b(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",  # OpenAI / Anthropic
    r"\bgh[pousr]_[A-Za-z0-9_]{30,}",  # GitHub
    r"\bgithub_pat_[A-Za-z0-9_]{40,}",
    r"\b(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|glagent|gloas)-[A-Za-z0-9_-]{20,}",  # GitLab
    r"\bGR1348941[A-Za-z0-9_-]{20,50}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+",
    r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{24,}",  # Stripe
    r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API key
    r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",  # SendGrid
    r"\bnpm_[A-Za-z0-9]{36}\b",  # npm
    r"\bpypi-AgE[A-Za-z0-9_-]{60,}",  # PyPI
    r"\b(?:AC|SK)[a-f0-9]{32}\b",  # Twilio
    r"\bsq0csp-[0-9A-Za-z_-]{43}",  # Square OAuth
    r"\b[0-9a-f]{32}-us[0-9]{1,2}\b",  # Mailchimp
    r"\b[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27}\b",  # Discord bot
    r"\b\d{8,10}:[0-9A-Za-z_-]{35}\b",  # Telegram bot
)
_TOKENS = re.compile("|".join(f"(?:{p})" for p in _TOKEN_FORMATS), re.S)

#: ``scheme://user:password@host`` (URLs, DSNs): the password is masked, the rest kept.
_URL_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*:)(?P<pw>[^\s/?#]+)(?=@[^\s@/?#]*(?:[/?#\s]|\Z))"
)
#: ``Basic <base64 of user:password>`` (only when it decodes to a ``user:password`` pair).
_BASIC = re.compile(r"\bBasic\s+(?P<b64>[A-Za-z0-9+/]{6,}={0,2})")
#: A name followed by an assignment or a header colon; the value is read by :data:`_KV_VALUE`.
_KV_KEY = re.compile(
    r"(?<![A-Za-z0-9_])([A-Za-z][A-Za-z0-9_.\-]{0,63})[\"']?[ \t]*(?:=>|:=|=|:)[ \t]*"
)
_KV_VALUE = re.compile(
    r"(?:(?:Basic|Bearer|Digest|Token|Bot|Negotiate|Key)[ \t]+)?"
    r"(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'&,;<>(){}\[\]]+)",
    re.I,
)
#: Header names whose whole line is a credential (``Cookie: a=1; b=2``).
_WHOLE_LINE = frozenset(("cookie", "setcookie", "authorization", "proxyauthorization"))
_CARD_CANDIDATE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_MAY_HOLD_PAIR = re.compile(r"[=:]")


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


def _mask_basic(match: re.Match[str]) -> str:
    b64 = match.group("b64")
    try:
        decoded = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    # Prose ("Basic information") is not base64 of a pair; a credential decodes to user:password.
    if b":" in decoded:
        return "Basic " + MASK
    return match.group(0)


# --- the maintained set, when installed ------------------------------------------------------

#: detect-secrets plugins not used: the keyword plugin (covered by key/value matching with the
#: same word list), entropy plugins (mask ordinary ids and hashes) and public IP addresses.
_SKIPPED_PLUGINS = ("keyword", "high_entropy_strings", "ip_public", "private_key")
_OFF = ("0", "false", "no", "off")
_plugin_lock = threading.Lock()
_plugin_patterns: tuple[re.Pattern[str], ...] | None = None


def _load_plugin_patterns() -> tuple[re.Pattern[str], ...]:
    """The regexes of the installed detect-secrets plugins (empty when not installed or off)."""
    if os.environ.get("SENTINEL_DETECT_SECRETS", "1").strip().lower() in _OFF:
        return ()
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except Exception:  # not installed, or broken: the built-in set still applies
        return ()
    out: list[re.Pattern[str]] = []
    try:
        plugins: Iterable[Any] = get_mapping_from_secret_type_to_class().values()
        for plugin in plugins:
            if plugin.__module__.rsplit(".", 1)[-1] in _SKIPPED_PLUGINS:
                continue
            for pattern in getattr(plugin, "denylist", None) or ():
                if isinstance(pattern, re.Pattern) and isinstance(pattern.pattern, str):
                    out.append(pattern)
    except Exception:
        return ()
    return tuple(out)


def plugin_patterns() -> tuple[re.Pattern[str], ...]:
    """Patterns taken from detect-secrets (loaded once per process, on first use)."""
    global _plugin_patterns
    if _plugin_patterns is None:
        with _plugin_lock:
            if _plugin_patterns is None:
                _plugin_patterns = _load_plugin_patterns()
    return _plugin_patterns


def _mask_plugin_match(match: re.Match[str]) -> str:
    # detect-secrets patterns capture the secret in group 1 when they also match context
    # (``aws … key … "…"``, ``://user:PASSWORD@``): mask only that part.
    if match.re.groups and match.group(1):
        start, end = match.span(1)
        base = match.start()
        whole = match.group(0)
        return whole[: start - base] + MASK + whole[end - base :]
    return MASK


# --- the redactor ------------------------------------------------------------------------------


class Redactor:
    """Masks secrets in nested JSON-like values. Reuse one instance: key matching is cached."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        keys = [_fold(k) for k in (*DEFAULT_SECRET_KEYS, *extra_keys) if k and _fold(k)]
        self._keys = tuple(dict.fromkeys(keys))
        self._cache: dict[str, bool] = {}

    def is_secret_key(self, key: str) -> bool:
        """True when a parameter of this name holds a secret (case and separators folded)."""
        hit = self._cache.get(key)
        if hit is None:
            folded = _fold(key)
            hit = any(k in folded for k in self._keys) or any(
                w in SECRET_WORDS for w in _words(key)
            )
            if len(self._cache) < 10_000:
                self._cache[key] = hit
        return hit

    def redact_text(self, text: str) -> str:
        """Mask secret-looking parts of free text: ``key=value`` / ``Header: value`` pairs whose
        key is a secret name, URL passwords, Basic/Bearer credentials, token formats, cards."""
        if len(text) < 5:
            return text
        if _MAY_HOLD_PAIR.search(text):
            text = self._mask_pairs(text)
            if "://" in text:
                text = _URL_USERINFO.sub(lambda m: m.group("head") + MASK, text)
        if len(text) < 12:
            return text
        text = _TOKENS.sub(MASK, text)
        if "Basic" in text:
            text = _BASIC.sub(_mask_basic, text)
        for pattern in plugin_patterns():
            text = pattern.sub(_mask_plugin_match, text)
        return _CARD_CANDIDATE.sub(_mask_card, text)

    def _mask_pairs(self, text: str) -> str:
        parts: list[str] = []
        pos = 0
        for m in _KV_KEY.finditer(text):
            if m.start() < pos or not self.is_secret_key(m.group(1)):
                continue
            start = m.end()
            if _fold(m.group(1)) in _WHOLE_LINE and ":" in m.group(0):
                end = text.find("\n", start)
                end = len(text) if end < 0 else end
            else:
                v = _KV_VALUE.match(text, start)
                if v is None:
                    continue
                end = v.end()
            value = text[start:end]
            if not value or value.startswith(MASK):
                continue
            quote = (
                value[0]
                if value[0] in "\"'" and value.endswith(value[0]) and len(value) > 1
                else ""
            )
            parts.append(text[pos:start])
            parts.append(f"{quote}{MASK}{quote}")
            pos = end
        if not parts:
            return text
        parts.append(text[pos:])
        return "".join(parts)

    def _pair_is_secret(self, value: Mapping[Any, Any]) -> bool:
        for field, name in value.items():
            if (
                isinstance(field, str)
                and isinstance(name, str)
                and field.lower() in _PAIR_NAME_FIELDS
                and self.is_secret_key(name)
            ):
                return True
        return False

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` with secrets masked. Never mutates its input.

        Strings longer than :data:`MAX_KEPT_CHARS` are cut (with a note of how much): the stored
        and shown copies stay small while the digest, computed over the real arguments, still
        binds every byte."""
        if isinstance(value, str):
            if len(value) > MAX_KEPT_CHARS:
                cut = len(value) - MAX_KEPT_CHARS
                return self.redact_text(value[:MAX_KEPT_CHARS]) + f"… [+{cut:,} chars not kept]"
            return self.redact_text(value)
        if isinstance(value, Mapping):
            pair = self._pair_is_secret(value)
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = str(k)
                secret = self.is_secret_key(key) or (pair and key.lower() in _PAIR_VALUE_FIELDS)
                out[key] = MASK if (secret and v not in (None, "")) else self.redact(v)
            return out
        if isinstance(value, (list, tuple)):
            return [self.redact(v) for v in value]
        return value


_DEFAULT = Redactor()


def redact_string(text: str) -> str:
    """Mask secret-looking parts of ``text`` (see :meth:`Redactor.redact_text`)."""
    return _DEFAULT.redact_text(text)


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
