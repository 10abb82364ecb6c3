"""What of a call the detector looks at: numeric parameters (magnitudes) and short string or
boolean parameters (categories: a recipient, a host, a flag).

Secret-looking parameter names (the redactor's list plus the policy's ``redact_keys``) and
ignored names are skipped entirely: their values never reach the baselines.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sentinel.anomaly.settings import FunctionSettings
from sentinel.policy.regex import fold
from sentinel.redact import Redactor, redact_string, shorten

#: Longest string treated as a category value (longer text is content, not a choice).
MAX_CATEGORY_LEN = 200
#: Most parameters looked at per call (bounds the cost of very wide calls).
MAX_FEATURES = 32


@dataclass(frozen=True, slots=True)
class Category:
    """A string (or boolean) parameter's value, by digest, with a safe display form."""

    param: str
    vkey: str
    shown: str


@dataclass(slots=True)
class Features:
    numbers: dict[str, float] = field(default_factory=dict)
    categories: list[Category] = field(default_factory=list)
    #: Numeric parameters that are NaN or infinite: never learned, scored against the baseline.
    nonfinite: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.numbers or self.categories)


def value_key(param: str, text: str) -> str:
    """Digest of a parameter's value (the parameter name is part of it)."""
    return hashlib.sha256(f"{param}\x00{text}".encode()).hexdigest()[:32]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        try:
            x = float(value)
        except OverflowError:  # an int past the float range is huge, not "not a number"
            return _FMAX if value > 0 else -_FMAX
        except ValueError:
            return None
        if math.isinf(x) and isinstance(value, Decimal) and value.is_finite():
            return _FMAX if x > 0 else -_FMAX  # Decimal("1e400"), "1e400": huge as well
        return x if math.isfinite(x) else None
    return None


_FMAX = sys.float_info.max


def _numeric_string(text: str) -> float | None:
    try:
        return _number(Decimal(text.strip().replace(",", "").replace("_", "")))
    except (InvalidOperation, ValueError):
        return None


def _nonfinite_string(text: str) -> bool:
    try:
        return not Decimal(text.strip()).is_finite()
    except (InvalidOperation, ValueError):
        return False


def extract(params: Mapping[str, Any], settings: FunctionSettings, redactor: Redactor) -> Features:
    """The features of one call's (top-level) parameters."""
    out = Features()
    seen = 0
    for name, value in params.items():
        if seen >= MAX_FEATURES:
            break
        folded = fold(name)
        if folded in settings.ignore or redactor.is_secret_key(name):
            continue
        x = _number(value)
        if x is None and isinstance(value, str) and folded in settings.value_params:
            # A money parameter sent as text ("5000") is still a money parameter.
            x = _numeric_string(value)
            if x is None and _nonfinite_string(value):
                out.nonfinite[name] = value.strip()[:20]
                continue
        if x is None and isinstance(value, (float, Decimal)) and not isinstance(value, bool):
            out.nonfinite[name] = str(value)
            continue
        if x is not None:
            out.numbers[name] = x
            seen += 1
            continue
        if not settings.novelty:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str) and len(value) <= MAX_CATEGORY_LEN:
            text = value
        else:
            continue
        shown = shorten(str(redact_string(text)), 60)
        out.categories.append(Category(name, value_key(name, text), shown))
        seen += 1
    return out


__all__ = ["MAX_CATEGORY_LEN", "MAX_FEATURES", "Category", "Features", "extract", "value_key"]
