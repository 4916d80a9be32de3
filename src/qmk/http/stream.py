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


class JsonAnswer:
    """A JSON answer of one body: what a syscall's route answers but for a big result.

    Its connection writes it whole, head and body in one write, where the server offers
    that (:data:`WRITE_ANSWER`, :mod:`qmk.http.guard`); elsewhere it is sent as the two
    ASGI messages of any response. It is lighter than a Starlette ``Response``: its
    headers stay a dict of the few names it carries (lower case) until written.
    """

    __slots__ = ("body", "headers", "status_code")

    media_type = "application/json"

    def __init__(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None):
        self.body = body
        self.status_code = status
        self.headers: dict[str, str] = {} if headers is None else headers

    def fields(self) -> bytes | None:
        """Its header lines, ``name: value\\r\\n`` each, with its type and length; None
        when a value cannot be written as it is (a control character, or not Latin-1):
        then the ASGI server's own checks refuse it, as for any response."""
        lines = [b"content-type: application/json\r\ncontent-length: %d\r\n" % len(self.body)]
        for name, value in self.headers.items():
            if not value.isprintable():
                return None
            try:
                lines.append(f"{name}: {value}\r\n".encode("latin-1"))
            except UnicodeEncodeError:
                return None
        return b"".join(lines)

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(self.body)),
            *(
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in self.headers.items()
            ),
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


#: The scope's key of its connection's one-write answer, where the server offers one:
#: ``write(status, fields, body) -> bool``, ``fields`` the header lines
#: (:meth:`JsonAnswer.fields`); False when it cannot (the answer is then sent as ASGI
#: messages).
WRITE_ANSWER = "qmk.write_answer"


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> JsonAnswer | PartsResponse:
    """``data`` as JSON: one body (:class:`JsonAnswer`), or a :class:`PartsResponse`
    when it is longer than a chunk (a big result). JSON kept encoded
    (``__json_bytes__``: a reply relayed as the kernel wrote it) is its own body."""
    kept = getattr(type(data), "__json_bytes__", None)
    if kept is not None:
        body = kept(data)
        if len(body) <= STREAM_CHUNK:
            return JsonAnswer(bytes(body), status, headers)
        return PartsResponse([body], status, headers, "application/json")
    parts = encode_parts(data)
    parts.pop()  # the line's newline
    if sum(map(len, parts)) <= STREAM_CHUNK:
        return JsonAnswer(b"".join(parts), status, headers)
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


__all__ = ["WRITE_ANSWER", "EventStreamResponse", "JsonAnswer", "PartsResponse", "json_response"]
