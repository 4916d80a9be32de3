"""The simulated logical machine as a HAL device: its inventory, capabilities, health,
status, logical models and calibration ingest.

The kernel holds its machine as plain data (:class:`qmk.kernel.device.LogicalMachine`,
custom qubit parameters and a calibration as their JSON), and loads this module where a
device's view is asked of it (the machine's status, ``q_calibrate``, a drifted start):
here the QEC layer makes the values and the models from that data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from qmk import defaults
from qmk.devices.hal import Capabilities, Health, Inventory, Module
from qmk.qec.errors import QECError
from qmk.qec.params import qubit_params
from qmk.qec.values import calibration_of
from qmk.qvm.ops import OPS
from qmk.qvm.profiles import FAMILIES

if TYPE_CHECKING:
    from qmk.qec.logical import LogicalModel
    from qmk.qec.values import Calibration, QubitParams


class Machine(Protocol):
    """What the device's view reads of the kernel's machine (its plain data)."""

    kind: str
    capacities: tuple[int, ...]
    down: dict[int, int]
    profile: str
    qubit: str | dict[str, Any]
    noise_model: str | None
    calibration: dict[str, Any] | None
    calibrations: int

    @property
    def faults(self) -> Any: ...
    @property
    def modules_up(self) -> tuple[int, ...]: ...
    def model(self, profile: str | None = None, *, epoch: int | None = None) -> LogicalModel: ...


def inventory(machine: Machine) -> Inventory:
    """The machine's modules (up or down), its qubit parameters and profile."""
    modules = tuple(
        Module(
            module_id=i,
            physical_qubits=capacity,
            up=i not in machine.down,
            failed_at=machine.down.get(i),
        )
        for i, capacity in enumerate(machine.capacities)
    )
    return Inventory(
        modules=modules,
        qubit=qubit_params(machine.qubit),
        profiles=(machine.profile,),
        calibration=calibration_of(machine.calibration),
    )


def capabilities(machine: Machine) -> Capabilities:
    """What the machine runs: its qubits' instruction set, the code families that fit
    it, and the most logical qubits of its profile its modules up hold."""
    from qmk.qec.codes import scheme_for

    params = qubit_params(machine.qubit)
    families = []
    for family in FAMILIES:
        try:
            scheme_for(family, params)
        except QECError:
            continue
        families.append(family)
    per_logical = machine.model().physical_qubits_per_logical
    return Capabilities(
        instruction_set=params.instruction_set,
        engines=defaults.ENGINES,
        max_logical_qubits=inventory(machine).physical_qubits_up // per_logical,
        ops=tuple(OPS),
        code_families=tuple(families),
    )


def health(machine: Machine, epoch: int, *, decoder_load: float = 0.0) -> Health:
    """The machine's modules up and down, drift, link and decoders at ``epoch``."""
    faults = machine.faults
    return Health(
        epoch=epoch,
        modules_up=machine.modules_up,
        modules_down=tuple(sorted(machine.down)),
        drift_factor=faults.drift_factor(epoch),
        link_fidelity=faults.link_fidelity_at(epoch),
        decoder_capacity_bits_per_second=faults.decoder_capacity,
        decoder_load_bits_per_second=decoder_load,
    )


def status(machine: Machine, epoch: int, *, decoder_load: float = 0.0) -> dict[str, Any]:
    """The device's status as ``q_machine_status`` reports it (its drifted model, or why
    there is none: drifted past the threshold is said, not hidden)."""
    try:
        drifted: dict[str, Any] | None = machine.model(epoch=epoch).to_json()
    except QECError as exc:
        drifted = {"error": str(exc)}
    return {
        "kind": machine.kind,
        "inventory": inventory(machine).to_json(),
        "capabilities": capabilities(machine).to_json(),
        "health": health(machine, epoch, decoder_load=decoder_load).to_json(),
        "faults": machine.faults.to_json(),
        "noise_model": machine.noise_model,
        "calibrations_ingested": machine.calibrations,
        "logical_model": drifted,
    }


def model(
    profile: str,
    qubit: str | dict[str, Any],
    calibration: dict[str, Any] | None,
    noise_model: str | None,
) -> LogicalModel:
    """The logical model of ``profile`` on the machine's physics (``noise_model``: its
    text, drifted already)."""
    from qmk.qec.logical import logical_model
    from qmk.qec.noise import parse_noise_model

    noise = None if noise_model is None else parse_noise_model(noise_model)
    return logical_model(profile, qubit, noise=noise, calibration=calibration)


def calibrated(
    machine: Machine, calibration: Calibration | None, qubit: QubitParams | None
) -> tuple[str | dict[str, Any], dict[str, Any] | None]:
    """The qubit and calibration (as the machine holds them) after an ingest of
    ``calibration`` and/or ``qubit``, checked against the machine's profile and qubits.

    Raises:
        QECError: ``QC103`` for neither, for qubit parameters of another instruction
            set, or a calibration that is not for the machine's profile on its qubits;
            the QEC layer's own errors (e.g. ``QC106`` above threshold) for values it
            refuses.
    """
    if calibration is None and qubit is None:
        raise QECError.of("bad-parameter", "calibrate: give a calibration or qubit parameters")
    old_set = qubit_params(machine.qubit).instruction_set
    if qubit is not None and qubit.instruction_set != old_set:
        raise QECError.of(
            "bad-parameter",
            f"calibrate: the machine's qubits are {old_set}; qubit parameters "
            f"{qubit.name!r} are {qubit.instruction_set}",
        )
    new_qubit = machine.qubit if qubit is None else qubit.to_json()
    new_calibration = machine.calibration if calibration is None else calibration.to_json()
    checked = model(machine.profile, new_qubit, new_calibration, machine.noise_model)
    if calibration is not None and checked.calibration is None:
        raise QECError.of(
            "bad-parameter",
            f"calibrate: the calibration is for {calibration.family} on "
            f"{calibration.instruction_set} qubits; the machine runs {machine.profile} on "
            f"{old_set} qubits",
        )
    return new_qubit, new_calibration


__all__ = ["Machine", "calibrated", "capabilities", "health", "inventory", "model", "status"]
