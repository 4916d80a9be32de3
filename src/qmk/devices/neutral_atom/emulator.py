"""The emulator: a validated, scheduled job lowered onto QMK's engines, seeded shots out.

Public API:

- :func:`run_job` -- parse (wire form or :class:`~.job.Job`), validate, schedule, lower,
  run; returns a :class:`Result`;
- :func:`lower` and :class:`Circuit` / :class:`Step` (:mod:`.circuit`) -- the job as one
  sequence of gates, noise ops (the one noise IR of :mod:`.noise`), measurements and
  resets, idle noise placed from the timeline; both backends run this same sequence;
- :func:`execute` and :func:`batch_program` (:mod:`.shots`) -- how its shots are drawn on
  the engines' shot machinery: the stabilizer engine's batch circuits, and the
  executor's trajectory runner on the statevector engine;
- :data:`BACKENDS`, :func:`choose_backend`;
- :class:`Result` -- ``bits`` (shots x recorded bits, int8, -1 for a lost atom),
  ``counts()``, ``measurements()`` (the wire form's records), ``to_json()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.backends import BACKENDS as BACKEND_TABLE
from qmk.devices.neutral_atom.backends import require
from qmk.devices.neutral_atom.circuit import Circuit, Step, StepKind, lower
from qmk.devices.neutral_atom.isa import OpKind
from qmk.devices.neutral_atom.job import AUTO, STABILIZER, STATEVECTOR, Job, parse_job
from qmk.devices.neutral_atom.profiles import Profile
from qmk.devices.neutral_atom.schedule import Timeline
from qmk.devices.neutral_atom.shots import BatchProgram, batch_program, execute
from qmk.devices.neutral_atom.streams import shot_records
from qmk.devices.neutral_atom.validate import VALIDATORS, validate_job
from qmk.execution.branches import ExecutionState
from qmk.execution.request import draw_seed
from qmk.execution.trajectories import Control

#: The backends, as job ``device_id`` names them (:data:`.backends.BACKENDS`).
BACKENDS: tuple[str, ...] = tuple(BACKEND_TABLE)
#: What a Result of an analog (Evolve) job names as its backend: the state vector (or
#: density matrix) of :mod:`.analog`, integrated exactly.
ANALOG = "analog-exact"


def choose_backend(job: Job, circuit: Circuit) -> str:
    """The backend that runs ``job``: its ``device_id``, or for ``auto`` the stabilizer
    when it can run the whole circuit, else the statevector (:mod:`.backends`).

    An analog job (one with an ``Evolve``) is the statevector's: :func:`run_job` integrates
    it exactly (:mod:`.analog`; its result names ``analog-exact``), and ``circuit`` (which
    holds no analog evolution) is not looked at.

    Raises:
        DeviceError: ``QD107`` when the job names a backend that cannot run it (the
            stabilizer and a non-Clifford gate or damping, more atoms than the backend
            holds); ``QD110`` when it names another backend than the state vector for an
            analog job; ``QD113`` when the named backend is not available here.
    """
    if any(ins.kind is OpKind.EVOLVE for ins in job.program):
        if job.device_id not in (STATEVECTOR, AUTO):
            raise _stabilizer_analog(job)
        return STATEVECTOR
    if job.device_id == AUTO:
        return STABILIZER if circuit.first_unsupported(STABILIZER) is None else STATEVECTOR
    require(job.device_id, job.n_atoms)
    blocker = circuit.first_unsupported(job.device_id)
    if blocker is not None:
        index, why = blocker
        raise DeviceError.of(
            "backend-unsupported",
            f"instruction #{index}: the {job.device_id} backend cannot run it: {why}; "
            "use device_id state-vector (or auto)",
            index=index,
            device_id=job.device_id,
        )
    return job.device_id


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """A finished job: every shot's recorded bits, the timeline, telemetry."""

    job_id: str
    device_id: str
    profile: str | None
    isa_version: str
    shots: int
    seed: int
    records: tuple[tuple[int, tuple[int, ...]], ...]
    #: shots x recorded bits (int8): 0, 1, or -1 for a lost atom; columns in program order.
    bits: np.ndarray
    timeline: Timeline
    telemetry: Mapping[str, Any] = field(default_factory=dict)
    status: str = "completed"

    def counts(self) -> dict[str, int]:
        """How often each outcome came: the key is every Measure's bits in program order,
        the first leftmost, a lost atom as ``L``."""
        if self.bits.shape[1] == 0:
            return {"": self.shots}
        table = np.frombuffer(b"01L", dtype=np.uint8)
        chars = table[np.where(self.bits < 0, 2, self.bits).astype(np.intp)]
        rows = np.ascontiguousarray(chars).view(f"S{chars.shape[1]}").ravel()
        keys, counts = np.unique(rows, return_counts=True)
        return {
            k.decode(): int(c)
            for k, c in sorted(zip(keys, counts, strict=True), key=lambda kc: kc[0])
        }

    def measurements(self) -> list[dict[str, Any]]:
        """The wire form's records: for each shot, for each Measure, ``{targets, bits}``."""
        out: list[dict[str, Any]] = []
        rows = self.bits.tolist()
        for row in rows:
            column = 0
            for _, targets in self.records:
                out.append({"targets": list(targets), "bits": row[column : column + len(targets)]})
                column += len(targets)
        return out

    def to_json(self, *, measurements: bool = True) -> dict[str, Any]:
        """The result as one JSON object (timeline in us)."""
        out: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status,
            "device_id": self.device_id,
            "profile": self.profile,
            "isa_version": self.isa_version,
            "shots": self.shots,
            "seed": self.seed,
            "counts": self.counts(),
        }
        if measurements:
            out["measurements"] = self.measurements()
        out["timeline_units"] = "us"
        out["timeline"] = self.timeline.to_json("us")
        out["telemetry"] = dict(self.telemetry)
        return out


def run_job(
    job: Job | Mapping[str, Any],
    *,
    shots: int | None = None,
    seed: int | None = None,
    device: str | Profile | None = None,
    backend: str | None = None,
    strict_timing: bool = False,
    control: Control | None = None,
    resume: ExecutionState | str | os.PathLike[str] | None = None,
    on_shots: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Result:
    """Run a job (its wire form, or a parsed :class:`Job`) on the emulator.

    Args:
        job: the job.
        shots, seed: in place of the job's (a job with no seed gets a fresh one, reported
            in the result so the run can be repeated).
        device: a preset name or :class:`Profile` in place of the job's ``profile``.
        backend: ``state-vector``, ``stabilizer`` or ``auto``, in place of ``device_id``.
        strict_timing: refuse operations inside a measurement cooldown (``QD209``)
            instead of letting the scheduler wait.
        control: who may ask the job, between its chunks of shots, to save its state
            and go on or stop (:class:`~qmk.execution.trajectories.Control`; the kernel's
            worker): see :mod:`.shots`.
        resume: a state (or its file) such a control saved: the job goes on from there
            and gives the bits of a run that never stopped.
        on_shots: called after each chunk of shots of a digital job (:func:`.shots.execute`)
            with their ``measurements`` records (:func:`.streams.shot_records`), as the
            result will hold them: a kernel job's streamed measurements. An analog job
            draws its shots at once: it is never called.

    Raises:
        DeviceError: a ``QD`` code: the job, a hardware violation, or a backend that
            cannot run it; nothing ran.
        EngineError: ``QE106``/``QE107`` for a state of another job or an unreadable one.
        Suspended: the control asked the job to stop; its state was saved first.

    >>> ghz = {"profile": "ideal_small_array", "program": [
    ...     {"op": "AllocArray", "n_qubits": 3},
    ...     {"op": "ApplyGate", "name": "H", "targets": [0]},
    ...     {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
    ...     {"op": "ApplyGate", "name": "CX", "targets": [1, 2]},
    ...     {"op": "Measure", "targets": [0, 1, 2]}]}
    >>> result = run_job(ghz, shots=1000, seed=7)
    >>> sorted(result.counts()), result.device_id
    (['000', '111'], 'stabilizer')
    """
    began = time.perf_counter()
    if isinstance(job, Job):
        parsed = job
        if shots is not None or seed is not None or device is not None or backend is not None:
            raise DeviceError.of(
                "job-malformed", "give shots, seed, device and backend to parse_job for a Job"
            )
    else:
        parsed = parse_job(job, preset=device, shots=shots, seed=seed, device_id=backend)
    timeline = validate_job(parsed, strict_timing=strict_timing)
    run_seed = parsed.seed if parsed.seed is not None else draw_seed()
    if any(ins.kind is OpKind.EVOLVE for ins in parsed.program):
        return _run_analog(parsed, timeline, run_seed, began)
    circuit = lower(parsed, timeline)
    chosen = choose_backend(parsed, circuit)
    if resume is not None and not isinstance(resume, ExecutionState):
        from qmk.execution.checkpoint import read_state

        resume = read_state(resume)
    key = job_key(
        job,
        strict_timing=strict_timing,
        seed=run_seed,
        backend=chosen,
        shots=parsed.shots,
        profile=parsed.profile,
    )
    validated = time.perf_counter()
    bits, stats = execute(
        parsed,
        circuit,
        chosen,
        run_seed,
        control=control,
        resume=resume,
        key=key,
        on_chunk=None
        if on_shots is None
        else lambda rows, bits: on_shots(shot_records(circuit.records, rows.tolist(), bits)),
    )
    times = (began, validated, time.perf_counter())
    noise = sum(1 for s in circuit.steps if s.kind is StepKind.NOISE)
    return _result(parsed, chosen, run_seed, circuit.records, bits, timeline, stats, times, noise)


def _stabilizer_analog(job: Job) -> DeviceError:
    return DeviceError.of(
        "analog-unsupported",
        f"the {job.device_id} backend cannot run an Evolve (analog jobs are integrated "
        "exactly on the state vector); use device_id state-vector or auto",
        device_id=job.device_id,
    )


def _run_analog(job: Job, timeline: Timeline, seed: int, began: float) -> Result:
    """An analog (ISA 1.2) job: exact evolution of the register (:mod:`.analog`)."""
    from qmk.devices.neutral_atom.analog import run_analog

    if job.device_id not in (STATEVECTOR, AUTO):
        raise _stabilizer_analog(job)
    validated = time.perf_counter()
    bits, stats = run_analog(job, seed)
    times = (began, validated, time.perf_counter())
    records = tuple((ins.index, ins.targets) for ins in job.program if ins.kind is OpKind.MEASURE)
    return _result(job, ANALOG, seed, records, bits, timeline, stats, times)


def _result(
    job: Job,
    backend: str,
    seed: int,
    records: tuple[tuple[int, tuple[int, ...]], ...],
    bits: np.ndarray,
    timeline: Timeline,
    stats: Mapping[str, Any],
    times: tuple[float, float, float],
    noise_ops: int | None = None,
) -> Result:
    """A run's result and its telemetry; ``times``: when the run began, was validated and
    finished; ``noise_ops``: a digital run's noise steps."""
    began, validated, finished = times
    counts = {} if noise_ops is None else {"noise_ops": noise_ops}
    telemetry = {
        "backend": backend,
        **stats,
        "atoms": job.n_atoms,
        "instructions": len(job.program),
        **counts,
        "duration_ns": timeline.total_ns,
        "inserted_waits": len(timeline.inserted),
        "validators": list(_validator_names()),
        "elapsed_s": round(finished - began, 6),
        "validate_s": round(validated - began, 6),
        "execute_s": round(finished - validated, 6),
    }
    if noise_ops is not None and job.max_threads is not None:
        telemetry["max_threads"] = "accepted and ignored: each job runs on one thread"
    return Result(
        job_id=job.job_id,
        device_id=backend,
        profile=job.profile,
        isa_version=str(job.isa_version),
        shots=job.shots,
        seed=seed,
        records=records,
        bits=bits,
        timeline=timeline,
        telemetry=telemetry,
    )


def job_key(
    job: Job | Mapping[str, Any],
    *,
    strict_timing: bool,
    seed: int,
    backend: str,
    shots: int,
    profile: str | None,
) -> str:
    """The digest of everything that decides a job's bits: its wire form (or, for a parsed
    :class:`Job`, its repr), the timing rule, seed, backend, shots and profile it runs
    with. A saved state resumes only the job of its key."""
    text = (
        repr(job)
        if isinstance(job, Job)
        else json.dumps(job, sort_keys=True, separators=(",", ":"), default=str)
    )
    whole = json.dumps([text, bool(strict_timing), int(seed), backend, int(shots), profile])
    return hashlib.sha256(whole.encode("utf-8")).hexdigest()


def _validator_names() -> tuple[str, ...]:
    return tuple(VALIDATORS)


__all__ = [
    "ANALOG",
    "BACKENDS",
    "BatchProgram",
    "Circuit",
    "Result",
    "Step",
    "StepKind",
    "batch_program",
    "choose_backend",
    "execute",
    "job_key",
    "lower",
    "run_job",
]
