"""A tenant's limits at admission: its priority cap, room on the machine, room in the
queue, the work of one job, and the rate at which it may submit graph nodes.

Every submit, replay and restore passes these checks (:mod:`~qmk.kernel.admit.admission`
calls them), each refusal a :class:`~qmk.errors.QuotaError` or
:class:`~qmk.errors.AdmissionError` naming the limit and the key that sets it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from qmk.errors import REGISTRY, AdmissionError, ProgramError, QuotaError
from qmk.execution.footprint import record_bytes
from qmk.kernel.errors import MachineError
from qmk.qvm.codes import BY_NAME
from qmk.qvm.graph import GraphText, json_rows
from qmk.rate import TokenBucket

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.kernel.admit.scheduler import FairQueue
    from qmk.kernel.clock import Clock
    from qmk.kernel.config import KernelConfig
    from qmk.kernel.device import LogicalMachine
    from qmk.kernel.machine.spec import MachineSpec
    from qmk.kernel.storage.results import Results

_UNREADABLE = BY_NAME["unreadable-file"].code
_UNPLACEABLE = REGISTRY.named(MachineError, "unplaceable").code
#: The share of a worker's memory cap a state (and its working copy) may take; the rest
#: is the worker's own (Python, numpy, stim).
WORKER_STATE_SHARE = 0.75


class Quotas:
    """A tenant's limits at admission (module docstring), with the rate buckets they keep.

    Args:
        config: the kernel configuration (its tenants' quotas, the machine).
        queue: the run queue (for ``max_queued_jobs``).
        clock: the kernel's clock (the verification rate's).
        device: the machine, whose largest module up bounds a job's physical qubits.
        results: the stored results (a tenant at its ``max_result_storage_mb`` queues
            nothing more: its job would run and then FAIL with ``QK307``).
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        queue: FairQueue,
        clock: Clock,
        device: LogicalMachine,
        results: Results | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.clock = clock
        self.device = device
        self.results = results
        #: How many of a tenant's queued jobs wait on the shared machine for their
        #: schedule (set by the kernel: :mod:`~qmk.kernel.running.shared_machine`), for
        #: ``max_queued_jobs``.
        self.machine_holds: Callable[[str], int] = lambda tenant: 0
        #: The shared machine's floorplan, for a refusal (set by the kernel to its
        #: machine's; None: derived here from the config when one is refused)
        self.machine: MachineSpec | None = None
        self._verify_rates: dict[str, TokenBucket] = {}  # graph nodes per second, per tenant

    def check_priority(self, tenant: str, priority: int) -> None:
        """``priority`` is within the tenant's ``max_priority``."""
        limit = self.config.tenants[tenant].max_priority
        if priority > limit:
            raise QuotaError(
                f"priority {priority} is above tenant {tenant!r}'s max_priority {limit}",
                limit="max_priority",
                value=limit,
            )

    def check_room(
        self,
        physical: int,
        qubits: Mapping[str, int],
        *,
        spanning: bool = False,
        footprint: Footprint | None = None,
    ) -> None:
        """The job fits the machine's largest module up (the modules up together, for a
        job that spans them), and each tenant's quota.

        A job the shared machine is to place (its ``footprint`` of tiles) is refused
        with the floorplan's answer (:func:`qmk.kernel.machine.hold.to_hold`):
        the least ``physical_qubits`` whose floorplan holds its tiles (and a T factory,
        for its T states) in a module of its peak physical qubits, the number the
        machine's own refusal (``QK501``) names, so a user who raises the machine to it
        is not refused again."""
        total = self.device.largest_module_up  # a job runs on one module ...
        if spanning:  # ... or, teleported, on all of them
            total = sum(self.device.capacities[m] for m in self.device.modules_up)
        if physical > total:
            where = (
                "the machine has"
                if len(self.device.capacities) == 1
                else "its modules up have"
                if spanning
                else "its largest module up has"
            )
            message = f"the job needs {physical} physical qubits at its peak; {where} {total}"
            if footprint is not None and footprint.tiles > 0:
                if self.machine is None:
                    from qmk.kernel.machine.derive import config_machine

                    self.machine = config_machine(self.config)
                raise _too_big_for_floorplan(
                    self.config, self.machine, message, physical, footprint
                )
            raise AdmissionError(message, needed=physical, total=total)
        for name, count in qubits.items():
            self.check_qubits(name, count)

    def check_qubits(self, tenant: str, count: int) -> None:
        """``count`` logical qubits of ``tenant`` held at once are within its
        ``max_logical_qubits``."""
        limit = self.config.tenants[tenant].max_logical_qubits
        if count > limit:
            raise QuotaError(
                f"the job holds {count} logical qubits of tenant {tenant!r} at once; its "
                f"max_logical_qubits is {limit}",
                limit="max_logical_qubits",
                tenant=tenant,
                needed=count,
                value=limit,
            )

    def check_work(self, tenant: str, operations: int, measurements: int, shots: int) -> None:
        """One job's work, from its program's numbers counted folded, before it is queued.

        Its ``operations`` (unrolled, one run's) x ``shots`` are within the tenant's
        ``max_job_operations``. Its measurement record
        (:func:`~qmk.execution.footprint.record_bytes`) fits the
        :data:`WORKER_STATE_SHARE` of a worker's memory cap. So a 27-byte stim
        ``REPEAT`` of 10^9 measurements is refused here, not after its worker ran out of
        memory.

        Raises:
            QuotaError: past ``max_job_operations`` (``details.limit``, ``needed``,
                ``value``).
            AdmissionError: its record could never fit a worker (``needed``, ``total``:
                bytes).
        """
        limit = self.config.tenants[tenant].max_job_operations
        work = operations * shots
        if work > limit:
            raise QuotaError(
                f"the job runs {work} operations ({operations} unrolled x {shots} shots); "
                f"tenant {tenant!r} has max_job_operations = {limit}",
                limit="max_job_operations",
                needed=work,
                value=limit,
            )
        record = record_bytes(measurements, shots)
        budget = int(self.config.worker_memory_mb * 2**20 * WORKER_STATE_SHARE)
        if record > budget:
            raise AdmissionError(
                f"the job's measurement record ({measurements} bits a shot x {shots} shots) "
                f"takes {record} bytes in a worker; a worker holds {budget} "
                f"({self.config.worker_memory_mb} MiB, kernel.worker_memory_mb)",
                needed=record,
                total=budget,
            )

    def check_queue_room(self, tenant: str) -> None:
        """Room for one more queued job of ``tenant`` (submits and restores alike).

        Raises:
            QuotaError: ``max_queued_jobs`` of its jobs are waiting already, or its
                stored results fill its ``max_result_storage_mb`` (the job's result could
                not be kept: it would run for nothing).
        """
        if self.results is not None:
            used, room = self.results.usage[tenant], self.results.limit_bytes(tenant)
            if used >= room:
                raise QuotaError(
                    f"tenant {tenant!r} stores {used} bytes of results and may store {room} "
                    "(max_result_storage_mb): a new job's result could not be kept; wait "
                    "for results to expire (result_keep_s)",
                    limit="max_result_storage_mb",
                    value=room,
                )
        limit = self.config.tenants[tenant].max_queued_jobs
        if self.queue.count(tenant) + self.machine_holds(tenant) >= limit:
            raise QuotaError(
                f"tenant {tenant!r} already has {limit} queued jobs "
                "(max_queued_jobs); wait for some to start",
                limit="max_queued_jobs",
                value=limit,
            )

    def charge(self, tenant: str, nodes: int) -> None:
        """Take ``nodes`` from ``tenant``'s verification rate (its bucket holds
        ``max(max_graph_nodes, verify_nodes_per_s)`` nodes and gains
        ``verify_nodes_per_s`` a second of the kernel's clock; a changed config applies
        to the next charge).

        Raises:
            QuotaError: the bucket holds fewer than ``nodes``; ``details.retry_after_s``
                says when it will hold them (nothing is taken).
        """
        rate = self.config.tenants[tenant].verify_nodes_per_s
        burst = max(float(self.config.max_graph_nodes), rate)
        now = self.clock.now()
        bucket = self._verify_rates.get(tenant)
        if bucket is None:
            bucket = self._verify_rates[tenant] = TokenBucket(rate=rate, burst=burst, now=now)
        elif (bucket.rate, bucket.burst) != (rate, burst):
            bucket.level(now)
            bucket.rate, bucket.burst = rate, burst
            bucket.tokens = min(bucket.tokens, burst)
        wait = bucket.take(now, nodes)
        if wait:
            raise QuotaError(
                f"tenant {tenant!r} submits graphs faster than its verify_nodes_per_s "
                f"({rate:g} nodes a second); this one has {nodes} nodes: retry in "
                f"{wait:.3g} s",
                limit="verify_nodes_per_s",
                value=rate,
                needed=nodes,
                retry_after_s=round(wait, 3),
            )

    def check_size(self, graph: Any) -> int:
        """The graph's stored rows (a REPEAT row's body rows counted once), within
        ``max_graph_nodes``."""
        if isinstance(graph, GraphText):
            count = graph.nodes
        elif not isinstance(graph, Mapping):
            raise ProgramError("graph must be a QVM JSON object", code=_UNREADABLE)
        else:
            program = graph.get("program")
            nodes = program.get("nodes") if isinstance(program, Mapping) else None
            count = json_rows(nodes) if isinstance(nodes, list) else 0
            blocks = program.get("blocks") if isinstance(program, Mapping) else None
            count += json_rows(blocks) if isinstance(blocks, list) else 0  # stored once each
        limit = self.config.max_graph_nodes
        if count > limit:
            raise QuotaError(
                f"the graph stores {count} rows; a submit may store at most {limit} "
                "(kernel.max_graph_nodes)",
                limit="max_graph_nodes",
                value=limit,
            )
        return count


def _too_big_for_floorplan(
    config: KernelConfig, machine: MachineSpec, message: str, physical: int, footprint: Footprint
) -> AdmissionError:
    """The refusal of a job past a module's physical qubits that the shared machine
    would place: the machine's ``QK501``, naming the least ``physical_qubits`` that
    holds its tiles (and a factory) in a module of ``physical`` qubits or more."""
    table = config.machine
    factory = footprint.t_states > 0
    from qmk.kernel.machine.hold import to_hold  # a refusal's rule, where one is written

    fix, least = to_hold(machine, footprint.tiles, factory=factory, module_qubits=physical)
    return AdmissionError(
        message + fix,
        code=_UNPLACEABLE,
        needed=least if least is not None else physical * table.modules,
        total=table.physical_qubits,
        tiles=footprint.tiles,
        t_states=footprint.t_states,
    )
