"""A real server's clock that a test moves: the system's time plus an offset in a file.

``python -m support.serve --clock FILE`` runs ``qmk serve`` on a :class:`ShiftedClock`
(through ``qmk serve``'s public seam ``clock``, as ``Kernel.open(clock=)`` takes one): its
``now()`` is the system's plus the seconds written in FILE (0 while there is none). A test
moves the server's time forward with :meth:`ClockFile.advance`, so an expiry (a session's,
a delegation's) happens when the test says, never by waiting. The epoch tick stays the
system's: only ``now()`` and the timeouts measured against it move.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from qmk import aio
from qmk.kernel.clock import SystemClock


class ShiftedClock(SystemClock):
    """The system's clock, ahead by the seconds written in ``path`` (0 while none)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def offset(self) -> float:
        try:
            return float(self.path.read_text(encoding="ascii") or 0.0)
        except FileNotFoundError:
            return 0.0

    def now(self) -> float:
        return time.time() + self.offset()

    def timeout_at(self, when: float | None) -> AbstractAsyncContextManager[object]:
        if when is None:
            return aio.timeout(None)
        import asyncio

        loop = asyncio.get_running_loop()
        return aio.timeout_at(loop.time() + (when - self.now()))


class ClockFile:
    """The test's end of a :class:`ShiftedClock`: the file whose seconds it adds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds = 0.0

    def advance(self, seconds: float) -> None:
        """Move the server's ``now()`` forward by ``seconds`` (written whole, atomically)."""
        self.seconds += seconds
        partial = self.path.with_suffix(".partial")
        partial.write_text(repr(self.seconds), encoding="ascii")
        os.replace(partial, self.path)
