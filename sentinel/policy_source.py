"""Where a process gets its policy from: one shared, swappable holder per rules file.

Every protected function using the same rules file shares one :class:`PolicySource`. Reading
``source.current`` is a single attribute load, so a call always sees one whole policy: a swap
(hot reload) replaces the reference atomically and calls in flight keep the policy they started
with.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from sentinel.policy import Policy, load_policy


class PolicySource:
    """The policy in force for one rules file."""

    _instances: ClassVar[dict[Path, PolicySource]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        # Raises PolicyError (a SentinelConfigError) when the file is missing or invalid.
        self.current: Policy = load_policy(path)
        self.last_error: str | None = None

    @classmethod
    def for_path(cls, path: Path, *, watch: bool = True) -> PolicySource:
        """The shared source for ``path`` (loaded once per process)."""
        key = Path(path).resolve()
        with cls._lock:
            source = cls._instances.get(key)
            if source is None:
                source = cls(key)
                cls._instances[key] = source
            return source

    def swap(self, policy: Policy) -> None:
        """Put ``policy`` in force for every later call."""
        self.current = policy
        self.last_error = None

    @classmethod
    def reset(cls) -> None:
        """Forget every loaded source (tests, ``clear_wrapper_cache``)."""
        with cls._lock:
            cls._instances.clear()
