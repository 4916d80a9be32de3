"""The simulated logical machine: the kernel's device, with a schedule of injected faults.

:class:`LogicalMachine` implements :class:`~qmk.devices.hal.Device` (whose values it
imports where its status is asked: a kernel of plain jobs holds none) over the in-process
machine of :mod:`qmk.execution`: its physical qubits are split into ``modules`` equal
modules (the first ones take the remainder), it runs the profile, qubit parameters, noise
model and calibration of the kernel's ``[machine]`` table, and it ingests calibrations
and custom qubit parameters at run time.

:class:`FaultSchedule` (the kernel's ``[faults]`` table, docs/kernel.md) describes, in
kernel epochs, what goes wrong: calibration drift (every physical error rate times
``1 + drift_per_epoch * (epoch - drift_start_epoch)`` from ``drift_start_epoch`` on), the
link's fidelity dropping (``link_fidelity - link_drop_per_epoch * epoch``, never below
1/4, the fully mixed pair), modules failing at given epochs, and the decoders' capacity in
syndrome bits per second. :meth:`LogicalMachine.health` reports them at an epoch.

>>> faults = FaultSchedule(drift_per_epoch=0.5, link_fidelity=0.99, link_drop_per_epoch=0.01)
>>> machine = LogicalMachine(physical_qubits=10_001, modules=2, faults=faults)
>>> [m.physical_qubits for m in machine.inventory().modules]
[5001, 5000]
>>> health = machine.health(4)
>>> health.drift_factor, round(health.link_fidelity, 6)
(3.0, 0.95)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qmk import defaults
from qmk.devices.schedule import MIXED_PAIR_FIDELITY as MIXED_PAIR_FIDELITY
from qmk.devices.schedule import FaultSchedule as FaultSchedule
from qmk.qvm.ops import OPS
from qmk.qvm.profiles import FAMILIES

if TYPE_CHECKING:
    from qmk.devices.hal import Capabilities, Health, Inventory
    from qmk.qec.logical import LogicalModel
    from qmk.qec.values import Calibration, QubitParams


def split_modules(physical_qubits: int, modules: int) -> tuple[int, ...]:
    """``physical_qubits`` split into ``modules`` near-equal capacities, largest first."""
    base, extra = divmod(physical_qubits, modules)
    return tuple(base + (1 if i < extra else 0) for i in range(modules))


class LogicalMachine:
    """The simulated logical machine (a :class:`~qmk.devices.hal.Device`).

    Args:
        physical_qubits: the machine's physical qubits, split over ``modules``.
        modules: how many modules (1: the whole machine is one module).
        profile: the default code profile.
        qubit: the qubit parameter set's name.
        noise_model: physical error rates in place of the qubit's (noise-model text).
        calibration: a fitted (a, p*) for the profiles of its family (its JSON).
        faults: the fault schedule.

    It holds its physics as a run request does, custom qubit parameters and a
    calibration as their JSON: the kernel process that holds the machine loads no QEC
    value, and the values are made where a model is built (:meth:`model`).

    Its values are not checked as it is made: the kernel's are checked before
    (:func:`qmk.kernel.machine_physics.check_machine`), in its planner process, and the QEC layer,
    which the kernel process does not hold, loads where a model is asked of the machine
    (:meth:`model`, its status). A value the QEC layer refuses raises there.
    """

    kind = "simulated-logical"

    def __init__(
        self,
        *,
        physical_qubits: int,
        modules: int = 1,
        profile: str = defaults.PROFILE,
        qubit: str = defaults.QUBIT,
        noise_model: str | None = None,
        calibration: dict[str, Any] | None = None,
        faults: FaultSchedule | None = None,
    ) -> None:
        self.capacities = split_modules(physical_qubits, modules)
        self.profile = profile
        self.noise_model = noise_model
        self.faults = faults or FaultSchedule()
        #: The qubit parameters jobs run with: the set's name until custom ones are
        #: ingested (their JSON then).
        self.qubit: str | dict[str, Any] = qubit
        self.calibration = calibration
        self.down: dict[int, int] = {}  # module id -> the epoch it failed at
        self.calibrations = 0  # how many ingests so far

    # ------------------------------------------------------------------ the HAL

    @property
    def modules_up(self) -> tuple[int, ...]:
        """The ids of the modules that are up, ascending."""
        return tuple(i for i in range(len(self.capacities)) if i not in self.down)

    @property
    def largest_module_up(self) -> int:
        """The capacity of the largest module up (what :meth:`inventory` reports), without
        building the inventory: the scheduler asks it for every job it looks at (and
        admission and the fault policies for every job accepted)."""
        if not self.down:  # every module up: the largest of all (capacities are fixed)
            return self.capacities[0]
        return max((c for i, c in enumerate(self.capacities) if i not in self.down), default=0)

    def inventory(self) -> Inventory:
        from qmk.devices.hal import Inventory, Module  # the device's status: where asked
        from qmk.qec.params import qubit_params
        from qmk.qec.values import calibration_of

        modules = tuple(
            Module(
                module_id=i,
                physical_qubits=capacity,
                up=i not in self.down,
                failed_at=self.down.get(i),
            )
            for i, capacity in enumerate(self.capacities)
        )
        return Inventory(
            modules=modules,
            qubit=qubit_params(self.qubit),
            profiles=(self.profile,),
            calibration=calibration_of(self.calibration),
        )

    def capabilities(self) -> Capabilities:
        from qmk.devices.hal import Capabilities
        from qmk.qec.codes import scheme_for
        from qmk.qec.errors import QECError
        from qmk.qec.params import qubit_params

        params = qubit_params(self.qubit)
        families = []
        for family in FAMILIES:
            try:
                scheme_for(family, params)
            except QECError:
                continue
            families.append(family)
        per_logical = self.model().physical_qubits_per_logical
        return Capabilities(
            instruction_set=params.instruction_set,
            engines=defaults.ENGINES,
            max_logical_qubits=self.inventory().physical_qubits_up // per_logical,
            ops=tuple(OPS),
            code_families=tuple(families),
        )

    def calibrate(
        self, *, calibration: Calibration | None = None, qubit: QubitParams | None = None
    ) -> None:
        """Use ``calibration`` and/or ``qubit`` for every job started from now on.

        Raises:
            QECError: ``QC103`` for qubit parameters of another instruction set, or a
                calibration that is not for the machine's profile on its qubits; the QEC
                layer's own errors (e.g. ``QC106`` above threshold) for values it refuses.
        """
        from qmk.qec.errors import QECError
        from qmk.qec.params import qubit_params

        if calibration is None and qubit is None:
            raise QECError.of("bad-parameter", "calibrate: give a calibration or qubit parameters")
        new_qubit = self.qubit if qubit is None else qubit.to_json()
        old_set = qubit_params(self.qubit).instruction_set
        if qubit is not None and qubit.instruction_set != old_set:
            raise QECError.of(
                "bad-parameter",
                f"calibrate: the machine's qubits are {old_set}; qubit parameters "
                f"{qubit.name!r} are {qubit.instruction_set}",
            )
        new_calibration = self.calibration if calibration is None else calibration.to_json()
        model = self._model(self.profile, new_qubit, new_calibration, 1.0)
        if calibration is not None and model.calibration is None:
            raise QECError.of(
                "bad-parameter",
                f"calibrate: the calibration is for {calibration.family} on "
                f"{calibration.instruction_set} qubits; the machine runs {self.profile} on "
                f"{old_set} qubits",
            )
        self.qubit, self.calibration = new_qubit, new_calibration
        self.calibrations += 1

    def health(self, epoch: int, *, decoder_load: float = 0.0) -> Health:
        from qmk.devices.hal import Health  # the device's status: where asked

        return Health(
            epoch=epoch,
            modules_up=self.modules_up,
            modules_down=tuple(sorted(self.down)),
            drift_factor=self.faults.drift_factor(epoch),
            link_fidelity=self.faults.link_fidelity_at(epoch),
            decoder_capacity_bits_per_second=self.faults.decoder_capacity,
            decoder_load_bits_per_second=decoder_load,
        )

    def to_json(self, epoch: int, *, decoder_load: float = 0.0) -> dict[str, Any]:
        from qmk.qec.errors import QECError  # the device's status: where asked

        try:
            drifted: dict[str, Any] | None = self.model(epoch=epoch).to_json()
        except QECError as exc:  # drifted past the threshold: say so, do not hide it
            drifted = {"error": str(exc)}
        return {
            "kind": self.kind,
            "inventory": self.inventory().to_json(),
            "capabilities": self.capabilities().to_json(),
            "health": self.health(epoch, decoder_load=decoder_load).to_json(),
            "faults": self.faults.to_json(),
            "noise_model": self.noise_model,
            "calibrations_ingested": self.calibrations,
            "logical_model": drifted,
        }

    # ------------------------------------------------------------------ the machine's own

    def fail(self, module_id: int, epoch: int) -> bool:
        """Mark ``module_id`` down from ``epoch``; False if it was down already.

        Raises:
            QECError: ``QC103`` for a module the machine does not have.
        """
        if not 0 <= module_id < len(self.capacities):
            from qmk.qec.errors import QECError  # the refusal's family

            raise QECError.of(
                "bad-parameter",
                f"no module {module_id}; the machine has modules 0..{len(self.capacities) - 1}",
            )
        if module_id in self.down:
            return False
        self.down[module_id] = epoch
        return True

    def noise_model_at(self, epoch: int, base: str | None = None) -> str | None:
        """The noise-model text jobs started at ``epoch`` run with: ``base`` (a job's
        own; None: the machine's) with the drift stacked on."""
        return drifted(self.noise_model if base is None else base, self.faults.drift_factor(epoch))

    def model(self, profile: str | None = None, *, epoch: int | None = None) -> LogicalModel:
        """The logical model of ``profile`` (the machine's) now, drifted as at ``epoch``
        (None: undrifted)."""
        factor = 1.0 if epoch is None else self.faults.drift_factor(epoch)
        return self._model(profile or self.profile, self.qubit, self.calibration, factor)

    def _model(
        self,
        profile: str,
        qubit: str | dict[str, Any],
        calibration: dict[str, Any] | None,
        factor: float,
    ) -> LogicalModel:
        from qmk.qec.logical import logical_model
        from qmk.qec.noise import parse_noise_model

        text = drifted(self.noise_model, factor)
        noise = None if text is None else parse_noise_model(text)
        return logical_model(profile, qubit, noise=noise, calibration=calibration)


def drifted(text: str | None, factor: float) -> str | None:
    """The noise-model text ``text`` (None: none) with a drift of ``factor`` stacked on.

    >>> drifted("depolarizing(p=0.001)", 2.0), drifted(None, 1.0)
    ('depolarizing(p=0.001) + drift(factor=2.0)', None)
    """
    if factor == 1.0:
        return text
    drift = f"drift(factor={factor!r})"
    return drift if text is None else f"{text} + {drift}"


__all__ = [
    "MIXED_PAIR_FIDELITY",
    "FaultSchedule",
    "LogicalMachine",
    "drifted",
    "split_modules",
]
