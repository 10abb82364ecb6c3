"""The store's SQL lives in one module: no other library module and nothing in the command center
holds a SQL statement (only ``sentinel/store/sql.py`` and the migrations in ``schema.py``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Where statements may be written (repository-relative).
ALLOWED = {
    "sentinel/store/sql.py",
    "sentinel/store/schema.py",
    # The PostgreSQL schema, and the dialect's few statements with no mechanical translation.
    "sentinel/store/pgschema.py",
    "sentinel/store/dialect.py",
    # PostgreSQL roles: the grants and row policies of `sentinel db grants`.
    "sentinel/store/pggrants.py",
}

#: A statement: a string that starts with a statement keyword, or holds a clause that only SQL
#: has. Upper case only (the house style): prose in messages says "select" or "delete" freely.
_STARTS = re.compile(
    r"\A\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|PRAGMA|CREATE|DROP|ALTER|BEGIN|COMMIT|ROLLBACK"
    r"|SAVEPOINT|RELEASE|VACUUM|ATTACH|WITH\s+\w+\s+AS)\b"
)
_CLAUSE = re.compile(
    r"\bSELECT\s.+?\sFROM\s|\bINSERT\s+(OR\s+\w+\s+)?INTO\s|\bUPDATE\s+\w+\s+SET\s|\bDELETE\s+FROM\s",
    re.S,
)


def _is_sql(text: str) -> bool:
    return bool(_STARTS.search(text) or _CLAUSE.search(text))


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants (module, class and function docstrings are prose)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
        ):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def sql_literals(source: str, name: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal in ``source`` that is a SQL statement.

    An f-string is judged whole, with ``{}`` for each placeholder, so
    ``f"SELECT {cols} FROM t"`` is found even though no single piece of it is a statement.
    """
    tree = ast.parse(source, name)
    skip = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                skip.add(id(value))
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                else:
                    parts.append("{}")
            text = "".join(parts)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in skip:
                continue
            text = node.value
        else:
            continue
        if _is_sql(text):
            found.append((node.lineno, text))
    return found


def _offenders(folder: str) -> list[str]:
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        for line, text in sorted(sql_literals(path.read_text(encoding="utf-8"), rel)):
            out.append(f"{rel}:{line}: {text.strip()[:70]!r}")
    return out


def test_no_library_module_but_the_sql_module_holds_a_statement() -> None:
    offenders = _offenders("sentinel")
    assert offenders == [], "SQL outside sentinel/store/sql.py:\n" + "\n".join(offenders)


def test_the_command_center_holds_no_sql() -> None:
    offenders = _offenders("sentinel_tui")
    assert offenders == [], "the command center writes SQL:\n" + "\n".join(offenders)


def test_the_detector_finds_statements_and_ignores_prose() -> None:
    source = '''
"""Module doc: SELECT x FROM y is fine in a docstring."""
A = "SELECT id FROM requests WHERE id = ?"
B = f"UPDATE requests SET status = {status!r} WHERE id = ?"
C = ("INSERT OR IGNORE INTO t (a) "
     "VALUES (?)")
D = f"PRAGMA busy_timeout = {ms}"
E = "COMMIT"
F = conn.execute(f"SELECT {cols} FROM t")
def f():
    """DELETE FROM t in a docstring."""
    return "Select the rows to delete from the list"
G = "-----BEGIN PRIVATE KEY-----"
H = "request was deleted from the queue"
'''
    assert sorted(line for line, _ in sql_literals(source, "<test>")) == [3, 4, 5, 7, 8, 9]
