"""THE table of REST routes: one per qSyscall (derived from the method table), and the rest.

A syscall route says only how HTTP carries the method: its verb and path, which params
come from the path, the query or the body, and the status of a success. The params
themselves (names, JSON types, required, defaults, docs) are read from
:data:`qmk.abi.methods.METHODS`; the application's handlers, the OpenAPI document and
``docs/http.md`` are derived from both. ``session_id`` always travels as
``Authorization: Bearer <session_id>``.

>>> ROUTE_OF["q_wait"].path, ROUTE_OF["q_wait"].query
('/v1/jobs/{job_id}/wait', ('timeout_ms',))
>>> sorted(set(METHODS) - {r.syscall for r in SYSCALL_ROUTES})
[]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qmk.abi.methods import METHODS, MethodSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class SyscallRoute:
    """How one qSyscall travels over HTTP.

    Attributes:
        syscall: the method's name in :data:`METHODS`.
        method: the HTTP verb.
        path: the path template; its ``{names}`` are params of the method.
        status: the status of a success (201 where the call creates something).
        body: params read from the JSON body (GET and DELETE have none).
        fixed: params the route sets itself (e.g. ``job_id`` null: the tenant's whole
            telemetry).
        tag: the OpenAPI tag that groups it.
        summary: overrides the method's doc line where the route is one of two.
        program: the ``graph`` param travels as ``program`` (QVM JSON, or the text of
            another language) with ``format`` (:mod:`qmk.http.programs` lowers it).
    """

    syscall: str
    method: str
    path: str
    status: int = 200
    body: tuple[str, ...] = ()
    fixed: tuple[tuple[str, object], ...] = ()
    tag: str = "jobs"
    summary: str | None = None
    program: bool = False

    @property
    def spec(self) -> MethodSpec:
        """The method's entry in the method table."""
        return METHODS[self.syscall]

    @property
    def path_params(self) -> tuple[str, ...]:
        """The params the path carries, in order."""
        return tuple(
            part[1:-1] for part in self.path.split("/") if part.startswith("{") and part[-1] == "}"
        )

    @property
    def query(self) -> tuple[str, ...]:
        """The params the query string carries: every param not in the path, the body,
        ``fixed`` or the session."""
        taken = {"session_id", *self.path_params, *self.body, *(name for name, _ in self.fixed)}
        return tuple(p.name for p in self.spec.params if p.name not in taken)

    @property
    def operation_id(self) -> str:
        """The OpenAPI operationId: the syscall, or ``syscall_for_job`` for a second route."""
        return self.syscall if not self.fixed else f"{self.syscall}_tenant"


def _body(syscall: str, *, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every param of ``syscall`` but the session and ``exclude``, for a JSON body."""
    return tuple(p.name for p in METHODS[syscall].params if p.name not in ("session_id", *exclude))


def _r(syscall: str, method: str, path: str, **options: Any) -> SyscallRoute:
    return SyscallRoute(syscall=syscall, method=method, path=path, **options)


_JOB = "/v1/jobs/{job_id}"
_CHANNEL = "/v1/channels/{channel_id}"

#: The route of every qSyscall (q_get_telemetry has two: a job's, and the tenant's).
SYSCALL_ROUTES: tuple[SyscallRoute, ...] = tuple(
    route
    for route in (
        _r(
            "q_negotiate_caps",
            "POST",
            "/v1/sessions",
            status=201,
            body=_body("q_negotiate_caps"),
            tag="sessions",
        ),
        # the program travels as "program" (QVM JSON, or source text with "format"):
        # qmk.http.programs lowers it to the "graph" the syscall takes
        _r("q_submit", "POST", "/v1/jobs", status=201, body=_body("q_submit"), program=True),
        _r("q_list_jobs", "GET", "/v1/jobs"),
        _r("q_status", "GET", _JOB),
        _r("q_wait", "GET", f"{_JOB}/wait"),
        _r("q_get_result", "GET", f"{_JOB}/result"),
        _r("q_cancel", "DELETE", _JOB),
        _r("q_checkpoint", "POST", f"{_JOB}/checkpoints", status=201),
        _r("q_restore", "POST", f"{_JOB}/restore", body=("checkpoint_id",)),
        _r("q_replay", "POST", f"{_JOB}/replay", status=201),
        _r("q_get_telemetry", "GET", f"{_JOB}/telemetry", tag="telemetry"),
        _r(
            "q_get_telemetry",
            "GET",
            "/v1/telemetry",
            fixed=(("job_id", None),),
            tag="telemetry",
            summary="the tenant's aggregate telemetry",
        ),
        _r("q_device_artifacts", "GET", f"{_JOB}/artifacts", tag="devices"),
        _r(
            "q_open_chan",
            "POST",
            "/v1/channels",
            status=201,
            body=_body("q_open_chan"),
            tag="channels",
        ),
        _r("q_list_channels", "GET", "/v1/channels", tag="channels"),
        _r("q_chan_status", "GET", _CHANNEL, tag="channels"),
        _r("q_close_chan", "DELETE", _CHANNEL, tag="channels"),
        _r("q_resource_query", "GET", "/v1/resources", tag="machine"),
        _r("q_machine_status", "GET", "/v1/machine", tag="machine"),
        _r(
            "q_calibrate",
            "POST",
            "/v1/calibration",
            body=_body("q_calibrate"),
            tag="machine",
        ),
        _r(
            "q_delegate_caps",
            "POST",
            "/v1/delegations",
            status=201,
            body=_body("q_delegate_caps"),
            tag="sessions",
        ),
        _r("q_list_delegations", "GET", "/v1/delegations", tag="sessions"),
        _r("q_revoke_delegation", "DELETE", "/v1/delegations/{delegation_id}", tag="sessions"),
        # the answer at once; POST /v1/assist streams the steps as they happen
        _r("q_assist", "POST", "/v1/assist/answer", body=_body("q_assist"), tag="assist"),
        _r("q_usage", "GET", "/v1/usage", tag="billing"),
        # one page of the tenant's records after a cursor; GET /v1/events streams them
        _r("q_events", "GET", "/v1/feed", tag="telemetry"),
        _r("q_audit", "GET", "/v1/audit", tag="telemetry"),
        _r("q_kernel_load", "GET", "/v1/kernel/load", tag="machine"),
        _r(
            "q_create_trigger",
            "POST",
            "/v1/triggers",
            status=201,
            body=_body("q_create_trigger"),
            tag="workflows",
        ),
        _r("q_list_triggers", "GET", "/v1/triggers", tag="workflows"),
        _r("q_delete_trigger", "DELETE", "/v1/triggers/{trigger_id}", tag="workflows"),
    )
    if route.syscall in METHODS  # a syscall not (yet) in the table has no route
)

#: The first route of each syscall, by name.
ROUTE_OF: Mapping[str, SyscallRoute] = MappingProxyType(
    {route.syscall: route for route in reversed(SYSCALL_ROUTES) if not route.fixed}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherRoute:
    """A route that is no syscall: live events, the audit entries, metrics, docs, console.

    Attributes:
        name: the handler's name in :mod:`qmk.http.app`.
        method, path: as for a syscall route.
        summary: one line for the docs.
        media: the media type of a success.
        session: it needs ``Authorization: Bearer``.
        query: (name, JSON type, doc) of its query params.
        tag: the OpenAPI tag (None: not in the OpenAPI document, e.g. static files).
    """

    name: str
    method: str
    path: str
    summary: str
    media: str = "application/json"
    session: bool = False
    query: tuple[tuple[str, str, str], ...] = ()
    tag: str | None = "service"


#: Every route that is not a syscall.
OTHER_ROUTES: tuple[OtherRoute, ...] = (
    OtherRoute(
        name="assist",
        method="POST",
        path="/v1/assist",
        summary="ask the assistant (body: prompt, program): each step as a Server-Sent "
        "Event (step), then the answer (result) or the refusal (error)",
        media="text/event-stream",
        session=True,
        tag="assist",
    ),
    OtherRoute(
        name="job_events",
        method="GET",
        path=f"{_JOB}/events",
        summary="a job's Server-Sent Events: its state changes, progress, then its result",
        media="text/event-stream",
        session=True,
        tag="jobs",
    ),
    OtherRoute(
        name="tenant_events",
        method="GET",
        path="/v1/events",
        summary="Server-Sent Events of every job, channel and checkpoint of the tenant",
        media="text/event-stream",
        session=True,
        tag="jobs",
    ),
    OtherRoute(
        name="metrics",
        method="GET",
        path="/metrics",
        summary="Prometheus metrics (text exposition format)",
        media="text/plain",
    ),
    OtherRoute(name="health", method="GET", path="/healthz", summary="liveness: ok"),
    OtherRoute(name="openapi", method="GET", path="/openapi.json", summary="this OpenAPI document"),
    OtherRoute(
        name="docs",
        method="GET",
        path="/docs",
        summary="the API's reference page (HTML, from the OpenAPI document)",
        media="text/html",
    ),
    OtherRoute(
        name="console",
        method="GET",
        path="/",
        summary="the web console (HTML)",
        media="text/html",
    ),
    OtherRoute(
        name="static",
        method="GET",
        path="/console/{name}",
        summary="the console's scripts and styles",
        media="application/octet-stream",
        tag=None,
    ),
    OtherRoute(
        name="graphql",
        method="POST",
        path="/v1/graphql",
        summary="GraphQL, read-only: jobs, telemetry, usage and channels of the tenant "
        '(body {"query", "variables", "operationName"}; docs/graphql.md)',
        session=True,
        tag="graphql",
    ),
    OtherRoute(
        name="graphql_schema",
        method="GET",
        path="/v1/graphql/schema",
        summary="the GraphQL schema (SDL text)",
        media="text/plain",
        tag="graphql",
    ),
)
