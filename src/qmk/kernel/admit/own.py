"""Jobs of a target that reads its own program (:attr:`TargetSpec.program` is not
``"qvm"``: the neutral-atom device's wire-form job, a stim circuit, a QVM program compiled
onto the device): read, compiled and admitted by their target, in a thread charged to the
tenant, with their own quotas (``max_atoms``, ``max_device_time_s``, the artifacts').

:class:`~qmk.kernel.admit.admission.Admission` imports this at the first such program
(read, admitted, compiled or restored): a kernel of QVM jobs does not hold it. These are
admission's own steps, so they use its parts (its quotas, CPU budget, run request and
job) as its methods do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qmk.errors import REGISTRY, AdmissionError, ProgramError, QMKError, QuotaError
from qmk.execution import targets
from qmk.kernel.records.programs import UNREADABLE, graph_text
from qmk.qvm.graph import GraphText
from qmk.qvm.limits import Limits

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.execution.request import Policy, RunRequest
    from qmk.execution.targets import TargetSpec
    from qmk.kernel.admit.admission import Admission, Allowed, Read
    from qmk.kernel.records.jobs import Job
    from qmk.kernel.security.sessions import Session


async def read_own(
    admission: Admission, tenant: str, graph: Any, entry: TargetSpec
) -> tuple[str, Any]:
    """A program of a target that reads its own (the neutral-atom device's job, or a
    QVM graph to compile onto it), read by that target in a thread charged to
    ``tenant``.

    Its JSON is decoded, and its items are held within ``max_graph_nodes`` before any
    is built. So a job of a million positions is refused before it is built. A stim
    circuit's qubits are held to the tenant's ``max_logical_qubits`` as stim parses it,
    before it is read into rows. Its text is kept as what is stored."""
    if not isinstance(graph, str | Mapping):
        raise ProgramError(f"a {entry.name} job's program must be a JSON object", code=UNREADABLE)
    target = targets.get(entry.name)
    # REPEAT rows: stored rows within the cap; a target that reads them unrolled here,
    # in the kernel (the device's), within the cap too (stim's keeps them folded)
    cap = admission.config.max_graph_nodes
    limits = Limits(max_nodes=cap, max_unrolled_nodes=min(cap, admission.config.max_unrolled_nodes))

    def work() -> tuple[str, Any]:
        if isinstance(graph, str) or type(graph) is GraphText:
            text = graph if isinstance(graph, str) else graph.text
            data = json.loads(text)
        else:
            text, data = None, graph
        if not isinstance(data, Mapping):
            raise ProgramError(
                f"a {entry.name} job's program must be a JSON object", code=UNREADABLE
            )
        try:
            if entry.program == "stim-circuit":  # its qubits, before it is read into rows
                from qmk.execution.stim_target import named_qubits

                qubits = named_qubits(data)
                if qubits is not None:
                    admission.quotas.check_qubits(tenant, qubits)
            program = target.read(data, limits=limits)
        except QuotaError:
            raise
        except QMKError as exc:
            raise ProgramError(exc.message, code=exc.code, **exc.details) from None
        return (graph_text(data) if text is None else text), program

    return await admission.cpu.run(tenant, work)


async def admit_own(
    admission: Admission,
    session: Session,
    read: Read,
    shots: int,
    seed: Any,
    policy: Policy,
    options: Mapping[str, Any],
    entry: TargetSpec,
    allowed: list[Allowed] | None = None,
) -> Job:
    """Admit a job whose program is not a QVM graph (:attr:`TargetSpec.program`: the
    neutral-atom device's wire-form job, or a QVM program to compile onto it),
    through its target.

    In order: the capabilities the program needs (an audited decision: a device
    job's ``CAP_DEVICE_NA``), then the priority. Then its target compiles the job in
    a thread charged to the tenant: parsed, validated and scheduled on the device. A
    job it would refuse is refused now, with its code; a tenant names shipped presets
    only. A stim circuit's quotas are checked before it is compiled (written as a stim
    circuit: seconds on a wide one), from its verified totals: its qubits against
    ``max_logical_qubits``, its work (:meth:`~qmk.kernel.admit.quotas.Quotas.check_work`:
    operations x shots, its measurement record). Then the quotas from a device job's
    footprint: its work likewise, ``max_atoms`` (the atoms it holds),
    ``max_device_time_s`` (its scheduled time times its shots), ``max_queued_jobs``,
    and the artifact storage of a job that streams.

    Raises:
        CapabilityError: the session lacks a capability the program needs.
        ProgramError: its target refuses the program (``details.code``: its code).
        QuotaError: over ``max_atoms``, ``max_device_time_s``, ``max_queued_jobs`` or
            the artifact storage.
    """
    tenant = session.tenant
    text, program = read.text, read.program
    admission._check_caps(session, program.required_caps, "submit", allowed)
    admission.quotas.check_priority(tenant, policy.priority)
    if entry.program == "stim-circuit":  # its verified totals, before it is written
        work = program.work  # its qubits are logical: the tenant's
        admission.quotas.check_qubits(tenant, work.qubits)
        admission.quotas.check_work(tenant, work.operations, work.measurements, shots)
        from qmk.execution.stim_target import least_result_bytes

        _check_result(admission.config.max_result_bytes, least_result_bytes(program, options))
    request = admission._run_request(text, entry, options, shots, seed, policy)
    footprint = await compile_own(admission, tenant, program, request, entry)
    if entry.program != "stim-circuit":  # a device's: its numbers are its schedule's
        admission.quotas.check_work(tenant, footprint.operations, footprint.measurements, shots)
    _check_device_quota(admission.config.tenants[tenant], tenant, footprint, request.shots)
    admission.quotas.check_queue_room(tenant)
    streams = entry.streams and options.get("stream")
    artifacts = admission.artifacts() if streams and admission.artifacts is not None else None
    if artifacts is not None and artifacts.full(tenant):
        raise QuotaError(
            f"tenant {tenant!r} stores {artifacts.usage[tenant]} bytes of "
            f"artifacts and may store {artifacts.limit_bytes(tenant)} "
            "(max_artifact_storage_mb): a job's streams could not be kept; wait for "
            "artifacts to expire (artifact_keep_s)",
            limit="max_artifact_storage_mb",
            value=artifacts.limit_bytes(tenant),
        )
    job = admission._job(session, text, program, request, 0, {}, False)
    job.footprint = footprint
    return job


async def compile_own(
    admission: Admission, tenant: str, program: Any, request: RunRequest, entry: TargetSpec
) -> Footprint:
    """The footprint of ``program`` compiled by ``entry``'s target for ``request``, in a
    thread charged to ``tenant``; what the target refuses is a ``ProgramError`` with its
    code."""

    def work() -> Footprint:
        try:
            return targets.get(entry.name).compile(program, request).footprint
        except QMKError as exc:
            raise ProgramError(exc.message, code=exc.code, **exc.details) from None

    footprint: Footprint = await admission.cpu.run(tenant, work)
    return footprint


def readmit_own(
    admission: Admission, session: Session, job: Job, program: Any, entry: TargetSpec
) -> None:
    """:func:`~qmk.kernel.admit.restore.readmit` of a job of ``entry``'s
    (its ``program`` read again): no logical qubits, no firewall; the priority, the
    capabilities (audited), its target's numbers as admit checked them and the queue
    room."""
    shots = job.request.shots
    admission.quotas.check_priority(job.tenant, job.priority)
    admission._check_caps(session, program.required_caps, "restore")
    if job.footprint is not None:  # its target's numbers, as admit checked them
        fp = job.footprint
        if entry.program == "stim-circuit":
            admission.quotas.check_qubits(job.tenant, fp.logical_qubits)
        admission.quotas.check_work(job.tenant, fp.operations, fp.measurements, shots)
    if job.state != "QUEUED":
        admission.quotas.check_queue_room(job.tenant)
    job.caps = session.caps


def _check_result(limit: int, least: int) -> None:
    """A job whose result takes at least ``least`` bytes of JSON could be kept within
    ``limit`` (``kernel.max_result_mb``:
    :attr:`~qmk.kernel.config.KernelTable.max_result_bytes`, which its worker holds the
    result to).

    Raises:
        AdmissionError: it could not: ``QK305 result-too-large``, the code its worker
            would end it with, at submit rather than after it ran (``needed``,
            ``total``: bytes).
    """
    if least > limit:
        from qmk.kernel.errors import JobError

        raise AdmissionError(
            f"the job's result takes at least {least} bytes of JSON; the kernel keeps "
            f"at most {limit} per job (kernel.max_result_mb)",
            code=REGISTRY.named(JobError, "result-too-large").code,
            needed=least,
            total=limit,
        )


def _check_device_quota(conf: Any, tenant: str, footprint: Any, shots: int) -> None:
    """A device job's footprint within the tenant's ``max_atoms`` (the atoms it holds)
    and ``max_device_time_s`` (its scheduled time times its shots)."""
    atoms = footprint.physical_qubits
    if atoms > conf.max_atoms:
        raise QuotaError(
            f"the job allocates {atoms} atoms; tenant {tenant!r} has max_atoms = {conf.max_atoms}",
            limit="max_atoms",
            needed=atoms,
            value=conf.max_atoms,
        )
    device_s = footprint.duration_ns * 1e-9 * shots
    if device_s > conf.max_device_time_s:
        raise QuotaError(
            f"the job takes {device_s:.6g} s of device time "
            f"({footprint.duration_ns / 1000:g} us x {shots} shots); tenant {tenant!r} "
            f"has max_device_time_s = {conf.max_device_time_s:g}",
            limit="max_device_time_s",
            needed=device_s,
            value=conf.max_device_time_s,
        )


__all__ = ["admit_own", "compile_own", "read_own", "readmit_own"]
