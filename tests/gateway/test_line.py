"""The gateway's line to the kernel (:class:`qmk.gateway.line.KernelLine`) against a real
kernel served on a Unix socket: replies to their calls, read whole, errors coded as the
client codes them, a relayed reply as the kernel's own bytes, and a new connection after
the line closed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmk.abi.door import Door
from qmk.abi.errors import ConnectionClosed, InvalidParams
from qmk.abi.jsonrpc import encode_parts
from qmk.abi.limits import ServerConfig
from qmk.abi.replies import Job
from qmk.abi.server import serve_kernel
from qmk.client import AsyncClient
from qmk.errors import NotFoundError, SessionError
from qmk.gateway.line import KernelLine
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from support.kernel import BELL, login, run_kernel
from support.workloads import graph_of

#: Fourteen qubits in uniform superposition, measured: a result of thousands of distinct
#: outcomes, a reply line longer than one read of the socket.
WIDE = graph_of(14, [("h", (q,), ()) for q in range(14)]).to_json()


def _served(tmp_path: Path, body: Callable[[Path, Kernel], Awaitable[Any]]) -> Any:
    """``body(socket, kernel)`` against ``kernel`` served on a Unix socket."""
    socket = tmp_path / "k.sock"

    async def main(kernel: Kernel) -> Any:
        config = ServerConfig(socket_path=socket)
        door = Door(kernel, config, probe=KernelObserver(kernel))
        stop, ready = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(
            serve_kernel(kernel, config, stop=stop, door=door, ready=lambda _: ready.set())
        )
        await asyncio.wait_for(ready.wait(), 10)
        try:
            return await body(socket, kernel)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)

    return run_kernel(tmp_path, main, workers=1)


def test_calls_in_flight_together_each_get_their_own_reply_or_coded_error(
    tmp_path: Path,
) -> None:
    async def body(socket: Path, kernel: Kernel) -> Any:
        sid = await login(kernel, "alice")
        line = KernelLine(str(socket))
        try:
            jobs = [
                await line.q_submit(session_id=sid, graph=BELL, shots=10, seed=seed)
                for seed in range(1, 9)
            ]
            asked = [job.job_id for job in jobs] + ["job_nope"]
            calls = [line.q_status(session_id=sid, job_id=job_id) for job_id in asked]
            calls.append(line.q_status(session_id="sess_nope", job_id=asked[0]))
            answers = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await line.aclose()
        return asked, answers

    asked, answers = _served(tmp_path, body)
    assert [answer.job_id for answer in answers[:8]] == asked[:8]
    assert isinstance(answers[8], NotFoundError)
    assert isinstance(answers[9], SessionError)


def test_a_reply_longer_than_one_read_is_read_whole_as_the_client_reads_it(
    tmp_path: Path,
) -> None:
    async def body(socket: Path, kernel: Kernel) -> Any:
        sid = await login(kernel, "alice")
        line = KernelLine(str(socket))
        client = AsyncClient(str(socket))
        try:
            job = await line.q_submit(session_id=sid, graph=WIDE, shots=40_000, seed=7)
            await line.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            read = await line.q_get_result(session_id=sid, job_id=job.job_id)
            expected = await client.q_get_result(session_id=sid, job_id=job.job_id)
        finally:
            await line.aclose()
            await client.aclose()
        return read, expected

    read, expected = _served(tmp_path, body)
    assert len(read.counts) == 10_000  # a page of ten thousand outcomes: several reads
    assert read == expected


def test_a_relayed_reply_is_the_bytes_the_kernels_own_process_answers_and_names_its_job(
    tmp_path: Path,
) -> None:
    async def body(socket: Path, kernel: Kernel) -> Any:
        sid = await login(kernel, "alice")
        line = KernelLine(str(socket))
        try:
            job = await line.q_submit(session_id=sid, graph=BELL, shots=100, seed=3)
            await line.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            params = {"session_id": sid, "job_id": job.job_id}
            relayed = await line.relay("q_status", params)
            typed = await line.q_status(**params)
            own = encode_parts(await kernel.q_status(**params))  # what inline HTTP sends
            with pytest.raises(NotFoundError):
                await line.relay("q_status", {"session_id": sid, "job_id": "job_nope"})
        finally:
            await line.aclose()
        return job.job_id, relayed, typed, b"".join(own[:-1])

    job_id, relayed, typed, own = _served(tmp_path, body)
    assert relayed.data == own
    assert (relayed.job_id, relayed.tenant, relayed.session_id) == (job_id, "alice", None)
    assert typed == Job.from_json(msgspec.json.decode(relayed.data))
    assert typed.state == "COMPLETED"


def test_a_closed_line_fails_its_calls_in_flight_and_connects_again_at_the_next(
    tmp_path: Path,
) -> None:
    async def body(socket: Path, kernel: Kernel) -> Any:
        sid = await login(kernel, "alice")
        line = KernelLine(str(socket))
        try:
            job = await line.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)
            await line.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            now = await line.q_events(session_id=sid, after=None, limit=1, wait_ms=None)
            waiting = asyncio.ensure_future(  # a long poll: no record comes
                line.q_events(session_id=sid, after=now.cursor, limit=1, wait_ms=60_000)
            )
            await asyncio.sleep(0)  # its request written (the line is open already)
            await line.aclose()
            with pytest.raises(ConnectionClosed):
                await waiting
            again = await line.q_status(session_id=sid, job_id=job.job_id)
        finally:
            await line.aclose()
        return job, again

    job, again = _served(tmp_path, body)
    assert again.job_id == job.job_id


def test_a_param_that_is_no_finite_number_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    async def body(socket: Path, kernel: Kernel) -> Any:
        line = KernelLine(str(socket))
        try:
            with pytest.raises(InvalidParams, match="'timeout_ms' must be a finite number"):
                await line.q_wait(session_id="s", job_id="j", timeout_ms=float("inf"))
        finally:
            await line.aclose()

    _served(tmp_path, body)
