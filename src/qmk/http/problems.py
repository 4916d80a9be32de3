"""Errors over HTTP: RFC 9457 ``application/problem+json``, carrying QMK's stable code.

Every error a route answers is a problem document::

    {"type": "urn:qmk:error:QS1005", "title": "not-found", "status": 404,
     "detail": "no job 'job_x'", "instance": "/v1/jobs/job_x",
     "code": "QS1005", "name": "not-found", "rpc_code": 1005, "details": {...}}

``code`` and ``name`` are the error's entry in :data:`qmk.errors.REGISTRY` (docs/errors.md
lists them all); ``rpc_code`` is the JSON-RPC ``error.code`` the same refusal has on the
socket, so a client handles both wires with one table. The HTTP status is read from
:data:`STATUS_OF` by the JSON-RPC code: a bad or expired session is 401, another tenant's
job 404 (never 403, which would confirm that it exists), input the kernel cannot take 422,
a request too big 413.

>>> from qmk.errors import NotFoundError
>>> problem = problem_of(NotFoundError("no job 'j'", job_id="j"), "/v1/jobs/j")
>>> problem["status"], problem["code"], problem["title"]
(404, 'QS1005', 'not-found')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from qmk.abi.errors import InvalidRequest, RpcError
from qmk.errors import QMKError, SyscallError

#: The media type of a problem document.
PROBLEM_JSON = "application/problem+json"

#: HTTP status by JSON-RPC error code (the kernel's refusals, then JSON-RPC's own).
STATUS_OF: Mapping[int, int] = MappingProxyType(
    {
        1000: 400,  # a refusal this server has no class for
        1001: 401,  # auth-failed: unknown tenant or wrong key
        1002: 401,  # invalid-session
        1003: 401,  # session-expired
        1004: 403,  # capability-denied (the tenant's own session lacks it)
        1005: 404,  # not-found, also for another tenant's job
        1006: 429,  # quota-exceeded: wait for jobs to finish
        1007: 422,  # admission-refused: the machine can never hold it
        1008: 422,  # invalid-program
        1009: 409,  # invalid-state
        1010: 403,  # entanglement-firewall
        1011: 503,  # unavailable
        1012: 422,  # invalid-argument
        -32700: 400,  # parse-error: the body is not JSON
        -32600: 400,  # invalid-request
        -32601: 404,  # method-not-found
        -32602: 422,  # invalid-params: a param missing, unknown or of the wrong JSON type
        -32603: 500,  # internal-error
    }
)


class HttpStatus(Exception):
    """A coded error that HTTP answers with a status of its own (413, 415, 404, 405).

    Not a :class:`QMKError` itself (it adds no code): it carries one, the closest
    JSON-RPC error (``QR32600`` invalid-request for a body too large, ``QR32601`` for a
    route that does not exist), and the status to answer it with.
    """

    def __init__(self, status: int, error: QMKError) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error


def too_large(limit: int) -> HttpStatus:
    """413: a body over ``limit`` bytes."""
    error = InvalidRequest(
        f"the request body is longer than the limit of {limit} bytes", limit=limit
    )
    return HttpStatus(413, error)


def rpc_code_of(error: QMKError) -> int | None:
    """The JSON-RPC ``error.code`` the error has on the socket (None: it has none)."""
    if isinstance(error, (SyscallError, RpcError)):
        return error.rpc_code
    return None


def status_of(error: QMKError) -> int:
    """The HTTP status of ``error`` (422 for a QMKError of no JSON-RPC code: a program
    that does not lower or parse is bad input)."""
    code = rpc_code_of(error)
    if code is None:
        return 422
    return STATUS_OF.get(code, 400 if code > 0 else 500)


def problem_of(error: QMKError, instance: str, status: int | None = None) -> dict[str, Any]:
    """The problem document of ``error`` raised while answering ``instance`` (a path),
    with ``status`` (None: :func:`status_of` the error)."""
    status = status_of(error) if status is None else status
    problem: dict[str, Any] = {
        "type": f"urn:qmk:error:{error.code}",
        "title": error.name,
        "status": status,
        "detail": error.message,
        "instance": instance,
        "code": error.code,
        "name": error.name,
    }
    code = rpc_code_of(error)
    if code is not None:
        problem["rpc_code"] = code
    if error.details:
        problem["details"] = error.details
    return problem


def response(
    error: QMKError, path: str, headers: Mapping[str, str] | None = None, status: int | None = None
) -> Any:
    """The HTTP response of ``error`` at ``path``: its problem document (:func:`problem_of`),
    with ``WWW-Authenticate`` on a 401 and ``Retry-After`` (whole seconds, rounded up)
    where the error says when to retry (``details.retry_after_s``: the kernel away, a
    limit's refill), as every HTTP page of QMK answers a refusal."""
    from starlette.responses import Response

    from qmk.abi.jsonrpc import encode

    body = problem_of(error, path, status)
    extra = dict(headers or {})
    if body["status"] == 401:
        extra["WWW-Authenticate"] = 'Bearer realm="qmk"'
    retry = error.details.get("retry_after_s")
    if isinstance(retry, int | float) and not isinstance(retry, bool) and retry >= 0:
        extra.setdefault("Retry-After", str(max(1, math.ceil(retry))))
    return Response(encode(body), body["status"], headers=extra, media_type=PROBLEM_JSON)
