"""Regular expressions and globs for rules, compiled with RE2 (linear time, no backtracking).

Python's ``re`` backtracks: ``^(a|a)*$`` on 29 characters took 24 s in our measurements. RE2
guarantees time linear in the input, so an agent cannot stall governance with a crafted
argument. RE2 rejects backreferences and lookaround; such a rule is refused at load time.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

import re2

#: Longest pattern accepted in a rules file (a pattern is written by a person, not generated).
MAX_PATTERN_LENGTH = 4096

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would otherwise print parse errors to stderr
_OPTIONS.max_mem = 8 << 20  # a pathological pattern fails to compile instead of eating memory


class RegexError(ValueError):
    """A pattern RE2 cannot compile; ``hint`` says what to change."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _describe(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


@functools.lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> Any:
    """Compile ``pattern`` with RE2 or raise :class:`RegexError` with a hint."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexError(
            f"regular expression is {len(pattern)} characters long",
            f"keep patterns under {MAX_PATTERN_LENGTH} characters",
        )
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        why = _describe(exc)
        if "perl operator" in why and ("(?=" in why or "(?!" in why or "(?<" in why):
            hint = "lookahead/lookbehind is not supported (RE2 runs in linear time); rewrite without it"
        elif "escape sequence" in why and any(f"\\{d}" in why for d in "123456789"):
            hint = (
                "backreferences are not supported (RE2 runs in linear time); rewrite without them"
            )
        else:
            hint = "fix the pattern; the syntax is RE2's (Python-like, no backreferences or lookaround)"
        raise RegexError(f"invalid regular expression {pattern!r}: {why}", hint) from None


def fold(text: str) -> str:
    """Unicode-normalise (NFKC) and case-fold, so ``Delete_User`` and ``ｄｅｌｅｔｅ_user`` compare equal."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).casefold()


def glob_to_regex(glob: str) -> str:
    """Translate a shell glob (``*``, ``?``, ``[seq]``, ``[!seq]``) into an RE2 full-match pattern.

    Written by hand because :func:`fnmatch.translate` emits lookaheads and backreferences that
    RE2 does not accept. An unclosed ``[`` is a literal, as in :mod:`fnmatch`.
    """
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        ch = glob[i]
        i += 1
        if ch == "*":
            if not out or out[-1] != ".*":  # collapse runs of stars
                out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re2.escape("["))
                continue
            body = glob[i:j]
            i = j + 1
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[{'^' if negate else ''}{body}]")
        else:
            out.append(re2.escape(ch))
    return "(?s)" + "".join(out)


class GlobSet:
    """One or more case-insensitive globs, matched against a :func:`fold`-ed name."""

    __slots__ = ("globs", "_regex")

    def __init__(self, globs: tuple[str, ...]) -> None:
        self.globs = globs
        joined = "|".join(f"(?:{glob_to_regex(fold(g))})" for g in globs)
        self._regex = compile_regex(joined)

    def matches(self, folded_name: str) -> bool:
        """True when any glob matches the whole (already folded) name."""
        return self._regex.fullmatch(folded_name) is not None

    def __repr__(self) -> str:
        return f"GlobSet({list(self.globs)!r})"
