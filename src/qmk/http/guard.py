"""The HTTP API's connection discipline: the door's limits, on uvicorn's connections.

:func:`guarded_protocol` makes the uvicorn protocol class (``httptools``) that
``qmk serve --http`` runs, with the door (:mod:`qmk.abi.door`) and the limits of the
kernel config's ``[server]`` table (:class:`~qmk.abi.limits.ServerConfig`):

- **Descriptors**: every connection takes a place in the door's count
  (:class:`~qmk.abi.door.Connections`), shared with every other listener. One IP
  address may hold at most ``max_connections_per_peer`` on all of them. A peer may open
  at most ``accept_rate_per_peer`` new connections a second. (The door's acceptor
  accepts within ``accept_rate`` for all listeners.) A connection past a limit is answered
  ``503`` (``QS1011 unavailable``, ``reason`` ``too-many-connections``,
  ``too-many-connections-per-peer`` or ``accept-rate-per-peer``) and closed. Each
  connection is one :class:`~qmk.abi.door.Visitor` of the door, which its requests
  carry to the application (the ASGI scope's ``qmk.visitor``).
- **Head**: a request's line and headers may take ``http_header_timeout_s``, counted
  from the connection, or from the first byte of a request on a kept-alive one. They may
  hold ``http_max_head_bytes``, with a URL of ``http_max_url_bytes``. Past them the
  answer is ``408``, ``431`` or ``414`` (``QS1011``, ``reason`` ``header-timeout``,
  ``head-too-large``, ``url-too-long``) and the connection is closed. The bytes are
  counted as they arrive, so the parser never holds more than the limit and one read.
- **Body**: once its headers are read, a request's body may take
  ``http_body_timeout_s``; then the connection is closed (its handler sees the client
  gone). Its size is the door's limit (:meth:`qmk.abi.door.Door.size_limit`).
- **Idle**: a kept-alive connection is closed ``http_keep_alive_s`` after its last
  response (uvicorn's ``timeout_keep_alive``, timed by the connection's one timer).
- **The connection's guard** (:class:`~qmk.abi.door.Guard`, the one every wire's
  connections have). A connection must sign in at the door within ``auth_timeout_s``
  of being accepted: one of its requests shows a valid session or a good key. If not,
  it is answered ``408`` (``reason`` ``auth-timeout``) and closed, or closed after the
  response in flight. Its unsent bytes are bounded by ``max_unsent_bytes``. (uvicorn
  waits for the transport to drain below it before each body message, and large bodies
  are sent in chunks: :mod:`qmk.http.stream`.) When they stay above it for
  ``write_timeout_s``, the client does not read, and the connection is dropped.
- **One write an answer**: a response that gives its length has its head written with
  its body's first bytes (:class:`_HeldHead`). A syscall's JSON answer is written whole
  by the connection (the scope's :data:`~qmk.http.stream.WRITE_ANSWER`), its head made
  once, not message by message.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from qmk.abi.door import Cut, Door, Guard, Refusal, Visitor, peer_of_address
from qmk.abi.jsonrpc import encode
from qmk.abi.limits import ServerConfig
from qmk.abi.server import REFUSED_LINGER_BYTES, REFUSED_LINGER_S
from qmk.errors import UnavailableError
from qmk.http import problems
from qmk.http.stream import WRITE_ANSWER

LOG = logging.getLogger("qmk.http.guard")

#: The bytes a connection answered before its body arrived (a body over the limit) drops
#: while it lingers, within :data:`~qmk.abi.server.REFUSED_LINGER_S`: the rest of a
#: refused body as a client on this machine or a fast link sends it in that time.
REFUSED_BODY_LINGER_BYTES = 64 * 2**20


class _HeldHead:
    """A connection's transport that holds a response's head (its status line and
    headers) until the body's first bytes, and writes both at once: one send, one
    segment for the client to wait for, where uvicorn writes the head and the body
    apart. Only the head of a response that gives its length is held (its body
    follows at once); a stream's head is written at once, as its first event may be
    long in coming. Everything else is the transport's own."""

    __slots__ = ("_head", "_holding", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._holding = False  # the next write is a head to hold
        self._head: bytes | None = None

    def hold(self) -> None:
        """Hold the head that is written next."""
        self._holding = True

    def write(self, data: bytes) -> None:
        if self._holding:
            self._holding = False
            self._head = data
            return
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        self._transport.write(data)

    def flush(self) -> None:
        """Write a head still held (an answer with no body bytes: ``HEAD``, a 304)."""
        self._holding = False
        head, self._head = self._head, None
        if head is not None:
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Refused(Exception):
    """A parser callback found a limit passed (the protocol answers and closes)."""


def refusal(status: int, reason: str, message: str, **details: Any) -> bytes:
    """A whole HTTP response: ``status`` with the problem document of a coded
    ``UnavailableError``, and ``connection: close``.

    >>> answer = refusal(414, "url-too-long", "too long", limit=10)
    >>> head, _, body = answer.partition(b"\\r\\n\\r\\n")
    >>> head.split(b" ")[:2], b"connection: close" in head, body.count(b'"reason":"url-too-long"')
    ([b'HTTP/1.1', b'414'], True, 1)
    """
    error = UnavailableError(message, reason=reason, **details)
    return _response(status, encode(problems.problem_of(error, "", status)))


def _response(status: int, body: bytes) -> bytes:
    """A whole HTTP response of ``status`` with a problem document, and ``connection:
    close``."""
    phrase = http.HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: {problems.PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _answering(run: Awaitable[None], tasks: set[Any]) -> None:
    """``run`` (a request's ASGI cycle), then its task out of the server's ``tasks``
    (which its shutdown waits for). A task cancelled before its first step, which only
    a forced shutdown does, stays in them: nothing waits for them then."""
    try:
        await run
    finally:
        tasks.discard(asyncio.current_task())


def guarded_protocol(config: ServerConfig, door: Door) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the limits of ``config`` and the door's count
    and visitors (see the module docstring)."""

    class GuardedProtocol(_GuardedProtocol):
        limits = config
        gate = door

    return GuardedProtocol


class _GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with the door's limits, which override its hooks."""

    limits: ServerConfig
    gate: Door

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = self._visiting(self.app)
        self._place: Any = None  # its place in the door's count, once admitted
        self.visitor: Visitor | None = None
        self.guard: Guard | None = None  # its sign-in deadline, unsent bytes, write timeout
        self._in_head = True  # reading a request's line and headers
        self._head_bytes = 0
        self._url_bytes = 0
        self._lingers = False  # answered, half-closed, counted in the door's lingering
        self._cut: Cut | None = None  # ends its linger early (the door's Connections.linger)
        self._drop = REFUSED_LINGER_BYTES  # the bytes a lingering connection drops
        self._closed = False
        self._writer: _HeldHead | None = None  # its transport, once admitted
        self._close_after = False  # its response said connection: close (body unread)
        # the phase's deadline (header, body, linger) and what it calls then (None: no
        # phase), and the one timer that serves every phase of the connection
        self._deadline = 0.0
        self._then: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        peer = peer_of_address(transport.get_extra_info("peername"))
        admitted = self.gate.connections.admit(peer)
        if isinstance(admitted, Refusal):
            self._refuse_connection(admitted)
            return
        self._place = admitted
        self.visitor = visitor = self.gate.visitor("http", peer)
        self.guard = self.gate.guard(visitor, "HTTP", expire=self._expire, busy=self._busy)
        super().connection_made(transport)
        self.transport = self._writer = _HeldHead(transport)  # type: ignore[assignment]
        self.guard.start(transport)
        self._start_phase(self.limits.http_header_timeout_s, self._header_timed_out)

    def _refuse_connection(self, refused: Refusal) -> None:
        LOG.warning("refused an HTTP connection: %s", refused.message)
        self._closed = True
        details: dict[str, Any] = {"limit": refused.limit}
        if refused.retry_after_s is not None:
            details["retry_after_s"] = refused.retry_after_s
        self.transport.write(refusal(503, refused.reason, refused.message, **details))
        self._linger()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_phase()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.guard is not None:
            self.guard.close()
        if self._lingers and self._cut is not None:
            self._lingers = False
            self.gate.connections.lingered(self._cut)
        if self._place is not None:
            self._place.release()
            self._place = None
            super().connection_lost(exc)
        self._closed = True

    def _close_with(self, status: int, reason: str, message: str, **details: Any) -> None:
        """Answer ``status`` (when no response is under way) and close."""
        if self._closed or self.transport.is_closing():
            return
        LOG.warning("closed an HTTP connection: %s", message)
        self._answer_and_close(refusal(status, reason, message, **details))

    def _answer_and_close(self, answer: bytes) -> None:
        """Write ``answer`` (when no response is under way) and close, lingering."""
        self._closed = True
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(answer)
            self._linger()
        else:
            self.transport.close()

    def _linger(self, drop: int = REFUSED_LINGER_BYTES) -> None:
        """Half-close after the answer and drop what the client still sends.

        It closes after :data:`~qmk.abi.server.REFUSED_LINGER_S` or ``drop`` bytes at
        most. So a client that is still writing reads the answer rather than a reset. A
        close with unread bytes sends a reset, and a reset drops the answer from the
        client's buffer."""
        self._head_bytes = 0
        self._drop = drop
        if self._lingers:
            self.transport.close()
            return
        try:
            if not self.transport.can_write_eof():
                self.transport.close()
                return
            self.transport.write_eof()
        except (OSError, RuntimeError):
            self.transport.close()
            return
        self._cut = self.transport.close  # a newer refusal's room: this linger ends now
        self.gate.connections.linger(self._cut)
        self._lingers = True
        self._start_phase(REFUSED_LINGER_S, self.transport.close)

    # ------------------------------------------------------------------ reading

    def data_received(self, data: bytes) -> None:
        if self._closed:  # answered and half-closed: drop what it sends, a little
            self._head_bytes += len(data)
            if self._head_bytes > self._drop:
                self.transport.close()
            return
        if self._in_head:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except _Refused:
            return
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                return
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        limit = self.limits.http_max_head_bytes
        if self._in_head and self._head_bytes > limit:
            self._close_with(
                431,
                "head-too-large",
                f"the request's line and headers pass the limit of {limit} bytes",
                limit=limit,
            )

    def _bad_request(self) -> None:
        if not self._closed:
            self._closed = True
            self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = 0
        if not self._in_head:  # a pipelined request, right after the last one
            self._in_head = True
            self._head_bytes = 0
        self._start_phase(self.limits.http_header_timeout_s, self._header_timed_out)

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        limit = self.limits.http_max_url_bytes
        if self._url_bytes > limit:
            self._close_with(
                414, "url-too-long", f"the URL passes the limit of {limit} bytes", limit=limit
            )
            raise _Refused
        super().on_url(url)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._start_phase(self.limits.http_body_timeout_s, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_phase()
        self._in_head = True  # the next bytes are the next request's
        self._head_bytes = 0

    def on_response_complete(self) -> None:
        """uvicorn's end of a response, its keep-alive wait a phase of the connection's
        one timer (:meth:`_start_phase`), not a timer made and cancelled per response."""
        if self._writer is not None:
            self._writer.flush()
        arriving = self._body_arriving  # before the keep-alive phase replaces the body's
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next pipelined request starts
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif not arriving:
            self._start_phase(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        if self._closed:
            return
        if self.guard is not None:
            self.guard.settled()  # past its deadline, unsigned, it closes now
        if (self._close_after or arriving) and not self.transport.is_closing():
            # answered before its body arrived (refused, say): the rest of the body
            # would only be parsed and dropped, so the connection closes instead, once
            # the client had the time to send the rest of a body it is writing and read
            # the answer (a client writes its whole body before it reads)
            self._closed = True
            self._linger(REFUSED_BODY_LINGER_BYTES)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """uvicorn's start of a request's task, which leaves the server's running tasks
        as its own last step (:func:`_answering`), not from a done callback: a callback
        is run in a loop turn of its own after the answer, one turn a request. (uvicorn's
        ``reset_contextvars`` starts it as uvicorn does.)"""
        if self.config.reset_contextvars:
            super()._start_asgi_task(cycle, app)
            return
        tasks = self.tasks
        tasks.add(self.loop.create_task(_answering(cycle.run_asgi(app), tasks)))

    # ------------------------------------------------------------------ deadlines

    def _start_phase(self, seconds: float, then: Callable[[], None]) -> None:
        """Call ``then`` in ``seconds``, unless the phase ends or another starts first.

        A request starts two phases (its head, its body) and ends one. Their deadlines
        share one timer, made again only for an earlier deadline: a timer made and
        cancelled per phase would cost the loop's heap two entries a request. A timer
        that comes due before a later deadline waits again (:meth:`_phase_due`).
        """
        deadline = self.loop.time() + seconds
        self._deadline, self._then = deadline, then
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._phase_due, deadline)

    def _cancel_phase(self) -> None:
        self._then = None  # the timer, if due before the next phase's deadline, does nothing

    def _phase_due(self, when: float) -> None:
        self._timer = None
        then = self._then
        if then is None:
            return
        if self._deadline > when:  # the phase started after this timer was made
            self._timer = self.loop.call_at(self._deadline, self._phase_due, self._deadline)
            return
        self._then = None
        then()

    def _header_timed_out(self) -> None:
        if not self._in_head:
            return
        limit = self.limits.http_header_timeout_s
        self._close_with(
            408,
            "header-timeout",
            f"the request's line and headers did not arrive within {limit:g} s",
            limit=limit,
        )

    def _body_timed_out(self) -> None:
        limit = self.limits.http_body_timeout_s
        self._close_with(
            408,
            "body-timeout",
            f"the request's body did not arrive within {limit:g} s",
            limit=limit,
        )

    def _busy(self) -> bool:
        """Whether a response is under way (its request may still sign it in)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _expire(self, error: UnavailableError, answered: bool) -> None:
        """The guard's verdict at the sign-in deadline: ``408`` and close; a connection
        that had its answer since the deadline is closed without one."""
        if self._closed or self.transport.is_closing():
            return
        if answered:
            self._closed = True
            self.transport.close()
            return
        body = encode(problems.problem_of(error, "", 408))
        self._answer_and_close(_response(408, body))

    @property
    def _body_arriving(self) -> bool:
        """Whether the request's headers are read and its body is not yet whole."""
        return not self._in_head and self._then is not None

    def _visiting(self, app: Any) -> Any:
        """``app``, each request carrying the connection's visitor (``qmk.visitor``):
        the door signs it in when one shows a valid session or key."""

        async def visiting(scope: Any, receive: Any, send: Any) -> None:
            scope["qmk.visitor"] = self.visitor
            cycle = getattr(send, "__self__", None)  # uvicorn's send is its cycle's
            if isinstance(cycle, RequestResponseCycle):
                scope[WRITE_ANSWER] = self._writing(cycle)
            await app(scope, receive, self._announcing(send))

        return visiting

    def _writing(self, cycle: RequestResponseCycle) -> Callable[[int, bytes, bytes], bool]:
        """The one-write answer of ``cycle``'s request (:data:`~qmk.http.stream.WRITE_ANSWER`):
        ``write(status, fields, body)`` writes the head (the status line, the server's
        own headers, ``fields``) and the body in one send and ends the response as
        uvicorn's ``send`` ends it. False, having written nothing, where the two ASGI
        messages must go instead: a response under way, the client gone or not reading,
        a ``HEAD``, a request whose body is still arriving (:meth:`_announcing`)."""

        def write(status: int, fields: bytes, body: bytes) -> bool:
            if (
                cycle.response_started
                or cycle.disconnected
                or self._closed
                or self.flow.write_paused
                or self._body_arriving
                or cycle.scope["method"] == "HEAD"
            ):
                return False
            cycle.response_started = True
            cycle.waiting_for_100_continue = False
            keep_alive = cycle.keep_alive
            head = [STATUS_LINE[status], _server_fields(self.server_state.default_headers), fields]
            if not keep_alive:
                head.append(b"connection: close\r\n")
            head.append(b"\r\n")
            head.append(body)
            self.transport.write(b"".join(head))
            cycle.response_complete = True
            cycle.message_event.set()
            if not keep_alive:
                self.transport.close()
            cycle.on_response()
            return True

        return write

    def _announcing(self, send: Any) -> Any:
        """``send``, a response begun before its request's body arrived saying
        ``connection: close``: the connection closes after it (:meth:`on_response_complete`),
        and a client told so sends its next request on a new connection instead of into
        the close ("server disconnected"). The close stays the guard's, lingering, not
        uvicorn's at once (a close with unread bytes resets the answer away)."""

        async def announcing(message: Any) -> None:
            if message["type"] != "http.response.start":
                await send(message)
                return
            writer = self._writer
            if writer is not None and any(
                name.lower() == b"content-length" for name, _ in message.get("headers", ())
            ):
                writer.hold()  # written with the body's first bytes
            if not self._body_arriving:
                await send(message)
                return
            cycle = self.cycle
            keep_alive = cycle is not None and cycle.keep_alive
            headers = [*message.get("headers", ()), (b"connection", b"close")]
            self._close_after = True
            await send({**message, "headers": headers})
            if cycle is not None:
                cycle.keep_alive = keep_alive  # uvicorn read the header as its own close

        return announcing

    # ------------------------------------------------------------------ writing

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.guard is not None:
            self.guard.pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.guard is not None:
            self.guard.resume_writing()


_SERVER_FIELDS: list[Any] = [None, b""]


def _server_fields(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's own headers (its ``date``) as header lines: made again only when uvicorn
    makes a new list of them (once a second)."""
    made = _SERVER_FIELDS
    if made[0] is not headers:
        made[:] = [headers, b"".join(name + b": " + value + b"\r\n" for name, value in headers)]
    return bytes(made[1])


__all__ = ["guarded_protocol", "refusal"]
