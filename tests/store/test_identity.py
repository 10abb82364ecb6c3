"""Operator identity comes from the kernel, not from environment variables."""

from __future__ import annotations

import os
import pwd
import socket

import pytest

from sentinel.identity import current_operator, login_uid


def test_account_comes_from_real_uid_not_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "admin-impostor")
    monkeypatch.setenv("LOGNAME", "admin-impostor")
    op = current_operator("tui")
    assert op.account == pwd.getpwuid(os.getuid()).pw_name
    assert op.account != "admin-impostor"
    assert op.uid == os.getuid()
    assert op.host == socket.gethostname()
    assert op.channel == "tui"


def test_ssh_connection_and_display_name_are_provenance_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "203.0.113.5 51234 10.0.0.1 22")
    monkeypatch.setenv("SENTINEL_OPERATOR", "Alice Ops")
    op = current_operator()
    assert op.ssh_client == "203.0.113.5 51234"
    assert op.display_name == "Alice Ops"
    assert op.label.startswith(f"{op.account}@{op.host}")  # the account is never replaced
    assert "[Alice Ops]" in op.label and "via ssh 203.0.113.5" in op.label


def test_no_ssh_and_login_uid_matches_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    op = current_operator()
    assert op.ssh_client is None
    try:
        raw = int(open("/proc/self/loginuid").read())
    except OSError:
        raw = None
    expected = None if raw in (None, 4294967295) else raw
    assert login_uid() == expected == op.login_uid
