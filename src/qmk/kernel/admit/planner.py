"""The planner process: where admission's plans are built, out of the kernel process.

Admission prices a new program by its plan (peak physical qubits, the routed engine's
capacity in a worker) and places it by its target's footprint; the kernel's shared
machine takes its patch and factories from the estimator. These load the planner, the
router, the targets, the engines and the estimator, which the trusted core does not hold
(issue 79). So one planner process of the kernel's runs
:func:`qmk.execution.pricing.price` and :func:`qmk.execution.pricing.footprint` on the
program's text, and :func:`qmk.kernel.machine.derive.planned_machine` on the kernel's
``[machine]`` table, and answers plain data. It is stateless: admission caches its
answers by graph text and physics, and the kernel keeps its machine.

The planner is a worker of a pool of one (:class:`~qmk.kernel.pools.pool.WorkerPool`,
made by the kernel: :func:`~qmk.kernel.pools.workers.planner_pool`), started as the
kernel opens, for its machine. So it is confined as the workers are (no network, the data directory
hidden, the workers' memory and CPU caps), its answers are unpickled as plain data
only, and it ends with the kernel: a ``kill -9`` of the kernel closes its line and its
forkserver, and either ends it. A planner that died (or ran past its caps) costs the
submit it was planning an ``unavailable``; the pool starts another.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from qmk.errors import UnavailableError
from qmk.execution.footprint import Footprint
from qmk.execution.priced import Priced, Refused

if TYPE_CHECKING:
    from qmk.execution.request import RunRequest
    from qmk.kernel.config import KernelConfig
    from qmk.kernel.machine.spec import MachineSpec

#: Makes the planner's pool of one on the kernel's loop (called there, at the first plan).
PlannerPool = Callable[[asyncio.AbstractEventLoop], Executor]


def named(target: str, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``target`` (``"module:function"``), imported here, in the planner process:
    the kernel names the planner's work by text, so it loads none of its code (the
    pricing, the derivation, the planner, the router, the engines, the estimator)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


class Planner:
    """The kernel's planner process, started at the first call by ``start`` (a pool of
    one worker, driven by the kernel's loop): the kernel's :meth:`machine` as it opens."""

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
        answer = await self._call(named, "qmk.execution.pricing:price", text, **physics)
        return Priced(**answer["priced"]), _placed(answer)

    async def footprint(
        self, target: str, text: str, request: RunRequest, **limits: Any
    ) -> Footprint | Refused:
        """:func:`qmk.execution.pricing.footprint` in the planner process (``limits``:
        its ``max_unrolled_nodes``).

        Raises:
            UnavailableError: the planner process died while compiling it.
        """
        where = "qmk.execution.pricing:footprint"
        placed = _placed(await self._call(named, where, target, text, request, **limits))
        assert placed is not None  # footprint answers one or the other
        return placed

    async def machine(self, config: KernelConfig) -> MachineSpec:
        """The shared machine of ``config``, derived in the planner process: its patch
        and factories are the estimator's (:func:`~qmk.kernel.machine.derive.planned_machine`).

        Raises:
            QMKError: the machine's refusal (``QK503 bad-machine``, or the QEC layer's).
            UnavailableError: the planner process died while deriving it.
        """
        from qmk.kernel.machine import spec

        table = config.machine
        answer = await self._call(
            named,
            "qmk.kernel.machine.derive:planned_machine",
            table,
            config.faults,
            config.preempt_gap,
            what="the machine",
        )
        return spec.machine_of(answer, table)

    async def run(self, function: Callable[..., Any], *args: Any, what: str) -> Any:
        """``function(*args)`` in the planner process, its answer plain data (a trigger's
        workflow lowered: :func:`qmk.workflows.runner.lowered`).

        Raises:
            UnavailableError: the planner process died while working on ``what``.
        """
        return await self._call(function, *args, what=what)

    async def _call(
        self, function: Callable[..., Any], *args: Any, what: str = "this program", **kwargs: Any
    ) -> Any:
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
                f"the planner process could not plan {what} ({kind}: {exc}); retry",
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
