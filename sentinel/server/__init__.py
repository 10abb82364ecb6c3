"""The approval HTTP API behind ``sentinel serve`` (an extra: ``pip install 'sentinel-guard[serve]'``).

:func:`create_app` builds the Starlette application over a store; :func:`serve` runs it with
uvicorn. Importing this package does not import Starlette; the submodules do.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`sentinel.server.app.create_app`."""
    from sentinel.server.app import create_app as _create

    return _create(*args, **kwargs)


def serve(*args: Any, **kwargs: Any) -> int:
    """See :func:`sentinel.server.run.serve`."""
    from sentinel.server.run import serve as _serve

    return _serve(*args, **kwargs)
