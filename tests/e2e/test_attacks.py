"""Hostile clients against a real ``qmk serve``: the wire's limits hold, the kernel keeps
serving a well-behaved client, and no accepted job is lost.

Each scenario of issue 14's wire items, quickly: a flood of idle connections past the
file descriptors (jobs accepted before it still complete), many unauthenticated
connections that send long lines (little memory), a client that pipelines and never
reads (others are served; SIGTERM still exits), values JSON cannot hold (coded
refusals; the rest of a batch answered), a token with ``=`` appended, connections per
process. The same scenarios with the well-behaved client's latency measured are
bench/bench_attacks.py. Nothing here asserts a timing.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from support.children import die_with_us
from support.kernel import BELL, TENANTS, ServerProcess, WorkerGate, config_toml
from support.pools import Hooks

ALICE = {"tenant": "alice", "key": TENANTS["alice"]["key"]}
GRANTS = {**ALICE, "requested": ["CAP_ALLOC", "CAP_LINK", "CAP_MAGIC", "CAP_TELEPORT"]}


class Raw:
    """A bare NDJSON connection on a Unix socket (blocking, with a hang guard)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(str(path))
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> Any:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def call(self, method: str, params: Any, request_id: Any = 1) -> Any:
        self.send(request(method, params, request_id))
        return self.line()

    def close(self) -> None:
        self.sock.close()


def request(method: str, params: Any, request_id: Any = 1) -> bytes:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return json.dumps(message).encode() + b"\n"


def start(
    tmp_path: Path,
    *,
    server: dict[str, int] | None = None,
    nofile: int | None = None,
    hooks: Hooks | None = None,
    workers: int = 1,
) -> ServerProcess:
    """``qmk serve`` with a ``[server]`` table, under RLIMIT_NOFILE ``nofile`` if given
    (``hooks``: on the tests' pool, :meth:`ServerProcess.start`)."""
    config = tmp_path / "k.toml"
    text = config_toml()
    if server:
        text += "[server]\n" + "".join(f"{k} = {v}\n" for k, v in server.items())
    config.write_text(text)
    process = ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=workers,
        log=tmp_path / "k.log",
    )
    if nofile is None:
        return process.start(hooks=hooks)
    assert process.log is not None
    process.proc = subprocess.Popen(
        process.command(hooks),
        stdout=process.log.open("ab"),
        stderr=subprocess.STDOUT,
        env=process.environment(hooks),
        preexec_fn=die_with_us(
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        ),
    )
    while not process.socket.exists():  # it appears once the server listens
        assert process.proc.poll() is None, process.output()
        time.sleep(0.02)
    return process


@pytest.fixture
def stop_after() -> Any:
    started: list[ServerProcess] = []
    yield started.append
    for process in started:
        if not process.stopped:
            assert process.stop() == 0, process.output()


# --------------------------------------------------------------------------- descriptors


def test_a_flood_of_idle_connections_is_refused_past_the_descriptors_and_jobs_still_run(
    tmp_path, stop_after
):
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1024:
        pytest.skip("this test opens 400 connections itself")
    with WorkerGate(tmp_path) as gate:
        server = start(
            tmp_path,
            server={"max_connections_per_peer": 100_000},
            nofile=256,
            hooks=gate.hooks(),
        )
        stop_after(server)
        client = Client.connect(str(server.socket), **ALICE)
        held = client.q_submit(BELL, 100, 7)  # accepted before the flood, held in its worker
        flood: list[Raw] = []
        accepted, refusals = 0, []
        for _ in range(400):
            raw = Raw(server.socket)
            flood.append(raw)
            with contextlib.suppress(OSError):  # closed by the server: its refusal waits
                raw.send(request("q_negotiate_caps", ALICE))
            reply = raw.line()
            if "result" in reply:
                accepted += 1
            else:
                refusals.append(reply)
        assert accepted and refusals and accepted + len(refusals) == 400
        for reply in refusals:
            assert reply["id"] is None and reply["error"]["code"] == 1011
            assert reply["error"]["data"]["reason"] == "too-many-connections"
            assert reply["error"]["data"]["limit"] == accepted + 1  # and the client's own
        gate.open()
        assert client.q_wait(held.job_id, 60_000).state == "COMPLETED"
        again = client.q_submit(BELL, 100, 8)  # the kernel still has descriptors to work
        assert client.q_wait(again.job_id, 60_000).state == "COMPLETED"
        for raw in flood:
            raw.close()
        client.close()
    log = server.output()
    assert "Too many open files" not in log and "Traceback" not in log
    assert log.count("refused a connection") <= 6  # rate-limited: not one line per refusal


def test_a_process_may_hold_its_share_of_connections_and_others_are_still_served(
    tmp_path, stop_after
):
    server = start(tmp_path, server={"max_connections_per_peer": 8})
    stop_after(server)
    script = textwrap.dedent(
        """
        import json, socket, sys
        held, refused = [], 0
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            s.sendall(sys.argv[2].encode())
            reply = json.loads(s.makefile().readline())
            held.append(s)
            refused += "error" in reply
        print(json.dumps({"refused": refused}), flush=True)
        sys.stdin.read()  # hold the connections until the test is done
        """
    )
    attacker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(server.socket),
            request("q_negotiate_caps", ALICE).decode(),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert attacker.stdout is not None and attacker.stdin is not None
        assert json.loads(attacker.stdout.readline()) == {"refused": 12}
        with Client.connect(str(server.socket), **ALICE) as client:  # another process
            assert client.q_resource_query().tenant
    finally:
        assert attacker.stdin is not None
        attacker.stdin.close()
        attacker.wait(60)


# --------------------------------------------------------------------------- memory, backpressure


def test_unauthenticated_long_lines_are_refused_without_the_server_holding_them(
    tmp_path, stop_after
):
    server = start(tmp_path)
    stop_after(server)
    _, before = server.rss_kib()
    conns = [Raw(server.socket) for _ in range(40)]
    chunk = b"x" * (1 << 20)
    for raw in conns:  # 40 lines of 2 MiB that never end: 80 MiB if they were held
        raw.send(b'{"jsonrpc": "2.0", "id": 1, "method": "q_status", "params": ["')
        raw.send(chunk)
        raw.send(chunk)
    for raw in conns:
        reply = raw.line()
        assert reply["error"]["code"] == -32600 and reply["error"]["data"]["limit"] == 65536
    _, after = server.rss_kib()
    assert after - before < 40 * 1024, (before, after)
    for raw in conns:
        raw.send(b'"]}\n')  # the refused line ends here, unread
        assert raw.call("q_negotiate_caps", ALICE, 2)["result"]["tenant"] == "alice"
        raw.close()


def test_a_client_that_pipelines_and_never_reads_stalls_no_one_and_sigterm_still_exits(
    tmp_path,
):
    server = start(tmp_path)
    hog = Raw(server.socket)
    session = hog.call("q_negotiate_caps", GRANTS)["result"]["session_id"]
    flood = request("q_resource_query", [session]) * 20_000  # replies far past the bound
    hog.sock.setblocking(False)
    sent = 0
    while sent < len(flood):  # until the server stops reading (its buffers are full)
        try:
            sent += hog.sock.send(flood[sent : sent + (1 << 16)])
        except BlockingIOError:
            break
    assert sent < len(flood)  # the hog's socket is full: it pipelines faster than it reads
    with Client.connect(str(server.socket), **ALICE) as client:
        for _ in range(50):
            assert client.q_resource_query().tenant
        job = client.q_submit(BELL, 100, 3)
        assert client.q_wait(job.job_id, 60_000).state == "COMPLETED"
    assert server.stop(60) == 0  # the hog never reads: the drain's deadline cuts it
    assert not server.socket.exists()
    hog.close()


# --------------------------------------------------------------------------- values


def test_values_json_cannot_hold_are_refused_with_their_codes_and_nothing_is_lost(
    tmp_path, stop_after
):
    server = start(tmp_path)
    stop_after(server)
    raw = Raw(server.socket)
    session = raw.call("q_negotiate_caps", GRANTS)["result"]["session_id"]
    submit = json.dumps(
        {"jsonrpc": "2.0", "id": 2, "method": "q_submit", "params": [session, BELL, 10, 1]}
    )
    raw.send(b'[{"jsonrpc":"2.0","id":1e400,"method":"q_status"},' + submit.encode() + b"]\n")
    replies = {reply["id"]: reply for reply in raw.line()}
    assert replies[None]["error"]["code"] == -32600
    job_id = replies[2]["result"]["job_id"]
    listed = raw.call("q_list_jobs", [session], 3)["result"]["jobs"]
    assert [job["job_id"] for job in listed] == [job_id]  # the batch's submit was answered
    huge = "1" + "0" * 400
    raw.send(
        f'{{"jsonrpc":"2.0","id":4,"method":"q_wait","params":["{session}","{job_id}",{huge}]}}\n'.encode()
    )
    wait = raw.line()
    assert wait["error"]["code"] == 1012 and wait["error"]["data"]["param"] == "timeout_ms"
    policy = (
        f'{{"session_id":"{session}","graph":{json.dumps(BELL)},"policy":{{"timeout_ms":1e400}}}}'
    )
    raw.send(f'{{"jsonrpc":"2.0","id":5,"method":"q_submit","params":{policy}}}\n'.encode())
    assert raw.line()["error"]["code"] == 1012
    padded = raw.call("q_status", [session + "=", job_id], 6)
    assert padded["error"]["code"] == 1002
    nested: Any = []
    for _ in range(40):
        nested = [nested]
    deep = raw.call("q_status", [session, nested], 7)
    assert deep["error"]["code"] == -32602  # 43 deep is within the limit: a type error
    raw.send(
        b'{"jsonrpc":"2.0","id":8,"method":"q_status","params":' + b"[" * 70 + b"]" * 70 + b"}\n"
    )
    too_deep = raw.line()
    assert too_deep["id"] is None and too_deep["error"]["data"]["limit"] == 64
    assert raw.call("q_wait", [session, job_id, 60_000], 9)["result"]["state"] == "COMPLETED"
    raw.close()
    assert "Traceback" not in server.output()


def test_qmk_serve_refuses_to_start_when_the_descriptors_leave_no_room(tmp_path):
    config = tmp_path / "k.toml"
    config.write_text(config_toml() + "[server]\nfd_reserve = 100000\n")
    run = subprocess.run(
        [
            sys.executable, "-m", "qmk", "serve", "--socket", str(tmp_path / "k.sock"),
            "--data-dir", str(tmp_path / "data"), "--config", str(config), "--workers", "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("QW005 too-few-descriptors: ")
    assert run.stderr.count("\n") == 1 and not (tmp_path / "k.sock").exists()
