"""qmk.http.app.App: a syscall's request goes straight to its handler, the rest to Starlette.

The application is driven in-process through httpx's ASGI transport. A Starlette
middleware marks every response that went through Starlette, so each test sees which way
a request took; the route a request reaches is the one Starlette alone would pick.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qmk.http.app import App


class Marked:
    """A pure ASGI middleware: a header on every response that passed through Starlette."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def marked(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-via", b"starlette")]
            await send(message)

        await self.app(scope, receive, marked)


def _handler(name: str) -> Any:
    async def handler(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {"route": name, "params": dict(request.path_params), "body": body.decode()}
        )

    return handler


def _app() -> App:
    events = Route("/v1/jobs/{job_id}/events", _handler("events"), methods=["GET"])
    status = Route("/v1/jobs/{job_id}", _handler("status"), methods=["GET"])
    cancel = Route("/v1/jobs/{job_id}", _handler("cancel"), methods=["DELETE"])
    submit = Route("/v1/jobs", _handler("submit"), methods=["POST"])
    starlette = Starlette(routes=[events, status, cancel, submit], middleware=[Middleware(Marked)])
    return App(starlette, [status, cancel, submit])


def _call(method: str, path: str, body: bytes | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, content=body)

    return asyncio.run(go())


def test_a_syscall_route_is_answered_by_its_handler_with_its_path_params() -> None:
    reply = _call("GET", "/v1/jobs/job_42")
    assert reply.status_code == 200
    assert reply.json() == {"route": "status", "params": {"job_id": "job_42"}, "body": ""}
    assert "x-via" not in reply.headers


def test_the_method_picks_the_route_among_those_of_one_path() -> None:
    assert _call("DELETE", "/v1/jobs/job_42").json()["route"] == "cancel"
    posted = _call("POST", "/v1/jobs", b'{"shots": 100}')
    assert posted.json() == {"route": "submit", "params": {}, "body": '{"shots": 100}'}
    assert "x-via" not in posted.headers


def test_another_route_is_served_by_starlette() -> None:
    reply = _call("GET", "/v1/jobs/job_42/events")
    assert reply.json()["route"] == "events"
    assert reply.headers["x-via"] == "starlette"


def test_unknown_paths_wrong_methods_and_head_go_to_starlette() -> None:
    assert _call("GET", "/v2/nothing").status_code == 404
    wrong = _call("POST", "/v1/jobs/job_42")
    assert wrong.status_code == 405 and wrong.headers["x-via"] == "starlette"
    head = _call("HEAD", "/v1/jobs/job_42")
    assert head.status_code == 200 and head.headers["x-via"] == "starlette"


def test_a_query_string_does_not_change_the_route() -> None:
    reply = _call("GET", "/v1/jobs/job_42?timeout_ms=5")
    assert reply.json()["params"] == {"job_id": "job_42"}
    assert "x-via" not in reply.headers
