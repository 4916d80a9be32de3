"""``qmk serve --grpc HOST:PORT``: the service ``qmk.v1.Kernel`` behind the door.

:func:`grpc_listener` starts a ``grpc.aio`` server in the running event loop. That is
the kernel's loop: every rpc is a coroutine on it, as a JSON-RPC request or a REST call
is. The server carries the standard health service (``SERVING`` for ``""`` and
``qmk.v1.Kernel`` while it runs) and server reflection.

gRPC's core accepts and reads its own sockets. So it listens on a private Unix socket
and the door takes the public address. The door accepts, counts, limits and splices
every connection (:class:`qmk.abi.door.splice.Splicer`). It guards the accept rate,
connections per peer and in total with the other listeners, the bytes before sign-in,
the authentication deadline, the unsent bytes and the write timeout. Each call finds
its connection's visitor by the splice's name (the call's peer). When ``stop`` is set
its health turns ``NOT_SERVING``, live ``WatchJob`` streams end (``closing``) and the
server drains for ``server.drain_timeout_s``.

Each rpc is served as the door says a wire serves. The session of the metadata
``authorization: Bearer <session_id>`` is checked (:meth:`qmk.abi.door.Door.tenant`)
before the request message is read. Every handler reads its one message itself, so a
call without a valid session is refused before its message is read. The message's
fields are the syscall's params (:func:`qmk.grpc.schema.params_of`), checked against the
method table (:func:`qmk.abi.methods.bind_params`). ``Submit``'s ``program`` goes to the
door as text (its ``format``, or the one its text shows: :func:`qmk.frontends.text.sniff`).
The door reads it off the event loop within the graph cap. The call goes through the
door, timed in the metrics under ``grpc`` and traced. Its answer
(:func:`qmk.grpc.schema.reply_of`) is held within the door's bound of answers held
whole (:class:`qmk.abi.door.HeldAnswers`) until it is sent. ``WatchJob``'s streams are
counted with SSE's and ``q_watch``'s (:class:`qmk.abi.door.StreamCaps`), one event
written at a time. An error is a gRPC status (:mod:`qmk.grpc.status`) whose message is
the QMK error's line.

Limits: a request message may be at most ``server.max_line`` bytes (gRPC's own check),
a connection's calls at once ``server.max_inflight``, and a ``Struct`` may nest at most
``server.max_depth`` levels.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import shutil
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from grpc import aio

from qmk.abi.door import SMALL, Door, DoorProbe, Held, ProgramText, Refusal, Visitor
from qmk.abi.door.splice import FLUSH_GRACE_S, Splicer
from qmk.abi.errors import CommandError, InternalError, InvalidParams, ServeError
from qmk.abi.events import PROGRESS_S, EventHub, JobWatch
from qmk.abi.methods import METHODS, JsonType, MethodSpec, bind_params
from qmk.abi.probe import Cursor
from qmk.abi.probing import KernelProbe
from qmk.abi.proto import FORMAT_FIELD, GRAPH_PARAM, PROGRAM_FIELD, SERVICE_NAME, schema
from qmk.abi.replies import Job
from qmk.abi.tcp import bind_tcp, format_tcp
from qmk.abi.watchhub import through
from qmk.errors import InvalidArgument, QMKError, SessionError
from qmk.frontends.text import sniff
from qmk.grpc.schema import json_of, json_size, kept_json, messages, params_of, reply_of
from qmk.grpc.status import error_metadata, status_of

LOG = logging.getLogger("qmk.grpc")

#: The metadata key of the session.
AUTHORIZATION = "authorization"
#: The peer gRPC reports for a call that came through a splice (its abstract name).
SPLICED = "unix-abstract:"
#: The HTTP/2 error code of the ``GOAWAY`` a refused connection gets.
ENHANCE_YOUR_CALM = 0xB


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


class UnknownRpcs(grpc.GenericRpcHandler):
    """The service's rpcs it does not have: each refused as a JSON-RPC call of an unknown
    method is (``UNIMPLEMENTED``, ``-32601``), naming the closest rpc it has, so a call of
    a removed rpc is told what replaced it."""

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        prefix = f"/{SERVICE_NAME}/"
        method = str(handler_call_details.method)
        if not method.startswith(prefix):
            return None  # another service's: gRPC's own answer
        name = method.removeprefix(prefix)

        async def refuse(requests: Any, context: Any) -> None:
            await _abort(context, unknown_rpc(name))

        return grpc.stream_unary_rpc_method_handler(refuse)


def unknown_rpc(name: str) -> QMKError:
    """The refusal of the rpc ``name``, which the service does not have: its closest
    rpc named (``details.closest``).

    >>> print(unknown_rpc("GetStatus").message)  # doctest: +ELLIPSIS
    no rpc qmk.v1.Kernel/GetStatus; did you mean Status (q_status: ...)?
    """
    from qmk.abi.errors import MethodNotFound
    from qmk.errors import closest

    rpcs = {rpc.name: rpc.syscall for rpc in schema().rpcs}
    near = closest(name, rpcs)
    where = f"no rpc {SERVICE_NAME}/{name}"
    if near is None:
        return MethodNotFound(where, rpc=name)
    syscall = rpcs[near]
    doc = METHODS[syscall].doc.split(";")[0] if syscall is not None else "a job's events"
    return MethodNotFound(
        f"{where}; did you mean {near} ({syscall or 'WatchJob'}: {doc})?", rpc=name, closest=near
    )


async def _abort(context: Any, error: QMKError) -> None:
    # the refusal goes without its traceback: its frames hold the call's data (a big
    # refused job), which the abort's exception chain would keep alive in a cycle until
    # a full collection freed it, with the interpreter held (docs/door.md)
    error.__traceback__ = None
    await context.abort(status_of(error), str(error), trailing_metadata=error_metadata(error))


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """One HTTP/2 frame."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream)
        + payload
    )


def _hpack_int(value: int, prefix: int, first: int = 0) -> bytes:
    """An HPACK integer with a ``prefix``-bit prefix (RFC 7541, 5.1)."""
    most = (1 << prefix) - 1
    if value < most:
        return bytes((first | value,))
    out, value = [first | most], value - most
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    return bytes((*out, value))


def _hpack_literal(name: str, value: str) -> bytes:
    """A header field as a literal, never indexed, of a new name (RFC 7541, 6.2.2)."""
    raw_name, raw_value = name.encode("ascii"), value.encode("ascii")
    return (
        b"\x10"
        + _hpack_int(len(raw_name), 7)
        + raw_name
        + _hpack_int(len(raw_value), 7)
        + raw_value
    )


def _first_stream(received: bytes) -> int | None:
    """The stream of the first HEADERS frame a client sent after its preface (None: not
    there yet)."""
    at = len(H2_PREFACE)
    if len(received) < at:
        return None
    while len(received) >= at + 9:
        length = int.from_bytes(received[at : at + 3], "big")
        kind = received[at + 3]
        stream = int.from_bytes(received[at + 5 : at + 9], "big") & 0x7FFFFFFF
        if kind == 1:
            return stream
        at += 9 + length
    return None


#: What every HTTP/2 client sends first.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class GrpcRefusal:
    """How the door tells a refused plaintext gRPC client why.

    This is a :class:`qmk.abi.door.splice.RefusalWriter`. It sends server settings at
    once. When the client's first call comes, it answers that call's status:
    ``UNAVAILABLE``, with the coded refusal as its ``qmk-error``, which the client raises
    as that error. A ``GOAWAY`` (``ENHANCE_YOUR_CALM``) follows, whose debug data is the
    same JSON. A connection that sent no call by then gets the ``GOAWAY`` alone when it
    closes.

    >>> import json
    >>> refused = Refusal("too-many-connections", 4, "the server is full")
    >>> greeting = GrpcRefusal().greeting(refused)
    >>> greeting[3], GrpcRefusal().answer(refused, H2_PREFACE)
    (4, None)
    >>> call = H2_PREFACE + _frame(4, 0, 0, b"") + _frame(1, 4, 1, b"")
    >>> answer = GrpcRefusal().answer(refused, call)
    >>> answer[3], answer[4], answer.count(b"too-many-connections")  # the call's, the GOAWAY's
    (1, 5, 2)
    """

    def greeting(self, refusal: Refusal) -> bytes:
        return _frame(4, 0, 0, b"")  # an empty SETTINGS frame

    def answer(self, refusal: Refusal, received: bytes) -> bytes | None:
        stream = _first_stream(received)
        if stream is None:
            return None
        error = refusal.error()
        (_, carried), *_ = error_metadata(error)
        message = "".join(
            c if " " <= c <= "~" and c != "%" else f"%{ord(c):02X}" for c in str(error)
        )
        block = (
            b"\x88"  # :status 200, from the static table
            + _hpack_literal("content-type", "application/grpc")
            + _hpack_literal("grpc-status", str(status_of(error).value[0]))
            + _hpack_literal("grpc-message", message)
            + _hpack_literal("qmk-error", carried)
        )
        ends = _frame(1, 0x5, stream, block)  # END_STREAM | END_HEADERS: trailers only
        goaway = struct.pack(">II", stream, ENHANCE_YOUR_CALM) + carried.encode("ascii")
        return ends + _frame(7, 0, 0, goaway)


class SilentRefusal:
    """A refused TLS connection is closed without a word (none can be said before TLS)."""

    def greeting(self, refusal: Refusal) -> bytes:
        return b""

    def answer(self, refusal: Refusal, received: bytes) -> bytes | None:
        return b""


def program_text(params: dict[str, Any]) -> ProgramText:
    """Take ``program`` and ``format`` out of ``params``: the text for the door to read
    (its format told from the text where none is given).

    Raises:
        InvalidParams: no program, or text whose format cannot be told.
    """
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
    return ProgramText(program, fmt, PROGRAM_FIELD)


def _answer_size(result: Any) -> int:
    """What an answer built from ``result`` holds until sent: its JSON text in the
    message, and again serialized."""
    kept = kept_json(result)
    if kept is not None:
        return 2 * len(kept)
    return 2 * json_size(result)


def _after(request: Any) -> Cursor | None:
    """``WatchJobRequest``'s cursor: ``after`` and ``after_sub`` (None: ``after`` unset).

    Raises:
        InvalidArgument: a negative seq or sub (``INVALID_ARGUMENT``).
    """
    sub = int(request.after_sub)
    if not request.HasField("after"):
        if sub:
            raise InvalidArgument(
                "after_sub is the sub of a cursor: it needs after", key="after_sub"
            )
        return None
    after = int(request.after)
    if after < 0 or sub < 0:
        key = "after" if after < 0 else "after_sub"
        raise InvalidArgument(f"{key} must be 0 or more, got {min(after, sub)}", key=key)
    return Cursor(after, sub)


def _event(kind: type[Message], fields: dict[str, Any], data: Any) -> Message:
    """A ``JobEvent`` of ``fields`` and ``data`` (its JSON)."""
    return kind(**fields, json=json_of(data))


def _parsed(kind: type[Message], data: bytes) -> Message:
    """The request message ``kind`` that ``data`` holds (a unary rpc's, read and parsed by
    its handler once the call's session is checked).

    Raises:
        InvalidParams: ``data`` is no such message (``INVALID_ARGUMENT``).
    """
    try:
        return kind.FromString(data)
    except DecodeError as exc:
        raise InvalidParams(f"the request message is no {kind.__name__}: {exc}") from None


def _serialized(message: Message | bytes) -> bytes:
    """A message's bytes (an answer built and serialized off the loop is bytes already)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


async def _built(build: Callable[[], Message], size: int) -> Message | bytes:
    """The answer ``build()`` makes: on the loop when small; else built and serialized
    in a thread (a big result's counts, millions of map entries and bytes, held the
    loop for seconds)."""
    if size <= SMALL:
        return build()
    return await asyncio.to_thread(lambda: build().SerializeToString())


class KernelService:
    """The handlers of ``qmk.v1.Kernel`` behind one door.

    Args:
        door: the door (the kernel's syscalls and every guard).
        hub: the kernel's events (for ``WatchJob``), its streams counted by the door.
        watches: where a job's events come from when the kernel is in another process
            (:class:`qmk.gateway.http.RemoteWatches`); None: ``hub``.
        relay: how a unary call calls the door when the kernel is in another process
            (:meth:`qmk.gateway.http.GatewayDoor.relay`: the kernel's JSON as it came,
            the answer's ``json`` as it is and its fields read from it); None:
            ``door.call``.
    """

    def __init__(self, door: Door, hub: EventHub, watches: Any = None, relay: Any = None) -> None:
        self.door = door
        self.hub = hub
        self.watches = watches
        self.relay = relay
        self.max_depth = door.config.max_depth
        self.classes = messages()

    def visitor(self, context: Any) -> Visitor:
        """The call's connection at the door (by its splice's name)."""
        peer = str(context.peer() or "")
        found = self.door.named(peer.removeprefix(SPLICED)) if peer.startswith(SPLICED) else None
        return found if found is not None else self.door.visitor("grpc", "unknown")

    async def _request(self, context: Any) -> Any:
        """The call's one request message (read once its session is checked): a unary
        rpc's as its bytes, ``WatchJob``'s parsed."""
        request = await context.read()
        if request is aio.EOF:
            raise InvalidParams("the call carried no request message")
        return request

    def _unary(
        self, spec: MethodSpec, request_class: type[Message], reply: type[Message]
    ) -> Callable[..., Awaitable[Any]]:
        needs_session = spec.needs_session
        program = any(p.name == GRAPH_PARAM for p in spec.params)
        # a repeated field sent empty is not on the wire: a required array is then []
        arrays = [p.name for p in spec.params if p.required and JsonType.ARRAY in p.types]
        door, max_depth = self.door, self.max_depth
        call = self.relay or door.call

        async def handle(requests: Any, context: Any) -> Message | bytes:
            visitor = self.visitor(context)
            try:
                session = None
                if needs_session:  # before the message is read
                    session = bearer(context)
                    await door.tenant_of(visitor, session)
                params = params_of(_parsed(request_class, await self._request(context)), max_depth)
                for name in arrays:
                    params.setdefault(name, [])
                text = None
                if program:
                    text, params[GRAPH_PARAM] = program_text(params), {}  # the door reads it
                if session is not None:
                    params["session_id"] = session
                bound = bind_params(spec, params)
                result = await call(visitor, spec.name, bound, program=text)
                size = _answer_size(result)
                held = await door.answers.hold(size, visitor)
                context.add_done_callback(lambda _: held.release())
                return await _built(lambda: reply_of(reply, result), size)
            except QMKError as exc:
                await _abort(context, exc)
            except (asyncio.CancelledError, aio.AbortError):
                raise
            except Exception as exc:
                await _abort(context, _internal(exc))
            raise AssertionError("unreachable: abort raises")  # pragma: no cover

        return handle

    async def watch_job(self, requests: Any, context: Any) -> AsyncIterator[Message | bytes]:
        """``WatchJob``: the job's events (:class:`~qmk.abi.events.JobWatch`), each
        written before the next is made."""
        event_class = self.classes["JobEvent"]
        visitor = self.visitor(context)
        held: Held | None = None
        try:
            session = bearer(context)
            await self.door.tenant_of(visitor, session)  # before the message is read
            request = await self._request(context)
            job_id = str(request.job_id)
            after = _after(request)
            watch: Any
            if self.watches is not None:  # the kernel's q_watch, in a gateway
                watch = await self.watches.open(session, job_id, after=after)
            else:
                call = through(self.door, visitor)
                watch = await JobWatch.open(
                    call, self.hub, session, job_id, PROGRESS_S, after=after
                )
            try:
                async for name, data, cursor in watch:
                    size = _answer_size(data)
                    held = await self.door.answers.hold(size, visitor)
                    if isinstance(data, Job):  # the result: the job as q_status answers it
                        state: Any = data.state
                    else:
                        state = data.get("state") if isinstance(data, dict) else None
                    seq, sub = (None, None) if cursor is None else cursor
                    fields = {
                        "event": name,
                        "seq": seq,
                        "sub": sub,
                        "job_id": job_id,
                        "state": state if isinstance(state, str) else "",
                    }
                    yield await _built(functools.partial(_event, event_class, fields, data), size)
                    held.release()  # written: the next event is asked for
                    held = None
            finally:
                watch.close()
        except QMKError as exc:
            await _abort(context, exc)
        except (asyncio.CancelledError, aio.AbortError):
            raise
        except Exception as exc:
            await _abort(context, _internal(exc))
        finally:
            if held is not None:
                held.release()

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's rpcs as one generic handler. Every rpc is served as one whose
        client streams its request (the wire is the same for one message), so that its
        handler reads the message only after the door has checked the call's session. A
        unary rpc's message comes as its bytes, parsed by the handler: one that does not
        parse is ``INVALID_ARGUMENT``, not an error of the server."""
        classes = self.classes
        rpcs: dict[str, grpc.RpcMethodHandler] = {}
        for rpc in schema().rpcs:
            request, reply = classes[rpc.request], classes[rpc.reply]
            if rpc.syscall is None:
                rpcs[rpc.name] = grpc.stream_stream_rpc_method_handler(
                    self.watch_job,
                    request_deserializer=request.FromString,
                    response_serializer=_serialized,
                )
                continue
            rpcs[rpc.name] = grpc.stream_unary_rpc_method_handler(
                self._unary(METHODS[rpc.syscall], request, reply),
                response_serializer=_serialized,
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


@contextlib.asynccontextmanager
async def grpc_listener(
    door: Door,
    probe: KernelProbe | DoorProbe,
    config: GrpcConfig,
    *,
    stop: asyncio.Event,
    sock: socket.socket | None = None,
    watches: Any = None,
    relay: Any = None,
) -> AsyncIterator[str]:
    """Serve ``qmk.v1.Kernel`` behind ``door`` while the context is open; yields its URL
    (``grpc://HOST:PORT``). When ``stop`` is set (or the context ends) it drains.
    ``sock``: the listening socket a supervisor passed (None: bind ``config``'s
    address); ``watches``, ``relay``: :class:`KernelService`'s.

    Raises:
        ServeError: the address cannot be bound (``cannot-bind``).
        CommandError: a TLS file cannot be loaded.
    """
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    limits = door.config
    credentials = _credentials(config)
    if sock is None:
        check_free(config)
        sock = bind_tcp(config.host, config.port)
    private = tempfile.mkdtemp(prefix="qmk-grpc-")  # mode 0700: the server's own socket
    inner = os.path.join(private, "grpc.sock")
    hub = EventHub(probe, asyncio.get_running_loop(), caps=door.streams)  # type: ignore[arg-type]
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", limits.max_line),
            ("grpc.max_send_message_length", -1),
            ("grpc.max_concurrent_streams", limits.max_inflight),
        ]
    )
    service = KernelService(door, hub, watches, relay)
    server.add_generic_rpc_handlers((service.handler(), UnknownRpcs()))
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    refusal = GrpcRefusal() if credentials is None else SilentRefusal()
    splicer = Splicer(door, "grpc", inner, refusal)
    try:
        if credentials is None:
            server.add_insecure_port(f"unix:{inner}")
        else:
            server.add_secure_port(f"unix:{inner}", credentials)
        await server.start()
        for name in ("", SERVICE_NAME):
            await checks.set(name, health_pb2.HealthCheckResponse.SERVING)
        splicer.start([sock])
    except BaseException:
        hub.close()
        await server.stop(None)
        await splicer.aclose()
        sock.close()
        shutil.rmtree(private, ignore_errors=True)
        raise
    bound = sock.getsockname()

    async def drain() -> None:
        await stop.wait()
        splicer.stop()
        await checks.enter_graceful_shutdown()
        hub.close()  # live WatchJob streams end (closing), so the drain waits for none
        await server.stop(limits.drain_timeout_s)
        await splicer.aclose(FLUSH_GRACE_S)

    draining = asyncio.ensure_future(drain())
    try:
        yield f"{config.scheme}://{format_tcp(bound)}"
    finally:
        if not stop.is_set():
            stop.set()
        await draining
        sock.close()
        shutil.rmtree(private, ignore_errors=True)
