"""A configured machine's physics checked with the QEC layer: what a config's reader
checks where that layer loads.

The kernel process holds no QEC layer (issue 79): it reads its config without this
check (``config_from_dict(..., physics=False)``), and its planner process checks the
machine as it derives it (:func:`qmk.kernel.machine.derive.planned_machine`). The
command line's readers of a config (``qmk config check``, ``qmk machine``) check it as
they load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from qmk.errors import QMKError
from qmk.kernel.errors import ConfigError


class MachinePhysics(Protocol):
    """What the check reads of a configured machine (a
    :class:`~qmk.kernel.config.MachineConfig` is one: the config, which loads this
    module where it checks, stays above it)."""

    @property
    def noise_model(self) -> str | None: ...
    @property
    def profile(self) -> str: ...
    @property
    def qubit(self) -> str: ...
    @property
    def calibration(self) -> Mapping[str, Any] | None: ...


def check_machine(machine: MachinePhysics) -> None:
    """Check the machine's physics with the QEC layer: its noise model, and its profile,
    qubit set and calibration together (see the module docstring).

    Raises:
        ConfigError: a noise model, profile, qubit set or calibration the QEC layer
            refuses (the message names the key).
    """
    from qmk.qec.logical import logical_model
    from qmk.qec.noise import parse_noise_model

    try:
        noise = None if machine.noise_model is None else parse_noise_model(machine.noise_model)
    except QMKError as exc:
        raise ConfigError(
            f"machine.noise_model: {exc.message}", key="machine.noise_model"
        ) from None
    try:
        model = logical_model(
            machine.profile, machine.qubit, noise=noise, calibration=machine.calibration
        )
    except QMKError as exc:
        raise ConfigError(
            f"machine.profile/machine.qubit: {exc.message}", key="machine.profile"
        ) from None
    if machine.calibration is not None and model.calibration is None:
        calibration = machine.calibration
        raise ConfigError(
            f"machine.calibration is for {calibration['family']} on "
            f"{calibration['instruction_set']} qubits; the machine's profile "
            f"{machine.profile} on {machine.qubit} is not",
            key="machine.calibration",
        )


__all__ = ["MachinePhysics", "check_machine"]
