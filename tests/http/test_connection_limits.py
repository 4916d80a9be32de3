"""The HTTP listener's connection discipline (qmk.http.guard) against a real ``qmk serve
--http``: slow, idle, oversized and unauthenticated connections are answered with a coded
status and closed; both wires share one connection budget inline, and a gateway process
has its own; a session's and a tenant's
live event streams are capped; a client that does not read a big result is dropped
with the server's unsent bytes bounded.

Each test waits on the server's own close (a read that ends) or its log line, under a
generous guard, never on a sleep that races the machine.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from qmk.abi.server import STREAM_CHUNK
from qmk.client import Client
from qmk.qvm.generate import uniform_graph
from support.http import HttpServer, bearer, session
from support.kernel import TENANTS
from support.paths import ROOT

GUARD_S = 60.0
#: The capped server's bound of a connection's unsent bytes (``max_unsent_bytes``).
UNSENT = 64 * 1024


@contextlib.contextmanager
def _server(
    root: Path, nofile: int | None = None, extra: tuple[str, ...] = (), **limits: Any
) -> Iterator[HttpServer]:
    started = HttpServer(root, server=limits, nofile=nofile, extra=extra).start()
    try:
        yield started
    finally:
        code = started.stop()
    assert code == 0, started.output()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """A server whose header, body and unauthenticated deadlines are short."""
    with _server(
        tmp_path_factory.mktemp("qmk-quick"),
        http_header_timeout_s=0.5,
        http_body_timeout_s=0.5,
        auth_timeout_s=1.0,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """A server with small stream caps, a small bound of unsent bytes and a short write
    timeout."""
    with _server(
        tmp_path_factory.mktemp("qmk-capped"),
        max_streams_per_session=2,
        max_streams_per_tenant=3,
        max_unsent_bytes=UNSENT,
        write_timeout_s=0.5,
    ) as server:
        yield server


def _connect(server: HttpServer, rcvbuf: int | None = None) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(GUARD_S)
    sock.connect((host, int(port)))
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (the guard raises past GUARD_S)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    sock.close()
    return data


def _problem(response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


# --------------------------------------------------------------------------- deadlines


def test_a_slowloris_request_is_answered_408_and_closed_after_the_header_timeout(
    quick: HttpServer,
):
    sock = _connect(quick)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never ends
    status, problem = _problem(_until_closed(sock))
    assert status == 408 and problem["code"] == "QS1011", problem
    assert problem["details"]["reason"] == "header-timeout"
    assert problem["details"]["limit"] == 0.5


def test_an_idle_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    quick: HttpServer,
):
    status, problem = _problem(_until_closed(_connect(quick)))
    assert status == 408 and problem["details"]["reason"] == "header-timeout"


def test_a_kept_alive_connections_next_slow_head_is_408_after_a_whole_body_before_it(
    quick: HttpServer,
):
    # a login (its body read whole: the body's deadline ended early), then a head that
    # never ends: its own deadline, counted from its first byte, still holds
    sock = _connect(quick)
    body = json.dumps({"tenant": "alice", "key": TENANTS["alice"]["key"]}).encode()
    sock.sendall(
        b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, rest = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += sock.recv(65536)
    assert head.split(b" ", 2)[1] == b"201", answer
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never ends
    status, problem = _problem(_until_closed(sock))
    assert status == 408 and problem["details"]["reason"] == "header-timeout", problem


def test_a_kept_alive_connection_idle_after_its_answer_is_closed_without_a_word(
    quick: HttpServer,
):
    # a login (the connection signs in: no auth timeout), then nothing: its keep-alive
    # wait (http_keep_alive_s) closes it, with no header timeout's 408 (no request has
    # begun), and no hang
    sock = _connect(quick)
    body = json.dumps({"tenant": "alice", "key": TENANTS["alice"]["key"]}).encode()
    sock.sendall(
        b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, rest = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += sock.recv(65536)
    assert head.split(b" ", 2)[1] == b"201", answer
    assert _until_closed(sock) == b""


def test_an_unfinished_body_is_closed_after_the_body_timeout(quick: HttpServer):
    sock = _connect(quick)
    sock.sendall(
        b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b'content-length: 1000\r\n\r\n{"tenant":'
    )
    assert _until_closed(sock) == b""  # closed, with its handler told the client left
    assert "Traceback" not in quick.output()


def test_an_answer_sent_before_its_requests_body_says_connection_close_and_closes(
    capped: HttpServer,
):
    """A request answered from its head alone (refused, say): the guard closes the
    connection after the answer instead of reading the body, so the answer says so, and
    an HTTP/1.1 client sends its next request on a new connection, not into the close
    (httpx met "server disconnected" whenever a body came apart from its head)."""
    sock = _connect(capped)
    sock.sendall(
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: text/plain\r\n"
        b"content-length: 2\r\n\r\n"
    )  # its body never comes
    head = _until_closed(sock).partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 4") and b"\r\nconnection: close\r\n" in head + b"\r\n", head


def test_a_connection_that_never_authenticates_is_closed_after_auth_timeout_s(
    quick: HttpServer,
):
    sock = _connect(quick)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # public: no bearer
    data = _until_closed(sock)
    first, _, rest = data.partition(b"HTTP/1.1 408")
    assert first.startswith(b"HTTP/1.1 200"), data[:200]
    status, problem = _problem(b"HTTP/1.1 408" + rest)
    assert status == 408 and problem["details"]["reason"] == "auth-timeout", problem


def test_a_long_url_is_414_and_long_headers_are_431(quick: HttpServer):
    sock = _connect(quick)
    sock.sendall(b"GET /" + b"a" * (8 * 1024 + 10))
    status, problem = _problem(_until_closed(sock))
    assert status == 414 and problem["details"] == {"reason": "url-too-long", "limit": 8192}
    sock = _connect(quick)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * (70 * 1024))
    status, problem = _problem(_until_closed(sock))
    assert status == 431 and problem["details"]["reason"] == "head-too-large", problem
    assert problem["details"]["limit"] == 64 * 1024


# --------------------------------------------------------------------------- the budget


def _held_http(server: HttpServer) -> tuple[socket.socket, int]:
    """A connection that made one request (so the server holds it), and its status."""
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return sock, int(data.split(b" ", 2)[1])


def _rpc_first_line(path: Path) -> dict[str, Any] | None:
    """The line the JSON-RPC server sends at once on a new connection (None: none)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"q_resource_query","params":["x"]}\n')
    sock.settimeout(GUARD_S)
    line = sock.makefile("rb").readline()
    sock.close()
    return json.loads(line) if line else None


@pytest.mark.parametrize("gateway", ["inline", "process"])
def test_inline_both_wires_share_one_connection_budget_and_a_gateway_has_its_own(
    tmp_path: Path, gateway: str
):
    limits = {"max_connections": 4, "http_keep_alive_s": 600.0, "auth_timeout_s": 600.0}
    with _server(tmp_path, extra=("--gateway", gateway), **limits) as server:
        with ExitStack() as held:
            statuses = []
            for _ in range(8):
                sock, status = _held_http(server)
                held.callback(sock.close)
                statuses.append(status)
                if status != 200:
                    break
            assert statuses == [200, 200, 200, 200, 503], statuses
            reply = _rpc_first_line(server.socket)
            assert reply is not None
            if gateway == "inline":  # the socket's new connection finds the room taken
                assert reply["error"]["code"] == 1011, reply
                assert reply["error"]["data"]["reason"] == "too-many-connections"
            else:  # the HTTP connections are the gateway process's: the kernel answers
                assert "session" in json.dumps(reply), reply
        # once they close, both wires have room again
        deadline = time.monotonic() + GUARD_S
        while True:
            reply = _rpc_first_line(server.socket)
            if reply is not None and reply.get("error", {}).get("code") != 1011:
                break
            assert time.monotonic() < deadline, reply
        assert "session" in json.dumps(reply)  # answered by the kernel: a bad session


def test_idle_http_connections_under_a_low_nofile_starve_neither_jobs_nor_the_socket(
    tmp_path: Path,
):
    """Under RLIMIT_NOFILE 256, one peer that may hold any number of connections takes
    what the shared budget allows (then 503); a client connected to the socket before
    runs jobs to completion, and no descriptor runs out."""
    limits = {"max_connections_per_peer": 100_000, "http_keep_alive_s": 600.0}
    with _server(tmp_path, nofile=256, auth_timeout_s=600.0, **limits) as server:
        client = Client.connect(str(server.socket), tenant="alice", key=TENANTS["alice"]["key"])
        with ExitStack() as held:
            statuses: dict[int, int] = {}
            for _ in range(400):
                try:
                    sock, status = _held_http(server)
                except OSError:
                    status = 0  # the connect itself failed: no descriptor left
                else:
                    held.callback(sock.close)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    break
            assert set(statuses) == {200, 503}, statuses
            bell = json.loads((ROOT / "examples" / "bell.qvm.json").read_text())
            jobs = [client.q_submit(bell, 100, seed).job_id for seed in range(5)]
            states = [client.q_wait(job, 60_000).state for job in jobs]
            assert states == ["COMPLETED"] * 5, [client.q_status(j).error for j in jobs]
        client.close()
    assert "Too many open files" not in server.output()


# --------------------------------------------------------------------------- streams


def test_a_sessions_and_a_tenants_live_streams_are_capped_with_a_coded_429(capped: HttpServer):
    with httpx.Client(base_url=capped.url, timeout=GUARD_S) as client, ExitStack() as streams:
        first, second = session(client), session(client)

        def open_stream(sid: str) -> httpx.Response:
            response = streams.enter_context(
                client.stream("GET", "/v1/events", headers=bearer(sid))
            )
            if response.status_code != 200:
                response.read()
            return response

        assert [open_stream(first).status_code for _ in range(2)] == [200, 200]
        over = open_stream(first)
        assert over.status_code == 429 and over.json()["code"] == "QS1006", over.text
        assert over.json()["details"] == {
            "reason": "too-many-streams",
            "scope": "session",
            "limit": 2,
        }
        assert open_stream(second).status_code == 200  # the tenant's third
        over = open_stream(second)
        assert over.status_code == 429
        assert over.json()["details"] == {
            "reason": "too-many-streams",
            "scope": "tenant",
            "limit": 3,
        }


# --------------------------------------------------------------------------- non-readers

_DROPPED = re.compile(r"dropped an? (HTTP )?connection whose client read none of its (\d+) unsent")


def _dropped(server: HttpServer, seen: int) -> list[int]:
    """The unsent bytes of each drop the server logged, once there are more than ``seen``."""
    deadline = time.monotonic() + GUARD_S
    while True:
        found = [int(m.group(2)) for m in _DROPPED.finditer(server.output())]
        if len(found) > seen:
            return found
        assert time.monotonic() < deadline, server.output()[-2000:]
        time.sleep(0.05)  # polling the server's log for its own event, under the guard


def _big_result(client: httpx.Client) -> tuple[str, dict[str, Any], httpx.Response]:
    """A session, and a job of its with a big result (3.2 MB of counts), waited for: the
    session, the job, and the answer of its wait."""
    sid = session(client)
    body = {"program": uniform_graph(18).to_json(), "shots": 200_000, "seed": 5}
    body["policy"] = {"noise": False}
    job = client.post("/v1/jobs", json=body, headers=bearer(sid)).json()
    done = client.get(
        f"/v1/jobs/{job['job_id']}/wait", params={"timeout_ms": 60000}, headers=bearer(sid)
    )
    assert done.json()["state"] == "COMPLETED"
    return sid, job, done


def test_a_client_that_does_not_read_a_big_result_is_dropped_on_both_wires(capped: HttpServer):
    with httpx.Client(base_url=capped.url, timeout=GUARD_S) as client:
        sid, job, done = _big_result(client)
        whole = len(done.content)
        # a client that reads gets the big result whole, as a reply and as an event
        events = client.get(f"/v1/jobs/{job['job_id']}/events", headers=bearer(sid)).text
        result = json.loads(events.split("event: result\ndata: ", 1)[1].split("\n", 1)[0])
        assert result["result"] == done.json()["result"]
    assert whole > 3 * 2**20  # a result far past what a connection may hold unsent
    seen = len(_DROPPED.findall(capped.output()))
    sock = _connect(capped, rcvbuf=4096)
    sock.sendall(
        f"GET /v1/jobs/{job['job_id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {sid}\r\n\r\n".encode()
    )
    drops = _dropped(capped, seen)
    # what the server held for it: past the door's bound (max_unsent_bytes), within one chunk
    assert drops[-1] <= UNSENT + STREAM_CHUNK, drops
    assert len(_until_closed(sock)) < whole  # it was cut, not served whole
    # the JSON-RPC socket: the same result, a client that does not read
    rpc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    rpc.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rpc.connect(str(capped.socket))
    status = {"jsonrpc": "2.0", "id": 1, "method": "q_status", "params": [sid, job["job_id"]]}
    rpc.sendall((json.dumps(status) + "\n").encode())
    drops = _dropped(capped, seen + 1)
    assert drops[-1] <= UNSENT + STREAM_CHUNK, drops  # the same bound, and one chunk
    rpc.settimeout(GUARD_S)
    assert len(_until_closed(rpc)) < whole


def test_a_slow_reader_of_an_answer_within_max_unsent_bytes_is_not_dropped(tmp_path: Path):
    """The HTTP listener bounds a connection's unsent bytes by the door's
    ``max_unsent_bytes``, as every wire does (issue 63: it kept asyncio's 64 KiB, so a
    client that paused past ``write_timeout_s`` over a 3 MB answer was dropped however
    large the bound): an answer that fits the bound waits for its client, who reads it
    whole after the write timeout has long passed."""
    with _server(tmp_path, max_unsent_bytes=16 * 2**20, write_timeout_s=0.2) as server:
        with httpx.Client(base_url=server.url, timeout=GUARD_S) as client:
            sid, job, done = _big_result(client)
        whole = len(done.content)
        assert 2**20 < whole < 16 * 2**20  # past 64 KiB and a socket's buffers, within the bound
        sock = _connect(server, rcvbuf=4096)
        sock.sendall(
            f"GET /v1/jobs/{job['job_id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {sid}\r\nConnection: close\r\n\r\n".encode()
        )
        time.sleep(1.0)  # five write timeouts with nothing read
        answer = _until_closed(sock)
        assert answer.partition(b"\r\n\r\n")[2] == done.content
        assert "HTTP: dropped a connection" not in server.output()
