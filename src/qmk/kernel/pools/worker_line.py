"""The worker's end of its line to the pool: blocking, framed as the pool frames.

The line's frames and their layouts are :mod:`qmk.kernel.pools.wire`'s; the pool's end
(:class:`~qmk.kernel.pools.wire.PoolLine`) is there too. This end reads the tasks the
pool sends, a task frame's argument rebuilt as it is read, and writes the replies and
notes a task sends. Only worker processes (and job processes fed over a socket) load
it: the process that holds the pool never reads a task frame.

>>> import socket
>>> from qmk.kernel.pools.wire import PoolLine, take_fd, task_frame, task_prefix
>>> ours, theirs = socket.socketpair()
>>> pool_end, worker_end = PoolLine(take_fd(ours), max_frame=None), WorkerLine(take_fd(theirs))
>>> prefix = task_prefix(pickle.dumps(len), pickle.dumps(bytes))  # a task of len(bytes(...))
>>> pool_end.send_frame(task_frame(8, prefix, (b"abc",)))
True
>>> task = worker_end.recv()
>>> task[0], pickle.loads(task[1]) is len, task[2:]
(8, True, ((b'abc',), {}))
>>> pool_end.close(); worker_end.close()
"""

from __future__ import annotations

import os
import pickle
import select
from typing import Any

from qmk.kernel.pools.wire import (
    CHUNK,
    FIRST_READ,
    HEADER,
    JOIN_BELOW,
    NO_PART,
    TASK_HEAD,
    TASK_MARK,
    TASK_PART,
    TASK_PREFIX,
    close_line,
    frame,
    raw_body,
)

#: The rebuilders a worker read, by their pickle (each read once).
_REBUILDERS: dict[bytes, Any] = {}


def _task(body: bytes) -> tuple[int, bytes, tuple[Any], dict[str, Any]]:
    """The message of a task frame's ``body`` (:func:`task_frame`), its argument rebuilt."""
    _, fn_size, rebuild_size = TASK_PREFIX.unpack_from(body)
    at = TASK_PREFIX.size
    function = body[at : at + fn_size]
    at += fn_size
    rebuilder_pickle = body[at : at + rebuild_size]
    at += rebuild_size
    task_id, count = TASK_HEAD.unpack_from(body, at)
    at += TASK_HEAD.size
    parts: list[bytes | None] = []
    for _ in range(count):
        (size,) = TASK_PART.unpack_from(body, at)
        at += TASK_PART.size
        if size == NO_PART:
            parts.append(None)
        else:
            parts.append(body[at : at + size])
            at += size
    rebuilder = _REBUILDERS.get(rebuilder_pickle)
    if rebuilder is None:
        rebuilder = _REBUILDERS[rebuilder_pickle] = pickle.loads(rebuilder_pickle)
    return task_id, function, (rebuilder(*parts),), {}


class WorkerLine:
    """The worker's end of its line: blocking, framed (the pool's framing).

    Args:
        fd: what it reads (a pipe's read end, or a socket), now the line's.
        out_fd: what it writes (a pipe's write end), now the line's; None: ``fd``.
    """

    def __init__(self, fd: int, out_fd: int | None = None) -> None:
        os.set_blocking(fd, True)
        self.fd = fd
        self.out_fd = fd if out_fd is None else out_fd
        if out_fd is not None:
            os.set_blocking(out_fd, True)
        self._in = bytearray()

    def fileno(self) -> int:
        """The descriptor it reads (to wait on it with others)."""
        return self.fd

    def buffered(self) -> bool:
        """Whether a whole message waits in this process already."""
        if len(self._in) < HEADER.size:
            return False
        (size,) = HEADER.unpack_from(self._in, 0)
        return len(self._in) - HEADER.size >= size

    def poll(self) -> bool:
        """Whether a message waits (or is on its way: then :meth:`recv` may wait)."""
        return self.buffered() or bool(select.select([self.fd], [], [], 0)[0])

    def recv(self) -> Any:
        """The next message (waits for it). Raises EOFError when the pool is gone."""
        while not self.buffered():
            size = FIRST_READ
            if len(self._in) >= HEADER.size:  # as much of the frame as is missing
                (body,) = HEADER.unpack_from(self._in, 0)
                size = max(FIRST_READ, min(CHUNK, HEADER.size + body - len(self._in)))
            try:
                chunk = os.read(self.fd, size)
            except OSError:
                raise EOFError from None
            if not chunk:
                raise EOFError
            self._in += chunk
        (size,) = HEADER.unpack_from(self._in, 0)
        body = bytes(self._in[HEADER.size : HEADER.size + size])
        del self._in[: HEADER.size + size]
        if body[:1] == TASK_MARK:
            return _task(body)
        return pickle.loads(body)

    def send(self, message: Any) -> None:
        """Write ``message``'s frame (waits until the socket took it all).

        Raises:
            OSError: the pool's end is gone. MemoryError: no room for its pickle.
        """
        body = None
        if type(message) is tuple and len(message) == 3:  # (number, word, bytes): raw
            number, word, data = message
            if type(number) is int and type(word) is str and type(data) is bytes:
                body = raw_body(number, word, data)
        if body is None:
            header, body = frame(message)
        else:
            header = HEADER.pack(len(body))
        if len(body) <= JOIN_BELOW:  # one write: the pool wakes once, reads it whole
            self.write(header + body)
        else:  # no copy of a big reply within the worker's memory cap
            self.write(header)
            self.write(body)

    def write(self, data: bytes | memoryview) -> None:
        """Write raw bytes (a frame, or a piece of one: :func:`frame`)."""
        view = memoryview(data)
        while view:
            written = os.write(self.out_fd, view)
            view = view[written:]

    def close(self) -> None:
        """Close the descriptors (again: nothing)."""
        close_line(self.fd, self.out_fd)
        self.fd = self.out_fd = -1


__all__ = ["WorkerLine"]
