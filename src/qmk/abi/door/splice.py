"""A listener whose server owns its own sockets, behind the door: its bytes spliced.

gRPC's core accepts and reads its connections itself, outside the event loop's sight,
so the door cannot count them, limit them or read their deadlines as it does the
JSON-RPC socket's and the HTTP API's. A :class:`Splicer` puts such a server behind the
door: the server listens on a private Unix socket (in a directory of mode 0700) and the
door listens on the public address. Every connection is accepted by the door
(:class:`~qmk.abi.door.accept.Acceptor`: the accept rate of all listeners), admitted or
refused (:meth:`~qmk.abi.door.peers.Connections.admit`: it holds three descriptors, the
client's and the two of its splice), and spliced to the server over a new Unix
connection bound to an abstract name of its own (``qmk-door-PID-TOKEN-N``), which the
server reports as each call's peer (gRPC: ``unix-abstract:NAME``): the call's handler
finds its :class:`~qmk.abi.door.door.Visitor` by it (:meth:`Door.named`). The splice
keeps the door's rules on the bytes:

- **Before sign-in** a connection may send ``max_line_unauthenticated`` bytes, and
  :data:`HANDSHAKE_BYTES` more (TLS, HTTP/2's preface and settings); past that the door
  stops reading it until one of its calls signs it in (shows a valid session, or a
  good key), so a client without credentials gets no large message to the server.
- **The connection's guard** (:class:`~qmk.abi.door.Guard`, the one every wire's
  connections have): a connection none of whose calls has signed it in
  ``auth_timeout_s`` after it was accepted (and with no call of it in the door) is
  closed. The client's unsent bytes are bounded by ``max_unsent_bytes``; above it the
  door stops reading the server's side (so the server's own buffers fill and its
  writes wait), and when they stay above it for ``write_timeout_s`` the connection is
  dropped, both sides, so the server frees what it held for it. A client that reads
  nothing may also stall an answer before any of those bytes: HTTP/2's flow control
  holds the server's writes once the client's window is spent, and it is spent for
  good when the client reads none of it. So while the connection's visitor holds an
  answer not yet sent (:attr:`~qmk.abi.door.Visitor.holding`), a connection that sent
  its client nothing for ``write_timeout_s`` is dropped as well (the guard watches it).

A connection refused is told why in its protocol by the listener's
:class:`RefusalWriter` (gRPC: the coded error as the status of its first call, then a
``GOAWAY``; nothing over TLS), within :data:`REFUSED_LINGER_S` and
:data:`REFUSED_LINGER_BYTES` of what its client sends, and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Coroutine
from typing import Any, Protocol

import qmk.aio as aio
from qmk.abi.door.accept import Acceptor
from qmk.abi.door.door import Door, Visitor
from qmk.abi.door.peers import Place, Refusal, peer_of

LOG = logging.getLogger("qmk.abi.door")

#: Bytes a connection may send before sign-in beyond ``max_line_unauthenticated``: a TLS
#: handshake, HTTP/2's preface, settings and window updates.
HANDSHAKE_BYTES = 16 * 1024
#: The descriptors a spliced connection holds: the client's and the splice's two.
SPLICE_WEIGHT = 3
#: A refused connection lingers (drops what its client sends) this long and many bytes.
REFUSED_LINGER_S, REFUSED_LINGER_BYTES = 1.0, 64 * 1024
#: How long a stopped server's last bytes may take to reach their clients.
FLUSH_GRACE_S = 2.0


class RefusalWriter(Protocol):
    """How a spliced listener tells a refused client why, in its own protocol."""

    def greeting(self, refusal: Refusal) -> bytes:
        """What is sent at once (b"": nothing)."""
        ...

    def answer(self, refusal: Refusal, received: bytes) -> bytes | None:
        """What is sent once the client has sent ``received`` (None: wait for more;
        b"": nothing, close)."""
        ...


class Splicer:
    """Puts a server on the Unix socket ``inner_path`` behind ``door`` (see the module).

    Args:
        door: the door.
        wire: the wire's name (its visitors' label).
        inner_path: the server's private Unix socket.
        refusal: how a refused client is told why.
    """

    def __init__(
        self,
        door: Door,
        wire: str,
        inner_path: str,
        refusal: RefusalWriter,
    ) -> None:
        self.door = door
        self.wire = wire
        self.inner_path = inner_path
        self.refusal = refusal
        self._prefix = f"qmk-door-{os.getpid()}-{secrets.token_hex(4)}-"
        self._count = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._splices: set[_Splice] = set()
        self._live: set[_Splice] = set()  # a side still connected (it may be flushing)
        self._quiet = asyncio.Event()  # set when the last live splice ends
        self._acceptor = Acceptor(door.connections, door.clock, self.adopt)

    @property
    def splices(self) -> int:
        """The connections spliced now."""
        return len(self._splices)

    def start(self, sockets: list[socket.socket]) -> None:
        """Accept on ``sockets`` (listening, non-blocking)."""
        self._acceptor.start(sockets, self._spawn)

    def stop(self) -> None:
        """Accept no more (the connections go on until their server closes them)."""
        self._acceptor.stop()

    async def aclose(self, grace: float = 0.0) -> None:
        """Accept no more; let the connections end on their own for up to ``grace``
        seconds, then cut those left and wait for the splice tasks.

        A server that has stopped has closed its side of every splice, but what it sent
        last may still be on its way to the client: the grace lets it arrive.
        """
        self.stop()
        if grace > 0 and self._live:
            with contextlib.suppress(TimeoutError):
                async with aio.timeout(grace):
                    await self._quiet.wait()
        for splice in list(self._live):
            splice.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def adopt(self, conn: socket.socket) -> None:
        """An accepted connection: admit it and splice it, or refuse it."""
        peer = peer_of(conn)
        admitted = self.door.connections.admit(peer, SPLICE_WEIGHT)
        if isinstance(admitted, Refusal):
            LOG.warning("refused a %s connection: %s", self.wire, admitted.message)
            self._spawn(self._refuse(conn, admitted))
            return
        self._count += 1
        name = f"{self._prefix}{self._count}"
        self._spawn(self._splice(conn, admitted, name))

    async def _refuse(self, conn: socket.socket, refusal: Refusal) -> None:
        """Tell the client why (its greeting, then an answer to what it sends: bounded
        in time and bytes), half-close, drop what it still sends, close."""
        loop = asyncio.get_running_loop()
        connections = self.door.connections

        def cut() -> None:  # a newer refusal needs the room: this linger ends now
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # a read waiting ends (EOF), a write fails

        connections.linger(cut)
        try:
            with contextlib.suppress(OSError):
                greeting = self.refusal.greeting(refusal)
                if greeting:
                    await loop.sock_sendall(conn, greeting)
            with contextlib.suppress(OSError, TimeoutError):
                async with aio.timeout(REFUSED_LINGER_S):
                    received, answered = b"", False
                    while len(received) < REFUSED_LINGER_BYTES:
                        chunk = await loop.sock_recv(conn, 65536)
                        if not chunk:
                            break
                        if answered:
                            continue
                        received += chunk
                        answer = self.refusal.answer(refusal, received)
                        if answer is None:
                            continue
                        answered = True
                        if answer:
                            await loop.sock_sendall(conn, answer)
                        conn.shutdown(socket.SHUT_WR)
        finally:
            connections.lingered(cut)
            conn.close()

    async def _splice(self, conn: socket.socket, place: Place, name: str) -> None:
        loop = asyncio.get_running_loop()
        inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            inner.bind("\0" + name)
            inner.setblocking(False)
            await loop.sock_connect(inner, self.inner_path)
        except OSError as exc:
            LOG.error("cannot reach the %s server's socket: %s", self.wire, exc)
            inner.close()
            conn.close()
            place.release()
            return
        visitor = self.door.visitor(self.wire, place.peer)
        splice = _Splice(self, visitor, place, name)
        self._splices.add(splice)
        self._live.add(splice)
        self._quiet.clear()
        self.door.name(name, visitor)
        try:
            await loop.create_unix_connection(lambda: splice.inner, sock=inner)
            await loop.connect_accepted_socket(lambda: splice.outer, conn)
        except OSError:
            splice.abort()
            inner.close()
            conn.close()
            return
        splice.started()

    def _gone(self, splice: _Splice) -> None:
        self._splices.discard(splice)
        self.door.forget(splice.name)

    def _settled(self, splice: _Splice) -> None:
        """Both sides of ``splice`` are closed: nothing of it is in flight."""
        self._live.discard(splice)
        if not self._live:
            self._quiet.set()


class _Splice:
    """One spliced connection: its two sides, and the door's rules on its bytes."""

    def __init__(self, splicer: Splicer, visitor: Visitor, place: Place, name: str) -> None:
        self.splicer = splicer
        self.visitor = visitor
        self.place = place
        self.name = name
        door = splicer.door
        self.guard = door.guard(
            visitor, splicer.wire, expire=lambda error, answered: self.abort(), abort=self.abort
        )
        self.allowance = self.guard.line_limit + HANDSHAKE_BYTES
        self.received = 0  # bytes from the client before sign-in
        self.outer = _Side(self, outer=True)
        self.inner = _Side(self, outer=False)
        self._paused: set[str] = set()  # why the client is not read: "allowance", "server"
        self._closed = False

    def started(self) -> None:
        transport = self.outer.transport
        if transport is None or self._closed:
            return
        self.guard.start(transport)

    # ------------------------------------------------------------------ reading

    def from_client(self, data: bytes) -> None:
        if not self.visitor.signed_in:
            self.received += len(data)
            if self.received > self.allowance and "allowance" not in self._paused:
                self._pause_client("allowance")
                self.visitor.on_sign_in(lambda: self._resume_client("allowance"))
        self.inner.write(data)

    def from_server(self, data: bytes) -> None:
        self.guard.sent()
        self.outer.write(data)

    def _pause_client(self, why: str) -> None:
        if not self._paused and self.outer.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.outer.transport.pause_reading()
        self._paused.add(why)

    def _resume_client(self, why: str) -> None:
        if why not in self._paused:
            return
        self._paused.discard(why)
        if not self._paused and self.outer.transport is not None and not self._closed:
            with contextlib.suppress(RuntimeError):
                self.outer.transport.resume_reading()

    # ------------------------------------------------------------------ writing

    def paused(self, outer: bool) -> None:
        """``outer``'s write buffer went above its bound: stop reading the other side."""
        if not outer:
            self._pause_client("server")
            return
        transport = self.inner.transport
        if transport is not None:
            with contextlib.suppress(RuntimeError):
                transport.pause_reading()
        self.guard.pause_writing()

    def resumed(self, outer: bool) -> None:
        if not outer:
            self._resume_client("server")
            return
        self.guard.resume_writing()
        transport = self.inner.transport
        if transport is not None and not self._closed:
            with contextlib.suppress(RuntimeError):
                transport.resume_reading()

    # ------------------------------------------------------------------ ending

    def ended(self, outer: bool) -> None:
        """One side's connection is lost: close the other (after what it has to send)."""
        other = self.inner if outer else self.outer
        if other.transport is not None and not other.transport.is_closing():
            other.transport.close()
        if self.outer.lost and self.inner.lost:
            self._finish()
            self.splicer._settled(self)
        elif not outer:
            self._finish()  # the server is done with it: its place is free

    def abort(self) -> None:
        for side in (self.outer, self.inner):
            if side.transport is not None:
                side.transport.abort()
        self._finish()
        self.splicer._settled(self)

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.guard.close()
        self.place.release()
        self.splicer._gone(self)


class _Side(asyncio.Protocol):
    """One side of a splice (the client's, ``outer``, or the server's)."""

    def __init__(self, splice: _Splice, *, outer: bool) -> None:
        self.splice = splice
        self.is_outer = outer
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.eof = False  # the peer of this side sent all it will
        self._pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._pending:  # what the other side sent before this one was connected
            pending, self._pending = b"".join(self._pending), []
            transport.write(pending)

    def write(self, data: bytes) -> None:
        if self.transport is None:
            self._pending.append(data)  # the other side is not connected yet
            return
        if self._pending:
            data = b"".join([*self._pending, data])
            self._pending.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.is_outer:
            self.splice.from_client(data)
        else:
            self.splice.from_server(data)

    def eof_received(self) -> bool:
        self.eof = True
        other = self.splice.inner if self.is_outer else self.splice.outer
        transport = other.transport
        if other.eof or transport is None or transport.is_closing():
            return False  # both ways have ended: this side closes, then the other
        if transport.can_write_eof():
            transport.write_eof()
            return True  # half-closed: the other way still flows
        return False

    def pause_writing(self) -> None:
        self.splice.paused(self.is_outer)

    def resume_writing(self) -> None:
        self.splice.resumed(self.is_outer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.splice.ended(self.is_outer)


__all__ = ["FLUSH_GRACE_S", "HANDSHAKE_BYTES", "SPLICE_WEIGHT", "RefusalWriter", "Splicer"]
