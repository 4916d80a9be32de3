"""The ``QD`` family: what a hardware-style device (the neutral-atom VM) refuses.

Each refusal is a coded :class:`DeviceError`.

Codes ``QD1xx`` are about the job itself (its wire form, ISA version, device id, preset,
profile and noise values, a backend that cannot run it); ``QD2xx`` are hardware-constraint
violations found by the validators (:mod:`qmk.devices.neutral_atom.validate`) before any
execution; ``QD3xx`` are programs the compiler (:mod:`qmk.devices.neutral_atom.compile`)
cannot lower onto a device. A violation's message names the instruction index, the atoms,
their sites or coordinates and the limit; ``details`` carries the same as data.

>>> err = DeviceError.of("isa-version-unsupported", "ISA 2.0 is not supported; supported: 1.0, 1.1")
>>> str(err), err.exit_status
('QD102 isa-version-unsupported: ISA 2.0 is not supported; supported: 1.0, 1.1', 2)
"""

from __future__ import annotations

from qmk.errors import QMKError, register


class DeviceError(QMKError):
    """The neutral-atom device refused a job, a profile or an instruction; nothing ran."""

    exit_status = 2


register(
    DeviceError,
    (
        "QD101",
        "job-malformed",
        "a job that is not of the wire form: a missing or mistyped field",
        "write the job as docs/neutral-atom.md shows (qmk device isa --json has the schema)",
    ),
    (
        "QD102",
        "isa-version-unsupported",
        "an isa_version the device does not implement",
        "use a version qmk device isa lists",
    ),
    (
        "QD103",
        "device-id-unknown",
        "a device_id (backend) the device does not have",
        "use a device_id the message lists (state-vector, stabilizer or auto)",
    ),
    (
        "QD104",
        "preset-unknown",
        "a profile or --device name that is not a shipped preset",
        "use a name qmk device list shows, or give the hardware in the job",
    ),
    (
        "QD105",
        "profile-invalid",
        "a device profile whose fields do not fit together (sites, zones, limits)",
        "fix the field the message names; qmk device show PRESET --json is a template",
    ),
    (
        "QD106",
        "op-unknown",
        "an instruction whose op or gate the ISA version does not define",
        "use an op or gate qmk device isa lists for that version",
    ),
    (
        "QD107",
        "backend-unsupported",
        "a backend asked for a job beyond it (the stabilizer backend and a non-Clifford gate "
        "or amplitude damping)",
        "use device_id state-vector, or auto to let the device choose",
    ),
    (
        "QD108",
        "noise-invalid",
        "a noise value out of range: a probability outside [0, 1], a negative rate",
        "give probabilities in [0, 1] and rates per second >= 0",
    ),
    (
        "QD109",
        "calibration-unsupported",
        "a calibration the device cannot ingest (a logical-code fit, or Majorana qubits)",
        "give gate-based qubit parameters (QRE's JSON form), or a profile with the noise",
    ),
    (
        "QD110",
        "analog-unsupported",
        "an analog (Evolve) job the emulator cannot run as asked: noise the analog mode does "
        "not model (p_prep, phase.idle), a MoveAtom after an Evolve, or the stabilizer backend",
        "give only the noise docs/neutral-atom.md lists for analog mode; move atoms before "
        "the first Evolve; use device_id auto or state-vector",
    ),
    (
        "QD111",
        "analog-too-large",
        "an analog job whose basis (after the exact blockade reduction) is larger than the "
        "emulator's max_states (max_states_noisy with decoherence)",
        "use fewer atoms, or raise hardware.drive_limits.max_states if memory allows",
    ),
    (
        "QD112",
        "mitigation-invalid",
        "a mitigation request the device cannot carry out: a bad observable, noise-scale "
        "factors that make a probability exceed 1, a job whose measured bits mitigation "
        "cannot use (an atom measured twice, no shot without a lost atom)",
        "name measured bits in the observable (Z0Z1: bits 0 and 1 of the job's Measures), "
        "use smaller --zne-scales, measure each atom once",
    ),
    (
        "QD113",
        "backend-unavailable",
        "a backend whose engine is not available here (the GPU backend with no CUDA GPU or "
        "no cuquantum)",
        "pick a backend qmk device show marks available, or install its extra on a GPU host",
    ),
    (
        "QD114",
        "stream-invalid",
        "a stream request the device cannot serve: an unknown stream, a snapshot point "
        "outside the program or after a measurement, snapshots of more than 16 atoms",
        "ask for measurements, pulses and snapshots (at instruction indices, or at times "
        "in ns for an analog job) as docs/neutral-atom.md shows",
    ),
    (
        "QD201",
        "gate-not-native",
        "a gate (or arity) the device's native gate catalog does not list",
        "decompose it into catalog gates (qmk device show PRESET lists them)",
    ),
    (
        "QD202",
        "angle-out-of-range",
        "a gate angle outside the catalog's [angle_min, angle_max]",
        "wrap or split the rotation so each angle is in range",
    ),
    (
        "QD203",
        "not-connected",
        "a multi-qubit gate on atoms the connectivity does not join at that instruction",
        "move the atoms next to each other (MoveAtom) or route with SWAPs first",
    ),
    (
        "QD204",
        "blockade",
        "a two-qubit gate on atoms outside the blockade radius at that instruction",
        "move the atoms within the blockade radius first",
    ),
    (
        "QD205",
        "spacing",
        "a move that brings two atoms closer than the minimum spacing",
        "move the atom to a free site at least the minimum spacing away from others",
    ),
    (
        "QD206",
        "transport",
        "a move that does not follow the transport graph (no path, off-lattice, occupied)",
        "move along transport_edges to a free lattice site",
    ),
    (
        "QD207",
        "move-budget",
        "a move beyond the move limits (moves per atom or shot, displacement, window)",
        "use fewer or shorter moves, or split the rearrangement",
    ),
    (
        "QD208",
        "timing",
        "a Wait outside [min_wait_ns, max_wait_ns], or a negative duration",
        "use durations in ns within the profile's timing limits",
    ),
    (
        "QD209",
        "cooldown",
        "under strict timing, an operation on an atom within the measurement cooldown",
        "insert a Wait after the measurement, or leave strict timing off to let the "
        "scheduler insert it",
    ),
    (
        "QD210",
        "pulse-limits",
        "a Pulse whose detuning or duration is outside the pulse limits",
        "keep detuning and duration within the profile's pulse_limits",
    ),
    (
        "QD211",
        "atom-invalid",
        "an atom index out of range, a repeated target, or an op before AllocArray",
        "allocate the atoms first and name each atom at most once per instruction",
    ),
    (
        "QD212",
        "drive-limits",
        "an Evolve whose Omega, Delta, slew rates, local detuning or duration is outside "
        "the profile's drive_limits",
        "keep the waveforms within hardware.drive_limits (qmk device show PRESET lists them)",
    ),
    (
        "QD213",
        "analog-program",
        "an analog program (it has an Evolve, ISA 1.2) with a gate, pulse or reset, or an "
        "instruction after its Measure",
        "keep an analog program to AllocArray, MoveAtom, Evolve, Wait, then Measure",
    ),
    (
        "QD301",
        "compile-unsupported",
        "a program construct the neutral-atom ISA cannot express (guards and COND_PAULI "
        "need feed-forward; channels need links), or a catalog with no gate for it",
        "run the program on the logical machine (qmk run without --device), or remove "
        "the node the message names",
    ),
    (
        "QD302",
        "too-few-atoms",
        "a program with more qubits than the device configuration has atoms",
        "use a larger preset or configuration (qmk device list), or fewer qubits",
    ),
    (
        "QD303",
        "routing-failed",
        "a two-qubit gate whose atoms no move within the limits and no chain of SWAPs "
        "can bring together",
        "use --routing auto (moves and SWAPs), a configuration with free sites, or a "
        "profile with transport edges",
    ),
)

__all__ = ["DeviceError"]
