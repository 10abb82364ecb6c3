"""The Sentinel command center (Textual app).

Threading rule (Harlequin's): every store or file access runs in a ``@work(thread=True)`` worker
that ``post_message``\\ s its result; message handlers on the main thread own all UI state, and
widgets never do I/O. Change detection polls ``Store.data_version()`` (cheap) and queries the
pending requests only when it changed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer
from textual.worker import Worker, WorkerState, get_current_worker

from sentinel.redact import safe_text
from sentinel.store.location import PgLocation
from sentinel.store.models import (
    APPROVED,
    DENIED,
    ArgumentEdit,
    MetricsSnapshot,
    OperatorIdentity,
    RequestRecord,
)
from sentinel_tui.config import TuiConfig, load_config
from sentinel_tui.data import DataSource, DecisionOutcome, PolicyInfo, SigningState
from sentinel_tui.dialogs import DecisionDialog, DialogResult, HelpScreen, TextScreen
from sentinel_tui.edit_form import EditForm
from sentinel_tui.grant_flow import GrantFlow
from sentinel_tui.messages import (
    DataError,
    Decided,
    EditDecided,
    HistoryPage,
    IdentityKnown,
    MetricsReady,
    NotificationsFailed,
    PolicyLoaded,
    QueueSnapshot,
    ReplayReady,
    SigningKnown,
    Swept,
)
from sentinel_tui.render import (
    decision_terms,
    format_time,
    format_value,
    full_arguments,
    risk_level,
    safe,
    vote_progress,
)
from sentinel_tui.views.grants import GrantsView
from sentinel_tui.views.history import HistoryView
from sentinel_tui.views.metrics import MetricsView
from sentinel_tui.views.queue import QueueView
from sentinel_tui.views.rules import RulesView
from sentinel_tui.widgets.status_bar import StatusBar

VIEW_IDS = ("queue", "history", "metrics", "rules", "grants")
#: Event kinds that raise a toast when they arrive.
NOTIFY_KINDS = ("notification_failed",)
HELP_INTRO = (
    "a/d approve or deny the request on the card (the one you are reading). Big approvals ask "
    "first; Cancel is the default. g approves and grants more calls like it (bounds, duration, "
    "limits); e edits the arguments, then approves the edited call (ctrl+s). space marks, A/D "
    "decide the marked ones. p pauses live updates. 1-5 switch views "
    "(5: grants, r revokes); ctrl+p or : opens the command palette."
)


def _is_ssh() -> bool:
    return bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"))


class SentinelApp(GrantFlow, App[int]):
    """Live approval queue, history, metrics and rules, keyboard only, 80x24 and up."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: a subclass elsewhere finds it too
    TITLE = "Sentinel"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    NOTIFICATION_TIMEOUT = 4

    BINDINGS = [
        Binding("p", "pause", "Pause", id="app.pause"),
        Binding("question_mark,f1", "help", "Keys", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("1", "view('queue')", "Queue view", show=False, id="view.queue"),
        Binding("2", "view('history')", "History view", show=False, id="view.history"),
        Binding("3", "view('metrics')", "Metrics view", show=False, id="view.metrics"),
        Binding("4", "view('rules')", "Rules view", show=False, id="view.rules"),
        Binding("5", "view('grants')", "Grants view", show=False, id="view.grants"),
        Binding("colon", "command_palette", "Commands", show=False, id="app.palette"),
    ]

    def __init__(
        self,
        db_path: Path | str | PgLocation | None = None,
        rules_path: Path | str | None = None,
        readonly: bool = False,
        *,
        config: TuiConfig | None = None,
        keymap_path: Path | str | None = None,
        clock: Callable[[], float] | None = None,
        tick_interval: float | None = None,
        title: str | None = None,
        poll: bool = True,
        watch_terminal: bool = True,
        operator: OperatorIdentity | None = None,
        sweep_interval: float = 2.0,
    ) -> None:
        """
        Args:
            db_path: the database (default: the store's default path).
            rules_path: the policy file shown in the Rules view.
            readonly: observer mode; decision keys do not exist.
            config: settings (default: loaded from ``keymap_path`` or the default tui.toml).
            clock: wall clock for ages and countdowns (tests freeze it).
            tick_interval: seconds between countdown refreshes; 0 disables, None = 1 s
                (10 s over SSH, where per-second repaints cost bandwidth).
            poll: watch the database for changes (tests of static screens may turn it off
                after the first load).
            operator: who decides (default: the OS identity of this process).
            sweep_interval: seconds between store sweeps (requests of dead agent processes
                become ``cancelled``, overdue ones ``expired``); 0 disables. Read-only
                observers never sweep (they write nothing).
        """
        super().__init__()
        self.config = config if config is not None else load_config(keymap_path)
        self.clock: Callable[[], float] = clock or time.time
        self.data = DataSource(db_path, rules_path, operator=operator, clock=self.clock)
        self.readonly = readonly
        self.ssh = _is_ssh()
        if self.ssh:
            self.animation_level = "none"
        if tick_interval is None:
            tick_interval = 10.0 if self.ssh else 1.0
        self.tick_interval = tick_interval
        self.poll_enabled = poll
        self.sweep_interval = sweep_interval
        self.watch_terminal = watch_terminal
        if title:
            self.title = title
        self.paused = False
        self.arrived_while_paused = 0
        self._poll_now = threading.Event()
        self._seen: set[str] = set()
        #: How many of the newest pending requests the poll fetches; grows by a page when the
        #: operator scrolls to the end of the queue (see QueueView).
        self.queue_depth = max(1, self.config.queue_page)
        self._window_floor: tuple[float, str] | None = None  # oldest row of a full window
        self.pending_total = 0
        self._oldest_pending: float | None = None
        self._have_snapshot = False
        self._rows: list[RequestRecord] = []
        self._inflight: set[str] = set()
        self._decided_here: set[str] = set()
        self._last_decision_key = -1e9
        self._metrics: MetricsSnapshot | None = None
        self._metrics_at = 0.0
        self._history_at = 0.0
        self._history_loaded = False
        self._ticks = 0
        self._operator_label = ""
        #: Whether decisions here are signed (None until the identity worker has looked).
        self.signing: SigningState | None = None
        self._terminal_gone = False
        self.snapshot_count = 0  # for tests and benchmarks: QueueSnapshots applied
        self._policy_problem: str | None = None  # the invalid edit last told about
        self._stop_sweep = threading.Event()

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with ContentSwitcher(initial="queue", id="views"):
            yield QueueView(self.config, self.clock, readonly=self.readonly, id="queue")
            yield HistoryView(self.config.history_page, id="history")
            yield MetricsView(id="metrics")
            yield RulesView(has_rules_file=self.data.rules_path is not None, id="rules")
            yield GrantsView(self.clock, readonly=self.readonly, id="grants")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def queue(self) -> QueueView:
        return self.query_one(QueueView)

    @property
    def history(self) -> HistoryView:
        return self.query_one(HistoryView)

    @property
    def current_view(self) -> str:
        return self.query_one(ContentSwitcher).current or "queue"

    def on_mount(self) -> None:
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        self.status.set(
            db_path=self.data.db_display, readonly=self.readonly, live=True, view="queue"
        )
        self._start()
        self.queue.table.focus()
        if self.tick_interval > 0:
            self.set_interval(self.tick_interval, self._tick)
        if not self.is_headless and self.watch_terminal:
            self._install_terminal_guards()

    def on_unmount(self) -> None:
        self._stop_sweep.set()  # let the sweeper thread end now rather than after its wait
        self.data.stop_policy()  # the rules watcher thread ends; nothing is delivered after

    def _start(self) -> None:
        self._load_identity()
        self._poll_loop()
        # The library follows the rules file; its thread posts, never touching the UI.
        self.data.watch_policy(self._policy_changed, watch=self.config.watch_rules)
        self.load_policy()
        if not self.readonly and self.sweep_interval > 0:
            self._sweep_loop()

    def _policy_changed(self, info: PolicyInfo | None, manual: bool) -> None:
        """The rules file's state changed (on the rules watcher thread or a worker): hand it
        to the main thread as a message (never blocks)."""
        self.post_message(PolicyLoaded(info, manual))

    # --- terminal loss -------------------------------------------------------------------------

    def _install_terminal_guards(self) -> None:
        """SIGHUP or a dead terminal → exit cleanly (Textual's input thread would spin on EOF)."""
        try:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, self._terminal_lost)
            loop.add_signal_handler(signal.SIGTERM, self._terminal_lost)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        self.set_interval(2.0, self._check_terminal)

    def _check_terminal(self) -> None:
        try:
            alive = os.isatty(sys.__stdin__.fileno()) if sys.__stdin__ else False
        except (OSError, ValueError):
            alive = False
        if not alive:
            self._terminal_lost()

    def _terminal_lost(self) -> None:
        if self._terminal_gone:
            return
        self._terminal_gone = True
        self._detach_output()
        # Last resort: never linger without a terminal (nothing is lost, every decision is
        # committed before it is shown).
        timer = threading.Timer(5.0, os._exit, args=(0,))
        timer.daemon = True
        timer.start()
        self.exit(0)

    def _detach_output(self) -> None:
        """Let shutdown finish without a terminal.

        Textual's writer thread dies on the first write to a hung-up tty (EIO) and its bounded
        queue then blocks ``App.exit`` forever. Stop the old thread and give the driver an
        unbounded queue nobody needs to drain.
        """
        writer = getattr(self._driver, "_writer_thread", None)
        old = getattr(writer, "_queue", None)
        if writer is None or old is None:
            return
        try:
            old.put_nowait(None)
        except Exception:  # full: the thread is dead or about to die on EIO
            pass
        writer._queue = queue.Queue()

    # --- workers (all I/O happens here) --------------------------------------------------------

    @work(thread=True, exclusive=True, group="identity", exit_on_error=False)
    def _load_identity(self) -> None:
        # Messages, not call_from_thread: the app may be closing by the time the key is read.
        self.post_message(IdentityKnown(self.data.operator().label))
        if not self.readonly:
            # The operators file and this operator's key (file I/O): whether decisions made
            # here are signed, shown in the status bar before the first key press.
            self.post_message(SigningKnown(self.data.signing()))

    def on_identity_known(self, msg: IdentityKnown) -> None:
        self._operator_label = msg.label
        self.status.set(operator=msg.label)

    def on_signing_known(self, msg: SigningKnown) -> None:
        signing = msg.signing
        self.signing = signing
        self.status.set(
            signing_as=signing.name if signing.signs else None,
            unsigned=signing.problem if signing.expected and not signing.signs else None,
        )

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll_loop(self) -> None:
        """Check data_version every poll_interval; fetch pending rows only when it changed."""
        worker = get_current_worker()
        last: int | None = None
        known: dict[str, RequestRecord] = {}
        failing = False
        notified: int | None = None  # newest notification_failed seen (older ones are history)
        while not worker.is_cancelled:
            try:
                version = self.data.data_version()
                if notified is None:
                    notified = self.data.latest_seq(NOTIFY_KINDS)
                if version != last or self._poll_now.is_set():
                    if last is not None:
                        failed = self.data.events_since(NOTIFY_KINDS, notified)
                        if failed:
                            notified = failed[-1].seq
                            self.post_message(NotificationsFailed(failed))
                    self._poll_now.clear()
                    # Only the newest window is loaded (never every pending row); the counts
                    # and the oldest age are counted in the store.
                    depth = min(self.queue_depth, self.config.pending_limit)
                    rows = self.data.pending_newest(depth)
                    summary = self.data.pending_summary()
                    ids = {r.id for r in rows}
                    gone: list[RequestRecord] = []
                    for rid in [k for k in known if k not in ids][:50]:
                        try:
                            rec = self.data.get(rid)
                        except Exception:  # the row vanished entirely; nothing to tell
                            continue
                        if rec.status != "pending":  # still pending: only left the window
                            gone.append(rec)
                    known = {r.id: r for r in rows}
                    last = version
                    self.post_message(QueueSnapshot(
                        rows, version, gone, summary.total, summary.oldest_created_at,
                        complete=len(rows) < depth,
                    ))
                if failing:
                    failing = False
                    self.post_message(DataError("poll", ""))
            except Exception as exc:  # keep polling: the database may come back
                failing = True
                self.post_message(DataError("poll", f"{type(exc).__name__}: {exc}"))
                self._poll_now.wait(2.0)
                continue
            if not self.poll_enabled and last is not None:
                return
            self._poll_now.wait(self.config.poll_interval)

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False)
    def _sweep_loop(self) -> None:
        """Every ``sweep_interval`` seconds: requests whose agent process died become
        ``cancelled`` (and leave the queue with a toast naming why), overdue ones ``expired``."""
        worker = get_current_worker()
        while not worker.is_cancelled and not self._stop_sweep.is_set():
            try:
                changed = self.data.sweep()
            except Exception as exc:  # the poll loop reports database trouble; try again later
                self.post_message(DataError("sweep", f"{type(exc).__name__}: {exc}"))
                changed = 0
            if changed:
                self.post_message(Swept(changed))
            if not self.readonly:
                try:
                    signing = self.data.signing_if_changed()
                except Exception:  # shown at the next decision, which reads the files again
                    signing = None
                if signing is not None:
                    self.post_message(SigningKnown(signing))
            self._stop_sweep.wait(self.sweep_interval)

    @work(thread=True, group="decide", exit_on_error=False)
    def _decide(self, ids: list[str], approve: bool, reason: str | None, batch: bool) -> None:
        outcomes: list[DecisionOutcome] = self.data.decide_all(ids, approve, reason)
        self.post_message(Decided(outcomes, batch))

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def load_history(self, query: str, before_seq: int | None) -> None:
        """Fetch one page of events (keyset: older than ``before_seq``)."""
        try:
            flt = self.data.parse_filter(query)
            events = self.data.history(flt, before_seq, self.config.history_page)
        except Exception as exc:
            self.post_message(HistoryPage(query, [], before_seq is not None, safe_text(exc, 300)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(HistoryPage(query, events, before_seq is not None))

    @work(thread=True, exclusive=True, group="metrics", exit_on_error=False)
    def load_metrics(self) -> None:
        self.post_message(MetricsReady(self.data.metrics()))

    @work(thread=True, exclusive=True, group="policy", exit_on_error=False)
    def load_policy(self, manual: bool = False) -> None:
        """Load (at start) or re-validate the rules file now (``r`` with ``manual``, after the
        editor); the outcome arrives as a :class:`PolicyLoaded` message. Edits on disk need no
        call: the library's watcher (:class:`~sentinel.policy_source.PolicyFollower`) delivers
        them."""
        self.data.load_policy(manual)

    @work(thread=True, exclusive=True, group="replay", exit_on_error=False)
    def replay_rules(self, window: float) -> None:
        """``R``: replay the rules file on disk against the last ``window`` seconds of history."""
        try:
            info = self.data.replay(self.clock() - window)
        except Exception as exc:
            from sentinel_tui.data import ReplayInfo

            path = self.data.rules_path or Path("?")
            info = ReplayInfo(path, None, None, None, None, error=f"{type(exc).__name__}: {exc}")
        self.post_message(ReplayReady(info))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            err = event.worker.error
            text = safe_text(f"{type(err).__name__}: {err}", 200)
            try:
                self.status.set(error=text)
            except NoMatches:
                return  # the app is closing: its widgets are already gone
            self.notify(text, title=f"{event.worker.group} failed", severity="error", markup=False)
            if event.worker.group == "decide":
                self._inflight.clear()

    # --- message handlers (main thread) -------------------------------------------------------

    def on_data_error(self, msg: DataError) -> None:
        self.status.set(error=msg.error or None)

    def on_swept(self, msg: Swept) -> None:
        self._poll_now.set()  # the next poll shows them leaving (and _tell_gone says why)

    def on_notifications_failed(self, msg: NotificationsFailed) -> None:
        for ev in msg.events[-3:]:  # a burst of failures is three toasts, not thirty
            text = Text(end="")
            text.append_text(safe(ev.reason or "a notification could not be delivered", 200))
            if ev.function:
                text.append(" — request ")
                text.append_text(safe(ev.function, 60))
                if ev.request_id:
                    text.append(f" ({ev.request_id[:8]})")
            self.notify(text.plain, title="Notification failed", severity="error", markup=False, timeout=8)
        if len(msg.events) > 3:
            self.notify(
                f"{len(msg.events) - 3} more notification failures (History: status:notification_failed)",
                severity="error", markup=False,
            )
        if self.current_view == "history":
            self.history.reload()

    def on_replay_ready(self, msg: ReplayReady) -> None:
        self.query_one(RulesView).apply_replay(msg.info)
        info = msg.info
        if info is not None and info.report is not None:
            self.notify(f"Replay: {info.report.changed:,} of {info.report.events:,} decisions would change",
                        markup=False, timeout=3)

    def on_queue_snapshot(self, msg: QueueSnapshot) -> None:
        try:
            self._apply_snapshot(msg)
        except NoMatches:
            pass  # the app is closing: the poll's last snapshot came after the widgets went

    def _apply_snapshot(self, msg: QueueSnapshot) -> None:
        rows = msg.rows
        self.snapshot_count += 1
        first = not self._have_snapshot
        if first:
            # Start-up objects (Textual, Rich, the store) live as long as the app: freezing them
            # keeps the cyclic GC's full collections off them; unfrozen, each one paused a key
            # press 30-40 ms at 1M events (benchmarks/tui.py).
            self.call_after_refresh(gc.freeze)
        self._have_snapshot = True
        # Unseen rows older than the last full window's oldest were paged in, not new arrivals.
        floor = self._window_floor
        new = [r for r in rows if r.id not in self._seen
               and (floor is None or (r.created_at, r.id) > floor)]
        self._window_floor = None if msg.complete or not rows else (rows[-1].created_at, rows[-1].id)
        self.pending_total = msg.total
        self._oldest_pending = msg.oldest_created_at
        # Only what is pending now: a decided request never comes back, and a set of every id
        # ever seen would grow for as long as the app runs.
        self._seen = {r.id for r in rows}
        self._rows = rows
        self._tell_gone(msg.gone)
        self._tell_edit_form(msg.gone)
        # Ids decided here only matter until the poll shows them gone: keep those still pending,
        # or the set grows by every decision for as long as the app runs (soak: issue 20.8).
        self._decided_here &= self._seen
        if new and not first:
            self._announce(new)
        if self.paused:
            self.arrived_while_paused += len(new)
        else:
            self.queue.apply(rows, self.pending_total)
        self._update_status()
        self._data_changed()

    def _tell_gone(self, gone: Iterable[RequestRecord]) -> None:
        for rec in gone:
            if rec.id in self._decided_here or self.tell_grant_dialog_gone(rec):
                continue
            what = Text(end="")
            what.append_text(safe(rec.function, 60))
            what.append(f" ({rec.id[:8]}) {rec.status}")
            if rec.decided_by and rec.status in (APPROVED, DENIED):
                what.append(" by ")
                what.append_text(safe(rec.decided_by, 80))
            elif rec.decision_reason:
                what.append(": ")
                what.append_text(safe(rec.decision_reason, 80))
            title = {"cancelled": "Cancelled", "expired": "Expired"}.get(rec.status, "Decided elsewhere")
            self.notify(what.plain, title=title, severity="warning", markup=False)

    def _announce(self, new: list[RequestRecord]) -> None:
        if self.config.bell:
            self.bell()
        if not self.config.toast_new:
            return
        if len(new) == 1:
            r = new[0]
            level, _ = risk_level(r, self.config.confirm_value, self.config.confirm_risk)
            text = (
                f"{safe_text(r.function, 60)} from {safe_text(r.agent_id or '?', 30)}"
                f" · value {format_value(r.value_at_risk)} · {level}"
            )
        else:
            text = f"{len(new)} new requests"
        self.notify(text, title="New approval request", markup=False, timeout=3)

    def _update_status(self) -> None:
        rows = self._rows
        pending = max(self.pending_total, len(rows))
        oldest = self._oldest_pending
        policy = self.query_one(RulesView).info
        version = policy.version if policy and policy.version else None
        if version is None and rows:
            version = rows[0].policy_version  # the newest request
        self.status.set(
            pending=pending,
            oldest_age=None if oldest is None else self.clock() - oldest,
            live=not self.paused,
            arrived_while_paused=self.arrived_while_paused,
            policy_version=version,
            policy_valid=policy is None or policy.valid,
            policy_error=policy.problem.message if policy is not None and policy.problem else None,
        )

    def _data_changed(self) -> None:
        view = self.current_view
        if view in ("metrics", "rules"):
            self._maybe_metrics(1.0)
        elif view == "grants" and not self.paused:
            self._grants_changed(0.5)
        elif view == "history" and not self.paused:
            hv = self.history
            now = time.monotonic()
            if hv.table.cursor_row <= 0 and now - self._history_at > 1.0:
                self._history_at = now
                hv.reload()

    def _maybe_metrics(self, min_gap: float) -> None:
        now = time.monotonic()
        if now - self._metrics_at >= min_gap:
            self._metrics_at = now
            self.load_metrics()

    def on_metrics_ready(self, msg: MetricsReady) -> None:
        self._metrics = msg.snapshot
        self.query_one(MetricsView).apply(msg.snapshot)
        self.query_one(RulesView).set_hits(dict(msg.snapshot.top_rules))

    def on_history_page(self, msg: HistoryPage) -> None:
        self.history.apply_page(msg.query, msg.events, msg.append, msg.error)

    def on_policy_loaded(self, msg: PolicyLoaded) -> None:
        info = msg.info
        view = self.query_one(RulesView)
        before = view.info
        view.apply(info)
        if info is None:
            self._update_status()
            return
        was_problem = self._policy_problem
        self._policy_problem = info.error
        if info.valid and before is not None and before.version != info.version:
            summary = f" ({info.diff.summary()})" if info.diff is not None else ""
            self.notify(
                f"Rules reloaded: version {info.version[:12] if info.version else '?'}, "
                f"{len(info.rules)} rules{summary}",
                markup=False,
            )
        elif info.valid and was_problem:
            self.notify("Rules file valid again.", markup=False)
        elif info.valid and msg.manual:
            self.notify(f"Rules file valid, unchanged ({len(info.rules)} rules).", markup=False, timeout=3)
        if not info.valid and (msg.manual or info.error != was_problem):
            # Once per distinct problem (the status bar and the Rules view keep showing it).
            self.notify(
                safe_text(info.error or "invalid", 300),
                title="Rules file invalid" + (" — last good policy kept" if info.version else ""),
                severity="error",
                markup=False,
            )
        self._update_status()

    def on_decided(self, msg: Decided) -> None:
        ok = [o for o in msg.outcomes if o.ok]
        votes = [o for o in ok if o.voted]
        for o in msg.outcomes:
            self._inflight.discard(o.request_id)
            if o.ok and not o.voted and o.request_id in self._seen:
                # Not yet shown gone: the poll that shows it leaving must not say "elsewhere".
                # (A vote short of the quorum stays; whoever finishes it is named when it goes.)
                self._decided_here.add(o.request_id)
        if msg.batch:
            verb = "approved" if msg.outcomes and msg.outcomes[0].approve else "denied"
            text = f"{len(ok) - len(votes)} of {len(msg.outcomes)} {verb}"
            if votes:
                text += f"; {len(votes)} voted, waiting for more approvers"
            refused = [o for o in msg.outcomes if o.refused]
            if refused:
                text += f"; {len(refused)} refused: {safe_text(refused[0].error or '', 200)}"
            self.notify(text, markup=False, severity="error" if refused else "information")
        for o in msg.outcomes:
            if o.voted and o.record is not None:
                self._tell_vote(o.record, o.approve, quiet=msg.batch)
            elif o.ok and not msg.batch:
                fn = safe_text(o.record.function if o.record else "?", 60)
                self.notify(
                    f"{'Approved' if o.approve else 'Denied'} {fn} ({o.request_id[:8]})",
                    markup=False,
                    timeout=3,
                )
            elif o.refused and not msg.batch:
                self._tell_refused(o.error or "you may not decide this request")
            elif not o.ok and not o.refused:
                self._tell_conflict(o)
        for o in ok:
            self.queue.marked.discard(o.request_id)
        self._poll_now.set()

    def _tell_vote(self, record: RequestRecord, approve: bool, quiet: bool) -> None:
        """A vote short of the quorum: say how far it is, and show it on the card now (the
        poll would show it a moment later)."""
        if record.id in self.queue.records:
            self.queue.records[record.id] = record
            if self.queue.card.request_id == record.id and not self.paused:
                self.queue.render_card(record)
        if quiet:
            return
        terms = record.terms
        if approve:
            more = terms.quorum - len(record.approvals)
        else:
            more = terms.deny_quorum - (len(record.votes) - len(record.approvals))
        who = "another approver" if more <= 1 else f"{more} more approvers"
        self.notify(
            f"voted: {vote_progress(record)}; waiting for {who} — "
            f"{safe_text(record.function, 60)} ({record.id[:8]})",
            title="Vote recorded",
            markup=False,
            timeout=5,
        )

    def _tell_refused(self, why: str) -> None:
        self.notify(
            f"{safe_text(why, 400)}. Nothing was recorded.",
            title="You may not decide this",
            severity="error",
            markup=False,
            timeout=10,
        )

    def poll_soon(self) -> None:
        """Ask the poll worker to fetch the queue now (e.g. a deeper window after paging)."""
        self._poll_now.set()

    # --- what the views ask for (messages: the views never call the app) -----------------------

    @on(QueueView.DecisionAsked)
    def _decision_asked(self, msg: QueueView.DecisionAsked) -> None:
        if msg.approve is None:
            self.request_decision_with_reason(msg.request_id)
        else:
            self.request_decision(msg.request_id, msg.approve)

    @on(QueueView.GrantAsked)
    def _grant_asked(self, msg: QueueView.GrantAsked) -> None:
        self.request_grant(msg.request_id)

    @on(QueueView.BatchAsked)
    def _batch_asked(self, msg: QueueView.BatchAsked) -> None:
        self.request_batch(msg.ids, msg.approve)

    @on(QueueView.ArgumentsAsked)
    def _arguments_asked(self, msg: QueueView.ArgumentsAsked) -> None:
        self.show_full(msg.record)

    # --- edit, then approve (``e``) ---------------------------------------------------------------

    @on(QueueView.EditAsked)
    def _edit_asked_on_card(self, msg: QueueView.EditAsked) -> None:
        self.request_edit(msg.request_id)

    def request_edit(self, rid: str | None) -> None:
        """``e``: open the edit form on the card's request (typed by its recorded schema)."""
        if not self._decision_allowed(rid):
            return
        assert rid is not None
        record = self.queue.records.get(rid)
        if record is None or self._refused(record, True):
            return
        if not (record.arg_schema or {}).get("properties"):
            self.notify(
                f"{safe_text(record.function, 60)} ({rid[:8]}) recorded no argument schema: it "
                "cannot be edited (approve or deny it as sent).",
                title="Cannot edit", severity="warning", markup=False,
            )  # fmt: skip
            return

        def done(edit: ArgumentEdit | None) -> None:
            if edit is not None:
                self.notify(
                    f"{safe_text(record.function, 60)} ({rid[:8]}) approved with edits: "
                    f"{safe_text(edit.describe(), 200)}",
                    title="Approved (edited)", markup=False,
                )  # fmt: skip

        self.push_screen(EditForm(record), done)

    def _tell_edit_form(self, gone: Iterable[RequestRecord]) -> None:
        """An open edit form whose request left the queue (decided elsewhere, expired) says so
        at once and can decide nothing."""
        form = self.screen
        if isinstance(form, EditForm) and form.closed_reason is None:
            for rec in gone:
                if rec.id == form.record.id and rec.id not in self._inflight:
                    form.request_gone(rec)

    @on(EditForm.Submitted)
    def _edit_submitted(self, msg: EditForm.Submitted) -> None:
        self._inflight.add(msg.record.id)
        self._decide_edit(msg.form, msg.record.id, msg.values, msg.reason)

    @work(thread=True, group="decide", exit_on_error=False)
    def _decide_edit(
        self, form: EditForm, rid: str, values: dict[str, str], reason: str | None
    ) -> None:
        self.post_message(EditDecided(form, self.data.decide_edit(rid, values, reason)))

    @on(EditDecided)
    def _edit_decided(self, msg: EditDecided) -> None:
        o = msg.outcome
        self._inflight.discard(o.request_id)
        if o.ok and o.request_id in self._seen:
            self._decided_here.add(o.request_id)
        msg.form.outcome(o.ok, o.record, o.error)

    @on(QueueView.OlderPageWanted)
    def _older_page_wanted(self, msg: QueueView.OlderPageWanted) -> None:
        self.queue_depth = min(msg.depth, self.config.pending_limit)
        self.poll_soon()

    @on(HistoryView.PageWanted)
    def _history_page_wanted(self, msg: HistoryView.PageWanted) -> None:
        self.load_history(msg.query, msg.before_seq)

    @on(RulesView.EditAsked)
    def _edit_asked(self, msg: RulesView.EditAsked) -> None:
        self.edit_rules()

    @on(RulesView.ReloadAsked)
    def _reload_asked(self, msg: RulesView.ReloadAsked) -> None:
        self.load_policy(manual=True)

    @on(RulesView.ReplayAsked)
    def _replay_asked(self, msg: RulesView.ReplayAsked) -> None:
        self.replay_rules(msg.window)

    def _tell_conflict(self, o: DecisionOutcome) -> None:
        rec = o.record
        if rec is not None and rec.status != "pending":
            who = safe_text(rec.decided_by or "the system", 80)
            when = format_time(rec.decided_at) if rec.decided_at else "?"
            text = f"{safe_text(rec.function, 60)} ({rec.id[:8]}) was already {rec.status} by {who} at {when}. Nothing changed."
        else:
            text = f"{o.request_id[:8]}: {safe_text(o.error or 'decision failed', 200)}. Nothing changed."
        self.notify(text, title="Not decided", severity="error", markup=False, timeout=8)

    # --- deciding ------------------------------------------------------------------------------

    def _decision_allowed(self, rid: str | None) -> bool:
        if self.readonly:
            self.notify("Read-only observer: decisions are disabled.", severity="warning", markup=False)
            return False
        if rid is None:
            self.notify("No request selected.", severity="warning", markup=False)
            return False
        now = time.monotonic()
        if now - self._last_decision_key < self.config.debounce or rid in self._inflight:
            return False  # a double press decides once
        self._last_decision_key = now
        return True

    def needs_confirmation(self, record: RequestRecord) -> bool:
        level, _ = risk_level(record, self.config.confirm_value, self.config.confirm_risk)
        value = record.value_at_risk or 0.0
        return level == "HIGH" or (self.config.confirm_value > 0 and value >= self.config.confirm_value)

    def _summary(self, record: RequestRecord) -> Text:
        level, why = risk_level(record, self.config.confirm_value, self.config.confirm_risk)
        text = Text(end="")
        text.append_text(safe(record.function, 80, "bold"))
        text.append(f"  ({record.id[:12]})\n", style="dim")
        text.append("agent  ")
        text.append_text(safe(record.agent_id or "—", 40))
        text.append(f"\nvalue  {format_value(record.value_at_risk)}   risk {level} ({why})\n")
        text.append("why    ")
        text.append_text(safe(record.reason or "—", 200))
        terms = decision_terms(record, self.clock())
        if terms:
            text.append("\nwho    ")
            text.append_text(Text(" · ", style="dim", end="").join(terms))
        return text

    def _refused(self, record: RequestRecord | None, approve: bool) -> bool:
        """Tell the operator, and True, when they may not decide ``record`` (the decider the
        identity worker loaded; the decision worker checks again before writing)."""
        if record is None:
            return False
        why = self.data.quick_refusal(record, approve)
        if why is None:
            return False
        self._tell_refused(why)
        return True

    def request_decision(self, rid: str | None, approve: bool) -> None:
        """``a``/``d``: decide the request whose id was on the card at the key press."""
        if not self._decision_allowed(rid):
            return
        assert rid is not None
        record = self.queue.records.get(rid)
        if self._refused(record, approve):
            return  # before any dialog: nobody confirms what cannot be recorded
        if approve and record is not None and self.needs_confirmation(record):
            body = self._summary(record)
            body.append("\n\nThis approval is above the confirmation threshold.", style="bold yellow")

            def done(result: DialogResult | None) -> None:
                if result is not None and result.choice == "approve":
                    self._send([rid], True, result.reason, batch=False)

            self.push_screen(
                DecisionDialog("Approve?", body, [("approve", "Approve", "warning")]), done
            )
            return
        self._send([rid], approve, None, batch=False)

    def request_decision_with_reason(self, rid: str | None) -> None:
        """``r``: type a reason, then approve or deny (Cancel is the default)."""
        if not self._decision_allowed(rid):
            return
        assert rid is not None
        record = self.queue.records.get(rid)
        # Deny is refused for the same reasons as approve except self-approval (checked once
        # the dialog says which it is).
        if self._refused(record, False):
            return
        body = self._summary(record) if record else Text(rid)

        def done(result: DialogResult | None) -> None:
            if result is not None:
                self._send([rid], result.choice == "approve", result.reason, batch=False)

        self.push_screen(
            DecisionDialog(
                "Decide with a reason",
                body,
                [("deny", "Deny", "error"), ("approve", "Approve", "warning")],
            ),
            done,
        )

    def request_batch(self, ids: list[str], approve: bool) -> None:
        """``A``/``D``: decide the marked requests after showing what will be decided."""
        if self.readonly:
            return
        ids = [i for i in ids if i in self.queue.records and i not in self._inflight]
        if not ids:
            self.notify("No marked requests (space marks).", severity="warning", markup=False)
            return
        refused = {
            rid: why for rid in ids
            if (why := self.data.quick_refusal(self.queue.records[rid], approve)) is not None
        }
        if len(refused) == len(ids):
            first = next(iter(refused.values()))
            more = f" (and {len(ids) - 1} more marked request(s) likewise)" if len(ids) > 1 else ""
            self._tell_refused(first + more)
            return
        skipped = [rid for rid in ids if rid in refused]
        ids = [rid for rid in ids if rid not in refused]
        verb = "Approve" if approve else "Deny"
        body = Text(f"{verb} these {len(ids)} requests?\n\n", style="bold", end="")
        total = 0.0
        for rid in ids:
            r = self.queue.records[rid]
            total += r.value_at_risk or 0.0
            body.append(f"  {rid[:8]}  ")
            body.append_text(safe(r.function, 40, "bold"))
            body.append("  ")
            body.append_text(safe(r.agent_id or "—", 20))
            body.append(f"  {format_value(r.value_at_risk)}\n")
        body.append(f"\ntotal value {format_value(total)}")
        if skipped:
            body.append(f"\n\n{len(skipped)} marked request(s) left out: you may not decide them\n",
                        style="bold yellow")
            for rid in skipped[:5]:
                body.append(f"  {rid[:8]}  ")
                body.append_text(safe(refused[rid], 160, "yellow"))
                body.append("\n")

        def done(result: DialogResult | None) -> None:
            if result is not None:
                self._send(ids, approve, result.reason, batch=True)

        choice = ("approve", "Approve all", "warning") if approve else ("deny", "Deny all", "error")
        self.push_screen(DecisionDialog(f"{verb} {len(ids)} marked", body, [choice]), done)

    def _send(self, ids: list[str], approve: bool, reason: str | None, batch: bool) -> None:
        ids = [i for i in ids if i not in self._inflight]
        if not batch and ids and self._refused(self.queue.records.get(ids[0]), approve):
            return  # e.g. approving your own request, chosen in the reason dialog
        if not ids:
            return
        self._inflight.update(ids)
        self._decide(ids, approve, reason, batch)

    # --- other actions -------------------------------------------------------------------------

    def action_view(self, name: str) -> None:
        if name not in VIEW_IDS:
            return
        self.query_one(ContentSwitcher).current = name
        self.status.set(view=name)
        if name == "queue":
            self.queue.table.focus()
            if not self.paused:  # ages went stale while another view was shown
                self.queue.tick(ages=True)
        elif name == "history":
            self.history.table.focus()
            if not self._history_loaded:
                self._history_loaded = True
                self.history.reload()
        elif name == "metrics":
            self.query_one(MetricsView).focus()
            self._maybe_metrics(0.0)
        elif name == "rules":
            self.query_one("#rules-table", DataTable).focus()
            self._maybe_metrics(0.0)
        elif name == "grants":
            self.show_grants()
        self.refresh_bindings()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.arrived_while_paused = 0
            self.queue.apply(self._rows, self.pending_total)
        self._update_status()

    def action_help(self) -> None:
        rows: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for key, active in self.screen.active_bindings.items():
            b = active.binding
            if not b.description or (b.id or b.action) in seen:
                continue
            seen.add(b.id or b.action)
            keys = [k for k, a in self.screen.active_bindings.items() if a.binding is b]
            display = ", ".join(self.get_key_display(self.screen.active_bindings[k].binding) if k == key else k for k in keys)
            rows.append((display, b.description, b.id or ""))
        # Sentinel's own (remappable) keys first, then Textual's navigation keys.
        rows.sort(key=lambda row: (row[2] == "", not row[2].startswith(("queue.", "history.", "rules.", "grants."))))
        self.push_screen(HelpScreen(rows, Text(HELP_INTRO, end="")))

    def show_full(self, record: RequestRecord | None) -> None:
        if record is None:
            return
        self.push_screen(TextScreen(f"Arguments of {record.id[:12]}", full_arguments(record)))

    def edit_rules(self) -> None:
        """Open the rules file in $VISUAL/$EDITOR (the app suspends), then reload it."""
        path = self.data.rules_path
        if path is None:
            self.notify("No rules file (start with --rules PATH).", severity="warning", markup=False)
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        try:
            with self.suspend():
                subprocess.run([*shlex.split(editor), str(path)], check=False)
        except Exception as exc:  # SuspendNotSupported (web/headless), editor missing
            self.notify(f"Cannot open the editor: {safe_text(exc, 200)}", severity="error", markup=False)
        self.load_policy()

    def _tick(self) -> None:
        """Coarse countdown refresh (1 s, or 10 s over SSH); ages every few ticks."""
        self._ticks += 1
        if self.current_view == "queue" and not self.paused:
            self.queue.tick(ages=self.ssh or self._ticks % 5 == 0)
        elif self.current_view == "grants" and not self.paused:
            self.tick_grants()
        if self._ticks % (1 if self.ssh else 5) == 0:
            self._update_status()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name in VIEW_IDS:
            yield SystemCommand(
                f"View: {name.title()}", f"Switch to the {name} view", lambda n=name: self.action_view(n)
            )
        yield SystemCommand("Pause / resume live updates", "Freeze the queue while reading", self.action_pause)
        yield SystemCommand("Reload rules", "Load and validate the rules file again", self.load_policy)

    @on(DataTable.RowHighlighted, "#rules-table")
    def _rules_row(self, event: DataTable.RowHighlighted) -> None:
        event.stop()


def run_app(
    db_path: Path | str | None = None,
    rules_path: Path | str | None = None,
    readonly: bool = False,
    *,
    keymap_path: Path | str | None = None,
    config: TuiConfig | None = None,
    title: str | None = None,
) -> int:
    """Run the command center in this terminal until the operator quits. Returns the exit code."""
    app = SentinelApp(
        db_path, rules_path, readonly, config=config, keymap_path=keymap_path, title=title
    )
    code = app.run()
    return int(code or app.return_code or 0)
