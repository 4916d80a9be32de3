"""The Python client of qSyscall: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both are thin transports around one sans-IO core, :class:`ClientCore`, which builds
request lines, checks params against the method table
(:data:`qmk.abi.methods.METHODS`), fills in the session and turns replies into
results or typed exceptions. Every qSyscall method is a typed Python method of both
clients, from :class:`qmk.abi.calls.SyscallMethods` (and its coroutines,
``AsyncSyscallMethods``), which is generated from that table. It gives the method's
reply struct (:mod:`qmk.abi.replies`: ``client.q_status(job_id).state``).
``session_id`` is filled in from the client's session unless given. A param that takes
a JSON object also takes anything with ``to_json()``, such as a QVM graph. The async
client's methods are coroutines, and several may be in flight on one connection at once.

Errors are the classes of the one tree drawn in :mod:`qmk.errors`: a refusal of the
kernel is raised as its ``SyscallError`` subclass (by JSON-RPC code), JSON-RPC's own
errors as ``RpcError`` subclasses, and a failure to talk to the server as a
``TransportError`` (``ConnectError``, ``ConnectionClosed``, ``CallTimeout``,
``BadResponse``).

Addresses: a Unix socket path (``/run/qmk.sock``, ``unix:/run/qmk.sock``) or TCP
(``tcp:HOST:PORT`` or ``HOST:PORT``). Credentials and address default to the
environment: ``QMK_SOCKET``, ``QMK_TENANT``, ``QMK_KEY`` and ``QMK_CAPS``
(comma-separated). A session that expires is renegotiated once, automatically,
when the client holds the tenant's key.

This module never imports :mod:`qmk.kernel`: it talks to a kernel only over the wire.

>>> core = ClientCore()
>>> request_id, line = core.request("q_status", {"session_id": "s", "job_id": "j"})
>>> line
b'{"jsonrpc":"2.0","id":1,"method":"q_status","params":{"session_id":"s","job_id":"j"}}\\n'
>>> core.result(request_id, b'{"jsonrpc":"2.0","id":1,"result":{"state":"QUEUED"}}')
{'state': 'QUEUED'}
>>> core.result(2, b'{"jsonrpc":"2.0","id":2,"error":{"code":1005,"message":"no job"}}')
Traceback (most recent call last):
qmk.errors.NotFoundError: QS1005 not-found: no job
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

import qmk.aio as aio
from qmk import defaults
from qmk.abi.calls import AsyncSyscallMethods, SyscallMethods
from qmk.abi.errors import (
    BadResponse,
    CallTimeout,
    ConnectError,
    ConnectionClosed,
    rpc_error,
)
from qmk.abi.methods import METHODS, SOCKET_METHODS, MethodSpec, SupportsJson, bind_params
from qmk.abi.replies import Session
from qmk.errors import QMKError, SessionError, SessionExpired, syscall_error
from qmk.qvm.ops import CAPABILITIES

__all__ = [
    "DEFAULT_CAPS",
    "DEFAULT_TIMEOUT",
    "Address",
    "AsyncClient",
    "Client",
    "ClientCore",
    "Credentials",
    "Timeout",
]

#: Capabilities requested when none are named: all of them (the kernel grants those allowed).
DEFAULT_CAPS: tuple[str, ...] = tuple(CAPABILITIES)
#: The longest reply line the client accepts, in bytes.
DEFAULT_MAX_REPLY = 64 * 1024 * 1024
#: Extra seconds a call that waits (q_wait, q_submit with ``wait_ms``) may take beyond
#: its wait.
WAIT_MARGIN_S = 5.0
#: A watch's notification, and its last event (:mod:`qmk.abi.watch`).
EVENT, END = "q_event", "end"


def _spec(method: str) -> MethodSpec:
    """The table entry of ``method``: a syscall, or a socket-only method (``q_watch``)."""
    return METHODS[method] if method in METHODS else SOCKET_METHODS[method]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout:
    """How long the client waits, in seconds; None means no limit.

    Args:
        connect: to open the connection.
        call: for the reply to one call (q_wait adds its own ``timeout_ms``, q_submit
            its ``wait_ms``).
    """

    connect: float | None = defaults.CONNECT_TIMEOUT_S
    call: float | None = defaults.CALL_TIMEOUT_S

    def for_call(self, method: str, params: Mapping[str, Any]) -> float | None:
        """The timeout of one call: a call that asks the kernel to wait (q_wait's
        ``timeout_ms``, q_submit's ``wait_ms``: the table's
        :attr:`~qmk.abi.methods.MethodSpec.wait`) gets that wait on top of ``call``.

        >>> Timeout(call=10).for_call("q_submit", {"wait_ms": 2000})
        17.0
        >>> Timeout(call=10).for_call("q_submit", {"wait_ms": None})
        10
        """
        if self.call is None:
            return None
        wait_s = _spec(method).wait_s(params)
        if wait_s > 0:
            return self.call + wait_s + WAIT_MARGIN_S
        return self.call


#: The timeouts used when none are given.
DEFAULT_TIMEOUT = Timeout()


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """Where a kernel listens: a Unix socket path, or a TCP host and port."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Address:
        """``/p``, ``unix:/p``, ``tcp:H:P`` or ``H:P`` as an address.

        >>> Address.parse("unix:/tmp/q.sock"), Address.parse("127.0.0.1:7000").port
        (Address(path='/tmp/q.sock', host=None, port=None), 7000)
        """
        if text.startswith("unix:"):
            return cls(path=text.removeprefix("unix:"))
        tcp = text.removeprefix("tcp:")
        host, sep, port = tcp.rpartition(":")
        if (text.startswith("tcp:") or "/" not in text) and sep and host and port.isdigit():
            return cls(host=host.removeprefix("[").removesuffix("]"), port=int(port))
        if text.startswith("tcp:"):
            raise ConnectError(f"{text!r} is not tcp:HOST:PORT")
        return cls(path=text)

    def tcp(self) -> tuple[str, int]:
        """The host and port of a TCP address.

        Raises:
            ConnectError: the address is a Unix socket, or lacks its host or port.
        """
        if self.host is None or self.port is None:
            raise ConnectError(f"{self} is not a TCP address (tcp:HOST:PORT)")
        return self.host, self.port

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path is not None else f"tcp:{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A tenant's name, key and the capabilities to request for its sessions."""

    tenant: str
    key: str = ""
    caps: tuple[str, ...] = DEFAULT_CAPS

    @classmethod
    def resolve(
        cls,
        tenant: str | None = None,
        key: str | None = None,
        caps: Sequence[str] | str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Credentials from the arguments, falling back to QMK_TENANT, QMK_KEY, QMK_CAPS.

        Raises:
            SessionError: no tenant is named anywhere.
        """
        env = os.environ if environ is None else environ
        tenant = tenant or env.get("QMK_TENANT")
        if not tenant:
            raise SessionError("no tenant: pass tenant= (or --tenant) or set QMK_TENANT")
        key = key if key is not None else env.get("QMK_KEY", "")
        if caps is None:
            caps = env.get("QMK_CAPS") or DEFAULT_CAPS
        if isinstance(caps, str):
            caps = [cap.strip() for cap in caps.split(",") if cap.strip()]
        return cls(tenant=tenant, key=key, caps=tuple(caps))


@contextlib.asynccontextmanager
async def connecting(address: Address, timeout_s: float | None) -> AsyncIterator[None]:
    """Opening a connection to ``address`` within ``timeout_s``: its failures as one
    coded ``ConnectError`` naming the address (every client's line opens so)."""
    try:
        async with aio.timeout(timeout_s):
            yield
    except TimeoutError:
        raise ConnectError(f"{address}: no answer within {timeout_s} s") from None
    except OSError as exc:
        raise ConnectError(f"{address}: {exc.strerror or exc}") from None


def resolve_address(
    address: str | Address | None, environ: Mapping[str, str] | None = None
) -> Address:
    """The address given, or QMK_SOCKET's; ConnectError when neither is set."""
    if isinstance(address, Address):
        return address
    env = os.environ if environ is None else environ
    text = address or env.get("QMK_SOCKET")
    if not text:
        raise ConnectError("no kernel address: pass --socket PATH or set QMK_SOCKET")
    return Address.parse(text)


#: The types of plain JSON values (a param of one of them is sent as it is).
_PLAIN = frozenset({str, int, float, bool, list, dict, tuple, type(None)})
#: A reply or event line decoded, in one pass of msgspec's decoder (a gateway decodes
#: one per call it forwards). Its ``DecodeError`` is a ``ValueError``.
_decode = msgspec.json.Decoder().decode


class ClientCore:
    """The sans-IO part of a client: request lines out, results or exceptions in.

    Holds the session id and, when known, the credentials to renew it.
    """

    def __init__(self, *, session_id: str | None = None) -> None:
        self.session_id = session_id
        self.credentials: Credentials | None = None
        #: The session the client opened (its ``q_negotiate_caps`` reply), if it did.
        self.session: Session | None = None
        self._next_id = 0

    def params(self, spec: MethodSpec, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` checked against the table, with the session filled in.

        Raises:
            InvalidParams: a param is missing, unknown or of the wrong JSON type.
            SessionError: the method needs a session and the client has none.
        """
        params = {  # (a plain JSON value at once: a protocol's isinstance is slow)
            name: value
            if type(value) in _PLAIN or not isinstance(value, SupportsJson)
            else value.to_json()
            for name, value in params.items()
        }
        if spec.needs_session and params.get("session_id") is None:
            if self.session_id is None:
                raise SessionError(
                    f"{spec.name} needs a session: negotiate first (Client.connect(..., "
                    "tenant=, key=)) or pass session_id="
                )
            params = {**params, "session_id": self.session_id}
        bind_params(spec, params)
        return params

    def request(self, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
        """A new request id and the request's line."""
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return self._next_id, text.encode("utf-8") + b"\n"

    @staticmethod
    def event_of(line: bytes) -> dict[str, Any] | None:
        """The params of a ``q_event`` notification line (a watch's event), or None
        for a reply.

        >>> ClientCore.event_of(b'{"jsonrpc":"2.0","method":"q_event","params":{"watch_id":"w1"}}')
        {'watch_id': 'w1'}
        >>> ClientCore.event_of(b'{"jsonrpc":"2.0","id":1,"result":{}}') is None
        True
        """
        if b'"method"' not in line[:64]:  # a reply's head holds its id, not a method
            return None
        try:
            message = _decode(line)
        except ValueError:
            raise BadResponse(f"the server sent a line that is not JSON: {line[:80]!r}") from None
        if not isinstance(message, dict) or "id" in message or message.get("method") != EVENT:
            return None
        params = message.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("watch_id"), str):
            raise BadResponse(f"the server sent a malformed {EVENT}: {line[:80]!r}")
        return params

    @staticmethod
    def watch_params(
        job_id: str,
        streams: Sequence[str] | None,
        session_id: str | None,
        after: int | None,
        after_sub: int = 0,
    ) -> dict[str, Any]:
        """The params of a ``q_watch`` (``session_id``, ``after`` and ``after_sub`` only
        when given)."""
        params: dict[str, Any] = {
            "job_id": job_id,
            "streams": None if streams is None else list(streams),
        }
        if session_id is not None:
            params["session_id"] = session_id
        if after is not None:
            params["after"] = after
        if after_sub:
            params["after_sub"] = after_sub
        return params

    @staticmethod
    def watched(params: dict[str, Any]) -> dict[str, Any]:
        """A ``q_event``'s event as a watch yields it: ``{event, seq, sub, data}``.

        Raises:
            QMKError: the watch ended with an error (``end``, reason ``error``).
        """
        data = params.get("data")
        if params.get("event") == END and isinstance(data, dict) and data.get("reason") == "error":
            raise ClientCore.error(data.get("error"))
        seq, sub = params.get("seq"), params.get("sub")
        return {"event": params.get("event"), "seq": seq, "sub": sub, "data": data}

    @staticmethod
    def reply_id(line: bytes) -> tuple[Any, dict[str, Any]]:
        """The id and object of a reply line.

        Raises:
            BadResponse: the line is not a JSON-RPC 2.0 response object.
        """
        try:
            reply = _decode(line)
        except ValueError:
            raise BadResponse(f"the server sent a line that is not JSON: {line[:80]!r}") from None
        if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0" or "id" not in reply:
            raise BadResponse(f"the server sent a non-JSON-RPC reply: {line[:80]!r}")
        return reply["id"], reply

    def result(self, request_id: int, line: bytes) -> Any:
        """The result of the reply ``line`` to request ``request_id``, or its error raised."""
        return self.result_of(request_id, *self.reply_id(line))

    def result_of(self, request_id: int, reply_id: Any, reply: dict[str, Any]) -> Any:
        """As :meth:`result`, for a reply already decoded by :meth:`reply_id`."""
        error = reply.get("error")
        if error is not None:
            raise self.error(error)
        if reply_id != request_id:
            raise BadResponse(f"reply to request {reply_id!r} while waiting for {request_id}")
        if "result" not in reply:
            raise BadResponse("the reply has neither result nor error")
        return reply["result"]

    @staticmethod
    def error(error: Any) -> QMKError:
        """The exception for a JSON-RPC error object."""
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            return BadResponse(f"malformed error object: {error!r:.200}")
        code, message = error["code"], str(error.get("message", ""))
        data = error.get("data")
        details = data if isinstance(data, dict) else {}
        if -32768 <= code <= -32000:
            return rpc_error(code, message, details)
        return syscall_error(code, message, details)

    def remember(self, reply: Any, credentials: Credentials | None) -> Session:
        """Keep a q_negotiate_caps reply's JSON object as its :class:`Session` (and the
        credentials to renew it).

        Raises:
            BadResponse: ``reply`` is no session (the key it names).
        """
        session = self.session = Session.from_json(reply)
        self.session_id = session.session_id
        if credentials is not None:
            self.credentials = credentials
        return session

    def renewable(self, exc: QMKError, given: Mapping[str, Any]) -> bool:
        """Whether a failed call may be retried after renegotiating the client's session.

        Only when the session expired, the client holds the credentials, and the caller
        did not pass a ``session_id`` of its own (that one is the caller's to renew).
        """
        return (
            isinstance(exc, SessionExpired)
            and self.credentials is not None
            and given.get("session_id") is None
        )

    def negotiate_params(self, credentials: Credentials) -> dict[str, Any]:
        """The q_negotiate_caps params for ``credentials``."""
        return {
            "tenant": credentials.tenant,
            "key": credentials.key,
            "requested": list(credentials.caps),
        }


# --------------------------------------------------------------------------- blocking client


class BlockingSession:
    """The session of a blocking client on any wire (this module's :class:`Client`, and
    :class:`qmk.grpc.client.Client`): each gives its ``core``, ``_call`` and ``close``."""

    core: ClientCore

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def session_id(self) -> str | None:
        """The session the client's calls carry."""
        return self.core.session_id

    def negotiate(self, credentials: Credentials) -> Session:
        """Open a session for ``credentials`` and use it from now on."""
        reply = self._call("q_negotiate_caps", self.core.negotiate_params(credentials))
        return self.core.remember(reply, credentials)

    def _negotiated(
        self, tenant: str | None, key: str | None, caps: Sequence[str] | str | None
    ) -> None:
        """Negotiate a fresh session for ``tenant``, closing the client if that fails."""
        try:
            self.negotiate(Credentials.resolve(tenant, key, caps))
        except BaseException:
            self.close()
            raise


class Client(BlockingSession, SyscallMethods):
    """A blocking qSyscall client over one connection (not thread-safe: one call at a time).

    Args:
        address: the kernel's address (default: QMK_SOCKET).
        timeout: connect and call timeouts.
        session_id: an existing session to use.

    >>> Client("/nonexistent/qmk.sock").q_resource_query(session_id="s")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    qmk.abi.errors.ConnectError: QT001 connect-failed: unix:/nonexistent/qmk.sock: ...
    """

    def __init__(
        self,
        address: str | Address | None = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session_id: str | None = None,
        max_reply: int = DEFAULT_MAX_REPLY,
    ) -> None:
        self.address = resolve_address(address)
        self.timeout = timeout
        self.core = ClientCore(session_id=session_id)
        self.max_reply = max_reply
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._events: deque[dict[str, Any]] = deque()  # watches' events read meanwhile

    @classmethod
    def connect(
        cls,
        address: str | Address | None = None,
        *,
        tenant: str | None = None,
        key: str | None = None,
        caps: Sequence[str] | str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> Client:
        """A client with a fresh session (q_negotiate_caps) for ``tenant``.

        Raises:
            AuthError: unknown tenant or wrong key.
            ConnectError: nothing listens at the address.
        """
        client = cls(address, timeout=timeout)
        client._negotiated(tenant, key, caps)
        return client

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        spec = _spec(method)
        for attempt in (0, 1):
            sent = self.core.params(spec, params)
            request_id, line = self.core.request(method, sent)
            reply = self._roundtrip(line, self.timeout.for_call(method, sent))
            try:
                return self.core.result(request_id, reply)
            except QMKError as exc:
                if attempt or not self.core.renewable(exc, params):
                    raise
                assert self.core.credentials is not None
                self.negotiate(self.core.credentials)
        raise AssertionError("unreachable")

    def _connect(self) -> socket.socket:
        address, limit = self.address, self.timeout.connect
        try:
            if address.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(limit)
                try:
                    sock.connect(address.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(address.tcp(), timeout=limit)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            raise ConnectError(f"{address}: no answer within {limit} s") from None
        except OSError as exc:
            raise ConnectError(f"{address}: {exc.strerror or exc}") from None
        self._buffer.clear()
        return sock

    def watch(
        self,
        job_id: str,
        streams: Sequence[str] | None = None,
        *,
        session_id: str | None = None,
        after: int | None = None,
        after_sub: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """A job's events as they come (``q_watch``), through its ``end``: each
        ``{event, seq, sub, data}`` (:mod:`qmk.abi.watch`); ``streams`` names the artifacts
        whose stream parts come (None: all); ``after`` and ``after_sub`` resume past the
        ``seq`` and ``sub`` of the last event seen (:class:`qmk.abi.events.JobWatch`).
        Leaving the loop early ends the watch (``q_unwatch``). Other calls may be made
        meanwhile on this client. An event waits at most the call timeout (a running job
        sends ``progress`` every 2 s).

        Raises:
            QMKError: what ``q_watch`` refuses (``QS1006`` past the stream limits), or
                the error the watch ended with.
        """
        params = ClientCore.watch_params(job_id, streams, session_id, after, after_sub)
        watch_id = self._call("q_watch", params)["watch_id"]
        ended = False
        try:
            while True:
                event = ClientCore.watched(self._next_event(watch_id))
                if event["event"] == END:
                    ended = True
                yield event
                if ended:
                    return
        finally:
            if not ended and self._sock is not None:
                with contextlib.suppress(QMKError):
                    unwatch = {"watch_id": watch_id, "session_id": session_id}
                    self._call("q_unwatch", unwatch)
                    self._events = deque(e for e in self._events if e["watch_id"] != watch_id)

    def _next_event(self, watch_id: str) -> dict[str, Any]:
        """The next event of ``watch_id``: one read meanwhile, else the next from the wire."""
        for index, params in enumerate(self._events):
            if params["watch_id"] == watch_id:
                del self._events[index]
                return params
        if self._sock is None:
            raise ConnectionClosed(f"{self.address}: the connection of the watch is closed")
        while True:
            line = self._exchange(None, self.timeout.call)
            event = ClientCore.event_of(line)
            if event is None:
                self.close()
                raise BadResponse(f"a reply to no call came while watching: {line[:80]!r}")
            if event["watch_id"] == watch_id:
                return event
            self._events.append(event)

    def _roundtrip(self, line: bytes, timeout: float | None) -> bytes:
        while True:  # a watch's events that come before the reply wait for the watch
            reply = self._exchange(line, timeout)
            line = b""
            params = ClientCore.event_of(reply)
            if params is None:
                return reply
            self._events.append(params)

    def _exchange(self, line: bytes | None, timeout: float | None) -> bytes:
        """Send ``line`` (if any), then read one line."""
        if self._sock is None:
            self._sock = self._connect()
        sock = self._sock
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            sock.settimeout(timeout)
            if line:
                sock.sendall(line)
            while True:
                end = self._buffer.find(b"\n")
                if end >= 0:
                    reply = bytes(self._buffer[: end + 1])
                    del self._buffer[: end + 1]
                    return reply
                if len(self._buffer) > self.max_reply:
                    raise BadResponse(f"a reply line is longer than {self.max_reply} bytes")
                if deadline is not None:
                    sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionClosed(f"{self.address}: the server closed the connection")
                self._buffer += chunk
        except TimeoutError:
            self.close()  # a late reply would answer the wrong call: start afresh
            raise CallTimeout(f"{self.address}: no reply within {timeout} s") from None
        except OSError as exc:
            self.close()
            raise ConnectionClosed(f"{self.address}: {exc.strerror or exc}") from None
        except QMKError:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection (the session stays valid until it expires)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- async client


class AsyncClient(AsyncSyscallMethods):
    """An asyncio qSyscall client; concurrent calls share one connection (pipelined).

    Use ``async with await AsyncClient.connect(path, tenant=..., key=...) as client``,
    or call :meth:`aclose`. A reader task, owned by the client and ended by
    :meth:`aclose`, routes each reply to its call by id.
    """

    def __init__(
        self,
        address: str | Address | None = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session_id: str | None = None,
        max_reply: int = DEFAULT_MAX_REPLY,
    ) -> None:
        self.address = resolve_address(address)
        self.timeout = timeout
        self.core = ClientCore(session_id=session_id)
        self.max_reply = max_reply
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._connecting = asyncio.Lock()
        self._outgoing: list[bytes] = []  # request lines written together at a turn's end
        self._flush_scheduled = False
        self._watches: dict[str, asyncio.Queue[dict[str, Any]]] = {}  # events by watch

    @classmethod
    async def connect(
        cls,
        address: str | Address | None = None,
        *,
        tenant: str | None = None,
        key: str | None = None,
        caps: Sequence[str] | str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> AsyncClient:
        """A client with a fresh session (q_negotiate_caps) for ``tenant``."""
        client = cls(address, timeout=timeout)
        try:
            await client.negotiate(Credentials.resolve(tenant, key, caps))
        except BaseException:
            await client.aclose()
            raise
        return client

    @property
    def session_id(self) -> str | None:
        """The session the client's calls carry."""
        return self.core.session_id

    async def negotiate(self, credentials: Credentials) -> Session:
        """Open a session for ``credentials`` and use it from now on."""
        reply = await self._call("q_negotiate_caps", self.core.negotiate_params(credentials))
        return self.core.remember(reply, credentials)

    async def watch(
        self,
        job_id: str,
        streams: Sequence[str] | None = None,
        *,
        session_id: str | None = None,
        after: int | None = None,
        after_sub: int = 0,
    ) -> AsyncIterator[dict[str, Any]]:
        """:meth:`Client.watch` for asyncio: ``async for event in client.watch(job_id)``.
        The client's reader keeps each watch's events until the loop takes them."""
        params = ClientCore.watch_params(job_id, streams, session_id, after, after_sub)
        watch_id = (await self._call("q_watch", params))["watch_id"]
        queue = self._watches.setdefault(watch_id, asyncio.Queue())
        ended = False
        try:
            while True:
                async with aio.timeout(self.timeout.call):
                    params = await queue.get()
                if not params:  # the connection closed
                    raise ConnectionClosed(f"{self.address}: the server closed the connection")
                event = ClientCore.watched(params)
                if event["event"] == END:
                    ended = True
                yield event
                if ended:
                    return
        except TimeoutError:
            raise CallTimeout(f"{self.address}: no event within {self.timeout.call} s") from None
        finally:
            self._watches.pop(watch_id, None)
            if not ended and self._writer is not None:
                with contextlib.suppress(QMKError):
                    await self._call("q_unwatch", {"watch_id": watch_id, "session_id": session_id})

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        spec = _spec(method)
        for attempt in (0, 1):
            sent = self.core.params(spec, params)
            request_id, line = self.core.request(method, sent)
            reply = await self._roundtrip(request_id, line, self.timeout.for_call(method, sent))
            try:
                return self.core.result_of(request_id, reply.get("id"), reply)
            except QMKError as exc:
                if attempt or not self.core.renewable(exc, params):
                    raise
                assert self.core.credentials is not None
                await self.negotiate(self.core.credentials)
        raise AssertionError("unreachable")

    async def _open(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is not None:
                return self._writer
            address = self.address
            async with connecting(address, self.timeout.connect):
                if address.path is not None:
                    reader, writer = await asyncio.open_unix_connection(
                        address.path, limit=self.max_reply
                    )
                else:
                    host, port = address.tcp()
                    reader, writer = await asyncio.open_connection(host, port, limit=self.max_reply)
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_replies(reader))
            return writer

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        """Route every reply line to the call waiting for its id, until the stream ends."""
        failure: QMKError = ConnectionClosed(f"{self.address}: the server closed the connection")
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except asyncio.LimitOverrunError:
                    failure = BadResponse(f"a reply line is longer than {self.max_reply} bytes")
                    break
                try:
                    event = ClientCore.event_of(line)
                    if event is not None:  # a watch's: its queue (made here if first)
                        self._watches.setdefault(event["watch_id"], asyncio.Queue()).put_nowait(
                            event
                        )
                        continue
                    reply_id, reply = ClientCore.reply_id(line)
                except BadResponse as exc:
                    failure = exc
                    break
                future = self._pending.pop(reply_id, None) if isinstance(reply_id, int) else None
                if future is not None and not future.done():
                    future.set_result(reply)
                elif reply_id is None:  # an error the server could not tie to a request
                    failure = ClientCore.error(reply.get("error"))
                    break
        finally:
            self._fail_pending(failure)
            for queue in self._watches.values():
                queue.put_nowait({})  # the watches end: the connection is gone
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def _fail_pending(self, failure: QMKError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(failure)

    def _flush(self) -> None:
        """Write the request lines queued in this loop turn with one ``write``."""
        self._flush_scheduled = False
        lines, self._outgoing = self._outgoing, []
        writer = self._writer
        if lines and writer is not None and not writer.is_closing():
            writer.write(lines[0] if len(lines) == 1 else b"".join(lines))

    async def _roundtrip(
        self, request_id: int, line: bytes, timeout: float | None
    ) -> dict[str, Any]:
        writer = self._writer or await self._open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[request_id] = future
        try:
            # the turn's first request goes at once; the other calls of the same turn
            # share one write at its end (pipelining)
            if self._flush_scheduled:
                self._outgoing.append(line)
            else:
                self._flush_scheduled = True
                loop.call_soon(self._flush)
                writer.write(line)
            transport = writer.transport
            if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
                await writer.drain()  # the server reads too slowly: wait for it
            async with aio.timeout(timeout):
                return await future
        except TimeoutError:
            raise CallTimeout(f"{self.address}: no reply within {timeout} s") from None
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(f"{self.address}: {exc}") from None
        finally:
            self._pending.pop(request_id, None)

    async def aclose(self) -> None:
        """Close the connection and end the reader task (the session stays valid)."""
        task, self._reader_task = self._reader_task, None
        if self._writer is not None:
            self._writer.close()
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # our own cancellation still propagates
        self._writer = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
