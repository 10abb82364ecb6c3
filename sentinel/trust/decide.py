"""Deciding a request as a person (or as ``sentinel serve`` for an API token): check that this
decider may decide it, sign the decision, and record it as a vote.

Every place that decides — the command center, ``sentinel queue approve/deny``, ``--web`` and the
HTTP API — goes through :class:`Decider`, so each refuses the same things with the same words
before anything is written, and each signs the same way. The refusals here are for the person at
the keyboard; the waiting call checks everything again for itself (:mod:`sentinel.trust.check`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from sentinel.edits import build_edit, check_edit
from sentinel.errors import DecisionRefused, EditRefused
from sentinel.identity import current_operator, os_groups
from sentinel.store import AsyncStore
from sentinel.store.grants import GrantRecord, NewGrant
from sentinel.store.models import ArgumentEdit, OperatorIdentity, RequestRecord, Vote
from sentinel.store.operations import StoreOperations
from sentinel.trust.check import is_requester
from sentinel.trust.decision import sign_decision
from sentinel.trust.keys import OperatorKey, default_key_path, load_key
from sentinel.trust.operators import TrustedOperator, TrustedOperators, load_operators


@dataclass(frozen=True)
class Decider:
    """Who decides and how they sign.

    ``key`` signs (None: decisions are unsigned); ``entry`` is the key's entry in the trusted
    operators file. A person's decisions are named by their entry (or, unsigned, their OS
    account); a service key (``sentinel serve``) signs for ``on_behalf_of``, binding the API
    token's ``role`` and ``groups``."""

    operator: OperatorIdentity
    key: OperatorKey | None = None
    entry: TrustedOperator | None = None
    trusted: TrustedOperators | None = None
    key_path: Path | None = None
    on_behalf_of: str | None = None
    role: str | None = None
    groups: tuple[str, ...] = field(default=())
    account: str | None = None

    @classmethod
    def local(
        cls,
        channel: str = "cli",
        *,
        key_path: Path | None = None,
        trusted: TrustedOperators | None = None,
    ) -> Decider:
        """The person running this process: their OS identity, and their operator key when they
        have one (``$SENTINEL_OPERATOR_KEY`` or the configuration folder). Raises
        SentinelConfigError for an operators file or key file that cannot be trusted."""
        operator = current_operator(channel)
        trusted = load_operators(missing_ok=True) if trusted is None else trusted
        path = Path(key_path) if key_path is not None else default_key_path()
        key = load_key(path) if path.exists() else None
        entry = trusted.by_key.get(key.key_id) if key is not None else None
        return cls(operator, key, entry, trusted, path, account=operator.account)

    @classmethod
    def service(
        cls,
        key: OperatorKey,
        trusted: TrustedOperators,
        *,
        operator_name: str,
        token: str,
        role: str | None,
        groups: Iterable[str] = (),
        operator: OperatorIdentity | None = None,
    ) -> Decider:
        """``sentinel serve`` deciding for the API token ``token`` named ``operator_name``."""
        ident = operator or replace(current_operator("api"), display_name=operator_name)
        return cls(
            ident,
            key,
            trusted.by_key.get(key.key_id),
            trusted,
            None,
            on_behalf_of=operator_name,
            role=role,
            groups=tuple(groups),
            account=f"token:{token}",
        )

    # -- who -----------------------------------------------------------------------------------

    @property
    def signs(self) -> bool:
        """True when decisions are signed with a key the operators file trusts (not revoked)."""
        entry = self.entry
        if self.key is None or entry is None or entry.revoked_at is not None:
            return False
        return entry.is_service == (self.on_behalf_of is not None)

    @property
    def name(self) -> str:
        """The operator name votes are recorded under."""
        if self.on_behalf_of is not None:
            return self.on_behalf_of
        if self.entry is not None and self.key is not None:
            return self.entry.name
        return self.operator.account

    @cached_property
    def names(self) -> frozenset[str]:
        """What an ``approvers:`` list can name this decider by (computed once: the OS groups
        are a user-database lookup)."""
        names = {self.name, *self.groups}
        if self.on_behalf_of is None:
            # The OS groups of the name the waiting call will know this decider by: the
            # operators-file entry's (signed) or this process's account (unsigned); an API
            # token's name is bound to no OS account.
            names.update(os_groups(self.name))
        if self.role:
            names.add(self.role)
        if self.entry is not None and not self.entry.is_service:
            names.update(self.entry.groups)
        elif self.on_behalf_of is not None and self.trusted is not None:
            person = self.trusted.by_name.get(self.on_behalf_of)
            if person is not None and not person.is_service:
                names.update(person.groups)
        return frozenset(names)

    @property
    def signing_expected(self) -> bool:
        """Whether the waiting calls will want a signature: the operators file lists someone."""
        return self.trusted is not None and bool(self.trusted.operators)

    # -- may I ---------------------------------------------------------------------------------

    def refusal(self, record: RequestRecord, approve: bool, now: float | None = None) -> str | None:
        """Why this decider may not decide ``record`` (for the person at the keyboard), or None.
        A decision refused here writes nothing."""
        now = time.time() if now is None else now
        if self.signing_expected and not self.signs:
            return self._unsigned_refusal()
        terms = record.terms
        allowed = terms.may_decide(now - record.created_at)
        if allowed and not self.names & set(allowed):
            groups = sorted(self.names - {self.name, self.role or ""})
            who = self.name + (f" (groups: {', '.join(groups)})" if groups else " (no groups)")
            if self.role:
                who += f", role {self.role}"
            rule = f" (rule {record.rule_id})" if record.rule_id else ""
            return (
                f"only {', '.join(allowed)} may decide request {record.id[:8]}{rule}; you are {who}"
            )
        vote = Vote(self.name, "approve", now, account=self.account)
        if approve and not terms.self_approval and is_requester(vote, self.name, record.requester):
            return (
                f"request {record.id[:8]} was made by you ({self.account or self.name}); its rule "
                "forbids approving your own request"
            )
        earlier = next((v for v in record.votes if v.operator == self.name), None)
        if earlier is not None and record.is_pending:
            return (
                f"you already voted on request {record.id[:8]} ({earlier.verdict}): each operator "
                "counts once"
            )
        return None

    def _unsigned_refusal(self) -> str:
        path = self.trusted.path if self.trusted is not None else None
        if self.on_behalf_of is not None:
            return (
                "decisions must be signed, and this server has no trusted service key: "
                "sentinel operator init --service, then sentinel operator add NAME --service "
                "--key 'ed25519:…'"
            )
        if self.key is None:
            return (
                f"decisions must be signed (operators file {path}), and you have no operator key "
                f"at {self.key_path}: create it with `sentinel operator init`, then ask an admin "
                "to trust it"
            )
        if self.entry is None:
            return (
                f"your operator key {self.key.key_id} is not in the trusted operators file "
                f"{path}: ask an admin to run `sentinel operator add NAME --key "
                f"{self.key.public_key}`"
            )
        return (
            f"your operator key ({self.entry.name}) was revoked at {self.entry.revoked_at}: "
            "ask an admin for a new entry"
        )

    # -- deciding ------------------------------------------------------------------------------

    def vote(
        self,
        record: RequestRecord,
        approve: bool,
        reason: str | None,
        now: float | None = None,
        *,
        edit_digest: str | None = None,
    ) -> Vote:
        """This decider's (signed, when it signs) vote on ``record``; ``edit_digest`` signs an
        approval of the edited call instead of the call as sent."""
        now = round(time.time() if now is None else now, 6)
        verdict = "approve" if approve else "deny"
        groups = tuple(sorted(self.names - {self.name})) if self.on_behalf_of else ()
        signature = None
        if self.signs and self.key is not None:
            signature = sign_decision(
                self.key,
                request_id=record.id,
                digest=record.digest if edit_digest is None else edit_digest,
                verdict=verdict,
                operator=self.name,
                decided_at=now,
                expires_at=record.expires_at,
                role=self.role,
                groups=self.groups if self.on_behalf_of else groups,
                account=self.account,
            )
        return Vote(
            operator=self.name,
            verdict=verdict,
            decided_at=now,
            signature=signature,
            role=self.role,
            groups=self.groups if self.on_behalf_of else groups,
            account=self.account,
            label=self.operator.label,
            channel=self.operator.channel,
            reason=reason,
        )

    def decide(
        self,
        store: StoreOperations,
        request_id: str,
        approve: bool,
        reason: str | None = None,
        *,
        edits: Mapping[str, Any] | None = None,
        typed: bool = True,
        policy: Any = None,
    ) -> RequestRecord:
        """Check, sign and record a decision. Raises DecisionRefused (nothing written),
        DecisionConflict / DuplicateVote / RequestNotFound as :meth:`Store.decide` does.

        ``edits`` approves the call with changed arguments (``{parameter: value}``; text typed by
        the request's recorded schema when ``typed``, JSON values otherwise): see
        :meth:`prepare_edit`. The vote is signed over the edit digest."""
        record = store.get(request_id)
        edit = None
        if record.is_pending:
            why = self.refusal(record, approve)
            if why is not None:
                raise DecisionRefused(why)
            if edits is not None:
                edit = self.prepare_edit(record, approve, edits, typed=typed, policy=policy)
        vote = self.vote(record, approve, reason, edit_digest=None if edit is None else edit.digest)
        return store.decide(record.id, approve, self.operator, reason, vote=vote, edit=edit)

    async def decide_async(
        self,
        store: AsyncStore,
        request_id: str,
        approve: bool,
        reason: str | None = None,
        *,
        edits: Mapping[str, Any] | None = None,
        typed: bool = True,
        policy: Any = None,
    ) -> RequestRecord:
        """:meth:`decide` on an :class:`AsyncStore`."""
        record = await store.get(request_id)
        edit = None
        if record.is_pending:
            why = self.refusal(record, approve)
            if why is not None:
                raise DecisionRefused(why)
            if edits is not None:
                edit = self.prepare_edit(record, approve, edits, typed=typed, policy=policy)
        vote = self.vote(record, approve, reason, edit_digest=None if edit is None else edit.digest)
        return await store.decide(record.id, approve, self.operator, reason, vote=vote, edit=edit)

    def prepare_edit(
        self,
        record: RequestRecord,
        approve: bool,
        edits: Mapping[str, Any],
        *,
        typed: bool = True,
        policy: Any = None,
    ) -> ArgumentEdit:
        """The :class:`ArgumentEdit` this decider would record on ``record``, checked: the values
        against the recorded schema (:func:`sentinel.edits.check_edit`) and, with ``policy``
        (a :class:`sentinel.policy.Policy`), the edited call against the rules — an edit never
        turns a blocked call into an allowed one. Raises
        :class:`~sentinel.errors.EditRefused` saying why (nothing is written). The waiting call
        checks all of it again, with the real arguments and its own limits and anomaly state."""
        if not approve:
            raise EditRefused(
                f"request {record.id[:8]}: only an approval can carry edited arguments"
            )
        values = check_edit(record, edits, typed=typed)
        if policy is not None:
            from sentinel.policy import Action

            verdict = policy.evaluate(
                record.function, {**record.arguments, **values}, record.agent_id
            )
            if verdict.action is Action.BLOCK:
                rule = f" by rule {verdict.rule_id}" if verdict.rule_id else ""
                raise EditRefused(
                    f"request {record.id[:8]}: the edited call is blocked{rule} "
                    f"({verdict.reason}); an edit cannot approve a blocked call"
                )
        return build_edit(record, values, self.name, self.operator.label)

    # -- standing grants -----------------------------------------------------------------------

    def sign_grant(self, new: NewGrant, now: float | None = None) -> NewGrant:
        """``new`` with its creation time set and, when this decider signs, its signature
        (:func:`sentinel.trust.grants.sign_grant`). Raises DecisionRefused when grants must be
        signed (an operators file lists someone) and this decider cannot sign."""
        from sentinel.trust.grants import sign_grant

        if self.signing_expected and not self.signs:
            raise DecisionRefused(self._unsigned_refusal().replace("decisions", "grants", 1))
        new = replace(new, created_at=round(time.time() if now is None else now, 6))
        if self.signs and self.key is not None:
            return sign_grant(self.key, new, self.name)
        return replace(new, signer=self.name)

    def create_grant(self, store: StoreOperations, new: NewGrant) -> GrantRecord:
        """Sign and store a standing grant (see :meth:`sign_grant`)."""
        return store.create_grant(self.sign_grant(new), self.operator)

    def approve_with_grant(
        self, store: StoreOperations, request_id: str, new: NewGrant, reason: str | None = None
    ) -> tuple[RequestRecord, GrantRecord]:
        """Approve ``request_id`` (checked and signed as :meth:`decide`) and create the signed
        grant ``new`` in the same transaction (:meth:`Store.approve_with_grant`)."""
        record = store.get(request_id)
        if record.is_pending:
            why = self.refusal(record, True)
            if why is not None:
                raise DecisionRefused(why)
        vote = self.vote(record, True, reason)
        signed = self.sign_grant(new)
        return store.approve_with_grant(record.id, signed, self.operator, reason, vote=vote)

    async def approve_with_grant_async(
        self, store: AsyncStore, request_id: str, new: NewGrant, reason: str | None = None
    ) -> tuple[RequestRecord, GrantRecord]:
        """:meth:`approve_with_grant` on an :class:`AsyncStore`."""
        record = await store.get(request_id)
        if record.is_pending:
            why = self.refusal(record, True)
            if why is not None:
                raise DecisionRefused(why)
        vote = self.vote(record, True, reason)
        signed = self.sign_grant(new)
        return await store.approve_with_grant(record.id, signed, self.operator, reason, vote=vote)

    async def create_grant_async(self, store: AsyncStore, new: NewGrant) -> GrantRecord:
        """:meth:`create_grant` on an :class:`AsyncStore`."""
        return await store.create_grant(self.sign_grant(new), self.operator)
