"""The MCP gating proxy end to end: a real ``ClientSession`` (the SDK's client) over stdio to a
real ``sentinel mcp`` process, in front of a real MCP server written with the SDK's server API
(tests/mcp/upstream.py). Decisions come from other processes (``sentinel approve`` /
``sentinel deny``) or from the command center on the same database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from sentinel.store import Store
from tests.helpers import python_env
from tests.mcp.support import RAW_UPSTREAM, RULES, UPSTREAM, proxy_command, session, text_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def rules(write_rules) -> Path:
    return write_rules(RULES)


async def wait_pending(db: Path, timeout: float = 30.0) -> object:
    """The one pending request, once the proxy has queued it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            with Store(db) as store:
                pending = store.list_pending()
            if pending:
                return pending[0]
        await anyio.sleep(0.05)
    raise AssertionError("no request was queued")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *args],
        env=python_env(SENTINEL_REQUIRE_SIGNED="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_allowed_blocked_and_everything_else_passes_through(rules, db_path):
    async with session(rules, db_path) as s:
        listed = await s.list_tools()
        by_name = {t.name: t for t in listed.tools}
        assert by_name["echo"].input_schema["properties"]["text"]["type"] == "string"
        assert "delete_file" in by_name  # listed: the policy decides calls, not the listing

        ok = await s.call_tool("echo", {"text": "hi"})
        assert not ok.is_error and text_of(ok) == "echo: hi"
        assert ok.structured_content == {"result": "echo: hi"}  # the upstream's answer, intact

        blocked = await s.call_tool("delete_file", {"path": "/srv/data"})
        assert blocked.is_error
        assert "Deleting files is disabled for agents" in text_of(blocked)
        assert "delete_file not executed" in text_of(blocked)
        # The rule's deny_hint ends the text: what the model may do instead.
        assert text_of(blocked).endswith("Hint: move the file to /trash with move_file instead.")

        resource = await s.read_resource("memo://greeting")
        assert resource.contents[0].text == "hello from the upstream"
        prompt = await s.get_prompt("review", {"code": "x = 1"})
        assert prompt.messages[0].content.text == "Please review: x = 1"


async def test_hide_blocked_leaves_out_tools_blocked_for_every_argument(rules, db_path):
    async with session(rules, db_path, "--hide-blocked") as s:
        names = {t.name for t in (await s.list_tools()).tools}
    assert "delete_file" not in names
    assert {"echo", "read_file", "slow"} <= names  # conditional rules keep a tool listed


async def test_approved_from_the_cli_with_progress_while_waiting(rules, db_path):
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with session(rules, db_path, "--progress-interval", "0.2") as s:
        result: list[object] = []

        async def call() -> None:
            result.append(
                await s.call_tool(
                    "read_file", {"path": "/etc/hosts"}, progress_callback=on_progress
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            record = await wait_pending(db_path)
            # Other requests on the session are not held up by the waiting call.
            echo = await s.call_tool("echo", {"text": "meanwhile"})
            assert text_of(echo) == "echo: meanwhile"
            assert record.function == "read_file"
            assert record.context["mcp"]["server"] == "upstream-test"
            assert record.context["mcp"]["tool"] == "read_file"
            assert record.context["mcp"]["client"] == "test-client"
            assert record.context["mcp"]["client_version"] == "9.9"
            assert record.agent_id == "mcp:upstream-test:test-client"
            assert record.reason == "Reading /etc/hosts needs approval"
            shown = cli("show", record.id, "--db", str(db_path))
            assert "upstream-test" in shown.stdout and "test-client" in shown.stdout
            await anyio.sleep(0.6)
            out = cli("approve", record.id, "--db", str(db_path), "--reason", "fine")
            assert out.returncode == 0, out.stderr
        (answer,) = result
    assert not answer.is_error and text_of(answer) == "contents of /etc/hosts"
    assert progress and all("waiting for an operator" in (m or "") for _, m in progress)
    values = [v for v, _ in progress]
    assert values == sorted(values)


async def test_denied_and_expired_become_tool_errors(rules, db_path):
    async with session(rules, db_path, "--timeout", "1.5") as s:
        result: list[object] = []

        async def call(path: str) -> None:
            result.append(await s.call_tool("read_file", {"path": path}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "/etc/shadow")
            record = await wait_pending(db_path)
            out = cli("deny", record.id, "--db", str(db_path), "--reason", "no secrets")
            assert out.returncode == 0, out.stderr
        denied = result.pop()
        assert denied.is_error
        assert "read_file not executed" in text_of(denied) and "denied" in text_of(denied)

        expired = await s.call_tool("read_file", {"path": "/etc/passwd"})  # nobody decides
    assert expired.is_error and "read_file not executed" in text_of(expired)
    assert "approval timed out after 1.5s" in text_of(expired)
    with Store(db_path) as store:
        assert store.get(record.id).status == "denied"


async def test_client_cancel_cancels_the_queued_request(rules, db_path):
    async with session(rules, db_path) as s:
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.call_tool, "slow", {"seconds": 0})
            record = await wait_pending(db_path)
            tg.cancel_scope.cancel()  # the SDK sends notifications/cancelled
        deadline = time.monotonic() + 20
        while True:
            with Store(db_path) as store:
                status = store.get(record.id).status
            if status != "pending" or time.monotonic() > deadline:
                break
            await anyio.sleep(0.05)
        assert status == "cancelled"
        # The session goes on.
        assert text_of(await s.call_tool("echo", {"text": "after"})) == "echo: after"


async def test_upstream_crash_becomes_a_tool_error_never_a_hang(rules, db_path):
    async with session(rules, db_path) as s:
        with anyio.fail_after(30):
            crashed = await s.call_tool("crash", {})
        assert crashed.is_error and "closed the connection" in text_of(crashed)
        with anyio.fail_after(30):
            later = await s.call_tool("echo", {"text": "x"})
        assert later.is_error and "echo not executed" in text_of(later)
        with anyio.fail_after(30), pytest.raises(Exception, match="closed the connection"):
            await s.list_tools()


async def test_ten_megabyte_argument(rules, db_path):
    blob = "x" * (10 * 1024 * 1024)
    async with session(rules, db_path) as s:
        result = await s.call_tool("size", {"blob": blob})
        blocked = await s.call_tool("delete_file", {"path": blob})  # decided and audited
    assert text_of(result) == f"{len(blob)} characters"
    assert blocked.is_error and "Deleting files is disabled" in text_of(blocked)


async def test_lookalike_tool_name_is_not_allowed_by_the_ascii_rule(rules, db_path):
    async with session(rules, db_path) as s:
        # "rеad_file" with a Cyrillic е: the allow rule for read_file must not let it through.
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.call_tool, "r\u0435ad_file", {"path": "/tmp/notes"})
            record = await wait_pending(db_path)
            tg.cancel_scope.cancel()
        assert record.function == "r\u0435ad_file"
        assert "imitates 'read_file'" in record.reason
        # A look-alike of a blocked name is blocked as that name would be.
        blocked = await s.call_tool("d\u0435lete_file", {"path": "/srv"})
        assert blocked.is_error and "imitates 'delete_file'" in text_of(blocked)
        assert "Deleting files is disabled" in text_of(blocked)


async def test_prefix_makes_rules_see_server_dot_tool(write_rules, db_path):
    rules = write_rules(
        """
        version: "1.0"
        default_action: allow
        rules:
          - id: files_echo
            function_pattern: "files.echo"
            action: block
            message: "no echo on files"
        """
    )
    async with session(rules, db_path, "--name", "files") as s:
        result = await s.call_tool("echo", {"text": "x"})
    assert result.is_error and "no echo on files" in text_of(result)


def test_malformed_json_rpc_from_the_client_gets_an_error_and_the_session_goes_on(rules, db_path):
    proc = subprocess.Popen(
        proxy_command(rules, db_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(SENTINEL_REQUIRE_SIGNED="0"),
    )
    try:
        assert proc.stdin and proc.stdout
        proc.stdin.write("{this is not json\n")
        proc.stdin.write('{"jsonrpc": "2.0", "method": 7}\n')
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        }
        proc.stdin.write(json.dumps(init) + "\n")
        proc.stdin.flush()
        first, second, third = (json.loads(proc.stdout.readline()) for _ in range(3))
        assert first["id"] is None and first["error"]["code"] == -32700
        assert second["id"] is None and second["error"]["code"] == -32600
        assert third["id"] == 1 and third["result"]["serverInfo"]["name"] == "upstream-test"
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)


async def test_malformed_json_rpc_from_the_upstream_is_skipped(rules, db_path):
    async with session(rules, db_path, upstream=[sys.executable, str(RAW_UPSTREAM)]) as s:
        with anyio.fail_after(30):
            result = await s.call_tool("garbage", {})
    assert not result.is_error and text_of(result) == "answered after garbage"


def test_no_upstream_is_a_clear_error(rules, db_path):
    out = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "mcp", "--rules", str(rules)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "give exactly one upstream" in out.stderr


def test_missing_rules_and_missing_upstream_command_are_clear_errors(rules, db_path, tmp_path):
    missing = tmp_path / "nope.yaml"
    out = subprocess.run(
        proxy_command(missing, db_path),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2 and f"Rules file not found: {missing}" in out.stderr
    out = subprocess.run(
        proxy_command(rules, db_path, upstream=[str(tmp_path / "no-such-server")]),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1
    assert "cannot start the upstream" in out.stderr and "no-such-server" in out.stderr


async def test_direct_session_sees_the_same_schemas(rules, db_path):
    """The listing through the proxy is the upstream's own, schema for schema."""
    params = StdioServerParameters(command=sys.executable, args=[str(UPSTREAM)], env=python_env())
    async with stdio_client(params) as (read, write), ClientSession(read, write) as direct:
        await direct.initialize()
        expected = (await direct.list_tools()).model_dump()
    async with session(rules, db_path) as s:
        through = (await s.list_tools()).model_dump()
    assert through == expected


async def test_approved_from_the_command_center(rules, db_path):
    from sentinel_tui.app import SentinelApp
    from tests.tui.conftest import wait_for

    async with session(rules, db_path) as s:
        result: list[object] = []

        async def call() -> None:
            result.append(await s.call_tool("read_file", {"path": "/etc/motd"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await wait_pending(db_path)
            app = SentinelApp(db_path, None, tick_interval=0)  # type: ignore[arg-type]
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: app.queue.card.request_id is not None)
                card = app.queue.card.text.plain
                assert "mcp · upstream-test · read_file  client test-client 9.9" in card
                assert "Reading /etc/motd needs approval" in card
                await pilot.press("a")
                await wait_for(pilot, lambda: bool(result))
        (answer,) = result
    assert not answer.is_error and text_of(answer) == "contents of /etc/motd"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_streamable_http_upstream(rules, db_path):
    import socket

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--http", str(port)],
        env=python_env(),
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                await anyio.sleep(0.05)
        async with session(rules, db_path, url=f"http://127.0.0.1:{port}/mcp") as s:
            ok = await s.call_tool("echo", {"text": "over http"})
            blocked = await s.call_tool("delete_file", {"path": "/x"})
            resource = await s.read_resource("memo://greeting")
        assert text_of(ok) == "echo: over http"
        assert blocked.is_error and "Deleting files is disabled" in text_of(blocked)
        assert resource.contents[0].text == "hello from the upstream"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_plain_http_to_another_machine_is_refused(rules, db_path):
    out = subprocess.run(
        proxy_command(rules, db_path, url="http://mcp.example.com/mcp"),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "plain http to another machine" in out.stderr


async def test_audit_names_server_and_client_and_redacts(write_rules, db_path):
    rules = write_rules(
        """
        version: "1.0"
        default_action: allow
        rules:
          - id: no_echo_of_secrets
            function_pattern: "upstream-test.echo"
            conditions:
              - param: text
                operator: contains
                value: "hunter2"
            action: block
            message: "no secrets"
        """
    )
    async with session(rules, db_path, "--prefix") as s:
        blocked = await s.call_tool("echo", {"text": "hunter2", "api_key": "sk-live-123"})
        assert blocked.is_error and "no secrets" in text_of(blocked)
    with Store(db_path) as store:
        (event,) = [e for e in store.history(limit=50) if e.kind == "blocked"]
    assert event.function == "upstream-test.echo"
    assert event.agent_id == "mcp:upstream-test:test-client"
    assert event.rule_id == "no_echo_of_secrets"
    # Redaction applies to MCP arguments like any others.
    assert event.data["args"] == {"api_key": "[REDACTED]", "text": "hunter2"}


async def test_approved_with_edited_arguments_runs_the_edit_and_says_so(rules, db_path):
    async with session(rules, db_path) as s:
        await s.list_tools()  # the input schemas: recorded with the request, so edits are typed
        result: list[object] = []

        async def call() -> None:
            result.append(await s.call_tool("read_file", {"path": "/etc/shadow"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            record = await wait_pending(db_path)
            out = cli("approve", record.id, "--db", str(db_path), "--set", "path=/etc/hostname")
            assert out.returncode == 0, out.stderr + out.stdout
        (answer,) = result
    assert not answer.is_error
    note, body = (block.text for block in answer.content)
    assert note.startswith("Note: an operator changed this read_file call before approving it")
    assert "/etc/shadow" in note and "/etc/hostname" in note
    assert body == "contents of /etc/hostname"  # the upstream ran the edited call


async def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert proc.poll() is None, "the process exited"
            assert time.monotonic() < deadline, "nothing listens"
            await anyio.sleep(0.05)


async def test_listen_serves_streamable_http_on_loopback_with_a_token(rules, db_path, tmp_path):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    token = "t0ken-" + "x" * 20
    (tmp_path / "token").write_text(token + "\n")
    port = _free_port()
    proc = subprocess.Popen(
        proxy_command(
            rules, db_path, "--listen", f"127.0.0.1:{port}", "--token-file", str(tmp_path / "token")
        ),
        env=python_env(SENTINEL_REQUIRE_SIGNED="0"),
        stderr=subprocess.PIPE,
    )
    try:
        await _wait_port(port, proc)
        url = f"http://127.0.0.1:{port}/mcp"
        async with httpx2.AsyncClient() as plain:
            refused = await plain.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with (
            client,
            streamable_http_client(url, http_client=client) as (read, write),
            ClientSession(read, write) as s,
        ):
            await s.initialize()
            ok = await s.call_tool("echo", {"text": "via http"})
            blocked = await s.call_tool("delete_file", {"path": "/x"})
            result: list[object] = []

            async def call() -> None:
                result.append(await s.call_tool("read_file", {"path": "/etc/hosts"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                record = await wait_pending(db_path)
                assert record.context["mcp"]["transport"] == "http"
                out = cli("approve", record.id, "--db", str(db_path))
                assert out.returncode == 0, out.stderr
        assert text_of(ok) == "echo: via http"
        assert blocked.is_error and "Deleting files is disabled" in text_of(blocked)
        assert text_of(result[0]) == "contents of /etc/hosts"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("listen", "message"),
    [("0.0.0.0:8765", "only on a loopback address"), ("10.1.2.3:80", "only on a loopback")],
)
def test_listen_refuses_non_loopback_addresses(rules, db_path, tmp_path, listen, message):
    (tmp_path / "token").write_text("x" * 32)
    out = subprocess.run(
        proxy_command(rules, db_path, "--listen", listen, "--token-file", str(tmp_path / "token")),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and message in out.stderr


def test_listen_needs_a_token(rules, db_path):
    out = subprocess.run(
        proxy_command(rules, db_path, "--listen", "127.0.0.1:8765"),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "needs a bearer token" in out.stderr


async def test_limits_and_anomaly_baselines_apply_per_tool(write_rules, db_path):
    rules = write_rules(
        """
        version: "1.0"
        default_action: allow
        rules:
          - id: echo_rate
            function_pattern: echo
            limit: {count: 2, window: 1h, per: agent}
            action: block
            message: "at most 2 echoes an hour"
        """
    )
    async with session(rules, db_path, SENTINEL_ANOMALY="1") as s:
        first = await s.call_tool("echo", {"text": "1"})
        second = await s.call_tool("echo", {"text": "2"})
        third = await s.call_tool("echo", {"text": "3"})
        read = await s.call_tool("read_file", {"path": "/tmp/a"})
    assert not first.is_error and not second.is_error and not read.is_error
    assert third.is_error and "echo not executed" in text_of(third)
    with Store(db_path) as store:
        agent = "mcp:upstream-test:test-client"
        assert store.baseline_for_call(agent, "echo")  # learned from the calls that ran
        assert store.baseline_for_call(agent, "read_file")


async def test_upstream_errors_reach_the_model_as_tool_errors(rules, db_path):
    async with session(rules, db_path) as s:
        # The SDK server answers these with isError results: passed through as they are.
        unknown = await s.call_tool("no_such_tool", {})
        bad_args = await s.call_tool("echo", {"wrong": 1})
    assert unknown.is_error and text_of(unknown) == "Unknown tool: no_such_tool"
    assert bad_args.is_error and "validation error" in text_of(bad_args)
    # A server answering with a JSON-RPC error: the model still gets a tool result to read.
    async with session(rules, db_path, upstream=[sys.executable, str(RAW_UPSTREAM)]) as s:
        failed = await s.call_tool("other", {})
    assert failed.is_error
    assert text_of(failed) == (
        "other failed: the upstream MCP server answered with error -32602: Unknown tool"
    )


async def test_cancel_after_forwarding_reaches_the_upstream(rules, db_path):
    """An approved call already running upstream: the client's cancellation is passed on, the
    upstream's late answer (if any) is dropped, and the session goes on."""
    upstream_progress = anyio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        if total == 2:  # the upstream's own report (the proxy's have no total)
            upstream_progress.set()

    async with session(rules, db_path) as s:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: s.call_tool("slow", {"seconds": 1.5}, progress_callback=on_progress)
            )
            record = await wait_pending(db_path)
            assert cli("approve", record.id, "--db", str(db_path)).returncode == 0
            with anyio.fail_after(30):
                await upstream_progress.wait()  # running upstream now
            tg.cancel_scope.cancel()
        with anyio.fail_after(30):
            assert text_of(await s.call_tool("echo", {"text": "next"})) == "echo: next"
        await anyio.sleep(2)  # past the upstream's answer, had it not been cancelled
        assert text_of(await s.call_tool("echo", {"text": "later"})) == "echo: later"
    with Store(db_path) as store:
        assert store.get(record.id).status == "approved"


async def test_a_standing_grant_lets_the_same_call_through_without_waiting(rules, db_path):
    async with session(rules, db_path) as s:
        result: list[object] = []

        async def call() -> None:
            result.append(await s.call_tool("read_file", {"path": "/etc/hosts"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            record = await wait_pending(db_path)
            out = cli("approve", record.id, "--db", str(db_path), "--grant", "1h")
            assert out.returncode == 0, out.stderr
        assert text_of(result[0]) == "contents of /etc/hosts"
        with anyio.fail_after(20):  # no request this time: the grant allows it
            again = await s.call_tool("read_file", {"path": "/etc/hosts"})
        assert text_of(again) == "contents of /etc/hosts"
    with Store(db_path) as store:
        assert store.list_pending() == []


async def test_sampling_and_logging_pass_through_both_ways(rules, db_path):
    from mcp_types import CreateMessageResult, TextContent

    asked: list[str] = []
    logged: list[object] = []

    async def sampling(context: object, params: object) -> CreateMessageResult:
        asked.append(params.messages[0].content.text)  # type: ignore[attr-defined]
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text="forty-two"), model="scripted"
        )

    async def logging_callback(params: object) -> None:
        logged.append(params)

    options = {"sampling_callback": sampling, "logging_callback": logging_callback}
    async with session(rules, db_path, client_options=options) as s:
        result = await s.call_tool("ask_model", {"question": "the answer?"})
    assert text_of(result) == "the model said: forty-two"
    assert asked == ["the answer?"]  # the upstream's request reached the client, and back
    assert any("asking the model" in str(getattr(p, "data", "")) for p in logged)


async def test_an_upstream_that_exits_at_once_fails_initialize_clearly(rules, db_path):
    command = proxy_command(rules, db_path, upstream=[sys.executable, "-c", "pass"])
    params = StdioServerParameters(
        command=command[0], args=command[1:], env=python_env(SENTINEL_REQUIRE_SIGNED="0")
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        with anyio.fail_after(30), pytest.raises(Exception, match="closed the connection"):
            await s.initialize()
