"""Helpers shared by tests (import as ``from tests.helpers import …``)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentinel.store import OperatorIdentity, RequestRecord, Store

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


#: Kept for child processes: the test's trusted operators file and the tester's key (signing on).
SIGNING_ENV = ("SENTINEL_OPERATORS_FILE", "SENTINEL_OPERATOR_KEY")


def python_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that imports this checkout (with the test's
    signing setup: its operators file and the tester's key)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_") or k in SIGNING_ENV
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def signed_decide(
    store: Store,
    request_id: str,
    approve: bool,
    operator: OperatorIdentity | None = None,
    reason: str | None = None,
    edits: dict[str, str] | None = None,
) -> RequestRecord:
    """Decide as the tester does in the command center: checked and signed with their key
    (``edits``: approve with these arguments changed, typed by the request's schema)."""
    from sentinel.trust.decide import Decider

    decider = Decider.local("cli")
    if operator is not None:
        decider = replace(decider, operator=operator)
    return decider.decide(store, request_id, approve, reason, edits=edits)

