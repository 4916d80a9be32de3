"""The spans inside a job's worker for a tracer in another process (:class:`FeedTraces`):
every submit checks its ``traceparent`` here, so this is apart from the feed's desk
(:mod:`qmk.kernel.syscalls.feed`), which a kernel makes at the first syscall that reads
its feed."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from qmk.errors import InvalidArgument

#: The feed's event of the spans a traced job's worker recorded (:class:`FeedTraces`).
SPANS_EVENT = "spans"
#: Jobs whose submitted ``traceparent`` is kept at once (the oldest go first).
MAX_TRACED_JOBS = 10_000
_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class Told(Protocol):
    """What :class:`FeedTraces` reads of the audit log: its seq and its listeners."""

    seq: int
    listeners: list[Callable[[dict[str, Any]], None]]


class FeedTraces:
    """The spans inside a job's worker, for a tracer in another process: a
    :class:`~qmk.abi.probe.WorkerTraces` that hands each traced run the ``traceparent``
    its submit carried (``q_submit``'s ``traceparent``) and tells the spans the worker
    recorded to the audit log's listeners as one ``spans`` record of the job's tenant,
    as a device job's stream parts are told: no audit line, the seq of the line before
    it. So they reach the tenant's feed (``q_events``) before the job's final state,
    where a gateway's tracer reads them. A tracer in the kernel's own process replaces
    it (:meth:`qmk.kernel.observe.KernelObserver.trace_workers`).
    """

    def __init__(self, audit: Told) -> None:
        self._audit = audit
        self._jobs: OrderedDict[str, tuple[str, str]] = OrderedDict()

    @staticmethod
    def check(traceparent: str | None) -> None:
        """Refuse a ``traceparent`` that is not a W3C one of version 00.

        Raises:
            InvalidArgument: ``key`` ``traceparent``.
        """
        if traceparent is not None and (
            not isinstance(traceparent, str) or not _TRACEPARENT.fullmatch(traceparent)
        ):
            raise InvalidArgument(
                f"traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>), "
                f"got {str(traceparent)[:80]!r}",
                key="traceparent",
            )

    def follow(self, job_id: str, tenant: str, traceparent: str) -> None:
        """Trace ``job_id``'s runs under ``traceparent`` (a checked one)."""
        self._jobs[job_id] = (tenant, traceparent)
        while len(self._jobs) > MAX_TRACED_JOBS:
            self._jobs.popitem(last=False)

    def traceparent(self, job_id: str) -> str | None:
        """The ``traceparent`` its submit carried (None: untraced)."""
        kept = self._jobs.get(job_id)
        return None if kept is None else kept[1]

    def worker_spans(
        self, job_id: str, traceparent: str, spans: Sequence[Mapping[str, Any]]
    ) -> None:
        """Tell the worker's ``spans`` as one ``spans`` record of the job's tenant."""
        kept = self._jobs.get(job_id)
        if kept is None:
            return
        record = {
            "seq": self._audit.seq,
            "ts": round(time.time(), 6),
            "event": SPANS_EVENT,
            "tenant": kept[0],
            "job_id": job_id,
            "traceparent": traceparent,
            "spans": list(spans),
        }
        for listener in self._audit.listeners:
            try:
                listener(record)
            except Exception:  # a listener's failure is its own (the audit log's rule)
                continue


__all__ = ["MAX_TRACED_JOBS", "SPANS_EVENT", "FeedTraces", "Told"]
