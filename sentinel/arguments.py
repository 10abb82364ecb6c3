"""One value for a governed call's arguments.

A call's arguments are needed in several forms — JSON-safe for the request and the event, a
digest for the event, the digest an approval binds to, a redacted copy for storing and showing —
by the guard, the audit sink (on its writer thread), the anomaly hook and the approval path.
:class:`CallArguments` is built once per governed call and computes each form at most once, when
first asked, so a form nobody needs (the binding digest of an allowed call) is never computed and
none is computed twice (the request's and the event's redacted copy are the same object).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from sentinel.normalize import (
    binding_digest,
    canonical_text,
    digest,
    digest_or_refusal,
    to_jsonable,
)
from sentinel.redact import MASK, MAX_KEPT_CHARS, Redactor

__all__ = ["CallArguments"]

_UNSET: Any = object()
_PLAIN = frozenset((str, int, bool, type(None)))
#: Ints this large cannot be printed by Python (4300-digit limit): the general path handles them.
_BIG = 10**4000


class CallArguments(Mapping[str, Any]):
    """The arguments of one governed call (a read-only mapping of the values as bound), with
    their derived forms computed lazily and kept.

    Derived forms may be asked for from two threads at once (the caller's and the audit
    writer's); both compute the same value, so the race is harmless and needs no lock.
    """

    __slots__ = ("raw", "_plain", "_digest", "_binding", "_redacted")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        #: The values as bound (a copy of the mapping; the values themselves are the caller's).
        self.raw: dict[str, Any] = dict(raw)
        self._plain: Any = _UNSET
        self._digest: str | None = None
        self._binding: Any = _UNSET
        self._redacted: tuple[Redactor, Any] | None = None

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> CallArguments:
        """``params`` itself when it already is one, else a new one."""
        # A class check, not isinstance: that goes through the Mapping ABC (slow per call).
        return params if params.__class__ is cls else cls(params)

    # -- the mapping: the raw values --------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"CallArguments({sorted(self.raw)})"  # names only: values may be secrets

    # -- derived forms ----------------------------------------------------------------------------

    @property
    def plain(self) -> Any:
        """The JSON-safe form (:func:`sentinel.normalize.to_jsonable`, display depth)."""
        if self._plain is _UNSET:
            self._plain = to_jsonable(self.raw)
        return self._plain

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON of :attr:`plain`: what an event records."""
        if self._digest is None:
            fast = _plain_forms(self.raw, None)
            self._digest = fast[0] if fast is not None else digest(self.plain)
        return self._digest

    @property
    def binding_digest(self) -> str:
        """The digest an approval binds to (every byte of every value). Raises
        :class:`sentinel.normalize.UnbindableArgument` when a value cannot be read completely
        (the same error every time it is asked)."""
        if self._binding is _UNSET:
            try:
                self._binding = binding_digest(self.raw)
            except Exception as exc:
                self._binding = exc
        if isinstance(self._binding, Exception):
            raise self._binding
        return str(self._binding)

    def binding_digest_now(self) -> str:
        """The binding digest of the values as they are *now*, never cached: after an approval
        the call must run with exactly what was approved, so the values are read again (a
        mutable argument may have changed while the request waited). A value that became
        unreadable gives a text that never equals a digest."""
        return digest_or_refusal(self.raw)

    def redacted(self, redactor: Redactor) -> Any:
        """:attr:`plain` with secrets masked by ``redactor`` (kept for the last redactor asked:
        one per policy version, the same for every event and request of the call)."""
        kept = self._redacted
        if kept is not None and kept[0] is redactor:
            return kept[1]
        fast = _plain_forms(self.raw, redactor) if self._plain is _UNSET else None
        if fast is not None:
            if self._digest is None:
                self._digest = fast[0]
            value = fast[1]
        else:
            value = redactor.redact(self.plain)
        self._redacted = (redactor, value)
        return value


def _plain_forms(
    raw: dict[str, Any], redactor: Redactor | None
) -> tuple[str, dict[str, Any] | None] | None:
    """Digest and (with ``redactor``) redacted copy of arguments that are all plain scalars (the
    common case), without the general normalisation; None when any value needs it. Same results
    as the general path (``digest(plain)``, ``redactor.redact(plain)``)."""
    out: dict[str, Any] | None = None if redactor is None else {}
    for key, value in raw.items():
        cls = value.__class__
        if cls not in _PLAIN:
            if cls is not float or value - value != 0.0:  # NaN/inf are normalised to strings
                return None
        elif cls is int and not -_BIG < value < _BIG:  # too long to print: {"$int": …}
            return None
        if key.__class__ is not str:
            return None
        if out is None or redactor is None:
            continue
        if redactor.is_secret_key(key) and value is not None and value != "":
            out[key] = MASK
        elif cls is str and len(value) >= 5:  # "pw=x"-style pairs are short
            if len(value) > MAX_KEPT_CHARS:
                return None  # cut with a note by the general path
            out[key] = redactor.redact_text(value)
        else:
            out[key] = value
    return hashlib.sha256(canonical_text(raw).encode("utf-8")).hexdigest(), out
