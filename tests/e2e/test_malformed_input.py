"""Malformed input to a real ``qmk serve``: JSON-RPC errors or a closed connection, and the
server keeps serving."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from qmk.client import Client

ALICE = {"tenant": "alice", "key": "alice-secret-key"}


class Raw:
    """A bare NDJSON connection: send bytes, read reply lines."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(path)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> Any:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def call(self, message: Any) -> Any:
        self.send(json.dumps(message).encode() + b"\n")
        return self.line()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def session(shared_server) -> str:
    with Client.connect(str(shared_server.socket), **ALICE) as client:
        assert client.session_id is not None
        return client.session_id


def still_serving(server: Any) -> None:
    with Client.connect(str(server.socket), **ALICE) as client:
        assert client.q_resource_query().tenant


@pytest.mark.parametrize(
    "line, code",
    [
        (b"{oops", -32700),
        (b"\xc3\x28", -32700),
        (b"[1, 2", -32700),
        (b"42", -32600),
        (b"[]", -32600),
        (b'{"jsonrpc": "2.0", "method": "q_status", "id": {"x": 1}}', -32600),
        (b'{"jsonrpc": "2.0", "method": "q_format_disk", "id": 1}', -32601),
        (b'{"jsonrpc": "2.0", "method": "q_status", "params": [1, 2], "id": 1}', -32602),
        (b'{"jsonrpc": "2.0", "method": "q_submit", "params": {"graph": []}, "id": 1}', -32602),
    ],
)
def test_malformed_lines_get_the_json_rpc_error_and_the_connection_stays_usable(
    shared_server, line, code
):
    raw = Raw(str(shared_server.socket))
    try:
        raw.send(line + b"\n")
        reply = raw.line()
        assert reply["error"]["code"] == code and reply["error"]["data"]["name"]
        ok = raw.call({"jsonrpc": "2.0", "id": 2, "method": "q_negotiate_caps", "params": ALICE})
        assert ok["id"] == 2 and ok["result"]["tenant"] == "alice"
    finally:
        raw.close()


def test_wrong_param_values_and_types_name_the_param(shared_server, session):
    raw = Raw(str(shared_server.socket))
    try:
        bad_type = raw.call(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "q_submit",
                "params": {"session_id": session, "graph": {}, "shots": "many"},
            }
        )
        assert bad_type["error"]["code"] == -32602
        assert bad_type["error"]["data"]["param"] == "shots"
        bad_value = raw.call(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "q_submit",
                "params": {"session_id": session, "graph": {"nodes": 5}, "shots": 10},
            }
        )
        assert bad_value["error"]["code"] == 1008  # the kernel's invalid-program
    finally:
        raw.close()


def test_a_batch_mixing_good_bad_and_notification_calls(shared_server, session):
    raw = Raw(str(shared_server.socket))
    try:
        batch = [
            {"jsonrpc": "2.0", "id": "a", "method": "q_resource_query", "params": [session]},
            {"jsonrpc": "2.0", "method": "q_resource_query", "params": [session]},
            {"jsonrpc": "2.0", "id": "b", "method": "q_nope"},
            {"jsonrpc": "2.0", "id": "c", "method": "q_status", "params": [session, "job_x"]},
            {"jsonrpc": "2.0", "id": "d", "method": "q_status", "params": {"job_id": 1}},
            "junk",
        ]
        replies = raw.call(batch)
        assert isinstance(replies, list) and len(replies) == 5
        by_id = {reply["id"]: reply for reply in replies}
        assert "machine" in json.dumps(by_id["a"]["result"])
        assert by_id["b"]["error"]["code"] == -32601
        assert by_id["c"]["error"]["code"] == 1005
        assert by_id["d"]["error"]["code"] == -32602
        assert by_id[None]["error"]["code"] == -32600
        # notifications alone: no reply at all; the next request's reply comes first
        raw.send(
            json.dumps({"jsonrpc": "2.0", "method": "q_status", "params": [session, "x"]}).encode()
            + b"\n"
            + json.dumps([{"jsonrpc": "2.0", "method": "q_nope"}]).encode()
            + b"\n"
        )
        after = raw.call(
            {"jsonrpc": "2.0", "id": 7, "method": "q_resource_query", "params": [session]}
        )
        assert after["id"] == 7 and "result" in after
    finally:
        raw.close()


def test_a_100_mb_line_is_refused_without_the_server_holding_it(shared_server):
    before_rss, _ = shared_server.rss_kib()
    raw = Raw(str(shared_server.socket))
    try:
        chunk = b"x" * (1 << 20)
        raw.send(b'{"jsonrpc": "2.0", "id": 1, "method": "q_status", "params": ["')
        for _ in range(100):
            raw.send(chunk)
        raw.send(b'"]}\n')
        reply = raw.line()
        assert reply["error"]["code"] == -32600 and reply["id"] is None
        assert "longer than" in reply["error"]["message"]
        ok = raw.call({"jsonrpc": "2.0", "id": 2, "method": "q_negotiate_caps", "params": ALICE})
        assert ok["id"] == 2 and "result" in ok
    finally:
        raw.close()
    after_rss, _ = shared_server.rss_kib()
    assert after_rss - before_rss < 60 * 1024  # far less than the 100 MiB it was sent
    still_serving(shared_server)


def test_clients_that_vanish_mid_message_or_mid_call_are_dropped_cleanly(shared_server, session):
    for _ in range(20):
        raw = Raw(str(shared_server.socket))
        raw.send(b'{"jsonrpc": "2.0", "id": 1, "method": "q_negotiate_caps", "params": {"ten')
        raw.close()
    for _ in range(20):  # gone before the reply is written
        raw = Raw(str(shared_server.socket))
        raw.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "q_wait",
                    "params": [session, "job_nope", 100],
                }
            ).encode()
            + b"\n"
        )
        raw.sock.shutdown(socket.SHUT_RDWR)
        raw.close()
    time.sleep(0.2)
    still_serving(shared_server)
    assert "Traceback" not in shared_server.output()
