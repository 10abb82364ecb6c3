"""Where the API tokens file lives, who may have written it, and how the server re-reads it
(:mod:`sentinel.server.auth`, in process; tests/faults/test_tokens_file.py does it over HTTP)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sentinel import secure_files
from sentinel.errors import SentinelConfigError
from sentinel.server import auth
from sentinel.server.auth import TokenEntry, TokenRegistry, add_token, hash_token, parse_env_tokens

ALICE = "snt_alice-operator-token-0123456789"
BOB = "snt_bob-operator-token-0123456789ab"


def entry(name: str, token: str, role: str = "operator") -> TokenEntry:
    return TokenEntry(name, role, hash_token(token), 1.0)


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "api-tokens.json"
    auth.write_tokens_file(path, [entry("alice", ALICE)])
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_is_per_user_configuration(tmp_path: Path) -> None:
    home = str(tmp_path)
    assert auth.default_tokens_path({"SENTINEL_CONFIG_DIR": "/etc/s", "XDG_CONFIG_HOME": "/x"}) == (
        Path("/etc/s/api-tokens.json")
    )
    assert auth.default_tokens_path({"XDG_CONFIG_HOME": "/x"}) == Path(
        "/x/sentinel/api-tokens.json"
    )
    old = os.environ.get("HOME")
    os.environ["HOME"] = home
    try:
        assert auth.default_tokens_path({}) == tmp_path / ".config/sentinel/api-tokens.json"
    finally:
        if old is not None:
            os.environ["HOME"] = old
    db = tmp_path / "db" / "sentinel.db"
    assert auth.legacy_tokens_path(db) == db.parent / "api-tokens.json"
    with pytest.raises(SentinelConfigError, match="inside the database folder"):
        auth.check_outside_db_folder(db.parent / "sub" / "t.json", db)
    auth.check_outside_db_folder(tmp_path / "elsewhere" / "t.json", db)


def test_written_files_are_0600_in_a_0700_folder_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "a" / "b" / "api-tokens.json"
        auth.write_tokens_file(path, [entry("alice", ALICE)])
    finally:
        os.umask(old)
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    assert [p.name for p in path.parent.iterdir()] == ["api-tokens.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tokens: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tokens.read_bytes()

    def broken(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    # The disk fills up while the temp file is being written (after it was created).
    monkeypatch.setattr(secure_files.os, "fsync", broken)
    with pytest.raises(OSError, match="No space"):
        auth.write_tokens_file(tokens, [entry("bob", BOB)])
    assert tokens.read_bytes() == before
    assert [p.name for p in tokens.parent.iterdir()] == ["api-tokens.json"]


def test_writing_into_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o770)
    with pytest.raises(SentinelConfigError, match=r"shared has mode 0770: writable by group"):
        auth.write_tokens_file(folder / "api-tokens.json", [entry("alice", ALICE)])
    assert not (folder / "api-tokens.json").exists()


def test_a_folder_above_that_others_can_write_is_refused_unless_sticky(tmp_path: Path) -> None:
    above = tmp_path / "above"
    path = above / "config" / "api-tokens.json"
    auth.write_tokens_file(path, [entry("alice", ALICE)])
    above.chmod(0o777)  # anyone could rename "config" away and put their own in its place
    with pytest.raises(SentinelConfigError, match=rf"folder {above} has mode 0777"):
        auth.read_tokens_file(path)
    above.chmod(0o1777)  # sticky, like /tmp: only the owner may rename what is in it
    assert [e.name for e in auth.read_tokens_file(path)] == ["alice"]


def test_only_a_regular_file_is_read(tokens: Path) -> None:
    link = tokens.with_name("link.json")
    link.symlink_to(tokens)  # a link is followed and the real file is checked
    assert [e.name for e in auth.read_tokens_file(link)] == ["alice"]
    fifo = tokens.with_name("fifo.json")
    os.mkfifo(fifo, 0o600)  # would block a plain open() for ever
    with pytest.raises(SentinelConfigError, match="not a regular file"):
        auth.read_tokens_file(fifo)


def test_a_change_is_picked_up_and_a_broken_one_keeps_the_last_good(tokens: Path) -> None:
    reg = TokenRegistry.load(tokens, f"bob:{BOB}")
    assert reg.authenticate(ALICE) is not None and reg.authenticate(BOB) is not None
    good = tokens.read_text()
    tokens.write_text(good[: len(good) // 2])  # half-written by a non-atomic editor
    assert reg.authenticate(ALICE) is not None
    assert reg.last_error is not None and str(tokens) in reg.last_error
    assert "not valid JSON" in reg.last_error
    tokens.write_text(json.dumps({"tokens": {"carol": {"sha256": hash_token(BOB + "c")}}}))
    assert reg.authenticate(BOB + "c") is not None  # the repaired file is in force
    assert reg.authenticate(ALICE) is None and reg.last_error is None
    tokens.chmod(0o644)  # not writable by others: still fine
    assert reg.authenticate(BOB + "c") is not None
    tokens.chmod(0o646)
    auth.write_tokens_file(tokens.with_name("x.json"), [])  # an unrelated write in the folder
    assert reg.authenticate(BOB + "c") is not None  # the last good tokens, not the unsafe file
    assert reg.last_error is not None and "has mode 0646: writable by others" in reg.last_error


def test_a_missing_file_withdraws_every_file_token(tokens: Path) -> None:
    reg = TokenRegistry.load(tokens, f"bob:{BOB}")
    tokens.unlink()
    assert reg.authenticate(ALICE) is None
    assert reg.authenticate(BOB) is not None  # the environment's tokens are the process's own
    assert len(reg) == 1
    auth.write_tokens_file(tokens, [entry("alice", ALICE)])  # put back by the operator
    assert reg.authenticate(ALICE) is not None


def test_start_up_is_strict(tokens: Path) -> None:
    tokens.chmod(0o660)
    with pytest.raises(SentinelConfigError, match=rf"{tokens} has mode 0660: writable by group"):
        TokenRegistry.load(tokens)
    tokens.chmod(0o600)
    tokens.write_text("{")
    with pytest.raises(SentinelConfigError, match="not valid JSON"):
        TokenRegistry.load(tokens)
    tokens.unlink()
    assert len(TokenRegistry.load(tokens)) == 0


@pytest.mark.parametrize("via_link", [False, True])
def test_an_unchanged_file_is_not_read_again(
    tokens: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_link: bool
) -> None:
    path = tokens
    if via_link:  # the stamp is taken the same way on load and on each request
        path = tmp_path / "elsewhere" / "api-tokens.json"
        path.parent.mkdir(mode=0o700)
        path.symlink_to(tokens)
    reg = TokenRegistry.load(path)
    reads: list[Path] = []
    real_read = auth._read_checked

    def counting(p: Path) -> tuple[list[TokenEntry], auth.Stamp]:
        reads.append(p)
        return real_read(p)

    monkeypatch.setattr(auth, "_read_checked", counting)
    for _ in range(3):
        assert reg.authenticate(ALICE) is not None
    assert reads == []
    tokens.write_text(tokens.read_text() + " ")  # a change is read, once
    for _ in range(3):
        assert reg.authenticate(ALICE) is not None
    assert reads == [path]


def test_the_old_place_refusal_lists_tokens_and_never_hangs(tmp_path: Path) -> None:
    db = tmp_path / "db" / "sentinel.db"
    legacy = auth.legacy_tokens_path(db)
    target = tmp_path / "config" / "api-tokens.json"
    auth.write_tokens_file(legacy, [entry("alice", ALICE), entry("mallory", BOB)])
    message = str(auth.legacy_refusal(legacy, target))
    assert "alice (operator), mallory (operator)" in message
    assert f"mv -n {legacy} {target}" in message and "agents write" in message
    legacy.unlink()
    os.mkfifo(legacy, 0o600)  # an agent's trap: reading it would block the command for ever
    message = str(auth.legacy_refusal(legacy, target))
    assert "tokens: unreadable" in message and str(legacy) in message


def test_serve_itself_refuses_a_tokens_file_in_the_database_folder(tmp_path: Path) -> None:
    from sentinel.server.run import serve

    db = tmp_path / "sentinel.db"
    auth.write_tokens_file(tmp_path / "t.json", [entry("alice", ALICE)])
    with pytest.raises(SentinelConfigError, match="inside the database folder"):
        serve(db_path=db, tokens_path=tmp_path / "t.json", port=1)


def test_tokens_carry_groups_in_the_file_and_the_environment(tokens: Path) -> None:
    token = add_token(tokens, "alice", "operator", ["finance", "ops"])
    assert json.loads(tokens.read_text())["tokens"]["alice"]["groups"] == ["finance", "ops"]
    principal = TokenRegistry.load(tokens).authenticate(token)
    assert principal is not None and principal.groups == ("finance", "ops")
    plain = add_token(tokens, "bob")
    assert "groups" not in json.loads(tokens.read_text())["tokens"]["bob"]  # the old format
    bob = TokenRegistry.load(tokens).authenticate(plain)
    assert bob is not None and bob.groups == ()

    env = parse_env_tokens("a:snt_aaaaaaaaaaaaaaaa:operator:finance+ops,b:snt_bbbbbbbbbbbbbbbb::x")
    assert [(e.name, e.role, e.groups) for e in env] == [
        ("a", "operator", ("finance", "ops")),
        ("b", "operator", ("x",)),
    ]
    with pytest.raises(SentinelConfigError, match="item 1: field 'groups': 'bad group'"):
        parse_env_tokens("a:snt_aaaaaaaaaaaaaaaa:operator:bad group")

    data = json.loads(tokens.read_text())
    data["tokens"]["alice"]["groups"] = "finance"
    tokens.write_text(json.dumps(data))
    with pytest.raises(SentinelConfigError) as err:
        TokenRegistry.load(tokens)
    assert f"tokens file {tokens}, token 'alice': field 'groups' must be a list" in str(err.value)
