"""The qSyscall server: newline-delimited JSON-RPC 2.0 over a Unix socket and optional TCP.

Framing: one JSON-RPC message or batch per line, UTF-8, ending in ``\\n``. Bytes
after the last newline when a client closes are a message cut short and are
dropped. A line longer than ``max_line`` bytes is answered with one -32600 error
(``id`` null) and skipped without being held in memory; the connection stays open.

Concurrency: every connection is a task of the server's :class:`asyncio.TaskGroup`;
each request line is a task of its connection's group, so requests of one
connection run concurrently (pipelining: replies may come back in any order and
carry the request's ``id``), at most ``max_inflight`` at a time. Replies are whole
lines, so they never interleave. The first reply of a connection in an event-loop
turn is written at once; the others that become ready in the same turn are joined
and written with one ``write`` at the end of that turn, so a pipelining client gets
many replies for one system call and a lone request's reply waits for nothing.

The Unix socket is bound under a temporary name with mode 0600 (umask 0o177) and
renamed into place once it listens, so the path appears only when the server
accepts connections and never with a wider mode. A stale socket file (nothing
listening) is replaced; a live one is an error. On stop (SIGTERM or SIGINT via
:func:`serve_kernel`) the server stops listening and reading, gives in-flight
requests ``drain_timeout_s`` to finish, cancels the rest and removes its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qmk.aio as aio
from qmk import defaults
from qmk.abi.errors import InvalidRequest, ServeError
from qmk.abi.jsonrpc import RpcCore, encode

LOG = logging.getLogger("qmk.abi.server")

#: Default longest request line, in bytes (16 MiB).
DEFAULT_MAX_LINE = defaults.MAX_LINE_BYTES
#: Default most requests of one connection handled at once.
DEFAULT_MAX_INFLIGHT = 256
#: Default seconds in-flight requests get to finish when the server stops.
DEFAULT_DRAIN_TIMEOUT_S = 2.0


def parse_tcp(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; ``[::1]:80`` for IPv6.

    >>> parse_tcp("127.0.0.1:7000"), parse_tcp("[::1]:0")
    (('127.0.0.1', 7000), ('::1', 0))
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ServeError.of("bad-address", f"{text!r} is not HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Where and how the server listens.

    Args:
        socket_path: the Unix socket's path (None: no Unix socket).
        tcp: ``(host, port)`` to listen on TCP too (None: no TCP). Port 0 picks one.
        max_line: the longest request line in bytes.
        max_inflight: the most requests of one connection handled at once; the
            server stops reading that connection until one finishes.
        drain_timeout_s: how long in-flight requests may run after a stop.
    """

    socket_path: Path | None = None
    tcp: tuple[str, int] | None = None
    max_line: int = DEFAULT_MAX_LINE
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.socket_path is None and self.tcp is None:
            raise ValueError("a server needs a socket path or a TCP address")
        if self.max_line < 1024 or self.max_inflight < 1 or self.drain_timeout_s < 0:
            raise ValueError("max_line >= 1024, max_inflight >= 1, drain_timeout_s >= 0")


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


def bind_unix(path: Path, *, backlog: int = 512) -> socket.socket:
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


class _Outbox:
    """The reply lines of one connection, written together once per loop turn."""

    __slots__ = ("_loop", "_parts", "_scheduled", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._loop = asyncio.get_running_loop()
        self._parts: list[bytes] = []
        self._scheduled = False

    def put(self, data: bytes) -> None:
        """Send one whole line: the turn's first at once, later ones at the turn's end."""
        if self._scheduled:
            self._parts.append(data)
            return
        self._scheduled = True
        self._loop.call_soon(self.flush)
        self._write(data)

    def flush(self) -> None:
        """Write the queued lines now, with one ``write``."""
        self._scheduled = False
        if not self._parts:
            return
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts.clear()
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        with contextlib.suppress(ConnectionError):
            self.writer.write(data)


@dataclass(slots=True)
class _Connection:
    """A connection's task, the task that reads it, and whether it is being drained."""

    task: asyncio.Task[None]
    reader_task: asyncio.Task[None] | None = None


class Server:
    """Serves an :class:`RpcCore` on a Unix socket and/or TCP until told to stop.

    Args:
        core: the protocol core that answers each line.
        config: addresses and limits.
    """

    def __init__(self, core: RpcCore, config: ServerConfig) -> None:
        self.core = core
        self.config = config
        self.addresses: list[str] = []
        self._group: aio.TaskGroup | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._stopping = False
        self._socket_inode: int | None = None

    async def serve(
        self, stop: asyncio.Event, *, ready: Callable[[list[str]], None] | None = None
    ) -> None:
        """Listen, answer until ``stop`` is set, then drain and remove the socket.

        Args:
            stop: set it to stop the server.
            ready: called once listening, with the addresses (``unix:PATH``, ``tcp:H:P``).
        """
        listeners: list[asyncio.Server] = []
        try:
            await self._listen(listeners)
            async with aio.TaskGroup() as group:
                self._group = group
                for listener in listeners:
                    await listener.start_serving()
                if ready is not None:
                    ready(list(self.addresses))
                await stop.wait()
                self._stopping = True
                for listener in listeners:
                    listener.close()
                await self._drain()
        finally:
            for listener in listeners:
                listener.close()
            self._remove_socket()

    async def _listen(self, listeners: list[asyncio.Server]) -> None:
        """Bind every address (not yet accepting); ServeError when one cannot be bound."""
        limit = self.config.max_line
        path = self.config.socket_path
        if path is not None:
            sock = bind_unix(path)
            self._socket_inode = os.stat(path).st_ino
            listeners.append(
                await asyncio.start_unix_server(
                    self._accept, sock=sock, limit=limit, start_serving=False
                )
            )
            self.addresses.append(f"unix:{path}")
        if self.config.tcp is not None:
            host, port = self.config.tcp
            try:
                tcp = await asyncio.start_server(
                    self._accept, host, port, limit=limit, start_serving=False
                )
            except OSError as exc:
                raise ServeError.of(
                    "cannot-bind", f"{host}:{port}: cannot listen: {exc.strerror}"
                ) from None
            listeners.append(tcp)
            bound = tcp.sockets[0].getsockname()
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
        """Stop reading every connection, let in-flight requests finish, then cancel."""
        for connection in list(self._connections.values()):
            if connection.reader_task is not None:
                connection.reader_task.cancel()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.drain_timeout_s)
            for task in pending:
                task.cancel()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping or self._group is None:
            writer.close()
            return
        task = self._group.create_task(self._connection(reader, writer))
        self._connections[task] = _Connection(task=task)
        task.add_done_callback(self._connections.pop)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: read lines, answer each in its own task."""
        current = asyncio.current_task()
        assert current is not None
        write_lock = asyncio.Lock()
        slots = asyncio.Semaphore(self.config.max_inflight)
        outbox = _Outbox(writer)
        try:
            async with aio.TaskGroup() as group:
                reading = group.create_task(
                    self._read_loop(reader, outbox, group, slots, write_lock)
                )
                connection = self._connections.get(current)
                if connection is not None:
                    connection.reader_task = reading
                if self._stopping:
                    reading.cancel()
        except Exception:
            LOG.exception("connection failed")
        finally:
            outbox.flush()  # replies still queued go out before the close
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_loop(
        self,
        reader: asyncio.StreamReader,
        outbox: _Outbox,
        group: aio.TaskGroup,
        slots: asyncio.Semaphore,
        write_lock: asyncio.Lock,
    ) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return  # end of stream; any partial line was cut short and is dropped
            except asyncio.LimitOverrunError as exc:
                more = await self._skip_long_line(reader, exc.consumed)
                error = InvalidRequest(
                    f"the line is longer than the limit of {self.config.max_line} bytes",
                    limit=self.config.max_line,
                )
                await self._send(outbox, write_lock, encode(_error_reply(error)))
                if not more:
                    return
                continue
            except ConnectionError:
                return
            await slots.acquire()
            group.create_task(self._answer(line, outbox, slots, write_lock))

    async def _skip_long_line(self, reader: asyncio.StreamReader, consumed: int) -> bool:
        """Drop the rest of an over-long line, a buffer at a time; False at end of stream."""
        while True:
            try:
                await reader.readexactly(consumed)
                await reader.readuntil(b"\n")
                return True
            except asyncio.LimitOverrunError as exc:
                consumed = exc.consumed
            except (asyncio.IncompleteReadError, ConnectionError):
                return False

    async def _answer(
        self,
        line: bytes,
        outbox: _Outbox,
        slots: asyncio.Semaphore,
        write_lock: asyncio.Lock,
    ) -> None:
        try:
            reply = await self.core.handle_line(line)
            if reply is not None:
                await self._send(outbox, write_lock, reply)
        except Exception:
            LOG.exception("answering a request failed")
        finally:
            slots.release()

    @staticmethod
    async def _send(outbox: _Outbox, lock: asyncio.Lock, data: bytes) -> None:
        """Queue one whole reply line; wait while the peer reads too slowly.

        A peer that went away is not an error.
        """
        writer = outbox.writer
        if writer.is_closing():
            return
        outbox.put(data)
        transport = writer.transport
        if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
            return  # below the high-water mark: no back-pressure to wait for
        try:
            async with lock:
                await writer.drain()
        except ConnectionError:
            pass


def _error_reply(error: InvalidRequest) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": None, "error": error.to_rpc()}


async def serve_kernel(
    target: object,
    config: ServerConfig,
    *,
    ready: Callable[[list[str]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``target`` (the kernel) until SIGTERM or SIGINT, then drain and return.

    Args:
        target: the object whose coroutine methods answer the qSyscall methods.
        config: addresses and limits.
        ready: called once listening, with the addresses.
        stop: an event that also stops the server (tests, embedding).
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        await Server(RpcCore(target), config).serve(stop, ready=ready)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
