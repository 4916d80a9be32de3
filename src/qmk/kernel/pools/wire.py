"""The line between a worker pool and its worker processes: framed pickles on a pipe each
way (or one socket).

A message is a frame: an 8-byte big-endian length (:data:`HEADER`), then the pickle
(:func:`frame`). A line is a descriptor it reads and one it writes: the pool gives each
worker a pipe each way, whose write and read cost the pool's process less than a Unix
socket's: no socket buffer to make and free for each message (``docs/kernel.md`` has the
figures). One socket serves both where a caller has one (the tests). The
pool's end (:class:`PoolLine`) is non-blocking and buffered both
ways: it reads as far as the line holds and keeps a partial frame until the rest comes,
and a message to a worker that is not reading waits in its buffer, so the pool never
waits on a worker. A frame announced longer than the worker's memory cap is
:class:`Broken` (the worker could not have made it honestly). What the pool reads is
unpickled as plain data only (:func:`plain`: None, bool, int, float, complex, str,
bytes, tuple, list, dict, set; no other global), so a worker cannot make the pool run
code. The worker's end (:class:`~qmk.kernel.pools.worker_line.WorkerLine`, in the
worker's own module) blocks, as a worker waits for its next task anyway.

A worker's message of the form ``(number, word, bytes)`` (a task's reply of an encoded
outcome, the most of what crosses) goes as those three, unpickled (:func:`message`): a
byte :data:`RAW` (a pickle's first byte is always ``0x80``), the number (8 bytes), the
word's length (1 byte) and the word, then the bytes as they are. The pool reads it
without an unpickler, whose making was most of a small reply's cost.

A task whose one argument reduces to a plain function of bytes (an attempt of a job:
``Attempt.__reduce__`` gives its MessagePack) goes the same way (:func:`task_frame`). It
is a byte :data:`TASK`, the task's number, the pickles of its function and of the
argument's rebuilder (each made once by the pool), and the argument's bytes, which the
worker hands the rebuilder. The pool sends it without a pickler (whose walk of the task,
its tuples and the rebuilder's name, looked up as an import for each task, was most of a
small task's framing).

What the messages say (tasks, replies, notes, requests) is the pool's protocol
(:mod:`qmk.kernel.pools.pool`); this module only carries them.

>>> import socket
>>> from qmk.kernel.pools.worker_line import WorkerLine  # the worker's end
>>> ours, theirs = socket.socketpair()
>>> pool_end, worker_end = PoolLine(take_fd(ours), max_frame=None), WorkerLine(take_fd(theirs))
>>> pool_end.send(("task", 1, [2, 3]))  # the socket took it whole
True
>>> worker_end.recv()
('task', 1, [2, 3])
>>> worker_end.send({"ok": 1j})
>>> worker_end.send((7, "ok", b"outcome"))
>>> [message(body) for body in pool_end.receive()[0]]
[{'ok': 1j}, (7, 'ok', b'outcome')]
>>> pool_end.close(); worker_end.close()

A task frame's round trip is :mod:`qmk.kernel.pools.worker_line`'s example.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import struct
from typing import Any, Protocol

#: A frame's header: the length of its body.
HEADER = struct.Struct("!Q")
CHUNK = 1 << 20  # bytes per read of a big message
#: Bytes of a first read. A read allocates its whole size first, and most tasks and
#: replies are a few hundred bytes: a first read of 1 MiB would cost each of them more.
FIRST_READ = 1 << 16
_READ_BUDGET = 8 << 20  # bytes one reader callback takes before it lets the loop go on
#: A frame whose body is at most this long goes in one write with its header (a small
#: task or reply wakes its reader once); a longer one in two, without a copy.
JOIN_BELOW = 1 << 16


class Broken(Exception):
    """A worker broke the protocol (a frame too long, not a message)."""


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only: no global but a few harmless builtins."""

    _ALLOWED = frozenset({"complex", "set", "frozenset", "bytearray", "range", "slice"})

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in self._ALLOWED:
            return getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def plain(body: bytes) -> Any:
    """The plain data pickled in ``body``.

    Raises:
        pickle.UnpicklingError: it names a global (a class, a function) beyond a few
            harmless builtins: unpickling it could run code.

    >>> plain(pickle.dumps({1, 2}))
    {1, 2}
    >>> plain(pickle.dumps(os.getcwd))
    Traceback (most recent call last):
    ...
    _pickle.UnpicklingError: posix.getcwd is not plain data
    """
    return _PlainUnpickler(io.BytesIO(body)).load()


#: The first byte of a frame that holds ``(number, word, bytes)`` as they are (no
#: pickle, whose first byte is PROTO, ``0x80``).
RAW = 1
#: A raw frame's head: :data:`RAW`, the number, the word's length.
_RAW_HEAD = struct.Struct("!BQB")
#: A raw frame's first byte.
_RAW_MARK = bytes((RAW,))


def message(body: bytes) -> Any:
    """The message a frame's ``body`` holds: a raw frame's ``(number, word, bytes)``, or
    the plain data of its pickle (:func:`plain`).

    Raises:
        pickle.UnpicklingError: a pickle of more than plain data.
        ValueError: a raw frame cut short (its word longer than the frame).

    >>> message(raw_body(3, "ok", b"abc")), message(pickle.dumps((3, "ok", "abc")))
    ((3, 'ok', b'abc'), (3, 'ok', 'abc'))
    """
    if body[:1] != _RAW_MARK:
        return plain(body)
    if len(body) < _RAW_HEAD.size:
        raise ValueError("a raw frame cut short")
    _, number, size = _RAW_HEAD.unpack_from(body)
    start = _RAW_HEAD.size + size
    if len(body) < start:
        raise ValueError("a raw frame cut short")
    return number, body[_RAW_HEAD.size : start].decode("ascii"), body[start:]


def raw_body(number: int, word: str, data: bytes) -> bytes | None:
    """The body of a raw frame of ``(number, word, data)``; None where it holds no such
    frame (a number past 64 bits, a word not of ASCII or past 255 characters)."""
    if not 0 <= number < 1 << 64 or len(word) > 255 or not word.isascii():
        return None
    return _RAW_HEAD.pack(RAW, number, len(word)) + word.encode("ascii") + data


#: The first byte of a frame that holds a task whose one argument crosses as bytes
#: (:func:`task_frame`).
TASK = 2
TASK_MARK = bytes((TASK,))
#: A task frame's prefix (:func:`task_prefix`): :data:`TASK`, the lengths of the pickles
#: of its function and of its argument's rebuilder (the pickles follow).
TASK_PREFIX = struct.Struct("!BII")
#: After the prefix: the task's number, how many parts its argument has.
TASK_HEAD = struct.Struct("!QB")
#: A part's length (:data:`NO_PART`: the part is None), then the part.
TASK_PART = struct.Struct("!Q")
NO_PART = (1 << 64) - 1
#: A task's number, its argument's one part and that part's length together.
_ONE_PART = struct.Struct("!QBQ")


def task_prefix(function: bytes, rebuilder: bytes) -> bytes:
    """What every task frame of the function pickled as ``function`` whose argument the
    function pickled as ``rebuilder`` rebuilds begins with (:func:`task_frame`; a pool
    makes it once).

    Raises:
        ValueError: a pickle past 4 GiB.
    """
    if len(function) >= 1 << 32 or len(rebuilder) >= 1 << 32:
        raise ValueError("no task frame holds a pickle past 4 GiB")
    return TASK_PREFIX.pack(TASK, len(function), len(rebuilder)) + function + rebuilder


def task_frame(task_id: int, prefix: bytes, parts: tuple[bytes | None, ...]) -> bytes:
    """The whole frame (its header included) of the task ``task_id`` that calls the
    function of ``prefix`` (:func:`task_prefix`) with one argument, its rebuilder called
    with ``parts`` (bytes, or None), for :meth:`PoolLine.send_frame`. The worker reads it
    as the message ``(task_id, function's pickle, (argument,), {})``
    (:meth:`~qmk.kernel.pools.worker_line.WorkerLine.recv`).

    Raises:
        ValueError: more than 255 parts.

    >>> body = task_frame(3, task_prefix(b"f", b"r"), (b"ab", None))[HEADER.size :]
    >>> body[:1] == bytes((TASK,)), len(body)  # 9 + 1 + 1, 8 + 1, parts 8 + 2 and 8
    (True, 38)
    """
    part = parts[0] if len(parts) == 1 else None
    if part is not None:  # the usual, one part: no list, one join
        size = len(prefix) + TASK_HEAD.size + TASK_PART.size + len(part)
        return b"".join((HEADER.pack(size), prefix, _ONE_PART.pack(task_id, 1, len(part)), part))
    if len(parts) > 255:
        raise ValueError("no task frame holds an argument of more than 255 parts")
    pieces = [b"", prefix, TASK_HEAD.pack(task_id, len(parts))]
    for part in parts:
        if part is None:
            pieces.append(TASK_PART.pack(NO_PART))
        else:
            pieces += (TASK_PART.pack(len(part)), part)
    pieces[0] = HEADER.pack(sum(map(len, pieces)))
    return b"".join(pieces)


def frame(message: Any) -> tuple[bytes, bytes]:
    """``(header, body)`` of ``message``'s frame (the body is its pickle).

    >>> header, body = frame("hi")
    >>> HEADER.unpack(header) == (len(body),)
    True
    """
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)), body


class _Connection(Protocol):
    def fileno(self) -> int: ...

    def close(self) -> None: ...


def take_fd(conn: _Connection) -> int:
    """The descriptor of ``conn``'s socket (a ``multiprocessing`` connection, a
    ``socket.socket``), now the caller's: ``conn`` is closed."""
    fd = os.dup(conn.fileno())
    conn.close()
    return fd


class PoolLine:
    """The pool's end of a worker's line: non-blocking, framed, buffered both ways.

    Only the thread that drives the pool reads it; writes happen under the pool's lock.

    Args:
        fd: what it reads (a pipe's read end, or a socket), now the line's.
        max_frame: the longest frame the worker may send (None: no limit).
        out_fd: what it writes (a pipe's write end), now the line's; None: ``fd``.
    """

    __slots__ = ("_in", "_out", "fd", "max_frame", "out_fd")

    def __init__(self, fd: int, max_frame: int | None, out_fd: int | None = None) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.out_fd = fd if out_fd is None else out_fd
        if out_fd is not None:
            os.set_blocking(out_fd, False)
        self.max_frame = max_frame
        self._in = bytearray()
        self._out: collections.deque[bytes | memoryview] = collections.deque()

    def receive(self, budget: int = _READ_BUDGET) -> tuple[list[bytes], bool]:
        """Read what the socket holds (about ``budget`` bytes at most): the complete
        frames' bodies, and whether the worker's end is closed. Never blocks. A read
        that returns less than it asked for is the last: the socket is drained, and
        the next call (its reader is woken while anything waits) finds the rest.

        Raises:
            Broken: a frame longer than ``max_frame``.
        """
        eof = False
        got = 0
        size = FIRST_READ
        while got < budget:
            try:
                chunk = os.read(self.fd, size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                eof = True  # reset by a dying worker
                break
            if not chunk:
                eof = True
                break
            if len(chunk) < size and not self._in and len(chunk) >= HEADER.size:
                (length,) = HEADER.unpack_from(chunk)  # drained, nothing kept before it:
                if len(chunk) - HEADER.size == length and (  # one whole frame, the usual
                    self.max_frame is None or length <= self.max_frame  # reply: no buffer
                ):
                    return [chunk[HEADER.size :]], False
            self._in += chunk
            got += len(chunk)
            if len(chunk) < size:  # the socket held less: drained (a read more would
                break  # fail; what comes later, its end included, wakes the reader again)
            size = CHUNK  # more waits, likely a big message: bigger reads
        return self._frames(), eof

    def _frames(self) -> list[bytes]:
        frames: list[bytes] = []
        buffer = self._in
        at = 0
        while len(buffer) - at >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, at)
            if self.max_frame is not None and size > self.max_frame:
                raise Broken(f"a frame of {size} bytes (at most {self.max_frame})")
            if len(buffer) - at - HEADER.size < size:
                break
            start = at + HEADER.size
            frames.append(bytes(buffer[start : start + size]))
            at = start + size
        if at:
            del buffer[:at]
        return frames

    def send(self, message: Any) -> bool:
        """Queue ``message`` and write what the line takes now (never blocks): True
        when nothing waits any more (as :meth:`flush`).

        Raises:
            OSError: the worker's end is gone. Pickling errors come before anything
            is queued.
        """
        header, body = frame(message)
        if len(body) <= JOIN_BELOW:  # one write: the worker wakes once, reads it whole
            self._out.append(header + body)
        else:
            self._out += (header, body)
        return self.flush()

    def send_frame(self, data: bytes) -> bool:
        """Queue a whole frame made already (:func:`task_frame`) and write what the
        line takes now (never blocks), as :meth:`send`."""
        self._out.append(data)
        return self.flush()

    def flush(self) -> bool:
        """Write what the socket takes; True when nothing waits any more."""
        while self._out:
            head = self._out[0]
            try:
                written = os.write(self.out_fd, head)
            except (BlockingIOError, InterruptedError):
                return False
            if written == len(head):
                self._out.popleft()
            else:
                self._out[0] = memoryview(head)[written:]
        return True

    @property
    def waiting(self) -> bool:
        """Whether a message waits for the worker to read."""
        return bool(self._out)

    def close(self) -> None:
        """Drop what waits and close the descriptors (again: nothing)."""
        self._out.clear()
        close_line(self.fd, self.out_fd)
        self.fd = self.out_fd = -1


def close_line(fd: int, out_fd: int) -> None:
    """Close a line's descriptors (one, or a pipe each way), those not closed yet."""
    for each in {fd, out_fd}:
        if each >= 0:
            with contextlib.suppress(OSError):
                os.close(each)


__all__ = [
    "CHUNK",
    "FIRST_READ",
    "HEADER",
    "JOIN_BELOW",
    "NO_PART",
    "RAW",
    "TASK",
    "TASK_HEAD",
    "TASK_MARK",
    "TASK_PART",
    "TASK_PREFIX",
    "Broken",
    "PoolLine",
    "close_line",
    "frame",
    "message",
    "plain",
    "raw_body",
    "take_fd",
    "task_frame",
    "task_prefix",
]
