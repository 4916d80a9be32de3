"""Responses whose bodies are sent a chunk at a time, so that a client that does not
read holds a fixed amount of the kernel's memory (:mod:`qmk.http.guard` drops it after
``write_timeout_s``).

:class:`PartsResponse` sends a JSON body given as pieces (:func:`~qmk.abi.jsonrpc.encode_parts`:
a stored result is one piece, its own bytes) in chunks of
:data:`~qmk.abi.server.STREAM_CHUNK`; uvicorn waits for the transport to drain before each
one. :class:`EventStreamResponse` is a Server-Sent Event stream that runs ``on_close``
however it ends (a stream whose client left before its first event included).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import Response, StreamingResponse

from qmk.abi.jsonrpc import encode_parts
from qmk.abi.server import STREAM_CHUNK, chunks


class PartsResponse(Response):
    """A response whose body is ``parts``, sent a chunk at a time with its length.

    Each chunk is one turn of the event loop: a client's socket takes megabytes before
    it pushes back (uvicorn's drain then returns at once), so a big answer written in
    one go held the loop while each was copied (``bench/bench_attacks.py``
    ``nonreading-result-http``). ``release`` is called once it is sent or its client is
    gone (an answer the door holds until sent: :class:`~qmk.abi.door.Held`)."""

    def __init__(
        self,
        parts: list[bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        *,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(b"", status_code, headers, media_type)
        self.parts = parts
        self.release = release
        self.headers["content-length"] = str(sum(map(len, parts)))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            for chunk in chunks(self.parts):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(0)  # one chunk a turn of the loop (see the class)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if self.release is not None:
                self.release()


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``data`` as JSON: one body, or a :class:`PartsResponse` when it is longer than a
    chunk (a big result)."""
    parts = encode_parts(data)
    parts.pop()  # the line's newline
    if sum(map(len, parts)) <= STREAM_CHUNK:
        return Response(b"".join(parts), status, headers=headers, media_type="application/json")
    return PartsResponse(parts, status, headers, "application/json")


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that calls ``on_close`` when it ends, however."""

    def __init__(self, events: Any, on_close: Callable[[], None]) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        self.on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


__all__ = ["EventStreamResponse", "PartsResponse", "json_response"]
