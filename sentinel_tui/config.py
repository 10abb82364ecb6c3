"""Command-center settings: thresholds, bell, intervals and key remapping, from a TOML file.

The file is ``--keymap FILE`` when given, else ``$SENTINEL_HOME/tui.toml`` when
``SENTINEL_HOME`` is set, else ``~/.config/sentinel/tui.toml``. A missing file means defaults;
a bad file is an error naming the file and the setting.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sentinel.errors import SentinelConfigError
from sentinel.risk import RISK_ESCALATE


@dataclass(frozen=True)
class TuiConfig:
    """Settings of the command center. Every field can be set in ``tui.toml``."""

    #: Approvals at or above this value at risk ask for confirmation (Cancel is the default).
    confirm_value: float = 10_000.0
    #: Approvals at or above this risk score (the store's 0–10 scale; 7 is the anomaly
    #: detector's escalation threshold) ask for confirmation. A value of 1 or less is read as the
    #: old 0..1 fraction (0.7 → 7).
    confirm_risk: float = RISK_ESCALATE
    #: Ring the terminal bell when a new pending request arrives.
    bell: bool = True
    #: Toast when a new pending request arrives.
    toast_new: bool = True
    #: Seconds between ``data_version`` checks (cheap; real queries run only on change).
    poll_interval: float = 0.1
    #: A second decision key within this many seconds is ignored (double press decides once).
    debounce: float = 0.4
    #: Arguments longer than this (characters) are folded on the card; ``v`` shows them whole.
    fold_chars: int = 240
    #: Most pending requests the queue window can grow to by paging older (the counts and the
    #: oldest age are counted in the store, never from these rows).
    pending_limit: int = 10_000
    #: Accepted for older settings files; the queue window is now ``queue_page`` rows, paged.
    table_rows: int = 500
    #: Pending requests fetched first, newest first; scrolling to the end of the queue fetches
    #: this many more (older) ones. Counts and the oldest age are counted in the store.
    queue_page: int = 100
    #: History rows fetched per page (keyset paging).
    history_page: int = 100
    #: Reload the rules file shown in the Rules view when it changes on disk.
    watch_rules: bool = True
    #: Textual theme name (``ansi-dark`` suits 16-colour consoles).
    theme: str = "textual-dark"
    #: Binding id → key(s), e.g. ``{"queue.approve": "y"}``; applied with ``App.set_keymap``.
    keymap: dict[str, str] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> TuiConfig:
        """A copy with some fields replaced."""
        return replace(self, **changes)


def default_config_path() -> Path:
    """Where ``tui.toml`` is looked for when no file is named."""
    home = os.environ.get("SENTINEL_HOME")
    if home:
        return Path(home) / "tui.toml"
    return Path.home() / ".config" / "sentinel" / "tui.toml"


_TYPES: dict[str, tuple[type, ...]] = {
    "confirm_value": (int, float),
    "confirm_risk": (int, float),
    "bell": (bool,),
    "toast_new": (bool,),
    "watch_rules": (bool,),
    "poll_interval": (int, float),
    "debounce": (int, float),
    "fold_chars": (int,),
    "pending_limit": (int,),
    "table_rows": (int,),
    "queue_page": (int,),
    "history_page": (int,),
    "theme": (str,),
}


def parse_config(data: dict[str, Any], source: str = "<config>") -> TuiConfig:
    """Validate a parsed TOML document into a :class:`TuiConfig`."""
    known = {f.name for f in fields(TuiConfig)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise SentinelConfigError(
                f"unknown setting {key!r}",
                file=source,
                field=key,
                hint="known settings: " + ", ".join(sorted(known)),
            )
        if key == "keymap":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items()
            ):
                raise SentinelConfigError(
                    "[keymap] must map binding ids to key strings",
                    file=source,
                    field="keymap",
                    hint='e.g. "queue.approve" = "y"',
                )
            values[key] = dict(value)
            continue
        types = _TYPES[key]
        # bool is an int subclass: reject true/false where a number is expected.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise SentinelConfigError(
                f"{key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}",
                file=source,
                field=key,
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise SentinelConfigError(f"{key} must not be negative", file=source, field=key)
        values[key] = value
    return TuiConfig(**values)


def load_config(path: Path | str | None = None) -> TuiConfig:
    """Load settings from ``path`` (or the default location). Missing default file → defaults."""
    explicit = path is not None
    target = Path(path) if path is not None else default_config_path()
    if not target.exists():
        if explicit:
            raise SentinelConfigError("config file not found", file=str(target))
        return TuiConfig()
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SentinelConfigError(f"invalid TOML: {exc}", file=str(target)) from exc
    except OSError as exc:
        raise SentinelConfigError(f"cannot read: {exc.strerror}", file=str(target)) from exc
    return parse_config(data, str(target))
