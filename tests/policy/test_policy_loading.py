"""Loading: both formats, hardening, and a located PolicyError for every kind of bad file."""

from __future__ import annotations

import hashlib
import textwrap
import time
from pathlib import Path

import pytest

from sentinel.errors import PolicyError, SentinelConfigError
from sentinel.policy import Action, load_policy, parse_policy

# The rules file from the original project's README: no `name` fields (that crashed the original).
ORIGINAL_README_JSON = """{
  "version": "1.0",
  "default_action": "allow",
  "rules": [
    {
      "id": "financial_limit",
      "function_pattern": "transfer_*",
      "conditions": [{"param": "amount", "operator": "gt", "value": 100}],
      "action": "require_approval",
      "message": "Transfers over $100 require approval"
    },
    {
      "id": "block_deletes",
      "function_pattern": "delete_*",
      "action": "block",
      "message": "Delete operations are disabled"
    }
  ]
}
"""

# The shape of the original project's config/rules.json: $schema, names, descriptions, priorities.
ORIGINAL_CONFIG_JSON = """{
  "$schema": "./rules.schema.json",
  "version": "1.0",
  "default_action": "allow",
  "rules": [
    {"id": "financial_limit", "name": "Limit", "description": "over 100",
     "function_pattern": "transfer_*",
     "conditions": [{"param": "amount", "operator": "gt", "value": 100}],
     "action": "require_approval", "priority": 10, "message": "needs approval"},
    {"id": "block_dangerous", "name": "Block", "description": "deletes",
     "function_pattern": "delete_*", "conditions": [], "action": "block", "priority": 1,
     "message": "blocked"}
  ]
}
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_original_readme_json_loads_unchanged(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, ORIGINAL_README_JSON, "rules.json"))
    assert policy.evaluate("transfer_funds", {"amount": 50}).action is Action.ALLOW
    verdict = policy.evaluate("transfer_funds", {"amount": 5000})
    assert verdict.action is Action.REQUIRE_APPROVAL
    assert verdict.reason == "Transfers over $100 require approval"
    assert policy.evaluate("delete_user", {"user_id": 1}).reason == "Delete operations are disabled"


def test_original_config_json_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, ORIGINAL_CONFIG_JSON, "rules.json"))
    assert {r.id for r in policy.rules} == {"financial_limit", "block_dangerous"}
    assert policy.evaluate("delete_x", {}).action is Action.BLOCK


def test_json_without_json_suffix_is_detected(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, ORIGINAL_README_JSON, "policy.rules"))
    assert len(policy.rules) == 2


def test_version_source_loaded_at(tmp_path: Path) -> None:
    path = write(tmp_path, "rules: []\n")
    before = time.time()
    policy = load_policy(path)
    assert policy.version == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.source == path
    assert before <= policy.loaded_at <= time.time()


def test_yaml_12_scalars_no_surprise_coercions() -> None:
    policy = parse_policy(
        textwrap.dedent(
            """
            rules:
              - id: r
                function_pattern: ship
                action: block
                conditions: [{param: country, operator: eq, value: NO}]
            """
        )
    )
    # YAML 1.1 would have turned NO into False
    assert policy.rules[0].conditions[0].value == "NO"  # type: ignore[union-attr]
    assert policy.evaluate("ship", {"country": "NO"}).action is Action.BLOCK


def error_of(text: str, name: str = "rules.yaml", **kwargs: object) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(textwrap.dedent(text).lstrip("\n"), name, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, SentinelConfigError)
    assert info.value.file == name
    return info.value


BAD_FILES = {
    "unknown operator": (
        """
        rules:
          - id: big_transfer
            function_pattern: "transfer_*"
            conditions:
              - param: amount
                operator: greater_than
                value: 100
            action: block
        """,
        6,
        ["rule 'big_transfer'", "unknown operator 'greater_than'", "did you mean 'gt'"],
    ),
    "unknown field in rule": (
        """
        rules:
          - id: r
            function_pattern: x
            acton: block
        """,
        4,
        ["unknown field 'acton'", "did you mean 'action'"],
    ),
    "unknown top-level key": (
        """
        default_action: allow
        rulez: []
        """,
        2,
        ["unknown field 'rulez'", "did you mean 'rules'"],
    ),
    "unknown field in condition": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            conditions:
              - {param: a, op: gt, value: 1}
        """,
        6,
        ["unknown field 'op'", "did you mean 'operator'"],
    ),
    "unknown action": (
        """
        rules:
          - id: r
            function_pattern: x
            action: deny
        """,
        4,
        ["unknown action 'deny'", "did you mean 'block'"],
    ),
    "unknown default action": (
        """
        default_action: permit
        """,
        1,
        ["unknown action 'permit'", "allow"],
    ),
    "wrong type": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            priority: high
        """,
        5,
        ["'priority' must be a whole number", "'high'"],
    ),
    "yes is not a boolean": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            enabled: yes
        """,
        5,
        ["'enabled' must be true or false"],
    ),
    "bad regex": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            conditions:
              - param: cmd
                operator: regex
                value: "(unclosed"
        """,
        8,
        ["invalid regular expression", "missing )"],
    ),
    "backreference": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            conditions:
              - {param: cmd, operator: matches, value: '(a)\\1'}
        """,
        6,
        ["invalid regular expression", "backreferences are not supported"],
    ),
    "lookahead": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            conditions:
              - {param: cmd, operator: regex, value: 'rm(?= -rf)'}
        """,
        6,
        ["lookahead/lookbehind is not supported"],
    ),
    "duplicate rule id": (
        """
        rules:
          - {id: same, function_pattern: a, action: block}
          - {id: other, function_pattern: b, action: block}
          - {id: same, function_pattern: c, action: allow}
        """,
        4,
        ["duplicate rule id 'same'", "first used on line 2"],
    ),
    "duplicate key": (
        """
        default_action: block
        rules: []
        default_action: allow
        """,
        3,
        ["duplicate key 'default_action'", "first defined on line 1"],
    ),
    "yaml syntax error": (
        """
        rules:
          - id: r
            function_pattern: [x
            action: block
        """,
        4,
        ["YAML syntax error"],
    ),
    "python tag": (
        """
        rules:
          - id: !!python/object/apply:os.getpid []
            function_pattern: x
            action: block
        """,
        2,
        ["YAML tag '!!python/object/apply:os.getpid' is not allowed"],
    ),
    "alias": (
        """
        rules:
          - &base {id: a, function_pattern: x, action: block}
          - *base
        """,
        2,
        ["anchor", "not allowed"],
    ),
    "missing id": (
        """
        rules:
          - function_pattern: x
            action: block
        """,
        2,
        ["rule #1", "missing required field 'id'"],
    ),
    "in needs a list": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            conditions:
              - {param: a, operator: in, value: abc}
        """,
        6,
        ["operator 'in' needs a list"],
    ),
    "gt needs a number": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            conditions:
              - {param: a, operator: gt, value: lots}
        """,
        6,
        ["operator 'gt' needs a number"],
    ),
    "condition without value": (
        """
        rules:
          - id: r
            function_pattern: x
            action: block
            conditions:
              - {param: a, operator: eq}
        """,
        6,
        ["condition on 'a' has no value"],
    ),
    "top level not a mapping": ("- a\n- b\n", 1, ["top level must be a mapping"]),
    "empty file": ("", 1, ["empty"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_gives_located_error(case: str) -> None:
    text, line, fragments = BAD_FILES[case]
    err = error_of(text)
    assert err.line == line, str(err)
    message = str(err)
    assert message.startswith(f"rules.yaml:{line}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_json_errors_are_located_too() -> None:
    err = error_of('{\n  "rules": [],\n  "rules": []\n}\n', "rules.json")
    assert err.line == 3 and "duplicate key 'rules'" in str(err)
    err = error_of(
        '{\n  "default_action": "allow",\n  "rules": [\n    {"id": "r" "x"}\n  ]\n}\n', "rules.json"
    )
    assert err.line == 4 and "JSON syntax error" in str(err)
    err = error_of(
        '{"rules": [{"id": "r", "function_pattern": "x", "action": "block",\n "priority": NaN}]}',
        "rules.json",
    )
    assert err.line == 2
    err = error_of(
        '{"rules": [\n {"id": "r", "function_pattern": "x",\n  "action": "blok"}]}', "rules.json"
    )
    assert err.line == 3 and "did you mean 'block'" in str(err)
    err = error_of('{"rules": [],\n}', "rules.json")
    assert err.line == 2 and "trailing comma" in str(err)


def test_all_problems_are_listed() -> None:
    err = error_of(
        """
        rules:
          - id: r
            function_pattern: x
            action: deny
            priority: high
        """
    )
    problems = err.problems  # type: ignore[attr-defined]
    assert len(problems) == 2
    assert "and 1 more problem" in str(err)


def test_alias_bomb_is_refused_fast() -> None:
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        bomb += f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    start = time.perf_counter()
    with pytest.raises(PolicyError, match="not allowed"):
        parse_policy(bomb, "bomb.yaml")
    assert time.perf_counter() - start < 5  # generous: refused at the first anchor, not expanded


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("rules: []\n" + "#" * (1 << 20))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(path)
    small = tmp_path / "small.yaml"
    small.write_text("rules: []\n" + "#" * 200)
    with pytest.raises(PolicyError, match="larger than 100 bytes"):
        load_policy(small, max_bytes=100)


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"rules: []\nx: \xff\n")
    with pytest.raises(PolicyError, match="UTF-8") as info:
        load_policy(bad)
    assert info.value.line == 2


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(PolicyError, match="nesting"):
        parse_policy("a: " + "[" * 200 + "]" * 200)
    with pytest.raises(PolicyError, match="nesting"):
        parse_policy('{"a": ' + "[" * 5000 + "]" * 5000 + "}", fmt="json")


def test_catastrophic_regex_runs_in_linear_time() -> None:
    policy = parse_policy(
        "rules: [{id: r, function_pattern: f, action: block, "
        "conditions: [{param: s, operator: regex, value: '^(a|a)*$'}]}]"
    )
    start = time.perf_counter()
    verdict = policy.evaluate("f", {"s": "a" * 100_000 + "b"})
    elapsed = time.perf_counter() - start
    assert verdict.action is Action.ALLOW
    # Python's re needs ~25 s for 29 characters; RE2 is linear. Loose bound, not a benchmark.
    assert elapsed < 2.0
    assert policy.evaluate("f", {"s": "aaaa"}).action is Action.BLOCK


POLICY_WITH_TESTS = """
rules:
  - id: big
    function_pattern: "transfer_*"
    action: require_approval
    conditions: [{param: amount, operator: gt, value: 100}]
tests:
  - name: small transfer passes
    call: {function: transfer_funds, args: {amount: 5}}
    expect: {action: allow, rule: null}
  - name: big transfer needs approval
    call: {function: transfer_funds, args: {amount: "5000"}, agent: bot}
    expect: {action: require_approval, rule: big}
"""


def test_policy_tests_pass_at_load() -> None:
    policy = parse_policy(POLICY_WITH_TESTS)
    assert len(policy.model.tests) == 2


def test_failing_policy_test_makes_file_invalid() -> None:
    broken = POLICY_WITH_TESTS.replace(
        "expect: {action: allow, rule: null}", "expect: {action: block}"
    )
    err = error_of(broken)
    assert "policy test 'small transfer passes' failed" in str(err)
    assert "expected block, got allow" in str(err)
    assert err.line == 7


def test_policy_test_expecting_wrong_rule_fails() -> None:
    broken = POLICY_WITH_TESTS.replace("rule: big}", "rule: other}")
    err = error_of(broken)
    assert "expected rule 'other', got 'big'" in str(err)


def test_repository_rules_yaml_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "rules.yaml"
    if not path.exists():
        pytest.skip("no rules.yaml at the repository root")
    policy = load_policy(path)  # also runs the file's own test cases
    assert policy.rules
