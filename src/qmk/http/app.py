"""The ASGI application: every route of :mod:`qmk.http.routes` on one kernel.

:func:`create_app` builds a Starlette application whose syscall handlers are all made
by one function from the route table and the method table: a handler reads the session
from ``Authorization: Bearer``, the params from the path, the query string (converted to
the param's JSON type) and the JSON body (within the size and nesting limits: the larger
limit only for a valid session, which the door checks before the body is read), checks
them against the method's table entry (:func:`qmk.abi.methods.bind_params`), calls the
syscall through the door (:mod:`qmk.abi.door`: program text is read there) and answers
its JSON, or a problem document (:mod:`qmk.http.problems`). Each request is its
connection's visitor at the door (the ASGI scope's ``qmk.visitor``, set by
:mod:`qmk.http.guard`; an application served without it makes one per request).
Unknown query or body params are refused (422), never ignored. :class:`App` hands a
syscall's request straight to its handler and every other request to Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from qmk import defaults
from qmk.abi.door import GRAPH_PARAM, Door, ProgramText, Visitor, peer_of_address
from qmk.abi.errors import InternalError, InvalidParams, InvalidRequest, MethodNotFound
from qmk.abi.events import PROGRESS_S, Call, EventHub, JobWatch
from qmk.abi.jsonrpc import (
    THREAD_BYTES,
    check_param_numbers,
    decode_soon_marked,
    encode,
    encode_parts,
)
from qmk.abi.methods import METHODS, JsonType, bind_params
from qmk.abi.probe import Cursor
from qmk.abi.probing import KernelProbe
from qmk.abi.replies import Checkpoint
from qmk.abi.server import chunks as in_chunks
from qmk.abi.watchhub import through
from qmk.errors import QMKError, SessionError, UnavailableError
from qmk.http import problems
from qmk.http.events import sse, sse_parts
from qmk.http.metrics import CONTENT_TYPE, Metrics, Scrapers
from qmk.http.openapi import openapi_document, render_docs
from qmk.http.programs import program_of
from qmk.http.routes import OTHER_ROUTES, SYSCALL_ROUTES, OtherRoute, SyscallRoute
from qmk.http.stream import (
    WRITE_ANSWER,
    EventStreamResponse,
    JsonAnswer,
    PartsResponse,
    json_response,
)
from qmk.http.tracing import Tracing
from qmk.qvm.graph import free_value_in_pieces

ACCESS = logging.getLogger("qmk.http.access")
JOBS = logging.getLogger("qmk.http.jobs")
LOG = logging.getLogger("qmk.http")

#: Seconds between the keep-alives of a tenant's stream (a job's progress: PROGRESS_S).
KEEPALIVE_S = 15.0
#: The console's files (package data of qmk.http.console), by the name they are served as.
CONSOLE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

#: What a handler answers: a Starlette response, or a syscall's JSON (:class:`JsonAnswer`).
Answer = Response | JsonAnswer
Handler = Callable[[Request], Awaitable[Answer]]

#: Headers every answer carries: the console runs only its own script (no inline code,
#: nothing from elsewhere), in no frame of another site; no answer is sniffed as another
#: type or leaks its URL as a referrer. (Inline styles stay allowed: the /docs page has
#: one ``<style>``; a style cannot run code.)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
        b"form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
#: :data:`SECURITY_HEADERS` as the header lines of a head written whole.
SECURITY_FIELDS = b"".join(name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS)
#: Host names every server answers: the loopback ones.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: Paths answered whatever the Host: a liveness probe and a Prometheus scrape send the
#: pod's or the service's address, and neither path serves a browser anything to rebind
#: (/metrics answers only a scraper holding CAP_OBSERVE).
ANY_HOST_PATHS = frozenset({"/healthz", "/metrics"})
#: The Host headers whose verdict an application keeps (a client's few names, not the
#: names a client may make up: those past it are judged each time).
HOSTS_KEPT = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Exposure:
    """Who the HTTP API answers, beyond its routes' own checks.

    Attributes:
        hosts: the Host names (lower case, no port) it answers; another is 421 (but
            :data:`ANY_HOST_PATHS`). Empty: any (an application made without one).
    """

    hosts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, allowed_hosts: Iterable[str], bind_host: str) -> Exposure:
        """The exposure of a server bound to ``bind_host``: the loopback names, that host
        (as written: ``0.0.0.0`` is the URL ``qmk serve`` prints for it) and
        ``allowed_hosts`` (the kernel's ``[http]`` table, or a gateway's ``--allowed-host``)."""
        names = {*LOOPBACK_HOSTS, *(h.lower() for h in allowed_hosts)}
        names.add(bind_host.strip("[]").lower())
        names.discard("")
        return cls(hosts=frozenset(names))

    def allows(self, host_header: bytes | None) -> bool:
        """Whether a request with this ``Host`` header is answered (none: yes)."""
        if not self.hosts or host_header is None:
            return True
        text = host_header.decode("latin-1").strip().lower()
        if text.startswith("["):  # [v6]:port
            name = text[1:].partition("]")[0]
        else:
            name = text.rpartition(":")[0] if text.count(":") == 1 else text
        return name in self.hosts


def console_facts(probe: KernelProbe) -> bytes:
    """What the web console reads at start (``/console/facts.json``): the shots of a job
    that names none, and a job's states and which of them are final, as the kernel has them.

    >>> import json
    >>> from types import SimpleNamespace
    >>> probe = SimpleNamespace(states=("QUEUED", "COMPLETED"), final_states=("COMPLETED",))
    >>> facts = json.loads(console_facts(probe))
    >>> facts["shots"] == defaults.SHOTS, facts["final_states"]
    (True, ['COMPLETED'])
    """
    return encode(
        {
            "shots": defaults.SHOTS,
            "states": list(probe.states),
            "final_states": list(probe.final_states),
        }
    )


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return json_response(data, status, headers)  # a big result in chunks (qmk.http.stream)


def _no_route(method: str, path: str) -> MethodNotFound:
    """The refusal of a request no route takes, naming the closest route of its method
    (a removed syscall's route is told where its replacement is)."""
    from qmk.errors import closest

    routes = {r.path: r.syscall for r in SYSCALL_ROUTES if r.method == method}
    # the other routes too (GraphQL, health, ...): ``POST /graphql`` is told of /v1/graphql
    routes.update({r.path: r.name for r in OTHER_ROUTES if r.method == method})
    near = closest(path, routes)
    if near is None:
        return MethodNotFound(f"no route {method} {path}")
    name = routes[near]
    other = next((r for r in OTHER_ROUTES if r.path == near and r.method == method), None)
    doc = (other.summary if other else METHODS[name].doc).split(";")[0]
    return MethodNotFound(
        f"no route {method} {path}; did you mean {method} {near} ({name}: {doc})?",
        closest=f"{method} {near}",
    )


def _big_body(request: Request) -> bool:
    """Whether the request's body (its ``content-length``) was decoded in a thread."""
    length = request.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) >= THREAD_BYTES


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise SessionError(
            "no session: send Authorization: Bearer <session_id> (POST /v1/sessions opens one)"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SessionError("the Authorization header must be 'Bearer <session_id>'")
    return token.strip()


def _last_event_id(request: Request) -> Cursor | None:
    """The cursor a reconnecting event stream sends back (``Last-Event-ID``: the ``id``
    of the last event it had, ``SEQ`` or ``SEQ-SUB``; None: none sent).

    Raises:
        InvalidRequest: the header is not such an id (400 ``invalid-request``).
    """
    header = request.headers.get("last-event-id")
    if header is None or not header.strip():
        return None
    try:
        return Cursor.parse(header.strip())
    except ValueError as exc:
        raise InvalidRequest(f"Last-Event-ID {exc}", header="Last-Event-ID") from None


def _query_value(name: str, types: tuple[JsonType, ...], text: str) -> Any:
    """A query string value as the param's JSON type."""
    if text == "null" and JsonType.NULL in types:
        return None
    if JsonType.INTEGER in types:
        try:
            return int(text)
        except ValueError:
            pass
    if JsonType.NUMBER in types:
        try:
            return float(text)
        except ValueError:
            pass
    if JsonType.BOOLEAN in types and text in ("true", "false"):
        return text == "true"
    if JsonType.STRING in types:
        return text
    kinds = " | ".join(t.value for t in types)
    raise InvalidParams(f"query param {name!r} must be {kinds}, got {text!r}", param=name)


class Api:
    """The handlers of one application, and what they share.

    Args:
        door: the door (:class:`qmk.abi.door.Door`): the kernel's syscalls, its limits;
            the application times (``metrics``) and traces (``tracing``) its calls.
        hub: the kernel's events (live streams, recent audit entries).
        metrics: the metrics (requests and syscalls are observed in it).
        tracing: the tracer (a no-op when tracing is off).
        exposure: who it answers (the Host names).
        watches: where a job's live events come from when the kernel is in another
            process (:class:`qmk.gateway.http.RemoteWatches`); None: ``hub``.
        feed: where the tenant's events come from when the kernel is in another
            process (:class:`qmk.gateway.http.RemoteFeed`: ``q_events``); None: ``hub``.
            ``/metrics`` reads the kernel's load with ``q_kernel_load`` either way
            (:class:`~qmk.http.metrics.Scrapers`).
        relay: how a syscall route calls the door when the kernel is in another process
            and its reply is only passed on (:meth:`qmk.gateway.http.GatewayDoor.relay`:
            the kernel's JSON, sent as it came); None: ``door.call``.
    """

    def __init__(
        self,
        door: Door,
        hub: EventHub,
        metrics: Metrics,
        tracing: Tracing,
        exposure: Exposure | None = None,
        watches: Any = None,
        feed: Any = None,
        relay: Any = None,
    ) -> None:
        self.door = door
        self.watches = watches
        self.feed = feed
        self.relay = relay
        self.kernel = door.kernel
        self.hub = hub
        self.metrics = metrics
        self.tracing = tracing
        self.exposure = exposure or Exposure()
        self.scrapers = Scrapers()
        self.final_states = frozenset(hub.probe.final_states)
        self.openapi = encode(openapi_document())
        self.docs = render_docs(openapi_document()).encode()
        self.console = {
            name: (resources.files("qmk.http.console").joinpath(name).read_bytes(), media)
            for name, media in CONSOLE_FILES.items()
        }
        # the facts the console's script reads at start, from their tables, not its own copy
        self.console["facts.json"] = (console_facts(hub.probe), "application/json")
        hub.on_event(self._log_event)  # before the tracer, which forgets a job that ends
        hub.on_event(tracing.on_event)
        door.observe(metrics.observe_rpc)  # every wire's calls, by the wire's name
        if tracing.enabled:
            door.trace(tracing.call)
        self._graphql_executor: Any = None

    # ------------------------------------------------------------------ shared

    def visitor(self, request: Request) -> Visitor:
        """The request's visitor at the door: its connection's (:mod:`qmk.http.guard`),
        or one of its own where no guard runs (an application in-process)."""
        visitor = request.scope.get("qmk.visitor")
        if visitor is None:
            visitor = self.door.visitor("http", peer_of_address(request.scope.get("client")))
            request.scope["qmk.visitor"] = visitor
        return cast(Visitor, visitor)

    def calls(self, request: Request) -> Call:
        """The syscalls as ``request`` makes them: through the door, as its visitor."""
        return through(self.door, self.visitor(request))

    async def body(self, request: Request, authenticated: bool) -> Any:
        """The request's JSON body (None when empty), within the door's limit: the
        larger one only for a request whose session was checked (``authenticated``)."""
        return (await self.marked_body(request, authenticated))[0]

    async def marked_body(self, request: Request, authenticated: bool) -> tuple[Any, bool]:
        """:meth:`body`, and whether it may hold a number out of range (as JSON-RPC's
        line: :func:`~qmk.abi.jsonrpc.check_param_numbers` then names the field)."""
        limit = self.door.size_limit(authenticated)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise problems.too_large(limit)
        media = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if media and media != "application/json" and not media.endswith("+json"):
            raise problems.HttpStatus(
                415, InvalidRequest(f"the body must be application/json, not {media}")
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise problems.too_large(limit)
                chunks.append(chunk)
        except ClientDisconnect:  # it went, or its body timed out (qmk.http.guard)
            raise problems.HttpStatus(
                408, UnavailableError("the client left before its body arrived", reason="gone")
            ) from None
        data = b"".join(chunks)
        if not data.strip():
            return None, False
        return await decode_soon_marked(data, max_depth=self.door.config.max_depth)

    def _log_event(self, event: Any) -> None:
        if event.is_job and JOBS.isEnabledFor(logging.INFO):
            JOBS.info(
                "job %s %s",
                event.job_id,
                event.state,
                extra={
                    "job_id": event.job_id,
                    "tenant": event.tenant,
                    "state": event.state,
                    "trace_id": self.tracing.trace_id_of(event.job_id)
                    or self.tracing.current_trace_id(),
                },
            )

    def wrap(self, route_path: str, handler: Handler) -> Handler:
        """``handler`` with its span, its metrics, its access line and its errors."""
        tracing, metrics = self.tracing, self.metrics

        async def answered(request: Request) -> Answer:
            try:
                return await handler(request)
            except QMKError as exc:
                return problems.response(exc, request.url.path)
            except problems.HttpStatus as exc:
                return problems.response(exc.error, request.url.path, status=exc.status)
            except Exception as exc:
                incident = secrets.token_hex(6)
                LOG.error(
                    "internal error (incident %s)",
                    incident,
                    exc_info=exc,
                    extra={"incident": incident},
                )
                error = InternalError(
                    f"the server failed while handling the request (incident {incident})",
                    incident=incident,
                )
                return problems.response(error, request.url.path)

        async def endpoint(request: Request) -> Answer:
            start = time.perf_counter()
            trace_id = None
            if tracing.enabled:
                with tracing.request(request.method, route_path, request.headers) as carrier:
                    response = await answered(request)
                    carrier["status"] = str(response.status_code)
                    if "traceparent" in carrier:
                        response.headers["traceparent"] = carrier["traceparent"]
                    trace_id = tracing.current_trace_id()
            else:  # no span: not even a context manager's frames
                response = await answered(request)
            metrics.observe_request(route_path, response.status_code)
            if ACCESS.isEnabledFor(logging.INFO):
                _access_line(request, route_path, response, start, trace_id)
            return response

        return endpoint

    # ------------------------------------------------------------------ syscalls

    def syscall_handler(self, route: SyscallRoute) -> Handler:
        """The handler of one syscall route."""
        spec = route.spec
        needs_session = spec.needs_session
        query = {name: spec.param(name).types for name in route.query}
        body_names = frozenset(route.body)
        if route.program:
            body_names = (body_names - {"graph"}) | {"program", "format"}
        path_params = route.path_params
        fixed = dict(route.fixed)
        locates = route.status == 201 and spec.reply is not Checkpoint  # a created job

        door = self.door
        call = self.relay or door.call

        async def handler(request: Request) -> Answer:
            visitor = self.visitor(request)
            params: dict[str, Any] = {}
            tenant = None
            if needs_session:  # a bad bearer is refused before the body is read
                params["session_id"] = _bearer(request)
                tenant = await door.tenant_of(visitor, params["session_id"])
            for name in path_params:
                params[name] = request.path_params[name]
            query_string = request.scope.get("query_string")
            for name, text in request.query_params.items() if query_string else ():
                types = query.get(name)
                if types is None:
                    raise InvalidParams(
                        f"{request.method} {route.path}: unknown query param {name!r}"
                        + (f"; it takes {', '.join(query)}" if query else ""),
                        param=name,
                    )
                params[name] = _query_value(name, types, text)
            suspect = False
            if body_names:
                body, suspect = await self.marked_body(request, tenant is not None)
                if body is not None and not isinstance(body, dict):
                    raise InvalidParams("the body must be a JSON object")
                for name, value in (body or {}).items():
                    if name not in body_names:
                        raise InvalidParams(
                            f"{request.method} {route.path}: unknown body field {name!r}; it "
                            f"takes {', '.join(sorted(body_names))}",
                            param=name,
                        )
                    params[name] = value
            if suspect:  # before the types: 10**20 decoded as an infinity is out of range
                check_param_numbers(spec, params)
            program: ProgramText | None = None
            if route.program:
                if "program" not in params:
                    raise InvalidParams("missing required field 'program'", param="program")
                found = program_of(params.pop("program"), params.pop("format", None))
                if isinstance(found, ProgramText):
                    program, params[GRAPH_PARAM] = found, {}  # the door reads it in its place
                else:
                    params[GRAPH_PARAM] = found
                key = request.headers.get("idempotency-key")
                if key is not None and params.get("idempotency_key") is None:
                    params["idempotency_key"] = key
            params.update(fixed)
            bound = bind_params(spec, params)
            try:
                result = await call(visitor, spec.name, bound, program=program)
            finally:
                graph = params.get(GRAPH_PARAM)
                if type(graph) is dict and _big_body(request):  # answered: freed off the loop
                    await asyncio.to_thread(free_value_in_pieces, graph)
            return _json(result, route.status, _result_headers(result, locates))

        return handler

    # ------------------------------------------------------------------ the others

    async def _tenant(self, request: Request, session_id: str) -> str:
        """The session's tenant, checked by the door before any work."""
        return await self.door.tenant_of(self.visitor(request), session_id)

    async def job_events(self, request: Request) -> Response:
        """``GET /v1/jobs/{job_id}/events``: its states, progress, then its result; a
        reconnecting client's ``Last-Event-ID`` resumes past that event."""
        watch: Any
        after = _last_event_id(request)
        job_id = request.path_params["job_id"]
        if self.watches is not None:  # the kernel's q_watch, in the gateway
            await self._tenant(request, _bearer(request))
            watch = await self.watches.open(_bearer(request), job_id, after=after)
        else:
            calls = self.calls(request)
            watch = await JobWatch.open(
                calls, self.hub, _bearer(request), job_id, PROGRESS_S, after=after
            )

        async def events() -> Any:
            try:
                async for name, data, cursor in watch:
                    if name == "result":  # a big result goes out in bounded pieces
                        for chunk in in_chunks(sse_parts(name, data)):
                            yield chunk
                    else:
                        yield sse(name, data, cursor)
            except QMKError as exc:  # e.g. the session expired while it watched
                yield sse("error", problems.problem_of(exc, request.url.path))

        return EventStreamResponse(events(), watch.close)

    async def tenant_events(self, request: Request) -> Response:
        """``GET /v1/events``: every event of the tenant, as it happens; a reconnecting
        client's ``Last-Event-ID`` resumes past that event."""
        after = _last_event_id(request)
        session_id = _bearer(request)
        tenant = await self._tenant(request, session_id)
        if self.feed is not None:
            return await self._relayed_events(request, session_id, tenant, after)
        stream = self.hub.open(tenant, session=session_id)
        # the events past the cursor the hub kept, taken before the first await: the
        # stream (open now) has every later one
        missed = None if after is None else self.hub.since(after, tenant)

        async def events() -> Any:
            seen = after
            try:
                yield sse("hello", {"tenant": tenant})
                if after is not None and missed is None:
                    yield sse("lagged", {"dropped": None})
                for past in missed or ():
                    seen = past.cursor
                    yield sse(past.event, past.to_json(), seen)
                while True:
                    event = await stream.get(KEEPALIVE_S)
                    if stream.lagged:
                        yield sse("lagged", {"dropped": stream.lagged})
                        stream.lagged = 0
                    if event is None:
                        if stream.closed:
                            return
                        yield b": keep-alive\n\n"
                        continue
                    if seen is not None and event.cursor <= seen:
                        continue  # given already, from the recent events
                    yield sse(event.event, event.to_json(), event.cursor)
            finally:
                self.hub.close_stream(stream)

        return EventStreamResponse(events(), lambda: self.hub.close_stream(stream))

    async def _relayed_events(
        self, request: Request, session_id: str, tenant: str, after: Cursor | None
    ) -> Response:
        """``GET /v1/events`` of a kernel in another process: its ``q_events`` from the
        cursor ``after`` (None: of now), as :attr:`feed` relays them; the stream counts
        as the hub's do."""
        stream = self.hub.open(tenant, session=session_id)
        try:
            relay = await self.feed.relay(self.calls(request), session_id, KEEPALIVE_S, after)
        except BaseException:
            self.hub.close_stream(stream)
            raise

        async def events() -> Any:
            try:
                yield sse("hello", {"tenant": tenant})
                async for item in relay:
                    if item is None:
                        yield b": keep-alive\n\n"
                    else:
                        yield sse(*item)
            except QMKError as exc:  # e.g. the session expired, the kernel went away
                yield sse("error", problems.problem_of(exc, request.url.path))
            finally:
                self.hub.close_stream(stream)

        return EventStreamResponse(events(), lambda: self.hub.close_stream(stream))

    async def assist(self, request: Request) -> Response:
        """``POST /v1/assist``: the assistant's steps (the kernel's ``assist`` audit lines
        of this call) as they happen, then its answer."""
        session_id = _bearer(request)
        tenant = await self._tenant(request, session_id)  # the session first, then the body
        body = await self.body(request, authenticated=True)
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            raise InvalidParams("the body is {prompt, program?}", param="prompt")
        unknown = sorted(set(body) - {"prompt", "program"})
        if unknown:
            raise InvalidParams(f"unknown field {unknown[0]!r}; it takes prompt, program")
        assist_id = uuid.uuid4().hex
        call = self.calls(request)
        stream = self.hub.open(tenant, session=session_id)
        try:  # the feed's cursor of now, before the question is asked
            cursor = None if self.feed is None else await self.feed.cursor(call, session_id)
        except BaseException:
            self.hub.close_stream(stream)
            raise
        params = {
            "session_id": session_id,
            "prompt": body["prompt"],
            "program": body.get("program"),
            "assist_id": assist_id,
        }
        task = asyncio.ensure_future(call("q_assist", params))

        async def heard() -> Any:
            """The tenant's records, ``(event, record, seq)``, while the question runs and
            those left once it is answered (the kernel's own feed in a gateway)."""
            if self.feed is not None:
                async for item in self.feed.records_while(call, session_id, cursor, task):
                    yield item
                return
            while not task.done() or stream.pending():
                event = await stream.get(0.05 if task.done() else KEEPALIVE_S)
                if event is None:
                    if stream.closed:
                        return
                    continue
                yield event.event, event.record, event.seq

        async def events() -> Any:
            try:
                try:
                    async for name, record, seq in heard():
                        if name == "assist" and record.get("assist_id") == assist_id:
                            yield sse("step", record, seq)
                    if not task.done():  # the server stops
                        return
                    yield sse("result", task.result())
                except QMKError as exc:
                    yield sse("error", problems.problem_of(exc, request.url.path))
            finally:
                task.cancel()

        return EventStreamResponse(events(), lambda: self.hub.close_stream(stream))

    async def metrics_route(self, request: Request) -> Response:
        """``GET /metrics``: the kernel's load and job counters (``q_kernel_load``, as the
        scraper, who needs ``CAP_OBSERVE``), and this application's own requests and
        syscall latencies."""
        authorization = request.headers.get("authorization")
        load = await self.scrapers.load(self.calls(request), authorization)
        return Response(self.metrics.exposition(load), media_type=CONTENT_TYPE)

    async def health(self, request: Request) -> Answer:
        return _json({"status": "ok"})

    async def openapi_route(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")

    async def docs_route(self, request: Request) -> Response:
        return Response(self.docs, media_type="text/html; charset=utf-8")

    async def console_route(self, request: Request) -> Response:
        data, media = self.console["index.html"]
        return Response(data, media_type=media, headers={"cache-control": "no-cache"})

    async def static(self, request: Request) -> Response:
        found = self.console.get(request.path_params["name"])
        if found is None:
            raise MethodNotFound(f"no console file {request.path_params['name']!r}")
        return Response(found[0], media_type=found[1], headers={"cache-control": "no-cache"})

    # ------------------------------------------------------------------ GraphQL

    def _graphql(self) -> Any:
        """The GraphQL executor (:mod:`qmk.http.graphql`), made on first use.

        Raises:
            UnavailableError: strawberry-graphql is not installed (the http extra has it).
        """
        if self._graphql_executor is None:
            try:
                from qmk.http.graphql import GraphQL, Limits
            except ImportError as exc:
                raise UnavailableError(
                    "GraphQL needs strawberry-graphql (pip install "
                    f"'quantum-microkernel[http]'): {exc}"
                ) from None
            self._graphql_executor = GraphQL(Limits.of(self.door.config))
        return self._graphql_executor

    async def graphql(self, request: Request) -> Response:
        """``POST /v1/graphql``: a read-only GraphQL query of the session's tenant."""
        session_id = _bearer(request)
        tenant = await self._tenant(request, session_id)  # a bad session: 401, before any parsing
        body = await self.body(request, True)
        if not isinstance(body, dict):
            raise InvalidParams('the body must be a JSON object {"query", "variables"}')
        unknown = sorted(set(body) - {"query", "variables", "operationName", "extensions"})
        if unknown:
            raise InvalidParams(
                f"unknown body field {unknown[0]!r}; it takes query, variables, operationName",
                param=unknown[0],
            )
        query, variables, operation = (
            body.get("query"),
            body.get("variables"),
            body.get("operationName"),
        )
        if not isinstance(query, str) or not query.strip():
            raise InvalidParams("query must be a GraphQL document (a string)", param="query")
        if variables is not None and not isinstance(variables, dict):
            raise InvalidParams("variables must be an object or null", param="variables")
        if operation is not None and not isinstance(operation, str):
            raise InvalidParams("operationName must be a string or null", param="operationName")
        answer = await self._graphql().execute(
            self.calls(request), session_id, query, variables, operation
        )
        # the answer is held whole until sent: one of the door's held answers, as a gRPC
        # message is (max_held_answer_bytes, all calls together)
        parts = encode_parts(answer)
        parts.pop()  # the line's newline
        held = await self.door.answers.hold(sum(map(len, parts)), self.visitor(request))
        return PartsResponse(
            parts,
            headers={"x-qmk-tenant": tenant},
            media_type="application/json",
            release=held.release,
        )

    async def graphql_schema(self, request: Request) -> Response:
        """``GET /v1/graphql/schema``: the schema's SDL."""
        return Response(self._graphql().sdl(), media_type="text/plain; charset=utf-8")


class App:
    """The ASGI application: a syscall's request goes straight to its handler, the rest
    through Starlette.

    Starlette alone passes every request through its error and exception middleware and
    tries the routes one by one (about a dozen regular expressions before
    ``/v1/jobs/{id}/wait``). The syscall handlers catch every error themselves
    (:meth:`Api.wrap`), so for a request whose method and path are a syscall route's the
    route is looked up among the routes of that method only, in Starlette's order (the
    same route Starlette would pick; a route's expression is tried only on a path that
    starts with its literal head), and its handler called with the path params. A
    request that is no syscall's (another route, HEAD, a wrong method, an unknown path,
    a mounted root path) goes to Starlette, which answers it as before.

    Attributes:
        starlette: the Starlette application (every route, the 404 and 405 problems).
        state: its state (``state.api``: the :class:`Api`).
    """

    def __init__(
        self, starlette: Starlette, syscalls: list[Route], exposure: Exposure | None = None
    ) -> None:
        self.starlette = starlette
        self.state = starlette.state
        self.exposure = exposure or Exposure()
        self.scrapers = Scrapers()
        #: The verdicts on the Host headers seen (at most :data:`HOSTS_KEPT`).
        self._hosts: dict[bytes | None, bool] = {}
        #: By method, each route's literal head (its path up to its first param: a path
        #: that does not start with it is not tried against its expression), the route,
        #: and whether it is a syscall's.
        self._routes: dict[str, list[tuple[str, Route, bool]]] = {}
        for route in starlette.routes:
            if not isinstance(route, Route):
                continue
            head = route.path_format.partition("{")[0]
            for method in sorted(route.methods or ()):
                if method != "HEAD":  # Starlette's own answer to HEAD (no body)
                    direct = any(route is syscall for syscall in syscalls)
                    self._routes.setdefault(method, []).append((head, route, direct))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
            allowed = self._hosts.get(host)
            if allowed is None:
                allowed = self.exposure.allows(host)
                if len(self._hosts) < HOSTS_KEPT:
                    self._hosts[host] = allowed
            if not allowed and scope["path"] not in ANY_HOST_PATHS:
                name = (host or b"").decode("latin-1")[:100]
                error = InvalidRequest(
                    f"Host {name!r} is not a name this server answers (the loopback "
                    "names, the --http host and http.allowed_hosts)"
                )
                response = problems.response(error, scope["path"], status=421)
                await response(scope, receive, _secured(send))
                return
            send = _secured(send)
        await self._route(scope, receive, send)

    async def _route(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path = scope["path"]
            for head, route, direct in self._routes.get(scope["method"], ()):
                if not path.startswith(head):
                    continue
                found = route.path_regex.match(path)
                if found is None:
                    continue
                if not direct:
                    break  # another route's: Starlette serves it
                convert = route.param_convertors
                scope["app"] = self.starlette
                scope["path_params"] = {
                    name: convert[name].convert(value) for name, value in found.groupdict().items()
                }
                response = await route.endpoint(Request(scope, receive, send))
                if type(response) is JsonAnswer:  # head and body in one write, if it can
                    write = scope.get(WRITE_ANSWER)
                    fields = response.fields()
                    if (
                        write is not None
                        and fields is not None
                        and write(response.status_code, fields + SECURITY_FIELDS, response.body)
                    ):
                        return
                await response(scope, receive, send)
                return
        await self.starlette(scope, receive, send)


def _secured(send: Any) -> Any:
    """``send`` that adds :data:`SECURITY_HEADERS` to the answer's start."""

    async def secured(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
        await send(message)

    return secured


def create_app(
    door: Door,
    hub: EventHub,
    metrics: Metrics,
    tracing: Tracing,
    exposure: Exposure | None = None,
    watches: Any = None,
    feed: Any = None,
    relay: Any = None,
) -> App:
    """The application serving the kernel behind ``door`` (see the module docstring and
    :class:`App`; ``watches``, ``feed``, ``relay``: :class:`Api`'s)."""
    api = Api(door, hub, metrics, tracing, exposure, watches, feed, relay)
    others: dict[str, Handler] = {
        "assist": api.assist,
        "job_events": api.job_events,
        "tenant_events": api.tenant_events,
        "metrics": api.metrics_route,
        "health": api.health,
        "openapi": api.openapi_route,
        "docs": api.docs_route,
        "console": api.console_route,
        "static": api.static,
        "graphql": api.graphql,
        "graphql_schema": api.graphql_schema,
    }
    routes: list[Route] = []
    for other in OTHER_ROUTES:  # before the syscalls: /v1/jobs/{id}/events is not a job id
        routes.append(_route(api, other.path, other.method, others[other.name], other))
    syscalls = []
    for route in SYSCALL_ROUTES:
        syscalls.append(_route(api, route.path, route.method, api.syscall_handler(route), None))
    routes += syscalls

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        if status == 405:
            error = MethodNotFound(f"{request.method} is not a method of {request.url.path}")
        else:
            error = _no_route(request.method, request.url.path)
        return problems.response(error, request.url.path, status=status)

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.api = api
    return App(app, syscalls, exposure)


def _route(api: Api, path: str, method: str, handler: Handler, other: OtherRoute | None) -> Route:
    return Route(path, api.wrap(path, handler), methods=[method], include_in_schema=False)


def _access_line(
    request: Request, route: str, response: Answer, start: float, trace_id: str | None
) -> None:
    """The access line of ``request`` (``qmk.http.access``), answered ``response``
    ``start`` (``perf_counter``) ago."""
    method, status = request.method, response.status_code
    scope = request.scope
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")  # its URL's
    took_ms = (time.perf_counter() - start) * 1000
    ACCESS.info(
        "%s %s %d %.2f ms",
        method,
        path,
        status,
        took_ms,
        extra={
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(took_ms, 3),
            "job_id": scope.get("path_params", {}).get("job_id")
            or response.headers.get("x-qmk-job-id"),
            "tenant": response.headers.get("x-qmk-tenant"),
            "trace_id": trace_id,
        },
    )


def _result_headers(result: Any, locates: bool) -> dict[str, str]:
    """The headers a syscall's reply adds: its job and tenant, and where a created job
    lives (``locates``: the reply is a job the call created)."""
    headers: dict[str, str] = {}
    job_id, tenant = getattr(result, "job_id", None), getattr(result, "tenant", None)
    if isinstance(job_id, str):
        headers["x-qmk-job-id"] = job_id
        if locates:
            headers["location"] = f"/v1/jobs/{job_id}"
    if isinstance(tenant, str):
        headers["x-qmk-tenant"] = tenant
    return headers
