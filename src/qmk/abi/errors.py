"""Errors of the wire layer: JSON-RPC 2.0's own error codes (``QR``), the client's transport
errors (``QT``), and a server or service command that cannot start (``QW``).

The kernel's refusals are :class:`qmk.errors.SyscallError` subclasses (``QS``, JSON-RPC
codes 1000..); this module adds one class per JSON-RPC reserved code, the errors a client
meets before any reply arrives, and registers the three families in
:data:`qmk.errors.REGISTRY`. The whole exception tree is drawn in :mod:`qmk.errors`.

>>> err = InvalidParams("q_status: missing required param 'job_id'")
>>> err.to_rpc()["code"], err.to_rpc()["data"]["name"]
(-32602, 'invalid-params')
>>> type(rpc_error(-32601, "no such method")).__name__
'MethodNotFound'
>>> str(ServeError.of("socket-in-use", "/run/qmk.sock: a server already listens there"))
'QW002 socket-in-use: /run/qmk.sock: a server already listens there'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, cast

from qmk.errors import REGISTRY, ErrorCode, QMKError, class_code, register, wire_code

# --------------------------------------------------------------------------- QW


class ServeError(QMKError):
    """The server cannot start: a bad address, a socket in use, a path it cannot bind."""


class CommandError(QMKError):
    """A service command that cannot run: unreadable data dir, bad option value."""


register(
    ServeError,
    (
        "QW001",
        "bad-address",
        "a listening address that is not HOST:PORT",
        "write --tcp HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000",
    ),
    (
        "QW002",
        "socket-in-use",
        "a server already listens on the socket path",
        "stop that server, or pick another --socket path",
    ),
    (
        "QW003",
        "cannot-bind",
        "the address cannot be bound (a path that is not a socket, no permission, in use)",
        "pick an address this user may bind; remove a stale file that is not a socket",
    ),
    (
        "QW004",
        "bad-server-config",
        "a key of the config's [server] table that is unknown or out of range",
        "use the keys and ranges docs/qsyscall.md lists under 'Server limits'",
    ),
    (
        "QW005",
        "too-few-descriptors",
        "RLIMIT_NOFILE leaves no file descriptor for connections beside those the server "
        "holds and its reserve for workers and the database",
        "raise the limit (ulimit -n) or lower server.fd_reserve",
    ),
    (
        "QW006",
        "gateway-ended",
        "a gateway process qmk serve started ended before it served",
        "read the gateway's lines before this one; run qmk gateway http alone to see why",
    ),
)
register(
    CommandError,
    (
        "QW010",
        "unreadable-data-dir",
        "the kernel's data directory (or its audit log) cannot be read",
        "check the path and its permissions",
    ),
    (
        "QW011",
        "bad-option",
        "a command-line option is missing or has a value the command cannot use",
        "give the option the message names (qmk COMMAND --help lists them)",
    ),
    (
        "QW012",
        "no-attestation",
        "the audit log holds no attestation of the job (it did not complete there, or its "
        "graph is gone)",
        "check the job id with qmk status; only COMPLETED jobs are attested",
    ),
    (
        "QW013",
        "bad-workflow",
        "a workflow file that does not read, or asks for steps, sweeps or options QMK cannot run",
        "fix the file at the key the message names (docs/workflows.md)",
    ),
    (
        "QW014",
        "bad-trigger",
        "a workflow trigger that cannot run: no or two schedules, a cron expression that "
        "does not parse or never fires, an event QMK does not have, a state no job ends in",
        "fix the option the message names (docs/workflows.md#triggers)",
    ),
)

# --------------------------------------------------------------------------- QR


class RpcError(QMKError):
    """An error that JSON-RPC 2.0 itself defines (codes -32768..-32000).

    Args:
        message: one line saying what was wrong.
        details: JSON-able data sent in ``error.data`` next to ``name`` and ``code``.
    """

    rpc_code: ClassVar[int] = -32000
    error_name: ClassVar[str] = "rpc-error"
    exit_status = 2
    fixed_code = True

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


REGISTRY.add(
    wire_code(
        RpcError,
        "see the message; the server sent a JSON-RPC error this client has no class for",
        "a JSON-RPC reserved error code this client does not know",
    ),
    wire_code(ParseError, "send one UTF-8 JSON object per line"),
    wire_code(InvalidRequest, "send a JSON-RPC 2.0 request: jsonrpc, id, method, params"),
    wire_code(MethodNotFound, "call a method docs/qsyscall.md lists"),
    wire_code(
        InvalidParams, "give the params the method's table entry lists, with their JSON types"
    ),
    wire_code(InternalError, "report it with the server's log; the request may be retried"),
)

#: rpc_code -> class for JSON-RPC's reserved codes.
RPC_ERRORS: Mapping[int, type[RpcError]] = MappingProxyType(
    {
        entry.rpc_code: cast(type[RpcError], entry.exception)
        for entry in REGISTRY.family("QR").values()
        if entry.rpc_code is not None and entry.exception is not RpcError
    }
)


def rpc_error(rpc_code: int, message: str, details: dict[str, Any] | None = None) -> RpcError:
    """The exception for a JSON-RPC error object with a reserved code (-32768..-32000)."""
    cls = RPC_ERRORS.get(rpc_code, RpcError)
    details = dict(details or {})
    details.pop("name", None)
    details.pop("code", None)
    return cls(message.removeprefix(f"QR{-cls.rpc_code} {cls.error_name}: "), **details)


# --------------------------------------------------------------------------- QT


class TransportError(QMKError):
    """The client could not exchange messages with the server."""

    exit_status = 1
    fixed_code = True
    transport_code: ClassVar[str] = "QT000"
    transport_name: ClassVar[str] = "transport-error"

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


def _t(cls: type[TransportError], fix: str) -> ErrorCode:
    return class_code(cls, cls.transport_code, cls.transport_name, fix)


REGISTRY.add(
    _t(TransportError, "check the server's address and that it runs"),
    _t(ConnectError, "start a kernel (qmk serve) or fix the address (--socket, QMK_SOCKET)"),
    _t(ConnectionClosed, "see the server's log; retry once it runs again"),
    _t(CallTimeout, "raise the timeout (Timeout(call=...), --timeout); q_status shows the job"),
    _t(BadResponse, "check that the address is a QMK kernel of a matching version"),
)
