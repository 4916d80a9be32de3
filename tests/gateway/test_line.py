"""The gateway's line to the kernel (:class:`qmk.gateway.line.KernelLine`) against a real
kernel served on a Unix socket: replies to their calls, read whole, errors coded as the
client codes them, a relayed reply as the kernel's own bytes, and a new connection after
the line closed. A reply line as the kernel's encoder writes it reads as its full decode
reads it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmk.abi.door import Door
from qmk.abi.errors import BadResponse, ConnectionClosed, InvalidParams
from qmk.abi.jsonrpc import encode, encode_parts
from qmk.abi.limits import ServerConfig
from qmk.abi.replies import Job
from qmk.abi.server import serve_kernel
from qmk.client import AsyncClient
from qmk.errors import NotFoundError, SessionError
from qmk.gateway.line import KernelLine, Relayed, _reply_of
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


#: Results as the kernel may answer them: an object, a big one, text with escapes, a
#: list, a number, null.
RESULTS: list[Any] = [
    {"job_id": "job_1", "tenant": "alice", "state": "COMPLETED", "result": {"counts": {"00": 3}}},
    {"key": "x" * 70_000, "nested": [{"a": [1, 2.5, None]}]},
    {"text": 'quote " backslash \\ newline \n unicode \u00e9\u4e2d'},
    [1, "two", {"three": 3}],
    7,
    None,
]


@pytest.mark.parametrize("result", RESULTS)
@pytest.mark.parametrize("request_id", [0, 1, 42, 2**62])
def test_a_reply_framed_as_the_kernel_frames_it_reads_as_its_full_decode_reads_it(
    result: Any, request_id: int
) -> None:
    line = encode({"jsonrpc": "2.0", "id": request_id, "result": result})[:-1]
    whole = msgspec.json.decode(line)
    reply = _reply_of(line)
    assert (reply.jsonrpc, reply.id, reply.error) == ("2.0", request_id, None)
    assert bytes(reply.result) == msgspec.json.encode(whole["result"])  # the kernel's bytes
    assert msgspec.json.decode(bytes(reply.result)) == result


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc": "2.0", "id": 3, "result": {"job_id": "j"}}',  # spaces
        b'{"id":3,"jsonrpc":"2.0","result":{"job_id":"j"}}',  # another order
        b'{"jsonrpc":"2.0","result":{"job_id":"j"},"id":3}',  # the result first
    ],
)
def test_a_reply_in_another_framing_is_decoded_to_the_same_reply(line: bytes) -> None:
    reply = _reply_of(line)
    assert (reply.id, reply.error) == (3, None)
    assert msgspec.json.decode(bytes(reply.result)) == {"job_id": "j"}


def test_an_error_and_a_reply_that_is_no_json_rpc_are_read_as_the_client_reads_them() -> None:
    error = _reply_of(b'{"jsonrpc":"2.0","id":4,"error":{"code":-32602,"message":"bad"}}')
    assert (error.id, error.result, error.error["code"]) == (4, msgspec.UNSET, -32602)
    for line in (b'{"jsonrpc":"2.0","id":07,"result":1}', b'{"jsonrpc":"2.0","id":1,"result":'):
        with pytest.raises(BadResponse, match="not JSON"):
            _reply_of(line)
    with pytest.raises(BadResponse, match="non-JSON-RPC"):
        _reply_of(b'{"jsonrpc":"1.0","id":1,"result":1}')


def test_a_result_cut_out_at_its_framing_that_is_no_json_is_refused_where_it_is_read() -> None:
    reply = _reply_of(b'{"jsonrpc":"2.0","id":5,"result":{"job_id":"j",}')
    with pytest.raises(BadResponse, match="not JSON"):
        Relayed(bytes(reply.result)).job_id  # noqa: B018
