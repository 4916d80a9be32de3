"""``qmk serve --grpc`` as a process: its address in the ready line, TLS with the HTTP
listener's options, coded refusals of bad options, and live streams told when it stops."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qmk.abi.errors import ConnectError
from qmk.abi.proto import SERVICE_NAME
from support.children import reap
from support.grpc_kernel import connect
from support.kernel import ServerProcess, WorkerGate, config_toml
from support.paths import EXAMPLES

BELL_QASM = (EXAMPLES / "bell.qasm").read_text()


#: The two ways qmk serve runs gRPC: on the kernel's loop, or in a gateway process.
MODES = ("inline", "process")


def _server(root: Path, *extra: str) -> ServerProcess:
    config = root / "k.toml"
    config.write_text(config_toml())
    return ServerProcess(
        socket=root / "k.sock",
        data_dir=root / "data",
        config=config,
        workers=1,
        log=root / "k.log",
        extra=("--json", "--grpc", "127.0.0.1:0", *extra),
    )


def _listening(server: ServerProcess) -> list[str]:
    """The addresses of the server's ready line, once it is written (the socket appears
    as it is bound, a moment before the line)."""
    deadline = time.monotonic() + 60  # a hang guard, not a timing
    while time.monotonic() < deadline:
        for line in server.output().splitlines():
            if line.startswith("{"):
                return list(json.loads(line)["listening"])
        assert server.proc is not None and server.proc.poll() is None, server.output()
        time.sleep(0.02)
    raise AssertionError(server.output())


def _serve_fails(tmp_path: Path, *options: str) -> tuple[int, str]:
    (tmp_path / "k.toml").write_text(config_toml())
    done = subprocess.run(
        [sys.executable, "-m", "qmk", "serve", "--socket", str(tmp_path / "s.sock"),
         "--data-dir", str(tmp_path / "d"), "--config", str(tmp_path / "k.toml"),
         "--workers", "1", *options],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stderr


def test_grpc_over_tls_with_the_certificate_and_key_of_the_other_listeners(tmp_path: Path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate to test with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = _server(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key)).start()
    try:
        address = next(a for a in _listening(server) if a.startswith("grpc"))
        assert address.startswith("grpcs://127.0.0.1:")
        target = address.removeprefix("grpcs://")
        with connect(address, root_certificates=cert) as secure:
            job = secure.submit(BELL_QASM, shots=50, seed=3)
            done = secure.rpc("Wait", job_id=job.job_id, timeout_ms=60000)
            assert done.state == "COMPLETED" and set(done.counts) == {"00", "11"}
        trust = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(target, trust) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(ConnectError):  # plain text to a TLS port gets no answer
            connect(target, timeout=_short())
    finally:
        assert server.stop() == 0, server.output()


def _short():
    from qmk.client import Timeout

    return Timeout(call=10)


@pytest.mark.parametrize("mode", MODES)
def test_a_live_watch_is_told_the_server_stops_and_the_server_exits_0(tmp_path: Path, mode: str):
    gate = WorkerGate(tmp_path)
    server = _server(tmp_path, "--gateway", mode)
    server.start(hooks=gate.hooks())
    told = False  # whether the server was sent its SIGTERM (a second one would kill it)
    try:
        target = next(a for a in _listening(server) if a.startswith("grpc://"))
        with connect(target) as alice:
            job = alice.submit(BELL_QASM, shots=10, seed=1)  # held at the gate
            events = alice.watch_job(job.job_id)
            first = next(events)
            assert first.event == "state" and first.state in ("QUEUED", "RUNNING")
            server.proc.send_signal(15)  # SIGTERM
            told = True
            rest = list(events)
            assert rest and rest[-1].event == "closing", [e.event for e in rest]
            assert json.loads(rest[-1].json) == {"reason": "the server is stopping"}
    finally:
        gate.open()
        code = reap(server.proc, 60) if told else server.stop(60)
        server.stopped = True
        assert code == 0, server.output()


@pytest.mark.parametrize("mode", MODES)
def test_a_bad_grpc_address_is_one_coded_line(tmp_path: Path, mode: str):
    status, err = _serve_fails(tmp_path, "--grpc", "no-port-here", "--gateway", mode)
    assert status == 2 and err.startswith("QW001 bad-address: "), err


@pytest.mark.parametrize("mode", MODES)
def test_a_grpc_port_in_use_is_one_coded_line(tmp_path: Path, mode: str):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        status, err = _serve_fails(tmp_path, "--grpc", f"127.0.0.1:{port}", "--gateway", mode)
    assert status == 2 and err.startswith("QW003 cannot-bind: 127.0.0.1:"), err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize("mode", MODES)
def test_a_tls_file_that_does_not_load_stops_grpc_before_the_kernel_starts(
    tmp_path: Path, mode: str
):
    status, err = _serve_fails(
        tmp_path, "--grpc", "127.0.0.1:0", "--tls-cert", str(tmp_path / "missing.pem"),
        "--tls-key", str(tmp_path / "missing.key"), "--gateway", mode,
    )  # fmt: skip
    assert status == 2 and err.startswith("QW011 bad-option: --tls-cert"), err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("mode", MODES)
def test_trace_is_still_an_option_of_http_alone(tmp_path: Path, mode: str):
    status, err = _serve_fails(
        tmp_path, "--grpc", "127.0.0.1:0", "--trace", "console", "--gateway", mode
    )
    assert status == 2 and "--trace is an option of --http" in err, err


@pytest.mark.parametrize("mode", MODES)
def test_a_connection_the_door_refuses_is_raised_as_its_coded_refusal(tmp_path: Path, mode: str):
    from qmk.errors import UnavailableError
    from support.wires import HELD, DoorServer, GrpcWire

    # through a gateway process, the door there holds the kernel's [server] limits too
    server = DoorServer(tmp_path, server={"max_connections_per_peer": 1}, gateway=mode).start()
    try:
        held, outcome = GrpcWire().hold(server)  # the peer's one place
        assert outcome == HELD
        with pytest.raises(UnavailableError) as refused:
            connect(server.grpc)
        assert refused.value.details["reason"] == "too-many-connections-per-peer"
        assert refused.value.details["limit"] == 1
        held.close()
    finally:
        assert server.stop() == 0, server.log()


@pytest.mark.parametrize("mode", MODES)
def test_a_connection_refused_while_the_lingering_room_is_full_still_gets_its_coded_refusal(
    tmp_path: Path, mode: str
):
    from qmk.abi.door import REFUSED_LINGER_MAX
    from qmk.errors import UnavailableError
    from support.wires import HELD, DoorServer, GrpcWire

    server = DoorServer(tmp_path, server={"max_connections_per_peer": 1}, gateway=mode).start()
    silent: list[socket.socket] = []
    try:
        held, outcome = GrpcWire().hold(server)  # the peer's one place
        assert outcome == HELD
        for _ in range(REFUSED_LINGER_MAX):  # refused, each waiting for a call it never sends
            silent.append(socket.create_connection(server.grpc_address, timeout=60))
        # accepted after them (one listen queue, in order): the room of lingering refusals
        # is full, and the gRPC answer needs the client's call, a round trip later
        with pytest.raises(UnavailableError) as refused:
            connect(server.grpc)
        assert refused.value.details["reason"] in (
            "too-many-connections-per-peer",
            "accept-rate-per-peer",
        )
        held.close()
    finally:
        for sock in silent:
            sock.close()
        assert server.stop() == 0, server.log()
