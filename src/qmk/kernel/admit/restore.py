"""A job queued anew (``q_restore``): a submit's checks made again, for the session that
restores it.

A restored job was admitted once, but the session that queues it again may hold other
capabilities, the machine may have fewer modules up and its tenant's quotas and queue
may be fuller: :func:`readmit` checks them again as
:meth:`~qmk.kernel.admit.admission.Admission.admit` does. The kernel imports this module
at the first restore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmk.kernel.admit.admission import target_named
from qmk.kernel.admit.faults import spans
from qmk.qvm.verify import operations

if TYPE_CHECKING:
    from qmk.kernel.admit.admission import Admission
    from qmk.kernel.records.jobs import Job
    from qmk.kernel.security.sessions import Session


async def readmit(admission: Admission, session: Session, job: Job) -> None:
    """The checks of :meth:`~qmk.kernel.admit.admission.Admission.admit` again, for
    ``job`` queued anew by ``session`` (a restore): its capabilities against the
    session's (audited), the firewall, the machine, the quotas and the queue room. The
    job runs with the session's caps.

    Raises:
        CapabilityError, FirewallError, AdmissionError, QuotaError: as a submit's.
    """
    entry = target_named(job.request.target)
    program = (await admission.read(job.tenant, job.graph, target=entry.name)).program
    shots = job.request.shots
    if entry.program != "qvm":  # no logical qubits, no firewall
        from qmk.kernel.admit.own import readmit_own

        readmit_own(admission, session, job, program, entry)
        return
    quotas = admission.quotas
    quotas.check_priority(job.tenant, job.priority)
    admission._check_caps(session, program.required_caps, "restore")
    qubits = admission._firewall(job.graph, program, job.tenant, job.policy.channels)
    quotas.check_work(job.tenant, operations(program), program.counts.measurements, shots)
    spanning = spans(job, admission.device)
    if job.request.machine is None and job.footprint is None and not spanning:
        # it never had its schedule: it arrives at the shared machine anew
        job.footprint = await admission._compiled(
            job.tenant, job.graph, program, job.request, entry
        )
    footprint = None if spanning else job.footprint
    quotas.check_room(job.physical_qubits, qubits, spanning=spanning, footprint=footprint)
    if job.state != "QUEUED":
        quotas.check_queue_room(job.tenant)
    job.caps = session.caps


__all__ = ["readmit"]
