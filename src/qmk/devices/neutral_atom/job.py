"""A wire-form job as one value: program, hardware, noise, backend, shots, seed.

Public API: :class:`Job`, :func:`parse_job`, :func:`read_job` (a JSON file),
:data:`DEVICE_IDS` (the backends a job may name).

A job in the prototype's v1 wire form loads unchanged::

    {"job_id", "device_id": "state-vector" | "stabilizer", "profile", "shots",
     "program": [...], "hardware": {...}, "noise": {...}, "isa_version": {"major", "minor"},
     "metadata": {...}, "max_threads"}

QMK adds ``"device_id": "auto"`` (the default: the stabilizer backend when the program is
Clifford and its noise Pauli, else the statevector), ``"seed"``, ``isa_version`` as
``"1.1"``, and the fields marked as QMK extensions in ``docs/neutral-atom.md``. The
hardware is the named preset's (``profile``, or ``--device``), with the job's own
``hardware`` fields replacing the preset's field by field; the job's ``noise`` replaces the
preset's noise whole. A job that names no preset and gives no geometry runs on an
unconstrained chain (one site per atom, no blockade, no catalog). ``stim_circuit`` is
refused: the device runs its own program.

>>> alloc = {"op": "AllocArray", "n_qubits": 2}
>>> job = parse_job({"program": [alloc], "profile": "ideal_small_array"})
>>> job.device_id, job.shots, str(job.isa_version), len(job.hardware.sites)
('auto', 1, '1.1', 10)
>>> parse_job({"program": [], "device_id": "gpu"})
Traceback (most recent call last):
...
qmk.devices.errors.DeviceError: QD103 device-id-unknown: no device_id 'gpu'; device ids: ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.isa import (
    Instruction,
    IsaVersion,
    OpKind,
    parse_program,
    parse_version,
)
from qmk.devices.neutral_atom.noise import NoiseModel
from qmk.devices.neutral_atom.profiles import Hardware, Profile, Site, load_profile

#: The backends a job may name; ``auto`` chooses (see the module docstring).
DEVICE_IDS: tuple[str, ...] = ("state-vector", "stabilizer", "auto")
STATEVECTOR, STABILIZER, AUTO = DEVICE_IDS

_FIELDS = (
    "job_id",
    "device_id",
    "profile",
    "shots",
    "seed",
    "program",
    "hardware",
    "noise",
    "isa_version",
    "metadata",
    "max_threads",
    "stim_circuit",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A checked job (nothing device-specific checked yet: that is :mod:`.validate`'s)."""

    job_id: str
    device_id: str
    profile: str | None
    shots: int
    seed: int | None
    isa_version: IsaVersion
    program: tuple[Instruction, ...]
    hardware: Hardware
    noise: NoiseModel
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: Accepted for compatibility; the emulator is single-threaded per job.
    max_threads: int | None = None

    @property
    def n_atoms(self) -> int:
        """How many atoms the program allocates (0 when it allocates none)."""
        return next((i.n_qubits for i in self.program if i.kind is OpKind.ALLOC), 0)


def _malformed(message: str, **details: Any) -> DeviceError:
    return DeviceError.of("job-malformed", message, **details)


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _malformed(f"{name} must be an integer >= {minimum}, got {value!r}", field=name)
    return value


def _free_chain(n: int) -> Hardware:
    return Hardware(sites=tuple(Site(id=i, x=float(i)) for i in range(n)), site_ids=tuple(range(n)))


def parse_job(
    data: Any,
    *,
    preset: str | Profile | None = None,
    shots: int | None = None,
    seed: int | None = None,
    device_id: str | None = None,
) -> Job:
    """A job from its wire form; the keyword arguments override the job's own fields.

    Args:
        data: the parsed JSON object.
        preset: a preset name (or a :class:`Profile`) in place of the job's ``profile``.
        shots, seed, device_id: in place of the job's.

    Raises:
        DeviceError: ``QD101`` malformed, ``QD102`` ISA version, ``QD103`` device id,
            ``QD104`` preset, ``QD105`` hardware, ``QD106`` op, ``QD108`` noise.
    """
    if not isinstance(data, Mapping):
        raise _malformed(f"a job is a JSON object, got {type(data).__name__}")
    extra = sorted(set(data) - set(_FIELDS))
    if extra:
        raise _malformed(f"a job has no field {extra[0]!r}; fields: {', '.join(_FIELDS)}")
    if data.get("stim_circuit"):
        raise _malformed(
            "stim_circuit is not supported: the device runs the job's own program "
            "(with its noise model) on every backend",
            field="stim_circuit",
        )
    version = parse_version(data.get("isa_version"))
    if "program" not in data:
        raise _malformed("a job needs a 'program' (a list of instructions)", field="program")
    program = parse_program(data["program"], version=version)
    backend = device_id or data.get("device_id") or AUTO
    if backend not in DEVICE_IDS:
        raise DeviceError.of(
            "device-id-unknown",
            f"no device_id {backend!r}; device ids: {', '.join(DEVICE_IDS)}",
            device_id=backend,
            device_ids=list(DEVICE_IDS),
        )
    chosen = preset if preset is not None else data.get("profile")
    if chosen is not None and not isinstance(chosen, str | Profile):
        raise _malformed(f"profile must be a preset name, got {chosen!r}", field="profile")
    profile = load_profile(chosen) if isinstance(chosen, str) else chosen
    n_atoms = next((i.n_qubits for i in program if i.kind is OpKind.ALLOC), 0)
    raw_hardware = data.get("hardware")
    if profile is not None:
        hardware = (
            Hardware.from_json(raw_hardware, base=profile.hardware)
            if raw_hardware
            else profile.hardware
        )
    elif raw_hardware:
        hardware = Hardware.from_json(raw_hardware)
        if not hardware.sites:
            hardware = Hardware.from_json(raw_hardware, base=_free_chain(n_atoms))
    else:
        hardware = _free_chain(n_atoms)
    noise = (
        NoiseModel.from_json(data["noise"])
        if data.get("noise") is not None
        else (profile.noise if profile is not None else NoiseModel())
    )
    shot_count = _count("shots", shots if shots is not None else data.get("shots", 1), 1)
    raw_seed = seed if seed is not None else data.get("seed")
    job_seed = None if raw_seed is None else _count("seed", raw_seed, 0)
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise _malformed("metadata must be an object", field="metadata")
    threads = data.get("max_threads")
    return Job(
        job_id=str(data.get("job_id", "job")),
        device_id=backend,
        profile=profile.name if profile is not None else None,
        shots=shot_count,
        seed=job_seed,
        isa_version=version,
        program=program,
        hardware=hardware,
        noise=noise,
        metadata=dict(metadata),
        max_threads=None if threads is None else _count("max_threads", threads, 0),
    )


def read_job(path: str | Path) -> Any:
    """The JSON object in ``path``.

    Raises:
        DeviceError: ``QD101`` when the file cannot be read or is not JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _malformed(f"{path}: not a readable JSON job: {exc}", path=str(path)) from None


__all__ = ["AUTO", "DEVICE_IDS", "STABILIZER", "STATEVECTOR", "Job", "parse_job", "read_job"]
