"""The kernel's device: the simulated logical machine, with its schedule of injected faults.

:class:`LogicalMachine` is what the kernel holds of its machine: its physical qubits split
into ``modules`` equal modules (the first ones take the remainder), which are up, the
profile, qubit parameters, noise model and calibration of the kernel's ``[machine]``
table, and the calibrations and custom qubit parameters ingested at run time. It holds
them as plain data, custom qubit parameters and a calibration as their JSON, as a run
request does: the kernel process loads neither the QEC layer nor the device interface
(:mod:`qmk.devices`). Its view as a HAL device (:class:`~qmk.devices.hal.Device`: its
inventory, capabilities, health, status, logical models and calibration ingest) is
:mod:`qmk.devices.logical`'s, loaded where one is asked.

:class:`FaultSchedule` (the kernel's ``[faults]`` table, docs/kernel.md) describes, in
kernel epochs, what goes wrong: calibration drift (every physical error rate times
``1 + drift_per_epoch * (epoch - drift_start_epoch)`` from ``drift_start_epoch`` on), the
link's fidelity dropping (``link_fidelity - link_drop_per_epoch * epoch``, never below
1/4, the fully mixed pair), modules failing at given epochs, and the decoders' capacity in
syndrome bits per second.

>>> faults = FaultSchedule(drift_per_epoch=0.5, link_fidelity=0.99, link_drop_per_epoch=0.01)
>>> machine = LogicalMachine(physical_qubits=10_001, modules=2, faults=faults)
>>> machine.capacities, faults.drift_factor(4), round(faults.link_fidelity_at(4), 6)
((5001, 5000), 3.0, 0.95)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qmk import defaults

if TYPE_CHECKING:
    from qmk.devices.hal import Capabilities, Health, Inventory
    from qmk.qec.logical import LogicalModel
    from qmk.qec.values import Calibration, QubitParams

#: The link fidelity of a fully mixed pair: the link never drops below it.
MIXED_PAIR_FIDELITY = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSchedule:
    """The faults injected into the simulated machine, in kernel epochs (none by default).

    Attributes:
        drift_per_epoch: growth of the drift factor per epoch (0: no drift).
        drift_start_epoch: the epoch drift starts at.
        link_fidelity: Werner fidelity of the link's Bell pairs at epoch 0.
        link_drop_per_epoch: how much the link's fidelity drops per epoch.
        link_latency_ns: the time the link takes to deliver one Bell pair between
            modules (a teleported gate waits for its pair: :mod:`qmk.qvm.teleport`).
        link_target: the fidelity purification must reach (or the program's, if lower).
        max_purification_rounds: most BBPSSW rounds the kernel runs.
        module_failures: ``(module_id, epoch)`` pairs: that module fails at that epoch.
        decoder_capacity: syndrome bits per second the decoders keep up with (None: any).
        distance_budget: the most the kernel raises a profile's distance against drift.
        local_decomposition: when purification cannot reach a channel's fidelity, prepare
            its pair inside the job's module (a logical H and CNOT) instead of over the
            link; False: the job fails with ``QK304 link-degraded``.
        drift_fence_cycles: under drift, the most logical cycles a job runs between two
            fences: the kernel adds fences to keep its epochs this short, and the job saves
            its state at a fence whenever that many operations ran since its last save
            (0: neither).
    """

    drift_per_epoch: float = 0.0
    drift_start_epoch: int = 0
    link_fidelity: float = 1.0
    link_drop_per_epoch: float = 0.0
    link_latency_ns: float = 0.0
    link_target: float = 0.95
    max_purification_rounds: int = 3
    module_failures: tuple[tuple[int, int], ...] = ()
    decoder_capacity: float | None = None
    distance_budget: int = 6
    drift_fence_cycles: int = 1000
    local_decomposition: bool = True

    def drift_factor(self, epoch: int) -> float:
        """The factor physical error rates are multiplied by at ``epoch`` (1: no drift)."""
        return 1.0 + self.drift_per_epoch * max(0, epoch - self.drift_start_epoch)

    def link_fidelity_at(self, epoch: int) -> float:
        """The link's raw Werner fidelity at ``epoch``."""
        return max(MIXED_PAIR_FIDELITY, self.link_fidelity - self.link_drop_per_epoch * epoch)

    def failures_due(self, epoch: int) -> tuple[int, ...]:
        """Modules whose scheduled failure is at or before ``epoch``."""
        return tuple(module for module, at in self.module_failures if at <= epoch)

    def to_json(self) -> dict[str, Any]:
        return {
            "drift_per_epoch": self.drift_per_epoch,
            "drift_start_epoch": self.drift_start_epoch,
            "link_fidelity": self.link_fidelity,
            "link_drop_per_epoch": self.link_drop_per_epoch,
            "link_latency_ns": self.link_latency_ns,
            "link_target": self.link_target,
            "max_purification_rounds": self.max_purification_rounds,
            "module_failures": [
                {"module": module, "epoch": epoch} for module, epoch in self.module_failures
            ],
            "decoder_capacity_bits_per_second": self.decoder_capacity,
            "distance_budget": self.distance_budget,
            "drift_fence_cycles": self.drift_fence_cycles,
            "local_decomposition": self.local_decomposition,
        }


def split_modules(physical_qubits: int, modules: int) -> tuple[int, ...]:
    """``physical_qubits`` split into ``modules`` near-equal capacities, largest first."""
    base, extra = divmod(physical_qubits, modules)
    return tuple(base + (1 if i < extra else 0) for i in range(modules))


class LogicalMachine:
    """The simulated logical machine the kernel runs (a :class:`~qmk.devices.hal.Device`).

    Args:
        physical_qubits: the machine's physical qubits, split over ``modules``.
        modules: how many modules (1: the whole machine is one module).
        profile: the default code profile.
        qubit: the qubit parameter set's name.
        noise_model: physical error rates in place of the qubit's (noise-model text).
        calibration: a fitted (a, p*) for the profiles of its family (its JSON).
        faults: the fault schedule.

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

    # --------------------------------------------- the HAL device (qmk.devices.logical)

    def inventory(self) -> Inventory:
        from qmk.devices import logical  # the device's status: where asked

        return logical.inventory(self)

    def capabilities(self) -> Capabilities:
        from qmk.devices import logical

        return logical.capabilities(self)

    def health(self, epoch: int, *, decoder_load: float = 0.0) -> Health:
        from qmk.devices import logical

        return logical.health(self, epoch, decoder_load=decoder_load)

    def to_json(self, epoch: int, *, decoder_load: float = 0.0) -> dict[str, Any]:
        from qmk.devices import logical

        return logical.status(self, epoch, decoder_load=decoder_load)

    def model(self, profile: str | None = None, *, epoch: int | None = None) -> LogicalModel:
        """The logical model of ``profile`` (the machine's) now, drifted as at ``epoch``
        (None: undrifted)."""
        from qmk.devices import logical

        factor = 1.0 if epoch is None else self.faults.drift_factor(epoch)
        text = drifted(self.noise_model, factor)
        return logical.model(profile or self.profile, self.qubit, self.calibration, text)

    def calibrate(
        self, *, calibration: Calibration | None = None, qubit: QubitParams | None = None
    ) -> None:
        """Use ``calibration`` and/or ``qubit`` for every job started from now on.

        Raises:
            QECError: ``QC103`` for qubit parameters of another instruction set, or a
                calibration that is not for the machine's profile on its qubits; the QEC
                layer's own errors (e.g. ``QC106`` above threshold) for values it refuses.
        """
        from qmk.devices import logical

        self.qubit, self.calibration = logical.calibrated(self, calibration, qubit)
        self.calibrations += 1


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
