"""A small MCP server (the SDK's ``MCPServer``) for the MCP proxy example: notes and email.

Run it behind Sentinel with ``sentinel mcp --rules examples/mcp/rules.yaml -- python
examples/mcp/notes_server.py`` (``client.py`` does exactly that)."""

from __future__ import annotations

from mcp.server import MCPServer

server = MCPServer("notes", version="1.0")
NOTES: dict[str, str] = {"welcome": "Sentinel guards this server's tools."}


@server.tool()
def list_notes() -> list[str]:
    """The names of all notes."""
    return sorted(NOTES)


@server.tool()
def add_note(name: str, text: str) -> str:
    """Add or replace a note."""
    NOTES[name] = text
    return f"saved {name}"


@server.tool()
def delete_note(name: str) -> str:
    """Delete a note."""
    NOTES.pop(name, None)
    return f"deleted {name}"


@server.tool()
def send_email(to: str, body: str) -> str:
    """Send an email (pretend)."""
    return f"sent {len(body)} characters to {to}"


@server.resource("notes://welcome", name="welcome", mime_type="text/plain")
def welcome() -> str:
    """The welcome note."""
    return NOTES.get("welcome", "")


if __name__ == "__main__":
    server.run("stdio")
