"""The neutral-atom VM behind the device interface (HAL, :mod:`qmk.devices.hal`).

Public API: :class:`NeutralAtomDevice` (``kind = "neutral-atom"``) and
:func:`qubit_params` (a profile's gate times and error rates as a QRE-style
:class:`~qmk.qec.params.QubitParams`, so the estimator and the HAL speak of it as of any
other qubit).

- ``inventory()``: one module (the trap array) with as many physical qubits as lattice
  sites, the profile's qubit parameters, the profile name;
- ``capabilities()``: instruction set ``neutral-atom-isa`` with its versions, the backends,
  the atoms of the configuration (no QEC on the device itself: one qubit per atom), the
  ISA's ops;
- ``calibrate(qubit=...)``: gate-based qubit parameters become the device's noise from
  then on (depolarizing one- and two-qubit gates, symmetric readout, idle dephasing over
  a one-qubit gate time, T1 as amplitude damping); a logical calibration is ``QD109``;
- ``health(epoch)``: the one module up, no drift, no decoders;
- ``run(job, ...)``: :func:`~qmk.devices.neutral_atom.emulator.run_job` on this profile.

>>> device = NeutralAtomDevice("benchmark_chain")
>>> device.capabilities().max_logical_qubits, device.inventory().physical_qubits_up
(20, 20)
>>> from qmk.devices.hal import Device
>>> isinstance(device, Device)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from qmk.devices.errors import DeviceError
from qmk.devices.hal import Capabilities, Health, Inventory, Module
from qmk.devices.neutral_atom.backends import capability_table
from qmk.devices.neutral_atom.emulator import Result, run_job
from qmk.devices.neutral_atom.isa import OPS, VERSIONS
from qmk.devices.neutral_atom.noise import GateNoise, NoiseModel, Pauli, RatePair, Readout
from qmk.devices.neutral_atom.profiles import Profile, load_profile
from qmk.qec.logical import Calibration
from qmk.qec.params import GATE_BASED, QubitParams

#: The instruction set the HAL reports.
INSTRUCTION_SET = "neutral-atom-isa"

_FLOOR = 1e-9


def _rate(value: float) -> float:
    """An error rate QubitParams accepts (strictly between 0 and 1)."""
    return min(0.5, max(_FLOOR, value))


def qubit_params(profile: Profile) -> QubitParams:
    """The profile's gate times and error rates as qubit parameters.

    One-qubit gate error: its Pauli total, dephasing, damping and loss; two-qubit: one
    minus the chance neither atom nor the correlated channel errs (and neither is lost);
    measurement: the larger readout flip plus ``p_quantum_flip`` and ``p_loss``; idle: over
    one one-qubit gate time. Rates are floored at 1e-9 (QRE needs them above 0).
    """
    hw, noise = profile.hardware, profile.noise
    one = hw.gate_duration_ns("H")
    two = hw.gate_duration_ns("CZ")
    t_time = hw.gate_duration_ns("T")
    measure = hw.timing.measurement_duration_ns or one
    g = noise.gate
    p1 = g.single_qubit.total + noise.amplitude_damping.per_gate + noise.loss_runtime.per_gate
    correlated = sum(sum(row) for row in noise.correlated_gate) - noise.correlated_gate[0][0]
    keep = (
        (1 - g.two_qubit_control.total)
        * (1 - g.two_qubit_target.total)
        * (1 - correlated)
        * (1 - noise.loss_runtime.per_gate) ** 2
    )
    readout = max(noise.readout.p_flip0_to_1, noise.readout.p_flip1_to_0)
    seconds = one * 1e-9
    idle = -math.expm1(
        -(noise.idle_rate + noise.amplitude_damping.idle_rate + noise.loss_runtime.idle_rate)
        * seconds
    )
    t1 = 1e9 / noise.amplitude_damping.idle_rate if noise.amplitude_damping.idle_rate else None
    return QubitParams(
        name=f"neutral_atom:{profile.name}",
        instruction_set=GATE_BASED,
        one_qubit_measurement_time=max(1, round(measure)),
        t_gate_time=max(1, round(t_time)),
        one_qubit_measurement_error_rate=_rate(readout + noise.p_quantum_flip + noise.p_loss),
        t_gate_error_rate=_rate(p1),
        idle_error_rate=_rate(idle),
        one_qubit_gate_time=max(1, round(one)),
        two_qubit_gate_time=max(1, round(two)),
        one_qubit_gate_error_rate=_rate(p1),
        two_qubit_gate_error_rate=_rate(1 - keep),
        t1_ns=t1,
    )


def noise_from_qubit(qubit: QubitParams, profile: Profile) -> NoiseModel:
    """Gate-based qubit parameters as a noise model on ``profile``'s gate times.

    Raises:
        DeviceError: ``QD109`` for qubits that are not gate-based.
    """
    if qubit.instruction_set != GATE_BASED:
        raise DeviceError.of(
            "calibration-unsupported",
            f"qubit parameters {qubit.name!r} are {qubit.instruction_set}; the neutral-atom "
            "device takes gate_based ones",
        )
    assert qubit.one_qubit_gate_error_rate is not None
    assert qubit.two_qubit_gate_error_rate is not None
    p1 = qubit.one_qubit_gate_error_rate / 3
    p2 = (1 - math.sqrt(1 - qubit.two_qubit_gate_error_rate)) / 3
    readout = qubit.one_qubit_measurement_readout_rate
    one_s = profile.hardware.gate_duration_ns("H") * 1e-9
    return NoiseModel(
        readout=Readout(p_flip0_to_1=readout, p_flip1_to_0=readout),
        gate=GateNoise(
            single_qubit=Pauli(px=p1, py=p1, pz=p1),
            two_qubit_control=Pauli(px=p2, py=p2, pz=p2),
            two_qubit_target=Pauli(px=p2, py=p2, pz=p2),
        ),
        idle_rate=-math.log1p(-qubit.idle_error_rate) / one_s,
        amplitude_damping=RatePair(idle_rate=1e9 / qubit.t1_ns if qubit.t1_ns else 0.0),
    )


class NeutralAtomDevice:
    """A neutral-atom VM on one profile (a preset name, a profile file, or a Profile)."""

    kind = "neutral-atom"

    def __init__(self, profile: str | Profile = "benchmark_chain") -> None:
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.calibrations_ingested = 0

    def inventory(self) -> Inventory:
        hw = self.profile.hardware
        return Inventory(
            modules=(Module(module_id=0, physical_qubits=len(hw.sites)),),
            qubit=qubit_params(self.profile),
            profiles=(self.profile.name,),
        )

    def capabilities(self) -> Capabilities:
        return Capabilities(
            instruction_set=f"{INSTRUCTION_SET} {', '.join(str(v) for v in VERSIONS)}",
            # the backends that run here (the GPU one only where its engine is available)
            engines=tuple(b["name"] for b in capability_table() if b["available"]),
            max_logical_qubits=len(self.profile.hardware.site_ids),
            ops=tuple(OPS),
            code_families=(),
        )

    def calibrate(
        self, *, calibration: Calibration | None = None, qubit: QubitParams | None = None
    ) -> None:
        """Ingest gate-based qubit parameters as the device's noise.

        Raises:
            DeviceError: ``QD109`` for a logical calibration or Majorana qubits.
        """
        if calibration is not None:
            raise DeviceError.of(
                "calibration-unsupported",
                f"a logical calibration (family {calibration.family}) is for the logical "
                "machine; the neutral-atom device takes qubit parameters",
            )
        if qubit is not None:
            self.profile = replace(self.profile, noise=noise_from_qubit(qubit, self.profile))
            self.calibrations_ingested += 1

    def health(self, epoch: int, *, decoder_load: float = 0.0) -> Health:
        return Health(
            epoch=epoch,
            modules_up=(0,),
            modules_down=(),
            drift_factor=1.0,
            link_fidelity=1.0,
            decoder_capacity_bits_per_second=None,
            decoder_load_bits_per_second=decoder_load,
        )

    def to_json(self, epoch: int = 0, *, decoder_load: float = 0.0) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "profile": self.profile.summary(),
            "inventory": self.inventory().to_json(),
            "capabilities": self.capabilities().to_json(),
            "health": self.health(epoch, decoder_load=decoder_load).to_json(),
            "calibrations_ingested": self.calibrations_ingested,
            "isa_versions": [str(v) for v in VERSIONS],
            "backends": capability_table(),
        }

    def run(
        self,
        job: Mapping[str, Any],
        *,
        shots: int | None = None,
        seed: int | None = None,
        backend: str | None = None,
        strict_timing: bool = False,
    ) -> Result:
        """Run a wire-form job on this device's profile (its own ``profile`` is ignored)."""
        return run_job(
            job,
            shots=shots,
            seed=seed,
            device=self.profile,
            backend=backend,
            strict_timing=strict_timing,
        )


__all__ = ["INSTRUCTION_SET", "NeutralAtomDevice", "noise_from_qubit", "qubit_params"]
