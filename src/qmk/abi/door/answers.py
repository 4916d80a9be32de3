"""Answers a wire must hold whole until they are sent, within one bound of bytes.

JSON-RPC and REST write a big answer a chunk at a time from the stored result's own
bytes, so a client that does not read holds a fixed amount of memory
(``max_unsent_bytes``) until ``write_timeout_s`` drops it. A gRPC message cannot be
sent in pieces: gRPC holds all of it until the client has read it. :class:`HeldAnswers`
bounds what all such answers hold together (``max_held_answer_bytes``): an answer longer
than :data:`SMALL` takes its size from the bound before it is built, and gives it back
once sent (or its call is gone); while the bound is spent the next big answer waits, in
turn. One that is bigger than the whole bound waits until nothing else is held. So
clients that do not read cost the kernel at most the bound, however many they are, and
the others wait for the write timeout to drop them.

>>> import asyncio
>>> async def demo():
...     held = HeldAnswers(10 * SMALL)
...     first = await held.hold(8 * SMALL)
...     second = asyncio.ensure_future(held.hold(4 * SMALL))
...     await asyncio.sleep(0)
...     waiting = not second.done()
...     first.release()
...     (await second).release()
...     return waiting, held.held
>>> asyncio.run(demo())
(True, 0)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

#: Answers of at most this many bytes are held without counting (a reply of the
#: syscalls' usual size; a chunk of the writers that send in pieces).
SMALL = 256 * 1024


class Holder(Protocol):
    """Who holds an answer (:class:`qmk.abi.door.Visitor`): its count of answers not
    yet sent, and who watches their progress."""

    holding: int
    on_holding: Callable[[], None] | None


class Held:
    """Bytes taken from :class:`HeldAnswers`; :meth:`release` them once sent."""

    __slots__ = ("_holder", "_owner", "size")

    def __init__(self, owner: HeldAnswers | None, size: int, holder: Holder | None) -> None:
        self._owner = owner
        self.size = size
        self._holder = holder
        if holder is not None:
            holder.holding += 1
            if holder.holding == 1 and holder.on_holding is not None:
                holder.on_holding()

    def release(self) -> None:
        """Give the bytes back (releasing twice is once)."""
        owner, self._owner = self._owner, None
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.holding = max(holder.holding - 1, 0)
        if owner is not None:
            owner._give(self.size)


class HeldAnswers:
    """The bytes of answers held whole until sent, all calls together.

    Args:
        most: the bound (``max_held_answer_bytes``).
    """

    def __init__(self, most: int) -> None:
        self.most = most
        self.held = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def hold(self, size: int, holder: Holder | None = None) -> Held:
        """Take ``size`` bytes for an answer of ``holder`` (at once for a small answer;
        else in turn, once they fit); ``holder`` counts it among its answers not yet
        sent until it is released."""
        if size <= SMALL:
            return Held(None, 0, holder)
        if not self._waiting and self._fits(size):
            self.held += size
            return Held(self, size, holder)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, turn)
        self._waiting.append(entry)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._give(size)  # granted as it was cancelled: hand it on
            else:
                self._waiting.remove(entry)
            raise
        return Held(self, size, holder)

    @property
    def waiting(self) -> int:
        """The answers waiting for room now."""
        return len(self._waiting)

    def _fits(self, size: int) -> bool:
        return self.held + size <= self.most or self.held == 0

    def _give(self, size: int) -> None:
        self.held = max(self.held - size, 0)
        while self._waiting and self._fits(self._waiting[0][0]):
            size, turn = self._waiting.popleft()
            if turn.done():
                continue
            self.held += size
            turn.set_result(None)


class HeapTrim:
    """Gives the heap's free memory back to the system a moment after a connection with
    a full write buffer is dropped (glibc's ``malloc_trim``; a no-op elsewhere): the
    allocator keeps freed buffers of a megabyte or so in its heap otherwise, and the
    kernel's resident memory would not come down after a flood of non-readers. At most
    once per :attr:`delay_s`, whatever the number of drops.

    The trim runs in a thread of its own, never on the event loop: it walks the whole
    heap (``docs/door.md`` has the figures). ``ctypes`` lets the interpreter go while it
    runs, so the loop answers meanwhile.

    Args:
        delay_s: how long after the first drop the trim runs.
        trim: the trim itself, called with 0 (default: glibc's ``malloc_trim``, looked
            up at the first drop; None where there is none).
    """

    def __init__(
        self, delay_s: float = 0.2, trim: Callable[[int], int] | bool | None = False
    ) -> None:
        self.delay_s = delay_s
        self._pending = False
        self._trim: Callable[[int], int] | bool | None = trim  # False: not looked up yet
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None

    def soon(self) -> None:
        """Trim once, :attr:`delay_s` from now (drops meanwhile share it)."""
        if self._trim is False:
            self._trim = None
            with contextlib.suppress(OSError, AttributeError, ImportError):
                import ctypes

                self._trim = ctypes.CDLL(None).malloc_trim  # glibc's; absent elsewhere
        if self._trim is None or self._pending:
            return
        self._pending = True
        asyncio.get_running_loop().call_later(self.delay_s, self._run)

    def _run(self) -> asyncio.Future[Any] | None:
        self._pending = False
        trim = self._trim
        if not callable(trim):
            return None
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="qmk-trim")
        return asyncio.get_running_loop().run_in_executor(self._thread, trim, 0)


#: The process's :class:`HeapTrim` (every wire's dropped connections).
HEAP_TRIM = HeapTrim()


__all__ = ["HEAP_TRIM", "SMALL", "HeapTrim", "Held", "HeldAnswers", "Holder"]
