"""How a wire reads a kernel beyond its syscalls: the probe's contract and its JSON.

:class:`KernelProbe` is what the HTTP and gRPC layers (and the socket's event hub,
:mod:`qmk.abi.events`) read of a kernel: its events as they are written, its load, the
tail of its audit log. The kernel implements it (:class:`qmk.kernel.observe.KernelObserver`),
as it implements :mod:`qmk.abi.protocol`, so the wire layer never imports the kernel. The
values it hands are :mod:`qmk.abi.probe`'s, which the kernel makes for every audit line;
this module is the readers' side, and a kernel of plain jobs never loads it. It holds too
the forms a reader asks for: a snapshot as JSON and back (``q_kernel_load``, the metrics
of a gateway), a tenant's last records (``q_audit``), QMK's version.

>>> snap = KernelSnapshot(jobs={}, queued={}, workers=1, busy_workers=0, audit_seq=0,
...     physical_qubits_total=10, physical_qubits_in_use=0, epoch=0, started_at=0.0)
>>> snapshot_from_json(snapshot_json(snap, str)) == snap
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from qmk.abi.probe import KernelEvent, KernelSnapshot, MachineFacts, WorkerTraces

T = TypeVar("T")


def last_records(
    recent: deque[KernelEvent],
    tenant: str,
    job_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The records of ``tenant``'s last ``limit`` events among ``recent`` (``job_id``'s
    only), oldest first: ``q_audit``'s answer, wherever the kept events are."""
    found: list[dict[str, Any]] = []
    for event in reversed(recent):
        if event.tenant != tenant or (job_id is not None and event.job_id != job_id):
            continue
        found.append(dict(event.record))
        if len(found) >= limit:
            break
    found.reverse()
    return found


def snapshot_json(snap: KernelSnapshot, label: Callable[[str], str]) -> dict[str, Any]:
    """``snap`` as plain JSON (``q_kernel_load``), each tenant shown as ``label`` gives
    it: ``jobs`` as ``[[state, tenant, count], ...]``, the machine's facts as an object.

    >>> snap = KernelSnapshot(jobs={("QUEUED", "alice"): 2}, queued={"alice": 2}, workers=2,
    ...     busy_workers=0, audit_seq=9, physical_qubits_total=10, physical_qubits_in_use=0,
    ...     epoch=1, started_at=0.0)
    >>> data = snapshot_json(snap, str.upper)
    >>> data["jobs"], data["queued"]
    ([['QUEUED', 'ALICE', 2]], {'ALICE': 2})
    >>> snapshot_from_json(snapshot_json(snap, str)) == snap
    True
    """
    by_tenant = ("queued", "result_storage_bytes", "result_storage_limit_bytes")
    data: dict[str, Any] = {}
    for name in KernelSnapshot.__dataclass_fields__:
        value = getattr(snap, name)
        if name == "jobs":
            value = sorted(
                [state, label(tenant), count] for (state, tenant), count in value.items()
            )
        elif name in by_tenant:
            value = {label(tenant): count for tenant, count in sorted(value.items())}
        elif name == "machine" and value is not None:
            facts = {key: getattr(value, key) for key in MachineFacts.__dataclass_fields__}
            facts["tenant_shares"] = {label(t): v for t, v in value.tenant_shares.items()}
            facts["jobs"], facts["utilization"] = dict(value.jobs), dict(value.utilization)
            value = facts
        elif name == "server_restarts":
            value = dict(sorted(value.items()))
        data[name] = value
    return data


def snapshot_from_json(data: Mapping[str, Any]) -> KernelSnapshot:
    """The snapshot of :func:`snapshot_json`'s JSON (its tenants as they were shown)."""
    fields = {k: v for k, v in data.items() if k in KernelSnapshot.__dataclass_fields__}
    fields["jobs"] = {(state, tenant): count for state, tenant, count in data["jobs"]}
    if data.get("machine") is not None:
        fields["machine"] = MachineFacts(**data["machine"])
    return KernelSnapshot(**fields)


def version() -> str:
    """QMK's version, as the installed package's metadata has it (read from
    ``qmk.__version__`` at install; this layer may not import ``qmk`` itself)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("quantum-microkernel")
    except PackageNotFoundError:
        return "unknown"


class KernelProbe(Protocol):
    """What the HTTP layer reads of the kernel beside the syscalls."""

    #: Every job state, in lifecycle order, and those that are final.
    states: tuple[str, ...]
    final_states: tuple[str, ...]
    #: The artifacts a device job can stream (the keys of its policy's ``stream``).
    stream_names: tuple[str, ...]

    def listen(
        self, callback: Callable[[KernelEvent], None], *, kept: bool = False
    ) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns the call that stops it.
        ``kept``: once the event's audit line is written and committed (a live stream's,
        whose cursor must never name a line a crash takes back), else at once."""
        ...

    def snapshot(self) -> KernelSnapshot:
        """The kernel's load now."""
        ...

    def audit_tail(self, limit: int) -> list[KernelEvent]:
        """The last ``limit`` records of the audit log as written (oldest first)."""
        ...

    def trace_workers(self, traces: WorkerTraces | None) -> None:
        """Carry trace context into the kernel's workers and their spans back to
        ``traces`` (None: stop)."""
        ...

    @property
    def max_graph_nodes(self) -> int:
        """The most nodes a submitted graph may have (``kernel.max_graph_nodes``)."""
        ...

    def session_tenant(self, session_id: str) -> str:
        """The tenant of a valid session, checked before any of a request's work (its
        body is not yet read).

        Raises:
            SessionError, AuthError: the session is unknown, expired or revoked.
        """
        ...

    async def lower(
        self, tenant: str, work: Callable[[], T], *, what: str = "reading program text"
    ) -> tuple[T, float]:
        """``work()`` (reading and lowering a program, decoding a big request) off the
        event loop: its answer and the CPU seconds it took, which the caller charges
        (:meth:`charge`) once the request it feeds is answered (work that raises is
        charged at once).

        Raises:
            QuotaError: the tenant's CPU budget is spent (``retry_after_s``), before the
                work (the refusal names ``what``).
        """
        ...

    def charge(self, tenant: str, seconds: float) -> None:
        """Charge ``seconds`` of CPU to ``tenant``'s budget."""
        ...


__all__ = ["KernelProbe", "last_records", "snapshot_from_json", "snapshot_json", "version"]
