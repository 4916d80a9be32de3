"""A wire-form job as one value: program, hardware, noise, backend, shots, seed.

Public API: :class:`Job`, :func:`parse_job`, :func:`read_job` (a JSON file),
:data:`DEVICE_IDS` (the backends a job may name), :class:`JobWire` (the job's schema: a
frozen ``msgspec.Struct`` of its fields, whose ``hardware`` is
:class:`~qmk.devices.neutral_atom.profiles.HardwareWire`, its program the ISA's and its
noise the noise model's; ``qmk schema --kind device-job`` prints it as JSON Schema).

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
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from qmk import defaults, values
from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.backends import BACKENDS
from qmk.devices.neutral_atom.isa import (
    Instruction,
    IsaVersion,
    OpKind,
    parse_program,
    parse_version,
)
from qmk.devices.neutral_atom.noise import NoiseModel
from qmk.devices.neutral_atom.profiles import Hardware, Profile, Site, load_profile
from qmk.errors import QuotaError

#: The backends a job may name (:data:`~.backends.BACKENDS`); ``auto`` chooses (see the
#: module docstring).
STATEVECTOR, STABILIZER, AUTO = "state-vector", "stabilizer", "auto"
DEVICE_IDS: tuple[str, ...] = (*BACKENDS, AUTO)


def _ref(name: str, *, null: bool = False) -> dict[str, Any]:
    """The JSON Schema of a field whose checks are another module's (``$defs`` entry)."""
    ref = {"$ref": f"#/$defs/{name}"}
    return {"anyOf": [ref, {"type": "null"}]} if null else ref


class JobWire(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A neutral-atom job as it travels (wire form v1; QMK's extensions say so)."""

    job_id: str = "job"
    device_id: Annotated[
        str | None,
        Meta(
            description="the backend (auto: the stabilizer for a Clifford program with Pauli "
            "noise, else the statevector; qmk device show lists each with its capabilities)",
            extra_json_schema={"enum": [*DEVICE_IDS, None]},
        ),
    ] = None
    profile: Annotated[str | None, Meta(description="a preset name")] = None
    #: At most :data:`qmk.defaults.MAX_SHOTS`, as every run (10**20 was an internal error).
    shots: Annotated[int, Meta(ge=1, le=defaults.MAX_SHOTS)] = 1
    seed: Annotated[
        Annotated[int, Meta(ge=0, le=defaults.SEED_BOUND - 1)] | None,
        Meta(description="QMK: the RNG seed"),
    ] = None
    max_threads: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        Meta(description="accepted for compatibility; the emulator is single-threaded"),
    ] = None
    isa_version: Annotated[
        Any,
        Meta(
            description='{"major", "minor"} or "M.N"',
            extra_json_schema=_ref("isa_version", null=True),
        ),
    ] = None
    metadata: dict[str, Any] | None = None
    program: Annotated[
        list[Any],
        Meta(description="the instructions", extra_json_schema={"items": _ref("instruction")}),
    ]
    hardware: Annotated[
        Any,
        Meta(
            description="replaces the preset's hardware field by field",
            extra_json_schema=_ref("HardwareWire", null=True),
        ),
    ] = None
    noise: Annotated[
        Any,
        Meta(
            description="replaces the preset's noise whole",
            extra_json_schema=_ref("noise", null=True),
        ),
    ] = None
    blockade_subspace_radius: Annotated[
        Annotated[float, Meta(ge=0)] | None,
        Meta(
            description="QMK, analog mode: also drop basis states with two atoms closer than "
            "this (um) both in |r>, as Bloqade's blockade_radius does; an approximation the "
            "result reports (default: only the exact reduction)"
        ),
    ] = None
    stim_circuit: Annotated[
        Any,
        Meta(
            description="refused: the device runs the job's own program",
            extra_json_schema={"enum": [None, ""]},
        ),
    ] = None


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
    #: Analog mode: the radius (um) of the approximate blockade subspace (0: exact only).
    blockade_subspace_radius: float = 0.0

    @property
    def n_atoms(self) -> int:
        """How many atoms the program allocates (0 when it allocates none)."""
        return next((i.n_qubits for i in self.program if i.kind is OpKind.ALLOC), 0)


def _malformed(message: str, **details: Any) -> DeviceError:
    return DeviceError.of("job-malformed", message, **details)


def _free_chain(n: int) -> Hardware:
    return Hardware(sites=tuple(Site(id=i, x=float(i)) for i in range(n)), site_ids=tuple(range(n)))


def _hardware(raw: Any, profile: Profile | None, n_atoms: int) -> Hardware:
    """The job's hardware over its preset's (or, with neither, a free chain of its atoms)."""
    if profile is not None:
        return Hardware.from_json(raw, base=profile.hardware) if raw else profile.hardware
    if raw:
        hardware = Hardware.from_json(raw)
        return hardware if hardware.sites else Hardware.from_json(raw, base=_free_chain(n_atoms))
    return _free_chain(n_atoms)


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
        data: the parsed JSON object (its schema: :class:`JobWire`).
        preset: a preset name (or a :class:`Profile`) in place of the job's ``profile``.
        shots, seed, device_id: in place of the job's.

    Raises:
        DeviceError: ``QD101`` malformed, ``QD102`` ISA version, ``QD103`` device id,
            ``QD104`` preset, ``QD105`` hardware, ``QD106`` op, ``QD108`` noise.
    """
    if not isinstance(data, Mapping):
        raise _malformed(f"a job is a JSON object, got {type(data).__name__}")
    overrides = {"shots": shots, "seed": seed, "device_id": device_id}
    given = {**data, **{key: value for key, value in overrides.items() if value is not None}}
    wire: JobWire = values.convert(
        given, JobWire, error=lambda message, key: _malformed(message, field=key)
    )
    if wire.stim_circuit:
        raise _malformed(
            "stim_circuit is not supported: the device runs the job's own program "
            "(with its noise model) on every backend",
            field="stim_circuit",
        )
    version = parse_version(wire.isa_version)
    program = parse_program(wire.program, version=version)
    backend = wire.device_id or AUTO
    if backend not in DEVICE_IDS:
        raise DeviceError.of(
            "device-id-unknown",
            f"no device_id {backend!r}; device ids: {', '.join(DEVICE_IDS)}",
            device_id=backend,
            device_ids=list(DEVICE_IDS),
        )
    chosen = preset if preset is not None else wire.profile
    profile = load_profile(chosen) if isinstance(chosen, str) else chosen
    n_atoms = next((i.n_qubits for i in program if i.kind is OpKind.ALLOC), 0)
    noise = (
        NoiseModel.from_json(wire.noise)
        if wire.noise is not None
        else (profile.noise if profile is not None else NoiseModel())
    )
    return Job(
        job_id=wire.job_id,
        device_id=backend,
        profile=profile.name if profile is not None else None,
        shots=wire.shots,
        seed=wire.seed,
        isa_version=version,
        program=program,
        hardware=_hardware(wire.hardware, profile, n_atoms),
        noise=noise,
        metadata=dict(wire.metadata or {}),
        max_threads=wire.max_threads,
        blockade_subspace_radius=wire.blockade_subspace_radius or 0.0,
    )


def job_size(data: Any, most: int | None = None) -> int:
    """The items reading the job ``data`` (its JSON) would build, counted before any is
    built: every entry of every list in it (its instructions, their targets and waveform
    points, its hardware's positions and sites, ...) and the atoms it allocates (a job
    that gives no geometry gets a site for each). Counting stops past ``most``.

    >>> job_size({"program": [{"op": "AllocArray", "n_qubits": 4},
    ...                       {"op": "Measure", "targets": [0, 1]}]})
    8
    """
    count = 0
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            if value.get("op") == "AllocArray" and type(value.get("n_qubits")) is int:
                count += max(value["n_qubits"], 0)
            inner: Any = value.values()
        elif isinstance(value, list):
            count += len(value)
            inner = value
        else:
            continue
        if most is not None and count > most:
            break  # before its entries are walked
        stack.extend(v for v in inner if isinstance(v, list | Mapping))
    return count


def check_size(data: Any, most: int) -> None:
    """Refuse a job whose reading would build more than ``most`` items (:func:`job_size`),
    before any is built.

    Raises:
        QuotaError: ``QS1006`` with ``limit: "max_graph_nodes"`` (the kernel's
            ``max_graph_nodes`` is a device job's cap too).
    """
    size = job_size(data, most)
    if size > most:
        raise QuotaError(
            f"the device job has more than {most} items (instructions, list entries, atoms "
            "allocated), past the kernel.max_graph_nodes a job may have; nothing was built",
            limit="max_graph_nodes",
            value=most,
            needed=size,
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


__all__ = [
    "AUTO",
    "DEVICE_IDS",
    "STABILIZER",
    "STATEVECTOR",
    "Job",
    "JobWire",
    "check_size",
    "job_size",
    "parse_job",
    "read_job",
]
