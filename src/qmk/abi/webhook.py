"""The billing webhook's POST: one JSON body to an http(s) URL, the answer's status.

The kernel's outbox (:mod:`qmk.kernel.storage.outbox`) delivers through :func:`deliver`,
a task of the kernel's webhook pool: the socket, TLS and the receiver's answer are read in
that process, never the kernel's. Standard library only (asyncio streams, ssl with the
system's CA bundle), so a kernel without the ``http`` extra delivers too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
from typing import Any

#: Longest answer read back from a receiver (its status line is what matters).
MAX_ANSWER = 64 * 1024


async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to ``url`` (http or https, HTTP/1.1, one connection); the status.

    Raises:
        OSError: the connection failed. ValueError: not an http(s) URL, or no HTTP answer.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    context = ssl.create_default_context() if parts.scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        parts.hostname, port, ssl=context, server_hostname=parts.hostname if context else None
    )
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        lines = [
            f"POST {target} HTTP/1.1",
            f"Host: {host}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status_line = await reader.readline()
        fields = status_line.decode("latin-1").split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.read(MAX_ANSWER)  # the rest, so the receiver is not reset
        return int(fields[1])
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def deliver(link: Any, url: str, body: bytes, headers: dict[str, str]) -> int:
    """:func:`post` in a webhook process (a pool's task, ``link`` its line); the status.
    A note on the line says the POST begins, so the receiver's timeout counts from here,
    not from the process's start. Its errors go back to the kernel as the task's."""
    link.notify("post")
    return asyncio.run(post(url, body, headers))


__all__ = ["MAX_ANSWER", "deliver", "post"]
