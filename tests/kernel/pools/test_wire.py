"""The pool's end of a worker's socket (qmk.kernel.pools.wire.PoolLine): what a receive reads."""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Iterator

import pytest

from qmk.kernel.pools.wire import (
    HEADER,
    RAW,
    TASK,
    Broken,
    PoolLine,
    frame,
    message,
    take_fd,
    task_frame,
    task_prefix,
)
from qmk.kernel.pools.worker_line import WorkerLine


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


@pytest.fixture
def ends() -> Iterator[tuple[PoolLine, WorkerLine]]:
    ours, theirs = socket.socketpair()
    pool_end, worker_end = PoolLine(take_fd(ours), max_frame=None), WorkerLine(take_fd(theirs))
    try:
        yield pool_end, worker_end
    finally:
        pool_end.close()
        worker_end.close()


def test_a_reply_of_bytes_crosses_unpickled_and_reads_back_the_same(
    ends: tuple[PoolLine, WorkerLine],
) -> None:
    pool_end, worker_end = ends
    outcome = os.urandom(3500)  # a task's encoded outcome
    worker_end.send((12, "ok", outcome))
    worker_end.send((12, "note", b""))
    bodies, _ = pool_end.receive()
    assert [body[0] for body in bodies] == [RAW, RAW]  # no pickle (it starts with 0x80)
    assert [message(body) for body in bodies] == [(12, "ok", outcome), (12, "note", b"")]


@pytest.mark.parametrize(
    "sent",
    [
        (-1, "ok", b"x"),  # a number a raw frame does not hold
        (1 << 64, "ok", b"x"),
        (3, "é", b"x"),  # a word not of ASCII
        (3, "w" * 256, b"x"),  # a word too long for its length byte
        (3, "ok", bytearray(b"x")),  # not bytes
        (True, "ok", b"x"),  # a bool is no number here
        (3, "ok", "text"),
    ],
    ids=["negative", "past-64-bits", "non-ascii", "long-word", "bytearray", "bool", "str"],
)
def test_any_other_message_crosses_as_a_pickle_and_reads_back_the_same(
    ends: tuple[PoolLine, WorkerLine], sent: tuple[object, ...]
) -> None:
    pool_end, worker_end = ends
    worker_end.send(sent)
    (body,), _ = pool_end.receive()
    assert body[0] == 0x80 and message(body) == sent


def test_a_raw_frame_cut_short_is_refused(ends: tuple[PoolLine, WorkerLine]) -> None:
    # its word's length says more than the frame holds: a worker that answered junk
    with pytest.raises(ValueError):
        message(bytes([RAW]) + (5).to_bytes(8, "big") + bytes([200]) + b"ok")
    with pytest.raises(ValueError):  # shorter than its head
        message(bytes([RAW, 0, 0]))
    with pytest.raises(pickle.UnpicklingError):  # a pickle of more than plain data, as ever
        message(pickle.dumps(os.getcwd))


def test_frames_split_or_joined_across_reads_come_whole_and_in_order(
    lines: tuple[PoolLine, socket.socket],
) -> None:
    line, theirs = lines
    first, second, third = (b"".join(frame(text)) for text in ("one", "two", "three"))
    theirs.sendall(first + second[:5])  # a whole frame, then a piece of the next
    assert [pickle.loads(b) for b in line.receive()[0]] == ["one"]
    theirs.sendall(second[5:])  # the rest: kept until it came
    assert [pickle.loads(b) for b in line.receive()[0]] == ["two"]
    theirs.sendall(third[:3])  # less than a header
    assert line.receive() == ([], False)
    theirs.sendall(third[3:])
    assert [pickle.loads(b) for b in line.receive()[0]] == ["three"]


def test_a_lone_whole_frame_longer_than_the_cap_breaks_the_line() -> None:
    ours, theirs = socket.socketpair()
    line = PoolLine(ours.detach(), max_frame=100)
    try:
        theirs.sendall(b"".join(frame(b"x" * 200)))  # one whole frame in one read
        with pytest.raises(Broken):
            line.receive()
    finally:
        line.close()
        theirs.close()


@pytest.mark.parametrize(
    "parts",
    [(b"abc",), (b"",), (b"ab", None), (None,), (), (b"x" * 70_000, b"y")],
    ids=["one", "empty", "then-none", "none", "no-part", "big-and-small"],
)
def test_a_task_frame_reads_back_as_the_task_its_argument_rebuilt(
    ends: tuple[PoolLine, WorkerLine], parts: tuple[bytes | None, ...]
) -> None:
    pool_end, worker_end = ends
    prefix = task_prefix(pickle.dumps(len), pickle.dumps(_parts))
    data = task_frame(2**64 - 2, prefix, parts)
    assert data[HEADER.size] == TASK and HEADER.unpack_from(data)[0] == len(data) - HEADER.size
    pool_end.send_frame(data)
    while pool_end.waiting:  # a big one goes in pieces as the worker reads
        pool_end.flush()
    task_id, function, args, kwargs = worker_end.recv()
    assert (task_id, pickle.loads(function), args, kwargs) == (2**64 - 2, len, (parts,), {})


def _parts(*parts: bytes | None) -> tuple[bytes | None, ...]:
    return parts


def test_a_task_frame_of_more_than_255_parts_is_refused() -> None:
    with pytest.raises(ValueError):
        task_frame(1, task_prefix(b"f", b"r"), (b"",) * 256)
