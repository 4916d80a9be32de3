"""The magic-state factory protocols a machine may build, each with its published figures.

``[machine.factory] protocol`` names one; every figure it gives can be overridden key by
key in the same table. A protocol answers, for the machine's qubit and code distance,
one copy's physical qubits and tiles, the logical cycles of one run, the T states a run
delivers on average, and a state's error:

- ``estimator``: the Azure Quantum Resource Estimator's distillation factory of least
  volume per state whose output error is at most a patch's logical error per cycle (a
  state as good as a patch kept one cycle), as ``qmk estimate`` builds it. A run
  delivers its *expected* states, ``units x (1 - failure)`` of its last round, where the
  estimator itself counts the number delivered with probability 0.99 (its guarantee,
  e.g. 1 where the expectation is 1.97).
- ``litinski-15to1``: the 15-to-1 protocol of Litinski, "A Game of Surface Codes"
  (Quantum 3, 128, 2019): 11 tiles for 11 logical cycles a state, output error
  ``35 p^3`` for injected states of error ``p`` (the qubit's T gate error).
- ``cultivation``: magic-state cultivation, Gidney, Shutty and Jones, "Magic state
  cultivation: growing T states with 78% reduced overhead" (arXiv:2409.17595, 2024),
  from the end-to-end simulations of its data set (doi:10.5281/zenodo.13777072, as the
  Q# estimator's ``GSJ24Factory`` tabulates them). At the tabulated noise strength at or
  above the qubit's Clifford error, it takes the entry of least volume whose error is at
  most a patch's logical error per cycle. Its volume counts the retries that postselection
  discards; a run is one state, its rounds the volume over its qubits.

>>> from qmk.kernel.machine.factories import figures
>>> f = figures("litinski-15to1", "surface_code", "qubit_gate_ns_e3", 9)
>>> f.tiles_per_copy, f.duration_cycles, f.states_per_run, f"{f.output_error_rate:.1e}"
(11, 11, 1.0, '3.5e-08')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qmk.kernel.errors import MachineError

if TYPE_CHECKING:
    from qmk.estimate.tfactory import TFactory

#: The protocols, each with where its figures come from (``qmk machine show`` says it).
PROTOCOLS: dict[str, str] = {
    "estimator": "Azure Quantum Resource Estimator's distillation (expected output a run)",
    "litinski-15to1": "Litinski, A Game of Surface Codes (Quantum 3, 128, 2019): 15-to-1, "
    "11 tiles x 11 cycles, output 35 p^3",
    "cultivation": "Gidney, Shutty, Jones, Magic state cultivation (arXiv:2409.17595, 2024), "
    "data doi:10.5281/zenodo.13777072",
}

#: Cultivation's end-to-end simulations under uniform depolarizing noise of strength
#: ``p``: ``(colour distance, surface distance) -> [(output error, qubits, volume in
#: qubit-rounds a kept state)]``: a selection of the entries of least volume a given
#: error that the Q# estimator's GSJ24Factory tabulates from the data set.
CULTIVATION: dict[float, dict[tuple[int, int], tuple[tuple[float, int, float], ...]]] = {
    5e-4: {
        (3, 15): (
            (2.997e-07, 454, 4433.6),
            (3.948e-07, 454, 3963.1),
            (8.244e-07, 454, 3564.5),
            (1.293e-05, 454, 3199.8),
        ),
        (5, 15): (
            (4.325e-11, 463, 18963.5),
            (5.030e-11, 463, 14701.7),
            (5.976e-11, 463, 13101.0),
            (2.147e-10, 463, 11768.6),
            (4.993e-10, 463, 10423.8),
            (1.063e-09, 463, 9227.2),
            (1.148e-08, 463, 8214.1),
            (3.195e-08, 463, 7375.8),
        ),
    },
    1e-3: {
        (3, 15): (
            (2.653e-06, 454, 8070.6),
            (2.976e-06, 454, 7067.1),
            (3.357e-06, 454, 6284.1),
            (4.147e-06, 454, 5572.0),
            (6.806e-06, 454, 4948.5),
            (2.931e-05, 454, 4291.1),
            (6.425e-05, 454, 3861.3),
            (6.441e-04, 454, 3466.9),
        ),
        (5, 15): (
            (7.885e-10, 463, 127164.4),
            (9.484e-10, 463, 101966.7),
            (1.367e-09, 463, 88163.3),
            (1.641e-09, 463, 75634.9),
            (2.123e-09, 463, 57066.9),
            (2.703e-09, 463, 51274.9),
            (5.927e-09, 463, 44459.4),
            (9.967e-09, 463, 37819.3),
            (1.309e-08, 463, 32487.3),
            (3.224e-08, 463, 28807.2),
            (6.869e-08, 463, 25913.8),
            (9.098e-08, 463, 23124.3),
            (1.419e-07, 463, 20704.8),
            (2.061e-07, 463, 18537.0),
            (2.979e-07, 463, 16619.3),
            (6.862e-07, 463, 14668.0),
            (3.596e-06, 463, 13144.3),
        ),
    },
    2e-3: {
        (3, 15): (
            (2.491e-05, 454, 37284.1),
            (3.421e-05, 454, 22236.4),
            (4.984e-05, 454, 16332.4),
            (7.472e-05, 454, 13011.9),
            (1.897e-04, 454, 9618.5),
            (4.014e-04, 454, 7249.1),
            (1.032e-03, 454, 5745.9),
            (6.236e-03, 454, 4524.1),
        ),
        (5, 15): (
            (1.044e-07, 463, 2657933.6),
            (3.212e-07, 463, 1363176.2),
            (1.461e-06, 463, 590269.3),
            (8.297e-06, 463, 177964.8),
            (6.922e-05, 463, 91661.3),
            (5.018e-04, 463, 72707.1),
        ),
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """One factory copy as a protocol gives it (:mod:`~qmk.kernel.machine.spec` makes
    the module's factories of it)."""

    protocol: str
    label: str
    physical_qubits: int
    tiles_per_copy: int
    duration_cycles: int
    states_per_run: float
    output_error_rate: float

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "label": self.label,
            "source": PROTOCOLS[self.protocol],
            "physical_qubits_per_copy": self.physical_qubits,
            "tiles_per_copy": self.tiles_per_copy,
            "duration_cycles": self.duration_cycles,
            "states_per_run": self.states_per_run,
            "output_error_rate": self.output_error_rate,
        }


def patch_and_qubit(family: str, qubit: str, distance: int) -> tuple[Any, Any]:
    """The estimator's patch of ``family`` at ``distance`` on ``qubit``, and the qubit's
    parameters."""
    from qmk.estimate.params import JobParams
    from qmk.estimate.tfactory import make_patch

    job = JobParams.from_json({"qubitParams": {"name": qubit}, "qecScheme": {"name": family}})
    return make_patch(job.scheme, job.qubit, distance), job.qubit


def estimator_factory(family: str, qubit: str, distance: int) -> TFactory | None:
    """The estimator's factory for a machine at ``distance``: of the factories whose
    output error is at most a patch's logical error per cycle, the one of least volume
    per state (qubits x duration / states); None when the estimator finds none.

    >>> f = estimator_factory("surface_code", "qubit_gate_ns_e3", 9)
    >>> f.unit_names, f.physical_qubits, f.duration, f.num_output_states
    (('15-to-1 space efficient',), 9680, 57200, 1)
    """
    from qmk.estimate.params import JobParams
    from qmk.estimate.tfactory import find_factories, make_patch

    job = JobParams.from_json({"qubitParams": {"name": qubit}, "qecScheme": {"name": family}})
    patch = make_patch(job.scheme, job.qubit, distance)
    found = find_factories(job.scheme, job.qubit, job.units, patch.logical_error_rate, 50)
    if not found:
        return None
    return min(found, key=lambda f: (f.normalized_volume, f.physical_qubits))


def _clifford_error(qubit: Any) -> float:
    """The qubit's worst Clifford error rate (gates and measurements it has)."""
    rates = [
        qubit.two_qubit_gate_error_rate,
        qubit.two_qubit_joint_measurement_error_rate,
        qubit.one_qubit_gate_error_rate,
        qubit.one_qubit_measurement_error_rate,
    ]
    return max(r for r in rates if r is not None)


def figures(
    protocol: str, family: str, qubit: str, distance: int, *, target: float | None = None
) -> Figures | None:
    """One copy of ``protocol``'s factory on a machine of ``qubit`` at ``distance``
    (module docstring); ``target``: the output error a state may have (default: a
    patch's logical error per cycle, where cultivation picks its entry); None where the
    estimator finds no factory.

    Raises:
        MachineError: ``QK503``: an unknown protocol, or cultivation on qubits noisier
            than its data set, or none of its entries as good as a patch kept a cycle.
    """
    patch, params = patch_and_qubit(family, qubit, distance)
    if protocol == "estimator":
        built = estimator_factory(family, qubit, distance)
        if built is None:
            return None
        label = ", ".join(
            f"{n} x {name} (d={d})"
            for n, name, d in zip(
                built.units_per_round, built.unit_names, built.distances, strict=True
            )
        )
        return Figures(
            protocol=protocol,
            label=label,
            physical_qubits=built.physical_qubits,
            tiles_per_copy=max(1, math.ceil(built.physical_qubits / patch.physical_qubits)),
            duration_cycles=max(1, math.ceil(built.duration / patch.cycle_time)),
            states_per_run=built.expected_output_states,
            output_error_rate=built.output_error_rate,
        )
    if protocol == "litinski-15to1":
        p = params.t_gate_error_rate
        return Figures(
            protocol=protocol,
            label="15-to-1 (Litinski)",
            physical_qubits=11 * patch.physical_qubits,
            tiles_per_copy=11,
            duration_cycles=11,
            states_per_run=1.0,
            output_error_rate=35 * p**3,
        )
    if protocol == "cultivation":
        return _cultivation(_clifford_error(params), patch, target or patch.logical_error_rate)
    raise MachineError.of(
        "bad-machine",
        f"machine.factory.protocol {protocol!r}: the protocols are {', '.join(PROTOCOLS)}",
    )


def _cultivation(noise: float, patch: Any, target: float) -> Figures:
    strengths = [p for p in sorted(CULTIVATION) if p >= noise * (1 - 1e-9)]
    if not strengths:
        raise MachineError.of(
            "bad-machine",
            f"machine.factory.protocol cultivation: its data stop at physical error "
            f"{max(CULTIVATION):g}, and the qubit's Clifford error is {noise:g}",
        )
    table = CULTIVATION[strengths[0]]
    fits = [
        (volume, error, qubits, distances)
        for distances, entries in table.items()
        for error, qubits, volume in entries
        if error <= target
    ]
    if not fits:
        best = min(e for entries in table.values() for e, _, _ in entries)
        raise MachineError.of(
            "bad-machine",
            f"machine.factory.protocol cultivation: its best state at physical error "
            f"{strengths[0]:g} has error {best:.2g}, above a patch's {target:.2g} a cycle "
            "at this distance; give [machine.factory] output_error_rate to accept it",
        )
    volume, error, qubits, (colour, surface) = min(fits)
    rounds = volume / qubits
    return Figures(
        protocol="cultivation",
        label=f"cultivation (d1={colour}, d2={surface}, p={strengths[0]:g})",
        physical_qubits=qubits,
        tiles_per_copy=max(1, math.ceil(qubits / patch.physical_qubits)),
        duration_cycles=max(1, math.ceil(rounds / patch.distance)),
        states_per_run=1.0,
        output_error_rate=error,
    )
