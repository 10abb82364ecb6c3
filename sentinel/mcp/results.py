"""The JSON-RPC answers the proxy writes itself: tool results with ``isError``, JSON-RPC errors
for malformed messages, and the note on a call an operator changed before approving it."""

from __future__ import annotations

from typing import Any

from mcp_types import JSONRPCError, JSONRPCResponse
from mcp_types.jsonrpc import ErrorData
from pydantic import ValidationError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


def tool_error(rid: Any, text: str) -> JSONRPCResponse:
    """A ``tools/call`` result the model reads: ``isError: true`` and ``text``."""
    return JSONRPCResponse(
        jsonrpc="2.0",
        id=rid,
        result={"content": [{"type": "text", "text": text}], "isError": True},
    )


def error_response(rid: Any, code: int, message: str) -> JSONRPCError:
    """A JSON-RPC error answer (``rid`` None: the request's id could not be read)."""
    return JSONRPCError(jsonrpc="2.0", id=rid, error=ErrorData(code=code, message=message))


def invalid_message(exc: Exception) -> JSONRPCError:
    """The answer to a line from the client that is not a JSON-RPC message."""
    if isinstance(exc, ValidationError):
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error_response(
                None, PARSE_ERROR, "Parse error: the message is not valid JSON (sentinel mcp)"
            )
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        what = errors[0]["msg"] if errors else "invalid"
        return error_response(
            None,
            INVALID_REQUEST,
            f"Invalid Request: not a JSON-RPC 2.0 message ({where or 'message'}: {what}) "
            "(sentinel mcp)",
        )
    return error_response(None, PARSE_ERROR, f"Parse error: {str(exc)[:300]} (sentinel mcp)")


def first_text(result: dict[str, Any]) -> str | None:
    """The first text content of a tool result, if any."""
    content = result.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    return text
    return None


def with_note(response: Any, note: str | None, *, first: bool = False) -> Any:
    """A tool result ``response`` with a text block ``note`` added to its content (before the
    rest with ``first``); a JSON-RPC error or None note: unchanged."""
    if not note or not isinstance(response, JSONRPCResponse):
        return response
    result = dict(response.result)
    content = result.get("content")
    blocks = list(content) if isinstance(content, list) else []
    block = {"type": "text", "text": note}
    blocks = [block, *blocks] if first else [*blocks, block]
    result["content"] = blocks
    return JSONRPCResponse(jsonrpc="2.0", id=response.id, result=result)
