"""A server's log lines written a batch at a time, so a line per request costs no write.

A gateway logs one line per request (``qmk.http.access``) and per job transition
(``qmk.http.jobs``) at level ``info``. Written one by one, each is formatted and sent in a
write of its own, inside the request's time. :class:`BatchedStreamHandler` keeps those
records and writes them together, formatted then, :data:`BATCH_S` later on the event
loop (or once :data:`BATCH_LINES` wait). Every line is still written, in order: a
warning or worse writes the batch and itself at once, and so do a record logged off the
event loop, the handler's ``flush`` and its ``close`` (``logging.shutdown`` at exit).
A process killed outright loses at most the last :data:`BATCH_S` of info lines.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TextIO

#: Seconds an info line may wait before it is written.
BATCH_S = 0.05
#: Info lines that wait at most: the next one writes them all.
BATCH_LINES = 256


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes its info lines a batch at a time (module docstring).

    Args:
        stream: where the lines go.
        batch_s: how long an info line may wait (:data:`BATCH_S`).
    """

    def __init__(self, stream: TextIO, batch_s: float = BATCH_S) -> None:
        super().__init__(stream)
        self.batch_s = batch_s
        self._held: list[logging.LogRecord] = []
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self._held.append(record)
        if record.levelno > logging.INFO or len(self._held) >= BATCH_LINES:
            self.flush()
            return
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # off the loop (a thread, the start): no one to wait
                self.flush()
                return
            self._timer = loop.call_later(self.batch_s, self.flush)

    def flush(self) -> None:
        """Write the lines held, in the order they were logged."""
        self.acquire()
        try:
            held, self._held = self._held, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            lines = []
            for record in held:
                try:
                    lines.append(self.format(record) + self.terminator)
                except Exception:
                    self.handleError(record)
            if lines:
                try:
                    self.stream.write("".join(lines))
                except Exception:
                    self.handleError(held[-1])
            super().flush()
        finally:
            self.release()

    def close(self) -> None:
        self.flush()
        super().close()


__all__ = ["BATCH_LINES", "BATCH_S", "BatchedStreamHandler"]
