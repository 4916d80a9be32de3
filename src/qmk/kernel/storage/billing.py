"""Billing: the usage record of each job's end, and its webhook.

When a job ends (:meth:`Ledger.job_ended`, from the supervisor's one end path) its
:class:`~qmk.kernel.records.usage.Usage` is written to the ``usage`` table. With
``[billing] webhook_url``, its webhook goes to the ``outbox`` table too. Both are in the
open transaction that also holds the job's end state: one commit makes both durable, or
neither. The outbox's delivery, at least once, is :mod:`qmk.kernel.storage.outbox`'s,
made only where a webhook is configured; ``q_usage`` reads the records back, with
their invoice, in :mod:`qmk.kernel.storage.usage_rows`.
"""

from __future__ import annotations

import asyncio
import json

from qmk.kernel.config import KernelConfig
from qmk.kernel.records.jobs import Job
from qmk.kernel.records.usage import Usage, usage_of
from qmk.kernel.storage.store import Store

#: The outbox states.
PENDING, DELIVERED, DEAD = "PENDING", "DELIVERED", "DEAD"
#: The event name in a webhook's body.
EVENT = "job.usage"


def webhook_body(usage_id: str, job: Job, usage: Usage) -> bytes:
    """The JSON body of a job's webhook (compact, UTF-8; the bytes that are signed)."""
    return json.dumps(
        {
            "event": EVENT,
            "usage_id": usage_id,
            "tenant": job.tenant,
            "job_id": job.job_id,
            "state": job.state,
            "ended_at": job.finished_at,
            "usage": usage.to_json(),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


class Ledger:
    """Writes each job end's usage (and its webhook, when one is configured)."""

    def __init__(self, config: KernelConfig, store: Store) -> None:
        self.billing = config.billing
        self.store = store
        #: Set when a record was added to the outbox (the deliverer waits on it).
        self.wake = asyncio.Event()

    def job_ended(self, job: Job) -> str:
        """Record ``job``'s usage at its end, in the open transaction; its usage id."""
        usage = usage_of(job)
        outbox = None
        if self.billing.webhook_url is not None:

            def outbox(usage_id: str) -> bytes:
                return webhook_body(usage_id, job, usage)

        ended = job.finished_at if job.finished_at is not None else 0.0
        usage_id = self.store.insert_usage(
            job.job_id,
            job.tenant,
            job.state,
            ended,
            usage,
            seq=job.seq,
            outbox=outbox,
            ended_before=job.ends,
        )
        job.ends = int(usage_id.rpartition(".")[2])
        if outbox is not None:
            self.wake.set()
        return usage_id


__all__ = [
    "DEAD",
    "DELIVERED",
    "EVENT",
    "PENDING",
    "Ledger",
    "webhook_body",
]
