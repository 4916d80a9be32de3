"""Who comes to the door, and the one count of their connections on every listener.

A *peer* is who is at the other end of a connection: its IP address on TCP (``ip
127.0.0.1``), its process on a Unix socket (``pid 4242``, by ``SO_PEERCRED``). The
JSON-RPC socket, the HTTP API and gRPC count their connections in one
:class:`Connections`: at most ``room`` of them together (``max_connections``, fewer where
RLIMIT_NOFILE less the descriptors held and ``fd_reserve`` leaves less: see
:func:`connection_room`), at most ``max_connections_per_peer`` of one peer whatever the
listener, and a peer's new connections at most ``accept_rate_per_peer`` a second. Once a
connection signs in, it counts against its tenant too: at most
``max_connections_per_tenant`` signed-in connections of one tenant
(:meth:`Connections.sign_in`), so one tenant cannot hold the room of all. Every
listener accepts within one token bucket, ``accept_rate`` (:mod:`qmk.abi.door.accept`).
Past a limit :meth:`Connections.admit` answers a :class:`Refusal`, which the listener
writes in its own protocol (a JSON-RPC line, an HTTP ``503``, an HTTP/2 ``GOAWAY``)
before it closes the connection.

>>> from qmk.abi.limits import ServerConfig
>>> config = ServerConfig(tcp=("127.0.0.1", 0), max_connections=3, max_connections_per_peer=2)
>>> class Clock:
...     def now(self): return 0.0
>>> held = Connections(config, Clock())
>>> a, b = held.admit("ip 10.0.0.1"), held.admit("ip 10.0.0.1")
>>> held.admit("ip 10.0.0.1").reason, held.admit("ip 10.0.0.2", weight=2).reason
('too-many-connections-per-peer', 'too-many-connections')
>>> a.release(); a.release(); held.held
1
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import qmk.aio as aio
from qmk.abi.errors import ServeError
from qmk.abi.limits import FD_RESERVE_MIN, FD_RESERVE_SHARE, ServerConfig
from qmk.errors import UnavailableError
from qmk.rate import Buckets, TokenBucket

#: Refused connections held half-open at once (their refusal sent, what they still send
#: read and dropped, for a second at most; gRPC's waits there for the client's first
#: call, whose status carries the refusal), on every listener together. A refusal past
#: that cuts the oldest short (:meth:`Connections.linger`), so a connect flood holds
#: no more descriptors outside the count, and each refused client still has until 32
#: newer refusals come to read its answer (a gRPC client, to send its call).
REFUSED_LINGER_MAX = 32

#: A lingering refused connection's cut: ends its linger now (it still calls
#: :meth:`Connections.lingered` once closed, as every linger does).
Cut = Callable[[], None]

#: The socket option that names a Unix socket's peer (None where the system has none),
#: and its answer: the peer's pid, uid and gid.
_PEERCRED: int | None = getattr(socket, "SO_PEERCRED", None)
_CREDS = struct.Struct("3i")


class ServerClock(Protocol):
    """What the door and the listeners need of a clock (``qmk.kernel.clock.Clock`` has it)."""

    def now(self) -> float:
        """Seconds, on any origin that does not jump."""
        ...

    def timeout_at(self, when: float | None) -> AbstractAsyncContextManager[object]:
        """A timeout scope that expires when :meth:`now` reaches ``when``."""
        ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Cancellable:
        """Call ``callback()`` on the running loop once :meth:`now` reaches ``when``,
        unless the returned handle is cancelled first."""
        ...


class Cancellable(Protocol):
    """A timer that :meth:`ServerClock.call_at` set."""

    def cancel(self) -> None:
        """Stop it (cancelling twice, or after it ran, is nothing)."""
        ...


class LoopClock:
    """The default clock: the running event loop's (monotonic) time, of the loop it kept
    until that one closes; after a loop of asyncio's own, ``time.monotonic`` (one call)."""

    _loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.get_running_loop()
            if type(self._loop).time is asyncio.BaseEventLoop.time:
                self.now = time.monotonic  # type: ignore[method-assign]
        return self._loop.time()

    def timeout_at(self, when: float | None) -> AbstractAsyncContextManager[object]:
        return aio.timeout_at(when)

    def call_at(self, when: float, callback: Callable[[], object]) -> Cancellable:
        return asyncio.get_running_loop().call_at(when, callback)


def peer_of(sock: socket.socket | None) -> str:
    """Who is at the other end of ``sock``: ``ip ADDRESS`` on TCP, ``pid N`` on a Unix
    socket (``unix`` where the system does not say), ``unknown`` without one."""
    if sock is None:
        return "unknown"
    if sock.family == socket.AF_UNIX:
        if _PEERCRED is not None:
            try:  # not contextlib.suppress: three calls of its own at every connection
                creds = sock.getsockopt(socket.SOL_SOCKET, _PEERCRED, _CREDS.size)
            except OSError:
                pass
            else:
                return f"pid {_CREDS.unpack(creds)[0]}"
        return "unix"
    with contextlib.suppress(OSError):
        address = sock.getpeername()
        if isinstance(address, tuple) and address:
            return f"ip {address[0]}"
    return "unknown"


def peer_of_address(address: Any) -> str:
    """The peer of a ``(host, port)`` address (an ASGI scope's ``client``), as
    :func:`peer_of` names it.

    >>> peer_of_address(("10.1.2.3", 5000)), peer_of_address(None)
    ('ip 10.1.2.3', 'unknown')
    """
    if isinstance(address, (tuple, list)) and address:
        return f"ip {address[0]}"
    return "unknown"


def _open_descriptors() -> int:
    """How many file descriptors this process holds (0 where the system cannot say)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return max(len(os.listdir(folder)) - 1, 0)  # less the one listdir opened
    return 0


def connection_room(config: ServerConfig) -> tuple[int, str]:
    """The most connections the listeners may hold now, and how that number was found.

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


@dataclass(frozen=True, slots=True)
class Refusal:
    """A connection the door turns away: why (``reason``), the limit it passed, a line
    for the client, and when to come back (``retry_after_s``, where that is known)."""

    reason: str
    limit: float
    message: str
    retry_after_s: float | None = None

    def error(self) -> UnavailableError:
        """The refusal as the coded error every wire writes (``QS1011 unavailable`` with
        ``reason``, ``limit`` and ``retry_after_s``)."""
        details: dict[str, Any] = {"reason": self.reason, "limit": self.limit}
        if self.retry_after_s is not None:
            details["retry_after_s"] = self.retry_after_s
        return UnavailableError(self.message, **details)


class Place:
    """One admitted connection's place in the count; :meth:`release` it once closed."""

    __slots__ = ("_connections", "peer", "weight")

    def __init__(self, connections: Connections, peer: str, weight: int) -> None:
        self._connections: Connections | None = connections
        self.peer = peer
        self.weight = weight

    def release(self) -> None:
        """Give the place back (releasing twice is once)."""
        connections, self._connections = self._connections, None
        if connections is not None:
            connections._give(self)


class Connections:
    """The connections of every listener, counted together (see the module docstring).

    Args:
        config: the ``[server]`` limits.
        clock: the clock of the accept rates.

    Attributes:
        room: the most places held at once (:meth:`set_room` once the listeners are bound).
        held: the places held now (a connection takes ``weight`` of them: one per file
            descriptor it holds).
        lingering: refused connections held half-open now (at most
            :data:`REFUSED_LINGER_MAX`).
    """

    def __init__(self, config: ServerConfig, clock: ServerClock) -> None:
        self.config = config
        self.clock = clock
        self.room = config.max_connections
        self.held = 0
        self.lingering = 0
        self._of_peer: dict[str, int] = {}
        self._of_tenant: dict[str, int] = {}
        self._lingers: dict[Cut, None] = {}  # the lingering connections' cuts, oldest first
        self._peer_accepts = Buckets(
            rate=config.accept_rate_per_peer,
            burst=max(config.accept_rate_per_peer, config.max_connections_per_peer),
        )
        self._accepts: TokenBucket | None = None

    def set_room(self, room: int) -> None:
        """The room the descriptors leave (:func:`connection_room`), and a full accept
        bucket of that burst."""
        self.room = room
        rate = self.config.accept_rate
        self._accepts = TokenBucket(rate=rate, burst=max(rate, room), now=self.clock.now())

    def take_accept(self) -> float:
        """Take a token of ``accept_rate`` for one accept (every listener's): 0.0, or the
        seconds until one is due (then none is taken)."""
        if self._accepts is None:
            self.set_room(self.room)
        assert self._accepts is not None
        return self._accepts.take(self.clock.now())

    def admit(self, peer: str, weight: int = 1) -> Place | Refusal:
        """A place for a new connection of ``peer`` holding ``weight`` descriptors, or
        why not: the peer's accept rate, the room of all listeners, the peer's count."""
        wait = self._peer_accepts.take(peer, self.clock.now())
        if wait:
            rate = self.config.accept_rate_per_peer
            return Refusal(
                "accept-rate-per-peer",
                rate,
                f"this peer ({peer}) opens connections faster than {rate:g} a second; "
                f"retry in {wait:.3g} s",
                round(wait, 3),
            )
        if self.held + weight > self.room:
            return Refusal(
                "too-many-connections",
                self.room,
                f"the server holds its limit of {self.room} connections (all listeners); "
                "retry later",
            )
        per_peer = self.config.max_connections_per_peer
        if self._of_peer.get(peer, 0) >= per_peer:
            return Refusal(
                "too-many-connections-per-peer",
                per_peer,
                f"this peer ({peer}) holds its limit of {per_peer} connections; close one",
            )
        self.held += weight
        self._of_peer[peer] = self._of_peer.get(peer, 0) + 1
        return Place(self, peer, weight)

    def of_tenant(self, tenant: str) -> int:
        """The signed-in connections ``tenant`` holds now."""
        return self._of_tenant.get(tenant, 0)

    def sign_in(self, tenant: str) -> Refusal | None:
        """Count a connection that signs in as ``tenant`` (then :meth:`sign_out` once it
        closes), or why not: the tenant holds ``max_connections_per_tenant``."""
        cap = self.config.max_connections_per_tenant
        held = self._of_tenant.get(tenant, 0)
        if held >= cap:
            return Refusal(
                "too-many-connections-per-tenant",
                cap,
                f"tenant {tenant!r} holds its limit of {cap} signed-in connections "
                "(server.max_connections_per_tenant); close one",
            )
        self._of_tenant[tenant] = held + 1
        return None

    def sign_out(self, tenant: str) -> None:
        """A signed-in connection of ``tenant`` closed."""
        left = self._of_tenant.get(tenant, 1) - 1
        if left > 0:
            self._of_tenant[tenant] = left
        else:
            self._of_tenant.pop(tenant, None)

    def _give(self, place: Place) -> None:
        self.held = max(self.held - place.weight, 0)
        left = self._of_peer.get(place.peer, 1) - 1
        if left > 0:
            self._of_peer[place.peer] = left
        else:
            self._of_peer.pop(place.peer, None)

    def linger(self, cut: Cut) -> None:
        """Count one more refused connection held half-open (then :meth:`lingered`,
        with the same ``cut``, once it closes). With :data:`REFUSED_LINGER_MAX` held,
        the oldest is cut short to make room (out of the count at once: its own
        :meth:`lingered` is then nothing), so the newest refusals linger: those whose
        clients have not yet read their answer (on gRPC, not yet sent the call that
        answer needs)."""
        if len(self._lingers) >= REFUSED_LINGER_MAX:
            oldest = next(iter(self._lingers))
            del self._lingers[oldest]
            oldest()
        self._lingers[cut] = None
        self.lingering = len(self._lingers)

    def lingered(self, cut: Cut) -> None:
        """A refused connection that lingered has closed (nothing if it was cut short)."""
        self._lingers.pop(cut, None)
        self.lingering = len(self._lingers)


__all__ = [
    "REFUSED_LINGER_MAX",
    "Cancellable",
    "Connections",
    "Cut",
    "LoopClock",
    "Place",
    "Refusal",
    "ServerClock",
    "connection_room",
    "peer_of",
    "peer_of_address",
]
