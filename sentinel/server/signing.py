"""``sentinel serve``'s service key: how API decisions are signed.

A person deciding in the command center signs with their own operator key. A decision made over
the HTTP API is made by a token, not by a key holder at a keyboard, so the server signs it with
its **service key** — an Ed25519 key trusted in the operators file with ``"kind": "service"`` — on
behalf of the token's name, binding the token's role and groups into the signature
(:meth:`sentinel.trust.decide.Decider.service`). The waiting call accepts a service key's
signature for any operator name and lets ``approvers`` match the bound role and groups: trusting
a service key means trusting the server to say who its tokens are.

* The key is ``service-key.pem`` in the configuration folder (``$SENTINEL_SERVICE_KEY``, or
  ``sentinel serve --service-key PATH``), mode 0600, made by ``sentinel operator init --service``
  and trusted by ``sentinel operator add NAME --service --key ed25519:…``.
* **Fail-secure start:** when the operators file lists anyone (so the waiting calls want
  signatures), ``sentinel serve`` refuses to start without a trusted, unrevoked service key — an
  API whose every approval would be refused by the waiting call is worse than none.
* The operators file is read again for every decision: a service key revoked while the server
  runs stops signing at once (the decision is refused with 403, nothing recorded).

This module does not import Starlette.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import SentinelConfigError
from sentinel.secure_files import config_dir
from sentinel.server.auth import Principal
from sentinel.store.models import OperatorIdentity
from sentinel.trust.decide import Decider
from sentinel.trust.keys import OperatorKey, load_key
from sentinel.trust.operators import TrustedOperators, load_operators, operators_path

SERVICE_KEY_ENV = "SENTINEL_SERVICE_KEY"
SERVICE_KEY_FILE_NAME = "service-key.pem"


def default_service_key_path(env: Mapping[str, str] | None = None) -> Path:
    """``$SENTINEL_SERVICE_KEY``, else ``service-key.pem`` in the configuration folder."""
    env = os.environ if env is None else env
    explicit = env.get(SERVICE_KEY_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    return config_dir(env) / SERVICE_KEY_FILE_NAME


def _how_to(key_path: Path, key: OperatorKey | None, ops: Path | None) -> str:
    where = f" --key {key_path}" if key_path != default_service_key_path() else ""
    make = "" if key is not None else f"sentinel operator init --service{where}, then "
    public = key.public_key if key is not None else "<the line it prints>"
    file = f" --file {ops}" if ops is not None and ops != operators_path() else ""
    return f"{make}(as the operators file's admin) sentinel operator add sentinel-serve --service --key {public}{file}"


def service_key_problem(
    key: OperatorKey | None, key_path: Path, trusted: TrustedOperators
) -> str | None:
    """Why ``key`` cannot sign API decisions that ``trusted``'s waiting calls accept, or None."""
    ops = trusted.path
    if key is None:
        return f"there is no service key at {key_path}"
    entry = trusted.by_key.get(key.key_id)
    if entry is None:
        return f"the service key {key_path} ({key.key_id}) is not in the operators file {ops}"
    if not entry.is_service:
        return (
            f"the key {key_path} is trusted in the operators file {ops} as operator "
            f"{entry.name!r}, not as a service (field 'kind' is not \"service\"): a person's key "
            "signs only for that person"
        )
    if entry.revoked_at is not None:
        return (
            f"the service key {key_path} ({entry.name!r} in the operators file {ops}) was "
            f"revoked at {entry.revoked_at}"
        )
    return None


@dataclass(frozen=True)
class ServiceSigning:
    """The server's service key (None: decisions are unsigned) and where its trust is read."""

    key: OperatorKey | None
    key_path: Path
    operators_path: Path | None = None  # None: the default (read again for every decision)
    signed: bool = False  # whether the operators file listed anyone at start-up

    @classmethod
    def load(
        cls, key_path: Path | None = None, operators: Path | None = None
    ) -> ServiceSigning:
        """At start-up: load the key and check it is trusted when signing is expected.

        Raises SentinelConfigError (the server does not start) when the operators file lists
        operators and the key is missing, unreadable, unsafe, not trusted, trusted as a person
        or revoked; also for a key path given explicitly (``--service-key`` or
        ``$SENTINEL_SERVICE_KEY``) that does not exist."""
        explicit = key_path is not None or bool(os.environ.get(SERVICE_KEY_ENV))
        path = Path(key_path).absolute() if key_path is not None else default_service_key_path()
        trusted = load_operators(operators, missing_ok=True)
        if explicit and not os.path.lexists(path):
            raise SentinelConfigError(
                f"service key {path} does not exist (named by "
                f"{'--service-key' if key_path is not None else '$' + SERVICE_KEY_ENV})",
                hint=f"create it with: sentinel operator init --service --key {path}",
            )
        key = load_key(path) if os.path.lexists(path) else None
        if trusted.operators:
            why = service_key_problem(key, path, trusted)
            if why is not None:
                raise SentinelConfigError(
                    f"API decisions must be signed (the operators file {trusted.path} lists "
                    f"operators) and {why}, so every API approval would be refused: not starting",
                    hint=_how_to(path, key, trusted.path),
                )
        return cls(key, path, operators, bool(trusted.operators))

    @property
    def mode(self) -> str:
        """A few words for the start-up banner."""
        if not self.signed or self.key is None:
            return "decisions unsigned: the operators file lists no one"
        return f"decisions signed with service key {self.key.key_id} ({self.key_path})"

    def trusted(self) -> TrustedOperators:
        return load_operators(self.operators_path, missing_ok=True)

    def decider(self, principal: Principal, operator: OperatorIdentity) -> Decider:
        """The decider for one API decision by ``principal``, with the operators file as it is
        now (a revoked service key refuses instead of signing). SentinelConfigError when the
        operators file cannot be trusted."""
        trusted = self.trusted()
        if self.key is None:
            # Unsigned: still refused (no trusted service key) when the file now lists someone.
            return Decider(
                operator,
                None,
                None,
                trusted,
                self.key_path,
                on_behalf_of=principal.name,
                role=principal.role,
                groups=principal.groups,
                account=f"token:{principal.name}",
            )
        return Decider.service(
            self.key,
            trusted,
            operator_name=principal.name,
            token=principal.name,
            role=principal.role,
            groups=principal.groups,
            operator=operator,
        )


__all__ = [
    "SERVICE_KEY_ENV",
    "SERVICE_KEY_FILE_NAME",
    "ServiceSigning",
    "default_service_key_path",
    "service_key_problem",
]
