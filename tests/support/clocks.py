"""A real server's clock that a test moves: the system's time plus an offset in a file.

``python -m support.serve --clock FILE`` runs ``qmk serve`` on a :class:`ShiftedClock`
(through ``qmk serve``'s public seam ``clock``, as ``Kernel.open(clock=)`` takes one): its
``now()`` is the system's plus the seconds written in FILE (0 while there is none). A test
moves the server's time forward with :meth:`ClockFile.advance`, so an expiry (a session's,
a delegation's) happens when the test says, never by waiting. The epoch tick stays the
system's: only ``now()`` and the timeouts measured against it move.

``python -m support.serve --machine-clock FIFO@RATE`` runs it on a
:class:`HeldMachineClock`: the shared machine's clock stays at cycle 0 until the test
writes to FIFO (:class:`MachineClockGate`), then runs at RATE cycles a second. Every job
the test submits before it releases the clock arrives at cycle 0, in every run: the same
arrivals, whatever the computer's speed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from qmk import aio
from qmk.kernel.clock import RateClock, SystemClock
from support.kernel import ServerProcess, support_env
from support.pools import Hooks


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


class HeldMachineClock:
    """A machine clock held at cycle 0 until a byte comes down the FIFO at ``path``, then
    a :class:`~qmk.kernel.clock.RateClock` of ``rate`` cycles a second started there."""

    def __init__(self, path: str | os.PathLike[str], rate: float) -> None:
        self.path = Path(path)
        self.clock = RateClock(rate)
        self.released = False
        self._waiting: set[asyncio.Event] = set()

    @staticmethod
    def parse(option: str) -> HeldMachineClock:
        """``FIFO@RATE`` (``python -m support.serve --machine-clock``)."""
        path, _, rate = option.rpartition("@")
        return HeldMachineClock(path, float(rate))

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def watch() -> None:
            with open(self.path, "rb") as fifo:  # blocks until the test's end is open
                fifo.read(1)
            loop.call_soon_threadsafe(self._release)

        threading.Thread(target=watch, name="held-machine-clock", daemon=True).start()

    def _release(self) -> None:
        self.clock.start()
        self.released = True
        for wake in self._waiting:
            wake.set()

    def cycle(self) -> int:
        return self.clock.cycle()

    async def wait(self, cycle: float, wake: asyncio.Event) -> None:
        if not self.released:
            self._waiting.add(wake)
            try:
                await wake.wait()
            finally:
                self._waiting.discard(wake)
            return
        await self.clock.wait(cycle, wake)


class MachineClockGate:
    """The test's end of a :class:`HeldMachineClock`: a FIFO; :meth:`release` lets the
    machine's time run."""

    def __init__(self, path: Path, rate: float) -> None:
        self.path = path
        self.rate = rate
        os.mkfifo(path)
        self._fd: int | None = os.open(path, os.O_RDWR)  # never blocks

    @property
    def option(self) -> str:
        """The ``--machine-clock`` value of ``python -m support.serve``."""
        return f"{self.path}@{self.rate!r}"

    def release(self) -> None:
        """Start the machine's clock (once)."""
        if self._fd is not None:
            os.write(self._fd, b"x")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class ClockedServer(ServerProcess):
    """A real ``qmk serve`` (``python -m support.serve --clock FILE``) whose kernel clock is
    the system's plus the seconds the test writes in ``clock``."""

    clock: ClockFile | None = None

    def command(self, hooks: Hooks | None = None) -> list[str]:
        options = super().command(None)[4:]  # after: python -m qmk serve
        assert self.clock is not None
        ours = (hooks or Hooks()).argv()
        clock = ["--clock", str(self.clock.path)]
        return [sys.executable, "-m", "support.serve", *ours, *clock, "--", *options]

    @staticmethod
    def environment(
        hooks: Hooks | None = None, env: dict[str, str] | None = None
    ) -> dict[str, str]:
        return support_env(env)


@dataclass
class HeldMachineServer(ServerProcess):
    """``qmk serve`` (``python -m support.serve --machine-clock FIFO@RATE``) whose shared
    machine's clock the test releases (:class:`MachineClockGate`)."""

    gate: MachineClockGate | None = None

    def command(self, hooks: Hooks | None = None) -> list[str]:
        options = super().command(None)[4:]  # after: python -m qmk serve
        assert self.gate is not None
        ours = [*(hooks or Hooks()).argv(), "--machine-clock", self.gate.option]
        return [sys.executable, "-m", "support.serve", *ours, "--", *options]

    @staticmethod
    def environment(
        hooks: Hooks | None = None, env: dict[str, str] | None = None
    ) -> dict[str, str]:
        return support_env(env)
