"""Connections that never sign in, and connection floods, on real sockets with a clock
the test moves by hand (:class:`~qmk.kernel.manual_clock.ManualClock`).

The authentication deadline and the accept rates read the server's clock only, so each
test states the time at which a thing happens and nothing waits for time to pass: a
test that needs the server to reach a state polls for that state (with a guard against
a hang), or reads the replies it is owed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from qmk.abi.door import Door
from qmk.abi.jsonrpc import RpcCore
from qmk.abi.server import ServeError, Server, ServerConfig
from qmk.errors import AuthError, NotFoundError, SessionError
from qmk.kernel.manual_clock import ManualClock
from support.wire import GUARD_S, Conn, request, until

NEGOTIATE = ("q_negotiate_caps", {"tenant": "t", "key": "good"})


class Doorman:
    """A stand-in kernel: key "good" opens session "s"; key "slow" waits for
    :attr:`release` and then succeeds, key "slow-bad" waits and then fails (1001)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0

    async def q_negotiate_caps(self, *, tenant: str, key: str, requested: list[str]) -> dict:
        if key.startswith("slow"):
            self.waiting += 1
            await self.release.wait()
        if key not in ("good", "slow"):
            raise AuthError("unknown tenant or wrong key")
        return {"session_id": "s", "tenant": tenant, "granted": requested}

    async def q_status(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        if session_id != "s":
            raise SessionError("not a session id")
        if job_id == "gone":
            raise NotFoundError(f"no job {job_id!r}")
        return {"job_id": job_id, "state": "QUEUED"}


class DoormanProbe:
    """What the door reads of the :class:`Doorman` (its one session is ``s``)."""

    max_graph_nodes = 100

    def session_tenant(self, session_id: str) -> str:
        if session_id != "s":
            raise SessionError("not a session id")
        return "t"

    async def lower(self, tenant: str, work: Any, *, what: str = "") -> Any:
        return work(), 0.0

    def charge(self, tenant: str, seconds: float) -> None:
        pass


Body = Callable[[Server, ManualClock, Doorman], Awaitable[None]]


def serving(tmp_path: Path, body: Body, *, probe: bool = False, **options: Any) -> None:
    """Run ``body(server, clock, kernel)`` against a live server on a manual clock
    (``probe``: its door checks sessions, as ``qmk serve``'s does)."""
    kernel = Doorman()

    async def main() -> None:
        clock = ManualClock(start=1000.0)
        stop, ready = asyncio.Event(), asyncio.Event()
        if "tcp" not in options:
            options.setdefault("socket_path", tmp_path / "k.sock")
        config = ServerConfig(**options)
        door = Door(kernel, config, probe=DoormanProbe() if probe else None, clock=clock)
        server = Server(RpcCore(kernel), config, clock=clock, door=door)
        task = asyncio.create_task(server.serve(stop, ready=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), GUARD_S)
        try:
            await body(server, clock, kernel)
        finally:
            kernel.release.set()
            stop.set()
            await asyncio.wait_for(task, GUARD_S)

    asyncio.run(main())


def refusal_data(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["id"] is None and reply["error"]["code"] == 1011, reply
    return reply["error"]["data"]


# --------------------------------------------------------------------------- the deadline


def test_a_connection_that_sends_nothing_is_closed_with_a_coded_line_at_the_deadline(tmp_path):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        idle = await Conn.open(server)
        await until(lambda: server.connection_count == 1)
        clock.advance(4.999)
        prompt = await Conn.open(server)  # connects within its deadline: stays
        await until(lambda: server.connection_count == 2)
        assert "result" in await prompt.call(*NEGOTIATE)
        clock.advance(0.001)  # the idle one's deadline: 5 s after it was accepted
        data = refusal_data(await idle.line())
        assert data == {
            "name": "unavailable",
            "code": "QS1011",
            "reason": "auth-timeout",
            "limit": 5.0,
        }
        assert await idle.closed_by_server()
        idle.close()
        await until(lambda: server.connection_count == 1)
        clock.advance(500)  # signed in: no sign-in deadline (its idle expiry is 600 s)
        assert (await prompt.call("q_status", ["s", "j"]))["result"]["state"] == "QUEUED"
        prompt.close()

    serving(tmp_path, body, auth_timeout_s=5.0)


def test_a_client_sending_a_request_a_byte_at_a_time_is_closed_at_the_deadline(tmp_path):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        slow = await Conn.open(server)
        await until(lambda: server.connection_count == 1)
        line = request(*NEGOTIATE)
        for byte in line[:40]:  # slowloris: never a whole line
            await slow.send(bytes([byte]))
            clock.advance(0.0625)  # 40 of them: 2.5 s
        clock.advance(1.5)
        assert refusal_data(await slow.line())["reason"] == "auth-timeout"
        assert await slow.closed_by_server()
        await until(lambda: server.connection_count == 0)

    serving(tmp_path, body, auth_timeout_s=4.0)


def test_a_failed_negotiation_does_not_stop_the_deadline(tmp_path):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        conn = await Conn.open(server)
        bad = await conn.call("q_negotiate_caps", {"tenant": "t", "key": "wrong"})
        assert bad["error"]["code"] == 1001
        clock.advance(2.0)
        assert refusal_data(await conn.line())["reason"] == "auth-timeout"
        assert await conn.closed_by_server()

    serving(tmp_path, body, auth_timeout_s=2.0)


def test_a_negotiation_in_flight_at_the_deadline_is_answered_and_keeps_its_connection(tmp_path):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        conn = await Conn.open(server)
        await conn.send(request("q_negotiate_caps", {"tenant": "t", "key": "slow"}))
        await until(lambda: kernel.waiting == 1)
        clock.advance(2.0)
        for _ in range(10):  # let the deadline's scope expire and its watcher wait
            await asyncio.sleep(0)
        kernel.release.set()
        assert (await conn.line())["result"]["session_id"] == "s"
        assert (await conn.call("q_status", ["s", "j"], 2))["result"]["state"] == "QUEUED"

    serving(tmp_path, body, auth_timeout_s=2.0)


def test_a_failing_request_in_flight_at_the_deadline_gets_its_reply_before_the_close(tmp_path):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        conn = await Conn.open(server)
        await conn.send(request("q_negotiate_caps", {"tenant": "t", "key": "slow-bad"}, 7))
        await until(lambda: kernel.waiting == 1)
        clock.advance(2.0)
        for _ in range(10):
            await asyncio.sleep(0)
        kernel.release.set()
        first = await conn.line()
        assert first["id"] == 7 and first["error"]["code"] == 1001
        assert refusal_data(await conn.line())["reason"] == "auth-timeout"
        assert await conn.closed_by_server()

    serving(tmp_path, body, auth_timeout_s=2.0)


def test_a_call_that_shows_a_valid_session_signs_its_connection_in_though_it_fails(tmp_path):
    """The deadline is the door's, as on every wire: a connection is signed in once a call
    of it shows a valid session (or a good key), whatever the call then answers; the
    JSON-RPC server used to wait for a request that succeeded."""

    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        conn = await Conn.open(server)
        missing = await conn.call("q_status", ["s", "gone"])
        assert missing["error"]["data"]["code"] == "QS1005"  # refused, its session valid
        clock.advance(500)  # long past the deadline, within its idle expiry: it stays
        for _ in range(10):  # let a deadline's timer run, were one left
            await asyncio.sleep(0)
        assert (await conn.call("q_status", ["s", "j"], 2))["result"]["state"] == "QUEUED"
        conn.close()

    serving(tmp_path, body, probe=True, auth_timeout_s=2.0)


# --------------------------------------------------------------------------- accept rates


def test_a_peer_opening_connections_too_fast_is_refused_with_when_to_retry(tmp_path, caplog):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        for _ in range(4):  # its burst: open and close, so no count limit is reached
            conn = await Conn.open(server)
            assert "result" in await conn.call(*NEGOTIATE)
            conn.close()
        await until(lambda: server.connection_count == 0)
        flood = await Conn.open(server)
        data = refusal_data(await flood.line())
        assert data["reason"] == "accept-rate-per-peer" and data["limit"] == 4.0
        assert data["retry_after_s"] == 0.25
        assert await flood.closed_by_server()
        other = await Conn.open(server, source="127.0.0.2")  # another peer's rate is whole
        assert "result" in await other.call(*NEGOTIATE)
        clock.advance(0.25)
        again = await Conn.open(server)
        assert "result" in await again.call(*NEGOTIATE)
        for conn in (other, again):
            conn.close()

    with caplog.at_level(logging.WARNING, logger="qmk.abi.server"):
        serving(
            tmp_path,
            body,
            tcp=("127.0.0.1", 0),
            accept_rate_per_peer=4.0,
            max_connections_per_peer=3,
        )
    assert any("opens connections faster than 4 a second" in r.getMessage() for r in caplog.records)


def test_past_the_accept_rate_connections_wait_until_a_token_is_due(tmp_path):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        for n in (1, 2):  # the burst, two peers: open and close
            conn = await Conn.open(server, source=f"127.0.0.{n}")
            assert "result" in await conn.call(*NEGOTIATE)
            conn.close()
        await until(lambda: server.connection_count == 0)
        third = await Conn.open(server, source="127.0.0.3")
        await third.send(request(*NEGOTIATE, 3))
        fourth = await Conn.open(server, source="127.0.0.4")
        await fourth.send(request(*NEGOTIATE, 4))
        clock.advance(0.5)  # one token is due: the third is served, not refused
        assert (await third.line())["id"] == 3
        assert server.connection_count == 1
        clock.advance(0.5)
        assert (await fourth.line())["id"] == 4
        assert server.connection_count == 2
        for conn in (third, fourth):
            conn.close()

    serving(tmp_path, body, tcp=("127.0.0.1", 0), accept_rate=2.0, max_connections=2)


def test_the_rates_and_the_deadline_are_keys_of_the_server_table():
    config = ServerConfig.from_table(
        {"auth_timeout_s": 3, "accept_rate": 50, "accept_rate_per_peer": 5.5},
        socket_path=Path("/tmp/x.sock"),
    )
    assert (config.auth_timeout_s, config.accept_rate, config.accept_rate_per_peer) == (
        3.0,
        50.0,
        5.5,
    )
    for key in ("auth_timeout_s", "accept_rate", "accept_rate_per_peer"):
        with pytest.raises(ServeError) as err:
            ServerConfig.from_table({key: 0}, socket_path=Path("/tmp/x.sock"))
        assert err.value.details["key"] == f"server.{key}"


@pytest.mark.skipif(sys.platform != "linux", reason="a Unix socket peer is a pid on Linux")
def test_an_idle_connection_on_the_unix_socket_is_closed_too(tmp_path):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        idle = await Conn.open(server)
        await until(lambda: server.connection_count == 1)
        clock.advance(1.0)
        assert refusal_data(await idle.line())["reason"] == "auth-timeout"
        assert await idle.closed_by_server()

    serving(tmp_path, body, auth_timeout_s=1.0)


def test_a_signed_in_connection_idle_past_its_expiry_gets_a_coded_line_and_is_closed(tmp_path):
    async def body(server: Server, clock: ManualClock, kernel: Doorman) -> None:
        conn = await Conn.open(server)
        assert "result" in await conn.call(*NEGOTIATE)
        clock.advance(29.999)
        assert (await conn.call("q_status", ["s", "j"]))["result"]["state"] == "QUEUED"
        clock.advance(29.999)  # within 30 s of its last answer: it stays
        assert (await conn.call("q_status", ["s", "j"]))["result"]["state"] == "QUEUED"
        clock.advance(30.0)
        data = refusal_data(await conn.line())
        assert data == {
            "name": "unavailable",
            "code": "QS1011",
            "reason": "idle-timeout",
            "limit": 30.0,
        }
        assert await conn.closed_by_server()
        conn.close()

    serving(tmp_path, body, idle_timeout_s=30.0)
