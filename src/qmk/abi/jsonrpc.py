"""The JSON-RPC 2.0 protocol core: one line of bytes in, one line of bytes out (or none).

Transport-free: :class:`RpcCore` knows nothing of sockets. The server hands it each
newline-delimited line it reads and writes back what it returns; tests call it
directly. It implements JSON-RPC 2.0 exactly:

- a request is an object with ``"jsonrpc": "2.0"``, a string ``method``, optional
  ``params`` (object or array) and optional ``id`` (string, number or null);
  without ``id`` it is a notification and gets no reply, even when it fails;
- a batch is a non-empty array of requests, answered by an array of the replies
  that are due (none at all when every element is a notification); an empty
  array is one Invalid Request error;
- errors: -32700 the line is not UTF-8 JSON; -32600 not a valid request;
  -32601 no such method; -32602 params that do not match :data:`METHODS`;
  -32603 an unexpected failure (logged here with its traceback, sent as a
  generic message with an ``incident`` id: tracebacks never cross the wire);
  a :class:`qmk.errors.SyscallError` the target raises is sent as ``to_rpc()``.

Every error object carries ``data.name`` (and ``data.code``, QMK's stable code).
Blank lines are ignored, so a person can type requests into ``socat``.

>>> import asyncio
>>> class Echo:
...     async def q_status(self, *, session_id, job_id):
...         return {"job_id": job_id, "state": "QUEUED"}
>>> core = RpcCore(Echo())
>>> line = b'{"jsonrpc": "2.0", "id": 1, "method": "q_status", "params": ["s", "j"]}'
>>> asyncio.run(core.handle_line(line))
b'{"jsonrpc":"2.0","id":1,"result":{"job_id":"j","state":"QUEUED"}}\\n'
>>> asyncio.run(core.handle_line(b'[]'))  # doctest: +ELLIPSIS
b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,...}}\\n'
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import qmk.aio as aio
from qmk.abi.errors import (
    InternalError,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RpcError,
)
from qmk.abi.methods import METHODS, MethodSpec, bind_params
from qmk.errors import QMKError, SyscallError

LOG = logging.getLogger("qmk.abi")

#: The most requests one batch may hold; a longer batch is one Invalid Request error.
DEFAULT_MAX_BATCH = 1000

_MISSING = object()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(line: bytes) -> Any:
    """The JSON value of one line (strict: UTF-8, no NaN/Infinity).

    Raises:
        ParseError: the line is not UTF-8 or not one JSON value.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"the line is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ParseError("the JSON nests too deeply") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ParseError(f"invalid JSON{where}: {reason}") from None


def encode(message: Any) -> bytes:
    """One message as a compact UTF-8 JSON line ending in ``\\n``."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + b"\n"


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def error_object(exc: BaseException) -> dict[str, Any]:
    """The JSON-RPC ``error`` object for an exception raised while handling a request.

    SyscallError and RpcError send their own ``to_rpc()``; any other QMKError (a
    deliberate one-line error) is sent with code 1000 and its own name and code;
    anything else is an internal error with a generic message.
    """
    if isinstance(exc, (SyscallError, RpcError)):
        return exc.to_rpc()
    if isinstance(exc, QMKError):
        return {
            "code": SyscallError.rpc_code,
            "message": str(exc),
            "data": {"name": exc.name, "code": exc.code, **exc.details},
        }
    incident = secrets.token_hex(6)
    LOG.error("internal error (incident %s)", incident, exc_info=exc)
    return InternalError(
        f"the server failed while handling the request (incident {incident})",
        incident=incident,
    ).to_rpc()


def _reply(request_id: Any, *, result: Any = _MISSING, error: Any = _MISSING) -> dict[str, Any]:
    if error is not _MISSING:
        return {"jsonrpc": "2.0", "id": request_id, "error": error}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


class RpcCore:
    """Answers JSON-RPC 2.0 lines by calling the target's coroutine methods.

    Args:
        target: an object with one ``async def NAME(**params)`` per method in
            ``methods`` (the kernel); keyword arguments are named as on the wire.
        methods: the method table (default :data:`qmk.abi.methods.METHODS`).
        max_batch: the most requests one batch may hold.
    """

    def __init__(
        self,
        target: object,
        *,
        methods: Mapping[str, MethodSpec] = METHODS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.target = target
        self.methods = methods
        self.max_batch = max_batch

    async def handle_line(self, line: bytes) -> bytes | None:
        """The reply line to one request line, or None when no reply is due."""
        if not line.strip():
            return None
        try:
            message = decode(line)
        except ParseError as exc:
            return encode(_reply(None, error=exc.to_rpc()))
        return await self.handle_message(message)

    async def handle_message(self, message: Any) -> bytes | None:
        """The reply line to one decoded message (request or batch), or None."""
        if isinstance(message, list):
            if not message:
                return encode(_reply(None, error=InvalidRequest("empty batch").to_rpc()))
            if len(message) > self.max_batch:
                error = InvalidRequest(
                    f"a batch holds at most {self.max_batch} requests, got {len(message)}"
                )
                return encode(_reply(None, error=error.to_rpc()))
            async with aio.TaskGroup() as group:
                tasks = [group.create_task(self.handle_request(item)) for item in message]
            parts = [_encode_reply(reply) for task in tasks if (reply := task.result())]
            if not parts:
                return None
            return b"[" + b",".join(part.rstrip(b"\n") for part in parts) + b"]\n"
        reply = await self.handle_request(message)
        return None if reply is None else _encode_reply(reply)

    async def handle_request(self, request: Any) -> dict[str, Any] | None:
        """The reply object to one request, or None for a notification."""
        if not isinstance(request, dict):
            return _reply(None, error=InvalidRequest("a request must be a JSON object").to_rpc())
        notification = "id" not in request
        request_id = request.get("id")
        if not _valid_id(request_id):
            error = InvalidRequest("id must be a string, a number or null")
            return _reply(None, error=error.to_rpc())
        try:
            spec, params = self._parse(request)
        except RpcError as exc:
            if notification and not isinstance(exc, InvalidRequest):
                return None
            return _reply(request_id, error=exc.to_rpc())
        try:
            result = await self._call(spec, params)
        except Exception as exc:
            if notification:
                if not isinstance(exc, QMKError):
                    error_object(exc)  # logs it
                return None
            return _reply(request_id, error=error_object(exc))
        return None if notification else _reply(request_id, result=result)

    def _parse(self, request: dict[str, Any]) -> tuple[MethodSpec, dict[str, Any]]:
        if request.get("jsonrpc") != "2.0":
            raise InvalidRequest('the request must carry "jsonrpc": "2.0"')
        method = request.get("method", _MISSING)
        if not isinstance(method, str):
            raise InvalidRequest("method must be a string")
        params = request.get("params")
        if "params" in request and not isinstance(params, (dict, list)):
            raise InvalidRequest("params must be an object or an array")
        spec = self.methods.get(method)
        if spec is None or getattr(self.target, method, None) is None:
            raise MethodNotFound(f"no method {method!r}", method=method)
        return spec, bind_params(spec, params)

    async def _call(self, spec: MethodSpec, params: dict[str, Any]) -> Any:
        return await getattr(self.target, spec.name)(**params)


def _encode_reply(reply: dict[str, Any]) -> bytes:
    """A reply as a line; a result or error that is not JSON becomes an internal error."""
    try:
        return encode(reply)
    except (TypeError, ValueError) as exc:
        if "error" in reply:
            slim = {key: reply["error"][key] for key in ("code", "message")}
            return encode(_reply(reply["id"], error=slim))
        return encode(_reply(reply["id"], error=error_object(exc)))
