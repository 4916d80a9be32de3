"""``qmk serve --grpc HOST:PORT``: the service ``qmk.v1.Kernel`` on the kernel's own loop.

:func:`grpc_listener` starts a ``grpc.aio`` server in the running event loop (the
kernel's: every rpc is a coroutine on it, as a JSON-RPC request or a REST call is, and
calls the kernel's syscall coroutine the same way), beside the JSON-RPC server and the
HTTP API, with the standard health service (``SERVING`` for ``""`` and
``qmk.v1.Kernel`` while it runs) and server reflection. When ``stop`` is set its health
turns ``NOT_SERVING``, live ``WatchJob`` streams end (``closing``) and the server
drains for ``server.drain_timeout_s``.

Each rpc of a syscall reads its request as the syscall's params
(:func:`qmk.grpc.schema.params_of`), takes the session from the metadata
``authorization: Bearer <session_id>``, checks the params against the method table
(:func:`qmk.abi.methods.bind_params`, as the other wires do) and answers the result
(:func:`qmk.grpc.schema.reply_of`); ``Submit`` lowers its ``program`` first (its
``format``, or the one its text shows: :func:`qmk.frontends.text.sniff`). An error is a
gRPC status (:mod:`qmk.grpc.status`) whose message is the QMK error's line.

Limits: a request message may be at most ``server.max_line`` bytes (gRPC's own check,
before the handler: there is no separate limit for requests without a session, as the
other wires have) and a ``Struct`` may nest at most ``server.max_depth`` levels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc import aio

from qmk.abi.errors import CommandError, InternalError, InvalidParams, ServeError
from qmk.abi.jsonrpc import decode_soon, dumps
from qmk.abi.methods import METHODS, JsonType, MethodSpec, bind_params
from qmk.abi.proto import FORMAT_FIELD, GRAPH_PARAM, PROGRAM_FIELD, SERVICE_NAME, schema
from qmk.errors import QMKError, SessionError
from qmk.frontends.text import sniff
from qmk.grpc.schema import messages, params_of, reply_of
from qmk.grpc.status import error_metadata, status_of
from qmk.http.events import PROGRESS_S, EventHub, JobWatch
from qmk.http.probe import KernelProbe
from qmk.http.programs import to_graph

LOG = logging.getLogger("qmk.grpc")

#: The metadata key of the session.
AUTHORIZATION = "authorization"


@dataclass(frozen=True, slots=True, kw_only=True)
class GrpcConfig:
    """Where the gRPC API listens.

    Attributes:
        host, port: the address (port 0: a free one).
        tls_cert, tls_key: PEM files: serve over TLS (both or neither), as ``--http``.
    """

    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise CommandError.of("bad-option", "--tls-cert and --tls-key go together")

    @property
    def scheme(self) -> str:
        """``grpc``, or ``grpcs`` over TLS (the ready line's URL)."""
        return "grpc" if self.tls_cert is None else "grpcs"


def bearer(context: Any) -> str:
    """The session of an rpc's metadata ``authorization: Bearer <session_id>``.

    Raises:
        SessionError: none, or not in that form.
    """
    found = [value for key, value in context.invocation_metadata() or () if key == AUTHORIZATION]
    if not found:
        raise SessionError(
            "no session: send the metadata authorization: Bearer <session_id> "
            "(NegotiateCaps opens one)"
        )
    scheme, _, token = str(found[0]).partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SessionError("the authorization metadata must be 'Bearer <session_id>'")
    return token.strip()


def _internal(exc: BaseException) -> InternalError:
    incident = secrets.token_hex(6)
    LOG.error("internal error (incident %s)", incident, exc_info=exc)
    return InternalError(
        f"the server failed while handling the request (incident {incident})",
        incident=incident,
    )


async def _abort(context: Any, error: QMKError) -> None:
    await context.abort(status_of(error), str(error), trailing_metadata=error_metadata(error))


async def _program(params: dict[str, Any], max_depth: int) -> None:
    """Replace ``program`` and ``format`` in ``params`` by the graph they lower to.

    QVM JSON is decoded as the other wires decode a body (:func:`decode_soon`: its depth
    limit, a big one in a thread) and handed to the kernel as JSON-RPC hands it; other
    text is lowered by its front-end (:func:`qmk.http.programs.to_graph`)."""
    if PROGRAM_FIELD not in params:
        raise InvalidParams(f"missing required field {PROGRAM_FIELD!r}", param=PROGRAM_FIELD)
    program, fmt = params.pop(PROGRAM_FIELD), params.pop(FORMAT_FIELD, None)
    if fmt is None:
        fmt = sniff(program)
        if fmt is None:
            raise InvalidParams(
                "the program's format cannot be told from its text: send format (qvm-json, "
                "qvm-asm, qasm2, qasm3, qasm, qir)",
                param=FORMAT_FIELD,
            )
    if fmt == "qvm-json":
        program = await decode_soon(program.encode("utf-8"), max_depth=max_depth)
        if not isinstance(program, dict):
            raise InvalidParams("a qvm-json program must be a JSON object", param=PROGRAM_FIELD)
    params[GRAPH_PARAM], _ = to_graph(program, fmt)


class KernelService:
    """The handlers of ``qmk.v1.Kernel`` on one kernel.

    Args:
        kernel: the kernel (its syscall coroutines).
        hub: the kernel's events (for ``WatchJob``).
        max_depth: the deepest nesting of a ``Struct`` param.
    """

    def __init__(self, kernel: Any, hub: EventHub, max_depth: int) -> None:
        self.kernel = kernel
        self.hub = hub
        self.max_depth = max_depth
        self.classes = messages()

    async def call(self, name: str, params: dict[str, Any]) -> Any:
        """A syscall of the kernel."""
        return await getattr(self.kernel, name)(**params)

    def _unary(self, spec: MethodSpec, reply: type[Message]) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.kernel, spec.name)
        needs_session = spec.needs_session
        program = any(p.name == GRAPH_PARAM for p in spec.params)
        # a repeated field sent empty is not on the wire: a required array is then []
        arrays = [p.name for p in spec.params if p.required and JsonType.ARRAY in p.types]
        max_depth = self.max_depth

        async def handle(request: Message, context: Any) -> Message:
            try:
                params = params_of(request, max_depth)
                for name in arrays:
                    params.setdefault(name, [])
                if program:
                    await _program(params, max_depth)
                if needs_session:
                    params["session_id"] = bearer(context)
                result = await method(**bind_params(spec, params))
                return reply_of(reply, result)
            except QMKError as exc:
                await _abort(context, exc)
            except (asyncio.CancelledError, aio.AbortError):
                raise
            except Exception as exc:
                await _abort(context, _internal(exc))
            raise AssertionError("unreachable: abort raises")  # pragma: no cover

        return handle

    async def watch_job(self, request: Message, context: Any) -> AsyncIterator[Message]:
        """``WatchJob``: the job's events (:class:`~qmk.http.events.JobWatch`)."""
        event_class = self.classes["JobEvent"]
        job_id = str(request.job_id)
        try:
            watch = await JobWatch.open(self.call, self.hub, bearer(context), job_id, PROGRESS_S)
            async for name, data, seq in watch:
                state = data.get("state") if isinstance(data, dict) else None
                yield event_class(
                    event=name,
                    seq=seq,
                    job_id=job_id,
                    state=state if isinstance(state, str) else "",
                    json=dumps(data, default=str),
                )
        except QMKError as exc:
            await _abort(context, exc)
        except (asyncio.CancelledError, aio.AbortError):
            raise
        except Exception as exc:
            await _abort(context, _internal(exc))

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's rpcs as one generic handler."""
        classes = self.classes
        rpcs: dict[str, grpc.RpcMethodHandler] = {}
        for rpc in schema().rpcs:
            request, reply = classes[rpc.request], classes[rpc.reply]
            if rpc.syscall is None:
                rpcs[rpc.name] = grpc.unary_stream_rpc_method_handler(
                    self.watch_job,
                    request_deserializer=request.FromString,
                    response_serializer=reply.SerializeToString,
                )
                continue
            rpcs[rpc.name] = grpc.unary_unary_rpc_method_handler(
                self._unary(METHODS[rpc.syscall], reply),
                request_deserializer=request.FromString,
                response_serializer=reply.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, rpcs)


def check_credentials(config: GrpcConfig) -> None:
    """Load the certificate and key once, as ``--http`` does, so a bad file is one coded
    line at start (``bad-option``)."""
    from qmk.http.server import HttpConfig, check_tls

    check_tls(
        HttpConfig(
            host=config.host, port=config.port, tls_cert=config.tls_cert, tls_key=config.tls_key
        )
    )


def _credentials(config: GrpcConfig) -> grpc.ServerCredentials | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    check_credentials(config)
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())]
    )


def check_free(config: GrpcConfig) -> None:
    """Refuse an address that cannot be bound before gRPC tries it (gRPC's core would
    write its own multi-line log to stderr first)."""
    if config.port == 0:
        return
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
        try:
            probe.bind((config.host, config.port))
        except OSError as exc:
            raise ServeError.of(
                "cannot-bind",
                f"{config.host}:{config.port}: cannot listen (gRPC): {exc.strerror or exc}",
            ) from None


def _bind(server: Any, config: GrpcConfig) -> int:
    host = f"[{config.host}]" if ":" in config.host else config.host
    address = f"{host}:{config.port}"
    credentials = _credentials(config)
    check_free(config)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ServeError.of("cannot-bind", f"{address}: cannot listen (gRPC): {exc}") from None
    if not port:
        raise ServeError.of("cannot-bind", f"{address}: cannot listen (gRPC)")
    return int(port)


@contextlib.asynccontextmanager
async def grpc_listener(
    kernel: Any,
    probe: KernelProbe,
    config: GrpcConfig,
    *,
    max_line: int,
    max_depth: int,
    drain_s: float,
    stop: asyncio.Event,
) -> AsyncIterator[str]:
    """Serve ``qmk.v1.Kernel`` on ``kernel`` while the context is open; yields its URL
    (``grpc://HOST:PORT``). When ``stop`` is set (or the context ends) it drains.

    Raises:
        ServeError: the address cannot be bound (``cannot-bind``).
        CommandError: a TLS file cannot be loaded.
    """
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    hub = EventHub(probe, asyncio.get_running_loop())
    server = aio.server(
        options=[
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a second listener
            ("grpc.max_receive_message_length", max_line),
            ("grpc.max_send_message_length", -1),
        ]
    )
    service = KernelService(kernel, hub, max_depth)
    server.add_generic_rpc_handlers((service.handler(),))
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = _bind(server, config)
        await server.start()
        for name in ("", SERVICE_NAME):
            await checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    except BaseException:
        hub.close()
        await server.stop(None)
        raise
    host = f"[{config.host}]" if ":" in config.host else config.host

    async def drain() -> None:
        await stop.wait()
        await checks.enter_graceful_shutdown()
        hub.close()  # live WatchJob streams end (closing), so the drain waits for none
        await server.stop(drain_s)

    draining = asyncio.ensure_future(drain())
    try:
        yield f"{config.scheme}://{host}:{port}"
    finally:
        if not stop.is_set():
            stop.set()
        await draining
