"""One connection's guard: its sign-in deadline, its idle expiry, its unsent bytes and its
write timeout.

Every wire that holds connections (the JSON-RPC socket, the HTTP API with its event
streams and GraphQL, the gRPC splice) gives each connection one :class:`Guard`, made by
the door (:meth:`~qmk.abi.door.Door.guard`), and only translates its verdicts into its
own protocol. So each limit of a connection is written once:

- **The sign-in deadline** (``auth_timeout_s``): a connection whose visitor has not
  signed in (no valid session or key seen) that long after it was accepted is expired.
  A request still under way then may sign it in, and its answer goes first: the guard
  waits until the wire says the connection is idle (:meth:`Guard.settled`), or looks
  again every :data:`RECHECK_S` for a wire that cannot say.
- **The idle expiry** (``idle_timeout_s``): a signed-in connection with no request under
  way, none answered, no byte sent to it and nothing the wire says it serves (a live
  watch) for that long is closed with a coded line (``idle-timeout``), and its place of
  its tenant's ``max_connections_per_tenant`` given back (:meth:`Guard.close`).
- **Unsent bytes** (``max_unsent_bytes``): the transport's write buffer bound. Above it
  the transport pauses writing: a wire stops reading requests or writing events
  (:attr:`Guard.writable`), so a client that does not read holds at most that much.
- **The write timeout** (``write_timeout_s``): a connection whose unsent bytes stay above
  the bound that long is dropped, and so is one whose visitor holds an answer not yet
  sent (:attr:`~qmk.abi.door.Visitor.holding`) while nothing went to its client that
  long (HTTP/2's flow control stalls such an answer before any byte is buffered).
- **The line budget**: the bytes one request may hold before and after sign-in
  (:attr:`Guard.line_limit`, the door's :meth:`~qmk.abi.door.Door.size_limit`).

Time is the door's clock, so a test moves it by hand and waits for nothing.

>>> import asyncio
>>> from qmk.abi.limits import ServerConfig
>>> from qmk.abi.door import Door
>>> from qmk.kernel.manual_clock import ManualClock
>>> async def demo():
...     clock = ManualClock(start=0.0)
...     door = Door(object(), ServerConfig(tcp=("127.0.0.1", 0), auth_timeout_s=2), clock=clock)
...     told = []
...     guard = door.guard(door.visitor("doc", "ip 10.0.0.1"), "doc",
...                        expire=lambda error, answered: told.append(error.details["reason"]))
...     guard.start(None)
...     clock.advance(2.0)
...     await asyncio.sleep(0)
...     return told
>>> asyncio.run(demo())
['auth-timeout']
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from qmk.abi.door.answers import HEAP_TRIM
from qmk.errors import UnavailableError

if TYPE_CHECKING:
    from qmk.abi.door.door import Door, Visitor
    from qmk.abi.door.peers import Cancellable

LOG = logging.getLogger("qmk.abi.door")

#: Seconds between looks at a connection past its deadline with a request under way,
#: for a wire that does not say when its requests are answered.
RECHECK_S = 0.5

#: Told that the deadline passed: the coded error to answer in the wire's protocol, and
#: whether the connection had an answer since the deadline (then it only closes).
Expire = Callable[[UnavailableError, bool], None]


class Guard:
    """One connection's limits at the door: its sign-in deadline, its unsent bytes and
    its write timeout (see the module docstring).

    Args:
        door: the door (its ``[server]`` limits and its clock).
        visitor: the connection's caller at the door.
        label: the wire's name in the log lines (``JSON-RPC``, ``HTTP``, ``grpc``).
        expire: answers the deadline's coded error in the wire's protocol and closes.
        abort: drops the connection at once (default: aborts its transport).
        busy: whether a request of the connection is under way (default: calls of its
            visitor in the door).
    """

    __slots__ = (
        "_abort",
        "_auth_due",
        "_busy",
        "_deadline_passed",
        "_expire",
        "_timers",
        "closed",
        "config",
        "door",
        "label",
        "sent_at",
        "transport",
        "visitor",
    )

    def __init__(
        self,
        door: Door,
        visitor: Visitor,
        label: str,
        *,
        expire: Expire,
        abort: Callable[[], None] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.door = door
        self.config = door.config
        self.visitor = visitor
        self.label = label
        self.transport: asyncio.WriteTransport | None = None
        self.sent_at = 0.0  # when bytes last went to the client
        self.closed = False
        self._expire = expire
        self._abort = abort
        self._busy = busy
        self._deadline_passed = False  # waiting for the request under way to be answered
        self._auth_due = 0.0  # when the sign-in deadline's timer fires
        self._timers: dict[str, Cancellable] = {}

    # ------------------------------------------------------------------ the connection

    def start(self, transport: asyncio.WriteTransport | None) -> None:
        """The connection is accepted: bound its unsent bytes and start its deadline."""
        self.transport = transport
        if transport is not None:
            transport.set_write_buffer_limits(high=self.config.max_unsent_bytes)
        self.sent_at = now = self.door.clock.now()
        self.visitor.on_holding = self._holding
        if self.visitor.holding:
            self._holding()
        self.visitor.connection = True
        if not self.visitor.signed_in:
            self._auth_due = self._at("auth", self.config.auth_timeout_s, self._deadline, now)
        self.visitor.on_sign_in(self._signed_in)

    def close(self) -> None:
        """The connection is gone: no more verdicts, and its tenant's place given back
        (closing twice is once)."""
        if self.closed:
            return
        self.closed = True
        self.door.sign_out(self.visitor)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.visitor.on_holding = None

    @property
    def line_limit(self) -> int:
        """The bytes one request of the connection may hold now."""
        return self.door.size_limit(self.visitor.signed_in)

    def _at(
        self, name: str, seconds: float, then: Callable[[], None], now: float | None = None
    ) -> float:
        """Call ``then`` ``seconds`` after ``now`` (just read by the caller), else the clock's."""
        clock = self.door.clock
        due = (clock.now() if now is None else now) + seconds
        self._timers[name] = clock.call_at(due, then)
        return due

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    # ------------------------------------------------------------------ the deadline

    def _deadline(self) -> None:
        self._timers.pop("auth", None)
        if self.closed or self.visitor.signed_in:  # since a sign-in, it stood for the idle
            self._idle()  # expiry (_signed_in); closed, that does nothing
            return
        if self._is_busy():  # a request under way may still sign it in
            self._deadline_passed = True
            self._auth_due = self._at("auth", RECHECK_S, self._deadline)
            return
        self._expired(answered=False)

    def settled(self) -> None:
        """A request of the connection was answered (its answer put out): past the
        deadline, the connection is expired once it has none under way."""
        if not self._deadline_passed or self.closed or self._is_busy():
            return
        if self.visitor.signed_in:  # its timer looks at the idle expiry instead
            self._deadline_passed = False
            return
        self._cancel("auth")
        self._expired(answered=True)

    def _is_busy(self) -> bool:
        return self._busy() if self._busy is not None else self.visitor.inflight > 0

    def _expired(self, *, answered: bool) -> None:
        self._deadline_passed = False
        limit = self.config.auth_timeout_s
        message = (
            f"no request of this connection showed a valid session or key within {limit:g} s: "
            "open a session (q_negotiate_caps) or use one at once after connecting"
        )
        LOG.warning(
            "%s: closed a connection of %s: %s (server.auth_timeout_s)",
            self.label,
            self.visitor.peer,
            message,
        )
        self._expire(UnavailableError(message, reason="auth-timeout", limit=limit), answered)

    # ------------------------------------------------------------------ idle expiry

    def _signed_in(self) -> None:
        """The idle expiry starts (looked at by the sign-in deadline's timer, if first)."""
        if self.closed:
            return
        now = self.door.clock.now()
        self.visitor.idle_since = now
        limit = self.config.idle_timeout_s
        if "auth" in self._timers and self._auth_due <= now + limit:
            return
        self._cancel("auth")
        self._at("idle", limit, self._idle, now)

    def _idle(self) -> None:
        self._timers.pop("idle", None)
        if self.closed:
            return
        visitor, limit = self.visitor, self.config.idle_timeout_s
        if visitor.inflight or visitor.holding or self._is_busy():
            self._at("idle", limit, self._idle)
            return
        left = max(visitor.idle_since, self.sent_at) + limit - self.door.clock.now()
        if left > 0:
            self._at("idle", left, self._idle)
            return
        message = (
            f"this connection was idle for {limit:g} s (server.idle_timeout_s): "
            "connect again to go on"
        )
        LOG.info("%s: closed an idle connection of %s", self.label, visitor.peer)
        self._expire(UnavailableError(message, reason="idle-timeout", limit=limit), False)

    # ------------------------------------------------------------------ writing

    @property
    def writable(self) -> bool:
        """Whether the connection's unsent bytes are within ``max_unsent_bytes``."""
        transport = self.transport
        return transport is None or (
            transport.get_write_buffer_size() <= self.config.max_unsent_bytes
        )

    def pause_writing(self) -> None:
        """The transport's unsent bytes went above the bound: the write timeout starts."""
        if "write" not in self._timers and not self.closed:
            self._at("write", self.config.write_timeout_s, self._unread)

    def resume_writing(self) -> None:
        """The client read the unsent bytes down: the write timeout stops."""
        self._cancel("write")

    def sent(self) -> None:
        """Bytes went to the client (an answer held for it makes progress)."""
        self.sent_at = self.door.clock.now()

    def _holding(self) -> None:
        """The visitor holds an answer: watch that bytes keep going to its client."""
        if "progress" in self._timers or self.closed:
            return
        now = self.door.clock.now()
        due = max(self.sent_at, now) + self.config.write_timeout_s
        self._at("progress", due - now, self._progress, now)

    def _progress(self) -> None:
        self._timers.pop("progress", None)
        if self.closed or not self.visitor.holding:
            return
        left = self.sent_at + self.config.write_timeout_s - self.door.clock.now()
        if left > 0:
            self._at("progress", left, self._progress)
            return
        self._unread()

    def _unread(self) -> None:
        """The client read none of its unsent bytes for ``write_timeout_s``: drop it."""
        self._timers.pop("write", None)
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return
        LOG.warning(
            "%s: dropped a connection whose client read none of its %d unsent bytes for %g s "
            "(server.write_timeout_s)",
            self.label,
            transport.get_write_buffer_size(),
            self.config.write_timeout_s,
        )
        if self._abort is not None:
            self._abort()
        else:
            transport.abort()
        HEAP_TRIM.soon()


__all__ = ["RECHECK_S", "Expire", "Guard"]
