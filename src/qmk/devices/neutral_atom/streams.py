"""What a device job can stream besides its counts: per-shot measurements, its pulse log
and state snapshots at chosen points.

Public API: :class:`StreamSpec` (what a job asks for: the ``stream`` object of the kernel
policy, ``qmk device submit --stream``), :func:`check` (refuse, before anything runs, what
cannot be served: ``QD114``) and :func:`artifacts` (the job's artifacts, as plain JSON,
from its parsed job and :class:`~.emulator.Result`).

Each artifact is ``{"name", "kind", "records": [...]}``; the kernel stores them as the
job's artifacts and sends their records over its event stream in parts
(:mod:`qmk.kernel.storage.artifacts`):

- ``measurements``: one record per shot, ``{"shot": i, "measurements": [{"targets",
  "bits"}, ...]}``, the wire form's records (bits after readout, -1 for a lost atom);
- ``pulses``: the pulse log, one record per scheduled instruction (inserted waits
  included) in time order: ``index``, ``op``, ``detail``, ``start_ns``, ``duration_ns``,
  ``atoms``. A ``Pulse`` adds its ``detuning``, ``duration`` and params. An ``Evolve``
  adds its drive with every waveform point on the program's clock (``omega``/``delta``:
  ``[[t_ns, rad/us], ...]`` from the instruction's start), ``phase`` and ``local_delta``;
- ``snapshots``: the noiseless state at each point asked for, ``{"at", "state":
  {key: [re, im]}, "probabilities": {key: p}}`` over the register's atoms (key: atom 0
  leftmost, 1 = ``|1>``/``|r>``; amplitudes below 1e-12 in probability left out). A
  digital job's points are instruction indices: the state after that instruction, the
  gates up to it on the statevector engine, whichever backend drew the shots. A point
  after a ``Measure`` or ``Reset`` is refused: the state is no longer one state. An
  analog job's points are times in ns from the first ``Evolve`` (its exact evolution,
  :mod:`.analog`, stopped there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.isa import OpKind

if TYPE_CHECKING:
    from qmk.devices.neutral_atom.emulator import Result
    from qmk.devices.neutral_atom.job import Job

#: The names of the streams, in the order a job's artifacts list them.
STREAMS: tuple[str, ...] = ("measurements", "pulses", "snapshots")
#: Probabilities at or below this are left out of a snapshot.
SNAPSHOT_FLOOR = 1e-12
#: The most atoms a snapshot holds (2^n amplitudes).
SNAPSHOT_MAX_ATOMS = 16
#: The most snapshot points one job may ask for.
MAX_SNAPSHOTS = 64


class StreamSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a job streams: per-shot ``measurements``, the ``pulses`` log, and
    ``snapshots`` at these points (instruction indices; ns for an analog job)."""

    measurements: bool = False
    pulses: bool = False
    snapshots: tuple[float, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.measurements or self.pulses or self.snapshots)

    @property
    def names(self) -> tuple[str, ...]:
        """The streams asked for, in :data:`STREAMS` order."""
        asked = {"measurements": self.measurements, "pulses": self.pulses}
        asked["snapshots"] = bool(self.snapshots)
        return tuple(name for name in STREAMS if asked[name])


def _invalid(message: str, **details: Any) -> DeviceError:
    return DeviceError.of("stream-invalid", message, **details)


def _analog(job: Job) -> bool:
    return any(ins.kind is OpKind.EVOLVE for ins in job.program)


def check(job: Job, spec: StreamSpec) -> None:
    """Refuse what ``spec`` asks of ``job`` that cannot be served.

    Raises:
        DeviceError: ``QD114`` for snapshots of too many atoms or points, at an index
            that is not an instruction before the first measurement or reset, or at a time
            outside the analog program.
    """
    if not spec.snapshots:
        return
    if len(spec.snapshots) > MAX_SNAPSHOTS:
        raise _invalid(f"{len(spec.snapshots)} snapshot points; at most {MAX_SNAPSHOTS}")
    if job.n_atoms > SNAPSHOT_MAX_ATOMS:
        raise _invalid(
            f"a snapshot of {job.n_atoms} atoms would hold 2^{job.n_atoms} amplitudes; "
            f"snapshots take at most {SNAPSHOT_MAX_ATOMS} atoms",
            atoms=job.n_atoms,
        )
    if _analog(job):
        from qmk.devices.neutral_atom.analog import drives_of

        total = sum(duration for _, duration in drives_of(job))
        for t in spec.snapshots:
            if not 0.0 <= t <= total:
                raise _invalid(
                    f"snapshot at {t:g} ns: an analog job's points are times in ns within its "
                    f"evolution, 0 to {total:g}",
                    at=t,
                )
        return
    first_irreversible = next(
        (ins.index for ins in job.program if ins.kind in (OpKind.MEASURE, OpKind.RESET)),
        len(job.program),
    )
    for point in spec.snapshots:
        if point != int(point) or not 0 <= point < first_irreversible:
            raise _invalid(
                f"snapshot at {point:g}: a digital job's points are indices of its "
                f"instructions before the first Measure or Reset (0 to {first_irreversible - 1})",
                at=point,
            )


def _keyed(amplitudes: np.ndarray, states: np.ndarray, n: int) -> dict[str, Any]:
    """A snapshot's state and probabilities; ``states[k]`` is amplitude k's basis index
    (bit i = atom i)."""
    probs = np.abs(amplitudes) ** 2
    state: dict[str, list[float]] = {}
    probabilities: dict[str, float] = {}
    for s, a, p in zip(states.tolist(), amplitudes.tolist(), probs.tolist(), strict=True):
        if p <= SNAPSHOT_FLOOR:
            continue
        key = "".join("1" if (s >> i) & 1 else "0" for i in range(n))
        state[key] = [a.real, a.imag]
        probabilities[key] = p
    return {"state": state, "probabilities": probabilities}


def _analog_snapshots(job: Job, points: tuple[float, ...]) -> list[dict[str, Any]]:
    from qmk.devices.neutral_atom.analog import _evolve_state, drives_of, model_for, register_points

    model = model_for(register_points(job), job.hardware.c6)
    drives = drives_of(job)
    out = []
    for at in points:
        psi = np.zeros(model.dimension, dtype=complex)
        psi[0] = 1.0
        left = at
        for drive, duration in drives:
            if left <= 0.0:
                break
            step = min(duration, left)
            psi, _ = _evolve_state(model, psi, drive, step)
            left -= step
        out.append({"at": at, "units": "ns", **_keyed(psi, model.states, model.n_atoms)})
    return out


def _digital_snapshots(job: Job, points: tuple[float, ...]) -> list[dict[str, Any]]:
    from qmk.devices.neutral_atom.circuit import StepKind, lower
    from qmk.devices.neutral_atom.validate import validate_job
    from qmk.engines.statevector import StatevectorEngine

    circuit = lower(job, validate_job(job))
    n = job.n_atoms
    out = []
    for point in points:
        engine = StatevectorEngine(seed=0)
        qubits = [engine.allocate() for _ in range(n)]
        for step in circuit.steps:
            if step.index > point or step.kind is not StepKind.GATE:
                continue
            for gate, params in step.gates:
                engine.apply(gate, [qubits[a] for a in step.atoms], params)
        # state_vector puts qubits[0] most significant: reverse so bit i is atom i
        vector = engine.state_vector(list(reversed(qubits))) if n else np.ones(1)
        out.append(
            {"at": int(point), "units": "instruction", **_keyed(vector, np.arange(1 << n), n)}
        )
    return out


def _pulses(job: Job, result: Result) -> list[dict[str, Any]]:
    by_index = {ins.index: ins for ins in job.program}
    records = []
    for entry in result.timeline.to_json("ns"):
        record: dict[str, Any] = {
            "index": entry["index"],
            "op": entry["op"],
            "detail": entry["detail"],
            "start_ns": entry["start_time"],
            "duration_ns": entry["duration"],
            "atoms": entry.get("atoms", []),
        }
        if entry.get("inserted"):
            record["inserted"] = True
        ins = by_index.get(entry["index"]) if not entry.get("inserted") else None
        if ins is not None and ins.kind is OpKind.PULSE:
            record.update(detuning=ins.detuning, params=list(ins.params))
        if ins is not None and ins.drive is not None:
            start = float(entry["start_time"])
            drive = ins.drive
            record["omega"] = [[start + t, v] for t, v in drive.omega]
            record["delta"] = [[start + t, v] for t, v in drive.delta]
            record["phase"] = drive.phase
            if drive.local is not None:
                local = drive.local.to_json()
                local["delta"] = [[start + t, v] for t, v in drive.local.delta]
                record["local_delta"] = local
        records.append(record)
    return records


def shot_records(
    records: Sequence[tuple[int, tuple[int, ...]]], shots: Iterable[int], bits: np.ndarray
) -> list[dict[str, Any]]:
    """The ``measurements`` records of ``shots`` whose recorded bits are ``bits`` (a row
    each, columns in program order; ``records``: each Measure's index and targets).

    >>> shot_records([(1, (0, 1))], [4], np.array([[1, -1]], dtype=np.int8))
    [{'shot': 4, 'measurements': [{'targets': [0, 1], 'bits': [1, -1]}]}]
    """
    out = []
    for shot, row in zip(shots, bits.tolist(), strict=True):
        measured, column = [], 0
        for _, targets in records:
            measured.append({"targets": list(targets), "bits": row[column : column + len(targets)]})
            column += len(targets)
        out.append({"shot": int(shot), "measurements": measured})
    return out


def artifacts(job: Job, result: Result, spec: StreamSpec) -> list[dict[str, Any]]:
    """The artifacts ``spec`` asks for, of ``job`` (parsed) and its ``result``.

    Raises:
        DeviceError: ``QD114`` as :func:`check`.
    """
    check(job, spec)
    out: list[dict[str, Any]] = []
    if spec.measurements:
        shots = shot_records(result.records, range(result.shots), result.bits)
        out.append({"name": "measurements", "kind": "measurements", "records": shots})
    if spec.pulses:
        out.append({"name": "pulses", "kind": "pulses", "records": _pulses(job, result)})
    if spec.snapshots:
        points = tuple(spec.snapshots)
        snaps = _analog_snapshots(job, points) if _analog(job) else _digital_snapshots(job, points)
        out.append({"name": "snapshots", "kind": "snapshots", "records": snaps})
    return out


def parse_spec(data: Any) -> StreamSpec:
    """A :class:`StreamSpec` from JSON (an object, or a list of stream names).

    Raises:
        DeviceError: ``QD114`` for anything else.
    """
    if isinstance(data, list):
        unknown = [name for name in data if name not in ("measurements", "pulses")]
        if unknown:
            raise _invalid(f"no stream {unknown[0]!r}; streams: measurements, pulses, snapshots")
        data = {name: True for name in data}
    try:
        spec: StreamSpec = msgspec.convert(data, StreamSpec)
    except msgspec.ValidationError as exc:
        raise _invalid(f"stream: {exc}; streams: measurements, pulses, snapshots") from None
    if any(not math.isfinite(p) for p in spec.snapshots):
        raise _invalid("snapshot points are finite numbers")
    return spec


__all__ = [
    "MAX_SNAPSHOTS",
    "SNAPSHOT_MAX_ATOMS",
    "STREAMS",
    "StreamSpec",
    "artifacts",
    "check",
    "parse_spec",
    "shot_records",
]
