"""Sentinel command center: a Textual app where operators see live approval cards and decide.

Importing this package does not import Textual; ``sentinel_tui.app`` does.
"""

from __future__ import annotations

__all__ = ["run_app"]


def run_app(*args: object, **kwargs: object) -> int:
    """Run the command center (see :func:`sentinel_tui.app.run_app`)."""
    from sentinel_tui.app import run_app as _run

    return _run(*args, **kwargs)  # type: ignore[arg-type]
