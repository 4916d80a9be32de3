"""REST's program door: the bearer before any work, program text lowered off the event
loop within the graph cap and charged to the tenant (issue 32, items 1 and 5).

The application runs in-process (httpx's ASGI transport) on a real kernel, so a gate can
hold the lowering of a program in its thread while another tenant is answered; the gate
passes a lowering it finds on the event loop's thread (holding it would hold the test)
and the test then fails on that.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import qmk.frontends.text as programs_module  # the door reads text with its lower_text
from qmk.abi.door import Door
from qmk.abi.events import EventHub
from qmk.abi.limits import ServerConfig
from qmk.http.app import create_app
from qmk.http.metrics import Metrics
from qmk.http.tracing import Tracing, make_provider
from qmk.kernel.config import KernelConfig, config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from support.kernel import KEYS, run_kernel

HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
BELL_ISH = HEAD + "h q[0];\nc[0] = measure q[0];\n"
BIG_LOOP = HEAD + "for int i in [0:2**22-1] { h q[0]; }\n"
#: The unauthenticated body limit (AppLimits' default).
UNAUTHENTICATED = 64 * 1024

Body = Callable[[Kernel, httpx.AsyncClient], Awaitable[Any]]


def config(**alice: Any) -> KernelConfig:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, "max_graph_nodes": 5000},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"], **alice},
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


def serve(tmp_path: Path, body: Body, **options: Any) -> Any:
    """``body(kernel, http)`` with ``http`` a client of the REST application on ``kernel``."""

    async def main(kernel: Kernel) -> Any:
        probe = KernelObserver(kernel)
        door = Door(kernel, ServerConfig(tcp=("127.0.0.1", 0)), probe=probe)
        hub = EventHub(probe, asyncio.get_running_loop(), caps=door.streams)
        app = create_app(door, hub, Metrics(), Tracing(make_provider("none")))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await body(kernel, http)
        finally:
            hub.close()

    return run_kernel(tmp_path, main, workers=1, **options)


async def bearer(http: httpx.AsyncClient, tenant: str) -> dict[str, str]:
    reply = await http.post(
        "/v1/sessions", json={"tenant": tenant, "key": KEYS[tenant], "requested": ["CAP_ALLOC"]}
    )
    assert reply.status_code == 201, reply.text
    return {"authorization": f"Bearer {reply.json()['session_id']}"}


JUNK = {"authorization": "Bearer junk"}


def test_a_junk_bearer_is_refused_before_the_program_is_read(tmp_path: Path) -> None:
    async def body(kernel: Kernel, http: httpx.AsyncClient) -> None:
        # a program that does not parse: read first, it would be 422 QL101
        unread = await http.post("/v1/jobs", json={"program": "OPENQASM 3.0;\n}{"}, headers=JUNK)
        assert unread.status_code == 401, unread.text
        assert unread.json()["code"] == "QS1002"
        # a loop of four million passes: lowered first, it would hold the loop for seconds
        loop = await http.post("/v1/jobs", json={"program": BIG_LOOP}, headers=JUNK)
        assert loop.status_code == 401, loop.text

    serve(tmp_path, body, config=config())


def test_a_junk_bearer_keeps_the_unauthenticated_body_limit(tmp_path: Path) -> None:
    padding = "x" * (UNAUTHENTICATED + 1024)

    async def body(kernel: Kernel, http: httpx.AsyncClient) -> None:
        # a route without a session: only a valid one lifts the limit, not any header
        big = {"tenant": "alice", "key": KEYS["alice"], "requested": [padding]}
        opened = await http.post("/v1/sessions", json=big, headers=JUNK)
        assert opened.status_code == 413, opened.text
        # a valid session's body may be larger (the comment pads the program)
        alice = await bearer(http, "alice")
        program = f"// {padding}\n{BELL_ISH}"
        accepted = await http.post("/v1/jobs", json={"program": program}, headers=alice)
        assert accepted.status_code == 201, accepted.text

    serve(tmp_path, body, config=config())


def test_a_loop_past_the_graph_cap_is_refused_before_it_is_unrolled(tmp_path: Path) -> None:
    async def body(kernel: Kernel, http: httpx.AsyncClient) -> None:
        alice = await bearer(http, "alice")
        reply = await http.post("/v1/jobs", json={"program": BIG_LOOP}, headers=alice)
        assert reply.status_code == 429, reply.text
        problem = reply.json()
        assert problem["code"] == "QS1006"
        assert problem["details"] == {"limit": "max_graph_nodes", "value": 5000, "needed": 2**22}
        assert "nothing was built" in problem["detail"]

    serve(tmp_path, body, config=config())


def test_program_text_is_lowered_off_the_loop_while_another_tenant_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(kernel: Kernel, http: httpx.AsyncClient) -> None:
        loop_thread = threading.get_ident()
        entered, release = threading.Event(), threading.Event()
        on_loop = []
        lower_text = programs_module.lower_text

        def gated(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                on_loop.append(args)
            else:
                entered.set()
                assert release.wait(120), "the test never released the gate"
            return lower_text(*args, **kwargs)

        alice, bob = await bearer(http, "alice"), await bearer(http, "bob")
        bobs = await http.post("/v1/jobs", json={"program": BELL_ISH}, headers=bob)
        assert bobs.status_code == 201, bobs.text
        monkeypatch.setattr(programs_module, "lower_text", gated)
        submit = asyncio.ensure_future(
            http.post("/v1/jobs", json={"program": BELL_ISH}, headers=alice)
        )
        held = asyncio.ensure_future(asyncio.to_thread(entered.wait))
        done, _ = await asyncio.wait({submit, held}, return_when=asyncio.FIRST_COMPLETED)
        if submit in done:
            entered.set()
            await held
            pytest.fail(f"the program was lowered on the event loop ({len(on_loop)} times)")
        try:  # alice's program is held in its thread: bob is answered all the same
            status = await http.get(f"/v1/jobs/{bobs.json()['job_id']}", headers=bob)
            assert status.status_code == 200, status.text
        finally:
            release.set()
        accepted = await submit
        assert accepted.status_code == 201, accepted.text

    serve(tmp_path, body, config=config())


def test_past_its_cpu_budget_a_tenants_program_text_says_when_to_retry(tmp_path: Path) -> None:
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel, http: httpx.AsyncClient) -> None:
        alice, bob = await bearer(http, "alice"), await bearer(http, "bob")
        first = await http.post("/v1/jobs", json={"program": BELL_ISH}, headers=alice)
        assert first.status_code == 201, first.text  # it spent more than the nanosecond held
        refused = await http.post("/v1/jobs", json={"program": BELL_ISH}, headers=alice)
        assert refused.status_code == 429, refused.text
        details = refused.json()["details"]
        assert details["limit"] == "cpu_s_per_s"
        assert details["retry_after_s"] > 0
        other = await http.post("/v1/jobs", json={"program": BELL_ISH}, headers=bob)
        assert other.status_code == 201, other.text  # bob's budget is his own
        clock.advance(details["retry_after_s"])
        again = await http.post("/v1/jobs", json={"program": BELL_ISH}, headers=alice)
        assert again.status_code == 201, again.text

    serve(tmp_path, body, config=config(cpu_burst_s=1e-9, cpu_s_per_s=1.0), clock=clock)
