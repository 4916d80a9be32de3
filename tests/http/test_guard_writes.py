"""How the HTTP listener writes an answer (qmk.http.guard): a response that gives its
length goes in one write, head and body; a held head with no body to follow (``HEAD``)
still goes, at the response's end; a syscall's answer, written whole by the connection,
carries the headers every answer carries.

The writes are recorded by a transport that keeps what it is given (asyncio's interface,
no QMK code stood in for); the whole answers are read from a real ``qmk serve --http``
on one kept-alive connection, under a guard against a hang, never a timing.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from urllib.parse import urlsplit

from qmk.http.app import SECURITY_HEADERS
from qmk.http.guard import _HeldHead
from support.http import HttpServer
from support.kernel import TENANTS

GUARD_S = 60.0


class _Kept(asyncio.Transport):
    """A transport that keeps each write, and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_a_held_head_is_written_with_the_bodys_first_bytes_in_one_write() -> None:
    kept = _Kept()
    writer = _HeldHead(kept)
    writer.hold()
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert kept.writes == []
    writer.write(b"{}")
    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # not held: at once
    assert kept.writes == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]
    assert not writer.is_closing()  # the rest is the transport's own


def test_a_held_head_with_no_body_to_follow_is_written_at_the_end_or_the_close() -> None:
    kept = _Kept()
    writer = _HeldHead(kept)
    writer.hold()
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n")
    writer.flush()  # the response is complete: a HEAD's answer has no body
    writer.hold()
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 9\r\n\r\n")
    writer.close()
    assert kept.writes == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 9\r\n\r\n",
    ]
    assert kept.closed


def test_answers_with_and_without_a_body_follow_each_other_on_one_connection(
    server: HttpServer,
) -> None:
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=GUARD_S)
    answers = []
    try:
        for method in ("GET", "HEAD", "GET"):
            connection.request(method, "/healthz")
            reply = connection.getresponse()
            answers.append((method, reply.status, reply.getheader("content-length"), reply.read()))
    finally:
        connection.close()
    body = answers[0][3]
    assert body and answers == [
        ("GET", 200, str(len(body)), body),
        ("HEAD", 200, str(len(body)), b""),
        ("GET", 200, str(len(body)), body),
    ]


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One answer read off ``sock``: its status, headers (by lower-case name) and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        assert name.lower() not in fields, head  # each header once
        fields[name.lower()] = value.strip()
    while len(body) < int(fields["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, data
        body += chunk
    return int(lines[0].split(" ", 2)[1]), fields, body


def test_a_syscalls_answer_carries_the_servers_and_the_security_headers(
    server: HttpServer,
) -> None:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    login = json.dumps({"tenant": "alice", "key": TENANTS["alice"]["key"]}).encode()
    with socket.create_connection((host, int(port)), timeout=GUARD_S) as sock:
        sock.sendall(
            b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(login), login)
        )
        status, fields, body = _answer(sock)  # a syscall's: written whole
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _, other, _ = _answer(sock)  # another route's: Starlette's two messages
    assert status == 201 and json.loads(body)["tenant"] == "alice"
    assert fields["content-type"] == "application/json"
    assert fields["x-qmk-tenant"] == "alice"
    for name, value in SECURITY_HEADERS:
        assert fields[name.decode()] == other[name.decode()] == value.decode()
    assert "date" in fields and "date" in other
