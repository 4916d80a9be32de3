"""The fault policies applied to one start of a job: its run request adjusted to the
machine as it is at that epoch (:func:`adjust`).

The device (:class:`~qmk.kernel.device.LogicalMachine`) holds the fault schedule of the
kernel's ``[faults]`` table. When the supervisor starts a job, its fault handling
(:meth:`qmk.kernel.admit.faults.FaultPolicies.start`) calls :func:`adjust` once, which
applies the policies in this order:

1. **ingest**: the job runs with the device's current qubit parameters and calibration,
   and the machine's noise model, unless its policy names its own
   (``policy.qubit``, ``policy.calibration``, ``policy.noise_model``);
2. **drift**: the drifted physical error rates reach the job's logical model (a
   ``drift(factor=F)`` noise model stacked on the machine's); when noise is on, every
   code profile the job uses has its distance raised by 2 until its logical error per
   cycle is back within the undrifted machine's, or ``distance_budget`` is spent, or the
   job would no longer fit its module (telemetry says ``restored: false`` then); and
   fences tighten: ``FENCE_EPOCH`` nodes are added so that no epoch of the job runs more
   than ``drift_fence_cycles`` logical cycles, and the job saves its state at a fence
   whenever that many operations ran since its last save (a checkpoint the kernel
   resumes it from after a preemption, a module failure or a crash: less work lost while
   the machine degrades);
3. **link**: each ``OPEN_CHAN`` whose fidelity the link no longer delivers gets BBPSSW
   purified pairs (:mod:`qmk.devices.purification`) of at least ``min(requested,
   link_target)``; when purification cannot reach it, the pair is made inside the job's
   module instead (**local decomposition**: a logical H and CNOT; the pair is exact, and
   its two qubits are charged the logical noise of those cycles, written into the program
   as idle cycles), unless ``local_decomposition = false``, when the job FAILs with
   ``QK304 link-degraded``.

The drift and link policies (and a start's own plan and models) are
:mod:`qmk.kernel.admit.degraded`, imported where they apply: under drift, for a job that
holds channels, or for a start the planner's figures no longer describe.

The decoder is not a policy here: it is the shared machine's, one capacity for every job
on it (``[machine] decoder_bits_per_cycle``; ``[faults] decoder_capacity_bits_per_s`` is
its deprecated name, QK504), which throttles the jobs in machine time and charges their
waits as idle noise (``docs/machine.md``). The job's own load is still computed where a
capacity is given, for the device's health (its decoder backlog).

Changes to the program are a :class:`~qmk.execution.request.Rewrite` in the job's run
request, which the worker applies to the submitted graph text
(:func:`qmk.execution.rewritten.rewritten`); the attestation records the request, so
``qmk audit replay`` applies it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from msgspec.structs import replace

from qmk.execution.request import Rewrite, RunRequest
from qmk.execution.request import canonical_profile as canonical
from qmk.kernel.device import LogicalMachine
from qmk.kernel.records.programs import verified
from qmk.memo import Memo
from qmk.qvm.codes import BY_NAME
from qmk.qvm.errors import VerificationError
from qmk.qvm.limits import Limits


@dataclass(frozen=True, slots=True, kw_only=True)
class Adjusted:
    """What :func:`adjust` decided for one start of a job."""

    actions: tuple[Mapping[str, Any], ...]
    rewrite: Rewrite
    physical_qubits: int
    decoder_load: float
    logical_error_per_cycle: Mapping[str, float]


#: A program past the kernel's ``max_unrolled_nodes`` (``QV505``): its worker refuses it.
_UNROLLED_TOO_LARGE = BY_NAME["unrolled-too-large"].code


def adjust(
    request: RunRequest,
    job: Any,
    device: LogicalMachine,
    epoch: int,
    *,
    room: int,
    limits: Limits | None = None,
) -> tuple[RunRequest, Adjusted]:
    """The run request of ``job`` on ``device`` at ``epoch`` (a changed copy of
    ``request``), and what was done (see the module docstring); ``room`` is the most
    physical qubits the job may use on its module.

    Raises:
        QMKError: ``QK304 link-degraded``, or the QEC layer's refusal of the drifted rates
            (e.g. ``QC106 above-threshold``); the job FAILs with it.
    """
    request = replace(
        request,
        qubit=device.qubit if job.policy.qubit is None else request.qubit,
        calibration=device.calibration if job.policy.calibration is None else request.calibration,
        noise_model=device.noise_model_at(epoch, base=_own_noise(job)),
    )
    try:  # unrolled, within the kernel's limits, as its workers read it
        program = verified(job.graph, limits)
    except VerificationError as exc:
        if exc.code != _UNROLLED_TOO_LARGE:
            raise
        # no run to adjust: its worker ends it with this very error
        return request, Adjusted(
            actions=(),
            rewrite=Rewrite(),
            physical_qubits=job.physical_qubits,
            decoder_load=0.0,
            logical_error_per_cycle={},
        )
    actions: list[dict[str, Any]] = []
    profiles: dict[str, str] = {}
    channels: dict[str, float] = {}
    idle: dict[str, int] = {}
    faults = device.faults
    used = profiles_of(program, request.profile)
    fences: tuple[str, ...] = ()
    if request.noise and faults.drift_factor(epoch) != 1.0:
        from qmk.kernel.admit.degraded import drift, tighten  # only under drift

        undrifted = replace(request, noise_model=_own_noise(job) or device.noise_model)
        profiles = drift(
            actions,
            device,
            epoch,
            used,
            job,
            request,
            room,
            limits,
            undrifted=undrifted,
        )
        request = replace(
            request, profile=profiles.get(canonical(request.profile), request.profile)
        )
        if faults.drift_fence_cycles:
            fences = tighten(actions, program, epoch, faults.drift_fence_cycles)
            request = replace(request, checkpoint_every_ops=faults.drift_fence_cycles)
    if program.graph.resources.chs:  # no channel, nothing to purify: no walk over the nodes
        from qmk.kernel.admit.degraded import link  # only for a job that holds channels

        link(actions, channels, idle, program, faults, epoch, job.shots)
    rewrite = Rewrite(profiles=profiles, channels=channels, idle=idle, fences=fences)
    physical, load = planned_figures(job, request, rewrite, faults, limits)
    request = replace(request, rewrite=rewrite if rewrite else None)
    rates = _priced_rates(job, request, used, profiles)
    if not rates:  # the planner did not price this physics
        from qmk.kernel.admit.degraded import device_model

        rates = {
            profiles.get(p, p): device_model(
                device, profiles.get(p, p), epoch, request
            ).logical_error_per_cycle
            for p in used
        }
    return request, Adjusted(
        actions=tuple(actions),
        rewrite=rewrite,
        physical_qubits=physical,
        decoder_load=load,
        logical_error_per_cycle=rates,
    )


def _priced_rates(
    job: Any, request: RunRequest, used: tuple[str, ...], raised: Mapping[str, str]
) -> dict[str, float] | None:
    """Each used profile's logical error per cycle as the planner priced the job, where
    ``request`` runs it with that very physics: no distance raised, and the qubit, noise
    and calibration admission gave it (an undrifted machine, nothing ingested since).
    None otherwise: the start asks the QEC layer
    (:func:`~qmk.kernel.admit.degraded.device_model`), which the kernel process then
    loads."""
    priced: Mapping[str, float] | None = job.logical_errors
    if priced is None or raised or any(p not in priced for p in used):
        return None
    admitted = job.request
    same = (request.qubit, request.profile, request.noise, request.calibration) == (
        admitted.qubit,
        admitted.profile,
        admitted.noise,
        admitted.calibration,
    )
    if not same or (request.noise and request.noise_model != admitted.noise_model):
        return None
    return {p: priced[p] for p in used}


def _own_noise(job: Any) -> str | None:
    """The noise-model text of ``job``'s policy as admission resolved it (None: the job
    runs with the machine's); the machine's drift stacks on either."""
    return job.request.noise_model if job.policy.noise_model is not None else None


#: The programs' profiles the starts of jobs keep (:func:`profiles_of`): a kernel runs
#: a few programs many times.
_PROFILES: Memo[tuple[str, ...]] = Memo(256)


def profiles_of(program: Any, default: str) -> tuple[str, ...]:
    """The canonical profiles of a program's qubits (``default`` for those naming none);
    kept per verified program (the cache of :func:`~qmk.kernel.records.programs.verified` hands
    every job of a text the same one), so a start does not walk its nodes again."""
    return _PROFILES.get((id(program), default), program, lambda: _walk_profiles(program, default))


def _walk_profiles(program: Any, default: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for node in program.graph.nodes:
        if node.op == "ALLOC_LQ":
            found[canonical(node.args.get("profile") or default)] = None
    return tuple(found) or (canonical(default),)


def planned_figures(
    job: Any, request: RunRequest, rewrite: Rewrite, faults: Any, limits: Limits | None
) -> tuple[int, float]:
    """The physical qubits and decoder load of ``job`` started with ``request`` and
    ``rewrite``: admission's figures (the planner's) while its profiles are the ones it
    was priced with; a job whose distances the drift raised, or whose qubits or profile
    changed since (an ingested qubit set), or one read back after a restart, is planned
    here (:func:`qmk.kernel.admit.degraded.plan`). Without a decoder capacity no load is
    asked for (0)."""
    if rewrite.profiles:
        from qmk.kernel.admit.degraded import plan  # a start the planner did not price

        planned, load = plan(job.graph, rewrite, request, limits)
        return int(planned.peak_physical_qubits), load
    if faults.decoder_capacity is None:
        return job.physical_qubits, 0.0
    admitted = job.request
    if job.decoder_load is not None and (request.qubit, request.profile) == (
        admitted.qubit,
        admitted.profile,
    ):
        return job.physical_qubits, job.decoder_load
    from qmk.kernel.admit.degraded import plan

    planned, load = plan(job.graph, rewrite, request, limits)
    return int(planned.peak_physical_qubits), load


__all__ = ["Adjusted", "adjust", "planned_figures", "profiles_of"]
