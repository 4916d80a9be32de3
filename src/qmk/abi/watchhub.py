"""Where a wire's watches find a job's events: the kernel's event hub, made at the first watch.

:class:`HubWatches` is what the JSON-RPC socket server (:mod:`qmk.abi.server`), the REST
API and the gRPC wire open a job's events on (:class:`qmk.abi.watch.WatchSource`). It is
apart from the socket's watches (:mod:`qmk.abi.watch`) so that a kernel holds it from its
start and loads the rest at the first ``q_watch``: the socket's watches, and the hub
(:mod:`qmk.abi.events`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.abi.door import Door, StreamCaps, Visitor
    from qmk.abi.events import Call, EventHub, JobWatch
    from qmk.abi.probe import Cursor
    from qmk.abi.probing import KernelProbe


def through(door: Door, visitor: Visitor) -> Call:
    """The syscalls as ``visitor`` calls them through ``door``."""

    async def call(method: str, params: dict[str, Any]) -> Any:
        return await door.call(visitor, method, params)

    return call


class HubWatches:
    """Where the JSON-RPC socket's ``q_watch`` finds a job's events
    (:class:`WatchSource`): a :class:`JobWatch` over an :class:`EventHub`,
    so a watch counts among the session's and tenant's streams as an SSE stream does.
    It loads the hub's module (:mod:`qmk.abi.events`) at the first watch: a kernel no one
    watches holds none of it.

    Args:
        call: the syscalls, as a wire calls them (``q_status``; through the door:
            :func:`through`).
        probe: the kernel's probe.
        hub: the hub to share (the REST API's, when both serve one kernel); None: one
            made at the first watch (a kernel served on JSON-RPC only listens to its
            events only once someone watches) with ``caps``, closed with this.
        caps: that hub's stream limits (the door's :class:`~qmk.abi.door.StreamCaps`;
            None: no limit).
    """

    def __init__(
        self,
        call: Call,
        probe: KernelProbe,
        hub: EventHub | None = None,
        *,
        caps: StreamCaps | None = None,
    ) -> None:
        self._call = call
        self._probe = probe
        self._hub = hub
        self._caps = caps
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or (self._hub is not None and self._hub.closed)

    @property
    def stream_names(self) -> tuple[str, ...]:
        return self._probe.stream_names

    def close(self) -> None:
        """End every watch (``closing``); closing twice is once."""
        self._closed = True
        if self._hub is not None and not self._hub.closed:
            self._hub.close()

    async def open(self, session_id: str, job_id: str, *, after: Cursor | None = None) -> JobWatch:
        """:meth:`JobWatch.open` on the hub (made now if it is the first watch).

        Raises:
            QMKError: what ``q_status`` raises; ``QuotaError`` past the stream limits.
        """
        from qmk.abi.events import PROGRESS_S, EventHub, JobWatch  # at the first watch

        if self._hub is None:
            self._hub = EventHub(self._probe, asyncio.get_running_loop(), caps=self._caps)
            if self._closed:
                self._hub.close()
        return await JobWatch.open(
            self._call, self._hub, session_id, job_id, PROGRESS_S, after=after
        )


__all__ = ["HubWatches", "through"]
