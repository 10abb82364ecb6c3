"""Rules: load a policy file (YAML or the original JSON format) and evaluate calls against it.

>>> from sentinel.policy import parse_policy
>>> policy = parse_policy('rules: [{id: no_deletes, function_pattern: "delete_*", action: block}]')
>>> policy.evaluate("Delete_User", {"user_id": 1}).action
<Action.BLOCK: 'block'>
"""

from __future__ import annotations

from sentinel.policy.evaluate import Policy
from sentinel.policy.loader import DEFAULT_MAX_BYTES, load_policy, parse_policy, policy_from_data
from sentinel.policy.models import (
    OPERATORS,
    Action,
    AllGroup,
    AnyGroup,
    Condition,
    NotGroup,
    PolicyCase,
    PolicyFile,
    Rule,
)
from sentinel.policy.verdict import ConditionTrace, RuleMatch, RuleTrace, Verdict

__all__ = [
    "DEFAULT_MAX_BYTES",
    "OPERATORS",
    "Action",
    "AllGroup",
    "AnyGroup",
    "Condition",
    "ConditionTrace",
    "NotGroup",
    "Policy",
    "PolicyCase",
    "PolicyFile",
    "Rule",
    "RuleMatch",
    "RuleTrace",
    "Verdict",
    "load_policy",
    "parse_policy",
    "policy_from_data",
]
