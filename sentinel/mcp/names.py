"""Tool names as the policy sees them, and look-alike names.

The policy matches function names after NFKC + case-fold (:func:`sentinel.policy.regex.fold`),
which already makes ``ｄｅｌｅｔｅ_file`` equal to ``delete_file``. It does not map letters of
other scripts that *look* like Latin ones: a server can name a tool ``dеlete_file`` with a
Cyrillic ``е``, which no rule for ``delete_file`` names. Doubt never lowers protection, so
:class:`LookalikeHook` (an escalation hook: it can only make a verdict stricter) decides such a
name at least as strictly as the ASCII name it imitates would be decided, and never less strictly
than *require approval*: an ``allow`` rule for the ASCII name does not allow the look-alike.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from sentinel.policy import Action, Verdict
from sentinel.policy.regex import fold
from sentinel.runtime import Escalation, GovernedCall

# Letters of other scripts that are drawn like Latin letters (the common part of Unicode's
# confusables list for identifiers). Compared after NFKC + case-fold, so lower case suffices.
_LOOKALIKES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ӏ": "l", "ү": "y", "ҳ": "x", "ց": "g",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j", "ѵ": "v",
    # Armenian, Latin extensions, symbols
    "օ": "o", "ս": "u", "ı": "i", "ȷ": "j", "ℓ": "l", "ǀ": "l", "‐": "-", "‑": "-", "‒": "-",
    "–": "-", "—": "-", "−": "-", "․": ".", "ꓸ": ".",
}  # fmt: skip
_INVISIBLE = {"Cf", "Mn", "Me"}  # format characters (zero-width…) and combining marks


def skeleton(name: str) -> str:
    """``name`` with look-alike letters replaced by the Latin letters they imitate, combining
    marks and invisible characters dropped, after NFKC + case-fold."""
    folded = fold(name)
    if folded.isascii():
        return folded
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", folded):
        if unicodedata.category(ch) in _INVISIBLE:
            continue
        out.append(_LOOKALIKES.get(ch, ch))
    return "".join(out)


def imitated(name: str) -> str | None:
    """The ASCII name ``name`` looks like, when it is not that name itself (else None)."""
    if name.isascii():
        return None
    skel = skeleton(name)
    if skel.isascii() and skel != fold(name) and skel:
        return skel
    return None


class LookalikeHook:
    """Escalation hook: a look-alike of an ASCII tool name is decided at least as strictly as
    that name, and at least as *require approval* (see the module documentation)."""

    source = "lookalike"

    def __init__(self, policy: Callable[[], Any]) -> None:
        self._policy = policy  # the policy in force (a hot reload changes it)

    def assess(self, call: GovernedCall, verdict: Verdict) -> Escalation | None:
        """The stricter of *require approval* and the ASCII name's own verdict."""
        ascii_name = imitated(call.function)
        if ascii_name is None:
            return None
        other = self._policy().evaluate(ascii_name, call.params, call.agent_id)
        action = other.action
        if action.strictness < Action.REQUIRE_APPROVAL.strictness:
            action = Action.REQUIRE_APPROVAL
        why = f"tool name {call.function!r} imitates {ascii_name!r} with look-alike characters"
        if other.action is Action.BLOCK:
            why += f"; as {ascii_name!r} it is blocked: {other.reason}"
        return Escalation(
            action, why, self.source, data={"name": call.function, "looks_like": ascii_name}
        )

    def observe(self, call: GovernedCall, succeeded: bool) -> None:
        """Nothing to learn."""

    def abandon(self, call: GovernedCall) -> None:
        """Nothing held."""
