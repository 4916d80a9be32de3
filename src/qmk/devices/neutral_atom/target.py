"""The ``neutral-atom`` target: the neutral-atom device (:mod:`qmk.execution.target`).

Its program is a device job in the wire form (:mod:`.job`), or a QVM program, which it
compiles onto a preset first (:func:`~.compiler.compile_program`: native gates, placement,
routing). The job is parsed, checked by the device's validators and scheduled when it
compiles: a job the device would refuse is refused then, with its ``QD`` code. It runs
on the emulator (:func:`~.emulator.run_job`) with its shots, its seed and a control
that may pause it between its chunks of shots.

Its options (``RunRequest.target_options``, a job's ``policy`` keys):

- ``preset``: the device's preset (``qmk device list``) in place of the job's own
  ``profile``; for a QVM program, the device it compiles onto (default
  :data:`DEFAULT_PRESET`). A run outside a kernel (``local``) may name a profile file.
- ``backend``: ``state-vector``, ``stabilizer`` or ``auto`` (the job's ``device_id``).
- ``strict_timing``: refuse an operation inside a measurement cooldown (``QD209``)
  instead of waiting.
- ``stream``: what the job streams while it runs and keeps as artifacts
  (:mod:`.streams`: ``measurements``, ``pulses``, ``snapshots``).
- ``routing``, ``configuration``: how a QVM program is compiled (moves or SWAPs; the
  preset's configuration family).

``noise`` off runs the device without its noise model. The logical machine's settings
(an engine, a precision, a qubit set, a code profile, a noise model, a calibration, an
initial or final state) are refused with ``QM102``.

The result is the one :class:`~qmk.execution.result.RunResult`. A device job's counts
are keyed as the emulator keys them (every Measure's bits in program order, ``L`` for a
lost atom); a compiled program's as :func:`qmk.run` keys them. Its ``device`` holds the
profile, backend, ISA version, the device's own counts, telemetry and timeline. A
compiled program's result holds the ``compile`` report and the ``job`` that ran too. Its
footprint is the device schedule's: the atoms it holds, its time in ns, a step per
operation (measurements counted), no tiles of the logical machine's floorplan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import numpy as np

from qmk.devices.errors import DeviceError
from qmk.execution.footprint import Footprint, Step, StepKind
from qmk.execution.target import MACHINE_SETTINGS, own_options, read_qvm, refuse
from qmk.qvm.graph import GraphText

if TYPE_CHECKING:
    from qmk.devices.neutral_atom.compiler import CompileReport
    from qmk.devices.neutral_atom.job import Job
    from qmk.devices.neutral_atom.schedule import Timeline
    from qmk.devices.neutral_atom.streams import StreamSpec
    from qmk.execution.request import RunRequest
    from qmk.execution.result import RunResult, Telemetry
    from qmk.execution.trajectories import Control

NAME = "neutral-atom"
#: The capability a device job needs.
DEVICE_CAP = "CAP_DEVICE_NA"
#: The preset a QVM program is compiled onto when the run names none.
DEFAULT_PRESET = "ideal_small_array"

#: The logical machine's settings, which the device has no use for: field -> option.
_UNHONOURED = {"engine": "engine", **MACHINE_SETTINGS}
_WHY = "the device's preset sets its physics, and its backend simulates it"


class NeutralAtomOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The target's options (module docstring)."""

    preset: str | None = None
    backend: str | None = None
    strict_timing: bool = False
    stream: Any = None
    routing: Literal["auto", "move", "swap"] = "auto"
    configuration: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceJob:
    """A device job in the wire form, as the target reads it (checked when compiled)."""

    wire: Mapping[str, Any]

    #: What a job of it needs of its session.
    required_caps = (DEVICE_CAP,)


@dataclass(frozen=True, slots=True)
class OnDevice:
    """A verified QVM program to compile onto the device: it needs the capabilities its
    program needs and the device's."""

    program: Any

    @property
    def required_caps(self) -> tuple[str, ...]:
        return (*self.program.required_caps, DEVICE_CAP)


def is_device_job(data: Any) -> bool:
    """Whether ``data`` is read as a device job (its wire form, checked when it compiles:
    any JSON object) rather than a QVM graph (an object whose ``program`` is an object
    of nodes)."""
    return isinstance(data, Mapping) and not isinstance(data.get("program"), Mapping)


class NeutralAtomTarget:
    """The neutral-atom device as a target (module docstring)."""

    name = NAME

    def read(self, source: Any, *, limits: Any = None) -> Any:
        """A :class:`DeviceJob` (from its wire form, its JSON text or file), or a QVM
        program verified, to compile onto the device (:class:`OnDevice`). ``limits``'
        ``max_nodes`` (:class:`~qmk.qvm.limits.Limits`) bounds a device job's items
        (:func:`~.job.job_size`) before any is built, as it bounds a graph's nodes.

        Raises:
            DeviceError: ``QD101`` a job file that is not JSON.
            QuotaError: a device job past ``max_nodes`` items (``max_graph_nodes``).
            QMKError: a QVM program that does not read or verify.
        """
        from qmk.devices.neutral_atom.job import check_size, read_job

        data = source
        if isinstance(source, GraphText):
            data = json.loads(source.text)
        elif isinstance(source, str) and source.lstrip().startswith("{"):
            data = json.loads(source)
        elif isinstance(source, str | Path) and str(source).endswith(".json"):
            data = read_job(source)
        if is_device_job(data):
            most = None if limits is None else limits.max_nodes
            if most is not None:
                check_size(data, most)
            return DeviceJob(wire=dict(data))
        return OnDevice(read_qvm(data, limits=limits))

    def compile(
        self,
        program: Any,
        request: RunRequest,
        *,
        local: bool = False,
        profile: Any = None,
        **options: Any,
    ) -> DeviceExecutable:
        """The job of ``program`` under ``request``, checked and scheduled on the device.
        ``local``: a run in the caller's own process (its preset may be a profile file); a
        kernel's job names shipped presets only. ``profile``: a local run's device
        profile itself (a :class:`~.profiles.Profile`, e.g. a preset with its losses
        taken out), in place of the preset.

        Raises:
            TargetError: ``QM102`` an option or setting it cannot honour.
            DeviceError: what the compiler, the job's parser, the validators or the
                backend refuse (its ``QD`` code).
        """
        chosen = own_options(
            NAME,
            request,
            options,
            NeutralAtomOptions,
            unhonoured=_UNHONOURED,
            why=_WHY,
            channels="a device job has no channels",
        )
        if profile is not None and not local:
            raise refuse(NAME, "profile", "a kernel's job names a shipped preset")
        if isinstance(program, DeviceJob):
            return _job(program, request, chosen, local=local, profile=profile)
        verified = program.program if isinstance(program, OnDevice) else program
        return _compiled(verified, request, chosen, local=local, profile=profile)


def _preset(name: str | None, *, local: bool) -> Any:
    """The profile ``name`` names (None: none): a shipped preset, or (``local``) a file.

    Raises:
        DeviceError: ``QD104`` no such preset (a kernel's job names no file of its host).
    """
    from qmk.devices.neutral_atom.profiles import load_profile, presets

    if name is None:
        return None
    if not local and name not in presets():
        raise DeviceError.of(
            "preset-unknown",
            f"no preset {name!r}; a device job names a shipped preset "
            f"({', '.join(presets())}) or gives its hardware in the job",
            preset=name,
        )
    return load_profile(name)


def _job(
    program: DeviceJob,
    request: RunRequest,
    chosen: NeutralAtomOptions,
    *,
    local: bool,
    profile: Any = None,
) -> DeviceExecutable:
    """A device job checked and scheduled (the module docstring)."""
    if chosen.routing != "auto" or chosen.configuration is not None:
        option = "routing" if chosen.routing != "auto" else "configuration"
        raise refuse(NAME, option, "a device job is run as it is written (it is not compiled)")
    wire = dict(program.wire)
    named = chosen.preset if chosen.preset is not None else wire.get("profile")
    if profile is None:
        profile = _preset(named, local=local)
    if chosen.preset is not None:
        wire["profile"] = chosen.preset
    return _checked(wire, profile, request, chosen, report=None)


def _compiled(
    program: Any,
    request: RunRequest,
    chosen: NeutralAtomOptions,
    *,
    local: bool,
    profile: Any = None,
) -> DeviceExecutable:
    """A QVM program compiled onto the preset, then checked as a job on that profile."""
    from qmk.devices.neutral_atom.compiler import compile_program
    from qmk.devices.neutral_atom.job import AUTO

    if profile is None:
        profile = _preset(chosen.preset or DEFAULT_PRESET, local=local)
    wire, report = compile_program(
        program,
        profile,
        routing=chosen.routing,
        configuration=chosen.configuration,
        shots=request.shots,
        seed=request.seed,
        backend=chosen.backend or AUTO,
        noiseless=not request.noise,
    )
    return _checked(wire, profile, request, chosen, report=report)


def _checked(
    wire: dict[str, Any],
    profile: Any,
    request: RunRequest,
    chosen: NeutralAtomOptions,
    *,
    report: CompileReport | None,
) -> DeviceExecutable:
    from qmk.devices.neutral_atom.emulator import choose_backend, lower
    from qmk.devices.neutral_atom.isa import OpKind
    from qmk.devices.neutral_atom.job import parse_job
    from qmk.devices.neutral_atom.noise import NoiseModel
    from qmk.devices.neutral_atom.validate import validate_job

    if profile is not None and not request.noise:
        profile = replace(profile, noise=NoiseModel())
    if not request.noise:
        wire["noise"] = NoiseModel().to_json()
    wire.update(shots=request.shots, seed=request.seed)
    if chosen.backend is not None:
        wire["device_id"] = chosen.backend
    parsed = parse_job(wire, preset=profile)
    timeline = validate_job(parsed, strict_timing=chosen.strict_timing)
    stream = None
    if chosen.stream is not None:
        from qmk.devices.neutral_atom.streams import check, parse_spec

        stream = parse_spec(chosen.stream)
        if stream.empty:
            stream = None
        else:
            check(parsed, stream)
    analog = any(ins.kind is OpKind.EVOLVE for ins in parsed.program)
    backend = choose_backend(parsed, lower(parsed, timeline)) if not analog else "analog-exact"
    return DeviceExecutable(
        request=request,
        wire=wire,
        profile=profile,
        job=parsed,
        timeline=timeline,
        backend=backend,
        strict_timing=chosen.strict_timing,
        stream=stream,
        report=report,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceExecutable:
    """A device job checked and scheduled: its footprint and its runs."""

    request: RunRequest
    #: The wire-form job that runs (shots and seed the request's; compiled, for a QVM
    #: program).
    wire: Mapping[str, Any]
    profile: Any
    job: Job
    timeline: Timeline
    #: The backend the device chose (or the job named).
    backend: str
    strict_timing: bool = False
    stream: StreamSpec | None = None
    report: CompileReport | None = None
    _kept: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def footprint(self) -> Footprint:
        """The device schedule's footprint (module docstring)."""
        found = self._kept.get("footprint")
        if found is None:
            found = self._kept["footprint"] = _footprint(self)
        assert isinstance(found, Footprint)
        return found

    @property
    def atoms(self) -> int:
        """The atoms the job allocates."""
        return self.job.n_atoms

    def run(
        self,
        shots: int,
        seed: int,
        *,
        control: Control | None = None,
        resume: Any = None,
        sink: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> RunResult:
        """Run the job ``shots`` times seeded ``seed`` on the emulator. ``control`` may
        pause it between its chunks of shots (its state saved; ``resume`` goes on from
        one); ``sink`` takes the ``measurements`` records of each chunk when the job's
        stream asks for them (a kernel's job streams them to its tenant).

        Raises:
            DeviceError: what the backend refuses. Suspended: the control stopped it.
        """
        from qmk.devices.neutral_atom.emulator import run_job
        from qmk.devices.neutral_atom.job import parse_job

        began = time.perf_counter()
        job = self.job
        if (job.shots, job.seed) != (shots, seed):
            job = parse_job({**self.wire, "shots": shots, "seed": seed}, preset=self.profile)
        measured = self.stream is not None and self.stream.measurements
        result = run_job(
            job,
            strict_timing=self.strict_timing,
            control=control,
            resume=resume,
            on_shots=sink if measured else None,
        )
        return _result(self, job, result, began)


def _result(executable: DeviceExecutable, job: Job, result: Any, began: float) -> RunResult:
    from qmk.execution.result import LOST, RunResult
    from qmk.qvm.output import layout_of

    report = executable.report
    bits = np.where(result.bits < 0, LOST, result.bits).astype(np.uint8)
    if report is not None:  # a compiled program: its events, keyed as qmk.run keys them
        from qmk.devices.neutral_atom.run import program_counts

        counts = program_counts(result.bits, report)
        events = tuple(report.events)
        columns = [report.readout.get(e) for e in events]
        laid = np.zeros((bits.shape[0], len(events)), dtype=np.uint8)
        for k, column in enumerate(columns):
            if column is not None:
                laid[:, k] = bits[:, column]
        bits = laid
        layout = layout_of({"output": report.output} if report.output else None, events)
    else:
        counts = result.counts()
        events = tuple(f"m{k}" for k in range(bits.shape[1]))
        layout = None
    device = result.to_json(measurements=False)
    tel = dict(device["telemetry"])
    telemetry = _telemetry(
        device,
        atoms=job.n_atoms,
        program_ns=float(executable.timeline.total_ns),
        noise=executable.request.noise,
        named=job.device_id != "auto",
        wall_time_s=round(time.perf_counter() - began, 6),
    )
    details: dict[str, Any] = {"device": _device_details(device)}
    if report is not None:
        details["compile"] = report.to_json()
        details["job"] = dict(executable.wire)
    artifacts: tuple[dict[str, Any], ...] = ()
    if executable.stream is not None:
        from qmk.devices.neutral_atom.streams import artifacts as made

        artifacts = tuple(made(job, result, executable.stream))
    lines = [] if report is None else [report.summary().rstrip("\n")]
    lines.append(
        f"device: {job.profile or 'its own hardware'} on {result.device_id}, "
        f"{tel.get('atoms_lost', 0)} atom losses, {tel.get('inserted_waits', 0)} inserted "
        f"waits, {float(tel.get('elapsed_s', 0.0)):.3f} s"
    )
    return RunResult(
        counts=counts,
        shots=result.shots,
        seed=result.seed,
        engine=result.device_id,
        events=events,
        telemetry=telemetry,
        shot_bits=bits,
        layout=layout,
        target=NAME,
        details=details,
        artifacts=artifacts,
        summary="\n".join(lines) + "\n",
    )


def _telemetry(
    device: Mapping[str, Any],
    *,
    atoms: int,
    program_ns: float,
    noise: bool,
    named: bool,
    wall_time_s: float,
) -> Telemetry:
    """The run's telemetry from the device's result (``Result.to_json``): the device's
    own figures beside the fields every target reports."""
    from qmk.execution.result import Telemetry, telemetry_fields

    tel = device["telemetry"]
    profile = device.get("profile")
    return Telemetry(
        engine=device["device_id"],
        mode=str(tel.get("mode", device["device_id"])),
        shots=device["shots"],
        epochs=0,
        logical_cycles=0.0,
        logical_time_ns=program_ns,
        peak_logical_qubits=atoms,
        peak_physical_qubits=atoms,
        decoder_rounds=0.0,
        magic_states=0,
        teleports=0,
        injected_logical_errors=0,
        noise=noise,
        noise_locations=int(tel.get("noise_ops", 0)),
        qubit_params=profile or "",
        profiles=() if profile is None else (profile,),
        simulations=int(tel.get("simulations", 0)),
        checkpoints=int(tel.get("checkpoints", 0)),
        resumed_from_epoch=tel.get("resumed_from_epoch"),
        preempted_at_epochs=tuple(tel.get("preempted_at_epochs", ())),
        noise_sampling="off" if not noise else "device",
        wall_time_s=wall_time_s,
        engine_reason="named by the job" if named else "the device's choice",
        figures={k: v for k, v in tel.items() if k not in telemetry_fields()},
    )


def _device_details(device: Mapping[str, Any]) -> dict[str, Any]:
    """The result's ``device``: the device's own result, its measurements left out."""
    return {
        "job_id": device["job_id"],
        "profile": device["profile"],
        "backend": device["device_id"],
        "isa_version": device["isa_version"],
        "counts": device["counts"],
        "telemetry": dict(device["telemetry"]),
        "timeline_units": device["timeline_units"],
        "timeline": device["timeline"],
    }


def stored_device_result(
    device: Mapping[str, Any], wire: Mapping[str, Any], *, noise: bool
) -> dict[str, Any]:
    """The result of a device job (its wire form ``wire``) as this target returns it
    (``RunResult.to_json``), from the device's own result (``Result.to_json``).

    It keeps the counts as the device keys them, one event per recorded bit (``m0``,
    ...), the device's figures, the program time and the atoms of its telemetry. Only
    ``qmk admin migrate`` calls it: an older data directory stored the device's own form.

    >>> old = {"job_id": "j", "status": "completed", "device_id": "stabilizer",
    ...        "profile": None, "isa_version": "1.1", "shots": 4, "seed": 1,
    ...        "counts": {"00": 2, "1L": 2}, "timeline_units": "us", "timeline": [],
    ...        "telemetry": {"atoms": 2, "duration_ns": 500.0, "elapsed_s": 0.01}}
    >>> new = stored_device_result(old, {"device_id": "stabilizer"}, noise=True)
    >>> new["events"], new["engine"], new["target"], new["device"]["backend"]
    (['m0', 'm1'], 'stabilizer', 'neutral-atom', 'stabilizer')
    >>> new["telemetry"]["engine_reason"], new["telemetry"]["logical_time_ns"]
    ('named by the job', 500.0)
    """
    tel = device["telemetry"]
    telemetry = _telemetry(
        device,
        atoms=int(tel.get("atoms", 0)),
        program_ns=float(tel.get("duration_ns", 0.0)),
        noise=noise,
        named=wire.get("device_id", "auto") != "auto",
        wall_time_s=float(tel.get("elapsed_s", 0.0)),
    )
    width = len(next(iter(device["counts"]), ""))
    return {
        "counts": dict(device["counts"]),
        "shots": device["shots"],
        "seed": device["seed"],
        "engine": device["device_id"],
        "events": [f"m{k}" for k in range(width)],
        "telemetry": telemetry.to_json(),
        "target": NAME,
        "device": _device_details(device),
    }


#: Device operations that are measurements (a step's ``measurements``: its atoms).
_MEASURES = ("Measure",)


def _footprint(executable: DeviceExecutable) -> Footprint:
    """A step per operation of the device's schedule, by start time: its atoms measured,
    a wait the scheduler inserted as idle; no logical cycles (the device keeps time in
    ns: ``duration_ns``), no tiles of the logical machine."""
    timeline = executable.timeline
    entries = sorted(
        (*timeline.entries, *timeline.inserted), key=lambda e: (e.start_ns, e.index < 0, e.index)
    )
    steps: list[Step] = []
    for entry in entries:
        kind: StepKind = (
            "idle" if entry.inserted else "measure" if entry.op in _MEASURES else "gates"
        )
        measured = len(entry.atoms) if entry.op in _MEASURES else 0
        steps.append(Step(kind=kind, cycles=0, measurements=measured, node=str(entry.index)))
    from qmk.execution.footprint import merged

    return Footprint(
        target=NAME,
        logical_qubits=executable.atoms,
        block="compact",
        data_tiles=0,
        routing_tiles=0,
        code_distance=0,
        steps=merged(steps),
        physical_qubits=executable.atoms,
        duration_ns=float(timeline.total_ns),
    )


__all__ = [
    "DEFAULT_PRESET",
    "DEVICE_CAP",
    "NAME",
    "DeviceExecutable",
    "DeviceJob",
    "NeutralAtomOptions",
    "NeutralAtomTarget",
    "OnDevice",
    "is_device_job",
]
