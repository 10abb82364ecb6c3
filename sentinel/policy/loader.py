"""Load a rules file into a :class:`Policy`, or raise one :class:`PolicyError` saying where and why.

Steps: size cap → decode → located parse (YAML or JSON, see :mod:`parse`) → strict pydantic
validation → extra checks (duplicate rule ids) → compile → run the file's own test cases.
Any failure raises :class:`~sentinel.errors.PolicyError` with file, line and a hint; nothing
loads partially. ``exc.problems`` lists every problem found (the message shows the first).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sentinel.errors import PolicyError
from sentinel.policy.evaluate import Policy
from sentinel.policy.models import (
    CaseCall,
    CaseExpect,
    Condition,
    Limit,
    PolicyCase,
    PolicyFile,
    Rule,
    allowed_keys,
    suggest,
)
from sentinel.policy.parse import Lines, ParseError, looks_like_json, parse_json, parse_yaml
from sentinel.policy.values import kind_of

#: Largest rules file accepted (bytes). A policy is written by people; 1 MiB is thousands of rules.
DEFAULT_MAX_BYTES = 1 << 20

_ACTION_GUESSES = {
    "deny": "block", "reject": "block", "forbid": "block", "blocked": "block", "stop": "block",
    "approve": "require_approval", "approval": "require_approval", "ask": "require_approval",
    "confirm": "require_approval", "review": "require_approval", "require": "require_approval",
    "permit": "allow", "allowed": "allow", "accept": "allow", "pass": "allow",
}  # fmt: skip

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "finite_number": "a finite number",
}


def load_policy(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, run_tests: bool = True
) -> Policy:
    """Load and validate a rules file (YAML, or JSON by ``.json`` suffix / a leading ``{``).

    ``run_tests=False`` skips the file's ``tests:`` cases (``sentinel rules test`` runs and
    reports them itself); everything else is validated as usual."""
    path = Path(path)
    name = str(path)
    try:
        # O_NONBLOCK: a FIFO in place of the rules file must not hang start-up (it is refused
        # below, as is any device: only a regular file is a rules file).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode) and not path.is_dir():
                raise PolicyError("not a regular file (a FIFO, socket or device?)", file=name)
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise PolicyError(
            "rules file not found", file=name, hint="create it or set SENTINEL_RULES_PATH"
        ) from None
    except IsADirectoryError:
        raise PolicyError("is a directory, not a rules file", file=name) from None
    except OSError as exc:
        raise PolicyError(f"cannot read rules file: {exc.strerror or exc}", file=name) from None
    return _build(data, name, path, max_bytes, run_tests=run_tests)


def load_policy_bytes(
    data: bytes, path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, run_tests: bool = True
) -> Policy:
    """Load a rules file from bytes already read from ``path`` (hot reload reads once and
    hashes the same bytes it parses)."""
    path = Path(path)
    return _build(data, str(path), path, max_bytes, run_tests=run_tests)


def parse_policy(
    text: str | bytes,
    source: str = "<string>",
    *,
    fmt: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Policy:
    """Parse rules from a string. ``fmt`` is ``"yaml"``, ``"json"`` or None (guess)."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return _build(raw, source, None, max_bytes, fmt)


def policy_from_data(data: dict[str, Any], source: str = "<data>") -> Policy:
    """Build a policy from already-parsed data (no line numbers in errors)."""
    model = _validate(data, {}, source)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return _finish(model, data, {}, source, None, digest)


def _build(
    raw: bytes,
    name: str,
    path: Path | None,
    max_bytes: int,
    fmt: str | None = None,
    *,
    run_tests: bool = True,
) -> Policy:
    if len(raw) > max_bytes:
        raise PolicyError(
            f"rules file is larger than {max_bytes} bytes",
            file=name,
            hint="split it or raise max_bytes; a policy this large is unlikely to be reviewed",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyError("not valid UTF-8", file=name, line=line, hint="save as UTF-8") from None
    as_json = fmt == "json" or (fmt is None and looks_like_json(text, name))
    try:
        data, lines = parse_json(text) if as_json else parse_yaml(text)
    except ParseError as exc:
        raise PolicyError(exc.message, file=name, line=exc.line, hint=exc.hint) from None
    if not isinstance(data, dict):
        raise PolicyError(
            f"the top level must be a mapping, got {_kind(data)}",
            file=name,
            line=1,
            hint='start with `rules:` (YAML) or `{"rules": [...]}` (JSON)',
        )
    model = _validate(data, lines, name)
    return _finish(
        model, data, lines, name, path, hashlib.sha256(raw).hexdigest(), run_tests=run_tests
    )


def _finish(
    model: PolicyFile,
    data: dict[str, Any],
    lines: Lines,
    name: str,
    path: Path | None,
    digest: str,
    *,
    run_tests: bool = True,
) -> Policy:
    seen: dict[str, int] = {}
    for i, rule in enumerate(model.rules):
        if rule.id in seen:
            first = lines.get(("rules", seen[rule.id], "id"))
            where = (
                f" (first used on line {first})"
                if first
                else f" (first used by rule #{seen[rule.id] + 1})"
            )
            raise PolicyError(
                f"duplicate rule id '{rule.id}'{where}",
                file=name,
                line=_line(lines, ("rules", i, "id")),
                hint="give every rule a unique id; decisions and audit records refer to it",
            )
        seen[rule.id] = i
    try:
        policy = Policy(model, version=digest, source=path, loaded_at=time.time())
    except Exception as exc:  # compile problems the schema could not catch
        raise PolicyError(f"cannot compile rules: {exc}", file=name) from None
    if run_tests:
        _run_cases(policy, model, lines, name)
    return policy


def run_case(policy: Policy, case: PolicyCase) -> str | None:
    """Run one policy test case; None when it passes, else what went wrong."""
    verdict = policy.evaluate(case.call.function, case.call.args, case.call.agent)
    expect = case.expect
    problems = []
    if verdict.action.value != expect.action:
        problems.append(f"expected {expect.action}, got {verdict.action.value}")
    if "rule" in expect.model_fields_set and verdict.rule_id != expect.rule:
        problems.append(f"expected rule {expect.rule!r}, got {verdict.rule_id!r}")
    if not problems:
        return None
    return "; ".join(problems) + f" (reason: {verdict.reason})"


def case_label(case: PolicyCase, index: int) -> str:
    """``'name'`` or ``#n`` for messages."""
    return f"'{case.name}'" if case.name else f"#{index + 1} ({case.call.function})"


def _run_cases(policy: Policy, model: PolicyFile, lines: Lines, name: str) -> None:
    failures = []
    for i, case in enumerate(model.tests):
        problem = run_case(policy, case)
        if problem is not None:
            failures.append((i, f"policy test {case_label(case, i)} failed: {problem}"))
    if failures:
        i, message = failures[0]
        more = f" (and {len(failures) - 1} more failing test(s))" if len(failures) > 1 else ""
        err = PolicyError(
            message + more,
            file=name,
            line=_line(lines, ("tests", i)),
            hint="fix the rules or the test's `expect`; `sentinel rules explain` shows why",
        )
        err.problems = [m for _, m in failures]  # type: ignore[attr-defined]
        raise err


# --- pydantic errors → located messages --------------------------------------------------------


def _validate(data: dict[str, Any], lines: Lines, name: str) -> PolicyFile:
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[int, int, str, str | None]] = []
        seen: set[tuple[Any, ...]] = set()
        for err in exc.errors():
            path = _clean_path(data, err["loc"])
            key = (path, err["type"] if err["type"] in ("missing", "extra_forbidden") else "")
            if key in seen:
                continue
            seen.add(key)
            message, hint = _describe(err, path, data)
            rank = 1 if err["type"] == "missing" else 0  # a missing field is often a typo's echo
            problems.append((rank, _line(lines, path) or 0, message, hint))
        problems.sort(key=lambda p: (p[0], p[1]))
        _, line, message, hint = problems[0]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s))"
        error = PolicyError(message, file=name, line=line or None, hint=hint)
        error.problems = [  # type: ignore[attr-defined]
            f"{name}:{ln}: {m}" + (f" (hint: {h})" if h else "") if ln else f"{name}: {m}"
            for _, ln, m, h in problems
        ]
        raise error from None


def _clean_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union tags from ``loc`` by walking the real data."""
    path: list[Any] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        # else: a union tag ('condition', 'str', …) or a missing key: not part of the data path
    return tuple(path)


def _line(lines: Lines, path: tuple[Any, ...]) -> int | None:
    for end in range(len(path), -1, -1):
        hit = lines.get(path[:end])
        if hit is not None:
            return hit
    return None


def _context(data: dict[str, Any], path: tuple[Any, ...]) -> str:
    if len(path) >= 2 and path[0] in ("rules", "tests") and isinstance(path[1], int):
        item = data[path[0]][path[1]]
        if path[0] == "rules":
            rid = item.get("id") if isinstance(item, dict) else None
            return f"rule '{rid}'" if isinstance(rid, str) and rid else f"rule #{path[1] + 1}"
        tname = item.get("name") if isinstance(item, dict) else None
        return f"test '{tname}'" if isinstance(tname, str) and tname else f"test #{path[1] + 1}"
    return "policy"


def _field_name(path: tuple[Any, ...]) -> str:
    rest = path[2:] if len(path) >= 2 and path[0] in ("rules", "tests") else path
    out = ""
    for part in rest:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(data: dict[str, Any], path: tuple[Any, ...]) -> type | None:
    """Which schema object lives at ``path`` (for listing its allowed keys)."""
    if not path:
        return PolicyFile
    strs = [p for p in path if isinstance(p, str)]
    last = strs[-1] if strs else ""
    if path[0] == "rules":
        if len(path) == 2:
            return Rule
        if len(path) == 3 and last == "limit":
            return Limit
        if last in ("conditions", "any", "all", "not"):
            node: Any = data
            for p in path:
                node = node[p]
            if isinstance(node, dict) and not ({"any", "all", "not"} & node.keys()):
                return Condition
            return None
    if path[0] == "tests":
        return {"call": CaseCall, "expect": CaseExpect}.get(
            last, PolicyCase if len(path) == 2 else None
        )
    return None


def _describe(err: Any, path: tuple[Any, ...], data: dict[str, Any]) -> tuple[str, str | None]:
    kind: str = err["type"]
    ctx = _context(data, path)
    loc = err["loc"]
    ctx_data = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(data, path[:-1])
        choices = list(allowed_keys(model)) if model is not None else []
        if model is Condition:
            choices += ["any", "all", "not"]
        guess = suggest(key, choices) if choices else None
        hint = (f"did you mean '{guess}'? " if guess else "") + (
            f"allowed: {', '.join(choices)}" if choices else "remove it"
        )
        return f"{ctx}: unknown field '{key}'" + _at(path[:-1]), hint
    if kind == "missing":
        key = str(loc[-1])
        return f"{ctx}: missing required field '{key}'" + _at(path), None
    field = str(path[-1]) if path and isinstance(path[-1], str) else _field_name(path)
    if kind == "literal_error":
        got = err.get("input")
        expected = str(ctx_data.get("expected", ""))
        if field in ("action", "default_action"):
            guess = _ACTION_GUESSES.get(str(got).lower()) or suggest(
                str(got), ["allow", "block", "require_approval"]
            )
            head = f"did you mean '{guess}'? " if guess else ""
            return (
                f"{ctx}: unknown action {got!r}",
                head + "use one of allow, block, require_approval",
            )
        return f"{ctx}: unknown {field} {got!r}", f"use one of {expected}"
    if kind in (
        "unknown_operator",
        "bad_value",
        "bad_regex",
        "bad_param",
        "missing_value",
        "bad_condition",
        "bad_limit",
        "bad_terms",
    ):
        return f"{ctx}: {err['msg']}" + _at(path), ctx_data.get("hint")
    if kind in _TYPE_WORDS:
        got = err.get("input")
        expected = _TYPE_WORDS[kind]
        if field in ("function_pattern", "agent_pattern"):
            expected = "a glob string or a list of glob strings"
        return (
            f"{ctx}: '{_field_name(path)}' must be {expected}, got {_shown(got)}",
            "quote strings; write numbers and true/false unquoted",
        )
    if kind in ("too_short", "string_too_short"):
        return f"{ctx}: '{_field_name(path)}' must not be empty", None
    if kind in ("greater_than", "string_too_long", "too_long"):
        return f"{ctx}: '{_field_name(path)}' {err['msg'].lower()}", None
    return f"{ctx}: '{_field_name(path)}': {err['msg']}", None


def _at(path: tuple[Any, ...]) -> str:
    inner = _field_name(path)
    return f" (at {inner})" if inner and len(path) > 2 else ""


def _shown(value: Any) -> str:
    text = repr(value)
    return (text if len(text) <= 60 else text[:57] + "...") + f" ({_kind(value)})"


def _kind(value: Any) -> str:
    return kind_of(value)


__all__ = [
    "DEFAULT_MAX_BYTES",
    "load_policy",
    "load_policy_bytes",
    "parse_policy",
    "policy_from_data",
    "run_case",
]
