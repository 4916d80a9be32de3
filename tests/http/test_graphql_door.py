"""GraphQL's limits are the door's (issue 63): what a query may ask for are keys of the
``[server]`` table every wire reads, and its answer, held whole until sent, is one of the
door's held answers (``max_held_answer_bytes``, shared with gRPC's messages).

The application runs in-process (httpx's ASGI transport) on a real kernel, behind a door
of the test's config.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("strawberry")

from qmk.abi.door import Door
from qmk.abi.events import EventHub
from qmk.abi.limits import ServerConfig
from qmk.http.app import create_app
from qmk.http.metrics import Metrics
from qmk.http.tracing import Tracing, make_provider
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from qmk.qvm.generate import uniform_graph
from support.kernel import KEYS, run_kernel
from support.wire import GUARD_S, until

Body = Callable[[Kernel, Door, httpx.AsyncClient], Awaitable[Any]]


def serve(tmp_path: Path, body: Body, **limits: Any) -> Any:
    """``body(kernel, door, http)``: ``http`` a client of the REST application behind a
    door of the ``[server]`` ``limits``."""

    async def main(kernel: Kernel) -> Any:
        probe = KernelObserver(kernel)
        door = Door(kernel, ServerConfig(tcp=("127.0.0.1", 0), **limits), probe=probe)
        hub = EventHub(probe, asyncio.get_running_loop(), caps=door.streams)
        app = create_app(door, hub, Metrics(), Tracing(make_provider("none")))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", timeout=GUARD_S
            ) as http:
                return await body(kernel, door, http)
        finally:
            hub.close()

    return run_kernel(tmp_path, main, workers=1)


async def bearer(http: httpx.AsyncClient) -> dict[str, str]:
    reply = await http.post(
        "/v1/sessions", json={"tenant": "alice", "key": KEYS["alice"], "requested": ["CAP_ALLOC"]}
    )
    assert reply.status_code == 201, reply.text
    return {"authorization": f"Bearer {reply.json()['session_id']}"}


def test_graphqls_limits_are_keys_of_the_servers_table(tmp_path: Path) -> None:
    async def body(kernel: Kernel, door: Door, http: httpx.AsyncClient) -> Any:
        alice = await bearer(http)
        query = "{ a: jobs { job_id } b: jobs { job_id } c: jobs { job_id } }"
        return (await http.post("/v1/graphql", json={"query": query}, headers=alice)).json()

    answer = serve(tmp_path, body, graphql_max_aliases=2)
    assert answer["data"] is None
    (refused,) = answer["errors"]
    assert refused["extensions"]["code"] == "QR32602"
    assert "3 aliases" in refused["message"] and "server.graphql_max_aliases" in refused["message"]


def test_a_graphql_answer_is_one_of_the_doors_held_answers_until_it_is_sent(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel, door: Door, http: httpx.AsyncClient) -> Any:
        alice = await bearer(http)
        graph = uniform_graph(15).to_json()
        job = (
            await http.post(
                "/v1/jobs",
                json={"program": graph, "shots": 60_000, "seed": 3, "policy": {"noise": False}},
                headers=alice,
            )
        ).json()
        waited = await http.get(
            f"/v1/jobs/{job['job_id']}/wait", params={"timeout_ms": 60_000}, headers=alice
        )
        assert waited.json()["state"] == "COMPLETED"
        assert len(waited.content) > 2**19  # past what is held without counting
        others = await door.answers.hold(door.config.max_held_answer_bytes)  # the bound, spent
        query = {
            "query": "query($id: ID!) { job(job_id: $id) { result } }",
            "variables": {"id": job["job_id"]},
        }
        asked = asyncio.ensure_future(http.post("/v1/graphql", json=query, headers=alice))
        await until(lambda: door.answers.waiting == 1)  # built, and waiting for room
        assert not asked.done()
        others.release()
        answer = await asked
        return answer.json(), waited.json(), door.answers.held

    answer, waited, held = serve(tmp_path, body, max_held_answer_bytes=2**20)
    assert answer["data"]["job"]["result"] == waited["result"]
    assert held == 0  # sent, and given back
