"""``approvers:`` may name OS groups: the waiting call looks up the groups this host gives the
account the operators file names the operator after (never the groups or the account the vote
claims), and so does the Decider."""

from __future__ import annotations

import grp
import os
import pwd
import time
from pathlib import Path

from sentinel.identity import os_groups
from sentinel.store.models import DecisionTerms, RequestRecord, Vote
from sentinel.trust import add_operator, generate_key, load_operators, sign_decision
from sentinel.trust.check import OwnRequest, tally
from sentinel.trust.operators import NAME_RE

RID, DIGEST = "ab" * 16, "cd" * 32


def _account_with_a_group_root_lacks() -> tuple[str, str]:
    """An account and an OS group of it that this user lacks, named otherwise than the account
    (so an operator named after the account cannot match the group by its name)."""
    mine = os_groups(pwd.getpwuid(os.getuid()).pw_name)
    for entry in pwd.getpwall():
        if not NAME_RE.match(entry.pw_name):
            continue
        extra = sorted(g for g in os_groups(entry.pw_name) - mine - {entry.pw_name}
                       if NAME_RE.match(g))  # fmt: skip
        if extra:
            return entry.pw_name, extra[0]
    raise AssertionError("no account with a group of its own on this machine")


def test_os_groups_come_from_the_user_database() -> None:
    me = pwd.getpwuid(os.getuid())
    assert grp.getgrgid(me.pw_gid).gr_name in os_groups(me.pw_name)
    assert os_groups("token:ci-bot") == frozenset()
    assert os_groups("no-such-account-here") == frozenset()


def test_a_vote_counts_for_the_os_groups_of_the_operators_account(tmp_path: Path) -> None:
    """OS groups are those of the account the operators file names the operator after — bound
    by the admin — never of the account a vote says it was cast from: the signer writes that,
    so an operator outside the approvers could name an account inside them."""
    account, group = _account_with_a_group_root_lacks()
    me = pwd.getpwuid(os.getuid()).pw_name
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    keys = {n: generate_key(tmp_path / n / "operator-key.pem") for n in (account, "dana")}
    for name, key in keys.items():
        add_operator(folder / "operators.json", name, key.public_key)  # no groups in the file
    trusted = load_operators(folder / "operators.json")
    now = time.time()
    own = OwnRequest(RID, DIGEST, now - 1, now + 60, DecisionTerms(approvers=(group,)))

    def vote(name: str, as_account: str, claimed: tuple[str, ...] = ()) -> Vote:
        fields = dict(request_id=RID, digest=DIGEST, verdict="approve", operator=name,
                      decided_at=now, expires_at=now + 60, groups=claimed, account=as_account)
        return Vote(name, "approve", now, sign_decision(keys[name], **fields), None, claimed,
                    as_account)  # fmt: skip

    def record(v: Vote) -> RequestRecord:
        return RequestRecord(RID, "approved", "pay", {}, DIGEST, None, 1, "h", None, "r", (),
                             "", None, None, None, None, "queue", now - 1, now + 60, votes=(v,))  # fmt: skip

    # The operator trusted under the account's name, deciding from whatever account.
    assert tally(record(vote(account, me)), own, trusted, now).counted == (account,)
    # Another operator signing as that account gains none of its groups; nor does claiming the
    # group in the vote (a person's signed groups are not where membership comes from).
    for forged in (vote("dana", account), vote("dana", me, (group,))):
        refused = tally(record(forged), own, trusted, now)
        assert refused.counted == () and "not among the approvers" in refused.refused[0][1]
