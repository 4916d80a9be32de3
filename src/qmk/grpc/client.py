"""A blocking gRPC client of ``qmk.v1.Kernel``: the JSON-RPC client's methods, over gRPC.

:class:`Client` has every syscall as :class:`qmk.client.Client` has it (``q_submit``,
``q_wait``, ... with the same params and JSON results: they are the same generated
methods), and beside them :meth:`Client.submit` (program text in any format QMK
reads), :meth:`Client.rpc` (one rpc's typed answer message) and
:meth:`Client.watch_job` (a job's events as they happen). A refusal raises the server's
QMK error (the same class and code as over JSON-RPC: :func:`qmk.grpc.status.error_of`).

>>> with Client("127.0.0.1:1", timeout=Timeout(call=0.5)) as client:  # nothing listens
...     client.q_resource_query(session_id="s")  # doctest: +ELLIPSIS
Traceback (most recent call last):
qmk.abi.errors.ConnectError: QT001 connect-failed: 127.0.0.1:1: ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from qmk.abi.calls import SyscallMethods
from qmk.abi.errors import CallTimeout, ConnectError
from qmk.abi.jsonrpc import dumps
from qmk.abi.methods import METHODS, JsonType
from qmk.abi.proto import FORMAT_FIELD, GRAPH_PARAM, PROGRAM_FIELD, SERVICE_NAME, schema
from qmk.client import DEFAULT_TIMEOUT, BlockingSession, ClientCore, Timeout
from qmk.errors import QMKError
from qmk.grpc.schema import messages, to_struct
from qmk.grpc.server import AUTHORIZATION
from qmk.grpc.status import error_of

#: The rpc of each syscall, and the method that carries each rpc's name.
_RPC_OF = {rpc.syscall: rpc for rpc in schema().rpcs if rpc.syscall is not None}
_UNARY = {rpc.name: rpc for rpc in schema().rpcs if not rpc.streaming}


def _target(address: str) -> tuple[str, bool]:
    """``HOST:PORT`` of ``grpc://HOST:PORT`` / ``grpcs://...`` (TLS) / ``HOST:PORT``."""
    for scheme, tls in (("grpcs://", True), ("grpc://", False)):
        if address.startswith(scheme):
            return address.removeprefix(scheme), tls
    return address, False


class Client(BlockingSession, SyscallMethods):
    """A blocking client of ``qmk.v1.Kernel`` (thread-safe as its gRPC channel is).

    Args:
        address: ``HOST:PORT``, ``grpc://HOST:PORT`` or ``grpcs://HOST:PORT`` (TLS).
        timeout: the calls' timeouts (``call``; ``q_wait`` adds its own wait).
        session_id: an existing session to use.
        tls: connect over TLS (also implied by ``grpcs://``).
        root_certificates: PEM of the CAs to trust (a path or the bytes; None: the
            system's).
        server_name: the name the server's certificate must carry (default: the host).
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session_id: str | None = None,
        tls: bool = False,
        root_certificates: bytes | str | Path | None = None,
        server_name: str | None = None,
    ) -> None:
        self.target, secure = _target(address)
        self.timeout = timeout
        self.core = ClientCore(session_id=session_id)
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", -1)]
        if server_name is not None:
            options.append(("grpc.ssl_target_name_override", server_name))
        if secure or tls or root_certificates is not None:
            roots = root_certificates
            if isinstance(roots, (str, Path)):
                roots = Path(roots).read_bytes()
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self.channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(self.target, options=options)
        self.classes = messages()
        self._stubs: dict[str, Any] = {}
        for rpc in schema().rpcs:
            make = self.channel.unary_stream if rpc.streaming else self.channel.unary_unary
            self._stubs[rpc.name] = make(
                f"/{SERVICE_NAME}/{rpc.name}",
                request_serializer=self.classes[rpc.request].SerializeToString,
                response_deserializer=self.classes[rpc.reply].FromString,
            )

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        tenant: str | None = None,
        key: str | None = None,
        caps: Sequence[str] | str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> Client:
        """A client with a fresh session (``NegotiateCaps``) for ``tenant`` (or
        ``QMK_TENANT``/``QMK_KEY``/``QMK_CAPS``); ``options`` as :class:`Client`'s."""
        client = cls(address, timeout=timeout, **options)
        client._negotiated(tenant, key, caps)
        return client

    # ------------------------------------------------------------------ calls

    def _metadata(self, session_id: str | None) -> tuple[tuple[str, str], ...]:
        session = session_id or self.core.session_id
        return () if session is None else ((AUTHORIZATION, f"Bearer {session}"),)

    def _invoke(self, name: str, request: Message, timeout: float | None, session: Any) -> Any:
        try:
            return self._stubs[name](request, metadata=self._metadata(session), timeout=timeout)
        except grpc.RpcError as exc:
            raise _error(self.target, exc) from None

    def request_of(self, method: str, params: Mapping[str, Any]) -> Message:
        """The request message of syscall ``method`` for its JSON ``params`` (a graph goes
        as QVM JSON text; ``session_id`` is not a field: it travels as metadata)."""
        rpc = _RPC_OF[method]
        spec = METHODS[method]
        request = self.classes[rpc.request]()
        for name, value in params.items():
            if name == "session_id" or value is None:
                continue
            if name == GRAPH_PARAM:
                setattr(request, PROGRAM_FIELD, dumps(value))
                setattr(request, FORMAT_FIELD, "qvm-json")
            elif JsonType.OBJECT in spec.param(name).types:
                getattr(request, name).CopyFrom(to_struct(value))
            elif JsonType.ARRAY in spec.param(name).types:
                getattr(request, name).extend(value)
            else:
                setattr(request, name, value)
        return request

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        spec = METHODS[method]
        for attempt in (0, 1):
            sent = self.core.params(spec, params)
            request = self.request_of(method, sent)
            timeout = self.timeout.for_call(method, sent)
            try:
                reply = self._invoke(_RPC_OF[method].name, request, timeout, sent.get("session_id"))
                return json.loads(reply.json)
            except QMKError as exc:
                if attempt or not self.core.renewable(exc, params):
                    raise
                assert self.core.credentials is not None
                self.negotiate(self.core.credentials)
        raise AssertionError("unreachable")

    def rpc(self, name: str, *, session_id: str | None = None, **fields: Any) -> Any:
        """Call rpc ``name`` (``Submit``, ``Wait``, ...) with the request's ``fields``;
        its typed answer message (``Job``, ``Session``, ``Reply``)."""
        rpc = _UNARY.get(name)
        if rpc is None:
            raise KeyError(f"no unary rpc {name!r}; they are {', '.join(_UNARY)}")
        request = self.classes[rpc.request](**fields)
        return self._invoke(name, request, self.timeout.call, session_id)

    def submit(
        self,
        program: str,
        *,
        format: str | None = None,
        shots: int | None = None,
        seed: int | None = None,
        policy: Mapping[str, Any] | None = None,
        wait_ms: int | None = None,
        session_id: str | None = None,
        target: str | None = None,
    ) -> Any:
        """``Submit`` program text (``format``: its language; None: told from its text)
        to ``target`` (None: the logical machine); the ``Job`` message (with
        ``wait_ms``: once final, or as it is when ``wait_ms`` passes, as ``Wait``
        answers it)."""
        fields: dict[str, Any] = {"program": program, "format": format}
        fields.update(shots=shots, seed=seed, wait_ms=wait_ms, target=target)
        if policy is not None:
            fields["policy"] = to_struct(policy)
        request = self.classes[_UNARY["Submit"].request](
            **{k: v for k, v in fields.items() if v is not None}
        )
        timeout = self.timeout.for_call("q_submit", {"wait_ms": wait_ms})
        return self._invoke("Submit", request, timeout, session_id)

    def watch_job(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
        after: int | None = None,
        after_sub: int = 0,
    ) -> Iterator[Any]:
        """``WatchJob``: the job's ``JobEvent`` messages as they come, until its result
        (past the cursor ``after`` and ``after_sub``, the ``seq`` and ``sub`` of the last
        event seen, when given)."""
        fields: dict[str, Any] = {"job_id": job_id}
        if after is not None:
            fields["after"] = after
        if after_sub:
            fields["after_sub"] = after_sub
        request = self.classes["WatchJobRequest"](**fields)
        stream = self._stubs["WatchJob"](request, metadata=self._metadata(session_id))
        try:
            yield from stream
        except grpc.RpcError as exc:
            raise _error(self.target, exc) from None
        finally:
            stream.cancel()

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The door's refusal of a connection, as gRPC's core reports the GOAWAY that carried it.
_GOAWAY = re.compile(r"Debug Text: (\{.*\})")


def _error(target: str, exc: grpc.RpcError) -> QMKError:
    code = exc.code()
    details = str(exc.details() or "")
    trailing = exc.trailing_metadata()
    found = any(key == "qmk-error" for key, _ in trailing or ())
    if not found and code is grpc.StatusCode.UNAVAILABLE:
        refused = _GOAWAY.search(details)  # the door refused the connection, coded
        if refused is not None:
            return error_of(code, details, (("qmk-error", refused.group(1)),))
        return ConnectError(f"{target}: {details}")
    if not found and code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return CallTimeout(f"{target}: no reply in time")
    return error_of(code, details, trailing)
