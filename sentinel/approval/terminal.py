"""Approval at the terminal: the request is printed and the answer read from standard input.

Properties the original lacked, and why the code looks the way it does:

* prompts from concurrent calls are served one at a time (a process-wide lock), each showing its
  request id, so an answer always applies to the request on screen;
* on a real terminal, input typed before a prompt appears is discarded, so a late answer to an
  expired prompt can never approve the next one (piped answers from a script are kept);
* input is read with ``select`` in short slices by a thread that exits as soon as the request is
  decided, expires or is cancelled — no orphaned ``input()`` thread steals later input or keeps
  the process alive;
* end of input (closed stdin) denies with a clear reason instead of raising ``EOFError``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
import time
from typing import IO, ClassVar

from sentinel.approval.base import (
    ApprovalInterface,
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
)
from sentinel.fdwait import readable
from sentinel.redact import safe_text

_SLICE = 0.1


class TerminalApprovalInterface(ApprovalInterface):
    """Ask at the terminal: ``y``/``yes`` approves, ``n``/``no`` denies (``n too large`` denies
    with a reason). ``timeout_seconds`` bounds the wait (the guard's own deadline also applies)."""

    _prompt_lock: ClassVar[threading.Lock] = threading.Lock()
    _shared: ClassVar[TerminalApprovalInterface | None] = None

    def __init__(
        self,
        timeout_seconds: float = 300.0,
        *,
        input_stream: IO[str] | None = None,
        output_stream: IO[str] | None = None,
    ) -> None:
        self.timeout_seconds = float(timeout_seconds)
        self._input = input_stream
        self._output = output_stream
        self._pending = b""

    @classmethod
    def shared(cls) -> TerminalApprovalInterface:
        """The process-wide instance used for ``approval_interface="terminal"``."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    async def request_approval(self, request: ApprovalRequest) -> ApprovalResult:
        timeout = min(self.timeout_seconds, request.timeout_seconds or self.timeout_seconds)
        deadline = time.monotonic() + timeout
        cancel = threading.Event()
        result: concurrent.futures.Future[ApprovalResult] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(self._prompt(request, cancel, deadline, timeout))
            except BaseException as exc:  # report, never leave the future hanging
                result.set_exception(exc)

        thread = threading.Thread(
            target=run, name=f"sentinel-prompt-{request.request_id[:8]}", daemon=True
        )
        thread.start()
        try:
            return await asyncio.wrap_future(result)
        finally:
            # Decided elsewhere, cancelled or finished: the prompt thread stops within one slice.
            cancel.set()

    # -- blocking part (prompt thread) -----------------------------------------------------------

    def _streams(self) -> tuple[IO[str] | None, IO[str]]:
        out = self._output or sys.stderr
        inp = self._input if self._input is not None else sys.stdin
        if inp is None or getattr(inp, "closed", False):
            return None, out
        return inp, out

    def _prompt(
        self, request: ApprovalRequest, cancel: threading.Event, deadline: float, timeout: float
    ) -> ApprovalResult:
        # Serve one prompt at a time; waiting for our turn still honours cancel and deadline.
        while not self._prompt_lock.acquire(timeout=_SLICE):
            if cancel.is_set():
                return self._result(request, ApprovalStatus.CANCELLED, "decided elsewhere")
            if time.monotonic() >= deadline:
                return self._result(request, ApprovalStatus.TIMEOUT, None, timeout)
        try:
            inp, out = self._streams()
            if inp is None:
                return self._result(
                    request,
                    ApprovalStatus.DENIED,
                    "no terminal input to ask on (stdin is closed); denied",
                )
            try:
                fd = inp.fileno()
            except (OSError, ValueError, AttributeError):
                return self._result(
                    request, ApprovalStatus.DENIED, "standard input cannot be read; denied"
                )
            # On a real terminal, what was typed before this prompt was meant for an earlier one
            # (or nothing): drop it. Piped input is a script's answers, kept in order.
            discarded = self._discard_typeahead(fd) if os.isatty(fd) else 0
            short = request.request_id[:8]
            self._write(out, "\n" + "=" * 20 + " SENTINEL APPROVAL REQUIRED " + "=" * 20 + "\n")
            self._write(out, self.format_request(request) + "\n")
            if discarded:
                self._write(out, f"(ignored {discarded} characters typed before this prompt)\n")
            while True:
                self._write(
                    out,
                    f"Approve request {short} ({safe_text(request.function_name, 40)})? "
                    f"[y/n, or 'n <reason>'] (expires in {max(0, int(deadline - time.monotonic()))}s): ",
                )
                line = self._readline(fd, cancel, deadline)
                if line is None:
                    if cancel.is_set():
                        self._write(out, f"\n(request {short} was decided elsewhere)\n")
                        return self._result(request, ApprovalStatus.CANCELLED, "decided elsewhere")
                    self._write(
                        out, f"\n(request {short} expired: no answer within {timeout:g}s)\n"
                    )
                    return self._result(request, ApprovalStatus.TIMEOUT, None, timeout)
                if line == "\x04EOF":
                    self._write(out, "\n(end of input: denied)\n")
                    return self._result(
                        request,
                        ApprovalStatus.DENIED,
                        "standard input was closed (EOF) before an answer; denied",
                    )
                answer = line.strip()
                word, _, rest = answer.partition(" ")
                word = word.lower()
                if word in ("y", "yes"):
                    return self._result(request, ApprovalStatus.APPROVED, rest.strip() or None)
                if word in ("n", "no"):
                    return self._result(
                        request, ApprovalStatus.DENIED, rest.strip() or "denied at the terminal"
                    )
                self._write(out, "Please answer y or n.\n")
        finally:
            self._prompt_lock.release()

    def _discard_typeahead(self, fd: int) -> int:
        dropped = len(self._pending)
        self._pending = b""
        while True:
            try:
                ready = readable([fd], 0)
            except (OSError, ValueError):
                return dropped
            if not ready:
                return dropped
            chunk = os.read(fd, 65536)
            if not chunk:  # EOF: leave it for the prompt to report
                self._pending = b""
                return dropped
            dropped += len(chunk)

    def _readline(self, fd: int, cancel: threading.Event, deadline: float) -> str | None:
        """One line from ``fd``; None on cancel or deadline; ``"\\x04EOF"`` at end of input."""
        while True:
            if b"\n" in self._pending:
                line, _, self._pending = self._pending.partition(b"\n")
                return line.decode("utf-8", "replace")
            if cancel.is_set():
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                ready = readable([fd], min(_SLICE, remaining))
            except (OSError, ValueError):
                return "\x04EOF"
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                if self._pending:
                    line, self._pending = self._pending, b""
                    return line.decode("utf-8", "replace")
                return "\x04EOF"
            self._pending += chunk

    @staticmethod
    def _write(out: IO[str], text: str) -> None:
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):
            pass

    @staticmethod
    def _result(
        request: ApprovalRequest,
        status: ApprovalStatus,
        reason: str | None,
        timeout: float | None = None,
    ) -> ApprovalResult:
        return ApprovalResult(
            status=status,
            action_id=request.request_id,
            approved_by=None,
            reason=reason,
            decided_at=time.time(),
            timeout_seconds=timeout,
        )
