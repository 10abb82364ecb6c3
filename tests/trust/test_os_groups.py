"""``approvers:`` may name OS groups: the waiting call looks up the groups this host gives the
account a vote was signed for (never the groups the vote claims), and so does the Decider."""

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

RID, DIGEST = "ab" * 16, "cd" * 32


def _account_with_a_group_root_lacks() -> tuple[str, str]:
    mine = os_groups(pwd.getpwuid(os.getuid()).pw_name)
    for entry in pwd.getpwall():
        extra = os_groups(entry.pw_name) - mine
        if extra:
            return entry.pw_name, sorted(extra)[0]
    raise AssertionError("no account with a group of its own on this machine")


def test_os_groups_come_from_the_user_database() -> None:
    me = pwd.getpwuid(os.getuid())
    assert grp.getgrgid(me.pw_gid).gr_name in os_groups(me.pw_name)
    assert os_groups("token:ci-bot") == frozenset()
    assert os_groups("no-such-account-here") == frozenset()


def test_a_vote_counts_for_an_os_group_of_the_account_it_was_signed_for(tmp_path: Path) -> None:
    account, group = _account_with_a_group_root_lacks()
    me = pwd.getpwuid(os.getuid()).pw_name
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    key = generate_key(tmp_path / "k" / "operator-key.pem")
    add_operator(folder / "operators.json", "dana", key.public_key)  # no groups in the file
    trusted = load_operators(folder / "operators.json")
    now = time.time()
    own = OwnRequest(RID, DIGEST, now - 1, now + 60, DecisionTerms(approvers=(group,)))

    def vote(as_account: str, claimed: tuple[str, ...] = ()) -> Vote:
        fields = dict(request_id=RID, digest=DIGEST, verdict="approve", operator="dana",
                      decided_at=now, expires_at=now + 60, groups=claimed, account=as_account)
        return Vote("dana", "approve", now, sign_decision(key, **fields), None, claimed,
                    as_account)  # fmt: skip

    def record(v: Vote) -> RequestRecord:
        return RequestRecord(RID, "approved", "pay", {}, DIGEST, None, 1, "h", None, "r", (),
                             "", None, None, None, None, "queue", now - 1, now + 60, votes=(v,))  # fmt: skip

    assert tally(record(vote(account)), own, trusted, now).counted == ("dana",)
    # The same operator deciding as an account outside the group does not count, even when the
    # vote claims the group (a person's signed groups are not where membership comes from).
    refused = tally(record(vote(me, (group,))), own, trusted, now)
    assert refused.counted == () and "not among the approvers" in refused.refused[0][1]
