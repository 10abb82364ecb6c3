"""Readers of threads that ended are closed: the command center runs each worker on a new thread."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from sentinel.store import Store
from tests.helpers import PYTHON, python_env


def test_readers_of_ended_threads_are_closed(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        for _ in range(50):
            t = threading.Thread(target=store.list_pending)
            t.start()
            t.join()
        store.list_pending()
        assert len(store._readers) <= 2
        assert store.list_pending() == []
    finally:
        store.close()


EXIT_READER = """
import atexit, sys, threading
from sentinel.store import Store

store = Store(sys.argv[1])
store.list_pending()  # the main thread's reader

def at_exit():
    # By now the main thread reports itself not alive; a reader made on another thread must not
    # close the main thread's (the audit sink's exit flush and anchor read through it here).
    t = threading.Thread(target=store.list_pending)
    t.start()
    t.join()
    store.audit_state()
    print("read at exit", flush=True)

atexit.register(at_exit)
"""


def test_main_thread_reader_still_works_in_atexit_handlers(tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-c", EXIT_READER, str(tmp_path / "s.db")],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "read at exit" in done.stdout, done.stderr
