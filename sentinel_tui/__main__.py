"""``python -m sentinel_tui`` — the same as ``sentinel tui``."""

from __future__ import annotations

import sys

from sentinel.cli.tui import main

if __name__ == "__main__":
    sys.exit(main())
