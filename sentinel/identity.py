"""Who is deciding: the operator's identity as the kernel knows it.

The account comes from the real uid (``pwd.getpwuid(os.getuid())``), never from ``$USER`` or
``$LOGNAME``, which whoever starts a process can set. On Linux ``/proc/self/loginuid`` names the
account that originally logged in (it survives ``su``/``sudo``; 4294967295 means unset).
``SSH_CONNECTION`` is recorded as provenance only: it is an environment variable too.
``SENTINEL_OPERATOR`` adds a display name shown next to the account, never instead of it.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket

from sentinel.store.models import OperatorIdentity

#: /proc/self/loginuid value meaning "no login uid set".
LOGINUID_UNSET = 4294967295


def _account(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"  # no passwd entry (containers): still a kernel fact, not an env var


def login_uid() -> int | None:
    """The login uid from ``/proc/self/loginuid``, or None when unset or unavailable."""
    try:
        with open("/proc/self/loginuid", encoding="ascii") as fh:
            value = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    return None if value == LOGINUID_UNSET or value < 0 else value


def ssh_client() -> str | None:
    """``"addr port"`` of the SSH client from ``SSH_CONNECTION`` (unverified provenance), or None."""
    raw = os.environ.get("SSH_CONNECTION", "").split()
    if len(raw) >= 2:
        return f"{raw[0][:64]} {raw[1][:8]}"
    return None


def current_operator(channel: str = "cli") -> OperatorIdentity:
    """The identity of the person running this process, for recording a decision."""
    uid = os.getuid()
    luid = login_uid()
    display = (os.environ.get("SENTINEL_OPERATOR") or "").strip()[:80] or None
    return OperatorIdentity(
        account=_account(uid),
        uid=uid,
        login_uid=luid,
        login_account=None if luid is None else _account(luid),
        host=socket.gethostname(),
        ssh_client=ssh_client(),
        display_name=display,
        channel=channel,
    )


def os_groups(account: str | None) -> frozenset[str]:
    """The OS groups of ``account`` as this host's user database says (primary and
    supplementary), for ``approvers:`` lists naming OS groups; empty for an unknown account or
    an API token (``token:NAME``)."""
    if not account or account.startswith("token:"):
        return frozenset()
    try:
        entry = pwd.getpwnam(account)
        ids = os.getgrouplist(account, entry.pw_gid)
    except (KeyError, OSError):
        return frozenset()
    names = set()
    for gid in ids:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return frozenset(names)
