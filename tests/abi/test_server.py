"""The NDJSON server on a real Unix socket, in-process, with a small stand-in kernel.

The real kernel behind a real ``qmk serve`` process is exercised in tests/e2e/;
these tests pin the framing, limits and socket handling quickly.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from qmk.abi.errors import InvalidParams
from qmk.abi.jsonrpc import RpcCore
from qmk.abi.server import ServeError, Server, ServerConfig, bind_unix
from qmk.client import AsyncClient, Client
from qmk.errors import NotFoundError
from support.wire import until


class SlowKernel:
    """q_wait sleeps timeout_ms; q_status answers at once; q_negotiate_caps opens a session.

    ``await kernel.waiting(n)`` returns once ``n`` q_wait calls have begun.
    """

    def __init__(self) -> None:
        self.waits = 0
        self._began = asyncio.Event()

    async def waiting(self, count: int) -> None:
        while self.waits < count:
            self._began.clear()
            await self._began.wait()

    async def q_negotiate_caps(self, *, tenant: str, key: str, requested: list[str]) -> dict:
        return {
            "session_id": f"sess-{tenant}",
            "tenant": tenant,
            "granted": requested,
            "denied": [],
            "delegated": [],
            "quota": {},
            "expires_at": 0.0,
        }

    async def q_status(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        if job_id == "nope":
            raise NotFoundError(f"no job {job_id!r}")
        return _job(job_id, "QUEUED", session_id)

    async def q_wait(self, *, session_id: str, job_id: str, timeout_ms: int) -> dict[str, Any]:
        self.waits += 1
        self._began.set()
        await asyncio.sleep(timeout_ms / 1000)
        return _job(job_id, "RUNNING", session_id)


def _job(job_id: str, state: str, session_id: str) -> dict[str, Any]:
    """A job reply as a kernel gives one (its tenant: the session, which tests check)."""
    return {
        "job_id": job_id,
        "state": state,
        "tenant": session_id,
        "shots": 1,
        "seed": 0,
        "priority": 5,
        "created_at": 0.0,
        "started_at": None,
        "finished_at": None,
        "error": None,
        "result": None,
    }


def run_with_server(
    tmp_path: Path, body: Callable[[Path], Awaitable[None]], **options: Any
) -> Path:
    """Run ``body(socket_path)`` against a live server, then stop it; returns the path."""
    path = tmp_path / "k.sock"

    async def main() -> None:
        stop = asyncio.Event()
        ready = asyncio.Event()
        server = Server(RpcCore(SlowKernel()), ServerConfig(socket_path=path, **options))
        task = asyncio.create_task(server.serve(stop, ready=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), 5)
        try:
            await body(path)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    return path


async def exchange(path: Path, data: bytes, replies: int) -> list[Any]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    writer.write(data)
    await writer.drain()
    out = [json.loads(await asyncio.wait_for(reader.readline(), 10)) for _ in range(replies)]
    writer.close()
    return out


def req(method: str, params: Any, id: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).encode()


def test_the_socket_has_mode_0600_while_serving_and_is_removed_after(tmp_path):
    seen: dict[str, int] = {}

    async def body(path: Path) -> None:
        seen["mode"] = stat.S_IMODE(path.stat().st_mode)
        assert stat.S_ISSOCK(path.stat().st_mode)

    path = run_with_server(tmp_path, body)
    assert seen["mode"] == 0o600
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary name left behind


def test_a_stale_socket_file_is_replaced_and_a_live_one_refused(tmp_path):
    path = tmp_path / "k.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as after kill -9
    live = bind_unix(path)
    try:
        with pytest.raises(ServeError, match="already listens"):
            bind_unix(path)
    finally:
        live.close()
        path.unlink()
    path.write_text("not a socket")
    with pytest.raises(ServeError, match="not a socket"):
        bind_unix(path)


def test_requests_of_one_connection_run_concurrently_and_replies_carry_their_ids(tmp_path):
    async def body(path: Path) -> None:
        slow = req("q_wait", ["s", "slow", 300], 1)
        fast = req("q_status", ["s", "fast"], 2)
        replies = await exchange(path, slow + b"\n" + fast + b"\n", 2)
        assert [r["id"] for r in replies] == [2, 1]  # the fast one overtook the slow one

    run_with_server(tmp_path, body)


def test_many_pipelined_requests_get_whole_reply_lines(tmp_path):
    async def body(path: Path) -> None:
        lines = b"".join(req("q_status", ["s", f"job-{i}" * 50], i) + b"\n" for i in range(500))
        replies = await exchange(path, lines, 500)
        assert sorted(r["id"] for r in replies) == list(range(500))
        assert all(r["result"]["job_id"] == f"job-{r['id']}" * 50 for r in replies)

    run_with_server(tmp_path, body)


def test_lines_of_one_chunk_past_the_in_flight_count_wait_their_turn_in_order(tmp_path):
    async def body(path: Path) -> None:
        slow = [req("q_wait", ["s", f"slow-{i}", 200], i) for i in (1, 2)]
        fast = req("q_status", ["s", "fast"], 3)
        replies = await exchange(path, b"\n".join([*slow, fast]) + b"\n", 3)
        assert sorted(r["id"] for r in replies) == [1, 2, 3]
        assert replies[0]["id"] != 3  # two in flight at most: it ran after a slow one ended

    run_with_server(tmp_path, body, max_inflight=2)


def test_an_over_long_line_is_refused_and_the_connection_keeps_serving(tmp_path):
    async def body(path: Path) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"jsonrpc": "2.0", "id": 1, "params": "' + b"x" * 300_000)
        writer.write(b'"}\n' + req("q_status", ["s", "after"], 2) + b"\n")
        await writer.drain()
        first = json.loads(await asyncio.wait_for(reader.readline(), 10))
        second = json.loads(await asyncio.wait_for(reader.readline(), 10))
        writer.close()
        assert first["error"]["code"] == -32600 and first["id"] is None
        assert first["error"]["data"]["limit"] == 65536
        assert second["result"]["job_id"] == "after"

    run_with_server(tmp_path, body, max_line=65536)


def test_a_client_that_leaves_mid_message_does_not_disturb_others(tmp_path):
    async def body(path: Path) -> None:
        _, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "q_sta')
        await writer.drain()
        writer.close()
        replies = await exchange(path, req("q_status", ["s", "ok"], 5) + b"\n", 1)
        assert replies[0]["result"]["job_id"] == "ok"

    run_with_server(tmp_path, body)


def test_a_half_closed_connection_still_gets_its_replies(tmp_path):
    async def body(path: Path) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(req("q_wait", ["s", "j", 100], 1) + b"\n")
        writer.write_eof()  # like `echo ... | socat - UNIX:path`
        reply = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert reply["result"]["state"] == "RUNNING"
        assert await reader.read() == b""
        writer.close()

    run_with_server(tmp_path, body)


def test_an_answered_request_leaves_its_connection_which_holds_only_those_in_flight(tmp_path):
    """Each request's task leaves its connection's set when its reply is put (found by
    the connection's own loop, kept at accept: no ``get_running_loop`` a request)."""
    path = tmp_path / "k.sock"

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        config = ServerConfig(socket_path=path, drain_timeout_s=0)  # the slow one: cut
        server = Server(RpcCore(SlowKernel()), config)
        task = asyncio.create_task(server.serve(stop, ready=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), 5)
        try:
            reader, writer = await asyncio.open_unix_connection(str(path))
            slow = req("q_wait", ["s", "slow", 60_000], 0) + b"\n"
            fast = b"".join(req("q_status", ["s", f"job-{i}"], i) + b"\n" for i in range(1, 51))
            writer.write(slow + fast)
            await writer.drain()
            for _ in range(50):
                await asyncio.wait_for(reader.readline(), 10)
            (connection,) = server._connections
            (waiting,) = connection.requests  # the slow one, still in flight
            assert not waiting.done() and connection.inflight == 1
            writer.close()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_stop_drains_in_flight_requests_then_cancels_stragglers(tmp_path):
    path = tmp_path / "k.sock"

    async def main() -> list[Any]:
        stop, ready = asyncio.Event(), asyncio.Event()
        kernel = SlowKernel()
        server = Server(RpcCore(kernel), ServerConfig(socket_path=path, drain_timeout_s=0.5))
        task = asyncio.create_task(server.serve(stop, ready=lambda _: ready.set()))
        await ready.wait()
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(req("q_wait", ["s", "short", 100], 1) + b"\n")
        writer.write(req("q_wait", ["s", "long", 60_000], 2) + b"\n")
        await writer.drain()
        await kernel.waiting(2)  # both in flight: the short one ends 0.4 s before the drain
        stop.set()
        await asyncio.wait_for(task, 30)  # a hang guard: the long one is cut at 0.5 s
        replies = [json.loads(line) for line in (await reader.read()).splitlines()]
        writer.close()
        return replies

    replies = asyncio.run(main())
    assert [r["id"] for r in replies] == [1]  # the short one finished, the long one was cut
    assert not path.exists()


def test_the_blocking_and_async_clients_call_the_same_methods(tmp_path):
    async def body(path: Path) -> None:
        client = await AsyncClient.connect(str(path), tenant="alice", key="k")
        assert client.session_id == "sess-alice"
        replies = await asyncio.gather(*(client.q_status(f"j{i}") for i in range(20)))
        assert [r.job_id for r in replies] == [f"j{i}" for i in range(20)]
        with pytest.raises(NotFoundError):
            await client.q_status("nope")
        with pytest.raises(InvalidParams):
            await client.q_status(5)
        await client.aclose()

        def blocking() -> None:
            with Client.connect(str(path), tenant="bob", key="k") as sync:
                assert sync.q_status("x").to_json() == _job("x", "QUEUED", "sess-bob")
                assert sync.q_wait("x", timeout_ms=10).state == "RUNNING"

        await asyncio.to_thread(blocking)

    run_with_server(tmp_path, body)


def test_the_server_refuses_to_start_on_a_live_socket(tmp_path):
    async def body(path: Path) -> None:
        with pytest.raises(ServeError, match="already listens"):
            await Server(RpcCore(SlowKernel()), ServerConfig(socket_path=path)).serve(
                asyncio.Event()
            )
        assert path.exists()  # the failed second server did not remove the first one's socket

    run_with_server(tmp_path, body)
    assert os.listdir(tmp_path) == []


def test_tcp_serves_the_same_protocol_next_to_the_unix_socket(tmp_path):
    path = tmp_path / "k.sock"

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        addresses: list[str] = []

        def on_ready(found: list[str]) -> None:
            addresses.extend(found)
            ready.set()

        config = ServerConfig(socket_path=path, tcp=("127.0.0.1", 0))
        task = asyncio.create_task(
            Server(RpcCore(SlowKernel()), config).serve(stop, ready=on_ready)
        )
        await asyncio.wait_for(ready.wait(), 5)
        assert addresses[0] == f"unix:{path}" and addresses[1].startswith("tcp:127.0.0.1:")
        client = await AsyncClient.connect(addresses[1], tenant="tina", key="k")
        assert (await client.q_status("t")).tenant == "sess-tina"
        await client.aclose()
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert not path.exists()


async def _closed_and_read(writer: asyncio.StreamWriter, theirs: socket.socket) -> bytes:
    """Close our end (``writer``, flushed first), then everything the peer's socket got."""
    writer.close()
    await writer.wait_closed()
    theirs.settimeout(5)
    data = b""
    while chunk := theirs.recv(4096):
        data += chunk
    theirs.close()
    return data


class CountingSocket(socket.socket):
    """A real socket that counts the ``send`` calls asyncio makes on it."""

    sends = 0

    def send(self, data: Any, *flags: Any) -> int:
        self.sends += 1
        return super().send(data, *flags)


def test_replies_ready_in_one_loop_turn_share_one_write_after_the_first() -> None:
    from qmk.abi.server import _Outbox

    async def main() -> bytes:
        ours, theirs = socket.socketpair()
        counting = CountingSocket(fileno=ours.detach())
        _, writer = await asyncio.open_connection(sock=counting)
        outbox = _Outbox(writer)
        for i in range(5):
            outbox.put(f'{{"id":{i}}}\n'.encode())
        assert counting.sends == 1  # the turn's first reply went out at once
        await asyncio.sleep(0)
        assert counting.sends == 2  # the other four, joined, at the end of the turn
        outbox.put(b'{"id":5}\n')  # a new turn: at once again
        assert counting.sends == 3
        return await _closed_and_read(writer, theirs)

    data = asyncio.run(main())
    assert [json.loads(line)["id"] for line in data.splitlines()] == list(range(6))


def test_the_connections_that_wrote_in_a_turn_are_each_flushed_by_one_callback_at_its_end() -> None:
    from qmk.abi.server import _Outbox, _TurnEnd

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        turn_end = _TurnEnd()
        pairs = [socket.socketpair() for _ in range(2)]
        sockets = [CountingSocket(fileno=ours.detach()) for ours, _ in pairs]
        writers = [(await asyncio.open_connection(sock=s))[1] for s in sockets]
        outboxes = [_Outbox(writer, turn_end) for writer in writers]
        before = len(loop._ready)  # type: ignore[attr-defined]
        for i in range(3):
            for outbox in outboxes:
                outbox.put(f'{{"id":{i}}}\n'.encode())
        assert [s.sends for s in sockets] == [1, 1]  # each connection's first at once
        assert len(loop._ready) == before + 1  # type: ignore[attr-defined]  # one callback
        await asyncio.sleep(0)
        assert [s.sends for s in sockets] == [2, 2]  # the rest of each, joined, at the end
        received = []
        for writer, (_, theirs) in zip(writers, pairs, strict=True):
            received.append(await _closed_and_read(writer, theirs))
        return received

    for data in asyncio.run(main()):
        assert [json.loads(line)["id"] for line in data.splitlines()] == [0, 1, 2]


def test_a_connection_is_served_by_its_protocol_with_no_task_of_its_own(tmp_path):
    """No task reads a connection: once its request is answered, the only tasks are the
    test's and the server's; once the client closes, the connection is gone too."""
    path = tmp_path / "k.sock"

    async def main() -> tuple[int, int]:
        stop, ready = asyncio.Event(), asyncio.Event()
        server = Server(RpcCore(SlowKernel()), ServerConfig(socket_path=path))
        serving = asyncio.create_task(server.serve(stop, ready=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), 5)
        ours = {asyncio.current_task(), serving}
        try:
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(req("q_status", ["s", "job-1"], 1) + b"\n")
            await writer.drain()
            reply = json.loads(await asyncio.wait_for(reader.readline(), 10))
            assert reply["result"]["job_id"] == "job-1"
            await until(lambda: not (asyncio.all_tasks() - ours))  # its request's task ended
            held = server.connection_count
            writer.close()
            await writer.wait_closed()
            await until(lambda: server.connection_count == 0)
            return held, len(asyncio.all_tasks() - ours)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 10)

    assert asyncio.run(main()) == (1, 0)
