"""Live events of one kernel for every wire: :class:`EventHub` fans the kernel's events
out to streams, and :class:`JobWatch` is one job's events as every wire streams them
(the REST API's SSE, gRPC's ``WatchJob``, the JSON-RPC socket's ``q_watch``).

:class:`EventHub` listens to a :class:`~qmk.abi.probing.KernelProbe` and hands every event
to the streams that asked for it (a tenant's, or one job's), each through a bounded
queue: a stream that does not keep up loses its oldest events and is told so (an
``event: lagged``), and the kernel never waits for a reader. It also keeps the last
:data:`RECENT` events (seeded from the audit log's tail), for ``GET /v1/audit``.

A session may hold ``max_streams_per_session`` streams at once and a tenant
``max_streams_per_tenant``, counted by the door's :class:`~qmk.abi.door.StreamCaps`
for every wire together (SSE, ``q_watch``, gRPC's ``WatchJob``): one more is ``QS1006
quota-exceeded`` with ``reason`` ``too-many-streams`` (``429`` over HTTP).

It lives below the wires so the kernel's own JSON-RPC server streams ``q_watch``
without importing the HTTP layer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from qmk import defaults
from qmk.abi.door import StreamCaps
from qmk.abi.probe import Cursor, KernelEvent
from qmk.abi.probing import KernelProbe, last_records
from qmk.abi.replies import Job

#: Recent events kept for the audit route.
RECENT = defaults.EVENTS_LIMIT
#: Events a stream may hold unread before it loses the oldest.
STREAM_QUEUE = 1024


class Stream:
    """One reader's queue of events (its tenant's, or one job's of that tenant)."""

    def __init__(self, tenant: str, job_id: str | None, session: str | None = None) -> None:
        self.tenant = tenant
        self.job_id = job_id
        self.session = session
        self.lagged = 0
        self.closed = False
        self._queue: asyncio.Queue[KernelEvent | None] = asyncio.Queue(STREAM_QUEUE)

    def wants(self, event: KernelEvent) -> bool:
        """Whether the reader asked for ``event``."""
        if event.tenant != self.tenant:
            return False
        return self.job_id is None or event.job_id == self.job_id

    def put(self, event: KernelEvent | None) -> None:
        """Queue ``event`` (None: the hub closes), dropping the oldest when full."""
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self.lagged += 1

    def pending(self) -> bool:
        """Whether events wait in the queue."""
        return not self._queue.empty()

    async def get(self, timeout_s: float) -> KernelEvent | None:
        """The next event, or None when ``timeout_s`` passes or the hub closes."""
        if self.closed:
            return None
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout_s)
        except asyncio.TimeoutError:  # TimeoutError itself from 3.11 on
            return None
        if event is None:
            self.closed = True
        return event


class EventHub:
    """Fans the probe's events out to streams, and keeps the recent ones.

    Args:
        probe: the kernel's probe.
        loop: the event loop the streams live on (events from other threads hop over).
        caps: the live streams of each session and tenant, as the door counts them
            for every wire (None: no limit).
    """

    def __init__(
        self,
        probe: KernelProbe,
        loop: asyncio.AbstractEventLoop,
        *,
        caps: StreamCaps | None = None,
    ) -> None:
        self.probe = probe
        self.loop = loop
        self.caps = caps if caps is not None else StreamCaps(None, None)
        self._thread = threading.get_ident()
        self._streams: set[Stream] = set()
        self.recent: deque[KernelEvent] = deque(probe.audit_tail(RECENT), maxlen=RECENT)
        #: The newest event :attr:`recent` let go (None: none yet).
        self.evicted: Cursor | None = None
        self._stops = [probe.listen(self._heard, kept=True)]  # a cursor of a kept line
        self.closed = False

    def on_event(self, callback: Callable[[KernelEvent], None]) -> None:
        """Call ``callback`` with every event, on the caller's thread, as it happens,
        before any stream sees it (metrics, traces and logs; they must be quick)."""
        self._stops.append(self.probe.listen(callback))

    def _heard(self, event: KernelEvent) -> None:
        if threading.get_ident() == self._thread:
            self._fan_out(event)
        else:
            self.loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: KernelEvent) -> None:
        if len(self.recent) == RECENT:
            self.evicted = self.recent[0].cursor
        self.recent.append(event)
        for stream in self._streams:
            if stream.wants(event):
                stream.put(event)

    def open(self, tenant: str, job_id: str | None = None, *, session: str | None = None) -> Stream:
        """A new stream of ``tenant``'s events (only ``job_id``'s when given), for
        ``session``; :meth:`close_stream` it when its reader leaves.

        Raises:
            QuotaError: the session, or the tenant, holds its limit of streams.
        """
        self.caps.take(tenant, session)
        stream = Stream(tenant, job_id, session)
        if self.closed:
            stream.put(None)
        self._streams.add(stream)
        return stream

    def close_stream(self, stream: Stream) -> None:
        """Forget ``stream`` (its reader left); closing it twice is once."""
        if stream not in self._streams:
            return
        self._streams.discard(stream)
        self.caps.give(stream.tenant, stream.session)

    def since(
        self, after: Cursor, tenant: str, job_id: str | None = None
    ) -> list[KernelEvent] | None:
        """``tenant``'s recent events past ``after`` (``job_id``'s only), oldest first;
        None when the cursor is older than the recent events kept, so some may be lost."""
        recent = self.recent
        if not recent or recent[0].seq > after.seq + 1:
            return None
        if self.evicted is not None and after < self.evicted:
            return None
        return [
            e
            for e in recent
            if e.cursor > after and e.tenant == tenant and (job_id is None or e.job_id == job_id)
        ]

    def stream_count(self, tenant: str) -> int:
        """The streams ``tenant`` holds now (on every wire)."""
        return self.caps.held(tenant)

    def audit(self, tenant: str, job_id: str | None, limit: int) -> list[dict[str, Any]]:
        """``tenant``'s last ``limit`` audit entries (``job_id``'s only), oldest first."""
        return last_records(self.recent, tenant, job_id, limit)

    def close(self) -> None:
        """End every stream (the server stops) and stop listening."""
        self.closed = True
        for stop in self._stops:
            stop()
        for stream in self._streams:
            stream.put(None)


#: Seconds between the progress events of a job's stream when nothing else happens.
PROGRESS_S = 2.0

#: A syscall as a wire calls it: the method's name and its bound params.
Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


def _fields(event: KernelEvent) -> dict[str, Any]:
    record = {k: v for k, v in event.record.items() if k not in ("seq", "event", "job_id")}
    return {"seq": event.seq, **record}


def _attested(job_id: str, event: KernelEvent) -> dict[str, Any]:
    """The progress event of a run's attestation: its epochs and engine."""
    return {
        "job_id": job_id,
        "state": "RUNNING",
        "epochs": len(event.record.get("epochs") or []),
        "engine": event.record.get("engine"),
    }


class JobWatch:
    """One job's events as a wire streams them, whatever its framing (SSE, gRPC).

    :meth:`open` checks the session and the job first (``q_status``: a bad session or
    another tenant's job fails before any event); iterating gives ``(event, data, cursor)``:
    ``state`` (the job's state now, then each transition), ``progress`` (every
    :data:`PROGRESS_S` of quiet, and each attestation of a run's epochs), ``lagged``
    (events were dropped: the reader did not keep up), other audit events of the job,
    then ``result`` (the job as ``q_status`` answers it, once final) or ``closing`` (the
    server stops). ``cursor`` is the record's :class:`~qmk.abi.probe.Cursor` (its seq,
    and its sub: a stream part's place after its line), where the event is a record
    of the feed (else None). A :class:`~qmk.errors.QMKError` while it watches (the
    session expired) is raised.

    **Resuming.** The cursor is the watch's (SSE's ``id:``, ``q_event``'s ``seq`` and
    ``sub``, ``JobEvent.seq`` and ``sub``). A watch opened ``after`` a cursor does not
    start with the state now: it gives the job's events past ``after`` first, from the
    hub's recent events, then goes on live (an event is never given twice, a stream part
    included), and ends with the result if the job is final. A cursor older than the
    recent events the hub keeps cannot be resumed exactly: such a watch starts with
    ``lagged`` (``dropped`` null: unknown), then the state now, as a new watch does.
    The hub knows the records its probe's tail gave it (the kernel's feed, stream parts
    included, once that listens; else the audit log's lines) and those told since.
    """

    def __init__(
        self,
        call: Call,
        hub: EventHub,
        stream: Stream,
        params: dict[str, Any],
        progress_s: float,
        after: Cursor | None = None,
    ) -> None:
        self._call = call
        self._hub = hub
        self._stream = stream
        self._params = params
        self._progress_s = progress_s
        self._after = after
        self._final = frozenset(hub.probe.final_states)

    @classmethod
    async def open(
        cls,
        call: Call,
        hub: EventHub,
        session_id: str,
        job_id: str,
        progress_s: float = PROGRESS_S,
        *,
        after: Cursor | None = None,
    ) -> JobWatch:
        """Watch ``job_id`` with ``session_id`` (raises what ``q_status`` raises), from
        the start or past the cursor ``after``."""
        params = {"session_id": session_id, "job_id": job_id}
        first: Job = await call("q_status", params)
        stream = hub.open(first.tenant, job_id, session=session_id)
        return cls(call, hub, stream, params, progress_s, after)

    def close(self) -> None:
        """Release the stream (its reader left); closing twice is once."""
        self._hub.close_stream(self._stream)

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any, Cursor | None]]:
        stream = self._stream
        try:
            job: Job = await self._call("q_status", self._params)
            seen = self._after
            missed = None if seen is None else self._hub.since(seen, job.tenant, job.job_id)
            # the state given now, until the stream's first job event: the transition
            # into it may come after it on the stream (made while q_status was asked),
            # and a job never passes from a state to the same state
            given: str | None = None
            if missed is None:
                if seen is not None:
                    yield "lagged", {"dropped": None}, None
                yield "state", {"job_id": job.job_id, "state": job.state}, None
                given = job.state
            for past in missed or ():
                seen = past.cursor
                async for item in self._said(past):
                    yield item
                if past.is_job and past.state in self._final:
                    return
            if job.state in self._final:
                yield "result", await self._call("q_status", self._params), None
                return
            while True:
                event = await stream.get(self._progress_s)
                if stream.lagged:
                    yield "lagged", {"dropped": stream.lagged}, None
                    stream.lagged = 0
                if event is None:
                    if stream.closed:
                        yield "closing", {"reason": "the server is stopping"}, None
                        return
                    job = await self._call("q_status", self._params)
                    yield "progress", _progress(job), None
                    if job.state in self._final:
                        yield "result", job, None
                        return
                    continue
                if seen is not None and event.cursor <= seen:
                    continue  # given already, from the recent events
                if event.is_job:
                    repeated, given = event.state == given, None
                    if repeated:
                        continue  # the transition into the state given first
                async for item in self._said(event):
                    yield item
                if event.is_job and event.state in self._final:
                    return
        finally:
            self._hub.close_stream(stream)

    async def _said(self, event: KernelEvent) -> AsyncIterator[tuple[str, Any, Cursor | None]]:
        """What one of the job's events says on the watch (a final state: its result too)."""
        job_id = self._params["job_id"]
        cursor = event.cursor
        if event.is_job:
            if event.state == "COMPLETED" and "epochs" in event.record:
                # its attestation, on its COMPLETED line: the progress it made first
                yield "progress", _attested(job_id, event), cursor
            yield "state", {"job_id": job_id, **_fields(event)}, cursor
            if event.state in self._final:
                yield "result", await self._call("q_status", self._params), None
        elif event.event == "attest":  # a line of its own (qmk.kernel.security.attest)
            yield "progress", _attested(job_id, event), cursor
        elif event.event != "spans":  # a worker's spans are a gateway tracer's record
            yield event.event, event.to_json(), cursor


def _progress(job: Job) -> dict[str, Any]:
    """A quiet watch's progress event: the job's state, and how long it has run."""
    started = job.started_at
    running = started is not None and job.state == "RUNNING"
    return {
        "job_id": job.job_id,
        "state": job.state,
        "running_s": round(time.time() - started, 3) if running and started is not None else None,
    }


def syscalls(kernel: Any) -> Call:
    """The syscalls of ``kernel`` as a wire calls them: ``await call(method, params)``."""

    async def call(method: str, params: dict[str, Any]) -> Any:
        return await getattr(kernel, method)(**params)

    return call
