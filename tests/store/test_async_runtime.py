"""The process-wide AsyncStore registry (``runtime.async_store_for``) and the guard's async
approval path, which awaits it: one store per database per event loop, closed by close_shared."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel import SentinelConfig, protect, runtime
from sentinel.store import AsyncStore, Store
from tests.helpers import PYTHON, python_env

RULES = """\
version: "1.0"
default_action: allow
rules:
  - id: big_transfer
    function_pattern: "transfer*"
    conditions: [{param: amount, operator: gt, value: 1000}]
    action: require_approval
    message: "transfer of {amount} needs approval"
"""


@pytest.fixture(autouse=True)
def _release(tmp_path: Path) -> Iterator[None]:
    yield
    runtime.close_shared(under=tmp_path)


def test_one_async_store_per_database_per_event_loop(db_path: Path, tmp_path: Path) -> None:
    runtime._stores[db_path.absolute()] = Store(db_path, busy_timeout=0.3)

    async def twice() -> tuple[AsyncStore, AsyncStore]:
        first = runtime.async_store_for(db_path)
        await first.count_events()
        return first, runtime.async_store_for(str(db_path))

    a1, a2 = asyncio.run(twice())
    assert a1 is a2 and isinstance(a1, AsyncStore)
    assert a1.busy_timeout == 0.3  # the settings of the process's store for that database
    other = tmp_path / "other" / "sentinel.db"

    async def next_loop() -> tuple[AsyncStore, AsyncStore]:
        return runtime.async_store_for(db_path), runtime.async_store_for(other)

    b, c = asyncio.run(next_loop())
    assert b is not a1 and c is not b  # another loop, another database
    assert a1.closed  # its loop had ended: closed when the registry was next used
    assert not b.closed and not c.closed
    keys = {k[0] for k in runtime._async_stores}
    assert keys >= {db_path.absolute(), other.absolute()}
    runtime.close_shared(under=other.parent)
    assert c.closed and not b.closed
    runtime.close_shared(under=tmp_path)
    assert b.closed and not any(k[0].is_relative_to(tmp_path) for k in runtime._async_stores)


def test_async_store_for_needs_a_running_loop(db_path: Path) -> None:
    with pytest.raises(RuntimeError):
        runtime.async_store_for(db_path)


def test_a_process_that_never_closes_its_async_store_exits(db_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import asyncio
        from sentinel import runtime

        async def main():
            store = runtime.async_store_for({str(db_path)!r})
            print(await store.count_events())

        asyncio.run(main())
        """
    )
    run = subprocess.run(
        [PYTHON, "-c", code], env=python_env(), capture_output=True, text=True, timeout=60
    )
    assert (run.returncode, run.stdout.strip()) == (0, "0"), run.stderr[-2000:]


async def test_async_protected_call_is_decided_by_another_process(
    tmp_path: Path, db_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    ran: list[int] = []

    @protect(SentinelConfig(rules_path=rules, db_path=db_path, agent_id="sales"))
    async def transfer(amount: int) -> int:
        ran.append(amount)
        return amount

    call = asyncio.ensure_future(transfer(5000))
    probe = Store(db_path)
    try:
        for _ in range(1000):
            pending = probe.list_pending()
            if pending or call.done():
                break
            await asyncio.sleep(0.01)
        assert not call.done() and len(pending) == 1 and ran == []
        # The row was written through this loop's AsyncStore, the one the registry holds.
        astore = runtime._async_stores[(db_path.absolute(), asyncio.get_running_loop())]
        assert isinstance(astore, AsyncStore) and astore._conn is not None
        assert (await astore.get(pending[0].id)).status == "pending"
        decider = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "sentinel.cli", "approve", pending[0].id, "--db", str(db_path),
            env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(decider.communicate(), 60)
        assert decider.returncode == 0, err.decode()[-2000:]
        assert await asyncio.wait_for(call, 60) == 5000
        assert ran == [5000]
        assert probe.get(pending[0].id).status == "approved"
        assert runtime.async_store_for(db_path) is astore  # still this loop's one store
    finally:
        call.cancel()
        probe.close()
