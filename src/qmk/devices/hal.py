"""The device interface (HAL): what the kernel asks of a machine, as one small protocol.

A :class:`Device` answers four questions, each as a frozen value with ``to_json()``:

- **inventory** (:class:`Inventory`): its modules and their physical-qubit capacity (up or
  down), the qubit parameter set it runs with, and the code profiles it runs;
- **capabilities** (:class:`Capabilities`): instruction set, engines, the most logical
  qubits it holds, the ops it supports;
- **calibration ingest** (:meth:`Device.calibrate`): a fitted
  :class:`~qmk.qec.logical.Calibration` (``qmk qec calibrate``) or a custom
  :class:`~qmk.qec.params.QubitParams`, used by every job started afterwards;
- **health** (:class:`Health`): per-module up/down, the current drift factor, the link
  fidelity and the decoders' capacity, load and backlog.

The kernel holds one device (:class:`qmk.kernel.device.LogicalMachine`, the simulated
logical machine); a hardware VM (the neutral-atom device) implements the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from qmk.qec.values import Calibration, QubitParams


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    """One module of a device: its id, physical-qubit capacity, and whether it is up."""

    module_id: int
    physical_qubits: int
    up: bool = True
    #: The epoch it failed at (None while up).
    failed_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "module_id": self.module_id,
            "physical_qubits": self.physical_qubits,
            "up": self.up,
            "failed_at": self.failed_at,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """What a device holds: modules, its qubit parameter set and the profiles it runs."""

    modules: tuple[Module, ...]
    qubit: QubitParams
    profiles: tuple[str, ...]
    calibration: Calibration | None = None

    @property
    def physical_qubits_up(self) -> int:
        """Physical qubits of the modules that are up."""
        return sum(m.physical_qubits for m in self.modules if m.up)

    @property
    def largest_module_up(self) -> int:
        """The capacity of the largest module up (0 when none is): a job's upper bound."""
        return max((m.physical_qubits for m in self.modules if m.up), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "modules": [m.to_json() for m in self.modules],
            "physical_qubits_total": sum(m.physical_qubits for m in self.modules),
            "physical_qubits_up": self.physical_qubits_up,
            "qubit": self.qubit.to_json(),
            "profiles": list(self.profiles),
            "calibration": None if self.calibration is None else self.calibration.to_json(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a device can run."""

    instruction_set: str
    engines: tuple[str, ...]
    max_logical_qubits: int
    ops: tuple[str, ...]
    code_families: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "instruction_set": self.instruction_set,
            "engines": list(self.engines),
            "max_logical_qubits": self.max_logical_qubits,
            "ops": list(self.ops),
            "code_families": list(self.code_families),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """A device's health at one epoch."""

    epoch: int
    modules_up: tuple[int, ...]
    modules_down: tuple[int, ...]
    #: Physical error rates are the calibrated ones times this factor.
    drift_factor: float
    #: Werner fidelity of the Bell pairs the link delivers (before purification).
    link_fidelity: float
    #: Syndrome bits per second the decoders keep up with (None: unlimited).
    decoder_capacity_bits_per_second: float | None
    #: Syndrome bits per second of the jobs running now.
    decoder_load_bits_per_second: float

    @property
    def decoder_backlog_bits_per_second(self) -> float:
        """How fast the decoders' backlog grows now (load above capacity; 0 if none)."""
        if self.decoder_capacity_bits_per_second is None:
            return 0.0
        return max(0.0, self.decoder_load_bits_per_second - self.decoder_capacity_bits_per_second)

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "modules_up": list(self.modules_up),
            "modules_down": list(self.modules_down),
            "drift_factor": self.drift_factor,
            "link_fidelity": self.link_fidelity,
            "decoder_capacity_bits_per_second": self.decoder_capacity_bits_per_second,
            "decoder_load_bits_per_second": self.decoder_load_bits_per_second,
            "decoder_backlog_bits_per_second": self.decoder_backlog_bits_per_second,
        }


@runtime_checkable
class Device(Protocol):
    """A machine the kernel runs jobs on (see the module docstring)."""

    #: A short name of the kind of device, e.g. ``"simulated-logical"``.
    kind: str

    def inventory(self) -> Inventory:
        """Modules (up or down), the qubit parameter set, the profiles, the calibration."""
        ...

    def capabilities(self) -> Capabilities:
        """What the device can run now (modules down hold no logical qubits)."""
        ...

    def calibrate(
        self, *, calibration: Calibration | None = None, qubit: QubitParams | None = None
    ) -> None:
        """Ingest a calibration and/or custom qubit parameters for every later job.

        Raises:
            QMKError: values the device cannot run with (the device names why).
        """
        ...

    def health(self, epoch: int, *, decoder_load: float = 0.0) -> Health:
        """The device's health at ``epoch``, given the decoder load of the running jobs."""
        ...

    def to_json(self, epoch: int, *, decoder_load: float = 0.0) -> dict[str, Any]:
        """Inventory, capabilities and health as one plain JSON object."""
        ...


__all__ = ["Capabilities", "Device", "Health", "Inventory", "Module"]
