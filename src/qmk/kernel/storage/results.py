"""Finished jobs' results: each tenant's storage quota, retention, and reading in pages.

A result is stored once, encoded (:class:`~qmk.kernel.records.stored.StoredResult`: the
JSON text every reply carries, and an index of its counts). Three rules bound what the
kernel keeps:

- **Per job** (``[kernel] max_result_mb``): the worker refuses a bigger result
  (``QK305 result-too-large``, :func:`qmk.kernel.pools.attempt.run_job`).
- **Per tenant** (``[tenants.NAME] max_result_storage_mb``): the bytes of a tenant's
  stored results (of its jobs, and of the outcomes its restored jobs had before) stay
  within it. A job whose result would take the tenant past it FAILs with
  ``QK307 result-storage-quota`` and its result is not kept (:meth:`Results.take`); the
  tenant's other jobs run on, and room comes back as results expire. While its results
  fill the quota, the tenant queues nothing more (``QS1006`` at submit and restore:
  :meth:`qmk.kernel.admit.quotas.Quotas.check_queue_room`).
- **In time** (``[kernel] result_keep_s``): a job's result is deleted that long after the
  job ended (:meth:`Results.expire`, looked at on the epoch ticks and when the kernel
  opens its data directory). The job's record stays: ``q_status`` shows ``result`` null,
  ``result_expired_at`` and ``result_error`` (``QK306 result-expired``);
  ``q_get_result`` is ``StateError`` with that code. Each sweep is a ``result-expired``
  line in the audit log.

``q_get_result`` reads the counts in pages (:meth:`Results.page`): the entries in their
stored order, ``limit`` at a time, each page found through the result's index (a scan of
fewer than :data:`~qmk.kernel.records.stored.RESULT_MARK_EVERY` entries), never by parsing
the whole result. Its cursor is ``"<index>.<digest>"``: the next entry's index and the
first 12 hex digits of the counts' SHA-256, so a cursor of another result (the job was
restored and ran again) is refused instead of paging the wrong counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from qmk import defaults
from qmk.errors import InvalidArgument, StateError
from qmk.kernel.config import KernelConfig
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.records import jobs as J
from qmk.kernel.records.jobs import Job, StoredResult
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.store import Store

#: The audit event of deleted results.
EXPIRED_EVENT = "result-expired"
#: Digits of the counts' digest a cursor carries.
CURSOR_DIGEST = 12


class Results:
    """The results the kernel stores: each tenant's bytes, their expiry, their pages.

    Args:
        config: the kernel configuration (``result_keep_s``, each tenant's
            ``max_result_storage_mb``).
        store: the database (the bytes in use are read from it once, here).
        audit: the audit log (a line per expiry sweep).
    """

    def __init__(self, config: KernelConfig, store: Store, audit: AuditLog) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        #: Bytes of stored results, by tenant.
        self.usage: Counter[str] = Counter(store.result_usage())
        self._next_expiry = -float("inf")

    def limit_bytes(self, tenant: str) -> int:
        """The most bytes of results ``tenant`` may have stored."""
        conf = self.config.tenants.get(tenant)
        mb = defaults.MAX_RESULT_STORAGE_MB if conf is None else conf.max_result_storage_mb
        return int(mb * 2**20)

    def take(self, job: Job, result: StoredResult) -> dict[str, Any] | None:
        """Count ``result`` of ``job`` against its tenant's quota: None when it fits (and
        is counted), else the job's error (``QK307``; nothing counted)."""
        tenant, size = job.tenant, result.nbytes
        used, limit = self.usage[tenant], self.limit_bytes(tenant)
        if used + size > limit:
            return error_json(
                JobError.of(
                    "result-storage-quota",
                    f"the result is {size} bytes; tenant {tenant!r} stores "
                    f"{used} bytes of results and may store {limit} "
                    f"(max_result_storage_mb); it was not kept",
                )
            )
        self.usage[tenant] = used + size
        return None

    def expire(self, now: float, cached: Iterable[Job] = (), *, force: bool = False) -> list[str]:
        """Delete the results of jobs that ended ``result_keep_s`` before ``now`` (looked
        at every hundredth of that time, at most once a minute, unless ``force``); the
        ids of the jobs whose results went. ``cached`` are the jobs the kernel holds in
        memory: theirs are dropped there too."""
        if not force and now < self._next_expiry:
            return []
        keep = self.config.result_keep_s
        self._next_expiry = now + min(keep / 100, 60.0)
        jobs, earlier = self.store.expire_results(now - keep, now)
        for _, tenant, size in (*jobs, *earlier):
            self.usage[tenant] -= size
        expired = {job_id for job_id, _, _ in jobs}
        for job in cached:
            if job.job_id in expired:
                job.result = None
                job.result_expired_at = now
        gone: dict[str, list[str]] = {}
        for job_id, tenant, _ in jobs:
            gone.setdefault(tenant, []).append(job_id)
        for _, tenant, _ in earlier:
            gone.setdefault(tenant, [])
        for tenant, ids in gone.items():
            self.audit.append(
                EXPIRED_EVENT,
                tenant=tenant,
                job_ids=ids,
                earlier_outcomes=sum(1 for _, t, _ in earlier if t == tenant),
                keep_s=keep,
            )
        return sorted(expired)

    def page(self, job: Job, cursor: Any, limit: Any) -> dict[str, Any]:
        """One page of ``job``'s counts (see the module docstring).

        Raises:
            StateError: the job has no result (not COMPLETED, or its result expired:
                ``QK306``, or does not match its seal: ``QK308``).
            InvalidArgument: a malformed cursor, one of another result, or a bad limit.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InvalidArgument(f"limit must be an integer, got {limit!r}", key="limit")
        if not 1 <= limit <= defaults.MAX_RESULT_PAGE_ENTRIES:
            raise InvalidArgument(
                f"limit must be 1..{defaults.MAX_RESULT_PAGE_ENTRIES}, got {limit}", key="limit"
            )
        result = job.result
        if result is None:
            if job.result_expired_at is not None or job.result_damage is not None:
                error = job.result_damage or J.result_expired(job)
                raise StateError(error["message"], code=error["code"], job_id=job.job_id)
            raise StateError(
                f"job {job.job_id} has no result: it is {job.state} (a result comes with "
                "COMPLETED)",
                job_id=job.job_id,
                state=job.state,
            )
        digest = (result.counts_sha256 or "")[:CURSOR_DIGEST]
        start = _cursor_index(cursor, digest, result.entries)
        counts, after = result.page(start, limit)
        return {
            "job_id": job.job_id,
            "state": job.state,
            "entries": result.entries,
            "cursor": cursor,
            "next_cursor": None if after is None else f"{after}.{digest}",
            "counts": _Counts(counts),
            "summary": dict(result.head),
        }


class _Counts(Mapping[str, Any]):
    """A page of counts as UTF-8 JSON, written into a reply as it is (``__json_bytes__``);
    it reads as the counts' mapping in-process (parsed once, when first read)."""

    __slots__ = ("_value", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._value: dict[str, Any] | None = None

    def __json_bytes__(self) -> bytes:
        return self.data

    def _parsed(self) -> dict[str, Any]:
        if self._value is None:
            self._value = json.loads(self.data)
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())


def _cursor_index(cursor: Any, digest: str, entries: int) -> int:
    """The entry index a cursor names (None: the first)."""
    if cursor is None:
        return 0
    index, _, mark = cursor.partition(".") if isinstance(cursor, str) else ("", "", "")
    if not index.isdigit() or len(index) > 12 or mark != digest or int(index) > entries:
        raise InvalidArgument(
            f"cursor {str(cursor)[:40]!r} is not one q_get_result gave for this result; "
            "start with cursor null",
            key="cursor",
        )
    return int(index)


__all__ = ["CURSOR_DIGEST", "EXPIRED_EVENT", "Results"]
