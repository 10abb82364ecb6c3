"""A hand-written MCP server (no SDK) that breaks the protocol on purpose: its ``garbage`` tool
first writes lines that are not JSON-RPC messages to the wire, then answers properly; any other
tool name gets a JSON-RPC error (as some servers answer an unknown tool)."""

from __future__ import annotations

import json
import sys


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    method, rid = msg.get("method"), msg.get("id")
    if rid is None:
        continue  # notifications
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw-upstream", "version": "0.1"},
        }})  # fmt: skip
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [
            {"name": "garbage", "inputSchema": {"type": "object", "properties": {}}},
        ]}})  # fmt: skip
    elif method == "tools/call" and msg["params"].get("name") != "garbage":
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "Unknown tool"}})
    elif method == "tools/call":
        sys.stdout.write("this is not json-rpc\n")
        sys.stdout.write('{"jsonrpc": "2.0", "method": 7}\n')
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": "answered after garbage"}], "isError": False,
        }})  # fmt: skip
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no such method"}})
