"""The planner process: where admission's plans are built, out of the kernel process.

Admission prices a new program by its plan (peak physical qubits, the routed engine's
capacity in a worker) and places it by its target's footprint. Planning loads the
planner, the router, the targets and the engines, which the trusted core does not hold
(issue 79). So one planner process of the kernel's runs
:func:`qmk.execution.pricing.price` and :func:`qmk.execution.pricing.footprint` on the
program's text and answers plain data. It is stateless: admission caches its answers
by graph text and physics.

The planner is a worker of a pool of one (:class:`~qmk.kernel.pools.pool.WorkerPool`,
made by the kernel: :func:`~qmk.kernel.pools.workers.planner_pool`), started at the
first plan. So it is confined as the workers are (no network, the data directory
hidden, the workers' memory and CPU caps), its answers are unpickled as plain data
only, and it ends with the kernel: a ``kill -9`` of the kernel closes its line and its
forkserver, and either ends it. A planner that died (or ran past its caps) costs the
submit it was planning an ``unavailable``; the pool starts another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from qmk.errors import UnavailableError
from qmk.execution import pricing
from qmk.execution.footprint import Footprint
from qmk.execution.pricing import Priced, Refused

if TYPE_CHECKING:
    from qmk.execution.request import RunRequest

#: Makes the planner's pool of one on the kernel's loop (called there, at the first plan).
PlannerPool = Callable[[asyncio.AbstractEventLoop], Executor]


class Planner:
    """The kernel's planner process, started at the first :meth:`price` or
    :meth:`footprint` by ``start`` (a pool of one worker, driven by the kernel's loop)."""

    def __init__(self, start: PlannerPool) -> None:
        self._start = start
        self._pool: Executor | None = None

    async def price(self, text: str, **physics: Any) -> tuple[Priced, Footprint | Refused | None]:
        """:func:`qmk.execution.pricing.price` of ``text`` in the planner process: the
        plan's figures, and with ``place=(target, request)`` among ``physics`` the
        footprint of a program it priced (None without).

        Raises:
            UnavailableError: the planner process died while planning it.
        """
        answer = await self._call(pricing.price, text, **physics)
        return Priced(**answer["priced"]), _placed(answer)

    async def footprint(
        self, target: str, text: str, request: RunRequest, **limits: Any
    ) -> Footprint | Refused:
        """:func:`qmk.execution.pricing.footprint` in the planner process (``limits``:
        its ``max_unrolled_nodes``).

        Raises:
            UnavailableError: the planner process died while compiling it.
        """
        placed = _placed(await self._call(pricing.footprint, target, text, request, **limits))
        assert placed is not None  # footprint answers one or the other
        return placed

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._pool is None:
            self._pool = self._start(asyncio.get_running_loop())
        try:
            return await asyncio.wrap_future(self._pool.submit(function, *args, **kwargs))
        except Exception as exc:
            # the pool's TaskError (qmk.kernel.pools, this layer's neighbour) says why by
            # its kind; "error" is a fault of the planner's code: it is raised as it is
            kind = getattr(exc, "kind", "error")
            if kind == "error":
                raise
            raise UnavailableError(
                f"the planner process could not plan this program ({kind}: {exc}); retry",
                reason=f"planner-{kind}",
            ) from None

    def close(self) -> None:
        """End the planner process (if one runs)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _placed(answer: dict[str, Any]) -> Footprint | Refused | None:
    """The footprint (or the target's refusal) of a planner's ``answer``; None: none."""
    if "refused" in answer:
        return Refused(**answer["refused"])
    if "footprint" in answer:
        return Footprint.from_json(answer["footprint"])
    return None
