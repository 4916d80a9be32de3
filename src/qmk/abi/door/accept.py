"""Accepting connections, for every listener, within the door's one accept rate.

An :class:`Acceptor` watches a listener's sockets and accepts what waits there, at most
:data:`ACCEPT_BATCH` connections in one turn of the event loop, each taking a token of
``accept_rate`` from the bucket all listeners share (:meth:`~qmk.abi.door.peers.
Connections.take_accept`). Accepting and refusing cost the loop about the same
(``docs/qsyscall.md``), so a connect flood on any listener, from one peer or many,
costs the kernel at most that many accepts a second. With no token left the acceptor
stops accepting until one is due; the connection at which it stopped waits (and is
adopted first), the others wait in the listen backlog. What becomes of an accepted
connection (its place in the count, or a refusal) is the listener's ``adopt``, which
asks the door (:meth:`~qmk.abi.door.peers.Connections.admit`).

Time is the door's clock, so a test moves it by hand and waits for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from qmk.abi.door.peers import Connections, ServerClock

LOG = logging.getLogger("qmk.abi.door")

#: Connections accepted in one turn of the event loop at most (the others wait for the
#: next turn, so a flood cannot hold the loop), and the seconds an acceptor stops after
#: accept() failed for want of descriptors or memory.
ACCEPT_BATCH, ACCEPT_RETRY_S = 16, 1.0

#: Starts a task in its owner's group: ``TaskGroup.create_task``.
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class Acceptor:
    """Accepts on one listener's sockets within the shared accept rate.

    Args:
        connections: the door's count (its accept bucket).
        clock: the door's clock.
        adopt: called with each accepted socket (non-blocking): the listener serves it
            or refuses it. It must not block.
    """

    def __init__(
        self,
        connections: Connections,
        clock: ServerClock,
        adopt: Callable[[socket.socket], None],
    ) -> None:
        self.connections = connections
        self.clock = clock
        self.adopt = adopt
        self._sockets: list[socket.socket] = []
        self._spawn: Spawn | None = None
        self._resume: asyncio.Task[None] | None = None  # while accepting is paused
        self._stopped = False

    def start(self, sockets: list[socket.socket], spawn: Spawn) -> None:
        """Accept on ``sockets`` (listening, non-blocking); ``spawn`` starts the task of
        a pause in the listener's own group (``TaskGroup.create_task``)."""
        self._sockets = list(sockets)
        self._spawn = spawn
        self._watch(True)

    def stop(self) -> None:
        """Accept no more (the sockets stay open: their owner closes them)."""
        self._stopped = True
        self._watch(False)
        if self._resume is not None:
            self._resume.cancel()

    def _watch(self, on: bool) -> None:
        """Have the loop tell us when a connection waits on a socket (or not)."""
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            if sock.fileno() < 0:
                continue
            if on:
                loop.add_reader(sock.fileno(), self._on_listen, sock)
            else:
                loop.remove_reader(sock.fileno())

    def _on_listen(self, listener: socket.socket) -> None:
        """A connection waits: accept up to :data:`ACCEPT_BATCH`, each taking a token;
        with none left, stop until one is due (refusing would cost as much)."""
        for _ in range(ACCEPT_BATCH):
            if self._resume is not None or self._stopped:
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
            wait = self.connections.take_accept()
            if wait:
                self._pause(wait, conn)
                return
            self._adopt(conn)

    def _adopt(self, conn: socket.socket) -> None:
        try:
            self.adopt(conn)
        except Exception:
            LOG.exception("adopting a connection failed")
            conn.close()

    def _pause(self, seconds: float, held: socket.socket | None = None) -> None:
        """Stop accepting for ``seconds`` of the clock; ``held``, a connection accepted
        past the rate, waits as long and is adopted first."""
        assert self._spawn is not None
        self._watch(False)
        when = self.clock.now() + seconds
        self._resume = self._spawn(self._resume_at(when, held))

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
        if self._stopped:
            if held is not None:
                held.close()
            return
        if held is not None:
            wait = self.connections.take_accept()
            if wait:
                self._pause(wait, held)
                return
            self._adopt(held)
        self._watch(True)


__all__ = ["ACCEPT_BATCH", "Acceptor", "Spawn"]
