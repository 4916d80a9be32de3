"""The pools of the kernel's processes that reach the network: the assistant's and the
billing webhook's.

Each is confined as the kernel's workers are (:func:`~qmk.kernel.pools.workers.kernel_isolation`)
but for the network, since a model's answer and a webhook's receiver are network calls,
and capped at their memory. The kernel loads this module where it makes one: at the
assistant's first question, at open where ``[billing] webhook_url`` is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import TYPE_CHECKING

from qmk.kernel.pools.pool import WorkerPool
from qmk.kernel.pools.workers import ASSISTANT_NAME, WEBHOOK_NAME, Named, kernel_isolation

if TYPE_CHECKING:
    from qmk.kernel.config import KernelConfig


def assistant_pool(
    config: KernelConfig, data_dir: str | os.PathLike[str], loop: asyncio.AbstractEventLoop
) -> WorkerPool:
    """The pool of the kernel's assistant processes (:mod:`qmk.kernel.admit.assist`): one
    worker per question answered at once (``[assist] max_concurrent``), driven by
    ``loop``, confined as the kernel's workers are (:func:`kernel_isolation`) but for the
    network, since the model is a network call, and capped at their memory. The model's
    loop and its replies run there, out of the kernel's process; each tool call goes
    over its line (:meth:`~qmk.kernel.pools.worker.TaskLink.ask`) to the kernel, which runs
    it in the planner process (no network). Its processes are named
    :data:`ASSISTANT_NAME`.
    """
    return _networked(config, data_dir, loop, config.assist.max_concurrent, ASSISTANT_NAME)


def webhook_pool(
    config: KernelConfig, data_dir: str | os.PathLike[str], loop: asyncio.AbstractEventLoop
) -> WorkerPool:
    """The pool of the billing webhook's processes (:class:`~qmk.kernel.storage.outbox.
    Outbox`): ``[billing] webhook_concurrency`` workers, driven by ``loop``, confined as
    the kernel's workers are but for the network (the receiver is a network call), and
    capped at their memory. Each POSTs one record at a time; a receiver's answer is read
    there, not in the kernel. Its processes are named :data:`WEBHOOK_NAME`."""
    return _networked(config, data_dir, loop, config.billing.webhook_concurrency, WEBHOOK_NAME)


def _networked(
    config: KernelConfig,
    data_dir: str | os.PathLike[str],
    loop: asyncio.AbstractEventLoop,
    size: int,
    name: str,
) -> WorkerPool:
    """A pool of ``size`` workers named ``name``, confined as the kernel's workers are
    but for the network, and capped at their memory."""
    return WorkerPool(
        size,
        memory_mb=config.worker_memory_mb,
        loop=loop,
        isolation=dataclasses.replace(kernel_isolation(config, data_dir), network=False),
        hooks=Named(name),
    )


__all__ = ["assistant_pool", "webhook_pool"]
