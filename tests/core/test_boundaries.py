"""Layer boundaries, enforced: the library never imports Textual, and the command center never
talks SQL (it uses the store API)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The entry points that open the command center (they import it when run, not the library).
TUI_ENTRIES = {"sentinel/cli/tui.py", "sentinel/cli/tui_web.py", "sentinel/demo.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_library_never_imports_textual_or_the_command_center() -> None:
    offenders = {}
    for path in sorted((ROOT / "sentinel").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        bad = _imports(path) & ({"textual", "sentinel_tui"} if rel not in TUI_ENTRIES else {"textual"})
        if bad:
            offenders[rel] = sorted(bad)
    assert offenders == {}


def test_importing_every_library_module_loads_no_textual() -> None:
    code = f"""
import importlib, json, pkgutil, sys
import sentinel
skip = {sorted(p.removesuffix(".py").replace("/", ".") for p in TUI_ENTRIES)!r}
failed = {{}}
for info in pkgutil.walk_packages(sentinel.__path__, "sentinel."):
    if info.name in skip or info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except ImportError as exc:  # an optional extra that is not installed
        failed[info.name] = str(exc)
print(json.dumps({{"loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "sentinel_tui")),
                  "failed": failed}}))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []


SQL = re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I | re.S)


def test_the_command_center_writes_no_sql_of_its_own() -> None:
    offenders = {}
    for path in sorted((ROOT / "sentinel_tui").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        found = sorted(_imports(path) & {"sqlite3", "aiosqlite", "psycopg"})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append(node.value[:60])
        if found:
            offenders[rel] = found
    assert offenders == {}


#: The library's floors, lowest first. A module imports only from its own floor or below — at
#: any level, function-level imports included (only ``if TYPE_CHECKING:`` blocks are exempt) —
#: so nothing below the guard reaches back up into it, and the approval path can be typed.
FLOORS: list[set[str]] = [
    {"errors", "fdwait", "risk", "redact", "normalize", "secure_files", "grant_bounds"},  # plain
    # helpers (grant_bounds: the text of a bound, parsed and printed; the store prints with it)
    {"store"},  # the database: schema, SQL, Store / AsyncStore, the decision watcher
    {"policy", "identity", "arguments", "trust", "edits", "grant_terms"},  # rules → verdicts; who decides (and their
    # keys, trusted operators, decision signatures); a call's arguments and their edits
    {"audit", "runtime"},  # the event sink and the process registries / hook types
    {"policy_source", "limits", "anomaly", "notify", "approval", "config"},  # what the guard composes
    {"grant_gate"},  # standing grants in the decision (store, trust, policy below it)
    {"guard"},  # the decision core
    {"protect", "integrations", "mcp", "server", "cli", "demo", "__init__", "__main__"},  # entry points
]


def _floor(part: str) -> int:
    for level, names in enumerate(FLOORS):
        if part in names:
            return level
    raise AssertionError(f"sentinel.{part} is on no floor: add it to FLOORS in {__file__}")


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def test_every_module_imports_only_from_its_floor_or_below() -> None:
    offenders: list[str] = []
    for path in sorted((ROOT / "sentinel").rglob("*.py")):
        rel = path.relative_to(ROOT / "sentinel")
        own = _floor(rel.parts[0].removesuffix(".py"))
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        exempt = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if node.lineno in exempt:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "sentinel":
                    continue
                target = parts[1] if len(parts) > 1 else "__init__"
                if _floor(target) > own:
                    offenders.append(f"sentinel/{rel.as_posix()}:{node.lineno} imports {name}")
    assert offenders == [], "\n".join(offenders)
