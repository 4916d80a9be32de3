"""The gateway's line to the kernel: one pipelined JSON-RPC connection, read by its protocol.

A gateway forwards every caller's syscall to the kernel, so the cost of each call on this
line is added to each request's time. :class:`KernelLine` keeps that cost low:

- a reply is decoded where its bytes arrive (:meth:`_Line.data_received`) and handed to
  its call's future, with no reader task or stream buffer between;
- a request is written as it is made, encoded by msgspec;
- its params are sent as the wire gave them: the gateway's door bound them to the method
  table already (:func:`~qmk.abi.methods.bind_params`), and the kernel binds them again;
- a reply's result is cut out of its line unread (``msgspec.Raw``): :meth:`KernelLine.relay`
  hands it on as the kernel wrote it (:class:`Relayed`), and only a typed call decodes it.

Replies and errors are read as the client reads them (:class:`~qmk.client.ClientCore`),
so a refusal raises the same coded exception. Watches are not carried here: they stay
on :class:`~qmk.client.AsyncClient` (:class:`qmk.gateway.http.RemoteWatches`).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from qmk.abi.calls import AsyncSyscallMethods
from qmk.abi.errors import BadResponse, ConnectionClosed, InvalidParams
from qmk.abi.methods import SupportsJson
from qmk.client import DEFAULT_MAX_REPLY, Address, ClientCore, connecting, resolve_address

#: The types of plain JSON values (a param of one of them is sent as it is).
_PLAIN = frozenset({str, int, bool, list, dict, tuple, type(None)})
#: A struct a reader reads a relayed result as (:meth:`Relayed.read_as`).
S = TypeVar("S", bound=msgspec.Struct)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class _Reply(msgspec.Struct):
    """A reply line's members, its result left unread."""

    jsonrpc: Any = None
    id: Any = msgspec.UNSET
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: Any = None


_decode_reply = msgspec.json.Decoder(_Reply).decode


class _Heads(msgspec.Struct):
    """The members of a reply that the gateway reads besides relaying it."""

    job_id: Any = None
    tenant: Any = None
    session_id: Any = None


class Relayed:
    """A syscall's result as the kernel wrote it: JSON bytes that a writer splices in
    unread (``__json_bytes__``), so a reply only passed on is neither decoded nor
    encoded again, and its text is the kernel's own (the same bytes the kernel's own
    process answers). The members the gateway reads of it (``job_id``, ``tenant``,
    ``session_id``: a header, a login to remember, a job to follow) are read at the first
    ask; one that is absent, or a result that is no object, reads None.
    """

    __slots__ = ("_heads", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._heads: _Heads | None = None

    def __json_bytes__(self) -> bytes:
        return self.data

    def _read(self) -> _Heads:
        heads = self._heads
        if heads is None:
            heads = self._heads = self.read_as(_Heads) or _Heads()  # no object: no names
        return heads

    def read_as(self, kind: type[S]) -> S | None:
        """The result read as ``kind``, a struct of the members a reader wants (its
        other members skipped unread: a wire that writes a few members its own way,
        gRPC's typed fields, and passes the rest on as the kernel's JSON builds no
        object of the rest); None for a result that is no object."""
        try:
            return _decoder(kind)(self.data)
        except msgspec.ValidationError:
            return None
        except msgspec.DecodeError:  # cut out at its framing (_reply_of), read here first
            raise _not_json(self.data) from None

    @property
    def job_id(self) -> Any:
        return self._read().job_id

    @property
    def tenant(self) -> Any:
        return self._read().tenant

    @property
    def session_id(self) -> Any:
        return self._read().session_id


@functools.cache
def _decoder(kind: type[S]) -> Callable[[bytes], S]:
    """The decoder of the struct ``kind`` (one per struct, made at its first read)."""
    return msgspec.json.Decoder(kind).decode


class KernelLine(AsyncSyscallMethods):
    """The kernel's syscalls, typed (:class:`~qmk.abi.calls.AsyncSyscallMethods`), on one
    pipelined connection that opens at the first call and again at the first call after
    it closed.

    Args:
        address: the kernel's socket (or ``HOST:PORT``).
        connect_timeout_s: how long a connection may take to open (None: no limit).
        max_reply: the longest reply line read (a longer one ends the connection).
    """

    def __init__(
        self,
        address: str | Address,
        *,
        connect_timeout_s: float | None = None,
        max_reply: int = DEFAULT_MAX_REPLY,
    ) -> None:
        self.address = resolve_address(address)
        self.connect_timeout_s = connect_timeout_s
        self.max_reply = max_reply
        self._line: _Line | None = None
        self._connecting = asyncio.Lock()

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        params = _plain(params)
        line = self._line
        if line is None or line.closed:
            line = await self._open()
        result = await line.call(method, params)
        try:
            return _decode(result)
        except msgspec.DecodeError:
            raise _not_json(result) from None

    async def relay(self, method: str, params: dict[str, Any]) -> Relayed:
        """The result of ``method`` called with ``params`` (bound to the method table
        already), as the kernel wrote it.

        Raises:
            QMKError: the kernel's refusal, as the client raises it.
            ConnectionClosed, ConnectError: the kernel is away.
        """
        params = _plain(params)  # as _call: no frame between a call and its line's
        line = self._line
        if line is None or line.closed:
            line = await self._open()
        return Relayed(bytes(await line.call(method, params)))

    async def _open(self) -> _Line:
        async with self._connecting:
            if self._line is not None and not self._line.closed:
                return self._line
            address = self.address
            loop = asyncio.get_running_loop()
            made = lambda: _Line(str(address), self.max_reply)  # noqa: E731
            async with connecting(address, self.connect_timeout_s):
                if address.path is not None:
                    _, line = await loop.create_unix_connection(made, address.path)
                else:
                    host, port = address.tcp()
                    _, line = await loop.create_connection(made, host, port)
            self._line = line
            return line

    async def aclose(self) -> None:
        """Close the connection (calls in flight fail with ``ConnectionClosed``)."""
        line, self._line = self._line, None
        if line is not None:
            line.close()


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as JSON values: a value that is no plain JSON type as its ``to_json()``.

    A float that is not finite is refused here, as the client's encoder refuses it
    (msgspec would write it as null).

    Raises:
        InvalidParams: a param is an infinity or NaN.
    """
    plain = True
    for name, value in params.items():
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise InvalidParams(f"param {name!r} must be a finite number", param=name)
        elif kind not in _PLAIN:
            plain = False
    if plain:
        return params
    return {
        name: value.to_json()
        if type(value) not in _PLAIN and isinstance(value, SupportsJson)
        else value
        for name, value in params.items()
    }


def _not_json(result: bytes | msgspec.Raw) -> BadResponse:
    """The refusal of a result that is no JSON (its line was framed as a reply)."""
    return BadResponse(f"the server sent a result that is not JSON: {bytes(result)[:80]!r}")


class _Line(asyncio.Protocol):
    """One connection to the kernel: each request's future, answered from the reply
    lines as they are read."""

    def __init__(self, address: str, max_reply: int) -> None:
        self._address = address
        self._max_reply = max_reply
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()  # made on its loop (KernelLine._open)
        self._pending: dict[int, asyncio.Future[_Reply]] = {}
        self._next_id = 0
        self._partial = bytearray()  # a reply line not whole yet
        self._drained: asyncio.Future[None] | None = None  # while the kernel reads slowly
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    async def call(self, method: str, params: dict[str, Any]) -> msgspec.Raw:
        """The result of ``method`` called with ``params``, unread, or its error raised.

        Raises:
            QMKError: the kernel's refusal, as the client raises it.
            ConnectionClosed: the connection closed before the reply.
        """
        transport = self._transport
        if transport is None or self.closed:
            raise ConnectionClosed(f"{self._address}: the connection is closed")
        self._next_id += 1
        request_id = self._next_id
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        future = self._loop.create_future()
        self._pending[request_id] = future
        try:
            transport.write(_encode(message) + b"\n")
            if self._drained is not None:  # the kernel reads too slowly: wait for it
                await asyncio.shield(self._drained)
            reply = await future
        finally:
            self._pending.pop(request_id, None)
        if reply.error is not None:
            raise ClientCore.error(reply.error)
        if reply.result is msgspec.UNSET:
            raise BadResponse("the reply has neither result nor error")
        return reply.result

    def data_received(self, data: bytes) -> None:
        start = 0
        end = data.find(b"\n")
        if self._partial:  # a line begun in an earlier read
            if end < 0:
                self._partial += data
                if len(self._partial) > self._max_reply:
                    self._fail(BadResponse(f"a reply line is longer than {self._max_reply} bytes"))
                return
            line = bytes(self._partial) + data[:end]
            self._partial.clear()
            if not self._take(line):
                return
            start = end + 1
            end = data.find(b"\n", start)
        while end >= 0:
            if not self._take(data[start:end]):
                return
            start = end + 1
            end = data.find(b"\n", start)
        if start < len(data):
            self._partial += data[start:]
            if len(self._partial) > self._max_reply:
                self._fail(BadResponse(f"a reply line is longer than {self._max_reply} bytes"))

    def _take(self, line: bytes) -> bool:
        """Hand the reply ``line`` to its call; False once the connection failed on it."""
        try:
            if ClientCore.event_of(line) is not None:
                return True  # a watch's event: no watch is made on this line
            reply = _reply_of(line)
        except BadResponse as exc:
            self._fail(exc)
            return False
        reply_id = reply.id
        future = self._pending.pop(reply_id, None) if type(reply_id) is int else None
        if future is not None:
            if not future.done():
                future.set_result(reply)
        elif reply_id is None:  # an error the kernel could not tie to a request
            self._fail(ClientCore.error(reply.error))
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionClosed(f"{self._address}: the kernel closed the connection"))

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def close(self) -> None:
        """Close the connection (calls in flight fail)."""
        self._fail(ConnectionClosed(f"{self._address}: the gateway closed the connection"))

    def _fail(self, failure: Exception) -> None:
        """End the connection: every call in flight fails with ``failure``."""
        self.closed = True
        self._partial.clear()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(failure)
        self.resume_writing()
        if self._transport is not None:
            self._transport.close()


#: How the kernel frames a result: ``{"jsonrpc":"2.0","id":N,"result":`` (its members
#: in this order, no spaces: :func:`qmk.abi.jsonrpc.encode`), the result, then ``}``.
_RESULT_HEAD = b'{"jsonrpc":"2.0","id":'
_RESULT_AFTER_ID = b',"result":'
#: The most digits of an id this line gives (its own counter).
_ID_DIGITS = 19


def _reply_of(line: bytes) -> _Reply:
    """The reply ``line``, its result unread (the checks of
    :meth:`~qmk.client.ClientCore.reply_id`).

    A result framed as the kernel frames it (:data:`_RESULT_HEAD`) is cut out of its
    line at its framing: its bytes are not skipped through here, once, only to be read
    again by their reader (the relayed heads, a typed decode, gRPC's fields), which
    reads them whole and refuses a result that is not JSON (:meth:`Relayed.read_as`).
    Any other line (an error, another framing) is decoded.

    Raises:
        BadResponse: the line is not a JSON-RPC 2.0 response object.
    """
    if line.startswith(_RESULT_HEAD) and line.endswith(b"}"):
        start = len(_RESULT_HEAD)
        comma = line.find(_RESULT_AFTER_ID, start, start + _ID_DIGITS + len(_RESULT_AFTER_ID))
        if comma > start:
            digits = line[start:comma]
            if digits.isdigit() and (digits[0] != 0x30 or comma == start + 1):  # no 0 first
                result = msgspec.Raw(line[comma + len(_RESULT_AFTER_ID) : -1])
                return _Reply("2.0", int(digits), result)
    try:
        reply = _decode_reply(line)
    except msgspec.ValidationError:
        reply = None
    except msgspec.DecodeError:
        raise BadResponse(f"the server sent a line that is not JSON: {line[:80]!r}") from None
    if reply is None or reply.jsonrpc != "2.0" or reply.id is msgspec.UNSET:
        raise BadResponse(f"the server sent a non-JSON-RPC reply: {line[:80]!r}")
    return reply


__all__ = ["KernelLine", "Relayed"]
