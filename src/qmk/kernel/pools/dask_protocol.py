"""What the kernel's Dask pool and its Dask workers share: the names on the wire between
them (:mod:`qmk.kernel.pools.dask_pool` on the kernel's side, :mod:`qmk.kernel.pools.dask_worker` on
each worker). Both import this module; neither imports the other's privates.

A call to ``qmk_run`` carries one pickled tuple ``(token, fn, attempt, part, resume,
options, early requests)``: the job's :class:`~qmk.kernel.pools.attempt.Attempt` (or, for a
split job's big program, a :class:`Stash` of it), ``part`` as ``[k, n]`` or None, the
bytes of the state it resumes from or None, the kernel's worker limits, and requests
that came before the call went out. The answer is one pickled tuple: ``("ok", outcome,
notes sent)``, ``("error", kind, message, data, notes sent)``, ``("lost", why)`` (its
worker closed under it) or ``("again", why)`` (the stash could not be fetched).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The Dask event topic of checkpoint notes (worker -> kernel).
NOTES_TOPIC = "qmk-notes"
#: The name of the worker plugin that installs the job handlers.
PLUGIN = "qmk-jobs"
#: The handlers the plugin adds to each worker's server: op -> method of ``JobService``.
HANDLERS = {
    "qmk_run": "run",
    "qmk_kill": "kill",
    "qmk_request": "request",
    "qmk_hello": "hello",
    "qmk_put": "put",
    "qmk_fetch": "fetch",
}
#: The name of the scheduler plugin that reads QMK's queue into the adaptive target
#: (:mod:`qmk.kernel.pools.dask_scaler`).
QUEUE_PLUGIN = "qmk-queue"
#: The scheduler handler a kernel publishes its queue to (kernel -> scheduler).
QUEUE_HANDLER = "qmk_queue"
#: What a ``LocalCluster`` (``local:N``) and the docs' ``dask worker`` need.
CLUSTER_CONFIG: dict[str, Any] = {
    # the Dask worker's own job processes (a daemonic process may have no children)
    "distributed.worker.daemon": False,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Stash:
    """In a call, in place of a split job's spec: the worker at ``address`` holds it,
    pickled, under ``digest`` (its SHA-256)."""

    digest: str
    address: str


__all__ = [
    "CLUSTER_CONFIG",
    "HANDLERS",
    "NOTES_TOPIC",
    "PLUGIN",
    "QUEUE_HANDLER",
    "QUEUE_PLUGIN",
    "Stash",
]
