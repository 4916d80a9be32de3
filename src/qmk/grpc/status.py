"""QMK's errors as gRPC status codes: one table, read by the server and the client.

A refusal keeps its QMK code: the status message is ``str(error)``
(``QS1005 not-found: no job 'j'``). The trailing metadata ``qmk-error`` carries the
error as JSON (``{"code", "name", "message", "details", "rpc_code"}``), from which
:func:`error_of` rebuilds the same exception class on the client. The status code is
read from :data:`STATUS_OF` by the error's JSON-RPC code, as the REST API reads its
HTTP status (:data:`qmk.http.problems.STATUS_OF`); an error with no JSON-RPC code (a
program that does not lower: ``QL``, ``QA``, ``QF``) is ``INVALID_ARGUMENT``.

>>> from qmk.errors import NotFoundError
>>> status_of(NotFoundError("no job 'j'")).name
'NOT_FOUND'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import grpc

from qmk.abi.errors import BadResponse, rpc_error
from qmk.errors import REGISTRY, QMKError, syscall_error
from qmk.http.problems import rpc_code_of

_S = grpc.StatusCode

#: gRPC status by JSON-RPC error code (the kernel's refusals, then JSON-RPC's own).
STATUS_OF: Mapping[int, grpc.StatusCode] = MappingProxyType(
    {
        1000: _S.FAILED_PRECONDITION,  # a refusal this server has no class for
        1001: _S.UNAUTHENTICATED,  # auth-failed: unknown tenant or wrong key
        1002: _S.UNAUTHENTICATED,  # invalid-session (or none sent)
        1003: _S.UNAUTHENTICATED,  # session-expired
        1004: _S.PERMISSION_DENIED,  # capability-denied
        1005: _S.NOT_FOUND,  # not-found, also for another tenant's job
        1006: _S.RESOURCE_EXHAUSTED,  # quota-exceeded: wait for jobs to finish
        1007: _S.FAILED_PRECONDITION,  # admission-refused: the machine can never hold it
        1008: _S.INVALID_ARGUMENT,  # invalid-program
        1009: _S.FAILED_PRECONDITION,  # invalid-state
        1010: _S.PERMISSION_DENIED,  # entanglement-firewall
        1011: _S.UNAVAILABLE,  # unavailable
        1012: _S.INVALID_ARGUMENT,  # invalid-argument
        -32700: _S.INVALID_ARGUMENT,  # parse-error
        -32600: _S.INVALID_ARGUMENT,  # invalid-request
        -32601: _S.UNIMPLEMENTED,  # method-not-found
        -32602: _S.INVALID_ARGUMENT,  # invalid-params: missing, unknown or wrong JSON type
        -32603: _S.INTERNAL,  # internal-error
    }
)

#: The trailing metadata key that carries the error as JSON.
ERROR_KEY = "qmk-error"


def status_of(error: QMKError) -> grpc.StatusCode:
    """The gRPC status of ``error``."""
    code = rpc_code_of(error)
    if code is None:
        return _S.INVALID_ARGUMENT
    return STATUS_OF.get(code, _S.FAILED_PRECONDITION if code > 0 else _S.INTERNAL)


def error_metadata(error: QMKError) -> tuple[tuple[str, str], ...]:
    """The trailing metadata that carries ``error`` (ASCII JSON)."""
    body = {**error.to_json(), "rpc_code": rpc_code_of(error)}
    return ((ERROR_KEY, json.dumps(body, default=str)),)


def error_of(code: grpc.StatusCode, message: str, trailing: Any) -> QMKError:
    """The exception a client raises for a failed rpc: the server's QMK error rebuilt
    from ``qmk-error`` (its class, code, message and details), else a transport error."""
    found = next((value for key, value in trailing or () if key == ERROR_KEY), None)
    if found is None:
        return BadResponse(f"gRPC {code.name}: {message}")
    try:
        data = json.loads(found)
        rpc_code, text = data.get("rpc_code"), str(data["message"])
        details = data.get("details") if isinstance(data.get("details"), dict) else {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return BadResponse(f"gRPC {code.name}: malformed {ERROR_KEY}: {found!r:.200}")
    if isinstance(rpc_code, int) and -32768 <= rpc_code <= -32000:
        return rpc_error(rpc_code, text, details)
    if isinstance(rpc_code, int):  # a refusal: its class, and the fault's code it carries
        fault = {"name": data.get("name"), "code": data.get("code")}
        return syscall_error(rpc_code, text, {**details, **fault})
    entry = REGISTRY[str(data["code"])] if str(data.get("code")) in REGISTRY else None
    if entry is not None and not entry.exception.fixed_code:
        return entry.exception(entry.code, entry.name, text, details=details)
    return syscall_error(1000, f"{data.get('code')} {data.get('name')}: {text}", details)
