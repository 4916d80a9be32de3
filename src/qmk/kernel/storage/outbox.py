"""The billing webhook's durable outbox: each committed usage record POSTed at least once.

The kernel makes it only with ``[billing] webhook_url``; the usage records and the
outbox rows it reads are :mod:`qmk.kernel.storage.billing`'s.

:class:`Outbox` (a task of the kernel's task group) has each committed PENDING record
POSTed, ``[billing] webhook_concurrency`` of them at once (each on its own connection),
so the lag stays bounded when jobs end faster than one receiver answers one request. The
POST itself (the socket, TLS, the receiver's answer) runs in a process of the kernel's
webhook pool (:func:`qmk.abi.webhook.deliver`), not in the kernel's, which only reads
and writes the outbox::

    POST <webhook_url>
    Content-Type: application/json
    Idempotency-Key: <usage_id>
    X-QMK-Signature: sha256=<hex HMAC-SHA256(webhook_secret, body)>

    {"event": "job.usage", "usage_id", "tenant", "job_id", "state", "ended_at",
     "usage": {"shots", "logical_qubit_seconds", "physical_qubit_cycles",
               "device_seconds", "result_bytes"}}

A 2xx answer marks it DELIVERED. Anything else (another status, a refused connection,
a timeout) leaves it PENDING until ``webhook_backoff_s * 2**(attempts-1)`` (at most
``webhook_backoff_max_s``) has passed; after ``webhook_attempts`` tries it is DEAD, a
dead letter (``QK401 webhook-undelivered``) that ``qmk billing dead-letters`` lists and
``qmk billing replay`` makes PENDING again (:mod:`qmk.kernel.storage.dead_letters`). A
kernel killed mid-delivery finds the record PENDING at its next start and delivers it
again with the same body and key: at least once, and the key lets the receiver drop a
repeat.

>>> signature(b"k", b'{"a":1}')
'sha256=c3a92ff9e274cdcce27a58c15a78ec6dcbbdbd0038a87e7a11baef2028fd8bff'
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from qmk import aio
from qmk.errors import UnavailableError
from qmk.kernel.clock import Clock
from qmk.kernel.config import BillingTable
from qmk.kernel.errors import OperationsError
from qmk.kernel.storage.billing import DEAD, DELIVERED, PENDING
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.store import Store

_log = logging.getLogger("qmk.kernel.storage.outbox")

#: Longest the deliverer sleeps with nothing due: an operator's replay (another
#: process writing the database) is seen within it.
IDLE_POLL_S = 1.0
#: The longest a webhook process may take to begin a POST (its start, on a loaded host);
#: the receiver's ``webhook_timeout_s`` counts from the POST's start.
WEBHOOK_START_S = 60.0


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-QMK-Signature`` header of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Due:
    """A PENDING webhook whose time has come (``outbox`` columns by name)."""

    usage_id: str
    body: bytes
    #: Its attempts so far.
    attempts: int


class OutboxRows:
    """The ``outbox`` table of a :class:`~qmk.kernel.storage.store.Store`: the webhook's
    deliveries, read and written in the store's connection and transaction (a write marks
    the store dirty, so the group commit holds it). A job's end adds its row with its
    usage (:meth:`Store.insert_usage`); these are the outbox's own reads and writes, and
    the kernel's load's backlog, where a webhook is set.

    Args:
        store: the kernel's store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def due(self, now: float, limit: int) -> list[Due]:
        """The PENDING webhooks due at ``now``, oldest first."""
        return [
            Due(usage_id=str(usage_id), body=bytes(body), attempts=int(attempts))
            for usage_id, body, attempts in self.store.db.execute(
                "SELECT usage_id, body, attempts FROM outbox WHERE state='PENDING' "
                "AND next_at <= ? ORDER BY next_at, rowid LIMIT ?",
                (now, limit),
            )
        ]

    def next_at(self, besides: Collection[str] = ()) -> float | None:
        """When the next PENDING webhook is due, of those not in ``besides`` (the ones in
        flight); None: none is."""
        marks = ", ".join("?" * len(besides))
        (when,) = self.store.db.execute(
            "SELECT MIN(next_at) FROM outbox WHERE state='PENDING'"
            + (f" AND usage_id NOT IN ({marks})" if besides else ""),
            tuple(besides),
        ).fetchone()
        return None if when is None else float(when)

    def backlog(self) -> tuple[int, float | None, int]:
        """The outbox's PENDING webhooks, when the oldest of them was made (None: none
        is PENDING), and its DEAD ones (the dead letters)."""
        pending, oldest = self.store.db.execute(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state='PENDING'"
        ).fetchone()
        (dead,) = self.store.db.execute("SELECT COUNT(*) FROM outbox WHERE state='DEAD'").fetchone()
        return int(pending), None if oldest is None else float(oldest), int(dead)

    def attempted(
        self,
        usage_id: str,
        *,
        state: str,
        attempts: int,
        next_at: float,
        now: float,
        error: str | None,
    ) -> None:
        """Record a delivery attempt: DELIVERED, PENDING again at ``next_at``, or DEAD."""
        self.store.db.execute(
            "UPDATE outbox SET state=?, attempts=?, next_at=?, last_error=?, "
            "delivered_at=CASE WHEN ?='DELIVERED' THEN ? ELSE delivered_at END "
            "WHERE usage_id=?",
            (state, attempts, next_at, error, state, now, usage_id),
        )
        self.store.dirty = True


class Pool(Protocol):
    """The webhook's pool as the outbox drives it (a
    :class:`~qmk.kernel.pools.pool.WorkerPool`, the kernel's neighbour room)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in a worker."""

    def cancel(self, future: Future[Any], reason: str = "cancelled") -> bool:
        """Stop ``future``'s task (its worker is killed, and replaced)."""

    def listen(self, future: Future[Any], listener: Callable[[Any], None]) -> None:
        """Have ``listener(note)`` called with each note ``future``'s task sends."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the workers."""


class Outbox:
    """Delivers the outbox's PENDING records to the webhook (see the module docstring).

    Args:
        billing: the ``[billing]`` table (url, secret, timeout, attempts, backoff).
        store: the database.
        commits: the group commit (a record is sent only once committed; an attempt's
            outcome is written lazily).
        clock: when a record is due.
        wake: set when a record is added.
        start: makes the webhook's pool on the kernel's loop, at the first delivery.
        post: the pool's task that POSTs a record, given ``(url, body, headers)``; its
            answer's status (:func:`qmk.abi.webhook.deliver`, through
            :func:`~qmk.kernel.pools.workers.linked`).
    """

    def __init__(
        self,
        billing: BillingTable,
        store: Store,
        commits: GroupCommit,
        clock: Clock,
        wake: asyncio.Event,
        start: Callable[[asyncio.AbstractEventLoop], Pool],
        post: Callable[..., int],
    ) -> None:
        assert billing.webhook_url is not None and billing.webhook_secret is not None
        self.billing = billing
        self.url = billing.webhook_url
        self.secret = billing.webhook_secret.encode()
        self.store = store
        #: The outbox's rows in the store.
        self.rows = OutboxRows(store)
        self.commits = commits
        self.clock = clock
        self.wake = wake
        self._start, self._post = start, post
        self._pool: Pool | None = None

    def backoff_s(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed delivery."""
        return float(
            min(
                self.billing.webhook_backoff_max_s,
                self.billing.webhook_backoff_s * 2 ** min(attempts - 1, 60),
            )
        )

    async def run(self) -> None:
        """Deliver what is due, ``webhook_concurrency`` at once, forever (the kernel's
        group cancels it: a delivery cut then is PENDING, sent again at the next start).

        Each due record gets its own task as soon as a place is free (a slow receiver
        holds one place, not the rest); the loop sleeps until a delivery ends, a record
        is added, the next is due, or :data:`IDLE_POLL_S` passes."""
        flying: set[str] = set()
        most = self.billing.webhook_concurrency
        try:
            await self._deliver_due(flying, most)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)

    async def _deliver_due(self, flying: set[str], most: int) -> None:
        async with aio.TaskGroup() as group:
            while True:
                self.wake.clear()
                try:
                    while self.commits.pending:  # only committed records leave the kernel
                        await self.commits.durable()
                except UnavailableError:  # the disk is full, say: the requests are told
                    await asyncio.sleep(IDLE_POLL_S)
                    continue
                free = most - len(flying)
                due = self.rows.due(self.clock.now(), free + len(flying)) if free else []
                for record in [d for d in due if d.usage_id not in flying][:free]:
                    flying.add(record.usage_id)
                    group.create_task(
                        self._one(record.usage_id, record.body, record.attempts, flying)
                    )
                    free -= 1
                wait = IDLE_POLL_S
                if free:  # room for more: sleep until the next one not in flight is due
                    next_at = self.rows.next_at(flying)
                    if next_at is not None:
                        wait = max(0.0, min(wait, next_at - self.clock.now()))
                with contextlib.suppress(TimeoutError):
                    async with aio.timeout(wait):
                        await self.wake.wait()

    async def _one(self, usage_id: str, body: bytes, attempts: int, flying: set[str]) -> None:
        """One delivery in its own task; its place is freed (and the loop woken) after."""
        try:
            await self.deliver(usage_id, body, attempts)
        finally:
            flying.discard(usage_id)
            self.wake.set()

    async def deliver(self, usage_id: str, body: bytes, attempts: int) -> bool:
        """One delivery of a record; whether the receiver took it."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": usage_id,
            "X-QMK-Signature": signature(self.secret, body),
            "User-Agent": "qmk-billing",
        }
        error: str | None = None
        if self._pool is None:  # its processes start at the first delivery, not with the kernel
            self._pool = self._start(asyncio.get_running_loop())
        future = self._pool.submit(self._post, self.url, body, headers)
        loop = asyncio.get_running_loop()
        sending = asyncio.Event()

        def noted(_: Any) -> None:
            loop.call_soon_threadsafe(sending.set)

        self._pool.listen(future, noted)
        answer = asyncio.wrap_future(future)
        began = asyncio.ensure_future(sending.wait())
        try:
            # The receiver's time starts when the POST does: a webhook process that is
            # still starting (the first delivery, a loaded host) is not the receiver's.
            async with aio.timeout(WEBHOOK_START_S):
                await asyncio.wait((answer, began), return_when=asyncio.FIRST_COMPLETED)
            async with aio.timeout(self.billing.webhook_timeout_s):
                status = await answer
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except TimeoutError:
            answer.cancel()
            self._pool.cancel(future, "webhook-timeout")  # its process is killed
            error = (
                f"no answer within {self.billing.webhook_timeout_s:g} s"
                if sending.is_set()
                else f"the webhook process did not start within {WEBHOOK_START_S:g} s"
            )
        except Exception as exc:  # the pool's TaskError: the POST's error, or a death
            if getattr(exc, "kind", None) is None:
                raise
            error = f"cannot deliver: {getattr(exc, 'message', exc)}"
        finally:
            began.cancel()
        attempts += 1
        now = self.clock.now()
        if error is None:
            state, next_at = DELIVERED, now
        elif attempts >= self.billing.webhook_attempts:
            state, next_at = DEAD, now
            _log.warning(
                "%s",
                OperationsError.of(
                    "webhook-undelivered",
                    f"usage {usage_id}: {error} at each of {attempts} attempts; "
                    "it is a dead letter (qmk billing dead-letters)",
                ),
            )
        else:
            state, next_at = PENDING, now + self.backoff_s(attempts)
        self.rows.attempted(
            usage_id, state=state, attempts=attempts, next_at=next_at, now=now, error=error
        )
        self.commits.dirty(urgent=False)
        return error is None


__all__ = ["IDLE_POLL_S", "WEBHOOK_START_S", "Due", "Outbox", "OutboxRows", "Pool", "signature"]
