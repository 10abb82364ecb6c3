"""Located, hardened parsing of rules files (YAML and JSON) into plain data + line numbers.

Why not ``yaml.safe_load`` / ``json.loads``: both silently keep the last of two duplicate keys
(``default_action: block … default_action: allow`` gives ``allow``), neither reports where a
value came from, and YAML aliases allow a 400-byte document that expands to 10⁹ nodes. Here:

* YAML is *composed* (never constructed), aliases/anchors and explicit tags (``!!python/…``) are
  refused, and plain scalars are resolved with YAML 1.2 core rules, so ``NO``/``on`` stay
  strings and only ``true``/``false`` are booleans.
* JSON is read by a small position-tracking parser (strings and numbers via the ``json``
  module's own scanners), rejecting duplicate keys and ``NaN``/``Infinity``.
* Both produce ``(data, lines)`` where ``lines`` maps a path such as
  ``("rules", 2, "conditions", 0, "operator")`` to its 1-based line.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring as _scanstring  # type: ignore[attr-defined]
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]
Lines = dict[Path, int]

#: Deepest nesting accepted (a rules file needs about 8 levels).
MAX_DEPTH = 64


class ParseError(ValueError):
    """A syntax or structure problem at ``line`` (1-based, or None), with a ``hint``."""

    def __init__(self, message: str, line: int | None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.hint = hint


# --- YAML --------------------------------------------------------------------------------------


class _StrictComposer(yaml.SafeLoader):
    """A loader used only to *compose* nodes; it refuses aliases, anchors and explicit tags."""

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, AliasEvent):
            raise ParseError(
                f"YAML alias '*{event.anchor}' is not allowed",
                line,
                "write the value out in full (aliases can expand to billions of nodes)",
            )
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise ParseError(
                f"YAML anchor '&{event.anchor}' is not allowed",
                line,
                "write values out in full; anchors and aliases are not supported",
            )
        if isinstance(event, (ScalarEvent, SequenceStartEvent, MappingStartEvent)):
            tag = event.tag
            if tag is not None and tag != "!":
                shown = tag.replace("tag:yaml.org,2002:", "!!")
                raise ParseError(
                    f"YAML tag '{shown}' is not allowed",
                    line,
                    "remove the tag; quote the value if it must be a string",
                )
        return super().compose_node(parent, index)


# YAML 1.2 core schema for plain (unquoted) scalars.
_NULL = re.compile(r"(?:~|null|Null|NULL|)\Z")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+\Z")
_INT_OCT = re.compile(r"0o[0-7]+\Z")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)\Z")


def _resolve_plain(text: str) -> Any:
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _INT_OCT.match(text):
        return int(text[2:], 8)
    if _INT_HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return float("-inf") if text.startswith("-") else float("inf")
    if _NAN.match(text):
        return float("nan")
    return text


def _yaml_to_data(node: Node, path: Path, lines: Lines, depth: int) -> Any:
    line = node.start_mark.line + 1
    lines.setdefault(path, line)
    if depth > MAX_DEPTH:
        raise ParseError(f"nesting deeper than {MAX_DEPTH} levels", line, "flatten the structure")
    if isinstance(node, ScalarNode):
        if node.style is None:  # plain scalar: resolve by YAML 1.2 core rules
            return _resolve_plain(node.value)
        return node.value  # quoted or block scalar: always a string
    if isinstance(node, SequenceNode):
        return [
            _yaml_to_data(item, (*path, i), lines, depth + 1) for i, item in enumerate(node.value)
        ]
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                raise ParseError("a mapping key must be a plain name", key_line, None)
            key = key_node.value if key_node.style is not None else _resolve_plain(key_node.value)
            if not isinstance(key, str):
                key = key_node.value  # keys are names: `1: x` means the name "1"
            if key in out:
                raise ParseError(
                    f"duplicate key '{key}' (first defined on line {first_line[key]})",
                    key_line,
                    "remove one of them; a later key would silently override the earlier one",
                )
            first_line[key] = key_line
            child = (*path, key)
            lines[child] = key_line
            out[key] = _yaml_to_data(value_node, child, lines, depth + 1)
        return out
    raise ParseError("unsupported YAML node", line)  # pragma: no cover


def parse_yaml(text: str) -> tuple[Any, Lines]:
    """Parse one YAML document into plain data and a path → line map."""
    lines: Lines = {}
    try:
        loader = _StrictComposer(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except ParseError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "syntax error"
        if "expected a single document" in str(exc.context or ""):
            what = "more than one YAML document in the file"
        raise ParseError(f"YAML syntax error: {what}", line, _yaml_hint(text, line)) from None
    except yaml.YAMLError as exc:
        raise ParseError(f"YAML error: {exc}", None) from None
    except RecursionError:
        raise ParseError("nesting too deep", None, "flatten the structure") from None
    if node is None:
        raise ParseError("the rules file is empty", 1, "start with `rules:` (see docs)")
    return _yaml_to_data(node, (), lines, 0), lines


def _yaml_hint(text: str, line: int | None) -> str:
    if line is not None:
        src = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        if "\t" in src[: len(src) - len(src.lstrip())]:
            return "YAML indentation must use spaces, not tabs"
    return "check indentation and that every `key: value` pair has a space after the colon"


# --- JSON --------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


class _JsonReader:
    """A tiny recursive-descent JSON reader that knows the line of every value and key."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: Lines = {}
        # Offsets of line starts, for offset → line lookups.
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(self, pos: int) -> int:
        import bisect

        return bisect.bisect_right(self._starts, pos)

    def fail(self, message: str, pos: int, hint: str | None = None) -> ParseError:
        return ParseError(f"JSON syntax error: {message}", self.line_of(pos), hint)

    def skip(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()  # type: ignore[union-attr]

    def value(self, pos: int, path: Path, depth: int) -> tuple[Any, int]:
        text = self.text
        pos = self.skip(pos)
        self.lines.setdefault(path, self.line_of(pos))
        if depth > MAX_DEPTH:
            raise ParseError(f"nesting deeper than {MAX_DEPTH} levels", self.line_of(pos))
        if pos >= len(text):
            raise self.fail("unexpected end of file", pos)
        ch = text[pos]
        if ch == "{":
            return self.obj(pos + 1, path, depth)
        if ch == "[":
            return self.array(pos + 1, path, depth)
        if ch == '"':
            return self.string(pos)
        for word, val in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                return val, pos + len(word)
        m = _NUMBER.match(text, pos)
        if m:
            num = m.group(0)
            return (float(num) if m.group(1) or m.group(2) else int(num)), m.end()
        if text.startswith(("NaN", "Infinity", "-Infinity"), pos):
            raise self.fail("NaN and Infinity are not JSON", pos, "use a finite number")
        raise self.fail(f"unexpected character {ch!r}", pos)

    def string(self, pos: int) -> tuple[str, int]:
        try:
            return _scanstring(self.text, pos + 1, True)
        except json.JSONDecodeError as exc:
            raise self.fail(exc.msg, exc.pos) from None

    def obj(self, pos: int, path: Path, depth: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        pos = self.skip(pos)
        if self.text.startswith("}", pos):
            return out, pos + 1
        while True:
            pos = self.skip(pos)
            if not self.text.startswith('"', pos):
                if out and self.text.startswith("}", pos):
                    raise self.fail("trailing comma", pos, "JSON allows no comma before '}'")
                raise self.fail("expected a quoted key", pos, "JSON keys are in double quotes")
            key_line = self.line_of(pos)
            key, pos = self.string(pos)
            if key in out:
                raise ParseError(
                    f"duplicate key '{key}' (first defined on line {first[key]})",
                    key_line,
                    "remove one of them; a later key would silently override the earlier one",
                )
            first[key] = key_line
            pos = self.skip(pos)
            if not self.text.startswith(":", pos):
                raise self.fail("expected ':' after a key", pos)
            child = (*path, key)
            self.lines[child] = key_line
            out[key], pos = self.value(pos + 1, child, depth + 1)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos += 1
                continue
            if self.text.startswith("}", pos):
                return out, pos + 1
            raise self.fail("expected ',' or '}'", pos, "check for a missing comma")

    def array(self, pos: int, path: Path, depth: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        pos = self.skip(pos)
        if self.text.startswith("]", pos):
            return out, pos + 1
        while True:
            if out and self.text.startswith("]", self.skip(pos)):
                raise self.fail("trailing comma", self.skip(pos), "JSON allows no comma before ']'")
            item, pos = self.value(pos, (*path, len(out)), depth + 1)
            out.append(item)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos += 1
                continue
            if self.text.startswith("]", pos):
                return out, pos + 1
            raise self.fail("expected ',' or ']'", pos, "check for a missing comma")


def parse_json(text: str) -> tuple[Any, Lines]:
    """Parse a JSON document into plain data and a path → line map (duplicate keys rejected)."""
    reader = _JsonReader(text)
    data, pos = reader.value(0, (), 0)
    pos = reader.skip(pos)
    if pos != len(text):
        raise reader.fail("extra data after the document", pos)
    return data, reader.lines


def looks_like_json(text: str, filename: str) -> bool:
    """JSON for ``*.json`` files, YAML for ``*.yaml``/``*.yml``, otherwise by the first character."""
    lower = filename.lower()
    if lower.endswith(".json"):
        return True
    if lower.endswith((".yaml", ".yml")):
        return False
    return text.lstrip().startswith("{")
