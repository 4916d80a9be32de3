"""A small client of the REST API (httpx), with the same calls and errors as JSON-RPC's.

:class:`RestClient` opens a session (``POST /v1/sessions``) and calls any qSyscall by
its name through its route (:data:`qmk.http.routes.ROUTE_OF`): path params into the
path, the others into the query string (GET, DELETE) or the JSON body. A problem
document comes back as the exception the JSON-RPC client raises for the same refusal
(``rpc_code`` -> :data:`qmk.errors.SYSCALL_ERRORS`), so code written against
:class:`qmk.client.Client` handles both wires. ``qmk workflow run --server URL`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmk import defaults
from qmk.abi.errors import BadResponse, ConnectError, TransportError, rpc_error
from qmk.abi.replies import Job, Session
from qmk.errors import QMKError, SessionExpired, syscall_error
from qmk.http.routes import ROUTE_OF


class RestClient:
    """A tenant's session on a kernel's REST API.

    Args:
        url: the API's base URL, e.g. ``http://127.0.0.1:8000``.
        tenant, key: the tenant's name and key.
        caps: capabilities to request (None: every one the kernel knows of).
        timeout_s: seconds per request (a call that waits adds its wait: ``timeout_ms``,
            ``wait_ms``).
        verify: TLS verification (a CA bundle path, or False), as httpx takes it.
    """

    def __init__(
        self,
        url: str,
        *,
        tenant: str,
        key: str,
        caps: Sequence[str] | None = None,
        timeout_s: float = defaults.CALL_TIMEOUT_S or 60.0,
        verify: Any = True,
    ) -> None:
        import httpx

        self._httpx = httpx
        self.url = url.rstrip("/")
        self.tenant, self._key = tenant, key
        self._caps = list(caps) if caps is not None else _all_caps()
        self.timeout_s = timeout_s
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s, verify=verify)
        #: The session the client's calls carry (its ``q_negotiate_caps`` reply).
        self.session: Session = self.negotiate()

    def negotiate(self) -> Session:
        """Open a new session (the client does so again once when one expires)."""
        self.session = Session.from_json(
            self._request(
                "q_negotiate_caps",
                {"tenant": self.tenant, "key": self._key, "requested": self._caps},
            )
        )
        return self.session

    def call(self, syscall: str, **params: Any) -> Any:
        """The reply of ``syscall`` with ``params`` (the session is added), as the
        method's reply struct (:mod:`qmk.abi.replies`), as the JSON-RPC client gives it."""
        reply = ROUTE_OF[syscall].spec.reply
        try:
            return reply.from_json(self._request(syscall, params))
        except SessionExpired:
            self.negotiate()
            return reply.from_json(self._request(syscall, params))

    def _request(self, syscall: str, params: dict[str, Any]) -> Any:
        route = ROUTE_OF[syscall]
        params = {k: v for k, v in params.items() if v is not None or k in route.body}
        path = route.path
        for name in route.path_params:
            path = path.replace("{" + name + "}", str(params.pop(name)))
        headers = {}
        if route.spec.needs_session:
            headers["Authorization"] = f"Bearer {self.session.session_id}"
        if route.program and "graph" in params:
            params["program"] = params.pop("graph")
        body = {k: params.pop(k) for k in list(params) if k in route.body or k == "program"}
        if "format" in params:
            body["format"] = params.pop("format")
        timeout = self.timeout_s + route.spec.wait_s({**params, **body})
        try:
            reply = self.http.request(
                route.method,
                path,
                params=params or None,
                json=body if route.body else None,
                headers=headers,
                timeout=timeout,
            )
        except self._httpx.ConnectError as exc:
            raise ConnectError(f"{self.url}: cannot connect: {exc}") from None
        except self._httpx.HTTPError as exc:
            raise TransportError(f"{self.url}: {exc}") from None
        if reply.is_success:
            return reply.json()
        raise _error_of(reply)

    # the calls a workflow makes, typed
    def submit(
        self,
        program: Any,
        *,
        format: str | None = None,
        shots: int = defaults.SHOTS,
        seed: int | None = None,
        policy: dict[str, Any] | None = None,
        wait_ms: int | None = None,
    ) -> Job:
        """``POST /v1/jobs``: the job, QUEUED (with ``wait_ms``: once final, or as it is
        when ``wait_ms`` passes, as :meth:`wait` answers it)."""
        job: Job = self.call(
            "q_submit",
            graph=program,
            format=format,
            shots=shots,
            seed=seed,
            policy=policy,
            wait_ms=wait_ms,
        )
        return job

    def wait(self, job_id: str, timeout_ms: int = defaults.WAIT_TIMEOUT_MS) -> Job:
        """``GET /v1/jobs/{id}/wait``: the job once final, or as it is at the timeout."""
        job: Job = self.call("q_wait", job_id=job_id, timeout_ms=timeout_ms)
        return job

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _all_caps() -> list[str]:
    from qmk.qvm.ops import CAPABILITIES

    return list(CAPABILITIES)


def _error_of(reply: Any) -> QMKError:
    """The exception of a problem document (as the JSON-RPC client raises it)."""
    try:
        problem = reply.json()
    except ValueError:
        return TransportError(f"HTTP {reply.status_code}: {reply.text[:200]}")
    code = problem.get("rpc_code")
    message = str(problem.get("detail", ""))
    details = dict(problem.get("details") or {})
    if isinstance(code, int) and code > 0:
        return syscall_error(code, message, details)
    if isinstance(code, int):
        return rpc_error(code, message, details)
    return BadResponse(f"HTTP {reply.status_code} with no error code: {message[:200]}")
