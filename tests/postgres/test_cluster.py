"""The throwaway PostgreSQL server (tests/pg.py) is a real server: tables, commits seen across
connections, LISTEN/NOTIFY, terminated backends, password authentication, one database per test."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import errors

from tests.pg import TEST_ROLE, PgCluster

pytestmark = pytest.mark.postgres


def _dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _gone(cluster: PgCluster, pid: int) -> None:
    """Wait (bounded) until backend ``pid`` has left the server."""
    with cluster.admin() as admin:
        for _ in range(200):
            row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if row.fetchone() == (0,):
                return
            time.sleep(0.05)
    raise AssertionError(f"backend {pid} still connected after pg_terminate_backend")


def test_a_test_database_is_the_test_roles_and_takes_a_table(pg_url: str) -> None:
    assert pg_url.startswith("postgresql://")
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE requests (id serial PRIMARY KEY, tool text NOT NULL)")
        conn.execute("INSERT INTO requests (tool) VALUES ('transfer'), ('refund')")
        conn.commit()
        rows = conn.execute("SELECT id, tool FROM requests ORDER BY id").fetchall()
        who = conn.execute("SELECT current_user, current_database(), version()").fetchone()
    assert rows == [(1, "transfer"), (2, "refund")]
    assert who is not None
    assert who[:2] == (TEST_ROLE, _dbname(pg_url))
    assert who[2].startswith("PostgreSQL 1")


def test_two_connections_see_each_others_commits_and_nothing_before(pg_url: str) -> None:
    with psycopg.connect(pg_url) as a, psycopg.connect(pg_url, autocommit=True) as b:
        a.execute("CREATE TABLE votes (operator text PRIMARY KEY)")
        a.commit()
        a.execute("INSERT INTO votes VALUES ('alice')")
        assert b.execute("SELECT count(*) FROM votes").fetchone() == (0,)
        a.commit()
        assert b.execute("SELECT operator FROM votes").fetchall() == [("alice",)]
        b.execute("INSERT INTO votes VALUES ('bob')")
        a.rollback()  # a fresh snapshot for a's next statement
        assert a.execute("SELECT operator FROM votes ORDER BY 1").fetchall() == [
            ("alice",),
            ("bob",),
        ]


def test_listen_notify_delivers_a_notice_from_another_connection(pg_url: str) -> None:
    with (
        psycopg.connect(pg_url, autocommit=True) as listener,
        psycopg.connect(pg_url) as notifier,
    ):
        listener.execute("LISTEN decided")
        sender = notifier.info.backend_pid
        notifier.execute("SELECT pg_notify('decided', 'request 42')")
        notifier.commit()  # notices go out at commit
        notices = list(listener.notifies(timeout=30, stop_after=1))
    assert [(n.channel, n.payload, n.pid) for n in notices] == [("decided", "request 42", sender)]


async def test_an_async_connection_listens_too(pg_url: str) -> None:
    async with (
        await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as listener,
        await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as notifier,
    ):
        await listener.execute("LISTEN decided")
        await notifier.execute("NOTIFY decided, 'request 7'")
        notices = [n async for n in listener.notifies(timeout=30, stop_after=1)]
    assert [(n.channel, n.payload) for n in notices] == [("decided", "request 7")]


def test_a_terminated_backend_raises_a_clear_error_and_loses_its_open_transaction(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    with psycopg.connect(pg_url) as killer:
        killer.execute("CREATE TABLE events (id int)")
        killer.commit()
        victim = psycopg.connect(pg_url)
        victim.execute("INSERT INTO events VALUES (1)")  # open, uncommitted
        pid = victim.info.backend_pid
        assert killer.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        killer.commit()
        _gone(pg_cluster, pid)
        with pytest.raises(psycopg.OperationalError) as raised:
            victim.execute("INSERT INTO events VALUES (2)")
        assert victim.closed
        assert killer.execute("SELECT count(*) FROM events").fetchone() == (0,)
    # The server says why (SQLSTATE 57P01), and psycopg raises it as its own class.
    assert isinstance(raised.value, errors.AdminShutdown)
    assert raised.value.sqlstate == "57P01"
    assert "terminating connection due to administrator command" in str(raised.value)


def test_a_wrong_password_is_refused_and_the_socket_url_works(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    wrong = pg_url.replace(pg_cluster.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)
    socket_url = pg_cluster.url(_dbname(pg_url), via_socket=True)
    with psycopg.connect(socket_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (TEST_ROLE,)
        assert conn.info.host == str(pg_cluster.socket_dir)


def test_each_database_is_fresh_and_dropped_afterwards(pg_cluster: PgCluster) -> None:
    with pg_cluster.database() as first:
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE left_behind (x int)")
            conn.commit()
        with pg_cluster.database() as second, psycopg.connect(second) as conn:
            assert _dbname(second) != _dbname(first)
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'left_behind'")
            assert tables.fetchone() == (0,)
        still = psycopg.connect(first)  # dropped even with a connection open
    with pg_cluster.admin() as admin:
        names = {row[0] for row in admin.execute("SELECT datname FROM pg_database")}
    assert _dbname(first) not in names and _dbname(second) not in names
    with still, pytest.raises(errors.AdminShutdown):
        still.execute("SELECT 1")


def test_durability_is_off_for_speed(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings"
                " WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
            ).fetchall()
        )
    assert settings == {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
