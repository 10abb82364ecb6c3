"""The trusted operators file: agents read it, nobody but its owner changes it, bad input is named."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from sentinel.errors import SentinelConfigError
from sentinel.trust import OperatorKey
from sentinel.trust.operators import (
    add_operator,
    load_operators,
    operators_path,
    revoke_operator,
)


def test_add_list_revoke_round_trip(ops_file: Path, make_key, alice: OperatorKey) -> None:
    bob = make_key("bob")
    add_operator(ops_file, "bob", bob.public_key, ["ops", "finance", "ops"])
    trusted = load_operators(ops_file)
    assert [o.name for o in trusted.operators] == ["alice", "bob"]
    assert trusted.by_name["bob"].groups == ("ops", "finance")
    assert trusted.by_key[alice.key_id].name == "alice"
    assert stat.S_IMODE(os.stat(ops_file).st_mode) == 0o644  # agents may read it
    done = revoke_operator(ops_file, "alice", at=1000.0)
    assert done.revoked_at == 1000.0
    again = load_operators(ops_file)
    assert again.by_name["alice"].revoked_at == 1000.0 and again.by_name["bob"].revoked_at is None
    with pytest.raises(SentinelConfigError, match="already revoked"):
        revoke_operator(ops_file, "alice")
    with pytest.raises(SentinelConfigError, match="no operator named 'carol'"):
        revoke_operator(ops_file, "carol")


def test_writes_keep_the_mode_the_admin_set(ops_file: Path, make_key, alice: OperatorKey) -> None:
    os.chmod(ops_file, 0o600)
    add_operator(ops_file, "bob", make_key("bob").public_key)
    assert stat.S_IMODE(os.stat(ops_file).st_mode) == 0o600
    assert sorted(p.name for p in ops_file.parent.iterdir()) == ["operators.json"]


def test_duplicate_name_or_key_is_refused_and_nothing_is_lost(
    ops_file: Path, make_key, alice: OperatorKey
) -> None:
    before = ops_file.read_bytes()
    with pytest.raises(SentinelConfigError, match="an operator named 'alice' is already trusted"):
        add_operator(ops_file, "alice", make_key("other").public_key)
    with pytest.raises(SentinelConfigError, match="this key is already trusted as 'alice'"):
        add_operator(ops_file, "alias", alice.public_key)
    with pytest.raises(SentinelConfigError, match=r"field 'public_key'.*holds 3 bytes"):
        add_operator(ops_file, "carol", "ed25519:AAAA")
    with pytest.raises(SentinelConfigError, match=r"field 'name'"):
        add_operator(ops_file, "-bad name", make_key("x").public_key)
    assert ops_file.read_bytes() == before


@pytest.mark.parametrize(
    "mode, who", [(0o664, "group"), (0o646, "others"), (0o666, "group and others")]
)
def test_a_file_others_can_write_is_refused(
    ops_file: Path, make_key, alice: OperatorKey, mode: int, who: str
) -> None:
    os.chmod(ops_file, mode)
    with pytest.raises(SentinelConfigError) as info:
        load_operators(ops_file)
    text = str(info.value)
    assert f"operators file {ops_file} has mode {mode:04o}: writable by {who}" in text
    assert f"chmod 644 {ops_file}" in text
    before = ops_file.read_bytes()
    with pytest.raises(SentinelConfigError, match="operators file refused"):
        add_operator(ops_file, "bob", make_key("bob").public_key)
    assert ops_file.read_bytes() == before


def test_a_folder_others_can_write_is_refused(ops_file: Path, alice: OperatorKey) -> None:
    os.chmod(ops_file.parent, 0o777)
    with pytest.raises(SentinelConfigError, match=rf"folder {ops_file.parent} has mode 0777"):
        load_operators(ops_file)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_file_owned_by_another_user_is_refused(ops_file: Path, alice: OperatorKey) -> None:
    os.chown(ops_file, 54321, 54321)
    with pytest.raises(SentinelConfigError, match=r"owned by uid 54321, not by this user"):
        load_operators(ops_file)


def test_a_symlink_is_followed_only_to_a_safe_file(
    ops_file: Path, alice: OperatorKey, tmp_path: Path
) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(ops_file)
    assert [o.name for o in load_operators(link).operators] == ["alice"]
    os.chmod(ops_file, 0o666)
    with pytest.raises(SentinelConfigError, match="writable by group and others"):
        load_operators(link)


def _write(path: Path, data: object) -> None:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    os.chmod(path, 0o644)


def test_malformed_files_name_the_file_the_entry_and_the_field(
    ops_file: Path, make_key, alice: OperatorKey
) -> None:
    good = json.loads(ops_file.read_text())["operators"][0]
    cases = [
        ("{not json", "is not valid JSON"),
        ({"operators": {}}, "has no 'operators' list"),
        ({"version": 2, "operators": []}, "version 2 is not 1"),
        (
            {"operators": [good, good]},
            r"entry 2 \('alice'\): field 'name': the name is already used by entry 1",
        ),
        (
            {"operators": [good, {**good, "name": "al"}]},
            r"entry 2 \('al'\): field 'public_key': the same key",
        ),
        (
            {"operators": [{**good, "public_key": "ed25519:xx"}]},
            r"entry 1 \('alice'\): field 'public_key'",
        ),
        (
            {"operators": [{**good, "groups": "finance"}]},
            r"entry 1 \('alice'\): field 'groups' must be a list",
        ),
        (
            {"operators": [{**good, "revoked_at": "yesterday"}]},
            r"entry 1 \('alice'\): field 'revoked_at'",
        ),
        (
            {"operators": [{**good, "rights": "all"}]},
            r"entry 1 \('alice'\): unknown field 'rights'",
        ),
        ({"operators": [{"name": "bob"}]}, r"entry 1 \('bob'\): field 'public_key' is missing"),
        ({"operators": ["alice"]}, r"entry 1 is not an object"),
    ]
    for data, why in cases:
        _write(ops_file, data)
        with pytest.raises(SentinelConfigError, match=why) as info:
            load_operators(ops_file)
        assert str(ops_file) in str(info.value)
        before = ops_file.read_bytes()
        with pytest.raises(SentinelConfigError):  # a bad file is never rewritten (nothing lost)
            add_operator(ops_file, "zed", make_key("zed").public_key)
        assert ops_file.read_bytes() == before


def test_missing_file(ops_file: Path) -> None:
    assert len(load_operators(ops_file, missing_ok=True)) == 0
    with pytest.raises(SentinelConfigError, match=rf"{ops_file} does not exist"):
        load_operators(ops_file)


def test_where_the_file_is(tmp_path: Path) -> None:
    explicit = tmp_path / "o.json"
    assert operators_path({"SENTINEL_OPERATORS_FILE": str(explicit)}) == explicit
    if os.geteuid() != 0 and not Path("/etc/sentinel/operators.json").exists():
        assert operators_path({"SENTINEL_CONFIG_DIR": str(tmp_path)}) == tmp_path / "operators.json"
    else:
        assert operators_path({"SENTINEL_CONFIG_DIR": str(tmp_path)}) == Path(
            "/etc/sentinel/operators.json"
        )


def test_admins_adding_at_the_same_moment_all_keep_their_change(ops_file: Path) -> None:
    """Eight real processes add one operator each at once: the read-change-write of one never
    overwrites another's (the folder lock)."""
    import subprocess

    from tests.helpers import PYTHON, ROOT, python_env

    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sentinel.trust import add_operator, generate_key\n"
        "key = generate_key(Path(sys.argv[2]))\n"
        "while time.time() < float(sys.argv[3]): pass\n"
        "add_operator(Path(sys.argv[1]), 'op' + sys.argv[4], key.public_key)\n"
    )
    import time

    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [
                PYTHON,
                "-c",
                code,
                str(ops_file),
                str(ops_file.parent.parent / f"k{i}.pem"),
                str(start),
                str(i),
            ],
            env=python_env(),
            cwd=ROOT,
        )  # fmt: skip
        for i in range(8)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 8
    assert sorted(o.name for o in load_operators(ops_file).operators) == [
        f"op{i}" for i in range(8)
    ]


def test_a_held_lock_is_an_error_not_a_hang(ops_file: Path, make_key, monkeypatch) -> None:
    import fcntl

    from sentinel.trust import operators

    monkeypatch.setattr(operators, "LOCK_WAIT", 0.2)
    fd = os.open(ops_file.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(
            SentinelConfigError, match=r"another process has held the lock.*nothing was changed"
        ):
            add_operator(ops_file, "bob", make_key("bob").public_key)
    finally:
        os.close(fd)
    assert not ops_file.exists()
    add_operator(ops_file, "bob", make_key("bob2").public_key)


# --- the remembered load: reused only while nothing it depends on changed ------------------------


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every full load from here on (the paths), with nothing remembered yet and every file
    old enough to be remembered (the clock 10 s ahead)."""
    from sentinel.trust import operators

    full: list[Path] = []
    real_load = operators._load

    def counting(path: Path, missing_ok: bool):  # type: ignore[no-untyped-def]
        full.append(path)
        return real_load(path, missing_ok)

    monkeypatch.setattr(operators, "_loaded", {})
    monkeypatch.setattr(operators, "_load", counting)
    monkeypatch.setattr(operators, "_now_ns", lambda: time.time_ns() + 10 * 10**9)
    return full


def _age(path: Path) -> None:
    """Give ``path`` an old modification time (its ctime stays now)."""
    old = time.time_ns() - 100 * 10**9
    os.utime(path, ns=(old, old), follow_symlinks=False)


def test_an_unchanged_file_is_not_read_again(ops_file: Path, alice: OperatorKey, loads) -> None:
    first = load_operators(ops_file)
    assert load_operators(ops_file) is first
    assert load_operators(ops_file, missing_ok=True) is first
    assert len(loads) == 1


def test_a_file_changed_moments_ago_is_read_every_time(
    ops_file: Path, alice: OperatorKey, loads, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.trust import operators

    monkeypatch.setattr(operators, "_now_ns", time.time_ns)  # the real clock: just written
    load_operators(ops_file)
    load_operators(ops_file)
    assert len(loads) == 2


def test_a_change_of_the_same_size_is_read(
    ops_file: Path, make_key, alice: OperatorKey, loads
) -> None:
    _age(ops_file)
    assert load_operators(ops_file).by_name["alice"].revoked_at is None
    text = ops_file.read_text()
    changed = text.replace('"revoked_at": null', '"revoked_at": 1234')
    assert len(changed) == len(text) and changed != text
    with open(ops_file, "r+") as fh:  # in place: same file, same size
        fh.write(changed)
    assert load_operators(ops_file).by_name["alice"].revoked_at == 1234.0
    assert len(loads) == 2


def test_a_file_made_group_writable_is_refused_at_once(
    ops_file: Path, alice: OperatorKey, loads
) -> None:
    assert len(load_operators(ops_file)) == 1
    os.chmod(ops_file, 0o664)
    with pytest.raises(SentinelConfigError) as info:
        load_operators(ops_file)
    assert f"operators file {ops_file} has mode 0664: writable by group" in str(info.value)
    with pytest.raises(SentinelConfigError, match="writable by group"):
        load_operators(ops_file)  # a refusal is never remembered
    os.chmod(ops_file, 0o644)
    assert len(load_operators(ops_file)) == 1


def test_a_folder_made_writable_is_refused_at_once(
    ops_file: Path, alice: OperatorKey, loads
) -> None:
    load_operators(ops_file)
    os.chmod(ops_file.parent, 0o777)
    with pytest.raises(SentinelConfigError, match=rf"folder {ops_file.parent} has mode 0777"):
        load_operators(ops_file)
    os.chmod(ops_file.parent, 0o755)
    os.chmod(ops_file.parent.parent, 0o777)  # a folder further up
    with pytest.raises(SentinelConfigError, match=rf"folder {ops_file.parent.parent} has mode"):
        load_operators(ops_file)


def test_a_missing_file_is_noticed_when_it_appears(ops_file: Path, make_key, loads) -> None:
    assert len(load_operators(ops_file, missing_ok=True)) == 0
    assert len(load_operators(ops_file, missing_ok=True)) == 0
    assert len(loads) == 1
    with pytest.raises(SentinelConfigError, match=rf"{ops_file} does not exist"):
        load_operators(ops_file)  # the remembered empty set answers only missing_ok
    add_operator(ops_file, "alice", make_key("alice").public_key)
    assert [o.name for o in load_operators(ops_file, missing_ok=True).operators] == ["alice"]


def test_a_missing_folder_is_noticed_when_it_appears(tmp_path: Path, make_key, loads) -> None:
    path = tmp_path / "later" / "operators.json"
    assert len(load_operators(path, missing_ok=True)) == 0
    assert len(load_operators(path, missing_ok=True)) == 0
    path.parent.mkdir(mode=0o755)
    add_operator(path, "alice", make_key("alice").public_key)
    assert len(load_operators(path, missing_ok=True)) == 1


def test_a_retargeted_symlink_is_followed_again(
    ops_file: Path, make_key, alice: OperatorKey, tmp_path: Path, loads
) -> None:
    other = tmp_path / "other" / "operators.json"
    other.parent.mkdir(mode=0o755)
    add_operator(other, "bob", make_key("bob").public_key)
    link = tmp_path / "link.json"
    link.symlink_to(ops_file)
    _age(ops_file)
    _age(other)
    loads.clear()
    assert [o.name for o in load_operators(link).operators] == ["alice"]
    assert [o.name for o in load_operators(link).operators] == ["alice"]
    assert len(loads) == 1

    def retarget(target: Path) -> None:
        new = tmp_path / "link.new"
        new.symlink_to(target)
        os.replace(new, link)

    retarget(other)
    assert [o.name for o in load_operators(link).operators] == ["bob"]
    os.chmod(other, 0o666)
    with pytest.raises(SentinelConfigError, match="writable by group and others"):
        load_operators(link)
    retarget(ops_file)
    assert [o.name for o in load_operators(link).operators] == ["alice"]
    # A symlinked folder on the way, retargeted.
    linked_dir = tmp_path / "dir-link"
    linked_dir.symlink_to(ops_file.parent)
    via = linked_dir / "operators.json"
    assert [o.name for o in load_operators(via).operators] == ["alice"]
    new = tmp_path / "dir-link.new"
    new.symlink_to(other.parent)
    os.replace(new, linked_dir)
    with pytest.raises(SentinelConfigError, match="writable by group and others"):
        load_operators(via)


def test_the_default_path_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(tmp_path / "a.json"))
    assert operators_path() == tmp_path / "a.json"
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(tmp_path / "b.json"))
    assert operators_path() == tmp_path / "b.json"
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", "rel.json")
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path / "x")
    assert operators_path() == tmp_path / "x" / "rel.json"
    monkeypatch.chdir(tmp_path)
    assert operators_path() == tmp_path / "rel.json"
    monkeypatch.delenv("SENTINEL_OPERATORS_FILE")
    monkeypatch.setenv("SENTINEL_CONFIG_DIR", str(tmp_path / "cfg"))
    assert operators_path() == operators_path(dict(os.environ))
