"""``sentinel grant create/list/show/revoke`` and ``sentinel approve ID --grant``: in-process
through the real parser (``sentinel.cli.main``) on a real SQLite file (unsigned: this folder's
fixtures clear the operators file; signed grants are tested in tests/core), and once as a real
process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.store import Store
from tests.helpers import PYTHON, python_env
from tests.store.factories import new_request


@pytest.fixture
def db(db_path: Path) -> Path:
    Store(db_path).close()
    return db_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_prints_the_id_and_signs(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "grant", "create", "--agent", "billing", "--function", "transfer",
        "--where", "amount <= 500", "--where", "destination in ACC-1,ACC-2",
        "--where", "memo startswith 'inv-'", "--for", "1h", "--count", "3",
        "--max-total", "2000", "--db", str(db),
    )  # fmt: skip
    assert code == 0, err
    gid = out.strip()
    assert len(gid) == 32 and "created: amount <= 500" in err
    s = Store(db)
    try:
        g = s.get_grant(gid)
    finally:
        s.close()
    assert [b.text() for b in g.bounds] == [
        "amount <= 500", "destination in {ACC-1, ACC-2}", "memo startswith inv-",
    ]  # fmt: skip
    assert g.max_count == 3 and g.max_total == 2000.0 and g.signature is None
    assert g.expires_at is not None and 3590 < g.expires_at - g.created_at <= 3600


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--where", "amount ~ 5"], "--where 'amount ~ 5': 'amount ~ 5' is not a bound"),
        (["--where", "amount <= lots"], "--where 'amount <= lots': amount <= needs a number"),
        (["--for", "1y"], "--for '1y': give a duration"),
        ([], "no bound at all"),
        (["--where", "destination in ACC-1"], "bounds no value parameter"),
    ],
)
def test_bad_or_wide_grants_are_refused(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    base = ["grant", "create", "--agent", "billing", "--function", "transfer", "--db", str(db)]
    if "--for" not in argv:
        base += ["--for", "1h"]
    code, _out, err = run(capsys, *base, *argv)
    assert code == 1 and message in err, err
    s = Store(db)
    try:
        assert s.list_grants() == []
    finally:
        s.close()


def test_wide_grant_with_yes(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "grant", "create", "--agent", "billing", "--function", "transfer",
        "--for", "forever", "--yes", "--db", str(db),
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, "grant", "list", "--json", "--db", str(db))
    (g,) = json.loads(out)
    assert g["expires_at"] is None and g["bounds"] == [] and g["state"] == "active"


def test_list_show_revoke(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys, "grant", "create", "--agent", "billing", "--function", "transfer",
        "--where", "amount <= 500", "--for", "15m", "--db", str(db),
    )  # fmt: skip
    gid = out.strip()
    s = Store(db)
    try:
        s.consume_grant("billing", "transfer", {"amount": 100}, 100.0, digest="d" * 64)
    finally:
        s.close()
    code, out, _ = run(capsys, "grant", "list", "--db", str(db))
    assert code == 0 and gid[:12] in out and "amount <= 500" in out and "active" in out
    code, out, _ = run(capsys, "grant", "show", gid[:8], "--db", str(db))
    assert code == 0 and "use #1" in out and "unsigned" in out
    code, out, _ = run(capsys, "grant", "revoke", gid[:8], "--db", str(db))
    assert code == 0 and f"revoked grant {gid}" in out
    code, _, err = run(capsys, "grant", "revoke", gid[:8], "--db", str(db))
    assert code == 1 and "already revoked" in err
    code, _, err = run(capsys, "grant", "show", "zzzzzz", "--db", str(db))
    assert code == 1 and "no grant with id 'zzzzzz'" in err


def test_approve_with_grant_uses_the_request_values(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Store(db)
    try:
        req = s.submit(
            new_request(arguments={"amount": 1500, "to": "acct-9", "api_key": "[REDACTED]"})
        )
        code, out, err = run(capsys, "approve", req.id[:8], "--grant", "1h", "--db", str(db))
        assert code == 0, err
        assert f"approved {req.id}" in out and f"grant {s.list_grants()[0].id}" in out
        assert "api_key: not bounded" in err  # the masked value is left out, and said so
        assert s.get(req.id).status == "approved"
        (g,) = s.list_grants()
        assert [b.text() for b in g.bounds] == ["amount <= 1500", "to == acct-9"]
        assert g.request_id == req.id and g.agent == "billing" and g.function == "transfer"
        # The request is decided: a second approve-with-grant is refused and makes no grant.
        code, _, err = run(capsys, "approve", req.id, "--grant", "1h", "--db", str(db))
        assert code == 1 and "already approved" in err
        assert len(s.list_grants()) == 1
    finally:
        s.close()


def test_approve_with_grant_where_and_caps(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = Store(db)
    try:
        req = s.submit(new_request())
        code, _out, err = run(
            capsys, "approve", req.id, "--grant", "8h", "--where", "amount <= 2000",
            "--count", "5", "--max-total", "6000", "--db", str(db),
        )  # fmt: skip
        assert code == 0, err
        (g,) = s.list_grants()
        assert [b.text() for b in g.bounds] == ["amount <= 2000"]
        assert g.max_count == 5 and g.max_total == 6000.0
    finally:
        s.close()


def test_grant_create_as_a_process(db: Path) -> None:
    run_ = subprocess.run(
        [PYTHON, "-m", "sentinel.cli", "grant", "create", "--agent", "billing", "--function",
         "transfer", "--where", "amount <= 10", "--for", "1h", "--db", str(db)],
        env=python_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run_.returncode == 0, run_.stderr
    assert len(run_.stdout.strip()) == 32


def test_approve_with_grant_on_an_ungrantable_rule_is_refused_and_records_nothing(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A grant made for a ``grantable: false`` rule would never answer a call: say so instead of
    making it (the request stays pending, to be approved without --grant)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'version: "1.0"\ndefault_action: allow\nrules:\n'
        "  - id: large-transfer\n    function_pattern: transfer\n"
        "    action: require_approval\n    grantable: false\n"
    )
    s = Store(db)
    try:
        req = s.submit(new_request())
        code, _out, err = run(
            capsys, "approve", req.id, "--grant", "1h", "--rules", str(rules), "--db", str(db)
        )
        assert code == 1
        assert "rule large-transfer is marked grantable: false" in err
        assert "nothing was recorded" in err
        assert s.get(req.id).status == "pending" and s.list_grants() == []
    finally:
        s.close()
