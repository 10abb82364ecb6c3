"""One thread per process per PostgreSQL database: wakes waiting calls and holds their liveness.

The PostgreSQL twin of :class:`~sentinel.store.watcher.Watcher`, with the same interface
(:meth:`PgWatcher.watch` returns a ``Future[RequestRecord]``; one shared instance per database,
:meth:`PgWatcher.for_url`). It keeps one dedicated session, the *listener*, which:

* ``LISTEN``\\s on :data:`~sentinel.store.dialect.NOTICE_CHANNEL`: the ``requests`` trigger
  (schema step 12) notifies it with a request's id at the COMMIT that changed its status, votes
  or escalation, whoever committed it. The notice is only a hint: the thread re-reads the rows
  and trusts nothing else;
* re-reads every watched id every ``fallback_interval`` anyway (a notice lost with a dropped
  session, a database without the trigger), and after every reconnection;
* holds this process's liveness key (:meth:`hold`): a session-level advisory lock on a random
  63-bit key, recorded on each request the process submits as ``lock_path = "pg:<key>"``. The
  lock lives exactly as long as the session: a killed process's socket closes and the server
  ends its session at once; a host that vanishes is found by TCP keepalives (set on both ends),
  so a sweep on ANY host can tell the waiter is gone by reading ``pg_locks``.

When the session drops (server restarted, backend terminated, network), the thread reconnects
with backoff (50 ms doubling to ``backoff_max``), takes the key again and re-checks all watched
ids; futures keep waiting meanwhile (their caller's deadline decides), nothing fails for a
restart. A forked child gets its own watcher, key and session (the parent's are left alone).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, ClassVar

import psycopg

from sentinel.errors import RequestNotFound, StoreError
from sentinel.fdwait import readable
from sentinel.store import liveness, sql
from sentinel.store.codec import request_from_row
from sentinel.store.dialect import (
    MIGRATE_LOCK,
    NOTICE_CHANNEL,
    PG_HOLD_KEY,
    PG_KEEPALIVES,
    PG_LISTEN,
    PG_PROBE,
    POSTGRES,
    WRITE_LOCK,
)
from sentinel.store.models import RequestRecord

#: Seconds between full re-reads of every watched id while connected (missed notices).
FALLBACK_INTERVAL = 1.0
#: Longest pause between two reconnection attempts.
BACKOFF_MAX = 2.0
#: Server-side TCP keepalives of the listener session: idle seconds, probe interval, probes.
#: A vanished host's session (and its liveness key) ends after about idle + interval × count.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3

#: Listener sessions inherited across fork(): never closed by the child (that would end the
#: parent's session with the server, and with it the parent's liveness key).
_INHERITED: list[object] = []

Conn = psycopg.Connection[tuple[Any, ...]]


def new_key() -> int:
    """A random 63-bit liveness key (positive bigint), never one of the store's fixed locks."""
    while True:
        key = secrets.randbits(63)
        if key > 0xFFFFFFFF and key not in (WRITE_LOCK, MIGRATE_LOCK):
            return key


def keepalive_kwargs(url: str) -> dict[str, Any]:
    """libpq keepalive parameters for a connection to ``url`` (what the URL sets wins): the
    client finds a vanished server too, instead of waiting on a dead socket."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(url)
    except psycopg.Error:
        given = {}
    wanted = {
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE,
        "keepalives_interval": KEEPALIVE_INTERVAL,
        "keepalives_count": KEEPALIVE_COUNT,
    }
    return {k: v for k, v in wanted.items() if k not in given}


class PgWatcher:
    """Resolves futures when watched requests leave ``pending``; holds the process's liveness
    key. Use :meth:`for_url` (one per process per database)."""

    _instances: ClassVar[dict[str, PgWatcher]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 10.0,
        fallback_interval: float = FALLBACK_INTERVAL,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        from sentinel.store.postgres import mask_url

        self.url = url
        #: Where the database is, for messages (the password masked).
        self.path = mask_url(url)
        self.connect_timeout = float(connect_timeout)
        self.fallback_interval = float(fallback_interval)
        self.backoff_max = float(backoff_max)
        #: This process's liveness key (see :meth:`hold`).
        self.key = new_key()
        self._pid = os.getpid()
        self._futures: dict[str, Future[RequestRecord]] = {}
        self._new_ids: set[str] = set()
        self._notified: set[str] = set()
        self._cond = threading.Condition()
        self._holding = False  # hold() was called: keep the session (and the key) for good
        self._held = False  # the current session holds the key
        self._attempts = 0  # connection attempts that failed in a row
        self._last_error: StoreError | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._conn: Conn | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.notified = 0  # notices received (for tests/benchmarks)
        self.checks = 0  # status queries run (for tests/benchmarks)
        self.connects = 0  # sessions opened (for tests: reconnection)

    @classmethod
    def for_url(cls, url: str, *, connect_timeout: float = 10.0) -> PgWatcher:
        """The shared watcher of this process for the database at ``url``."""
        with cls._instances_lock:
            inst = cls._instances.get(url)
            if inst is None or inst._stopped or inst._pid != os.getpid():
                if inst is not None and inst._pid != os.getpid():
                    inst._abandon()
                inst = cls(url, connect_timeout=connect_timeout)
                cls._instances[url] = inst
            return inst

    @classmethod
    def stop_shared(cls, chosen: Callable[[str], bool]) -> None:
        """Stop and forget the shared watchers whose URL ``chosen`` accepts."""
        with cls._instances_lock:
            watchers = [cls._instances.pop(k) for k in list(cls._instances) if chosen(k)]
        for watcher in watchers:
            if watcher._pid == os.getpid():
                watcher.stop()
            else:
                watcher._abandon()

    # --- public -------------------------------------------------------------------------

    @property
    def lock_path(self) -> str:
        """What requests of this process record as their waiter's liveness: ``pg:<key>``."""
        return f"{liveness.SESSION_PREFIX}{self.key}"

    def hold(self) -> str:
        """Make sure this process's liveness key is held (connecting the listener if needed) and
        return :attr:`lock_path`. Called before a request becomes visible; raises
        :class:`StoreError` when the server cannot be reached (the submission fails secure)."""
        self._check_process()
        with self._cond:
            if self._held:
                return self.lock_path
            if self._stopped:
                raise StoreError(f"watcher for {self.path} is stopped")
            self._holding = True
            self._last_error = None
            attempts = self._attempts
            self._start()
        self._poke()
        deadline = time.monotonic() + self.connect_timeout + 5.0
        with self._cond:
            while not self._held:
                if self._stopped:
                    raise StoreError(f"watcher for {self.path} is stopped")
                if self._last_error is not None and self._attempts > attempts:
                    raise self._last_error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreError(
                        f"cannot reach database {self.path}: no liveness session after "
                        f"{self.connect_timeout + 5.0:g}s"
                    )
                self._cond.wait(min(left, 0.5))
        return self.lock_path

    def watch(self, request_id: str) -> Future[RequestRecord]:
        """A future resolved with the request once it is no longer pending (see
        :meth:`Watcher.watch <sentinel.store.watcher.Watcher.watch>`): fails with
        :class:`RequestNotFound` for an unknown id. While the server is unreachable it keeps
        waiting (the caller's deadline decides)."""
        self._check_process()
        with self._cond:
            if self._stopped:
                raise StoreError(f"watcher for {self.path} is stopped")
            fut = self._futures.get(request_id)
            if fut is None or fut.done():
                fut = Future()
                fut.set_running_or_notify_cancel()
                self._futures[request_id] = fut
                self._new_ids.add(request_id)
            self._start()
            self._cond.notify_all()
        self._poke()
        return fut

    def unwatch(self, request_id: str) -> None:
        """Stop watching ``request_id`` (its future, if unresolved, is left as is)."""
        with self._cond:
            self._futures.pop(request_id, None)
            self._new_ids.discard(request_id)

    @property
    def watching(self) -> int:
        """Number of ids watched now."""
        with self._cond:
            return len(self._futures)

    @property
    def connected(self) -> bool:
        """True while the listener session is up (and holds the key, once :meth:`hold` ran)."""
        with self._cond:
            return self._conn is not None and (self._held or not self._holding)

    def stop(self) -> None:
        """Stop the thread and end the listener session (releasing the liveness key);
        unresolved futures fail with StoreError."""
        with self._cond:
            self._stopped = True
            pending = list(self._futures.values())
            self._futures.clear()
            self._cond.notify_all()
        self._poke()
        for fut in pending:
            if not fut.done():
                try:
                    fut.set_exception(StoreError(f"watcher for {self.path} stopped"))
                except InvalidStateError:
                    pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if thread is None or not thread.is_alive():
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    # --- plumbing -----------------------------------------------------------------------

    def _check_process(self) -> None:
        if self._pid != os.getpid():
            raise StoreError(
                f"watcher for {self.path} belongs to process {self._pid}: use PgWatcher.for_url"
            )

    def _abandon(self) -> None:
        """In a forked child: forget the parent's session without closing it."""
        self._stopped = True
        if self._conn is not None:
            _INHERITED.append(self._conn)
            self._conn = None

    def _start(self) -> None:
        """Start the thread if it is not running (call with the condition held)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"sentinel-pgwatch:{self.path}", daemon=True
            )
            self._thread.start()

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:  # pipe full (the thread will look anyway) or closed by stop()
            pass

    def _fail(self, exc: BaseException) -> StoreError:
        from sentinel.store.postgres import describe_pg

        return describe_pg(exc, self.path, 0.0)

    def _connect(self) -> Conn:
        conn: Conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(1, round(self.connect_timeout)),
            application_name="sentinel-listener",
            **keepalive_kwargs(self.url),
        )
        try:
            for text in PG_KEEPALIVES:
                conn.execute(
                    text.format(
                        idle=KEEPALIVE_IDLE, interval=KEEPALIVE_INTERVAL, count=KEEPALIVE_COUNT
                    )
                )
            conn.add_notify_handler(self._on_notice)
            conn.execute(PG_LISTEN)
        except BaseException:
            conn.close()
            raise
        return conn

    def _on_notice(self, notice: psycopg.Notify) -> None:
        if notice.channel == NOTICE_CHANNEL:
            self.notified += 1
            with self._cond:
                if notice.payload in self._futures:
                    self._notified.add(notice.payload)

    def _absorb(self, conn: Conn) -> int:
        """Notices already read from the socket (they arrive right behind a statement's result,
        so the socket shows nothing more): parse what libpq holds and take them; how many."""
        pgconn = conn.pgconn
        pgconn.is_busy()  # parses buffered input without reading the socket
        got = 0
        while (n := pgconn.notifies()) is not None:
            enc = pgconn._encoding
            self._on_notice(psycopg.Notify(n.relname.decode(enc), n.extra.decode(enc), n.be_pid))
            got += 1
        return got

    def _drain(self, conn: Conn) -> None:
        """Read what the server sent without running a statement: notices, or its goodbye."""
        pgconn = conn.pgconn
        pgconn.consume_input()
        got = 0
        while (n := pgconn.notifies()) is not None:
            enc = pgconn._encoding
            self._on_notice(psycopg.Notify(n.relname.decode(enc), n.extra.decode(enc), n.be_pid))
            got += 1
        if not got or pgconn.status != psycopg.pq.ConnStatus.OK:
            # Readable but no notice: a terminated backend's FATAL message, the socket's end,
            # or a stray notice. A trivial statement tells (it raises on a dead session).
            conn.execute(PG_PROBE)

    def _run(self) -> None:
        backoff = 0.05
        last_full = -math.inf
        conn: Conn | None = None
        while True:
            with self._cond:
                while not self._stopped and not self._holding and not self._futures:
                    if conn is not None:  # nothing to hold or watch: drop the session
                        conn.close()
                        conn = self._conn = None
                    self._cond.wait()
                if self._stopped:
                    break
                holding = self._holding
            try:
                if conn is None:
                    conn = self._connect()
                    if holding:
                        (got,) = conn.execute(PG_HOLD_KEY, (self.key,)).fetchone() or (False,)
                        if not got:  # another process drew the same key: draw again
                            self.key = new_key()
                            conn.close()
                            conn = None
                            continue
                    with self._cond:
                        self._conn = conn
                        self._held = holding
                        self._attempts = 0
                        self._last_error = None
                        self._cond.notify_all()
                    self.connects += 1
                    backoff = 0.05
                    last_full = -math.inf  # re-read everything: notices may have been missed
                with self._cond:
                    if holding != self._holding:  # hold() since connecting: take the key now
                        holding = self._holding
                now = time.monotonic()
                if holding and not self._held:
                    (got,) = conn.execute(PG_HOLD_KEY, (self.key,)).fetchone() or (False,)
                    if not got:
                        raise psycopg.OperationalError("liveness key taken by another session")
                    with self._cond:
                        self._held = True
                        self._cond.notify_all()
                if now - last_full >= self.fallback_interval:
                    last_full = now
                    self._check(conn, None)
                else:
                    self._check(conn, set())
                if self._absorb(conn):
                    continue  # notices that came with a statement's result: check them now
                ready = readable(
                    [conn.fileno(), self._wake_r],
                    max(0.0, self.fallback_interval - (time.monotonic() - last_full)),
                )
                if self._wake_r in ready:
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except OSError:
                        pass
                if conn.fileno() in ready:
                    self._drain(conn)
            except Exception as exc:  # never let the thread die: callers would wait in vain
                err = exc if isinstance(exc, StoreError) else self._fail(exc)
                with self._cond:
                    self._held = False
                    self._conn = None
                    self._attempts += 1
                    self._last_error = err
                    self._cond.notify_all()
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
                with self._cond:
                    if not self._stopped:
                        self._cond.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        with self._cond:
            self._conn = None
            self._held = False
        if conn is not None:
            conn.close()

    def _check(self, conn: Conn, only: set[str] | None) -> None:
        """Re-read watched ids: every one (``only`` None), else the new and the notified ones;
        resolve those that left pending and fail unknown new ids."""
        with self._cond:
            new_ids, self._new_ids = self._new_ids, set()
            notified, self._notified = self._notified, set()
            if only is None:
                ids = list(self._futures)
            else:
                ids = [i for i in new_ids | notified if i in self._futures]
        if not ids:
            return
        self.checks += 1
        try:
            if new_ids:
                (existing,) = POSTGRES.translate(sql.WATCH_EXISTING)
                fresh = sorted(new_ids)
                known = {r[0] for r in conn.execute(existing, (json.dumps(fresh),)).fetchall()}
                for request_id in new_ids - known:
                    self._resolve(
                        request_id,
                        exc=RequestNotFound(
                            f"no approval request with id {request_id!r} in {self.path}"
                        ),
                    )
            (done,) = POSTGRES.translate(sql.WATCH_DONE)
            for row in conn.execute(done, (json.dumps(ids),)).fetchall():
                rec = request_from_row(row)
                self._resolve(rec.id, rec=rec)
        except BaseException:
            with self._cond:  # look again after reconnecting
                self._new_ids |= {i for i in new_ids if i in self._futures}
            raise

    def _resolve(
        self, request_id: str, rec: RequestRecord | None = None, exc: BaseException | None = None
    ) -> None:
        with self._cond:
            fut = self._futures.pop(request_id, None)
        if fut is None or fut.done():
            return
        try:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(rec)  # type: ignore[arg-type]
        except InvalidStateError:
            pass  # cancelled by its owner meanwhile

    def __repr__(self) -> str:
        return f"PgWatcher({self.path!r})"
