"""Watches: a job's events pushed down a JSON-RPC socket connection as notifications.

``q_watch`` and ``q_unwatch`` are the socket-only methods
(:data:`qmk.abi.methods.SOCKET_METHODS`): only a connection of the socket server
(:mod:`qmk.abi.server`) can hold a watch, since the events go down that connection
while it goes on answering requests. A watch sends one notification per event::

    {"jsonrpc": "2.0", "method": "q_event",
     "params": {"watch_id": "w1", "event": "stream", "seq": 812, "sub": 2, "data": {...}}}

``event`` and ``data`` are those of the REST API's ``GET /v1/jobs/{id}/events``
(:class:`qmk.abi.events.JobWatch`): ``state``, ``progress``, ``lagged``, ``stream`` (a
part of an artifact: ``data.record`` holds ``artifact``, ``kind``, ``part``, ``parts``
and ``records``; only the artifacts ``streams`` names), other audit events of the job,
``result`` (the job as ``q_status`` answers it, once final) and ``closing`` (the server
stops). The last is always ``end`` (``seq`` null), ``data.reason`` ``result``,
``closing`` or ``error`` (then ``data.error`` is the error object, as a reply's). The
reply to ``q_watch`` comes before its first event; after the reply to ``q_unwatch``
no event of that watch comes. ``seq`` and ``sub`` are the event's cursor
(:class:`~qmk.abi.probe.Cursor`; both null for an event that is no record of the feed):
``q_watch``'s ``after`` and ``after_sub`` resume past it.

Bounds: a watch is one of the live event streams of its session and tenant
(``[server] max_streams_per_session``, ``max_streams_per_tenant``, shared with the
REST API's SSE streams when both serve one kernel): one more is ``QS1006``
``too-many-streams``. Events wait in the stream's bounded queue (a watch that falls
behind loses the oldest and gets a ``lagged`` event); a notification is written only
while the connection's unsent bytes are below ``max_unsent_bytes``, so a client that
does not read holds at most that (and one event) of the server's memory, until
``write_timeout_s`` drops its connection, which ends its watches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from qmk.abi.door import Guard
from qmk.abi.jsonrpc import encode_parts, error_object
from qmk.abi.probe import Cursor
from qmk.abi.replies import Unwatch, Watch
from qmk.errors import InvalidArgument, NotFoundError, QMKError

#: The notification's method.
EVENT = "q_event"
#: The last event of every watch.
END = "end"


class Drains(Protocol):
    """What a connection's watches drain before each event (its connection)."""

    def is_closing(self) -> bool:
        """Whether the connection is closing or closed."""
        ...

    async def drain(self) -> None:
        """Return once its unsent bytes are below the bound (ConnectionError: lost)."""
        ...


class JobEvents(Protocol):
    """One job's events as a wire streams them (:class:`qmk.abi.events.JobWatch`)."""

    def __aiter__(self) -> AsyncIterator[tuple[str, Any, Cursor | None]]:
        """``(event, data, cursor)`` until the job's result (or the server stops)."""
        ...

    def close(self) -> None:
        """Release the stream (closing twice is once)."""
        ...


class WatchSource(Protocol):
    """Where watches come from (:class:`qmk.abi.watchhub.HubWatches`)."""

    @property
    def closed(self) -> bool:
        """Whether the server stops: its watches end with ``closing``."""
        ...

    @property
    def stream_names(self) -> tuple[str, ...]:
        """The artifacts a device job can stream (what ``streams`` may name)."""
        ...

    def close(self) -> None:
        """The server stops: every watch ends with ``closing`` (closing twice is once)."""
        ...

    async def open(self, session_id: str, job_id: str, *, after: Cursor | None = None) -> JobEvents:
        """The events of ``job_id``, for ``session_id`` (past the cursor ``after``:
        :class:`qmk.abi.events.JobWatch`).

        Raises:
            QMKError: what ``q_status`` raises (a bad session, another tenant's job),
                ``QuotaError`` past the stream limits.
        """
        ...


def _names(streams: Any, known: tuple[str, ...]) -> frozenset[str] | None:
    """The artifacts a watch sends parts of (None: all).

    >>> sorted(_names(["pulses"], ("measurements", "pulses")))
    ['pulses']

    Raises:
        InvalidArgument: a name that is not in ``known`` (the streams a device job has).
    """
    if streams is None:
        return None
    unknown = [name for name in streams if name not in known]
    if unknown:
        raise InvalidArgument(
            f"no stream {unknown[0]!r}; streams: {', '.join(known)}", key="streams"
        )
    return frozenset(streams)


class ConnectionWatches:
    """The watches of one connection, and the tasks that send their events.

    Args:
        source: where the job events come from.
        send: writes one line given as pieces (the connection's outbox).
        writer: the connection's writer (drained while its unsent bytes are above the
            bound).
        guard: the connection's guard at the door (whether its unsent bytes are within
            ``max_unsent_bytes``).
    """

    def __init__(
        self,
        source: WatchSource,
        send: Callable[[list[bytes]], Awaitable[None]],
        writer: Drains,
        guard: Guard,
    ) -> None:
        self.source = source
        self._send = send
        self._writer = writer
        self._guard = guard
        self._count = 0
        self._pumps: dict[str, tuple[str, JobEvents, asyncio.Task[None]]] = {}

    def __len__(self) -> int:
        return len(self._pumps)

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """Answer a socket-only method (its params bound by the method table)."""
        if method == "q_watch":
            after = params.get("after")
            sub = params.get("after_sub", 0)
            if isinstance(sub, bool) or not isinstance(sub, int) or sub < 0:
                raise InvalidArgument(
                    f"after_sub must be a record's sub (>= 0), got {sub!r}", key="after_sub"
                )
            if after is not None and after < 0:
                raise InvalidArgument(
                    f"after must be an audit seq (>= 0), got {after}", key="after"
                )
            cursor = None if after is None else Cursor(after, sub)
            return await self.watch(
                params["session_id"], params["job_id"], params["streams"], cursor
            )
        if method == "q_unwatch":
            return self.unwatch(params["session_id"], params["watch_id"])
        raise AssertionError(f"not a socket method: {method}")

    async def watch(
        self, session_id: str, job_id: str, streams: Any, after: Cursor | None = None
    ) -> Watch:
        """Start a watch of ``job_id`` (past the cursor ``after``, when given); its reply."""
        names = _names(streams, self.source.stream_names)
        events = await self.source.open(session_id, job_id, after=after)
        self._count += 1
        watch_id = f"w{self._count}"
        task = asyncio.create_task(self._pump(watch_id, events, names))
        self._pumps[watch_id] = (session_id, events, task)
        task.add_done_callback(lambda _: self._pumps.pop(watch_id, None))
        return Watch(
            watch_id=watch_id, job_id=job_id, streams=None if names is None else sorted(names)
        )

    def unwatch(self, session_id: str, watch_id: str) -> Unwatch:
        """End a watch at once (no event of it is sent after this).

        Raises:
            NotFoundError: no such watch of this connection and session (ended already).
        """
        found = self._pumps.get(watch_id)
        if found is None or found[0] != session_id:
            raise NotFoundError(
                f"no watch {watch_id!r} on this connection (it ended, or another session's)",
                watch_id=watch_id,
            )
        _, events, task = self._pumps.pop(watch_id)
        task.cancel()
        events.close()  # its stream no longer counts against the limits, from now
        return Unwatch(watch_id=watch_id, ended=True)

    async def aclose(self) -> None:
        """The connection ends: stop every watch (a stopping server's watches first send
        their ``closing`` and ``end``) and wait for their tasks."""
        pumps = [task for _, _, task in self._pumps.values()]
        for _, events, task in list(self._pumps.values()):
            if not self.source.closed:
                task.cancel()
                events.close()
        if pumps:
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, watch_id: str, events: JobEvents, names: frozenset[str] | None) -> None:
        end: dict[str, Any] = {"reason": "result"}
        try:
            async for event, data, cursor in events:
                if event == "stream" and names is not None:
                    record = data.get("record") if isinstance(data, dict) else None
                    if isinstance(record, dict) and record.get("artifact") not in names:
                        continue
                if event == "closing":
                    end = {"reason": "closing"}
                if not await self._notify(watch_id, event, cursor, data):
                    return
        except QMKError as exc:  # the session expired while it watched
            end = {"reason": "error", "error": error_object(exc)}
        finally:
            events.close()
        await self._notify(watch_id, END, None, end)

    async def _notify(self, watch_id: str, event: str, cursor: Cursor | None, data: Any) -> bool:
        """Send one event once the connection's unsent bytes are below the bound; False
        when the connection is gone."""
        writer = self._writer
        seq, sub = (None, None) if cursor is None else cursor
        params = {"watch_id": watch_id, "event": event, "seq": seq, "sub": sub, "data": data}
        parts = encode_parts({"jsonrpc": "2.0", "method": EVENT, "params": params})
        try:
            while not self._guard.writable:
                if writer.is_closing():
                    return False
                await writer.drain()  # a client that does not read: write_timeout_s drops it
        except ConnectionError:
            return False
        if writer.is_closing():
            return False
        with contextlib.suppress(ConnectionError):
            await self._send(parts)
        return True


__all__ = ["END", "EVENT", "ConnectionWatches", "JobEvents", "WatchSource"]
