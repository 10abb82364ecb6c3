"""History filters: parsing what an operator types, and turning a filter into a WHERE clause."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from sentinel.store.models import HistoryFilter

#: field name typed by the operator → HistoryFilter attribute
_FIELDS = {
    "status": "kinds",
    "kind": "kinds",
    "fn": "function",
    "function": "function",
    "agent": "agent",
    "id": "request_id",
    "request": "request_id",
    "rule": "rule_id",
    "value": "value",
    "since": "since",
    "until": "until",
}
_TERM = re.compile(r"([A-Za-z_]+):(.*)\Z", re.S)
_VALUE = re.compile(r"(>=|<=|>|<|=)?\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\Z")
_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds from ``1700000000``, an ISO date/time (UTC unless it says), or ``15m``/``2h``/``7d`` ago."""
    text = text.strip()
    now = time.time() if now is None else now
    m = _AGO.match(text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use epoch seconds, an ISO date like 2026-01-31T12:00, or 15m/2h/7d"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


_TOKEN = re.compile(r'"([^"]*)"|\'([^\']*)\'|([^\s"\']+)|(\S)')


def _tokens(text: str) -> list[tuple[bool, str]]:
    """Words of ``text``; quoted words (``"a b"``) come back as (True, text) and are never fields."""
    out: list[tuple[bool, str]] = []
    for m in _TOKEN.finditer(text):
        dq, sq, bare, stray = m.groups()
        if stray is not None:
            raise ValueError(f"cannot parse filter {text!r}: unterminated quote")
        if bare is not None:
            out.append((False, bare))
        else:
            out.append((True, dq if dq is not None else sq))
    return out


def parse_filter(text: str, now: float | None = None) -> HistoryFilter:
    """Parse ``status:denied fn:transfer* agent:billing value:>1000 free text`` (see HistoryFilter).

    Unknown ``field:`` names raise ValueError naming the field; quote free text containing ``:``.
    """
    values: dict[str, Any] = {}
    kinds: list[str] = []
    free: list[str] = []
    for quoted, word in _tokens(text or ""):
        m = None if quoted else _TERM.match(word)
        if not m:
            free.append(word)
            continue
        name, raw = m.group(1).lower(), m.group(2).strip()
        attr = _FIELDS.get(name)
        if attr is None:
            known = ", ".join(sorted(_FIELDS))
            raise ValueError(
                f"unknown filter field {name!r} (known: {known}; quote text containing ':')"
            )
        if not raw:
            raise ValueError(f"filter field {name!r} needs a value, e.g. {name}:something")
        if attr == "kinds":
            kinds.extend(k.strip().lower() for k in raw.split(",") if k.strip())
        elif attr == "value":
            vm = _VALUE.match(raw)
            if not vm:
                raise ValueError(
                    f"filter value:{raw!r} must be a number with an optional >, >=, <, <= or ="
                )
            values["value_op"] = vm.group(1) or "="
            values["value"] = float(vm.group(2))
        elif attr in ("since", "until"):
            values[attr] = parse_time(raw, now)
        else:
            values[attr] = raw
    return HistoryFilter(text=" ".join(free) or None, kinds=tuple(dict.fromkeys(kinds)), **values)


def _like_from_glob(glob: str) -> str:
    out = []
    for ch in glob:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _glob_clause(column: str, glob: str, params: list[Any]) -> str:
    if "*" in glob or "?" in glob:
        params.append(_like_from_glob(glob))
        # Unary + stops SQLite from range-scanning the column's index and then sorting every
        # match by seq; walking seq DESC and stopping at `limit` matches is what a page needs.
        return f"+{column} LIKE ? ESCAPE '\\'"
    params.append(glob)
    return f"{column} = ? COLLATE NOCASE"


_TEXT_COLUMNS = ("function", "agent_id", "reason", "request_id", "rule_id", "actor", "kind")


def where_clause(flt: HistoryFilter | None, before_seq: int | None) -> tuple[str, list[Any]]:
    """SQL condition (no ``WHERE``) and its parameters for a history page."""
    parts: list[str] = []
    params: list[Any] = []
    if before_seq is not None:
        parts.append("seq < ?")
        params.append(int(before_seq))
    if flt is not None:
        if flt.kinds:
            parts.append(f"kind IN ({', '.join('?' * len(flt.kinds))})")
            params.extend(flt.kinds)
        if flt.function:
            parts.append(_glob_clause("function", flt.function, params))
        if flt.agent:
            parts.append(_glob_clause("agent_id", flt.agent, params))
        if flt.rule_id:
            parts.append(_glob_clause("rule_id", flt.rule_id, params))
        if flt.request_id:
            parts.append("request_id >= ? AND request_id < ?")
            params.extend((flt.request_id, flt.request_id + "\U0010ffff"))
        if flt.value is not None:
            op = flt.value_op or "="
            if op not in (">", ">=", "<", "<=", "="):
                raise ValueError(f"value_op must be one of > >= < <= =, got {op!r}")
            parts.append(f"value_at_risk {op} ?")
            params.append(float(flt.value))
        if flt.since is not None:
            parts.append("ts >= ?")
            params.append(float(flt.since))
        if flt.until is not None:
            parts.append("ts < ?")
            params.append(float(flt.until))
        if flt.text:
            for word in flt.text.split():
                pattern = "%" + _like_from_glob(word) + "%"
                ors = " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in _TEXT_COLUMNS)
                parts.append(f"({ors})")
                params.extend([pattern] * len(_TEXT_COLUMNS))
    return (" AND ".join(parts) or "1"), params
