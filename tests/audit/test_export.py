"""sentinel audit export / value / anchor / mirror / keygen, and Ed25519 anchors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sentinel.audit.anchors import anchor_path
from sentinel.audit.verify import verify
from sentinel.cli import main
from sentinel.store import Store

T0 = 1_790_000_000.0


def seed(db: Path) -> None:
    with Store(db) as store:
        store.append_events(
            [
                {"kind": "allowed", "ts": T0, "function": "transfer", "data": {"args": {"a": 1}}},
                {
                    "kind": "blocked",
                    "ts": T0 + 10,
                    "function": "delete_user",
                    "value_at_risk": 100,
                    "reason": '=HYPERLINK("http://evil")',
                    "data": {"args": {"token": "[REDACTED]"}},
                },
                {
                    "kind": "denied",
                    "ts": T0 + 20,
                    "function": "transfer",
                    "value_at_risk": 250.5,
                    "actor": "alice",
                    "data": {"note": "Bearer abcdefghijklmnop012345"},
                },
                {
                    "kind": "expired",
                    "ts": T0 + 3600 * 30,
                    "function": "transfer",
                    "value_at_risk": 1000,
                },
                {"kind": "approved", "ts": T0 + 30, "function": "transfer", "value_at_risk": 5},
            ]
        )


def test_export_jsonl_filters_by_status_function_and_time(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db_path)
    assert (
        main(
            [
                "audit",
                "export",
                "--db",
                str(db_path),
                "--format",
                "jsonl",
                "--status",
                "denied,expired",
                "--function",
                "trans*",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["kind"] for e in lines] == ["denied", "expired"]
    assert lines[0]["time"].endswith("Z") and lines[0]["actor"] == "alice"
    assert "abcdefghijklmnop012345" not in json.dumps(lines)  # redacted on the way out too
    assert (
        main(
            [
                "audit",
                "export",
                "--db",
                str(db_path),
                "--since",
                str(T0 + 5),
                "--until",
                str(T0 + 25),
            ]
        )
        == 0
    )
    kinds = [json.loads(x)["kind"] for x in capsys.readouterr().out.splitlines()]
    assert kinds == ["blocked", "denied"]


def test_export_csv_is_spreadsheet_safe(db_path: Path, tmp_path: Path) -> None:
    seed(db_path)
    out = tmp_path / "events.csv"
    assert main(["audit", "export", "--db", str(db_path), "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["kind"] for r in rows] == ["allowed", "blocked", "denied", "expired", "approved"]
    assert rows[1]["reason"].startswith("'=")  # never a live formula
    assert json.loads(rows[0]["data"]) == {"args": {"a": 1}}


def test_value_protected_over_a_period(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(db_path)
    assert main(["audit", "value", "--db", str(db_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value_protected"] == 1350.5
    assert (
        main(
            [
                "audit",
                "value",
                "--db",
                str(db_path),
                "--json",
                "--since",
                str(T0 + 5),
                "--until",
                str(T0 + 3600),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["value_protected"] == 350.5
    assert result["by_kind"]["denied"] == {"count": 1, "value": 250.5}
    with Store(db_path) as store:  # the same definition as the metrics
        assert store.metrics().value_protected == 1350.5


def test_anchor_and_mirror_commands(
    db_path: Path, tmp_path: Path, anchors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db_path)
    logs = tmp_path / "logs"
    assert main(["audit", "mirror", "--db", str(db_path), "--jsonl", str(logs)]) == 0
    assert main(["audit", "anchor", "--db", str(db_path)]) == 0
    assert "anchored seq 5" in capsys.readouterr().out
    assert (
        main(["audit", "verify", "--db", str(db_path), "--jsonl", str(logs), "--require-anchor"])
        == 0
    )


def test_anchor_without_a_key_is_a_clear_error(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(db_path)
    assert main(["audit", "anchor", "--db", str(db_path)]) == 1
    assert "SENTINEL_AUDIT_KEY" in capsys.readouterr().err
    assert main(["audit", "verify", "--db", str(db_path), "--require-anchor"]) == 1


def test_ed25519_anchors_verify_with_only_the_public_key(
    db_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("cryptography")
    monkeypatch.setenv("SENTINEL_ANCHOR_DIR", str(tmp_path / "anchors"))
    private, public = tmp_path / "op" / "audit.key", tmp_path / "op" / "audit.pub"
    assert main(["audit", "keygen", "--private", str(private), "--public", str(public)]) == 0
    assert private.stat().st_mode & 0o777 == 0o600
    seed(db_path)
    monkeypatch.setenv("SENTINEL_AUDIT_SIGNING_KEY", str(private))
    assert main(["audit", "anchor", "--db", str(db_path)]) == 0
    # The agent / auditor side holds only the public key.
    monkeypatch.delenv("SENTINEL_AUDIT_SIGNING_KEY")
    monkeypatch.setenv("SENTINEL_AUDIT_PUBLIC_KEY", str(public))
    assert main(["audit", "anchor", "--db", str(db_path)]) == 1  # cannot sign
    with Store(db_path) as store:
        report = verify(store, require_anchor=True)
        assert report.ok and report.anchors_checked == 1
        path = anchor_path(db_path, store.audit_state()[0])
    record = json.loads(path.read_text())
    record["seq"] = 99
    path.write_text(json.dumps(record) + "\n")
    with Store(db_path) as store:
        assert [str(p) for p in verify(store).problems] == [
            "anchors:1: anchor record: bad signature"
        ]
