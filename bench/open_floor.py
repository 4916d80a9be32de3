"""The least servers of a session open, for ``bench_service.py --floor`` (not a kernel).

Each answers what ``qmk serve`` answers a client's :meth:`qmk.client.Client.connect`: one
``q_negotiate_caps`` line, its reply (the tenant's capabilities and quota, read from the
same kernel config), then the client's close. What each does between the line and the
reply is the least of a part of the kernel's work, so that the gap between two kinds is
what that part costs on this host, and the gap to ``qmk serve`` what the kernel adds:

- ``blocking``: no event loop: a blocking accept, read, JSON parse and reply;
- ``asyncio``: the same in an :class:`asyncio.Protocol` of an asyncio Unix server (no
  streams, no tasks: the fewest loop turns an asyncio server can take);
- ``durable``: ``asyncio``, with the kernel's promise before the answer: the key checked,
  a signed session token, its row in SQLite (WAL, ``synchronous`` as the kernel's
  default) and an audit line written, committed.

    python bench/open_floor.py KIND SOCKET CONFIG DATA_DIR
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qmk import defaults
from qmk.abi.server import bind_unix
from qmk.kernel.config import TenantConfig, load_config

KINDS = ("blocking", "asyncio", "durable")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Negotiator:
    """One tenant's negotiations: a line in, the reply out (``durable``: with the work
    the kernel makes durable before it answers)."""

    def __init__(self, tenant: str, conf: TenantConfig, data: Path, *, durable: bool) -> None:
        self.tenant, self.conf, self.durable = tenant, conf, durable
        self.quota = conf.quota()
        self.secret = secrets.token_bytes(32)
        self.db = sqlite3.connect(data / "floor.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={defaults.SYNCHRONOUS.upper()}")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS sessions "
            "(sid TEXT PRIMARY KEY, tenant TEXT, caps TEXT, expires REAL)"
        )
        self.audit = (data / "audit.log").open("ab", buffering=0)

    def answer(self, line: bytes) -> bytes:
        """The reply line to a ``q_negotiate_caps`` request line."""
        request = json.loads(line)
        params = request["params"]
        if self.durable and not hmac.compare_digest(
            params["key"].encode(), self.conf.stored_key.encode()
        ):
            raise SystemExit("wrong key")
        wanted = list(dict.fromkeys(params["requested"]))
        granted = [c for c in wanted if c in self.conf.caps]
        denied = [c for c in wanted if c not in granted]
        expires = time.time() + 3600.0
        token = "s1.floor.token"
        if self.durable:
            sid = secrets.token_urlsafe(16)
            payload = {"t": self.tenant, "i": sid, "c": granted, "e": expires}
            signed = f"s1.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
            mac = hmac.new(self.secret, signed.encode(), hashlib.sha256).digest()
            token = f"{signed}.{_b64(mac)}"
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (sid, self.tenant, json.dumps(granted), expires),
            )
            entry = {"ts": time.time(), "kind": "cap", "tenant": self.tenant, "session": sid}
            line = json.dumps({**entry, "granted": granted, "denied": denied})
            self.audit.write(line.encode() + b"\n")
            self.db.execute("COMMIT")
        result = {
            "session_id": token,
            "tenant": self.tenant,
            "granted": granted,
            "denied": denied,
            "delegated": [],
            "quota": self.quota,
            "expires_at": expires,
        }
        reply = {"jsonrpc": "2.0", "id": request["id"], "result": result}
        return json.dumps(reply, separators=(",", ":")).encode() + b"\n"


def serve_blocking(path: str, answer: Callable[[bytes], bytes]) -> None:
    """Accept, read a line, answer, wait for the close: one connection at a time. The
    socket is put at ``path`` listening (the kernel's :func:`~qmk.abi.server.bind_unix`),
    so a client that sees it can connect."""
    listener = bind_unix(Path(path))
    listener.setblocking(True)  # (bind_unix's is for an event loop)
    while True:
        conn, _ = listener.accept()
        with conn:
            line = b""
            while not line.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                line += chunk
            if line:
                conn.sendall(answer(line))
                conn.recv(1)


class _LineProtocol(asyncio.Protocol):
    """One connection: the line as it comes, answered in the callback that completes it."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.buffer.endswith(b"\n") and self.transport is not None:
            self.transport.write(self.answer(self.buffer))
            self.buffer = b""

    def eof_received(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve_asyncio(path: str, answer: Callable[[bytes], bytes]) -> None:
    """An asyncio Unix server of :class:`_LineProtocol` s, until killed."""
    loop = asyncio.get_running_loop()
    listener = bind_unix(Path(path))
    server = await loop.create_unix_server(lambda: _LineProtocol(answer), sock=listener)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    kind, path, config, data = argv
    if kind not in KINDS:
        raise SystemExit(f"kind {kind!r}: one of {', '.join(KINDS)}")
    tenant, conf = next(iter(load_config(config).tenants.items()))
    answer = Negotiator(tenant, conf, Path(data), durable=kind == "durable").answer
    if kind == "blocking":
        serve_blocking(path, answer)
    else:
        asyncio.run(serve_asyncio(path, answer))
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    raise SystemExit(main(sys.argv[1:]))
