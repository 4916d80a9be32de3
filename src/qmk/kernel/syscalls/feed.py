"""What a process of its own reads of the kernel's events and load through syscalls: a
tenant's own audit records after a cursor (``q_events``), its recent ones
(``q_audit``), and, for an operator, the kernel's load and job counters
(``q_kernel_load``). An HTTP gateway serves ``GET /v1/events``, ``GET /v1/audit`` and
``/metrics`` from them.

The desk keeps the last :data:`~qmk.defaults.EVENTS_LIMIT` audit records of every
tenant in memory (seeded from the audit log's tail, as the HTTP application's hub is)
and a :class:`~qmk.abi.tally.JobTally` of them. It listens to the audit log from
:meth:`FeedDesk.start` on: ``qmk serve`` starts it where a gateway process or a lone
gateway may ask, and the first of these syscalls starts it otherwise (a kernel nobody
asks keeps no copy). A tenant reads only its own records; a record's ``seq`` is its
line in the audit log, so a cursor stays valid across restarts while the record is kept.

A device job's stream parts are records too, but no audit lines: each carries the seq
of the line before it. The kernel's observer numbers them ``sub`` 1, 2, ... after that
line (an audit line is ``sub`` 0; :class:`~qmk.abi.probe.Cursor`), once for every
listener (this desk and the job watches' hub), and the cursor is the pair ``(after,
after_sub)``: a page that ends inside a run of parts resumes after its last part, and
parts heard after their line was given are still after the cursor.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import qmk.abi.replies as replies
from qmk import defaults
from qmk.abi.probe import (
    Cursor,
    KernelEvent,
    KernelSnapshot,
    hashed_tenants,
)
from qmk.abi.probing import last_records, snapshot_json
from qmk.abi.tally import JobTally
from qmk.errors import CapabilityError, InvalidArgument
from qmk.kernel.config import KernelConfig
from qmk.kernel.security.sessions import Session

#: The capability ``q_kernel_load`` needs (an operator's read-only view).
OBSERVE_CAP = "CAP_OBSERVE"


class Observed(Protocol):
    """What the desk reads of the kernel's observer (:class:`qmk.kernel.observe.
    KernelObserver`): its events, its audit log's tail, its load."""

    def listen(
        self, callback: Callable[[KernelEvent], None], *, kept: bool = False
    ) -> Callable[[], None]: ...

    def audit_tail(self, limit: int) -> list[KernelEvent]: ...

    def snapshot(self) -> KernelSnapshot: ...


class FeedDesk:
    """The event feed's, the audit read's and the load's syscalls' work (module
    docstring).

    Args:
        config: the kernel configuration (``[http] metrics_tenants``).
        probe: the kernel's observer (its events, its audit tail, its snapshot).
        label_key: the key of the tenants' hashed labels (the kernel's ``metrics`` key).
    """

    def __init__(self, config: KernelConfig, probe: Observed, label_key: bytes) -> None:
        self.config = config
        self.probe = probe
        self._hashed = hashed_tenants(label_key)
        self.tally = JobTally()
        self.recent: deque[KernelEvent] = deque(maxlen=defaults.EVENTS_LIMIT)
        self._evicted = Cursor(0)  # the newest record the deque let go
        self._waiters: dict[asyncio.Future[None], str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._stop: Callable[[], None] | None = None

    @property
    def started(self) -> bool:
        """Whether the desk listens to the audit log."""
        return self._stop is not None

    def start(self) -> None:
        """Listen to the audit log from now on (on the running loop); starting twice is once."""
        if self._stop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        for event in self.probe.audit_tail(defaults.EVENTS_LIMIT):
            self._keep(event)
        self._stop = self.probe.listen(self._heard, kept=True)  # a cursor of a kept line

    def close(self) -> None:
        """Stop listening, and answer every waiting call."""
        if self._stop is not None:
            self._stop()
            self._stop = None
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)

    def _heard(self, event: KernelEvent) -> None:
        if threading.get_ident() == self._thread:
            self._take(event)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._take, event)

    def _keep(self, event: KernelEvent) -> None:
        recent = self.recent
        if len(recent) == recent.maxlen:
            self._evicted = recent[0].cursor
        recent.append(event)

    def _take(self, event: KernelEvent) -> None:
        self._keep(event)
        self.tally.on_event(event)
        if event.tenant is None:
            return
        for waiter, tenant in list(self._waiters.items()):
            if tenant == event.tenant and not waiter.done():
                waiter.set_result(None)

    def _after(self, tenant: str, after: Cursor, limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for event in self.recent:
            if event.tenant == tenant and event.cursor > after:
                found.append({**event.to_json(), "sub": event.sub})
                if len(found) >= limit:
                    break
        return found

    async def events(
        self,
        session: Session,
        after: int | None,
        limit: int,
        wait_ms: int | None,
        after_sub: int = 0,
    ) -> replies.Events:
        """``q_events``: ``session``'s tenant's records after the cursor ``(after,
        after_sub)`` (``after`` null: from now), at most ``limit``; with ``wait_ms``,
        waiting that long for the first."""
        if isinstance(limit, bool) or not 1 <= limit <= defaults.EVENTS_LIMIT:
            raise InvalidArgument(
                f"limit must be an integer 1..{defaults.EVENTS_LIMIT}, got {limit!r}", key="limit"
            )
        if wait_ms is not None and not 0 <= wait_ms <= defaults.MAX_TIMEOUT_MS:
            raise InvalidArgument(
                f"wait_ms must be 0..{defaults.MAX_TIMEOUT_MS} or null, got {wait_ms!r}",
                key="wait_ms",
            )
        if after is not None and after < 0:
            raise InvalidArgument(f"after must be an audit seq (>= 0), got {after}", key="after")
        if isinstance(after_sub, bool) or not isinstance(after_sub, int) or after_sub < 0:
            raise InvalidArgument(
                f"after_sub must be a record's sub (>= 0), got {after_sub!r}", key="after_sub"
            )
        self.start()
        tenant = session.tenant
        # from now: the newest record is the cursor
        cursor = self._newest() if after is None else Cursor(after, after_sub)
        found = self._after(tenant, cursor, limit)
        if not found and wait_ms:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[waiter] = tenant
            try:
                await asyncio.wait_for(waiter, wait_ms / 1000)
            except asyncio.TimeoutError:
                pass
            finally:
                self._waiters.pop(waiter, None)
            found = self._after(tenant, cursor, limit)
        # lines let go past the cursor (a part of its own line let go: one at least)
        dropped = max(self._evicted.seq - cursor.seq, int(cursor < self._evicted))
        if found:
            cursor = Cursor(found[-1]["seq"], found[-1]["sub"])
        else:
            cursor = max(cursor, self._newest())
        return replies.Events(
            tenant=tenant, events=found, cursor=cursor[0], cursor_sub=cursor[1], dropped=dropped
        )

    def _newest(self) -> Cursor:
        """The cursor of the newest record kept (of any tenant), the newest let go when
        none is kept."""
        return self.recent[-1].cursor if self.recent else self._evicted

    async def audit(
        self, session: Session, job_id: str | None, limit: int, job_of: Callable[[str], Any]
    ) -> replies.AuditEntries:
        """``q_audit``: the tenant's last ``limit`` records (``job_id``'s only: a job of
        the tenant, found by ``job_of``), oldest first."""
        if isinstance(limit, bool) or not 1 <= limit <= defaults.AUDIT_LIMIT_MAX:
            raise InvalidArgument(
                f"limit must be an integer 1..{defaults.AUDIT_LIMIT_MAX}, got {limit!r}",
                key="limit",
            )
        if job_id is not None:  # another tenant's job is not found, as everywhere
            job_of(job_id)
        self.start()
        tenant = session.tenant
        found = last_records(self.recent, tenant, job_id, limit)
        return replies.AuditEntries(tenant=tenant, entries=found)

    def load(self, session: Session) -> replies.KernelLoad:
        """``q_kernel_load``: the kernel's load and job counters, for a session holding
        ``CAP_OBSERVE``; tenants by name unless ``[http] metrics_tenants = "hashed"``.

        Raises:
            CapabilityError: the session does not hold ``CAP_OBSERVE``.
        """
        if OBSERVE_CAP not in session.caps:
            raise CapabilityError(
                f"q_kernel_load needs {OBSERVE_CAP}; the session of tenant "
                f"{session.tenant!r} does not hold it (caps = [..., {OBSERVE_CAP!r}] in its "
                "[tenants] table, and asked for at q_negotiate_caps)",
                missing=[OBSERVE_CAP],
            )
        self.start()
        hashed = self.config.http.metrics_tenants == "hashed"
        label: Callable[[str], str] = self._hashed if hashed else str
        return replies.KernelLoad(
            tenants="hashed" if hashed else "names",
            snapshot=snapshot_json(self.probe.snapshot(), label),
            tally=self.tally.to_json(label),
        )


__all__ = ["OBSERVE_CAP", "FeedDesk", "Observed"]
