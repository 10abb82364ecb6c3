"""``sentinel db copy``: a populated SQLite database to a real PostgreSQL server and back, with
the audit chain (and the source's signed anchors) still verifying on the copy."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sentinel.audit.anchors import write_anchor
from sentinel.audit.keys import Verifier, load_signer, load_verifier
from sentinel.audit.verify import verify
from sentinel.store import DecisionTerms, Store, sql
from sentinel.store.copy import (
    DestinationNotEmpty,
    copy_database,
    parse_location,
)
from sentinel.store.limits import LimitCheck
from sentinel.store.paths import DatabaseValueError
from sentinel.store.postgres import PgStore
from tests.helpers import PYTHON, ROOT, python_env
from tests.store.factories import learn_plan, new_request, operator

NO_KEYS = Verifier({}, {})
KEY = "test-audit-key-not-a-secret"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "sentinel.cli", *args], capture_output=True, text=True,
                          env={**python_env(), **(env or {})}, cwd=ROOT, timeout=120)  # fmt: skip


def populate(path: Path) -> None:
    """Requests in every state (votes, terms, requester, escalation), events of several kinds,
    limit counters and baselines."""
    now = time.time()
    with Store(path) as s:
        pending = s.submit(new_request(
            terms=DecisionTerms(quorum=2, approvers=("ops",)),
            requester={"account": "bot", "uid": 1001},
        ))  # fmt: skip
        s.decide(pending.id, True, operator("alice"), "first of two")  # a vote, still pending
        s.escalate(pending.id, ["security"], now)
        approved = s.decide(s.submit(new_request()).id, True, operator("bob"), "fine")
        s.decide(s.submit(new_request()).id, False, operator("carol"), "no")
        s.cancel(s.submit(new_request()).id, "caller gave up")
        late = s.submit(new_request(timeout_seconds=0.01, created_at=now - 10))
        s.expire(late.id)
        s.append_events(
            [
                {"kind": "allowed", "function": "read_file", "agent_id": "bot", "data": {"n": 1}},
                {"kind": "blocked", "function": "rm", "rule_id": "no-rm", "reason": "50% off"},
                {"kind": "policy_loaded", "policy_version": "v2", "data": {"rules": 3}},
                {"kind": "executed", "request_id": approved.id, "value_at_risk": 12.5},
            ]
        )
        s.limit_reserve([LimitCheck("daily|agent=bot", 3600.0, 100.0, 7.5)])
        s.baseline_learn("bot", "transfer", learn_plan(100.0, "acct-1"), now)
        s.baseline_learn("bot", "transfer", learn_plan(250.0, "acct-2"), now + 1)


def _sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(q).fetchall() for t, q in sql.COPY_SELECT.items()}
    finally:
        conn.close()


def _pg_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        # byte-wise order, as SQLite sorts text
        return {
            t: sorted(conn.execute(q).fetchall(), key=repr) for t, q in sql.COPY_SELECT.items()
        }


def _sorted(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(r, key=repr) for t, r in rows.items()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "old" / "sentinel.db"
    populate(path)
    return path


def test_copy_lists_every_table_and_column_of_both_schemas(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "s.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(sql.COPY_TABLES)
    for table, (columns, _key) in sql.COPY_TABLES.items():
        found = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        assert sorted(found) == sorted(columns), table
    conn.close()
    PgStore(pg_url).close()
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        ).fetchall()
    pg_tables: dict[str, set[str]] = {}
    for table, column in rows:
        pg_tables.setdefault(table, set()).add(column)
    assert set(pg_tables) - {"schema_version"} == set(sql.COPY_TABLES)
    for table, (columns, _key) in sql.COPY_TABLES.items():
        assert pg_tables[table] == set(columns), table


_PG_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
_SQLITE_INDEXES = "SELECT name, sql FROM sqlite_master WHERE type = 'index'"


def test_sqlite_to_postgres_and_back_keeps_every_row(
    source: Path, pg_url: str, tmp_path: Path, pg_cluster: Any
) -> None:
    original = _sqlite_rows(source)
    assert len(original["requests"]) == 5 and len(original["limit_totals"]) == 1
    assert original["anomaly_baselines"] and original["anomaly_windows"]
    seen: list[tuple[str, int, int]] = []
    result = copy_database(
        parse_location(str(source), source="--from"),
        parse_location(pg_url, source="--to"),
        batch=3,  # several batches even for this small history
        progress=lambda t, n, total: seen.append((t, n, total)),
    )
    assert result.events == len(original["events"]) and result.source_head is not None
    assert result.destination_head == result.source_head
    assert ("events", len(original["events"]), len(original["events"])) in seen
    assert ("events", 3, len(original["events"])) in seen  # progress per batch
    assert _pg_rows(pg_url) == _sorted(original)
    # the indexes the copy dropped for the load are all back, as the schema defines them
    with pg_cluster.database() as fresh:
        PgStore(fresh).close()
        with psycopg.connect(fresh) as a, psycopg.connect(pg_url) as b:
            assert sorted(b.execute(_PG_INDEXES).fetchall()) == sorted(
                a.execute(_PG_INDEXES).fetchall()
            )
    with PgStore(pg_url) as pg:
        report = verify(pg, anchor_dir=tmp_path / "anchors", verifier=NO_KEYS)
        assert report.ok, report.problems
        assert report.table_events == len(original["events"])
        pending = pg.list_pending()
        assert len(pending) == 1 and len(pending[0].votes) == 1
        assert pending[0].terms.quorum == 2 and pending[0].escalated_to == ("security",)
        # the copy goes on: the next event chains onto the copied head
        pg.append_events([{"kind": "allowed", "function": "after_copy"}])
        assert verify(pg, anchor_dir=tmp_path / "anchors", verifier=NO_KEYS).ok
    back = tmp_path / "back" / "sentinel.db"
    again = copy_database(
        parse_location(pg_url, source="--from"), parse_location(f"sqlite:///{back}", source="--to")
    )
    assert again.events == len(original["events"]) + 1
    rows = _sqlite_rows(back)
    Store(tmp_path / "fresh.db").close()
    with sqlite3.connect(back) as a, sqlite3.connect(tmp_path / "fresh.db") as b:
        assert sorted(a.execute(_SQLITE_INDEXES).fetchall()) == sorted(
            b.execute(_SQLITE_INDEXES).fetchall()
        )
    for table in sql.COPY_TABLES:
        if table not in ("events", "event_rollup"):
            assert sorted(rows[table], key=repr) == sorted(original[table], key=repr), table
    assert rows["events"][:-1] == original["events"]
    with Store(back) as s:
        assert verify(s, anchor_dir=tmp_path / "anchors", verifier=NO_KEYS).ok
        assert s.limit_reserve([LimitCheck("daily|agent=bot", 3600.0, 100.0, 1.0)])[0].used == 7.5


def test_the_source_anchors_vouch_for_the_copy(
    source: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_AUDIT_KEY", KEY)
    folder = tmp_path / "anchors"
    signer = load_signer()
    assert signer is not None
    with Store(source) as s:
        record = write_anchor(s, signer, folder)
    assert record is not None
    copy_database(parse_location(str(source), source="--from"),
                  parse_location(pg_url, source="--to"))  # fmt: skip
    with PgStore(pg_url) as pg:
        report = verify(pg, anchor_dir=folder, verifier=load_verifier(), require_anchor=True)
        assert report.ok, report.problems
        assert report.anchors_checked == 1  # the same db_id: the source's anchor file
        assert pg.audit_state()[0] == record["db_id"]
        # anchoring the copy goes on in the same file, naming the server database
        pg.append_events([{"kind": "allowed"}])
        newer = write_anchor(pg, signer, folder)
        assert newer is not None and newer["db_path"] == pg.path and "***" in pg.path
    env = {"SENTINEL_AUDIT_KEY": KEY, "SENTINEL_ANCHOR_DIR": str(folder)}
    audit = _cli("audit", "verify", "--db", pg_url, "--require-anchor", env=env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "anchors: 2 signed record(s) checked" in audit.stdout
    # the retired source is now behind its own anchors: verify says so
    with Store(source) as s:
        stale = verify(s, anchor_dir=folder, verifier=load_verifier())
    assert not stale.ok and "truncated" in str(stale.problems[0])


def test_a_tampered_source_fails_the_verification_of_the_copy(
    source: Path, pg_url: str, tmp_path: Path
) -> None:
    conn = sqlite3.connect(source, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET reason = 'nothing to see' WHERE seq = 3")
    conn.close()
    out = _cli("db", "copy", "--from", str(source), "--to", pg_url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "TAMPERED: table seq 3" in out.stdout
    assert "FAILED: the copy's audit trail does not verify" in out.stdout
    audit = _cli("audit", "verify", "--db", pg_url)
    assert audit.returncode == 1 and "TAMPERED: table seq 3" in audit.stdout


def test_cli_copies_verifies_and_refuses_a_non_empty_destination(
    source: Path, pg_url: str, tmp_path: Path
) -> None:
    out = _cli("db", "copy", "--from", f"sqlite:///{source}", "--to", pg_url)
    assert out.returncode == 0, out.stdout + out.stderr
    n_events = len(_sqlite_rows(source)["events"])
    assert re.search(rf"^  events +{n_events:,}$", out.stdout, re.M), out.stdout
    assert "OK: the copy's audit trail verifies" in out.stdout
    assert "events" in out.stderr and "100%" in out.stderr  # progress on stderr
    audit = _cli("audit", "verify", "--db", pg_url)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert f"table: {n_events:,} events checked" in audit.stdout
    assert "OK: the audit trail is intact" in audit.stdout
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in out.stdout + out.stderr
    again = _cli("db", "copy", "--from", str(source), "--to", pg_url)
    assert again.returncode == 1
    assert "is not empty (it holds requests, events" in again.stderr
    assert password not in again.stderr and "***" in again.stderr
    with pytest.raises(DestinationNotEmpty):
        copy_database(parse_location(str(source), source="--from"),
                      parse_location(pg_url, source="--to"))  # fmt: skip
    # a SQLite destination that holds data is refused the same way
    other = tmp_path / "other.db"
    populate(other)
    refused = _cli("db", "copy", "--from", pg_url, "--to", str(other))
    assert refused.returncode == 1 and f"destination {other} is not empty" in refused.stderr


def test_bad_locations_are_clear_errors(
    source: Path, tmp_path: Path, pg_cluster: Any
) -> None:
    with pytest.raises(DatabaseValueError, match="--to 'mysql://u:\\*\\*\\*@h/db'"):
        parse_location("mysql://u:pw@h/db", source="--to")
    with pytest.raises(DatabaseValueError, match="--from 'postgresql://': a PostgreSQL URL needs"):
        parse_location("postgresql://", source="--from")
    missing = tmp_path / "none.db"
    out = _cli("db", "copy", "--from", str(missing), "--to", str(tmp_path / "new.db"))
    assert out.returncode == 1 and f"no Sentinel database at {missing}" in out.stderr
    assert not (tmp_path / "new.db").exists()
    wrong = pg_cluster.url("postgres").replace(pg_cluster.password, "wrong-password")
    out = _cli("db", "copy", "--from", str(source), "--to", wrong)
    assert out.returncode == 1 and "cannot reach database postgresql://sentinel:***@" in out.stderr
    assert "password authentication failed" in out.stderr and "wrong-password" not in out.stderr
    nodb = pg_cluster.url("no_such_database")
    out = _cli("db", "copy", "--from", nodb, "--to", str(tmp_path / "z.db"))
    assert out.returncode == 1 and '"no_such_database" does not exist' in out.stderr
    out = _cli("db", "copy", "--from", "mysql://a/b", "--to", str(tmp_path / "y.db"))
    assert out.returncode == 2 and "argument --from" in out.stderr
    assert "mysql:// is not a supported database" in out.stderr
    out = _cli("db", "copy", "--from", str(source), "--to", str(tmp_path / "y.db"), "--batch", "0")
    assert out.returncode == 2 and "argument --batch" in out.stderr


def test_a_pruned_chain_copies_with_its_checkpoint(
    source: Path, pg_url: str, tmp_path: Path
) -> None:
    with Store(source) as s:
        assert s.prune_events(3) is not None
        assert s.audit_state()[1] == 4
    copy_database(parse_location(str(source), source="--from"),
                  parse_location(pg_url, source="--to"))  # fmt: skip
    with PgStore(pg_url) as pg:
        db_id, first, _last, _head, windows = pg.audit_state()
        assert first == 4 and [int(w[0]) for w in windows] == [3]
        report = verify(pg, anchor_dir=tmp_path / "anchors", verifier=NO_KEYS)
    assert report.ok, report.problems
    assert "events up to seq 3 were pruned with a checkpoint" in report.notes
