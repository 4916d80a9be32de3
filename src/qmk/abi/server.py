"""The qSyscall server: newline-delimited JSON-RPC 2.0 over a Unix socket and optional TCP.

Framing: one JSON-RPC message or batch per line, UTF-8, ending in ``\\n``. Bytes
after the last newline when a client closes are a message cut short and are
dropped. A line longer than its limit is answered with one -32600 error (``id``
null, ``data.limit``) and skipped without being held in memory; the connection
stays open.

Concurrency: every connection is one :class:`asyncio.Protocol` of the server (no stream
reader, no task reading it): each chunk the transport reads is split into lines in its
callback, and each request line is a task of its connection there, held by it, answered
before the connection closes, cancelled with it. So requests of one connection run
concurrently (pipelining: replies may come back in any order and carry the request's
``id``). Replies are whole lines, so they never interleave. The first reply of a
connection in an event-loop turn is written at once. The others that become ready in the
same turn are joined and written with one ``write`` at the end of that turn. One callback
of the server flushes every connection that wrote in the turn. So a pipelining client gets
many replies for one system call, and a lone request's reply waits for nothing.

Limits (:class:`~qmk.abi.limits.ServerConfig`; the ``[server]`` table of the kernel
config, whose keys are its fields; defaults in :mod:`qmk.defaults`). The connection
limits, the accept rates and the size limit before sign-in are the door's
(:mod:`qmk.abi.door`), kept for every listener of the kernel together. This server
writes their refusals as JSON-RPC lines, and every call passes the door
(:class:`~qmk.abi.jsonrpc.RpcCore` with its ``door``).

- **Connections**: at most ``max_connections`` at once, and ``max_connections_per_peer``
  of one peer (its IP address on TCP; its process, by ``SO_PEERCRED``, on the Unix
  socket). It takes no more than the file descriptors leave room for: at start the
  server counts the descriptors the process holds and keeps ``fd_reserve`` of the rest
  for workers and the database (default: the larger of 64 and RLIMIT_NOFILE/8). A
  connection past a limit is accepted and answered with one line (``1011 unavailable``,
  ``id`` null, ``data.reason`` and ``data.limit``). It is then half-closed while what
  its client still sends is dropped (:data:`REFUSED_LINGER_S`), and closed.
- **Accept rate**: the server accepts at most ``accept_rate`` connections a second
  (bursts up to ``max_connections``), whatever becomes of them. So a connect flood
  costs it at most that many accepts a second. Past it the server stops accepting until
  its bucket holds a token again, and new connections wait. The one at which it stopped
  waits in the server, the others in the listen backlog; past that, connect fails.
  Of those it accepts, a peer's past ``accept_rate_per_peer`` a second (bursts up to
  the larger of that and ``max_connections_per_peer``) are refused like connections
  past a limit. Their ``data.reason`` is ``accept-rate-per-peer``, with
  ``data.retry_after_s``. Both are token buckets (:mod:`qmk.rate`) on the server's
  clock. The server accepts at most :data:`~qmk.abi.door.ACCEPT_BATCH` connections in
  one turn of its event loop (:class:`~qmk.abi.door.Acceptor`).
- **Authentication deadline** (the connection's :class:`~qmk.abi.door.Guard`, the one
  every wire's connections have). A connection must be signed in (shown a valid session
  or a good key) ``auth_timeout_s`` after it was accepted. If no request has done so, it
  is answered with one line (``1011 unavailable``, ``data.reason`` ``auth-timeout``)
  and closed. Its requests still in flight are answered first, and it stays if one of
  them signs it in.
- **Before sign-in** a line may be at most ``max_line_unauthenticated`` bytes,
  and so may the requests in flight together; after it, ``max_line`` and
  ``max_inflight_bytes``. A longer line that follows requests still in flight waits
  for them, so a client may pipeline ``q_negotiate_caps`` and a large submit.
- **Nesting**: a line whose arrays and objects nest deeper than ``max_depth`` is
  refused before it is parsed (:func:`~qmk.abi.jsonrpc.nesting_exceeds`).
- **Per connection**: at most ``max_inflight`` requests at once. When its unsent
  replies pass ``max_unsent_bytes`` (a client that pipelines and does not read), the
  server stops reading its requests until the client has read them down to a quarter.
  A line waits whole in the connection's buffer (reading paused meanwhile), so a
  connection holds at most its line limit plus one read of its socket (256 KiB).
- **Writing**: a reply longer than :data:`STREAM_CHUNK` (a big result) is written a
  chunk at a time, each once the connection's unsent bytes are below
  ``max_unsent_bytes``. Its pieces are the stored result's own bytes
  (:func:`~qmk.abi.jsonrpc.encode_parts`), never a copy per connection. So a client
  that does not read holds at most ``max_unsent_bytes`` and one chunk of the server's
  memory. When its unsent bytes stay above that bound for ``write_timeout_s`` (the
  transport paused writing that long), the connection is dropped and that memory is
  returned.
- **Shared count**: the connection count and its room are the door's
  (:class:`~qmk.abi.door.Connections`). ``qmk serve`` shares them with the HTTP API
  (:mod:`qmk.http.guard`) and gRPC, so the connections of every wire together stay
  within the descriptors' room, and a peer's within its limit.

The Unix socket is bound under a temporary name with mode 0600 (umask 0o177) and
renamed into place once it listens. So the path appears only when the server accepts
connections, and never with a wider mode. A stale socket file (nothing listening) is
replaced; a live one is an error. On stop (SIGTERM or SIGINT via :func:`serve_kernel`)
the server stops listening and reading. It gives in-flight requests and unsent replies
``drain_timeout_s`` in all, then closes every connection that is left and removes its
socket. A client that pipelined and never reads is cut, not waited for.
:class:`RepeatFilter` keeps a flood of like log lines short: every refusal logs a
warning, and under a flood that is a few lines and a count.

Time (the deadline and the rates) is read from the server's clock, the event loop's by
default. A test gives a clock it moves by hand (``qmk.kernel.manual_clock.ManualClock`` has the
:class:`~qmk.abi.door.ServerClock` methods), so no test of them waits for time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import qmk.aio as aio
from qmk.abi.door import (
    Acceptor,
    Door,
    DoorProbe,
    Guard,
    Place,
    Refusal,
    ServerClock,
    connection_room,
    peer_of,
)
from qmk.abi.errors import InvalidRequest, ServeError
from qmk.abi.jsonrpc import Caller, RpcCore, encode
from qmk.abi.limits import ServerConfig
from qmk.defaults import LISTEN_BACKLOG
from qmk.errors import UnavailableError

if TYPE_CHECKING:
    from qmk.abi.watch import ConnectionWatches, WatchSource

LOG = logging.getLogger("qmk.abi.server")

#: A refused connection stays half-open (its refusal sent, what it sends read and
#: dropped) until its client closes, for at most this many seconds and bytes, so that a
#: client writing its first request reads the refusal instead of a broken pipe (at most
#: :data:`~qmk.abi.door.REFUSED_LINGER_MAX` at once, on every listener together).
REFUSED_LINGER_S, REFUSED_LINGER_BYTES = 1.0, 64 * 1024
#: A reply longer than this is written in chunks of this size, each once the
#: connection's unsent bytes are below its bound (:meth:`_Outbox.put_large`).
STREAM_CHUNK = 256 * 1024


def connect_unix(path: str) -> int:
    """A descriptor of a new connection to the Unix socket ``path``, now the caller's:
    a line that is not JSON-RPC (the kernel's line to the Dask bridge).

    Raises:
        OSError: nothing listens there.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return os.dup(sock.fileno())
    finally:
        sock.close()


def adopt_socket(fd: int) -> socket.socket:
    """The listening socket of a descriptor handed down by a supervisor."""
    return socket.socket(fileno=fd)


def _is_live(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_unix(path: Path, *, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A listening Unix socket at ``path`` with mode 0600, put in place atomically.

    Raises:
        ServeError: ``path`` is not a socket, a server listens there already, or the
            directory does not take a socket.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise ServeError.of("cannot-bind", f"{path} exists and is not a socket")
        if _is_live(path):
            raise ServeError.of("socket-in-use", f"{path}: a server already listens there")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(str(temporary))
        finally:
            os.umask(old)
        os.chmod(temporary, 0o600)
        sock.listen(backlog)
        os.replace(temporary, path)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ServeError.of(
            "cannot-bind", f"{path}: cannot bind a socket: {exc.strerror}"
        ) from None
    sock.setblocking(False)
    return sock


def chunks(parts: list[bytes], size: int = STREAM_CHUNK) -> Iterator[memoryview]:
    """``parts`` cut into views of at most ``size`` bytes (no copy of any part).

    >>> [bytes(c) for c in chunks([b"abc", b"defgh", b"\\n"], 4)]
    [b'abc', b'defg', b'h', b'\\n']
    """
    for part in parts:
        with memoryview(part) as view:
            for start in range(0, len(view), size):
                yield view[start : start + size]


class Pipe(Protocol):
    """What an outbox and a connection's watches write through: the connection (a
    :class:`asyncio.StreamWriter` has the same four)."""

    @property
    def transport(self) -> asyncio.WriteTransport:
        """The connection's transport."""
        ...

    def is_closing(self) -> bool:
        """Whether the connection is closing or closed."""
        ...

    def write(self, data: bytes | memoryview) -> None:
        """Write bytes now (the transport buffers what it cannot send)."""
        ...

    async def drain(self) -> None:
        """Return once the unsent bytes are below the bound.

        Raises:
            ConnectionError: the connection is lost.
        """
        ...


class _TurnEnd:
    """The outboxes that wrote a line in this turn of the event loop.

    One callback at the turn's end flushes them all: one for every connection of a
    server, not one each.
    """

    __slots__ = ("_due", "_loop")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._due: list[_Outbox] = []

    def add(self, outbox: _Outbox) -> None:
        """Flush ``outbox`` at the end of this turn."""
        if not self._due:
            self._loop.call_soon(self._flush)
        self._due.append(outbox)

    def _flush(self) -> None:
        due, self._due = self._due, []
        for outbox in due:
            outbox.flush()


class _Outbox:
    """The reply lines of one connection, written together once per loop turn; a line
    longer than :data:`STREAM_CHUNK` is written a chunk at a time (:meth:`put_large`).

    Args:
        writer: the connection (:class:`Pipe`).
        turn_end: what flushes it at the end of a turn in which it wrote (shared by the
            connections of a server; None: its own).
    """

    __slots__ = ("_large", "_parts", "_scheduled", "_streaming", "_turn_end", "writer")

    def __init__(self, writer: Pipe, turn_end: _TurnEnd | None = None) -> None:
        self.writer = writer
        self._turn_end = turn_end if turn_end is not None else _TurnEnd()
        self._parts: list[bytes] = []
        self._scheduled = False
        self._streaming = False  # a large line is being written: the others wait
        self._large: asyncio.Lock | None = None  # made at the first large line

    def put(self, data: bytes) -> None:
        """Send one whole line: the turn's first at once, later ones at the turn's end."""
        if self._scheduled or self._streaming:
            self._parts.append(data)
            return
        self._scheduled = True
        self._turn_end.add(self)
        self._write(data)

    async def send(self, parts: list[bytes]) -> None:
        """Send one line given as pieces: with :meth:`put` when it is short, else with
        :meth:`put_large`."""
        if not self.put_short(parts):
            await self.put_large(parts)

    def put_short(self, parts: list[bytes]) -> bool:
        """:meth:`put` the line given as pieces when it is short; False (nothing sent)
        when it is longer than :data:`STREAM_CHUNK`: :meth:`put_large` sends it."""
        if len(parts) == 1:
            data = parts[0]
        elif sum(map(len, parts)) > STREAM_CHUNK:
            return False
        else:
            data = b"".join(parts)
        if len(data) > STREAM_CHUNK:
            return False
        self.put(data)
        return True

    async def put_large(self, parts: list[bytes]) -> None:
        """Send one line given as pieces, a chunk at a time.

        Each chunk waits until the connection's unsent bytes are below its bound
        (``max_unsent_bytes``). So a client that does not read holds at most that and one
        chunk of the server's memory, until the write timeout drops it. The pieces are
        the result's own bytes, not a copy. Lines put meanwhile follow it."""
        if self._large is None:
            self._large = asyncio.Lock()
        async with self._large:
            self.flush()
            self._streaming = True
            try:
                for chunk in chunks(parts):
                    if self.writer.is_closing():
                        return
                    await self.writer.drain()
                    self.writer.write(chunk)
            except ConnectionError:
                return
            finally:
                self._streaming = False
                self.flush()

    def flush(self) -> None:
        """Write the queued lines now, with one ``write``."""
        self._scheduled = False
        if not self._parts or self._streaming:
            return
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts.clear()
        self._write(data)

    def _write(self, data: bytes) -> None:
        transport = self.writer.transport
        if transport.is_closing():
            return
        try:  # not contextlib.suppress: three calls of its own at every reply
            transport.write(data)
        except ConnectionError:
            return  # the peer is gone: its connection ends


class _Watches:
    """A connection's watches, made at its first ``q_watch`` or ``q_unwatch``
    (:class:`qmk.abi.watch.ConnectionWatches`): a kernel whose clients watch nothing
    loads none of the socket's watches."""

    __slots__ = ("_guard", "_send", "_source", "_writer", "made")

    def __init__(
        self,
        source: WatchSource,
        send: Callable[[list[bytes]], Awaitable[None]],
        writer: Pipe,
        guard: Guard,
    ) -> None:
        self._source = source
        self._send = send
        self._writer = writer
        self._guard = guard
        self.made: ConnectionWatches | None = None

    def __len__(self) -> int:
        return 0 if self.made is None else len(self.made)

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """Answer a socket-only method (:meth:`ConnectionWatches.call`)."""
        if self.made is None:
            from qmk.abi.watch import ConnectionWatches  # at the connection's first watch

            self.made = ConnectionWatches(self._source, self._send, self._writer, self._guard)
        return await self.made.call(method, params)

    async def aclose(self) -> None:
        """The connection ends: its watches end (:meth:`ConnectionWatches.aclose`)."""
        if self.made is not None:
            await self.made.aclose()


class _Connection(asyncio.Protocol):
    """One connection of the server: the protocol its transport calls, which splits what
    it reads into lines and answers each in a task of its own.

    No stream reader and no task reads it: each chunk is split into lines in the
    transport's callback, and each line the connection's limits admit at once gets its
    task there. A line that must wait (its requests in flight are at their count or
    bytes, its unsent replies above the bound, or a long line before sign-in behind a
    request that may sign it in) stops reading (``pause_reading``) until a request is
    answered or the client has read its replies down. Reading ends at the client's end
    of stream, at the sign-in deadline or idle expiry (:meth:`_expire`), or when the
    server stops. Once reading has ended and every request is answered, the connection
    closes (a lingering close after an expiry, so the client reads the coded line).

    It is also the :class:`Pipe` of its outbox and watches.

    Args:
        server: the server that accepted it.
        peer: who is at the other end (:func:`~qmk.abi.door.peer_of`).
    """

    def __init__(self, server: Server, peer: str) -> None:
        self.server = server
        self.peer = peer
        self.config = server.config
        #: The loop it is served on, kept: on Python 3.11 each ``get_running_loop()``
        #: (``current_task()`` calls it too) is a ``getpid`` system call, its fork check.
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # at connection_made
        visitor = server.door.visitor("jsonrpc", peer)
        self.caller = Caller(visitor=visitor)
        self.outbox = _Outbox(self, server._turn_end)
        #: Its guard at the door (the sign-in deadline, unsent bytes, write timeout), once
        #: it is admitted.
        self.guard: Guard | None = None
        self.place: Place | None = None  # its place in the door's count
        #: Its requests' tasks not yet ended (each leaves when its reply is put).
        self.requests: set[asyncio.Task[None]] = set()
        self.inflight = 0
        self.inflight_bytes = 0
        #: Its sign-in deadline passed: its coded line is written, it lingers.
        self.expired = False
        #: Done once it is closed and every request of it has ended.
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._buffer = bytearray()  # bytes read and not yet a whole line
        self._scanned = 0  # the buffer holds no newline before this
        self._skipping = False  # inside an over-long line: drop bytes up to its newline
        self._reading = True  # its lines are read and answered
        self._waiting = False  # a line waits for room (reading paused meanwhile)
        self._ended = False  # reading ended and every request answered: it closes
        self._lost = False  # the transport is closed
        self._paused = False  # the transport paused writing (unsent bytes above the bound)
        self._drained: asyncio.Future[None] | None = None  # drain()'s, while paused
        self._linger: asyncio.TimerHandle | None = None  # lingering: what comes is dropped
        self._dropped = 0
        self._closing: asyncio.Task[None] | None = None  # its watches ending

    # ----------------------------------------------------------------- the transport's

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._made(self)

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            if self._linger is not None:
                self._dropped += len(data)
                if self._dropped >= REFUSED_LINGER_BYTES:
                    self.transport.close()
            return
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return
            self._skipping = False
            data = data[end + 1 :]
        if self._waiting:  # (a transport may hand over what it had read before pausing)
            self._buffer += data
            return
        if not self._buffer and data[-1:] == b"\n" and self._lines(data):
            return
        self._buffer += data
        self._read()

    def eof_received(self) -> bool:
        if self._linger is not None:
            return False  # a lingering client closed: close
        self._stop_reading()  # a partial line was cut short and is dropped
        return True  # open for the replies still due

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self.guard is not None:
            self.guard.close()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
            self.server.door.connections.lingered(self.transport.close)
        self._wake_drain()
        self._stop_reading()
        self._done()

    def pause_writing(self) -> None:
        self._paused = True
        if self.guard is not None:
            self.guard.pause_writing()

    def resume_writing(self) -> None:
        self._paused = False
        if self.guard is not None:
            self.guard.resume_writing()
        self._wake_drain()
        self._resume()

    # ----------------------------------------------------------------- as a Pipe

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def write(self, data: bytes | memoryview) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        """Return once the unsent bytes are below the bound (the transport resumed
        writing).

        Raises:
            ConnectionResetError: the connection is lost.
        """
        while self._paused and not self._lost:
            if self._drained is None:
                self._drained = self.loop.create_future()
            await self._drained
        if self._lost:
            raise ConnectionResetError("the connection is lost")

    def _wake_drain(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # ----------------------------------------------------------------- reading

    @property
    def signed_in(self) -> bool:
        """Whether one of its requests showed a valid session or key (the door's word)."""
        return bool(self.caller.visitor.signed_in)

    def _lines(self, data: bytes) -> bool:
        """Answer a chunk of whole lines read with none kept, each within the line limit:
        each line the connection admits at once gets its task here, in order; from the
        first it does not, the rest is kept for :meth:`_read`. False (nothing done): a
        line is over the limit, and :meth:`_read` takes the chunk."""
        assert self.guard is not None
        limit = self.guard.line_limit
        end = data.find(b"\n")
        if end + 1 == len(data):  # one line, the common chunk
            if end > limit:
                return False
            lines = [data]
        else:
            lines = []
            start = 0
            while start < len(data):
                end = data.index(b"\n", start)
                if end - start > limit:
                    return False
                lines.append(data[start : end + 1])
                start = end + 1
        for index, line in enumerate(lines):
            if not self._admitted(len(line)):
                self._buffer += b"".join(lines[index:])
                self._read()
                return True
            self._start(line)
        return True

    def _read(self) -> None:
        """Split the kept bytes into lines and start a task for each, within the limits;
        stop reading while a line must wait (:meth:`_resume` goes on)."""
        assert self.guard is not None
        buffer, guard, config = self._buffer, self.guard, self.config
        while self._reading:
            newline = buffer.find(b"\n", self._scanned)
            length = newline if newline >= 0 else len(buffer)
            limit = guard.line_limit
            if not self._skipping and length > limit:
                if not self.signed_in and self.inflight and length <= config.max_line:
                    self._wait()  # a request in flight may sign it in
                    return
                self.server._refuse_line(self, limit)
                if newline >= 0:
                    del buffer[: newline + 1]
                else:
                    buffer.clear()
                    self._skipping = True
                self._scanned = 0
                continue
            if newline < 0:
                self._scanned = len(buffer)
                return
            if not self._admitted(newline + 1):
                if self.transport.is_closing():
                    self._stop_reading()
                else:
                    self._wait()
                return
            if newline + 1 == len(buffer):  # the buffer is one whole line
                line = bytes(buffer)
                buffer.clear()
            else:
                with memoryview(buffer) as view:
                    line = bytes(view[: newline + 1])
                del buffer[: newline + 1]
            self._scanned = 0
            self._start(line)

    def _wait(self) -> None:
        """A line must wait for room: read nothing more until :meth:`_resume`."""
        self._waiting = True
        self.transport.pause_reading()

    def _resume(self) -> None:
        """Room may have come (a request answered, the replies read down): the line that
        waits goes on, and reading with it."""
        if not self._waiting or not self._reading:
            return
        self._waiting = False
        self._read()
        if not self._waiting and self._reading:
            self.transport.resume_reading()

    def _stop_reading(self) -> None:
        """Read no more requests (end of stream, an expiry, the server stops); it closes
        once its requests are answered."""
        if not self._reading:
            return
        self._reading = False
        self._waiting = False
        self._buffer.clear()
        self._settle()
        transport = self.transport  # paused while open: a close ends reading, a linger reads
        if not self._lost and self._linger is None and not transport.is_closing():
            transport.pause_reading()

    def _admitted(self, size: int) -> bool:
        """Count one more request of ``size`` bytes in flight if the connection may run it
        now: its unsent replies within the bound, its requests in flight within their count
        and bytes (False: nothing counted)."""
        guard = self.guard
        assert guard is not None
        if self.transport.is_closing() or not guard.writable:
            return False
        config = self.config
        budget = config.max_inflight_bytes if self.signed_in else config.max_line_unauthenticated
        if self.inflight == 0 or (
            self.inflight < config.max_inflight and self.inflight_bytes + size <= budget
        ):
            self.inflight += 1
            self.inflight_bytes += size
            return True
        return False

    # ----------------------------------------------------------------- answering

    def _start(self, line: bytes) -> None:
        """Answer ``line`` in a task of its own, held by the connection until it ends.

        A task of the loop, not of a task group: the group's bookkeeping (a callback
        when each ends) and its default name (``Task-N``, formatted at each task) cost a
        small request dearly. The connection waits for and cancels its requests itself."""
        task = self.loop.create_task(self._answer(line), name="qmk-rpc-request")
        self.requests.add(task)

    async def _answer(self, line: bytes) -> None:
        try:
            parts = await self.server.core.handle_line_parts(line, self.caller)
            if parts is not None and not self.outbox.put_short(parts):
                await self.outbox.put_large(parts)
        except Exception:
            LOG.exception("answering a request failed")
        finally:
            self.requests.discard(asyncio.current_task(self.loop))
            self._finish(len(line))

    def _finish(self, size: int) -> None:
        """A request of ``size`` bytes is answered."""
        self.inflight -= 1
        self.inflight_bytes -= size
        if self.guard is not None:
            self.guard.settled()
        if self._reading:
            self._resume()
        else:
            self._settle()

    def busy(self) -> bool:
        """Whether a request of it is under way or a watch of it lives (its guard's)."""
        return self.inflight > 0 or bool(self.caller.watches)

    def expire(self, error: UnavailableError, answered: bool) -> None:
        """The guard's verdict: no request of the connection signed it in by its deadline
        (those in flight then were answered first), or it was idle past
        ``idle_timeout_s``. Stop reading, and queue the coded line (``auth-timeout``,
        ``idle-timeout``); the connection lingers once its requests are done."""
        if not self._reading:
            return  # its client went away, or the server stops: it closes anyway
        self.expired = True
        self.outbox.put(encode({"jsonrpc": "2.0", "id": None, "error": error.to_rpc()}))
        self._stop_reading()

    # ----------------------------------------------------------------- closing

    def _settle(self) -> None:
        """Once reading has ended and no request is under way: close (its watches end
        first)."""
        if self._reading or self.requests or self._ended:
            return
        self._ended = True
        if self.guard is not None:
            self.guard.close()
        watches = self.caller.watches
        if watches is not None and watches.made is not None:
            self._closing = self.loop.create_task(self._close_after(watches))
            return
        self._close()

    async def _close_after(self, watches: _Watches) -> None:
        try:
            await watches.aclose()
        finally:
            self._closing = None
            self._close()

    def _close(self) -> None:
        self.outbox.flush()  # replies still queued go out before the close
        if self.expired and not self.server._stopping and not self._lost:
            self.linger()
        else:
            self.transport.close()
        self._done()

    def linger(self) -> None:
        """Half-close, drop what the client still sends (bounded), then close, so that
        it reads the line just written rather than a reset."""
        transport = self.transport
        try:
            transport.write_eof()
        except (OSError, RuntimeError):
            transport.close()
            return
        self._reading = False
        self._linger = self.loop.call_later(REFUSED_LINGER_S, transport.close)
        self.server.door.connections.linger(transport.close)  # a newer refusal may cut it
        self.server._lingering.add(self)
        transport.resume_reading()

    def _done(self) -> None:
        """Once closed and every request ended: its place is given back."""
        if not self._lost or not self._ended or self._closing is not None:
            return
        if self.closed.done():
            return
        self.server._forget(self)
        self.closed.set_result(None)

    def abort(self) -> None:
        """Cut it now (the server's drain timed out): its requests are cancelled."""
        self.transport.abort()
        for task in self.requests:
            task.cancel()
        if self._closing is not None:
            self._closing.cancel()


class Server:
    """Serves an :class:`RpcCore` on a Unix socket and/or TCP until told to stop.

    Args:
        core: the protocol core that answers each line.
        config: addresses and limits.
        clock: the clock of the authentication deadline and the accept rates (default:
            the door's, or the event loop's).
        watches: where ``q_watch`` finds a job's events (:mod:`qmk.abi.watch`; None:
            the socket-only methods are not served).
        door: the door its calls pass (:mod:`qmk.abi.door`), shared with the other
            listeners of the kernel: their connections are counted together. None: a
            door of its own on ``core``'s target, with no probe (the target checks its
            sessions).
    """

    def __init__(
        self,
        core: RpcCore,
        config: ServerConfig,
        *,
        clock: ServerClock | None = None,
        watches: WatchSource | None = None,
        door: Door | None = None,
    ) -> None:
        self.core = core
        self.watches = watches
        self.config = config
        self.door = door if door is not None else Door(core.target, config, clock=clock)
        self.clock: ServerClock = clock or self.door.clock
        if core.door is None:
            core.door = self.door
        self.addresses: list[str] = []
        self._group: aio.TaskGroup | None = None
        #: The admitted connections not yet closed.
        self._connections: set[_Connection] = set()
        #: The connections closing with a lingering close (refused, or expired).
        self._lingering: set[_Connection] = set()
        #: The accepted sockets whose transports are being made.
        self._adopting: set[asyncio.Task[None]] = set()
        self._turn_end: _TurnEnd | None = None  # made on the loop, by serve
        self._stopping = False
        self._socket_inode: int | None = None
        self._listeners: list[socket.socket] = []
        self._acceptor = Acceptor(self.door.connections, self.clock, self._adopt_soon)

    @property
    def room(self) -> int:
        """The most connections of every listener together (set from the descriptors
        when it listens)."""
        return self.door.connections.room

    @property
    def connection_count(self) -> int:
        """The connections the server holds now."""
        return len(self._connections)

    async def serve(
        self, stop: asyncio.Event, *, ready: Callable[[list[str]], None] | None = None
    ) -> None:
        """Listen, answer until ``stop`` is set, then drain and remove the socket.

        Args:
            stop: set it to stop the server.
            ready: called once listening, with the addresses (``unix:PATH``, ``tcp:H:P``).

        Raises:
            ServeError: an address cannot be bound, or no descriptor is left for a
                connection.
        """
        listeners = self._listeners
        self._turn_end = _TurnEnd()
        try:
            await self._listen(listeners)
            room, how = connection_room(self.config)
            self.door.connections.set_room(room)
            LOG.info(
                "at most %d connections (%s), %d per peer",
                room,
                how,
                self.config.max_connections_per_peer,
            )
            async with aio.TaskGroup() as group:
                self._group = group
                self._acceptor.start(listeners, group.create_task)
                if ready is not None:
                    ready(list(self.addresses))
                await stop.wait()
                self._stopping = True
                if self.watches is not None:  # live watches end with closing, then end
                    self.watches.close()
                self._acceptor.stop()
                for listener in listeners:
                    listener.close()
                await self._drain()
        finally:
            self._acceptor.stop()
            for listener in listeners:
                listener.close()
            listeners.clear()
            self._remove_socket()

    async def _listen(self, listeners: list[socket.socket]) -> None:
        """Bind every address (not yet accepting); ServeError when one cannot be bound."""
        path = self.config.socket_path
        if path is not None:
            listeners.append(bind_unix(path))
            self._socket_inode = os.stat(path).st_ino
            self.addresses.append(f"unix:{path}")
        if self.config.tcp is not None:
            from qmk.abi.tcp import bind_tcp

            tcp = bind_tcp(*self.config.tcp)
            listeners.append(tcp)
            bound = tcp.getsockname()
            self.addresses.append(f"tcp:{bound[0]}:{bound[1]}")

    def _remove_socket(self) -> None:
        path = self.config.socket_path
        if path is None or self._socket_inode is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == self._socket_inode:  # never remove a successor's
                path.unlink()
        self._socket_inode = None

    async def _drain(self) -> None:
        """Stop reading every connection; give requests in flight and unsent replies
        ``drain_timeout_s``; then cut the connections that are left."""
        for adopting in self._adopting:
            adopting.cancel()
        if self._adopting:
            await asyncio.wait(self._adopting)
        for lingering in list(self._lingering):
            lingering.transport.close()
        connections = list(self._connections)
        for connection in connections:
            connection._stop_reading()
        closing = [connection.closed for connection in connections]
        if not closing:
            return
        _, pending = await asyncio.wait(closing, timeout=self.config.drain_timeout_s)
        for connection in connections:
            if not connection.closed.done():
                connection.abort()  # a peer that never reads: cut it
        if pending:
            await asyncio.wait(pending)

    # ----------------------------------------------------------------- accepting

    def _adopt_soon(self, conn: socket.socket) -> None:
        """The acceptor's: make an accepted socket's transport, with a :class:`_Connection`
        as its protocol (which the door admits or refuses once it is made)."""
        if self._stopping or self._group is None:
            conn.close()
            return
        connection = _Connection(self, peer_of(conn))
        task = connection.loop.create_task(self._adopt(conn, connection), name="qmk-rpc-adopt")
        self._adopting.add(task)

    async def _adopt(self, conn: socket.socket, connection: _Connection) -> None:
        """Make the transport (its protocol serves it from then on); the task leaves the
        server's set itself (a done callback would cost a callback more a connection)."""
        loop = connection.loop
        try:
            await loop.connect_accepted_socket(lambda: connection, conn)
        except OSError:
            conn.close()
        finally:
            self._adopting.discard(asyncio.current_task(loop))

    def _made(self, connection: _Connection) -> None:
        """A connection's transport is made: the door admits it (it is served from now
        on) or refuses it (one coded line, then a lingering close)."""
        if self._stopping or self._group is None:
            connection._reading = False
            connection._ended = True
            connection.transport.close()
            return
        admitted = self.door.connections.admit(connection.peer)
        if isinstance(admitted, Refusal):
            self._refuse(connection, admitted)
            return
        connection.place = admitted
        visitor = connection.caller.visitor
        connection.guard = guard = self.door.guard(
            visitor, "JSON-RPC", expire=connection.expire, busy=connection.busy
        )
        if self.watches is not None:
            connection.caller.watches = _Watches(
                self.watches, connection.outbox.send, connection, guard
            )
        self._connections.add(connection)
        guard.start(connection.transport)

    def _forget(self, connection: _Connection) -> None:
        """A connection is closed and its requests ended: its place is given back."""
        self._connections.discard(connection)
        self._lingering.discard(connection)
        if connection.place is not None:
            connection.place.release()

    def _refuse(self, connection: _Connection, refusal: Refusal) -> None:
        """Answer a connection past a limit with one coded line, and close it."""
        LOG.warning("refused a connection of %s: %s", connection.peer, refusal.message)
        connection._reading = False
        connection._ended = True
        transport = connection.transport
        try:
            error = refusal.error()
            transport.write(encode({"jsonrpc": "2.0", "id": None, "error": error.to_rpc()}))
        except (OSError, RuntimeError):
            transport.close()
            return
        connection.linger()

    def _refuse_line(self, connection: _Connection, limit: int) -> None:
        if connection.signed_in or limit >= self.config.max_line:
            message = f"the line is longer than the limit of {limit} bytes"
        else:
            message = (
                f"the line is longer than the limit of {limit} bytes of a connection that "
                "has not authenticated: open a session (q_negotiate_caps) first"
            )
        error = InvalidRequest(message, limit=limit)
        connection.outbox.put(encode({"jsonrpc": "2.0", "id": None, "error": error.to_rpc()}))


class RepeatFilter(logging.Filter):
    """A log filter that lets at most ``burst`` records of one kind through per window.

    A kind is the logger, the level and the message with its numbers and hex ids
    blanked, so "job 3f2a9c1d failed" and "job 77b0e4a2 failed" are one kind. The first
    record of a kind after its window says how many like it were dropped.

    >>> now = [0.0]
    >>> kinds = RepeatFilter(burst=2, window_s=10, clock=lambda: now[0])
    >>> def log(n):
    ...     return logging.LogRecord("qmk", logging.ERROR, "", 0, "job %d failed", (n,), None)
    >>> [kinds.filter(log(n)) for n in range(4)]
    [True, True, False, False]
    >>> now[0] = 10.0
    >>> record = log(9); kinds.filter(record), record.getMessage()
    (True, 'job 9 failed (2 more like it dropped in the last 10 s)')
    """

    _VARYING = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*\b")

    def __init__(
        self,
        *,
        burst: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        kinds: int = 1024,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self._most = kinds
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # [start, let through, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        kind = (record.name, record.levelno, self._VARYING.sub("#", text))
        now = self._clock()
        seen = self._seen.get(kind)
        if seen is None or now - seen[0] >= self.window_s:
            if seen is None and len(self._seen) >= self._most:
                self._seen.clear()
            dropped = int(seen[2]) if seen is not None else 0
            self._seen[kind] = [now, 1, 0]
            if dropped:
                record.msg = (
                    f"{text} ({dropped} more like it dropped in the last {self.window_s:g} s)"
                )
                record.args = None
            return True
        if seen[1] < self.burst:
            seen[1] += 1
            return True
        seen[2] += 1
        return False


async def serve_kernel(
    target: object,
    config: ServerConfig,
    *,
    ready: Callable[[list[str]], None] | None = None,
    stop: asyncio.Event | None = None,
    watches: WatchSource | None = None,
    door: Door | None = None,
    probe: DoorProbe | None = None,
) -> None:
    """Serve ``target`` (the kernel) until SIGTERM or SIGINT, then drain and return.

    Args:
        target: the object whose coroutine methods answer the qSyscall methods.
        config: addresses and limits.
        ready: called once listening, with the addresses.
        stop: the event that stops the server: its caller's, who then owns SIGTERM and
            SIGINT (``qmk serve`` sets it on either, and keeps them until its kernel has
            closed). None: an event of its own, set on either signal until it returns.
        watches: where ``q_watch`` finds a job's events (None: no watches).
        door: the door it shares with the kernel's other listeners (None: its own,
            on ``target`` and ``probe``).
        probe: the kernel's probe, for a door of its own (sessions checked first).
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if stop is None:  # a caller's event comes with its own handlers, never removed here
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
    try:
        if door is None:
            door = Door(target, config, probe=probe)
        core = RpcCore(target, max_depth=config.max_depth, door=door)
        await Server(core, config, watches=watches, door=door).serve(stop, ready=ready)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
