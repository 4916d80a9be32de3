"""The qSyscall server: newline-delimited JSON-RPC 2.0 over a Unix socket and optional TCP.

Framing: one JSON-RPC message or batch per line, UTF-8, ending in ``\\n``. Bytes
after the last newline when a client closes are a message cut short and are
dropped. A line longer than its limit is answered with one -32600 error (``id``
null, ``data.limit``) and skipped without being held in memory; the connection
stays open.

Concurrency: every connection is a task of the server's :class:`asyncio.TaskGroup`;
each request line is a task of its connection's group, so requests of one
connection run concurrently (pipelining: replies may come back in any order and
carry the request's ``id``). Replies are whole lines, so they never interleave. The
first reply of a connection in an event-loop turn is written at once; the others
that become ready in the same turn are joined and written with one ``write`` at the
end of that turn, so a pipelining client gets many replies for one system call and a
lone request's reply waits for nothing.

Limits (:class:`ServerConfig`; the ``[server]`` table of the kernel config, whose keys
are its fields; defaults in :mod:`qmk.defaults`):

- **Connections**: at most ``max_connections`` at once, ``max_connections_per_peer``
  of one peer (its IP address on TCP; its process, by ``SO_PEERCRED``, on the Unix
  socket), and no more than the file descriptors leave room for: at start the server
  counts the descriptors the process holds and keeps ``fd_reserve`` of the rest
  (default: the larger of 64 and RLIMIT_NOFILE/8) for workers and the database. A
  connection past a limit is accepted, answered with one line (``1011 unavailable``,
  ``id`` null, ``data.reason`` and ``data.limit``), half-closed while what its client
  still sends is dropped (:data:`REFUSED_LINGER_S`), and closed.
- **Accept rate**: the server accepts at most ``accept_rate`` connections a second
  (bursts up to ``max_connections``), whatever becomes of them, so a connect flood
  costs it at most that many accepts a second: past it the server stops accepting
  until its bucket holds a token again, and new connections wait (the one at which it
  stopped in the server, the others in the listen backlog; past that, connect fails).
  Of those it accepts, a peer's past ``accept_rate_per_peer`` a second (bursts up to
  the larger of that and ``max_connections_per_peer``) are refused like connections
  past a limit, with ``data.reason`` ``accept-rate-per-peer`` and
  ``data.retry_after_s``. Both are token buckets (:mod:`qmk.rate`) on the server's
  clock. The server accepts at most :data:`ACCEPT_BATCH` connections in one turn of
  its event loop.
- **Authentication deadline**: a connection none of whose requests has succeeded
  ``auth_timeout_s`` after it was accepted (it sent nothing, or no
  ``q_negotiate_caps`` with a good key) is answered with one line (``1011
  unavailable``, ``data.reason`` ``auth-timeout``) and closed; requests of it still in
  flight then are answered first, and it stays if one of them succeeds.
- **Before authentication** (:class:`~qmk.abi.jsonrpc.Caller`: until one request of
  the connection succeeds) a line may be at most ``max_line_unauthenticated`` bytes,
  and so may the requests in flight together; after it, ``max_line`` and
  ``max_inflight_bytes``. A longer line that follows requests still in flight waits
  for them, so a client may pipeline ``q_negotiate_caps`` and a large submit.
- **Nesting**: a line whose arrays and objects nest deeper than ``max_depth`` is
  refused before it is parsed (:func:`~qmk.abi.jsonrpc.nesting_exceeds`).
- **Per connection**: at most ``max_inflight`` requests at once; and when its unsent
  replies pass ``max_unsent_bytes`` (a client that pipelines and does not read), the
  server stops reading its requests until the client has read them down to a quarter.
  Reading is in chunks of 64 KiB, so a connection holds at most its line limit plus
  128 KiB of unread input.
- **Writing**: a reply longer than :data:`STREAM_CHUNK` (a big result) is written a
  chunk at a time, each once the connection's unsent bytes are below
  ``max_unsent_bytes``; its pieces are the stored result's own bytes
  (:func:`~qmk.abi.jsonrpc.encode_parts`), never a copy per connection. So a client
  that does not read holds at most ``max_unsent_bytes`` and one chunk of the server's
  memory; when its unsent bytes stay above that bound for ``write_timeout_s`` (the
  transport paused writing that long) the connection is dropped, and that memory is
  returned.
- **Shared budget**: the connection count and its room are a :class:`ConnectionBudget`
  that ``qmk serve --http`` shares with the HTTP API (:mod:`qmk.http.guard`), so
  connections on both wires together stay within the descriptors' room.

The Unix socket is bound under a temporary name with mode 0600 (umask 0o177) and
renamed into place once it listens, so the path appears only when the server
accepts connections and never with a wider mode. A stale socket file (nothing
listening) is replaced; a live one is an error. On stop (SIGTERM or SIGINT via
:func:`serve_kernel`) the server stops listening and reading, gives in-flight
requests and unsent replies ``drain_timeout_s`` in all, then closes every connection
that is left (a client that pipelined and never reads is cut, not waited for) and
removes its socket. :class:`RepeatFilter` keeps a flood of like log lines short
(every refusal logs a warning: under a flood, a few lines and a count).

Time (the deadline and the rates) is read from the server's clock: the event loop's
by default; a test gives a clock it moves by hand (``qmk.kernel.clock.ManualClock``
has the :class:`ServerClock` methods), so no test of them waits for time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import re
import secrets
import signal
import socket
import stat
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import qmk.aio as aio
from qmk import defaults
from qmk.abi.errors import InvalidRequest, ServeError
from qmk.abi.jsonrpc import Caller, RpcCore, encode
from qmk.abi.watch import ConnectionWatches, WatchSource
from qmk.errors import UnavailableError
from qmk.rate import Buckets, TokenBucket

LOG = logging.getLogger("qmk.abi.server")

#: Bytes read from a connection at a time (its reader holds at most twice this unread).
READ_CHUNK = 64 * 1024
#: The smallest file-descriptor reserve, and the share of RLIMIT_NOFILE it grows with.
FD_RESERVE_MIN, FD_RESERVE_SHARE = 64, 8
#: A refused connection stays half-open (its refusal sent, what it sends read and
#: dropped) until its client closes, for at most this many seconds and bytes, so that a
#: client writing its first request reads the refusal instead of a broken pipe; at most
#: this many at once (past that a refused connection is closed at once).
REFUSED_LINGER_S, REFUSED_LINGER_BYTES, REFUSED_LINGER_MAX = 1.0, 64 * 1024, 32
#: A reply longer than this is written in chunks of this size, each once the
#: connection's unsent bytes are below its bound (:meth:`_Outbox.put_large`).
STREAM_CHUNK = 256 * 1024
#: Connections accepted in one turn of the event loop at most (the others wait for the
#: next turn, so a flood cannot hold the loop), the listen backlog, and the seconds the
#: server stops accepting after accept() failed for want of descriptors or memory.
ACCEPT_BATCH, BACKLOG, ACCEPT_RETRY_S = 16, 512, 1.0


def parse_tcp(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; ``[::1]:80`` for IPv6.

    >>> parse_tcp("127.0.0.1:7000"), parse_tcp("[::1]:0")
    (('127.0.0.1', 7000), ('::1', 0))
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ServeError.of("bad-address", f"{text!r} is not HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _limit(default: Any, low: float, doc: str, kind: type = int) -> Any:
    """A field of :class:`ServerConfig` that the ``[server]`` table may set."""
    return field(default=default, metadata={"low": low, "doc": doc, "kind": kind})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Where the server listens, and its limits.

    Every field but the addresses is a key of the kernel config's ``[server]`` table
    (:meth:`from_table`); its metadata hold the key's lowest value and its doc line.

    Args:
        socket_path: the Unix socket's path (None: no Unix socket).
        tcp: ``(host, port)`` to listen on TCP too (None: no TCP). Port 0 picks one.
    """

    socket_path: Path | None = None
    tcp: tuple[str, int] | None = None
    max_line: int = _limit(defaults.MAX_LINE_BYTES, 1024, "the longest request line, in bytes")
    max_line_unauthenticated: int = _limit(
        defaults.MAX_LINE_UNAUTHENTICATED_BYTES,
        1024,
        "the longest line, and the most bytes of requests in flight, of a connection "
        "before one of its requests succeeds",
    )
    max_depth: int = _limit(
        defaults.MAX_JSON_DEPTH, 2, "the deepest nesting of arrays and objects in a line"
    )
    max_connections: int = _limit(defaults.MAX_CONNECTIONS, 1, "connections held at once")
    max_connections_per_peer: int = _limit(
        defaults.MAX_CONNECTIONS_PER_PEER,
        1,
        "connections of one peer (an IP address; a process on the Unix socket)",
    )
    fd_reserve: int | None = _limit(
        defaults.FD_RESERVE,
        0,
        "file descriptors kept free for workers and the database "
        f"(default: the larger of {FD_RESERVE_MIN} and RLIMIT_NOFILE/{FD_RESERVE_SHARE})",
    )
    max_inflight: int = _limit(defaults.MAX_INFLIGHT, 1, "requests of a connection run at once")
    max_inflight_bytes: int = _limit(
        defaults.MAX_INFLIGHT_BYTES,
        1024,
        "bytes of requests of an authenticated connection run at once (one line always may)",
    )
    max_unsent_bytes: int = _limit(
        defaults.MAX_UNSENT_BYTES,
        4096,
        "unsent reply bytes of a connection past which its requests are not read",
    )
    drain_timeout_s: float = _limit(
        defaults.DRAIN_TIMEOUT_S,
        0,
        "seconds a stopping server gives requests in flight and unsent replies",
        float,
    )
    auth_timeout_s: float = _limit(
        defaults.AUTH_TIMEOUT_S,
        0.001,
        "seconds a connection may stay before one of its requests succeeds",
        float,
    )
    accept_rate: float = _limit(
        defaults.ACCEPT_RATE,
        0.001,
        "connections accepted per second of all peers (bursts up to max_connections)",
        float,
    )
    accept_rate_per_peer: float = _limit(
        defaults.ACCEPT_RATE_PER_PEER,
        0.001,
        "connections accepted per second of one peer (bursts up to max_connections_per_peer)",
        float,
    )
    write_timeout_s: float = _limit(
        defaults.WRITE_TIMEOUT_S,
        0.001,
        "seconds a connection's unsent replies may stay above max_unsent_bytes (its client "
        "does not read) before it is dropped, on both wires",
        float,
    )
    http_header_timeout_s: float = _limit(
        defaults.HTTP_HEADER_TIMEOUT_S,
        0.001,
        "seconds an HTTP connection may take to send a request's line and headers",
        float,
    )
    http_body_timeout_s: float = _limit(
        defaults.HTTP_BODY_TIMEOUT_S,
        0.001,
        "seconds an HTTP request's body may take to arrive once its headers are read",
        float,
    )
    http_keep_alive_s: float = _limit(
        defaults.HTTP_KEEP_ALIVE_S,
        0.001,
        "seconds an idle kept-alive HTTP connection stays open after its last response",
        float,
    )
    http_max_url_bytes: int = _limit(
        defaults.HTTP_MAX_URL_BYTES, 256, "the longest URL (path and query) of an HTTP request"
    )
    http_max_head_bytes: int = _limit(
        defaults.HTTP_MAX_HEAD_BYTES,
        1024,
        "the most bytes of an HTTP request's line and headers together",
    )
    max_streams_per_session: int = _limit(
        defaults.MAX_STREAMS_PER_SESSION, 1, "live event streams (SSE) of one session at once"
    )
    max_streams_per_tenant: int = _limit(
        defaults.MAX_STREAMS_PER_TENANT, 1, "live event streams (SSE) of one tenant at once"
    )

    def __post_init__(self) -> None:
        if self.socket_path is None and self.tcp is None:
            raise ValueError("a server needs a socket path or a TCP address")
        for spec in LIMITS:
            value = getattr(self, spec.name)
            if value is not None and not value >= spec.metadata["low"]:
                raise ValueError(f"{spec.name} must be >= {spec.metadata['low']}, got {value}")

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], *, source: str | None = None, **addresses: Any
    ) -> ServerConfig:
        """The config of a ``[server]`` table (parsed TOML), with ``addresses``.

        Raises:
            ServeError: ``bad-server-config``, naming the key (and ``source``, the file).
        """
        prefix = f"{source}: " if source else ""
        known = {spec.name: spec for spec in LIMITS}
        values: dict[str, Any] = {}
        for key, value in table.items():
            spec = known.get(key)
            if spec is None:
                raise ServeError.of(
                    "bad-server-config",
                    f"{prefix}unknown key 'server.{key}'; expected one of {', '.join(known)}",
                    key=f"server.{key}",
                )
            low, kind = spec.metadata["low"], spec.metadata["kind"]
            number = isinstance(value, int) or (kind is float and isinstance(value, float))
            if isinstance(value, bool) or not number or not math.isfinite(value) or value < low:
                what = "an integer" if kind is int else "a number"
                raise ServeError.of(
                    "bad-server-config",
                    f"{prefix}server.{key} must be {what} >= {low:g}, got {value!r}",
                    key=f"server.{key}",
                )
            values[key] = kind(value)
        return cls(**addresses, **values)


#: The fields of :class:`ServerConfig` that are limits: the keys of the ``[server]`` table.
LIMITS = tuple(spec for spec in fields(ServerConfig) if "doc" in spec.metadata)


class ServerClock(Protocol):
    """What the server needs of a clock (``qmk.kernel.clock.Clock`` has it)."""

    def now(self) -> float:
        """Seconds, on any origin that does not jump."""
        ...

    def timeout_at(self, when: float | None) -> AbstractAsyncContextManager[object]:
        """A timeout scope that expires when :meth:`now` reaches ``when``."""
        ...


class ConnectionBudget:
    """The connections both listeners (the JSON-RPC server and the HTTP API) hold
    together: one count within one room, so neither can take the descriptors the other,
    the workers and the database need.

    >>> budget = ConnectionBudget(2)
    >>> budget.take(), budget.take(), budget.take(), budget.held
    (True, True, False, 2)
    >>> budget.give(); budget.take()
    True
    """

    __slots__ = ("held", "room")

    def __init__(self, room: int) -> None:
        self.room = room  # the JSON-RPC server sets it from the descriptors when it listens
        self.held = 0

    def take(self) -> bool:
        """Count one more connection, if there is room."""
        if self.held >= self.room:
            return False
        self.held += 1
        return True

    def give(self) -> None:
        """A counted connection closed."""
        self.held = max(self.held - 1, 0)


class LoopClock:
    """The server's default clock: the running event loop's (monotonic) time."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def timeout_at(self, when: float | None) -> AbstractAsyncContextManager[object]:
        return aio.timeout_at(when)


def _open_descriptors() -> int:
    """How many file descriptors this process holds (0 where the system cannot say)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return max(len(os.listdir(folder)) - 1, 0)  # less the one listdir opened
    return 0


def connection_room(config: ServerConfig) -> tuple[int, str]:
    """The most connections the server may hold now, and how that number was found.

    ``max_connections``, or fewer where RLIMIT_NOFILE leaves less room once the
    descriptors the process holds and the reserve are set aside.

    Raises:
        ServeError: ``too-few-descriptors`` when no room is left for one connection.
    """
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        unlimited = soft == resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError):
        soft, unlimited = 0, True
    if unlimited:
        return config.max_connections, "no file-descriptor limit"
    reserve = config.fd_reserve
    if reserve is None:
        reserve = max(FD_RESERVE_MIN, soft // FD_RESERVE_SHARE)
    held = _open_descriptors()
    room = soft - held - reserve
    how = f"RLIMIT_NOFILE {soft}, {held} held, {reserve} reserved"
    if room < 1:
        raise ServeError.of(
            "too-few-descriptors",
            f"no file descriptor is left for connections ({how}): raise ulimit -n or lower "
            "server.fd_reserve",
            nofile=soft,
            held=held,
            reserve=reserve,
        )
    return min(config.max_connections, room), how


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


def bind_tcp(host: str, port: int, *, backlog: int = BACKLOG) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (its first address).

    Raises:
        ServeError: ``cannot-bind``, with the system's reason.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise ServeError.of(
            "cannot-bind", f"{host}:{port}: cannot listen: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    return sock


def bind_unix(path: Path, *, backlog: int = BACKLOG) -> socket.socket:
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


class _Outbox:
    """The reply lines of one connection, written together once per loop turn; a line
    longer than :data:`STREAM_CHUNK` is written a chunk at a time (:meth:`put_large`)."""

    __slots__ = ("_large", "_loop", "_parts", "_scheduled", "_streaming", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._loop = asyncio.get_running_loop()
        self._parts: list[bytes] = []
        self._scheduled = False
        self._streaming = False  # a large line is being written: the others wait
        self._large = asyncio.Lock()

    def put(self, data: bytes) -> None:
        """Send one whole line: the turn's first at once, later ones at the turn's end."""
        if self._scheduled or self._streaming:
            self._parts.append(data)
            return
        self._scheduled = True
        self._loop.call_soon(self.flush)
        self._write(data)

    async def send(self, parts: list[bytes]) -> None:
        """Send one line given as pieces: with :meth:`put` when it is short, else with
        :meth:`put_large`."""
        if sum(map(len, parts)) > STREAM_CHUNK:
            await self.put_large(parts)
        else:
            self.put(parts[0] if len(parts) == 1 else b"".join(parts))

    async def put_large(self, parts: list[bytes]) -> None:
        """Send one line given as pieces, a chunk at a time: each chunk waits until the
        connection's unsent bytes are below its bound (``max_unsent_bytes``), so a
        client that does not read holds at most that and one chunk of the server's
        memory (the pieces are the result's own bytes, not a copy), until the write
        timeout drops it. Lines put meanwhile follow it."""
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
        if self.writer.is_closing():
            return
        with contextlib.suppress(ConnectionError):
            self.writer.write(data)


class HeapTrim:
    """Gives the heap's free memory back to the system a moment after a connection with
    a full write buffer is dropped (glibc's ``malloc_trim``; a no-op elsewhere): the
    allocator keeps freed buffers of a megabyte or so in its heap otherwise, and the
    kernel's resident memory would not come down after a flood of non-readers. At most
    once per :attr:`delay_s`, whatever the number of drops."""

    def __init__(self, delay_s: float = 0.2) -> None:
        self.delay_s = delay_s
        self._pending = False
        self._trim: Callable[[int], int] | bool | None = False  # False: not looked up yet

    def soon(self) -> None:
        """Trim once, :attr:`delay_s` from now (drops meanwhile share it)."""
        if self._trim is False:
            self._trim = None
            with contextlib.suppress(OSError, AttributeError, ImportError):
                import ctypes

                self._trim = ctypes.CDLL(None).malloc_trim  # glibc's; absent elsewhere
        if self._trim is None or self._pending:
            return
        self._pending = True
        asyncio.get_running_loop().call_later(self.delay_s, self._run)

    def _run(self) -> None:
        self._pending = False
        if callable(self._trim):
            self._trim(0)


#: The process's :class:`HeapTrim` (both wires' dropped connections).
HEAP_TRIM = HeapTrim()


class _WatchedProtocol(asyncio.StreamReaderProtocol):
    """A connection's stream protocol that drops the connection when its unsent bytes
    stay above the bound (the transport paused writing) for ``write_timeout_s``."""

    def __init__(self, reader: asyncio.StreamReader, write_timeout_s: float) -> None:
        super().__init__(reader)
        self._write_timeout_s = write_timeout_s
        self._watch: asyncio.TimerHandle | None = None
        self._transport_of: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport_of = transport
        super().connection_made(transport)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._watch is None:
            loop = asyncio.get_running_loop()
            self._watch = loop.call_later(self._write_timeout_s, self._drop)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def _drop(self) -> None:
        self._watch = None
        transport = self._transport_of
        if transport is None or transport.is_closing():
            return
        unsent = getattr(transport, "get_write_buffer_size", lambda: 0)()
        LOG.warning(
            "dropped a connection whose client read none of its %d unsent bytes for %g s "
            "(server.write_timeout_s)",
            unsent,
            self._write_timeout_s,
        )
        abort = getattr(transport, "abort", transport.close)
        abort()
        HEAP_TRIM.soon()


def _peer_of(writer: asyncio.StreamWriter) -> str:
    """Who is at the other end: ``ip ADDRESS`` on TCP, ``pid N`` on the Unix socket."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        option = getattr(socket, "SO_PEERCRED", None)
        if option is not None:
            with contextlib.suppress(OSError):
                creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
                return f"pid {struct.unpack('3i', creds)[0]}"
        return "unix"
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return f"ip {peer[0]}"
    return "unknown"


class _Connection:
    """One connection: its peer, writer and caller state, and what it has in flight."""

    __slots__ = (
        "caller",
        "changed",
        "deadline",
        "inflight",
        "inflight_bytes",
        "outbox",
        "peer",
        "reader_task",
        "signed_in",
        "writer",
    )

    def __init__(self, peer: str, writer: asyncio.StreamWriter, deadline: float) -> None:
        self.peer = peer
        self.writer = writer
        self.deadline = deadline  # when it must have signed in
        self.outbox = _Outbox(writer)
        self.caller = Caller()
        self.inflight = 0
        self.inflight_bytes = 0
        self.changed = asyncio.Event()
        self.signed_in = asyncio.Event()  # set once a request of it has succeeded
        self.reader_task: asyncio.Task[None] | None = None

    def finish(self, size: int) -> None:
        """A request of ``size`` bytes is answered."""
        self.inflight -= 1
        self.inflight_bytes -= size
        if self.caller.authenticated:
            self.signed_in.set()
        self.changed.set()

    async def change(self) -> None:
        """Return once a request in flight is answered."""
        self.changed.clear()
        await self.changed.wait()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Drop what a refused client sends until it closes (bounded), then close."""
    try:
        async with aio.timeout(REFUSED_LINGER_S):
            dropped = 0
            while dropped < REFUSED_LINGER_BYTES:
                chunk = await reader.read(READ_CHUNK)
                if not chunk:
                    break
                dropped += len(chunk)
    except (TimeoutError, OSError):
        pass
    finally:
        writer.close()


class Server:
    """Serves an :class:`RpcCore` on a Unix socket and/or TCP until told to stop.

    Args:
        core: the protocol core that answers each line.
        config: addresses and limits.
        clock: the clock of the authentication deadline and the accept rates (default:
            the event loop's, :class:`LoopClock`).
        watches: where ``q_watch`` finds a job's events (:mod:`qmk.abi.watch`; None:
            the socket-only methods are not served).
    """

    def __init__(
        self,
        core: RpcCore,
        config: ServerConfig,
        *,
        clock: ServerClock | None = None,
        budget: ConnectionBudget | None = None,
        watches: WatchSource | None = None,
    ) -> None:
        self.core = core
        self.watches = watches
        self.config = config
        self.clock: ServerClock = clock or LoopClock()
        self._accepts: TokenBucket | None = None  # made when it listens, on the clock's time
        self._peer_accepts = Buckets(
            rate=config.accept_rate_per_peer,
            burst=max(config.accept_rate_per_peer, config.max_connections_per_peer),
        )
        self.addresses: list[str] = []
        #: The most connections held at once (set from the descriptors when it listens).
        self.room = config.max_connections
        self.budget = budget if budget is not None else ConnectionBudget(self.room)
        self._group: aio.TaskGroup | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._peers: dict[str, int] = {}
        self._lingering: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._socket_inode: int | None = None
        self._listeners: list[socket.socket] = []
        self._resume: asyncio.Task[None] | None = None  # while accepting is paused

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
        try:
            await self._listen(listeners)
            self.room, how = connection_room(self.config)
            self.budget.room = self.room
            LOG.info(
                "at most %d connections (%s), %d per peer",
                self.room,
                how,
                self.config.max_connections_per_peer,
            )
            self._accepts = TokenBucket(
                rate=self.config.accept_rate,
                burst=max(self.config.accept_rate, self.room),
                now=self.clock.now(),
            )
            async with aio.TaskGroup() as group:
                self._group = group
                self._watch_listeners(True)
                if ready is not None:
                    ready(list(self.addresses))
                await stop.wait()
                self._stopping = True
                if self.watches is not None:  # live watches end with closing, then end
                    self.watches.close()
                self._watch_listeners(False)
                if self._resume is not None:
                    self._resume.cancel()
                for listener in listeners:
                    listener.close()
                await self._drain()
        finally:
            self._watch_listeners(False)
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
            tcp = bind_tcp(*self.config.tcp)
            listeners.append(tcp)
            bound = tcp.getsockname()
            self.addresses.append(f"tcp:{bound[0]}:{bound[1]}")

    def _watch_listeners(self, on: bool) -> None:
        """Have the loop tell us when a connection waits on a listening socket (or not)."""
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            if listener.fileno() < 0:
                continue
            if on:
                loop.add_reader(listener.fileno(), self._on_listen, listener)
            else:
                loop.remove_reader(listener.fileno())

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
        for lingering in self._lingering:
            lingering.cancel()
        for connection in self._connections.values():
            if connection.reader_task is not None:
                connection.reader_task.cancel()
        tasks = list(self._connections)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.config.drain_timeout_s)
        for task in pending:
            left = self._connections.get(task)
            if left is not None:
                left.writer.transport.abort()  # a peer that never reads: cut it
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    # ----------------------------------------------------------------- accepting

    def _on_listen(self, listener: socket.socket) -> None:
        """A connection waits on ``listener``: accept up to :data:`ACCEPT_BATCH`, each
        taking a token of ``accept_rate``; with none left, stop accepting until one is due
        (refusing would cost the loop as much as accepting)."""
        assert self._accepts is not None and self._group is not None
        for _ in range(ACCEPT_BATCH):
            if self._resume is not None or self._stopping:
                return
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                LOG.error(
                    "cannot accept a connection (%s); accepting again in %g s",
                    exc.strerror or exc,
                    ACCEPT_RETRY_S,
                )
                self._pause(ACCEPT_RETRY_S)
                return
            conn.setblocking(False)
            wait = self._accepts.take(self.clock.now())
            if wait:
                self._pause(wait, conn)
                return
            self._group.create_task(self._adopt(conn))

    def _pause(self, seconds: float, held: socket.socket | None = None) -> None:
        """Stop accepting for ``seconds`` of the server's clock; ``held``, a connection
        accepted past the rate, waits as long and is served first."""
        assert self._group is not None
        self._watch_listeners(False)
        when = self.clock.now() + seconds
        self._resume = self._group.create_task(self._resume_at(when, held))

    async def _resume_at(self, when: float, held: socket.socket | None) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                async with self.clock.timeout_at(when):
                    await asyncio.Event().wait()
        except BaseException:
            if held is not None:
                held.close()
            raise
        self._resume = None
        if self._stopping:
            if held is not None:
                held.close()
            return
        if held is not None:
            assert self._accepts is not None and self._group is not None
            wait = self._accepts.take(self.clock.now())
            if wait:
                self._pause(wait, held)
                return
            self._group.create_task(self._adopt(held))
        self._watch_listeners(True)

    async def _adopt(self, conn: socket.socket) -> None:
        """Give an accepted socket its streams and serve it (within the limits)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_CHUNK)
        protocol = _WatchedProtocol(reader, self.config.write_timeout_s)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)
        except OSError:
            conn.close()
            return
        self._accept(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping or self._group is None:
            writer.close()
            return
        peer = _peer_of(writer)
        if self._over_peer_rate(reader, writer, peer):
            return
        per_peer = self.config.max_connections_per_peer
        if not self.budget.take():
            self._refuse(
                reader,
                writer,
                peer,
                "too-many-connections",
                self.room,
                f"the server holds its limit of {self.room} connections; retry later",
            )
            return
        if self._peers.get(peer, 0) >= per_peer:
            self.budget.give()
            self._refuse(
                reader,
                writer,
                peer,
                "too-many-connections-per-peer",
                per_peer,
                f"this peer ({peer}) holds its limit of {per_peer} connections; close one",
            )
            return
        self._peers[peer] = self._peers.get(peer, 0) + 1
        connection = _Connection(peer, writer, self.clock.now() + self.config.auth_timeout_s)
        if self.watches is not None:
            connection.caller.watches = ConnectionWatches(
                self.watches, connection.outbox.send, writer, self.config.max_unsent_bytes
            )
        task = self._group.create_task(self._serve_connection(reader, connection))
        self._connections[task] = connection
        task.add_done_callback(self._forget)

    def _over_peer_rate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        """Refuse the connection if its peer's accept rate is spent."""
        wait = self._peer_accepts.take(peer, self.clock.now())
        if wait:
            rate = self.config.accept_rate_per_peer
            self._refuse(
                reader,
                writer,
                peer,
                "accept-rate-per-peer",
                rate,
                f"this peer ({peer}) opens connections faster than {rate:g} a second; "
                f"retry in {wait:.3g} s",
                retry_after_s=round(wait, 3),
            )
            return True
        return False

    def _forget(self, task: asyncio.Task[None]) -> None:
        connection = self._connections.pop(task, None)
        if connection is None:
            return
        self.budget.give()
        left = self._peers.get(connection.peer, 1) - 1
        if left > 0:
            self._peers[connection.peer] = left
        else:
            self._peers.pop(connection.peer, None)

    def _refuse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        reason: str,
        limit: float,
        message: str,
        **details: Any,
    ) -> None:
        """Answer a connection past a limit with one coded line, and close it."""
        LOG.warning("refused a connection of %s: %s", peer, message)
        error = UnavailableError(message, reason=reason, limit=limit, **details)
        try:
            writer.write(encode({"jsonrpc": "2.0", "id": None, "error": error.to_rpc()}))
        except (OSError, RuntimeError):
            writer.close()
            return
        self._close_lingering(reader, writer)

    def _close_lingering(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, drop what the client still sends (bounded), then close, so that
        it reads the line just written rather than a reset."""
        try:
            if len(self._lingering) >= REFUSED_LINGER_MAX or self._group is None:
                writer.close()
                return
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()
            return
        task = self._group.create_task(_linger(reader, writer))
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)

    # ----------------------------------------------------------------- a connection

    async def _serve_connection(
        self, reader: asyncio.StreamReader, connection: _Connection
    ) -> None:
        """Serve one connection: read lines, answer each in its own task."""
        writer = connection.writer
        writer.transport.set_write_buffer_limits(high=self.config.max_unsent_bytes)
        timed_out = False
        try:
            async with aio.TaskGroup() as group:
                reading = group.create_task(self._read_loop(reader, connection, group))
                connection.reader_task = reading
                if self._stopping:
                    reading.cancel()
                timed_out = await self._await_sign_in(connection, reading)
        except Exception:
            LOG.exception("connection failed")
        finally:
            if connection.caller.watches is not None:
                await connection.caller.watches.aclose()
            connection.outbox.flush()  # replies still queued go out before the close
            if timed_out and not self._stopping:
                self._close_lingering(reader, writer)
            else:
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()  # the drain's deadline aborts a peer that never reads

    async def _await_sign_in(self, connection: _Connection, reading: asyncio.Task[None]) -> bool:
        """Wait until a request of the connection succeeds, or its reader ends. At the
        deadline, once the requests in flight are answered, stop reading and queue the
        ``auth-timeout`` line. True when it timed out."""
        signing_in = asyncio.ensure_future(connection.signed_in.wait())
        try:
            async with self.clock.timeout_at(connection.deadline):
                await asyncio.wait((signing_in, reading), return_when=asyncio.FIRST_COMPLETED)
            return False
        except TimeoutError:
            pass
        finally:
            signing_in.cancel()
        while connection.inflight and not connection.caller.authenticated:
            await connection.change()  # a request in flight may still sign it in
        if connection.caller.authenticated or reading.done():
            return False
        reading.cancel()
        limit = self.config.auth_timeout_s
        message = (
            f"no request of this connection succeeded within {limit:g} s: open a session "
            "(q_negotiate_caps) or use one at once after connecting"
        )
        LOG.warning("closed a connection of %s: %s", connection.peer, message)
        error = UnavailableError(message, reason="auth-timeout", limit=limit)
        connection.outbox.put(encode({"jsonrpc": "2.0", "id": None, "error": error.to_rpc()}))
        return True

    def _line_limit(self, connection: _Connection) -> int:
        if connection.caller.authenticated:
            return self.config.max_line
        return min(self.config.max_line, self.config.max_line_unauthenticated)

    async def _read_loop(
        self, reader: asyncio.StreamReader, connection: _Connection, group: aio.TaskGroup
    ) -> None:
        """Split the stream into lines and start a task for each, within the limits."""
        buffer = bytearray()
        scanned = 0  # the buffer holds no newline before this
        skipping = False  # inside an over-long line: drop bytes up to its newline
        while True:
            newline = buffer.find(b"\n", scanned)
            length = newline if newline >= 0 else len(buffer)
            limit = self._line_limit(connection)
            if not skipping and length > limit:
                if (
                    not connection.caller.authenticated
                    and connection.inflight
                    and length <= self.config.max_line
                ):
                    await connection.change()  # a request in flight may authenticate us
                    continue
                self._refuse_line(connection, limit)
                if newline >= 0:
                    del buffer[: newline + 1]
                else:
                    buffer.clear()
                    skipping = True
                scanned = 0
                continue
            if newline >= 0:
                with memoryview(buffer) as view:
                    line = bytes(view[: newline + 1])
                del buffer[: newline + 1]
                scanned = 0
                if not await self._admit(connection, len(line)):
                    return
                group.create_task(self._answer(connection, line))
                continue
            scanned = len(buffer)
            try:
                chunk = await reader.read(READ_CHUNK)
            except ConnectionError:
                return
            if not chunk:
                return  # end of stream; any partial line was cut short and is dropped
            if skipping:
                end = chunk.find(b"\n")
                if end < 0:
                    continue
                skipping = False
                chunk = chunk[end + 1 :]
            buffer += chunk

    def _refuse_line(self, connection: _Connection, limit: int) -> None:
        if connection.caller.authenticated or limit >= self.config.max_line:
            message = f"the line is longer than the limit of {limit} bytes"
        else:
            message = (
                f"the line is longer than the limit of {limit} bytes of a connection that "
                "has not authenticated: open a session (q_negotiate_caps) first"
            )
        error = InvalidRequest(message, limit=limit)
        connection.outbox.put(encode({"jsonrpc": "2.0", "id": None, "error": error.to_rpc()}))

    async def _admit(self, connection: _Connection, size: int) -> bool:
        """Wait until the connection may run one more request of ``size`` bytes: its unsent
        replies below the bound, its requests in flight within their count and bytes.

        Returns False when the peer went away.
        """
        writer = connection.writer
        while True:
            if writer.is_closing():
                return False
            if writer.transport.get_write_buffer_size() > self.config.max_unsent_bytes:
                try:
                    await writer.drain()  # the reader is the only task that drains
                except ConnectionError:
                    return False
                continue
            budget = (
                self.config.max_inflight_bytes
                if connection.caller.authenticated
                else self.config.max_line_unauthenticated
            )
            if connection.inflight == 0 or (
                connection.inflight < self.config.max_inflight
                and connection.inflight_bytes + size <= budget
            ):
                connection.inflight += 1
                connection.inflight_bytes += size
                return True
            await connection.change()

    async def _answer(self, connection: _Connection, line: bytes) -> None:
        try:
            parts = await self.core.handle_line_parts(line, connection.caller)
            if parts is not None:
                await connection.outbox.send(parts)
        except Exception:
            LOG.exception("answering a request failed")
        finally:
            connection.finish(len(line))


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
    budget: ConnectionBudget | None = None,
    watches: WatchSource | None = None,
) -> None:
    """Serve ``target`` (the kernel) until SIGTERM or SIGINT, then drain and return.

    Args:
        target: the object whose coroutine methods answer the qSyscall methods.
        config: addresses and limits.
        ready: called once listening, with the addresses.
        stop: an event that also stops the server (tests, embedding).
        budget: the connections it shares with another listener (the HTTP API).
        watches: where ``q_watch`` finds a job's events (None: no watches).
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        core = RpcCore(target, max_depth=config.max_depth)
        await Server(core, config, budget=budget, watches=watches).serve(stop, ready=ready)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
