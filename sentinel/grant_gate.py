"""Standing grants in the decision: whether a call the policy sends for approval may run now,
under an operator's grant, without waiting.

The guard asks :meth:`GrantGate.use` once its decision is ``require_approval``; the answer is a
counted use (:class:`~sentinel.store.grants.GrantUse`) or None (the call goes for approval as
before). A grant applies only when all of these hold:

* the decision is ``require_approval`` *because the policy said so*: the verdict's action is
  ``require_approval`` and no hook (a limit, an anomaly score) asked for a person or a block —
  a grant answers a rule's question, never a limit's or an anomaly's, and never lowers a block;
* every enforced rule that matched with ``require_approval`` is grantable: not marked
  ``grantable: false``, no quorum above one (a grant is one person's yes), and when the rule
  names ``approvers``, the grant's maker is among them;
* an active, unexpired grant for this agent and function has room under its caps and every one
  of its bounds holds for the call's arguments;
* with signed decisions on, the grant row carries a valid signature of a trusted operator whose
  key is not revoked now (a row without one is refused and audited as ``grant_refused``).

The store counts the use atomically (:meth:`~sentinel.store.operations.StoreOperations.consume_grant`):
the write lock makes sure no two processes overspend a grant. To keep calls for which no grant
exists from taking the write lock, the gate keeps the active grants in memory and re-reads them
only when the database's ``data_version`` changed (any commit anywhere): a revocation reaches
the very next call.

Any error here (the store unavailable, a malformed row) is the caller's to turn into "go for
approval": a grant that cannot be checked never lets a call run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sentinel.errors import DecisionNotTrusted
from sentinel.identity import os_groups
from sentinel.policy import Action
from sentinel.store.grants import GrantRecord, GrantUse

if TYPE_CHECKING:
    from sentinel.policy.evaluate import Policy
    from sentinel.runtime import Decision
    from sentinel.store.location import SyncStore
    from sentinel.trust.operators import TrustedOperators

_APPROVE = Action.REQUIRE_APPROVAL
_STRICT = _APPROVE.strictness


class GrantGate:
    """One process's view of the standing grants of one database (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._by_call: dict[tuple[str, str], tuple[GrantRecord, ...]] = {}
        self._rules: tuple[object, dict[str, Any]] = (None, {})
        self._verified: dict[tuple[str, str, str], tuple[str, frozenset[str]]] = {}  # → key id, names

    # -- eligibility ---------------------------------------------------------------------------

    def _grantable_rules(self, policy: Policy) -> dict[str, Any]:
        last = self._rules
        if last[0] is policy:
            return last[1]
        rules = {r.id: r for r in policy.rules if r.action == "require_approval"}
        self._rules = (policy, rules)
        return rules

    def eligible(self, policy: Policy, decision: Decision) -> tuple[str, ...] | None:
        """The ``approvers`` a grant's maker must be among (empty: anyone), or None when no
        grant may answer this decision."""
        verdict = decision.verdict
        if decision.action is not _APPROVE or verdict.action is not _APPROVE:
            return None
        for esc in decision.escalations:
            if esc.action.strictness >= _STRICT:
                return None  # a limit or an anomaly asked for a person (or a block)
        rules = self._grantable_rules(policy)
        approvers: list[str] = []
        matched = False
        for match in verdict.matches:
            if match.action is not _APPROVE:
                continue
            rule = rules.get(match.rule_id)
            if rule is None or not rule.grantable or rule.quorum > 1:
                return None
            matched = True
            if rule.approvers:
                if approvers and not set(approvers) & set(rule.approvers):
                    return None
                approvers = list(rule.approvers) if not approvers else [
                    a for a in approvers if a in rule.approvers
                ]
        if not matched:
            return None  # the default action, not a rule: nobody said what may be granted
        return tuple(approvers)

    # -- candidates ----------------------------------------------------------------------------

    def _active(self, store: SyncStore, agent: str, function: str) -> tuple[GrantRecord, ...]:
        """The cached active grants of (agent, function). Re-read when the database changed
        since — but only when the cache has none for this call: with candidates the store's
        consume is the authority (it re-reads each row under the write lock), and every use
        is itself a change that would otherwise re-read the set on every call. A grant made
        meanwhile is seen by the first call that finds none cached; a revoked, expired or used up
        one is refused by the consume and dropped here right after."""
        with self._lock:
            cached = self._by_call.get((agent, function), ())
            if cached and self._version is not None:
                return cached
        version = store.data_version()
        with self._lock:
            if version != self._version:
                by_call: dict[tuple[str, str], list[GrantRecord]] = {}
                for grant in store.active_grants():
                    by_call.setdefault((grant.agent, grant.function), []).append(grant)
                self._by_call = {k: tuple(v) for k, v in by_call.items()}
                self._version = version
            return self._by_call.get((agent, function), ())

    def forget(self) -> None:
        """Drop what is cached (the next call re-reads the grants)."""
        with self._lock:
            self._version = None
            self._by_call = {}

    # -- trust ---------------------------------------------------------------------------------

    def _refusal(
        self,
        grant: GrantRecord,
        trusted: TrustedOperators | None,
        approvers: tuple[str, ...],
        now: float,
    ) -> str | None:
        """Why ``grant`` may not let this call run (signature, approvers), or None."""
        if trusted is None:
            if not approvers:
                return None
            account = str((grant.operator or {}).get("account") or "")
            names = {account, grant.signer or "", *os_groups(account)} - {""}
        else:
            # The signature check (Ed25519, ~50 µs) is done once per grant row; whether its key
            # is still trusted and unrevoked is checked on every use, against the file as now.
            key = (grant.id, grant.signature or "", repr(grant.terms()))
            hit = self._verified.get(key)
            if hit is None:
                from sentinel.trust.grants import verify_grant

                try:
                    who = verify_grant(trusted, grant, now)
                except DecisionNotTrusted as exc:
                    return f"grant not signed by a trusted operator: {exc.detail}"
                own = os_groups(who.name) if who.via is None else frozenset()
                hit = (who.key_id, frozenset(who.names | own))
                if len(self._verified) > 1000:
                    self._verified.clear()
                self._verified[key] = hit
            entry = trusted.by_key.get(hit[0])
            if entry is None or entry.revoked_by(now):
                self._verified.pop(key, None)
                return (
                    f"grant not signed by a trusted operator: the key that signed grant "
                    f"{grant.id[:12]} is no longer trusted"
                )
            names = set(hit[1])
        if approvers and not names & set(approvers):
            return (
                f"grant {grant.id[:12]} was made by {grant.signer or grant.created_by}, who is not "
                f"among the rule's approvers ({', '.join(approvers)})"
            )
        return None

    # -- use -----------------------------------------------------------------------------------

    def covers(
        self,
        store: SyncStore,
        policy: Policy,
        decision: Decision,
        function: str,
        params: Mapping[str, Any],
        agent_id: str | None,
        *,
        trusted: TrustedOperators | None,
    ) -> GrantRecord | None:
        """The grant :meth:`use` would count this call in right now, counting nothing and
        writing nothing (for a preview: an integration asking whether a person is needed).
        Reads the grants again rather than trusting the cache."""
        approvers = self.eligible(policy, decision)
        if approvers is None:
            return None
        now = time.time()
        value = decision.verdict.value_at_risk
        for grant in store.active_grants():
            if grant.agent != (agent_id or "") or grant.function != function:
                continue
            if not grant.is_valid(now) or not grant.fits(params) or not grant.has_room(value):
                continue
            if self._refusal(grant, trusted, approvers, now) is None:
                return grant
        return None

    def use(
        self,
        store: SyncStore,
        policy: Policy,
        decision: Decision,
        function: str,
        params: Mapping[str, Any],
        agent_id: str | None,
        *,
        digest: str | None,
        trusted: TrustedOperators | None,
    ) -> GrantUse | None:
        """Count this call in a grant that answers ``decision`` (see the module doc); None when
        none does. Raises what the store raises (the guard sends the call for approval then)."""
        approvers = self.eligible(policy, decision)
        if approvers is None:
            return None
        agent = agent_id or ""
        grants = self._active(store, agent, function)
        if not grants:
            return None
        verdict = decision.verdict
        value = verdict.value_at_risk
        now = time.time()
        fitting = [g for g in grants if g.is_valid(now) and g.fits(params) and g.has_room(value)]
        if not fitting and not any(not g.is_valid(now) for g in grants):
            return None  # nothing fits (an expired one is still recorded by consume below)
        use = store.consume_grant(
            agent,
            function,
            params,
            value,
            digest=digest,
            rule_id=decision.rule_id,
            policy_version=verdict.policy_version,
            accept=lambda g: self._refusal(g, trusted, approvers, time.time()),
        )
        if use is None or use.grant.status != "active":
            self.forget()  # the set changed under the cache (ended, used up, refused)
        return use


_gates: dict[object, GrantGate] = {}
_gates_lock = threading.Lock()


def gate_for(location: object) -> GrantGate:
    """The process's one :class:`GrantGate` for a database (its location)."""
    with _gates_lock:
        gate = _gates.get(location)
        if gate is None:
            gate = _gates[location] = GrantGate()
        return gate


__all__ = ["GrantGate", "gate_for"]
