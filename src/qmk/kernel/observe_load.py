"""The kernel's load and its audit log's tail as its observer reads them
(:class:`~qmk.kernel.observe.KernelObserver`): at a metrics scrape, ``q_kernel_load``
or ``q_audit`` before the feed listens, never on a job's path, so loaded at the first.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from qmk.abi.probe import KernelSnapshot


def _free_bytes(path: Any) -> int | None:
    """Bytes an unprivileged writer may still use on ``path``'s disk (None: unknown)."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return int(stats.f_bavail * stats.f_frsize)


def snapshot(kernel: Any) -> KernelSnapshot:
    """The load now of ``kernel`` (open; :class:`qmk.kernel.service.Kernel`): jobs by state
    and tenant, queue, workers, audit chain."""
    supervisor = kernel.supervisor
    jobs: Counter[tuple[str, str]] = Counter(
        (job.state, job.tenant) for job in list(supervisor.jobs.values())
    )
    waiting = list(supervisor.queue)
    queued: Counter[str] = Counter(job.tenant for job in waiting)
    oldest = min((float(job.created_at) for job in waiting), default=None)
    results = supervisor.results
    tenants = sorted(set(kernel.config.tenants) | {t for t, n in results.usage.items() if n})
    data = kernel.data
    pool = kernel.pool
    dask = isinstance(getattr(pool, "known_workers", None), int)
    return KernelSnapshot(
        jobs=dict(jobs),
        queued=dict(queued),
        workers=int(supervisor.workers),
        busy_workers=len(supervisor.running),
        audit_seq=int(kernel.audit.seq),
        physical_qubits_total=int(kernel.device.inventory().physical_qubits_up),
        physical_qubits_in_use=int(supervisor.physical_in_use),
        epoch=int(supervisor.epoch),
        started_at=float(kernel.started_at),
        oldest_queued_s=0.0 if oldest is None else max(kernel.clock.now() - oldest, 0.0),
        data_disk_free_bytes=_free_bytes(kernel.data_dir),
        data_disk_reserve_bytes=int(kernel.config.min_free_disk_mb) * 2**20,
        result_storage_bytes={t: int(results.usage[t]) for t in tenants},
        result_storage_limit_bytes={t: results.limit_bytes(t) for t in tenants},
        audit_chain_problems=0 if data is None else len(data.accepted),
        dask_workers=int(pool.known_workers) if dask else None,
        workers_lost=int(pool.lost_workers) if dask else 0,
        machine=supervisor.machine.facts(),
        server_restarts={} if kernel.server_restarts is None else kernel.server_restarts(),
        **_webhooks(kernel),
    )


def _webhooks(kernel: Any) -> dict[str, Any]:
    """The billing outbox's backlog, oldest wait and dead letters (none configured,
    or not yet running: no backlog to show)."""
    outbox = kernel.outbox
    if outbox is None:
        return {}
    pending, oldest, dead = outbox.rows.backlog()
    now = kernel.clock.now()
    return {
        "webhook_backlog": pending,
        "webhook_oldest_s": 0.0 if oldest is None else max(now - oldest, 0.0),
        "webhook_dead_letters": dead,
    }


def audit_records(path: str | os.PathLike[str], limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` records of the audit log file at ``path`` (oldest first); its
    lines that do not read as JSON objects are skipped, and an unreadable file has none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            back = min(size, 4096 * max(limit, 1))
            handle.seek(size - back)
            data = handle.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if back < size:
        lines = lines[1:]  # the first is cut
    records = []
    for line in lines[-limit - 1 :]:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records[-limit:]


__all__ = ["audit_records", "snapshot"]
