"""The pool's end of a worker's socket (qmk.kernel.pools.wire.PoolLine): what a receive reads."""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Iterator

import pytest

from qmk.kernel.pools.wire import PoolLine, frame


@pytest.fixture
def lines() -> Iterator[tuple[PoolLine, socket.socket]]:
    ours, theirs = socket.socketpair()
    line = PoolLine(ours.detach(), max_frame=None)
    try:
        yield line, theirs
    finally:
        line.close()
        theirs.close()


def counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes the reads of the socket asked for, from now on."""
    asked: list[int] = []
    read = os.read

    def counted(fd: int, size: int) -> bytes:
        asked.append(size)
        return read(fd, size)

    monkeypatch.setattr(os, "read", counted)
    return asked


def test_a_small_reply_is_taken_with_one_read(
    lines: tuple[PoolLine, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a read that returns less than it asked for drained the socket: no second read
    # (which would only fail with EAGAIN) before the loop goes on
    line, theirs = lines
    header, body = frame({"job": 1, "counts": {"00": 51, "11": 49}})
    theirs.sendall(header + body)
    asked = counting_reads(monkeypatch)
    bodies, eof = line.receive()
    assert [pickle.loads(b) for b in bodies] == [{"job": 1, "counts": {"00": 51, "11": 49}}]
    assert not eof
    assert len(asked) == 1


def test_the_end_after_a_drained_read_is_seen_by_the_next_receive(
    lines: tuple[PoolLine, socket.socket],
) -> None:
    line, theirs = lines
    header, body = frame("last words")
    theirs.sendall(header + body)
    theirs.close()
    bodies, eof = line.receive()
    assert [pickle.loads(b) for b in bodies] == ["last words"]
    if not eof:  # the short read stopped before the end: the next call finds it
        assert line.receive() == ([], True)


def test_a_message_bigger_than_a_read_comes_whole(
    lines: tuple[PoolLine, socket.socket],
) -> None:
    # 3 MiB: more than the socket holds at once, and than a first or a later read takes
    line, theirs = lines
    big = os.urandom(3 << 20)
    header, body = frame(big)
    data = memoryview(header + body)
    theirs.setblocking(False)
    got: list[bytes] = []
    while not got:  # the writer and the reader take turns
        while data:
            try:
                data = data[theirs.send(data) :]
            except BlockingIOError:
                break
        bodies, eof = line.receive()
        assert not eof
        got += [pickle.loads(b) for b in bodies]
    assert got == [big] and not data
