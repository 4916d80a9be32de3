"""The server's limits on real sockets, in-process, with a small stand-in kernel.

Connections (total, per peer), what a connection may send before it authenticates,
nesting, backpressure on a client that does not read its replies, the drain's deadline,
the ``[server]`` table and the log filter. A real ``qmk serve`` under the same attacks is
tests/e2e/test_attacks.py; the figures are bench/bench_attacks.py.

Nothing here waits for time to pass: a test that needs the server to reach a state
polls for that state (with a guard against a hang), or reads the replies it is owed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from qmk.abi.jsonrpc import RpcCore
from qmk.abi.limits import LIMITS
from qmk.abi.server import RepeatFilter, ServeError, Server, ServerConfig
from qmk.errors import AuthError, SessionError
from support.cli import qmk
from support.paths import ROOT
from support.wire import GUARD_S, Conn, request, until


class Gatekeeper:
    """A stand-in kernel with a real notion of authentication.

    ``q_negotiate_caps`` with key "good" opens session "sess-ok" (any other key is 1001);
    ``q_status`` answers for "sess-ok" only (1002 otherwise), with ``pad`` bytes of
    padding in the reply; ``q_wait`` holds until :attr:`release` is set.
    """

    def __init__(self, pad: int = 0) -> None:
        self.pad = pad
        self.calls = 0
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()

    async def q_negotiate_caps(self, *, tenant: str, key: str, requested: list[str]) -> dict:
        if key != "good":
            raise AuthError("unknown tenant or wrong key")
        return {"session_id": "sess-ok", "tenant": tenant, "granted": requested}

    async def q_status(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        self.calls += 1
        if session_id != "sess-ok":
            raise SessionError("not a session id")
        return {"job_id": job_id[:40], "state": "QUEUED", "pad": "x" * self.pad}

    async def q_wait(self, *, session_id: str, job_id: str, timeout_ms: int) -> dict[str, Any]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        if session_id != "sess-ok":
            raise SessionError("not a session id")
        return {"job_id": job_id[:40], "state": "COMPLETED"}


Body = Callable[[Server, Gatekeeper], Awaitable[None]]


def serving(tmp_path: Path, body: Body, *, kernel: Gatekeeper | None = None, **options: Any):
    """Run ``body(server, kernel)`` against a live server, then stop it (hang-guarded)."""
    kernel = kernel or Gatekeeper()

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        options.setdefault("socket_path", tmp_path / "k.sock")
        config = ServerConfig(**options)
        server = Server(RpcCore(kernel, max_depth=config.max_depth), config)
        task = asyncio.create_task(server.serve(stop, ready=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), GUARD_S)
        try:
            await body(server, kernel)
        finally:
            kernel.release.set()
            stop.set()
            await asyncio.wait_for(task, GUARD_S)

    asyncio.run(main())


NEGOTIATE = ("q_negotiate_caps", {"tenant": "t", "key": "good"})

# --------------------------------------------------------------------------- connections


def test_a_connection_past_the_limit_gets_one_coded_line_and_is_closed(tmp_path):
    async def body(server: Server, kernel: Gatekeeper) -> None:
        held = [await Conn.unix(server) for _ in range(3)]
        for conn in held:
            assert "result" in await conn.call(*NEGOTIATE)
        extra = await Conn.unix(server)
        refusal = await extra.line()
        assert refusal["id"] is None and refusal["error"]["code"] == 1011
        assert refusal["error"]["data"] == {
            "name": "unavailable",
            "code": "QS1011",
            "reason": "too-many-connections",
            "limit": 3,
        }
        assert await extra.closed_by_server()
        held.pop().close()
        await until(lambda: server.connection_count == 2)
        again = await Conn.unix(server)
        assert "result" in await again.call(*NEGOTIATE)
        for conn in (*held, again):
            conn.close()

    serving(tmp_path, body, max_connections=3)


def test_connections_per_peer_are_limited_per_ip_address_on_tcp(tmp_path):
    async def body(server: Server, kernel: Gatekeeper) -> None:
        first = [await Conn.tcp(server) for _ in range(2)]
        for conn in first:
            assert "result" in await conn.call(*NEGOTIATE)
        third = await Conn.tcp(server)
        refusal = await third.line()
        assert refusal["error"]["data"]["reason"] == "too-many-connections-per-peer"
        assert (
            refusal["error"]["data"]["limit"] == 2 and "ip 127.0.0.1" in refusal["error"]["message"]
        )
        other = await Conn.tcp(server, source="127.0.0.2")  # another peer is still served
        assert "result" in await other.call(*NEGOTIATE)
        for conn in (*first, other):
            conn.close()

    serving(tmp_path, body, socket_path=None, tcp=("127.0.0.1", 0), max_connections_per_peer=2)


def test_connections_per_peer_are_limited_per_process_on_the_unix_socket(tmp_path):
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall(sys.argv[2].encode())\n"
        "print(s.makefile().readline(), end='')\n"
    )

    async def body(server: Server, kernel: Gatekeeper) -> None:
        mine = [await Conn.unix(server) for _ in range(2)]
        for conn in mine:
            assert "result" in await conn.call(*NEGOTIATE)
        third = await Conn.unix(server)
        refusal = await third.line()
        assert refusal["error"]["data"]["reason"] == "too-many-connections-per-peer"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            str(server.config.socket_path),
            request(*NEGOTIATE).decode(),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), GUARD_S)
        assert json.loads(out)["result"]["session_id"] == "sess-ok"
        for conn in mine:
            conn.close()

    serving(tmp_path, body, max_connections_per_peer=2)


# --------------------------------------------------------------------------- before authentication


def test_an_unauthenticated_connection_is_refused_a_long_line_before_it_ends(tmp_path):
    async def body(server: Server, kernel: Gatekeeper) -> None:
        conn = await Conn.unix(server)
        head = request("q_status", ["sess-ok", "j" * 10_000])
        await conn.send(head[:8_000])  # no newline yet: the server must not wait for one
        refusal = await conn.line()
        assert refusal["id"] is None and refusal["error"]["code"] == -32600
        assert refusal["error"]["data"]["limit"] == 4096
        assert "q_negotiate_caps" in refusal["error"]["message"]
        await conn.send(head[8_000:])  # the rest of the refused line is dropped unread
        assert kernel.calls == 0
        assert (await conn.call(*NEGOTIATE))["result"]["session_id"] == "sess-ok"
        assert (await conn.call("q_status", ["sess-ok", "j" * 10_000]))["result"]["state"]
        conn.close()

    serving(tmp_path, body, max_line_unauthenticated=4096)


def test_a_failed_negotiation_does_not_authenticate_the_connection(tmp_path):
    async def body(server: Server, kernel: Gatekeeper) -> None:
        conn = await Conn.unix(server)
        wrong = await conn.call("q_negotiate_caps", {"tenant": "t", "key": "bad"})
        assert wrong["error"]["code"] == 1001
        refused = await conn.call("q_status", ["sess-ok", "j" * 10_000])
        assert refused["error"]["code"] == -32600 and kernel.calls == 0
        conn.close()

    serving(tmp_path, body, max_line_unauthenticated=4096)


def test_a_long_line_pipelined_behind_the_negotiation_waits_for_it(tmp_path):
    async def body(server: Server, kernel: Gatekeeper) -> None:
        conn = await Conn.unix(server)
        await conn.send(request(*NEGOTIATE) + request("q_status", ["sess-ok", "j" * 50_000], 2))
        replies = {reply["id"]: reply for reply in [await conn.line(), await conn.line()]}
        assert replies[1]["result"]["session_id"] == "sess-ok"
        assert replies[2]["result"]["state"] == "QUEUED"
        conn.close()

    serving(tmp_path, body, max_line_unauthenticated=4096)


def test_requests_in_flight_before_authentication_are_bounded_in_bytes(tmp_path):
    waits = b"".join(request("q_wait", ["nobody", "j" * 700, 1], i) for i in range(6))
    assert all(700 < len(line) < 1024 for line in waits.splitlines())  # two fit in 2048

    async def body(server: Server, kernel: Gatekeeper) -> None:
        conn = await Conn.unix(server)
        await conn.send(waits)
        await until(lambda: kernel.running >= 2)
        for _ in range(20):  # tasks started together run in the same turn: let them
            await asyncio.sleep(0)
        assert kernel.running == 2
        kernel.release.set()
        replies = [await conn.line() for _ in range(6)]
        assert sorted(r["id"] for r in replies) == list(range(6))
        assert {r["error"]["code"] for r in replies} == {1002}
        assert kernel.most == 2
        conn.close()

    serving(tmp_path, body, max_line_unauthenticated=2048)


def test_an_authenticated_connection_runs_its_requests_together(tmp_path):
    async def body(server: Server, kernel: Gatekeeper) -> None:
        conn = await Conn.unix(server)
        assert "result" in await conn.call(*NEGOTIATE)
        await conn.send(b"".join(request("q_wait", ["sess-ok", "j" * 600, 1], i) for i in range(6)))
        await until(lambda: kernel.running == 6)
        kernel.release.set()
        assert {(await conn.line())["result"]["state"] for _ in range(6)} == {"COMPLETED"}
        conn.close()

    serving(tmp_path, body, max_line_unauthenticated=2048)


def test_a_line_nested_too_deep_is_refused_and_the_connection_serves_on(tmp_path):
    async def body(server: Server, kernel: Gatekeeper) -> None:
        conn = await Conn.unix(server)
        await conn.send(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        refusal = await conn.line()
        assert refusal["error"]["code"] == -32600 and refusal["error"]["data"]["limit"] == 64
        assert "result" in await conn.call(*NEGOTIATE)
        conn.close()

    serving(tmp_path, body, max_line_unauthenticated=1 << 20)


# --------------------------------------------------------------------------- backpressure, drain


def test_a_client_that_does_not_read_stops_the_server_reading_its_requests(tmp_path):
    kernel = Gatekeeper(pad=1 << 20)  # 1 MiB replies

    async def body(server: Server, kernel: Gatekeeper) -> None:
        conn = await Conn.unix(server)
        assert "result" in await conn.call(*NEGOTIATE)
        await conn.send(b"".join(request("q_status", ["sess-ok", f"j{i}"], i) for i in range(30)))
        seen = []
        for read in range(1, 31):
            seen.append((await conn.line())["id"])
            # the server reads the next request only once this one's reply is nearly read
            assert kernel.calls <= read + 3, (kernel.calls, read)
        assert sorted(seen) == list(range(30))
        conn.close()

    serving(tmp_path, body, kernel=kernel, max_inflight=1, max_unsent_bytes=4096)


def test_stop_cuts_a_client_that_pipelined_and_never_reads_after_the_drain_deadline(tmp_path):
    kernel = Gatekeeper(pad=1 << 16)
    stopped: dict[str, bool] = {}

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        config = ServerConfig(socket_path=tmp_path / "k.sock", drain_timeout_s=0.2)
        server = Server(RpcCore(kernel), config)
        task = asyncio.create_task(server.serve(stop, ready=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), GUARD_S)
        conn = await Conn.unix(server)
        assert "result" in await conn.call(*NEGOTIATE)
        flood = b"".join(request("q_status", ["sess-ok", f"j{i}"], i) for i in range(2000))
        conn.writer.write(flood)  # never drained, never read
        await until(lambda: kernel.calls >= 10)
        stop.set()
        await asyncio.wait_for(task, GUARD_S)  # shutdown does not wait for the reader
        stopped["served"] = kernel.calls < 2000
        conn.writer.transport.abort()

    asyncio.run(main())
    assert stopped["served"]  # it stopped reading the flood long before its end
    assert not (tmp_path / "k.sock").exists()


# --------------------------------------------------------------------------- configuration


def test_the_server_table_sets_every_limit_by_its_key():
    table = {spec.name: (spec.metadata["kind"](spec.metadata["low"]) + 1) for spec in LIMITS}
    config = ServerConfig.from_table(table, socket_path=Path("/tmp/x.sock"))
    assert {spec.name: getattr(config, spec.name) for spec in LIMITS} == table
    assert ServerConfig.from_table({}, tcp=("127.0.0.1", 0)).max_connections == 1024


@pytest.mark.parametrize(
    "table, key",
    [
        ({"max_conections": 5}, "server.max_conections"),
        ({"max_connections": 0}, "server.max_connections"),
        ({"max_line": 10}, "server.max_line"),
        ({"max_depth": "deep"}, "server.max_depth"),
        ({"fd_reserve": -1}, "server.fd_reserve"),
        ({"max_inflight": True}, "server.max_inflight"),
        ({"max_inflight": 2.5}, "server.max_inflight"),
        ({"drain_timeout_s": float("inf")}, "server.drain_timeout_s"),
    ],
)
def test_a_bad_server_key_is_a_coded_error_naming_it(table, key):
    with pytest.raises(ServeError) as err:
        ServerConfig.from_table(table, source="k.toml", socket_path=Path("/tmp/x.sock"))
    assert err.value.code == "QW004" and err.value.details["key"] == key
    assert str(err.value).startswith("QW004 bad-server-config: k.toml: ")


def test_qmk_serve_refuses_a_bad_server_table_in_one_line(tmp_path):
    config = tmp_path / "k.toml"
    config.write_text("[machine]\nphysical_qubits = 1000\n[server]\nmax_connections = 0\n")
    status, out, err = qmk(
        "serve", "--socket", str(tmp_path / "k.sock"), "--data-dir", str(tmp_path / "d"),
        "--config", str(config),
    )  # fmt: skip
    assert status == 2 and out == ""
    assert err.startswith("QW004 bad-server-config: ") and err.count("\n") == 1
    assert "server.max_connections must be an integer >= 1, got 0" in err


def test_the_docs_list_every_server_limit_with_its_default():
    page = (ROOT / "docs" / "qsyscall.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", page, flags=re.MULTILINE))
    for spec in LIMITS:
        assert spec.name in rows, f"docs/qsyscall.md lists no server.{spec.name}"
        default = spec.default
        if default is None:
            continue
        shown = rows[spec.name].replace("`", "").replace(" ", "").replace(",", "")
        assert shown in (str(default), _human(default)), (spec.name, shown, default)


def _human(value: Any) -> str:
    """A default as the docs table writes it: 16MiB, 64KiB, 1024, 2.0."""
    if isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value % size == 0:
                return f"{value // size}{unit}"
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- logs


def test_a_flood_of_like_log_lines_is_cut_to_a_few_and_counted():
    now = [0.0]
    kinds = RepeatFilter(burst=3, window_s=60, clock=lambda: now[0])

    def record(text: str, *args: Any) -> logging.LogRecord:
        return logging.LogRecord("qmk.abi.server", logging.WARNING, "", 0, text, args, None)

    flood = [record("refused a connection of %s: limit %d", f"pid {n}", 64) for n in range(1000)]
    assert sum(kinds.filter(r) for r in flood) == 3
    assert kinds.filter(record("another kind of line"))  # other kinds pass
    now[0] = 60.0
    late = record("refused a connection of %s: limit %d", "pid 7", 64)
    assert kinds.filter(late)
    assert late.getMessage().endswith("(997 more like it dropped in the last 60 s)")


def test_the_clients_raise_the_refusal_of_a_full_server_as_unavailable(tmp_path):
    from qmk.client import AsyncClient, Client
    from qmk.errors import UnavailableError

    async def body(server: Server, kernel: Gatekeeper) -> None:
        held = await Conn.unix(server)
        assert "result" in await held.call(*NEGOTIATE)
        path = str(server.config.socket_path)
        for _ in range(20):
            with pytest.raises(UnavailableError, match="limit of 1 connections"):
                await AsyncClient.connect(path, tenant="t", key="good")

        def blocking() -> None:
            for _ in range(20):
                with pytest.raises(UnavailableError) as err:
                    Client.connect(path, tenant="t", key="good")
                assert err.value.details["reason"] == "too-many-connections"

        await asyncio.to_thread(blocking)
        held.close()

    serving(tmp_path, body, max_connections=1)
