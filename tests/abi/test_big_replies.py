"""A big reply on the JSON-RPC socket (a stored result) is written a chunk at a time from
the result's own bytes: a client that does not read holds a bounded buffer of the
server's memory and is dropped after ``write_timeout_s``; a client that reads gets it
whole. In-process, with a stand-in kernel that returns a real
:class:`~qmk.kernel.records.stored.StoredResult`."""

from __future__ import annotations

import asyncio
import json
import socket
import tracemalloc
from pathlib import Path
from typing import Any

from qmk.abi.jsonrpc import RpcCore
from qmk.abi.server import STREAM_CHUNK, Server, ServerConfig
from qmk.kernel.records.encoded import encode_result
from qmk.kernel.records.stored import StoredResult

GUARD_S = 30.0
UNSENT = 64 * 1024


class ResultKernel:
    """q_status answers with one big stored result."""

    def __init__(self, result: StoredResult) -> None:
        self.result = result

    async def q_status(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        return {"job_id": job_id, "state": "COMPLETED", "result": self.result}


def _big_result() -> StoredResult:
    return encode_result({"counts": {format(i, "020b"): i % 7 + 1 for i in range(300_000)}})


def _serve(tmp_path: Path, result: StoredResult, body: Any) -> None:
    async def main() -> None:
        config = ServerConfig(
            socket_path=tmp_path / "k.sock", max_unsent_bytes=UNSENT, write_timeout_s=0.3
        )
        server = Server(RpcCore(ResultKernel(result)), config)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(server.serve(stop, ready=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), GUARD_S)
        try:
            await asyncio.wait_for(body(server, config.socket_path), GUARD_S)
        finally:
            stop.set()
            await asyncio.wait_for(task, GUARD_S)

    asyncio.run(main())


REQUEST = b'{"jsonrpc":"2.0","id":7,"method":"q_status","params":["s","j"]}\n'


def test_a_client_that_does_not_read_a_big_reply_holds_a_bounded_buffer_and_is_dropped(
    tmp_path: Path,
):
    result = _big_result()
    assert result.nbytes > 7 * 2**20
    seen: dict[str, int] = {"buffered": 0}

    async def body(server: Server, path: Path) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(str(path))
        tracemalloc.start()
        try:
            sock.sendall(REQUEST)  # and never reads
            while not server.connection_count:
                await asyncio.sleep(0.001)
            while server.connection_count:  # until the server drops it
                for connection in list(server._connections):
                    size = connection.transport.get_write_buffer_size()
                    seen["buffered"] = max(seen["buffered"], size)
                await asyncio.sleep(0.001)
            seen["peak"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            sock.close()

    _serve(tmp_path, result, body)
    # what it held for the client: its bound and one chunk, never the result or a copy
    assert UNSENT < seen["buffered"] <= UNSENT + STREAM_CHUNK, seen
    assert seen["peak"] < result.nbytes / 4, seen


def test_a_client_that_reads_gets_the_big_reply_whole(tmp_path: Path):
    result = _big_result()
    got: dict[str, Any] = {}

    async def body(server: Server, path: Path) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=64 * 2**20)
        writer.write(REQUEST)
        got["reply"] = json.loads(await reader.readline())
        writer.close()

    _serve(tmp_path, result, body)
    assert got["reply"]["id"] == 7
    assert got["reply"]["result"]["result"] == json.loads(result.data)
