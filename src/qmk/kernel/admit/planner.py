"""The planner process: where admission's plans are built, out of the kernel process.

Admission prices a new program by its plan (peak physical qubits, the routed engine's
capacity in a worker). Planning loads the planner, the router and the engines, which
the trusted core does not hold (issue 79). So one planner process of the kernel's, started
by the kernel's forkserver at the first plan (as its workers are), runs
:func:`qmk.execution.pricing.price` on the program's text and answers plain figures. It
is stateless: admission caches its answers by graph text and physics. A planner that died
is started again at the next plan; the submit it was planning gets ``unavailable``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, TypeVar

from qmk.errors import UnavailableError
from qmk.execution import pricing

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.execution.pricing import Priced, Refused
    from qmk.execution.request import RunRequest

T = TypeVar("T")


class Planner:
    """One planner process, started at the first :meth:`price` (and after a crash)."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None

    async def price(self, text: str, **physics: Any) -> Priced:
        """:func:`qmk.execution.pricing.price` of ``text`` in the planner process.

        Raises:
            UnavailableError: the planner process died while planning it.
        """
        return await self._call(pricing.price, text, **physics)

    async def footprint(self, target: str, text: str, request: RunRequest) -> Footprint | Refused:
        """:func:`qmk.execution.pricing.footprint` in the planner process.

        Raises:
            UnavailableError: the planner process died while compiling it.
        """
        return await self._call(pricing.footprint, target, text, request)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
        executor = self._executor
        future = executor.submit(function, *args, **kwargs)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            if self._executor is executor:
                self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            raise UnavailableError(
                "the planner process died while planning this program; retry"
            ) from None

    def close(self) -> None:
        """End the planner process (if one runs)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
