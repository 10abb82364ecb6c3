# mypy: disable-error-code="attr-defined"
"""The command center's standing-grant work: ``g`` on a card (approve + grant, one decision) and
the Grants view (``5``; ``r`` revokes). A mixin of :class:`~sentinel_tui.app.SentinelApp`, kept
apart so the app module stays about the queue.

As everywhere in the app, the store is touched only in thread workers (through
:class:`~sentinel_tui.data.DataSource`), which post messages; the handlers here own the UI.
"""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.css.query import NoMatches
from textual.worker import get_current_worker

from sentinel.redact import safe_text
from sentinel.store.models import RequestRecord
from sentinel_tui.grant_dialog import GrantDialog, GrantDraft
from sentinel_tui.messages import GrantRecorded, GrantRevoked, GrantsLoaded, RequestChecked
from sentinel_tui.views.grants import GrantsView, bound_texts, grant_status

#: Most grants the view lists (newest first).
GRANTS_SHOWN = 500


class GrantFlow:
    """Grant dialog and Grants view handlers, mixed into the app (``self`` is the
    :class:`~sentinel_tui.app.SentinelApp`; its attributes are untyped here)."""


    _grants_at = 0.0
    _grants_trailing = False  # a reload is scheduled for the end of the throttle gap

    @property
    def grants_view(self) -> GrantsView:
        return self.query_one(GrantsView)

    def _grant_dialog(self, request_id: str | None = None) -> GrantDialog | None:
        """The grant dialog on screen (on ``request_id`` when given), if any."""
        for screen in self.screen_stack:
            if isinstance(screen, GrantDialog) and (
                request_id is None or screen.request_id == request_id
            ):
                return screen
        return None

    # --- g: approve + grant ------------------------------------------------------------------

    def request_grant(self, rid: str | None) -> None:
        """``g``: open the grant dialog on the card's request (captured at the key press)."""
        if not self._decision_allowed(rid):
            return
        assert rid is not None
        record = self.queue.records.get(rid)
        if record is None:
            self.notify("The request is no longer in the queue.", severity="warning", markup=False)
            return
        if self._refused(record, True):
            return
        if record.terms.quorum > 1:
            self.notify(
                f"Its rule needs {record.terms.quorum} approvals: a grant can only be made with "
                "the approval that decides a request. Approve with a (nothing is granted).",
                title="No grant here", severity="warning", markup=False, timeout=8,
            )
            return
        from sentinel.grant_terms import not_grantable

        why = not_grantable(self._policy(), record.rule_id)
        if why is not None:
            self.notify(
                f"Request {rid[:8]}: {why}. Approve with a (nothing is granted).",
                title="No grant here", severity="warning", markup=False, timeout=8,
            )
            return
        dialog = GrantDialog(record, clock=self.clock, value_params=self._value_params())
        self.push_screen(dialog, self._grant_closed)
        self._check_request(rid)  # decided meanwhile (the poll has not shown it yet)?

    def _policy(self) -> Any:
        """The policy the Rules view loaded, or None (no rules file)."""
        info = self.query_one("RulesView").info
        return info.policy if info is not None else None

    def _value_params(self) -> tuple[str, ...]:
        """The policy's value parameters (the library's defaults without a rules file)."""
        from sentinel.grant_terms import DEFAULT_VALUE_PARAMS

        return tuple(getattr(self._policy(), "value_params", None) or DEFAULT_VALUE_PARAMS)

    def _grant_closed(self, draft: GrantDraft | None) -> None:
        self._poll_now.set()

    @work(thread=True, group="grant-check", exit_on_error=False)
    def _check_request(self, rid: str) -> None:
        try:
            record: RequestRecord | None = self.data.get(rid)
        except Exception:  # not found / the store failed: the confirmation says so if it matters
            record = None
        self.post_message(RequestChecked(rid, record))

    def on_request_checked(self, msg: RequestChecked) -> None:
        dialog = self._grant_dialog(msg.request_id)
        if dialog is not None and msg.record is not None and not msg.record.is_pending:
            dialog.show_decided(msg.record)

    def tell_grant_dialog_gone(self, rec: RequestRecord) -> bool:
        """The poll saw ``rec`` leave the queue: tell an open grant dialog on it (True: there
        was one, the toast is not needed). While its own decision is on the way the worker's
        outcome says what happened."""
        dialog = self._grant_dialog(rec.id)
        if dialog is None:
            return False
        if dialog.sent is None:
            dialog.show_decided(rec)
        return True

    def on_grant_dialog_confirmed(self, msg: GrantDialog.Confirmed) -> None:
        msg.stop()
        self._inflight.add(msg.draft.request_id)
        self._record_grant(msg.draft)

    @work(thread=True, group="decide", exit_on_error=False)
    def _record_grant(self, draft: GrantDraft) -> None:
        self.post_message(GrantRecorded(self.data.approve_with_grant(draft)))

    def on_grant_recorded(self, msg: GrantRecorded) -> None:
        o = msg.outcome
        self._inflight.discard(o.request_id)
        dialog = self._grant_dialog(o.request_id)
        if o.ok:
            if o.request_id in self._seen:
                self._decided_here.add(o.request_id)
            grant = o.grant
            what = "; ".join(bound_texts(grant)) or "no bounds"
            fn = safe_text(o.record.function if o.record else "?", 60)
            self.notify(
                f"Approved {fn} ({o.request_id[:8]}) and granted {safe_text(what, 120)} "
                f"(grant {grant.id[:8]})",
                title="Approved + granted", markup=False, timeout=5,
            )
            if dialog is not None:
                dialog.finish()
            self._grants_changed()
        elif dialog is not None:
            if o.decided_elsewhere and o.record is not None:
                dialog.show_decided(o.record)
            else:
                dialog.failed(safe_text(o.error or "could not record it", 300))
        elif o.refused:
            self._tell_refused(o.error or "you may not approve this request")
        self._poll_now.set()

    # --- the Grants view (5) -------------------------------------------------------------------

    def show_grants(self) -> None:
        """The view became current: load the grants now."""
        self.grants_view.table.focus()
        self.load_grants()

    @work(thread=True, exclusive=True, group="grants", exit_on_error=False)
    def load_grants(self) -> None:
        try:
            grants = self.data.grants(GRANTS_SHOWN)
        except Exception as exc:
            self.post_message(GrantsLoaded([], safe_text(f"{type(exc).__name__}: {exc}", 300)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(GrantsLoaded(grants))

    def on_grants_loaded(self, msg: GrantsLoaded) -> None:
        try:
            view = self.grants_view
        except NoMatches:
            return  # closing
        if msg.error is not None:
            self.status.set(error=msg.error)
            return
        view.apply(msg.grants)

    def _grants_changed(self, min_gap: float = 0.0) -> None:
        """The data changed: reload the grants when their view is shown, at most every
        ``min_gap`` seconds; a change inside the gap is loaded when the gap ends (never
        dropped: it may be the last change for a while)."""
        try:
            if self.current_view != "grants":
                return
        except NoMatches:
            return  # closing: the trailing timer outlived the views
        wait = self._grants_at + min_gap - time.monotonic()
        if wait <= 0:
            self._grants_at = time.monotonic()
            self.load_grants()
        elif not self._grants_trailing:
            self._grants_trailing = True
            self.set_timer(wait, self._grants_trailing_load)

    def _grants_trailing_load(self) -> None:
        self._grants_trailing = False
        self._grants_changed()

    def on_grants_view_revoke_asked(self, msg: GrantsView.RevokeAsked) -> None:
        if self.readonly:
            return
        gid = msg.grant_id
        if gid is None:
            self.notify("No grant selected.", severity="warning", markup=False)
            return
        grant = self.grants_view.grants.get(gid)
        if grant is not None and grant_status(grant, self.clock()) != "active":
            self.notify(f"Grant {gid[:8]} is already {grant_status(grant, self.clock())}.",
                        severity="warning", markup=False)
            return
        self._revoke(gid)

    @work(thread=True, group="revoke", exit_on_error=False)
    def _revoke(self, gid: str) -> None:
        self.post_message(GrantRevoked(self.data.revoke_grant(gid)))

    def on_grant_revoked(self, msg: GrantRevoked) -> None:
        o = msg.outcome
        if o.ok:
            g = o.grant
            self.notify(
                f"Revoked grant {o.grant_id[:8]}: {safe_text(g.function, 60)} of "
                f"{safe_text(g.agent or '—', 40)} no longer runs without asking.",
                title="Grant revoked", markup=False, timeout=5,
            )
        else:
            self.notify(f"Grant {o.grant_id[:8]}: {safe_text(o.error or 'not revoked', 300)}. "
                        "Nothing changed.", title="Not revoked", severity="error", markup=False)
        if self.current_view == "grants":
            self.load_grants()

    def tick_grants(self) -> None:
        """Time left moves: refresh the view's countdowns (no I/O)."""
        try:
            self.grants_view.tick()
        except NoMatches:
            pass

    def grant_rows(self) -> list[Any]:
        """The grants the view shows (tests read this)."""
        return list(self.grants_view.grants.values())
