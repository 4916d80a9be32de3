"""Errors of the wire layer: JSON-RPC 2.0's own error codes and the client's transport errors.

The kernel's refusals are :class:`qmk.errors.SyscallError` subclasses (codes 1001..);
this module adds the errors that belong to the protocol itself, one class per
JSON-RPC reserved code, and the errors a client meets before any reply arrives::

    QMKError
     +-- RpcError                      an error object with a JSON-RPC reserved code
     |    +-- ParseError       -32700  the line is not JSON (or not UTF-8)
     |    +-- InvalidRequest   -32600  JSON, but not a JSON-RPC 2.0 request
     |    +-- MethodNotFound   -32601  no such qSyscall method
     |    +-- InvalidParams    -32602  params missing, unknown or of the wrong JSON type
     |    +-- InternalError    -32603  the server failed (a bug; logged server-side)
     +-- TransportError                the client could not talk to the server
          +-- ConnectError             no server at that address
          +-- ConnectionClosed         the server closed the connection
          +-- CallTimeout              no reply within the call's timeout
          +-- BadResponse              the reply is not a JSON-RPC 2.0 response

>>> err = InvalidParams("q_status: missing required param 'job_id'")
>>> err.to_rpc()["code"], err.to_rpc()["data"]["name"]
(-32602, 'invalid-params')
>>> type(rpc_error(-32601, "no such method")).__name__
'MethodNotFound'
"""

from __future__ import annotations

from typing import Any

from qmk.errors import QMKError


class RpcError(QMKError):
    """An error that JSON-RPC 2.0 itself defines (codes -32768..-32000).

    Args:
        message: one line saying what was wrong.
        details: JSON-able data sent in ``error.data`` next to ``name`` and ``code``.
    """

    rpc_code: int = -32000
    error_name: str = "rpc-error"
    exit_status = 2

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(f"QR{-self.rpc_code}", self.error_name, message, details=details)

    def to_rpc(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` object."""
        return {
            "code": self.rpc_code,
            "message": str(self),
            "data": {"name": self.name, "code": self.code, **self.details},
        }


class ParseError(RpcError):
    """The line is not valid UTF-8 JSON."""

    rpc_code, error_name = -32700, "parse-error"


class InvalidRequest(RpcError):
    """The JSON is not a valid JSON-RPC 2.0 request object (or the line is too long)."""

    rpc_code, error_name = -32600, "invalid-request"


class MethodNotFound(RpcError):
    """The method is not a qSyscall method."""

    rpc_code, error_name = -32601, "method-not-found"


class InvalidParams(RpcError):
    """The params do not match the method's table entry (presence, names, JSON types)."""

    rpc_code, error_name = -32602, "invalid-params"


class InternalError(RpcError):
    """The server failed while handling a valid request: a bug, logged on the server."""

    rpc_code, error_name = -32603, "internal-error"
    exit_status = 3


#: rpc_code -> class for JSON-RPC's reserved codes.
RPC_ERRORS: dict[int, type[RpcError]] = {
    cls.rpc_code: cls
    for cls in (ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError)
}


def rpc_error(rpc_code: int, message: str, details: dict[str, Any] | None = None) -> RpcError:
    """The exception for a JSON-RPC error object with a reserved code (-32768..-32000)."""
    cls = RPC_ERRORS.get(rpc_code, RpcError)
    details = dict(details or {})
    details.pop("name", None)
    details.pop("code", None)
    return cls(message.removeprefix(f"QR{-cls.rpc_code} {cls.error_name}: "), **details)


class TransportError(QMKError):
    """The client could not exchange messages with the server."""

    exit_status = 1
    transport_code = "QT000"
    transport_name = "transport-error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(self.transport_code, self.transport_name, message, details=details)


class ConnectError(TransportError):
    """Nothing listens at the address (no socket file, connection refused)."""

    transport_code, transport_name = "QT001", "connect-failed"


class ConnectionClosed(TransportError):
    """The server closed the connection before replying (it stopped, or refused the line)."""

    transport_code, transport_name = "QT002", "connection-closed"


class CallTimeout(TransportError):
    """No reply arrived within the call's timeout (the request may still run)."""

    transport_code, transport_name = "QT003", "call-timeout"


class BadResponse(TransportError):
    """The server's reply is not a JSON-RPC 2.0 response to our request."""

    transport_code, transport_name = "QT004", "bad-response"
