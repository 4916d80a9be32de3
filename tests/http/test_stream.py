"""Responses sent a chunk at a time (src/qmk/http/stream.py)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

pytest.importorskip("starlette")

from qmk.abi.server import STREAM_CHUNK
from qmk.http.stream import PartsResponse


def test_a_big_answer_is_sent_one_chunk_a_turn_of_the_event_loop() -> None:
    # a client's socket takes megabytes before it pushes back, so sends that never wait
    # wrote a 13.5 MB result in one go, holding every other connection (60 such clients:
    # 150-300 ms of the loop at load 8-9)
    async def main() -> list[int]:
        turns = 0

        async def ticker() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        at: list[int] = []

        async def send(message: dict[str, Any]) -> None:  # a socket that never pushes back
            if message.get("body"):
                at.append(turns)

        tick = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        body = [b"x" * (4 * STREAM_CHUNK + 1)]
        await PartsResponse(body)({"type": "http"}, None, send)
        tick.cancel()
        return at

    at = asyncio.run(main())
    assert len(at) == 5
    assert all(later > earlier for earlier, later in itertools.pairwise(at)), at
