"""Shared fixtures: every test gets its own Sentinel home, so nothing touches the repository."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sentinel.trust import OperatorKey, add_operator, generate_key

if TYPE_CHECKING:
    from tests.pg import PgCluster

#: The trusted operator name of whoever runs the tests (see _isolated_home).
TESTER = "tester"


@pytest.fixture(scope="session")
def tester_key(tmp_path_factory: pytest.TempPathFactory) -> OperatorKey:
    """The operator key of the person running the tests (one per session: real Ed25519)."""
    return generate_key(tmp_path_factory.mktemp("operator") / "operator-key.pem")


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    tester_key: OperatorKey,
) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith("SENTINEL_"):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("SENTINEL_HOME", str(home))
    # Signing is on in every test, as it is once an admin trusts an operator: the tester is a
    # trusted operator (groups finance, ops) and decides with their own key. Tests of unsigned
    # behaviour turn it off (SENTINEL_REQUIRE_SIGNED=0 or require_signed_decisions=False).
    # Outside tmp_path: tests that check what a command created there see only their own files.
    operators = tmp_path_factory.mktemp("trusted") / "operators.json"
    operators.parent.chmod(0o755)
    add_operator(operators, TESTER, tester_key.public_key, ["finance", "ops"])
    monkeypatch.setenv("SENTINEL_OPERATORS_FILE", str(operators))
    monkeypatch.setenv("SENTINEL_OPERATOR_KEY", str(tester_key.path))
    yield home
    from sentinel.guard import close_shared
    from sentinel.policy_source import PolicySource

    PolicySource.reset()
    # Release the per-database writers, stores and watchers this test opened: the suite would
    # otherwise hold about a thousand descriptors by its end.
    close_shared(under=tmp_path)


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[..., Path]:
    """Write a rules file (YAML or JSON text, dedented) and return its path."""

    def write(text: str, name: str = "rules.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "sentinel.db"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A real, throwaway PostgreSQL server, started once per session on first use (tests/pg.py)."""
    from tests.pg import PgCluster

    with PgCluster.start() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """``postgresql://…`` of a database of this test's own (owned by the test role, dropped after)."""
    with pg_cluster.database() as url:
        yield url
        # Before the database is dropped: the stores and watchers this test's guards opened on it
        # (a watcher would otherwise keep reconnecting to a database that is gone).
        from sentinel.runtime import close_shared

        close_shared(url)
        # Listeners of stores opened directly (not through the runtime) on it, too.
        from sentinel.store.pgwatch import PgWatcher

        PgWatcher.stop_shared(lambda _url: True)
