"""What the kernel's Dask pool and its Dask workers share: the names on the wire between
them (:mod:`qmk.kernel.pools.dask_pool` on the kernel's side, :mod:`qmk.kernel.pools.dask_worker` on
each worker). Both import this module; neither imports the other's privates.

A call to ``qmk_run`` carries one pickled tuple ``(token, fn, attempt, part, resume,
options, early requests)``. It holds the job's :class:`~qmk.kernel.pools.attempt.Attempt`
(or, for a split job's big program, a :class:`Stash` of it), and ``part`` as ``[k, n]``
or None. It holds the bytes of the state it resumes from or None, the kernel's worker
limits, and requests that came before the call went out. The answer is one pickled
:data:`Answer`, a tagged union read back by its type, never by position:

- :class:`Returned`: ``fn(spec)``'s value, a job's outcome as plain data
  (:mod:`qmk.kernel.records.outcome`);
- :class:`Raised`: the job's process failed (a
  :class:`~qmk.kernel.pools.pool.TaskError`'s kind, message and data);
- :class:`Lost`: its worker closed under it;
- :class:`Again`: the stash could not be fetched.

Each says how many checkpoint notes the job sent first (the kernel takes those before
the answer).

>>> import pickle
>>> answer = pickle.loads(pickle.dumps(Raised(kind="memory", message="over", notes=2)))
>>> answer
Raised(notes=2, kind='memory', message='over', data={})
>>> isinstance(answer, ANSWERS), answer.__struct_config__.tag
(True, 'error')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import msgspec

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
    "qmk_warm": "warm",
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
    # a local cluster (``local:N``) closes the nanny of a worker lost this long, even as
    # the nanny restarts it: 15 s by default, which a restart (a fresh process and its
    # imports) takes on a loaded machine, and the cluster stayed one worker short
    "distributed.deploy.lost-worker-timeout": "1 hour",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Stash:
    """In a call, in place of a split job's spec: the worker at ``address`` holds it,
    pickled, under ``digest`` (its SHA-256)."""

    digest: str
    address: str


class _Answer(msgspec.Struct, frozen=True, kw_only=True, tag_field="answer"):
    """A Dask worker's answer to one ``qmk_run`` call (see the module docstring)."""

    #: How many checkpoint notes the job sent before it ended (they reach the kernel
    #: as Dask events, which it takes before this answer).
    notes: int = 0


class Returned(_Answer, frozen=True, kw_only=True, tag="ok"):
    """The job ran to its end: ``fn(spec)``'s value (a kernel job's: its outcome as plain
    data, :func:`qmk.kernel.records.outcome.encode`)."""

    value: Any


class Raised(_Answer, frozen=True, kw_only=True, tag="error"):
    """The job's process failed (over its memory or CPU limit, killed, died), or the
    worker could not run it: :func:`qmk.kernel.pools.pool.TaskError`'s ``kind``, ``message``
    and ``data``."""

    kind: str
    message: str
    data: dict[str, Any] = {}


class Lost(_Answer, frozen=True, kw_only=True, tag="lost"):
    """The job's Dask worker closed under it (not the job's doing: it runs again)."""

    why: str


class Again(_Answer, frozen=True, kw_only=True, tag="again"):
    """The worker could not fetch a split job's stashed spec from its peer (nothing
    ran: the kernel puts the spec anew)."""

    why: str


#: A worker's answer to ``qmk_run``, one of the four.
Answer = Union[Returned, Raised, Lost, Again]  # noqa: UP007 (a value, as in outcome.py)
#: The four forms, for ``isinstance``.
ANSWERS = (Returned, Raised, Lost, Again)


__all__ = [
    "ANSWERS",
    "CLUSTER_CONFIG",
    "HANDLERS",
    "NOTES_TOPIC",
    "PLUGIN",
    "QUEUE_HANDLER",
    "QUEUE_PLUGIN",
    "Again",
    "Answer",
    "Lost",
    "Raised",
    "Returned",
    "Stash",
]
