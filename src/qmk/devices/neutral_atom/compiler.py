"""The neutral-atom compiler: a verified QVM program onto a device profile, as a wire job.

:func:`compile_program` lowers the program (:mod:`.lowering`), places and routes it and
writes native gates (:mod:`.routing`), and validates the job it wrote through the
device's own validators; :class:`CompileReport` says what it did. The steps are
described in :mod:`qmk.devices.neutral_atom.compile`, which also names the runner.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.geometry import Geometry
from qmk.devices.neutral_atom.isa import CURRENT, GATES
from qmk.devices.neutral_atom.job import AUTO, parse_job
from qmk.devices.neutral_atom.lowering import lower
from qmk.devices.neutral_atom.noise import NoiseModel
from qmk.devices.neutral_atom.profiles import Configuration, Profile, load_profile, presets
from qmk.devices.neutral_atom.routing import Device, Emitter, place
from qmk.devices.neutral_atom.validate import validate_job
from qmk.qvm.graph import Graph
from qmk.qvm.ops import OPS as QVM_OPS
from qmk.qvm.verify import VerifiedProgram, verify

#: How the compiler may route a CZ whose atoms are not coupled.
ROUTINGS: tuple[str, ...] = ("auto", "move", "swap")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompileReport:
    """What the compiler did.

    Attributes:
        profile, configuration: the device and its configuration family.
        routing: the routing asked for (``auto``, ``move`` or ``swap``).
        qubits: the program's qubits, in order of first use.
        placement: qubit -> atom at the start; ``sites``: atom -> lattice site.
        final_placement: qubit -> atom at the end (SWAPs move qubits between atoms).
        atoms: atoms allocated (the AllocArray), of ``configured`` on the configuration.
        gates_before: the program's ops by name; ``gates_after``: the device program's
            instructions by gate name (``MoveAtom``, ``Measure``, ``Reset`` by op).
        routed: CZs whose atoms were not coupled; ``moves`` and ``swaps`` inserted for them.
        depth: layers of the device program (each atom's operations in order);
            ``two_qubit_depth``: layers counting two-qubit gates only.
        duration_ns: the scheduled program time (the device's timeline), per shot.
        events: the program's events; ``readout``: event -> column of the device's bits.
        ignored: ops that change no atom (FREE_LQ, fences, regions, policies), by name.
        dropped: one-qubit gate runs dropped after a qubit's last measurement.
    """

    profile: str
    configuration: str
    routing: str
    qubits: tuple[str, ...]
    placement: Mapping[str, int]
    final_placement: Mapping[str, int]
    sites: Mapping[int, int]
    atoms: int
    configured: int
    gates_before: Mapping[str, int]
    gates_after: Mapping[str, int]
    routed: int
    moves: int
    swaps: int
    depth: int
    two_qubit_depth: int
    duration_ns: float
    events: tuple[str, ...]
    readout: Mapping[str, int]
    ignored: Mapping[str, int]
    dropped: int
    output: Mapping[str, Any] | None = None

    @property
    def two_qubit_before(self) -> int:
        """Two- and three-qubit gates of the program (a CCX counts once)."""
        names = ("APPLY_CNOT", "APPLY_CZ", "APPLY_SWAP", "TELEPORT_CNOT", "APPLY_CCX", "APPLY_CCZ")
        return sum(self.gates_before.get(n, 0) for n in names)

    @property
    def gates_before_total(self) -> int:
        """The program's gates (unitary ops)."""
        return sum(c for op, c in self.gates_before.items() if QVM_OPS[op].unitary)

    @property
    def gates_after_total(self) -> int:
        """The device program's gates (ApplyGate instructions)."""
        return sum(c for name, c in self.gates_after.items() if name in GATES)

    @property
    def two_qubit_after(self) -> int:
        """Two-qubit gates of the device program."""
        return self.gates_after.get("CZ", 0) + self.gates_after.get("CX", 0)

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON (``qmk run --device --json`` prints it as ``compile``)."""
        return {
            "profile": self.profile,
            "configuration": self.configuration,
            "routing": self.routing,
            "qubits": list(self.qubits),
            "placement": dict(self.placement),
            "final_placement": dict(self.final_placement),
            "sites": {str(a): s for a, s in self.sites.items()},
            "atoms": self.atoms,
            "configured_atoms": self.configured,
            "ops_before": dict(self.gates_before),
            "ops_after": dict(self.gates_after),
            "gates_before": self.gates_before_total,
            "gates_after": self.gates_after_total,
            "two_qubit_before": self.two_qubit_before,
            "two_qubit_after": self.two_qubit_after,
            "routed": self.routed,
            "moves": self.moves,
            "swaps": self.swaps,
            "depth": self.depth,
            "two_qubit_depth": self.two_qubit_depth,
            "duration_ns": self.duration_ns,
            "events": list(self.events),
            "readout": dict(self.readout),
            "ignored": dict(self.ignored),
            "dropped_gate_runs": self.dropped,
        }

    def summary(self) -> str:
        """A few lines for people (``qmk run --device`` prints them)."""
        place = ", ".join(f"{q}->{a}" for q, a in self.placement.items())
        before = self.gates_before_total
        after = sum(v for k, v in self.gates_after.items() if k in GATES)
        lines = [
            f"compiled onto {self.profile} ({self.configuration}): {self.atoms} of "
            f"{self.configured} atoms allocated, routing {self.routing}",
            f"  placement (qubit->atom): {place or '-'}",
            f"  gates {before} -> device gates {after} "
            f"({self.two_qubit_before} multi-qubit -> {self.two_qubit_after} CZ); "
            f"{self.routed} CZ routed: {self.moves} moves, {self.swaps} swaps",
            f"  depth {self.depth} ({self.two_qubit_depth} two-qubit layers), "
            f"program time {self.duration_ns / 1000:g} us per shot",
        ]
        return "\n".join(lines) + "\n"


def _depths(program: Sequence[Mapping[str, Any]], n_atoms: int) -> tuple[int, int]:
    depth = [0] * n_atoms
    two = [0] * n_atoms
    for item in program:
        op = item["op"]
        atoms = item.get("targets") or ([item["atom"]] if "atom" in item else [])
        if not atoms:
            continue
        layer = max(depth[a] for a in atoms) + 1
        for a in atoms:
            depth[a] = layer
        if op == "ApplyGate" and len(atoms) == 2:
            layer2 = max(two[a] for a in atoms) + 1
            for a in atoms:
                two[a] = layer2
    return max(depth, default=0), max(two, default=0)


def profile_of(profile: str | os.PathLike[str] | Profile) -> Profile:
    return profile if isinstance(profile, Profile) else load_profile(os.fspath(profile))


def _verified(program: Graph | VerifiedProgram) -> VerifiedProgram:
    return program if isinstance(program, VerifiedProgram) else verify(program)


def compile_program(
    program: Graph | VerifiedProgram,
    profile: str | os.PathLike[str] | Profile,
    *,
    routing: str = "auto",
    configuration: str | None = None,
    shots: int = 1,
    seed: int | None = None,
    backend: str = AUTO,
    noiseless: bool = False,
    job_id: str = "compiled",
) -> tuple[dict[str, Any], CompileReport]:
    """Compile a QVM program onto a device profile (see the module docstring).

    Args:
        program: a graph (verified here) or a verified program.
        profile: a preset name, a profile file, or a :class:`Profile`.
        routing: ``auto`` (moves where the move limits allow, else SWAPs), ``move`` or
            ``swap``.
        configuration: the profile's configuration family (default: its default).
        shots, seed, backend: written into the job (``device_id`` is the backend).
        noiseless: the job carries an empty noise model (the profile's geometry and
            timing, no noise).
        job_id: the job's id.

    Returns:
        ``(job, report)``: the wire-form job (a JSON object) and the :class:`CompileReport`.

    Raises:
        DeviceError: ``QD301`` a construct the ISA cannot express (naming the node),
            ``QD302`` more qubits than atoms, ``QD303`` a CZ that cannot be routed,
            ``QD104``/``QD105`` for the profile; a ``QD2xx`` violation would be a
            compiler bug (the job is validated before it is returned).
        QMKError: the program does not verify.
    """
    if routing not in ROUTINGS:
        raise DeviceError.of(
            "job-malformed", f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}"
        )
    chosen = profile_of(profile)
    config = chosen.configuration(configuration)
    hardware = chosen.hardware.with_site_ids(config.site_ids)
    if noiseless:
        chosen = replace(chosen, noise=NoiseModel())
    verified = _verified(program)
    low = lower(verified)
    device = Device(chosen, hardware)
    n_wires = len(low.names)
    if n_wires > device.n_configured:
        raise DeviceError.of(
            "too-few-atoms",
            f"the program uses {n_wires} qubits; {chosen.name} ({config.name}) has "
            f"{device.n_configured} atoms",
            needed=n_wires,
            atoms=device.n_configured,
        )
    weights: Counter[tuple[int, int]] = Counter()
    for op in low.ops:
        if op.kind == "cz":
            u, v = sorted(op.wires)
            weights[(u, v)] += 1
    everyone = Geometry.start(hardware, device.n_configured)
    layout = place(n_wires, weights, device.neighbours(everyone, range(device.n_configured)))
    n_atoms = max(layout, default=-1) + 1 if n_wires else 0
    n_atoms = max(n_atoms, 1)
    geometry = Geometry.start(hardware, n_atoms)
    emitter = Emitter(device=device, geometry=geometry, wire_atom=list(layout), routing=routing)
    for op in low.ops:
        if op.kind == "u":
            assert op.matrix is not None
            emitter.u(emitter.wire_atom[op.wires[0]], op.matrix)
        elif op.kind == "cz":
            emitter.cz(*op.wires)
        elif op.kind == "measure":
            emitter.measure(emitter.wire_atom[op.wires[0]], op.event)
        else:
            emitter.reset(emitter.wire_atom[op.wires[0]])
    dropped = len(emitter.pending)  # runs after the last measurement change no outcome
    emitter.pending.clear()
    instructions = [{"op": "AllocArray", "n_qubits": n_atoms}, *emitter.program]
    job = _job_json(
        chosen,
        config,
        instructions,
        shots=shots,
        seed=seed,
        backend=backend,
        noiseless=noiseless,
        job_id=job_id,
        readout=emitter.records,
    )
    timeline = validate_job(parse_job(job, preset=chosen))
    counts: Counter[str] = Counter()
    for item in emitter.program:
        counts[item["name"] if item["op"] == "ApplyGate" else item["op"]] += 1
    depth, two_depth = _depths(emitter.program, n_atoms)
    events = verified.graph.resources.events
    metadata = verified.graph.metadata
    report = CompileReport(
        profile=chosen.name,
        configuration=config.name,
        routing=routing,
        qubits=tuple(low.names),
        placement={low.names[w]: layout[w] for w in range(n_wires)},
        final_placement={low.names[w]: emitter.wire_atom[w] for w in range(n_wires)},
        sites={a: hardware.site_ids[a] for a in range(n_atoms)},
        atoms=n_atoms,
        configured=device.n_configured,
        gates_before=dict(low.before),
        gates_after=dict(sorted(counts.items())),
        routed=emitter.routed,
        moves=emitter.moves,
        swaps=emitter.swaps,
        depth=depth,
        two_qubit_depth=two_depth,
        duration_ns=timeline.total_ns,
        events=tuple(events),
        readout=dict(emitter.records),
        ignored=dict(low.ignored),
        dropped=dropped,
        output=None if metadata is None else metadata.get("output"),
    )
    return job, report


def _job_json(
    profile: Profile,
    configuration: Configuration,
    program: list[dict[str, Any]],
    *,
    shots: int,
    seed: int | None,
    backend: str,
    noiseless: bool,
    job_id: str,
    readout: Mapping[str, int],
) -> dict[str, Any]:
    """The wire-form job: the preset by name when it is one, else the hardware and noise."""
    job: dict[str, Any] = {
        "job_id": job_id,
        "device_id": backend,
        "isa_version": str(CURRENT),
        "shots": shots,
    }
    if seed is not None:
        job["seed"] = seed
    is_preset = (
        profile.name in presets() and load_profile(profile.name).hardware == profile.hardware
    )
    if is_preset:
        job["profile"] = profile.name
        if configuration.site_ids != profile.hardware.site_ids:
            job["hardware"] = {"site_ids": list(configuration.site_ids)}
    else:
        job["hardware"] = profile.hardware.with_site_ids(configuration.site_ids).to_json()
    if noiseless or not is_preset:
        job["noise"] = profile.noise.to_json()
    job["program"] = program
    job["metadata"] = {
        "compiled_by": "qmk.devices.neutral_atom.compile",
        "configuration": configuration.name,
        "readout": dict(readout),
    }
    return job


__all__ = ["ROUTINGS", "CompileReport", "compile_program", "profile_of"]
