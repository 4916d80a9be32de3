"""Raw NDJSON connections to a live :class:`~qmk.abi.server.Server`, for the wire tests.

:class:`Conn` sends bytes as they are and reads reply lines; :func:`request` makes one
request line; :func:`until` polls for a state the server must reach. :data:`GUARD_S`
only stops a hang: no test asserts a timing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from qmk.abi.server import Server

GUARD_S = 30.0  # a hang guard, never a timing assertion
#: Replies up to 16 MiB are read as one line.
LINE_LIMIT = 1 << 24


def request(method: str, params: Any, request_id: Any = 1) -> bytes:
    """One JSON-RPC request line."""
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return json.dumps(message).encode() + b"\n"


async def until(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds (polled; the guard only stops a hang)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + GUARD_S
    while not condition():
        assert loop.time() < end, "the server never reached the state"
        await asyncio.sleep(0.005)


class Conn:
    """A raw NDJSON connection: send bytes, read reply lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: Server, source: str = "127.0.0.1") -> Conn:
        """To the server's first address (TCP from ``source``, or its Unix socket)."""
        address = server.addresses[0]
        if address.startswith("unix:"):
            path = address.removeprefix("unix:")
            return cls(*await asyncio.open_unix_connection(path, limit=LINE_LIMIT))
        return await cls.tcp(server, source)

    @classmethod
    async def unix(cls, server: Server) -> Conn:
        path = server.config.socket_path
        assert path is not None
        return cls(*await asyncio.open_unix_connection(str(path), limit=LINE_LIMIT))

    @classmethod
    async def tcp(cls, server: Server, source: str = "127.0.0.1") -> Conn:
        address = next(a for a in server.addresses if a.startswith("tcp:"))
        host, port = address.removeprefix("tcp:").rsplit(":", 1)
        streams = await asyncio.open_connection(
            host, int(port), local_addr=(source, 0), limit=LINE_LIMIT
        )
        return cls(*streams)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> Any:
        return json.loads(await asyncio.wait_for(self.reader.readline(), GUARD_S))

    async def call(self, method: str, params: Any, request_id: Any = 1) -> Any:
        await self.send(request(method, params, request_id))
        return await self.line()

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), GUARD_S) == b""

    def close(self) -> None:
        self.writer.close()
