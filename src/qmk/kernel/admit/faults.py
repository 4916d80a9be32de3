"""Failure handling: where a job runs (placement on a module), and the fault policies
applied at each start of a job on a faulty machine, with the record of what they did
(:class:`FaultPolicies`).

What the policies change in a start's run request is
:func:`qmk.kernel.admit.adjusted.adjust`'s (ingest, drift, link, in that order). An
attempt that resumes from a checkpoint keeps that checkpoint's physics
(:mod:`qmk.kernel.admit.resumed`, imported at the first such attempt).

**Computed once where nothing changed.** Accepting a job asks the policies for the run
it would start now (the result cache's look-up, :meth:`FaultPolicies.foresee`); its
start reuses that answer (:class:`Foreseen`) when nothing
:func:`~qmk.kernel.admit.adjusted.adjust` reads has changed since: the same request (its
machine schedule aside, which no policy reads), the same physical qubits, no calibration
ingested, and the same fault schedule at both epochs (no drift at either, the same link
fidelity). Otherwise the start computes it again. The same test lets the next job of the
same program take the last job's answer when its request is that job's but for the seed,
which :func:`~qmk.kernel.admit.adjusted.adjust` never reads (a client's many seeds of
one run: :meth:`FaultPolicies.foresee`).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from typing import Any, Union

import msgspec
from msgspec.structs import replace

from qmk.errors import QMKError
from qmk.execution.request import RunRequest
from qmk.kernel.admit.adjusted import Adjusted, adjust
from qmk.kernel.config import KernelConfig
from qmk.kernel.device import LogicalMachine
from qmk.kernel.errors import error_json
from qmk.qvm.limits import Limits


def device_for(config: KernelConfig) -> LogicalMachine:
    """The simulated logical machine of a kernel configuration."""
    machine = config.machine
    return LogicalMachine(
        physical_qubits=machine.physical_qubits,
        modules=machine.modules,
        profile=machine.profile,
        qubit=machine.qubit,
        noise_model=machine.noise_model,
        calibration=machine.calibration,
        faults=config.faults,
    )


# --------------------------------------------------------------------------- placement


def spans(job: Any, device: LogicalMachine) -> bool:
    """Whether ``job`` was admitted over several modules: its program was rewritten by
    :func:`~qmk.kernel.admit.teleport.span` and it is larger than any module (so it can
    only run over several, holding every module up: :class:`Placement`)."""
    return job.physical_qubits > max(device.capacities)


class Placement:
    """Which module each running job holds, and how full each module is.

    A job is placed on one module that is up and has room for its peak physical qubits
    (the one with the most room; the lowest id among equals). A job that spans modules
    (admitted over several, its cross-module gates teleported: :mod:`qmk.kernel.admit.teleport`)
    holds every module up, and starts when they are all idle.
    """

    def __init__(self, device: LogicalMachine) -> None:
        self.device = device
        self.module_of: dict[str, int] = {}
        #: The modules each spanning job holds (its ``module_of`` is the first).
        self.spanning: dict[str, tuple[int, ...]] = {}
        self.used: Counter[int] = Counter()
        #: Syndrome bits per second of each placed job (the device's decoder load).
        self.load: dict[str, float] = {}

    def _span_fits(self, physical: int) -> tuple[int, ...] | None:
        up = self.device.modules_up
        if (
            all(self.used[m] == 0 for m in up)
            and sum(self.device.capacities[m] for m in up) >= physical
        ):
            return up
        return None

    def choose(self, physical: int) -> int | None:
        best, room = None, -1
        for module, capacity in enumerate(self.device.capacities):
            free = capacity - self.used[module]
            if module not in self.device.down and free >= physical and free > room:
                best, room = module, free
        return best

    def fits(self, job: Any) -> bool:
        if spans(job, self.device):
            return self._span_fits(job.physical_qubits) is not None
        return self.choose(job.physical_qubits) is not None

    def place(self, job: Any) -> bool:
        """Reserve room for ``job`` where :meth:`fits` finds it (one choice for both);
        False, and nothing reserved, where it does not fit."""
        if spans(job, self.device):
            if self._span_fits(job.physical_qubits) is None:
                return False
            self.reserve(job)
            return True
        module = self.choose(job.physical_qubits)
        if module is None:
            return False
        self.module_of[job.job_id] = module
        self.used[module] += job.physical_qubits
        return True

    def reserve(self, job: Any) -> None:
        if spans(job, self.device):
            held = self._span_fits(job.physical_qubits)
            assert held, "reserve() after fits()"
            self.spanning[job.job_id] = held
            self.module_of[job.job_id] = held[0]
            for m in held:  # each module whole: nothing else runs beside it
                self.used[m] += self.device.capacities[m]
            return
        module = self.choose(job.physical_qubits)
        assert module is not None, "reserve() after fits()"
        self.module_of[job.job_id] = module
        self.used[module] += job.physical_qubits

    def release(self, job: Any) -> None:
        held = self.spanning.pop(job.job_id, None)
        module = self.module_of.pop(job.job_id, None)
        if held is not None:
            for m in held:
                self.used[m] -= self.device.capacities[m]
        elif module is not None:
            self.used[module] -= job.physical_qubits
        self.load.pop(job.job_id, None)

    def room(self, job: Any) -> int:
        """Physical qubits ``job`` may grow to on its module (its modules, spanning)."""
        held = self.spanning.get(job.job_id)
        if held is not None:
            return sum(self.device.capacities[m] for m in held)
        module = self.module_of[job.job_id]
        return self.device.capacities[module] - self.used[module] + job.physical_qubits

    def resize(self, job: Any, physical: int) -> None:
        if job.job_id not in self.spanning:  # a spanning job holds its modules whole
            self.used[self.module_of[job.job_id]] += physical - job.physical_qubits

    def jobs_on(self, module: int) -> list[str]:
        return [
            job_id
            for job_id, m in self.module_of.items()
            if m == module or module in self.spanning.get(job_id, ())
        ]

    @property
    def decoder_load(self) -> float:
        return sum(self.load.values())


# --------------------------------------------------------------------------- the starts


class Foreseen(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """:func:`~qmk.kernel.admit.adjusted.adjust`'s answer for a job when it was accepted
    (:meth:`FaultPolicies.foresee`), and what that answer depends on, for its start to
    reuse (module docstring). A struct, not a frozen dataclass: one is made for every job
    accepted, ten times faster; never tracked by the collector (``gc=False``), as a
    queued job holds one: it holds no cycle, its parts refer to nothing of the kernel's."""

    given: RunRequest
    epoch: int
    calibrations: int
    physical_qubits: int
    request: RunRequest
    adjusted: Adjusted

    def holds(
        self,
        request: RunRequest,
        job: Any,
        device: LogicalMachine,
        epoch: int,
        *,
        any_seed: bool = False,
    ) -> bool:
        """Whether :func:`~qmk.kernel.admit.adjusted.adjust` of ``request`` for ``job`` on
        ``device`` at ``epoch`` is this answer (with ``request``'s machine schedule;
        ``any_seed``: and its seed, which adjust reads nothing of): nothing it reads
        changed."""
        if device.calibrations != self.calibrations or job.physical_qubits != self.physical_qubits:
            return False
        faults = device.faults
        # with no drift and no link loss over epochs, every epoch's figures are epoch 0's
        if faults.drift_per_epoch or faults.link_drop_per_epoch:
            same = epoch == self.epoch  # then the epoch's figures are asked once
            if not (
                # the room a placement leaves counts only under drift
                faults.drift_factor(self.epoch) == 1.0
                and (same or faults.drift_factor(epoch) == 1.0)
                and (same or faults.link_fidelity_at(self.epoch) == faults.link_fidelity_at(epoch))
            ):
                return False
        given = self.given
        if any_seed:
            return replace(request, seed=given.seed, machine=given.machine) == given
        return request is given or replace(request, machine=given.machine) == given


class _Started(msgspec.Struct, frozen=True, gc=False):
    """The record of one start (:meth:`FaultPolicies.start`): where and when it started,
    and what the policies decided, read as its dict only when asked for
    (:meth:`FaultPolicies.of`; most jobs' never are). Kept for the newest 4,096 jobs,
    so never tracked by the collector (``gc=False``: it holds no cycle, its parts
    refer to nothing of the kernel's)."""

    start: dict[str, Any]
    adjusted: Adjusted

    def to_json(self) -> dict[str, Any]:
        """The start's record: its epoch, attempt, module (and modules), physical qubits,
        logical error per cycle, the policies' actions and the rewrite."""
        adjusted = self.adjusted
        return {
            **self.start,
            "physical_qubits": adjusted.physical_qubits,
            "logical_error_per_cycle": dict(adjusted.logical_error_per_cycle),
            "faults": [dict(a) for a in adjusted.actions],
            "rewrite": adjusted.rewrite.to_json() if adjusted.rewrite else None,
        }


#: A job's record of one start, or of a requeue (a dict).
_Record = Union[dict[str, Any], _Started]  # noqa: UP007 (a value: Python 3.10 reads it)

#: How many machine-wide fault events the kernel keeps for telemetry.
FAULT_LOG_SIZE = 256
#: How many jobs' fault records (placement, policies' actions) the kernel keeps.
FAULT_RECORDS_SIZE = 4096


class FaultPolicies:
    """The kernel's fault handling: the device, where each running job is placed, the
    policies applied at each start (:meth:`start`), and what they did.

    ``records`` holds, per job, one record per start (or requeue): the epoch, attempt,
    module, physical qubits, logical error per cycle, the policies' actions and the
    rewrite (the newest :data:`FAULT_RECORDS_SIZE` jobs; a job's one record as it is,
    its records in a list where it has more: most jobs start once); ``log`` the machine-wide
    events (a module marked down), the last :data:`FAULT_LOG_SIZE`. Every action is
    audited.
    """

    def __init__(self, device: LogicalMachine, audit: Any, *, limits: Limits | None = None) -> None:
        #: The limits the kernel verifies programs with (its workers' too).
        self.limits = limits
        self.device = device
        self.placement = Placement(device)
        self.audit = audit
        self.records: OrderedDict[str, _Record | list[_Record]] = OrderedDict()
        self.log: deque[dict[str, Any]] = deque(maxlen=FAULT_LOG_SIZE)
        #: The program text and answer of the last job :meth:`foresee` computed, for the
        #: next job of that program whose run differs only in its seed.
        self._last: tuple[str, Foreseen] | None = None

    def start(
        self,
        job: Any,
        request: RunRequest,
        resume_from: Mapping[str, Any] | None,
        epoch: int,
    ) -> tuple[RunRequest, Adjusted]:
        """``request`` of ``job`` (placed already) with the policies applied
        (:func:`~qmk.kernel.admit.adjusted.adjust`), or under the physics of the
        checkpoint it resumes from (:func:`~qmk.kernel.admit.resumed.resumed`); the record
        kept and the actions audited.

        Raises:
            QMKError: a policy refused the job (recorded and audited as a refusal).
        """
        module = self.placement.module_of.get(job.job_id)
        record: dict[str, Any] = {"epoch": epoch, "attempt": job.attempts, "module": module}
        if job.job_id in self.placement.spanning:
            record["modules"] = list(self.placement.spanning[job.job_id])
        room = self.placement.room(job)
        foreseen: Foreseen | None = job.foreseen
        job.foreseen = None  # one start reuses it at most
        try:
            if resume_from is not None and resume_from.get("physics") is not None:
                from qmk.kernel.admit.resumed import resumed  # its checkpoint's physics

                request, adjusted = resumed(
                    request,
                    job,
                    self.device,
                    epoch,
                    room=room,
                    checkpoint=resume_from,
                    limits=self.limits,
                )
            elif foreseen is not None and foreseen.holds(request, job, self.device, epoch):
                adjusted = foreseen.adjusted
                request = replace(foreseen.request, machine=request.machine)
            else:
                request, adjusted = adjust(
                    request, job, self.device, epoch, room=room, limits=self.limits
                )
        except QMKError as exc:
            refusal = {"epoch": epoch, "kind": "refusal", "action": "fail"}
            record["faults"] = [{**refusal, "error": error_json(exc)}]
            self.record(job.job_id, record)
            self.audit.append("fault", job_id=job.job_id, tenant=job.tenant, **record["faults"][0])
            raise
        if adjusted.physical_qubits != job.physical_qubits:  # a raised distance is bigger
            self.placement.resize(job, adjusted.physical_qubits)
        self.placement.load[job.job_id] = adjusted.decoder_load
        self.record(job.job_id, _Started(record, adjusted))  # made a dict when read
        if len(self.device.capacities) > 1:
            self.audit.append(
                "device", action="place", job_id=job.job_id, module=module, epoch=epoch
            )
        for action in adjusted.actions:
            self.audit.append("fault", job_id=job.job_id, tenant=job.tenant, **action)
        return request, adjusted

    def foresee(self, job: Any, epoch: int) -> RunRequest:
        """The run request ``job`` would start with at ``epoch`` on the largest module up
        (:func:`~qmk.kernel.admit.adjusted.adjust`; nothing recorded or audited), kept on
        the job for its start to reuse (:class:`Foreseen`).

        Raises:
            QMKError: a policy would refuse it (its start will say so).
        """
        device = self.device
        given = job.request
        last = self._last
        if last is not None and job.graph == last[0]:  # the last job's program: its answer,
            kept = last[1]  # if its run was this one's but for the seed (adjust reads none)
            if kept.holds(given, job, device, epoch, any_seed=True):
                request = replace(kept.request, seed=given.seed, machine=given.machine)
                job.foreseen = Foreseen(
                    given=given,
                    epoch=epoch,
                    calibrations=kept.calibrations,
                    physical_qubits=kept.physical_qubits,
                    request=request,
                    adjusted=kept.adjusted,
                )
                return request
        request, adjusted = adjust(
            given, job, device, epoch, room=device.largest_module_up, limits=self.limits
        )
        job.foreseen = Foreseen(
            given=given,
            epoch=epoch,
            calibrations=device.calibrations,
            physical_qubits=job.physical_qubits,
            request=request,
            adjusted=adjusted,
        )
        self._last = (job.graph, job.foreseen)
        return request

    def requeued(self, job: Any, module: int, epoch: int) -> None:
        """Record and audit that ``job`` was stopped and queued again: ``module`` failed."""
        action = {"epoch": epoch, "kind": "module-failure", "action": "requeue", "module": module}
        record = {"epoch": epoch, "attempt": job.attempts, "module": module, "faults": [action]}
        self.record(job.job_id, record)
        self.audit.append("fault", job_id=job.job_id, tenant=job.tenant, **action)

    def record(self, job_id: str, record: dict[str, Any] | _Started) -> None:
        """Keep ``record`` of ``job_id`` (the records of the oldest jobs go beyond
        :data:`FAULT_RECORDS_SIZE` jobs)."""
        records = self.records
        kept = records.get(job_id)
        if kept is None:  # its first (for most jobs, its one): kept as it is
            records[job_id] = record
        else:
            if not isinstance(kept, list):
                kept = records[job_id] = [kept]
            kept.append(record)
            records.move_to_end(job_id)
        if len(records) > FAULT_RECORDS_SIZE:
            records.popitem(last=False)

    def of(self, job: Any) -> list[dict[str, Any]]:
        """What the fault policies did to ``job``, one record per start (or requeue)."""
        kept = self.records.get(job.job_id)
        records = [] if kept is None else kept if isinstance(kept, list) else [kept]
        return [record.to_json() if isinstance(record, _Started) else record for record in records]


__all__ = [
    "FAULT_LOG_SIZE",
    "FAULT_RECORDS_SIZE",
    "FaultPolicies",
    "Foreseen",
    "Placement",
    "device_for",
    "spans",
]
