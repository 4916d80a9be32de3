"""The HTTP gateway: the REST API in a process of its own, a client of the kernel's door.

``qmk gateway http --kernel SOCKET --listen HOST:PORT`` runs it alone; ``qmk serve --http
HOST:PORT --gateway process`` starts it beside the kernel and restarts it when it dies
(:mod:`qmk.serve.gateways`). The application is the one the kernel's own process serves
(:mod:`qmk.http.app`), on a door whose kernel is :class:`RemoteKernel`: every syscall goes
to the kernel's JSON-RPC socket with the caller's own params (its session, or its key for
a login), so the kernel checks each call as it checks a JSON-RPC client's. The gateway
holds no credentials of its own.

What the kernel's own process reads of it beside the syscalls, the gateway reads through
syscalls too: a job's live events through ``q_watch`` (:class:`RemoteWatches`, past a
reconnecting client's cursor, ``after`` and ``after_sub``); the tenant's event stream
(``GET /v1/events``, a device job's stream parts in it) through ``q_events`` from its
cursor (``after`` and ``after_sub``: now, or a reconnecting client's), and the
kernel's load and job counters (``/metrics``) through ``q_kernel_load`` with the
scraper's own credentials, which need ``CAP_OBSERVE``, and the assistant's steps
(``POST /v1/assist``) through ``q_events`` while it answers (:class:`RemoteFeed`).
The jobs submitted through it are followed to their end through their submitter's
``q_events`` when their log lines or traces are wanted (:class:`JobFollower`).
``GET /v1/audit`` is ``q_audit``'s route. While the kernel is away (it restarts) every
syscall answers ``QS1011`` ``unavailable`` with ``reason: kernel-away`` (503,
``retry_after_s``), and the next call connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from qmk import aio, defaults
from qmk.abi.door import Acceptor, Door, Visitor, connection_room
from qmk.abi.errors import ConnectError, ConnectionClosed, ServeError
from qmk.abi.events import Call
from qmk.abi.limits import ServerConfig
from qmk.abi.methods import METHODS, SOCKET_METHODS
from qmk.abi.probe import Cursor, JobFacts, KernelEvent, KernelSnapshot, WorkerTraces
from qmk.abi.replies import Job
from qmk.abi.tcp import format_tcp
from qmk.client import AsyncClient, Timeout
from qmk.errors import QMKError, SessionError, UnavailableError
from qmk.gateway.line import KernelLine
from qmk.http.server import HttpConfig
from qmk.qvm.graph import GraphText

T = TypeVar("T")

_log = logging.getLogger("qmk.gateway.http")

#: Seconds a session's tenant, once the kernel named it, is taken as known by the
#: gateway's own limits (the kernel checks the session on every call regardless).
SESSION_TTL_S = 30.0
#: Sessions whose tenant the gateway remembers at once (the oldest go first).
SESSION_CACHE = 4096
#: The seconds a refusal while the kernel is away tells the caller to wait.
AWAY_RETRY_S = 1.0


def kernel_away(address: str, exc: BaseException) -> UnavailableError:
    """The refusal of a call while the kernel at ``address`` does not answer."""
    return UnavailableError(
        f"the kernel at {address} is away ({exc}); the gateway connects again at the next "
        f"call: retry in {AWAY_RETRY_S:g} s",
        reason="kernel-away",
        retry_after_s=AWAY_RETRY_S,
    )


#: Whether the syscall the door calls now answers its reply as the kernel wrote it
#: (:class:`~qmk.gateway.line.Relayed`): set by :meth:`GatewayDoor.relay` around the
#: door's own call alone, so the door's checks and hooks stay those of every call.
_RELAYING: contextvars.ContextVar[bool] = contextvars.ContextVar("relaying", default=False)


class RemoteKernel:
    """The kernel's syscalls over its JSON-RPC socket, as the door calls a kernel.

    One pipelined connection (:class:`~qmk.gateway.line.KernelLine`) carries every call,
    each with its caller's own session; it connects at the first call and again at the
    first call after the kernel went away. A call answers the typed reply
    (:mod:`qmk.abi.replies`), or, inside :meth:`GatewayDoor.relay`, the kernel's JSON as
    it came. The watches (:class:`RemoteWatches`) go on a connection of their own
    (:attr:`client`), opened at the first.
    """

    def __init__(self, address: str, *, timeout: Timeout | None = None) -> None:
        timeout = timeout or Timeout(call=None)
        self.address = address
        self.line = KernelLine(address, connect_timeout_s=timeout.connect)
        self.client = AsyncClient(address, timeout=timeout)
        for name in METHODS:
            if name not in SOCKET_METHODS:
                setattr(self, name, self._forward(name))

    def _forward(self, name: str) -> Callable[..., Any]:
        call = getattr(self.line, name)
        relay = self.line.relay
        address = self.address

        async def forward(**params: Any) -> Any:
            graph = params.get("graph")
            if isinstance(graph, GraphText):  # read here: its JSON goes on the line
                params["graph"] = dict(graph)
            try:
                if _RELAYING.get():
                    return await relay(name, params)
                return await call(**params)
            except (ConnectError, ConnectionClosed) as exc:
                raise kernel_away(address, exc) from None

        forward.__name__ = name
        return forward

    async def aclose(self) -> None:
        """Close the connections to the kernel."""
        await self.line.aclose()
        await self.client.aclose()


class GatewayProbe:
    """What the gateway's door reads of a kernel in another process.

    Sessions: a session's tenant is asked of the kernel (``q_resource_query``) the first
    time the gateway sees it, and kept :data:`SESSION_TTL_S` for the gateway's own
    limits; logins through the gateway are kept from their reply. Programs are read in
    the gateway's threads (its CPU, not the kernel's). Of the kernel's events it hears
    only those of the jobs accepted here, with ``follow`` (:class:`JobFollower`), and
    :meth:`snapshot` is refused.
    """

    states: tuple[str, ...] = defaults.JOB_STATES
    final_states: tuple[str, ...] = defaults.FINAL_JOB_STATES
    stream_names: tuple[str, ...] = ()

    def __init__(self, kernel: RemoteKernel, max_graph_nodes: int, *, follow: bool = False) -> None:
        self._kernel = kernel
        self._max_graph_nodes = max_graph_nodes
        self._tenants: OrderedDict[str, tuple[str, float]] = OrderedDict()
        #: The jobs accepted here, followed (None: nobody reads their transitions).
        self.follower = JobFollower(kernel) if follow else None

    @property
    def max_graph_nodes(self) -> int:
        return self._max_graph_nodes

    def remember(self, session_id: str, tenant: str) -> None:
        """Keep ``session_id``'s tenant (the kernel just named it)."""
        self._tenants[session_id] = (tenant, time.monotonic() + SESSION_TTL_S)
        self._tenants.move_to_end(session_id)
        while len(self._tenants) > SESSION_CACHE:
            self._tenants.popitem(last=False)

    def fresh(self, session_id: str) -> str | None:
        """The tenant of ``session_id`` if known and fresh (None: :meth:`recall` asks)."""
        known = self._tenants.get(session_id)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        return None

    async def recall(self, session_id: str) -> str:
        """The tenant of ``session_id``, asked of the kernel unless known and fresh.

        Raises:
            SessionError, AuthError: the kernel refuses the session.
            UnavailableError: the kernel is away.
        """
        known = self.fresh(session_id)
        if known is not None:
            return known
        reply = await self._kernel.q_resource_query(session_id=session_id)  # type: ignore[attr-defined]
        self.remember(session_id, reply.tenant)
        return str(reply.tenant)

    def forget(self, session_id: str) -> None:
        """Forget ``session_id`` (the kernel refused it)."""
        self._tenants.pop(session_id, None)

    def session_tenant(self, session_id: str) -> str:
        known = self._tenants.get(session_id)
        if known is None:
            raise SessionError("unknown session (the gateway has not checked it yet)")
        return known[0]

    async def lower(
        self, tenant: str, work: Callable[[], T], *, what: str = "reading program text"
    ) -> tuple[T, float]:
        def timed() -> tuple[T, float]:
            start = time.thread_time()
            value = work()
            return value, time.thread_time() - start

        return await asyncio.to_thread(timed)

    def charge(self, tenant: str, seconds: float) -> None:
        """Nothing to charge: the gateway's CPU is its own, not the kernel's."""

    def listen(
        self, callback: Callable[[KernelEvent], None], *, kept: bool = False
    ) -> Callable[[], None]:
        """Call ``callback`` with the records of the jobs accepted here (their
        :class:`JobFollower`); nothing else of the kernel is heard. They come from the
        kernel's feed, whose records are kept ones (``kept`` either way)."""
        if self.follower is None:
            return _nothing
        return self.follower.listen(callback)

    def audit_tail(self, limit: int) -> list[Any]:
        return []

    def snapshot(self) -> KernelSnapshot:
        """Refused: the gateway reads the kernel's load with ``q_kernel_load`` at each
        scrape, with the scraper's credentials (:class:`qmk.http.metrics.Scrapers`)."""
        raise UnavailableError(
            "a gateway reads the kernel's load with q_kernel_load, as its scraper",
            reason="not-in-gateway",
        )

    def trace_workers(self, traces: WorkerTraces | None) -> None:
        """The kernel's workers are not the gateway's to trace."""


class GatewayDoor(Door):
    """The door of the gateway: the same checks, with a session's tenant asked of the
    kernel (:meth:`GatewayProbe.recall`) before the checks read it."""

    probe: GatewayProbe

    async def tenant_of(self, visitor: Visitor, session_id: str) -> str:
        if self.probe.fresh(session_id) is None:
            await self._recall(session_id)
        return self.tenant(visitor, session_id)

    async def _recall(self, session_id: str) -> None:
        try:
            await self.probe.recall(session_id)
        except SessionError:
            self.probe.forget(session_id)
            raise

    async def call(
        self,
        visitor: Visitor,
        method: str,
        params: Mapping[str, Any],
        *,
        relaying: bool = False,
        **options: Any,
    ) -> Any:
        """The door's call, the session's tenant recalled first; with ``relaying``, its
        syscall answers the kernel's JSON as it came (:meth:`relay`)."""
        session_id = params.get("session_id")
        if isinstance(session_id, str) and self.probe.fresh(session_id) is None:
            await self._recall(session_id)
        follower = self.probe.follower
        if follower is not None and method in FOLLOWED and isinstance(session_id, str):
            return await self._followed(
                follower, session_id, visitor, method, params, relaying, options
            )
        token = _RELAYING.set(relaying)
        try:
            result = await super().call(visitor, method, params, **options)
        finally:
            _RELAYING.reset(token)
        if method == "q_negotiate_caps":
            self.probe.remember(result.session_id, result.tenant)
        return result

    def relay(
        self, visitor: Visitor, method: str, params: Mapping[str, Any], **options: Any
    ) -> Awaitable[Any]:
        """:meth:`call`, answering the result as the kernel wrote it
        (:class:`~qmk.gateway.line.Relayed`): for a caller that only passes the reply on
        (the REST API), which then sends the kernel's bytes without decoding them and
        encoding them again. (The call's own coroutine, not one awaiting it: a frame
        less on each call's way out and back.)"""
        return self.call(visitor, method, params, relaying=True, **options)

    async def _followed(
        self,
        follower: JobFollower,
        session_id: str,
        visitor: Visitor,
        method: str,
        params: Mapping[str, Any],
        relaying: bool,
        options: Mapping[str, Any],
    ) -> Any:
        """A call whose job is followed (:class:`JobFollower`): marked in flight before
        it, and its job handed over after."""
        followed = await follower.before(session_id)
        job_id = None
        token = _RELAYING.set(relaying)
        try:
            result = await super().call(visitor, method, params, **options)
            job_id = getattr(result, "job_id", None)
        finally:
            _RELAYING.reset(token)
            follower.after(session_id, followed, job_id if isinstance(job_id, str) else None)
        return result


#: The syscalls whose job the gateway follows to its end (:class:`JobFollower`).
FOLLOWED = frozenset({"q_submit"})
#: The longest one wait of a follower for its tenant's next record.
FOLLOW_WAIT_MS = 15_000
#: Seconds a follower lets its tenant's records gather after a page that had some,
#: before it asks again: one page then carries a burst of transitions, not one call
#: (and one wake of the gateway and of the kernel) per record. The records carry the
#: kernel's times, so the spans and lines lose nothing of their timing by it.
FOLLOW_GATHER_S = 0.05


class _Followed:
    """One session's jobs being followed, and where its reading of the feed is."""

    def __init__(self, cursor: Cursor) -> None:
        #: Where its reading of the feed is: ``q_events``' ``(cursor, cursor_sub)``.
        self.cursor = cursor
        self.jobs: set[str] = set()
        #: Followed submits not answered yet: the reading goes on while one may come.
        self.pending = 0
        #: Records of jobs not (yet) followed: a job's first records can be read before
        #: its submit's answer names it.
        self.unclaimed: deque[KernelEvent] = deque(maxlen=defaults.EVENTS_LIMIT)
        self.task: asyncio.Task[None] | None = None


class JobFollower:
    """The transitions of the jobs accepted through this gateway, read through the
    kernel's syscalls with their submitter's own session, as the kernel's own process
    hears every job's: the HTTP application's per-job log lines (``qmk.http.jobs``) and
    the job's queue, run and result spans (:class:`qmk.http.tracing.Tracing`).

    Before a followed submit, a session not followed yet takes the cursor of now in its
    tenant's feed (``q_events``); after it, the job is read from there, one long poll
    per session (pages :data:`FOLLOW_GATHER_S` apart while records come), until its
    final state and while another submit of the session is in flight. A session the
    kernel refuses, or a kernel away, ends its following (the log says so at debug
    level); nothing is retried.
    """

    def __init__(self, kernel: RemoteKernel) -> None:
        self._kernel = kernel
        self._callbacks: list[Callable[[KernelEvent], None]] = []
        self._sessions: dict[str, _Followed] = {}
        self._final = frozenset(defaults.FINAL_JOB_STATES)

    def listen(self, callback: Callable[[KernelEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with each record of a followed job; returns the call that
        stops it."""
        self._callbacks.append(callback)

        def stop() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return stop

    async def before(self, session_id: str) -> _Followed | None:
        """Mark a submit of ``session_id`` in flight, taking the cursor of now first
        when the session is not followed yet; what :meth:`after` is handed (None: no
        one listens). Raises what ``q_events`` raises: the call then fails as the
        submit would."""
        if not self._callbacks:
            return None
        if session_id not in self._sessions:
            page = await self._kernel.q_events(  # type: ignore[attr-defined]
                session_id=session_id, after=None, limit=1, wait_ms=None
            )
            if session_id not in self._sessions:
                self._sessions[session_id] = _Followed(_cursor(page))
        followed = self._sessions[session_id]
        followed.pending += 1
        return followed

    def after(self, session_id: str, followed: _Followed | None, job_id: str | None) -> None:
        """The submit :meth:`before` marked was answered: follow ``job_id`` (None: the
        submit failed) until its final state."""
        if followed is None:
            return
        followed.pending -= 1
        if job_id is None or self._sessions.get(session_id) is not followed:
            return  # nothing to follow, or its reading ended on an error
        followed.jobs.add(job_id)
        for event in [e for e in followed.unclaimed if e.job_id == job_id]:
            followed.unclaimed.remove(event)
            self._heard(followed, event)
        if followed.jobs and (followed.task is None or followed.task.done()):
            loop = asyncio.get_running_loop()
            followed.task = loop.create_task(self._read(session_id, followed))

    async def _read(self, session_id: str, followed: _Followed) -> None:
        try:
            while followed.jobs or followed.pending:
                page = await self._kernel.q_events(  # type: ignore[attr-defined]
                    session_id=session_id,
                    after=followed.cursor.seq,
                    after_sub=followed.cursor.sub,
                    limit=defaults.EVENTS_LIMIT,
                    wait_ms=FOLLOW_WAIT_MS,
                )
                for record in page.events:
                    event = event_of(record)
                    if event.job_id in followed.jobs:
                        self._heard(followed, event)
                    elif event.job_id is not None:
                        followed.unclaimed.append(event)
                followed.cursor = _cursor(page)
                if page.events and len(page.events) < defaults.EVENTS_LIMIT:
                    await asyncio.sleep(FOLLOW_GATHER_S)
        except QMKError as exc:
            _log.debug("following the jobs of a session ends: %s", exc)
        finally:  # no await since the loop's test: a submit now takes a new cursor
            if self._sessions.get(session_id) is followed:
                del self._sessions[session_id]

    def _heard(self, followed: _Followed, event: KernelEvent) -> None:
        if event.is_job and event.state in self._final:
            followed.jobs.discard(event.job_id or "")
        for callback in list(self._callbacks):
            callback(event)

    async def aclose(self) -> None:
        """Stop following."""
        tasks = [f.task for f in self._sessions.values() if f.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def event_of(record: Mapping[str, Any]) -> KernelEvent:
    """A record of ``q_events`` as the kernel's own process hears it (its job's facts
    are what the record says: its time, whether it is final, its engine)."""
    state = record.get("state")
    fields = record.get("record") or {}
    job_id = record.get("job_id")
    facts = None
    if job_id is not None and record.get("event") == "job":
        engine = fields.get("engine")
        error = fields.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        facts = JobFacts(
            created_at=float(record.get("ts") or 0.0),
            final=state in defaults.FINAL_JOB_STATES,
            engine=engine if isinstance(engine, str) else None,
            error_code=code if isinstance(code, str) else None,
        )
    return KernelEvent(
        seq=int(record.get("seq") or 0),
        ts=float(record.get("ts") or 0.0),
        event=str(record.get("event")),
        tenant=record.get("tenant"),
        job_id=job_id,
        state=state,
        record=fields,
        job=facts,
        sub=int(record.get("sub") or 0),
    )


class RemoteWatches:
    """A job's live events from the kernel's ``q_watch``, as the REST API streams them."""

    def __init__(self, kernel: RemoteKernel) -> None:
        self._kernel = kernel

    async def open(
        self, session_id: str, job_id: str, *, after: Cursor | None = None
    ) -> RemoteWatch:
        """Watch ``job_id`` (past the cursor ``after``): the kernel's watch taken, and
        its first event in, before any answer starts (raises what ``q_watch`` raises: a
        bad session, another tenant's job, ``QuotaError`` past the stream limits)."""
        seq, sub = (None, 0) if after is None else after
        events = self._kernel.client.watch(job_id, session_id=session_id, after=seq, after_sub=sub)
        try:
            first = await events.__anext__()
        except (ConnectError, ConnectionClosed) as exc:
            raise kernel_away(self._kernel.address, exc) from None
        except StopAsyncIteration:
            first = None
        return RemoteWatch(events, first, self._kernel.address)


class RemoteWatch:
    """One job's events from the kernel: ``(event, data, cursor)`` until its result."""

    def __init__(self, events: Any, first: dict[str, Any] | None, address: str) -> None:
        self._events = events
        self._first = first
        self._address = address

    async def _all(self) -> AsyncIterator[dict[str, Any]]:
        if self._first is None:
            return
        yield self._first
        async for event in self._events:
            yield event

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any, Cursor | None]]:
        try:
            async for event in self._all():
                name, data = event["event"], event["data"]
                if name == "end":
                    if isinstance(data, dict) and data.get("reason") == "closing":
                        yield "closing", {"reason": "the server is stopping"}, None
                    return
                if name == "result" and isinstance(data, dict):  # the job, as q_status gives it
                    data = Job.from_json(data)
                seq = event["seq"]
                yield name, data, None if seq is None else Cursor(seq, event.get("sub") or 0)
        except (ConnectError, ConnectionClosed) as exc:
            raise kernel_away(self._address, exc) from None

    def close(self) -> None:
        """End the watch (its reader left)."""
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        with contextlib.suppress(QMKError, RuntimeError):
            await self._events.aclose()


#: The longest a wait for the tenant's next record lasts while a call it follows runs
#: (``POST /v1/assist``): how soon the call's end is seen when no record comes.
RUNNING_POLL_MS = 250


class RemoteFeed:
    """The tenant's events, read through syscalls (module docstring)."""

    async def relay(
        self, call: Call, session_id: str, keepalive_s: float, after: Cursor | None = None
    ) -> AsyncIterator[tuple[str, Any, Cursor | None] | None]:
        """The tenant's events after ``after`` (None: from now), as ``(event, data,
        cursor)`` (``lagged`` when the kernel let some go), and None after each
        ``keepalive_s`` of quiet. The cursor of now is taken before this returns, so no
        event after the call is missed."""
        start = await self.cursor(call, session_id) if after is None else after
        wait_ms = max(1, int(keepalive_s * 1000))

        async def events() -> AsyncIterator[tuple[str, Any, Cursor | None] | None]:
            cursor = start
            while True:
                page = await call(
                    "q_events",
                    {
                        "session_id": session_id,
                        "after": cursor.seq,
                        "after_sub": cursor.sub,
                        "limit": defaults.EVENTS_LIMIT,
                        "wait_ms": wait_ms,
                    },
                )
                if page.dropped:
                    yield "lagged", {"dropped": page.dropped}, None
                if not page.events:
                    yield None
                for event in page.events:  # framed as the kernel's own process frames it
                    if event["event"] == "spans":  # a worker's spans, for the tracer
                        continue
                    sub = event.pop("sub", 0)
                    yield event["event"], event, Cursor(event["seq"], sub)
                cursor = _cursor(page)

        return events()

    async def cursor(self, call: Call, session_id: str) -> Cursor:
        """The cursor of now in the tenant's feed (``q_events`` from now): its
        ``(cursor, cursor_sub)``."""
        params = {"session_id": session_id, "after": None, "limit": 1, "wait_ms": None}
        return _cursor(await call("q_events", params))

    async def records_while(
        self, call: Call, session_id: str, cursor: Cursor, running: asyncio.Future[Any]
    ) -> AsyncIterator[tuple[str, Any, int]]:
        """The tenant's records after ``cursor``, ``(event, record, seq)``, while
        ``running`` runs (each wait ends at the tenant's next record, or after
        :data:`RUNNING_POLL_MS` to look again), then those left once it is done."""
        while True:
            done = running.done()
            page = await call(
                "q_events",
                {
                    "session_id": session_id,
                    "after": cursor.seq,
                    "after_sub": cursor.sub,
                    "limit": defaults.EVENTS_LIMIT,
                    "wait_ms": None if done else RUNNING_POLL_MS,
                },
            )
            for event in page.events:
                yield event["event"], event["record"], event["seq"]
            cursor = _cursor(page)
            if done and len(page.events) < defaults.EVENTS_LIMIT:
                return


async def serve_gateway(
    kernel_address: str,
    server_config: ServerConfig,
    config: HttpConfig,
    *,
    exposure: Any = None,
    sock: socket.socket | None = None,
    max_graph_nodes: int,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event,
) -> None:
    """Serve the REST API of the kernel at ``kernel_address`` (its JSON-RPC socket) from
    this process  until ``stop`` is set, then drain.

    ``sock`` is the listening socket a supervisor passed (None: bind ``config``'s
    address). ``ready`` is called with the URL once it serves.

    Raises:
        ServeError, CommandError: the address cannot be bound, a TLS file cannot be
            loaded, a trace exporter cannot be made.
    """
    from qmk.abi.events import EventHub
    from qmk.http.app import create_app
    from qmk.http.metrics import Metrics
    from qmk.http.server import _first, _uvicorn_server, bind_tcp, check_tls
    from qmk.http.tracing import Tracing, make_provider

    check_tls(config)
    kernel = RemoteKernel(kernel_address)
    tracing = Tracing(make_provider(config.trace))
    follow = tracing.enabled or logging.getLogger("qmk.http.jobs").isEnabledFor(logging.INFO)
    probe = GatewayProbe(kernel, max_graph_nodes, follow=follow)
    door = GatewayDoor(kernel, server_config, probe=probe)
    if sock is None:
        sock = bind_tcp(config.host, config.port)
    hold_room(door, server_config)
    hub = EventHub(probe, asyncio.get_running_loop(), caps=door.streams)
    try:
        app = create_app(
            door,
            hub,
            Metrics(),
            tracing,
            exposure,
            watches=RemoteWatches(kernel),
            feed=RemoteFeed(),
            relay=door.relay,
        )
        server = _uvicorn_server(app, config, server_config, door)
        bound = sock.getsockname()
        url = f"{config.scheme}://{format_tcp(bound)}"
        try:
            async with serving(server, sock, door, stop) as started:
                if started and ready is not None:
                    ready(url)
                await stop.wait()
                hub.close()
        except Exception as exc:
            raise _first(exc) from None
    finally:
        hub.close()
        sock.close()
        if probe.follower is not None:
            await probe.follower.aclose()
        await kernel.aclose()
        tracing.shutdown()


@contextlib.asynccontextmanager
async def serving(
    server: Any, sock: socket.socket, door: Door, stop: asyncio.Event
) -> AsyncIterator[bool]:
    """A gateway's uvicorn ``server`` on the listening ``sock`` its supervisor handed
    down, each connection let in by ``door``'s acceptor: yields whether it started
    (before ``stop`` was set); on leaving, the acceptor stops and the server exits."""
    async with aio.TaskGroup() as group:
        http = group.create_task(server.serve(sockets=[sock]))
        while not server.started and not http.done() and not stop.is_set():
            await asyncio.sleep(0.01)

        def adopt(conn: socket.socket) -> None:
            group.create_task(server.adopt(conn))

        acceptor = Acceptor(door.connections, door.clock, adopt)
        if server.started:
            acceptor.start([sock], group.create_task)
        try:
            yield bool(server.started)
        finally:
            acceptor.stop()
            server.should_exit = True


def hold_room(door: Door, server_config: ServerConfig) -> None:
    """Give ``door`` the connections this process's descriptors leave room for, as the
    kernel's server gives its own (:func:`~qmk.abi.door.connection_room`): a gateway
    refuses a connection with a coded 503 before it runs out of descriptors.

    Raises:
        ServeError: ``too-few-descriptors``: no room is left for one connection.
    """
    room, how = connection_room(server_config)
    door.connections.set_room(room)
    _log.info(
        "at most %d connections (%s), %d per peer",
        room,
        how,
        server_config.max_connections_per_peer,
    )


def parent_gone(fd: int, stop: asyncio.Event) -> Callable[[], None]:
    """Set ``stop`` when the pipe ``fd`` (held open by a supervisor) reads end of file:
    the supervisor died, even by SIGKILL, and its gateway ends with it. Returns the
    call that stops watching."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    def stop_watching() -> None:
        loop.remove_reader(fd)

    loop.add_reader(fd, readable)
    return stop_watching


def listening_socket(fd: int) -> socket.socket:
    """The listening TCP socket a supervisor passed as ``fd`` (it keeps its port across
    restarts, and connections wait in its backlog while no gateway runs).

    Raises:
        ServeError: ``cannot-bind``: ``fd`` is no listening socket.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ServeError.of("cannot-bind", f"fd {fd}: not a socket: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _cursor(page: Any) -> Cursor:
    """The cursor a ``q_events`` reply gives: ``(cursor, cursor_sub)``, the pair the next
    call passes as ``after`` and ``after_sub`` (a device job's stream parts share the
    seq of the audit line before them: :mod:`qmk.kernel.syscalls.feed`)."""
    return Cursor(int(page.cursor), int(page.cursor_sub))


def _nothing() -> None:
    """Nothing to stop."""


__all__ = [
    "FOLLOWED",
    "FOLLOW_GATHER_S",
    "GatewayDoor",
    "GatewayProbe",
    "JobFollower",
    "RemoteFeed",
    "RemoteKernel",
    "RemoteWatch",
    "RemoteWatches",
    "event_of",
    "hold_room",
    "kernel_away",
    "listening_socket",
    "parent_gone",
    "serve_gateway",
]
