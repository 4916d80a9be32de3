"""The physics a job may ask for in its policy, against what the operator allows.

A job's ``policy.noise_model`` runs only within the machine's ``job_noise_models`` and
``job_max_error_rate``, and its ``policy.calibration`` only where ``job_calibration``
allows one; otherwise the job runs with the machine's own. Admission
(:class:`qmk.kernel.admit.admission.Admission`) asks here before it plans the job.

>>> from qmk.execution.request import Policy
>>> from qmk.kernel.config import MachineConfig
>>> machine = MachineConfig(physical_qubits=100_000, job_noise_models=("depolarizing",))
>>> job_noise_model(machine, "qubit_gate_ns_e3", Policy(noise_model="depolarizing(p=0.0001)"))
'depolarizing(p=0.0001)'
>>> try:
...     job_noise_model(machine, "qubit_gate_ns_e3", Policy(noise_model="idle(rate=0.001)"))
... except AdmissionError as exc:
...     print(exc.code, exc.details["refused"])
QS1007 ['idle']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qmk.errors import AdmissionError, InvalidArgument, ProgramError, QMKError

if TYPE_CHECKING:
    from qmk.execution.request import Policy
    from qmk.kernel.config import MachineConfig


def job_noise_model(machine: MachineConfig, qubit: Any, policy: Policy) -> str | None:
    """The noise-model text the job runs with: its policy's (canonical, within the
    machine's ``job_noise_models`` and ``job_max_error_rate``) or the machine's.

    Raises:
        AdmissionError: a family the operator does not allow, or a physical error
            rate above ``machine.job_max_error_rate``.
    """
    if policy.noise_model is None:
        return machine.noise_model
    from qmk.qec.noise import NOISE_MODELS, NoiseStack, describe_noise_model
    from qmk.qec.noise import parse_noise_model as parse
    from qmk.qec.params import qubit_params

    model = parse(policy.noise_model)  # parse_policy read it already
    names = {cls: name for name, cls in NOISE_MODELS.items()}
    parts = model.models if isinstance(model, NoiseStack) else (model,)
    refused = sorted({names[type(m)] for m in parts} - set(machine.job_noise_models))
    if refused:
        allowed = ", ".join(machine.job_noise_models) or "none"
        raise AdmissionError(
            f"policy.noise_model uses {', '.join(refused)}, which this machine does not "
            f"allow a job (machine.job_noise_models: {allowed})",
            limit="machine.job_noise_models",
            refused=refused,
        )
    try:
        params = qubit_params(qubit)  # a set's name, or custom parameters' JSON
    except QMKError as exc:
        raise ProgramError(exc.message, code=exc.code) from None
    try:
        rate = model.apply(params).physical_error_rate
    except QMKError as exc:
        raise InvalidArgument(
            f"policy.noise_model: {exc.message}", key="policy.noise_model"
        ) from None
    limit = machine.job_max_error_rate
    if rate > limit:
        raise AdmissionError(
            f"policy.noise_model gives the qubits a physical error rate of {rate:g}; this "
            f"machine allows a job at most {limit:g} (machine.job_max_error_rate)",
            limit="machine.job_max_error_rate",
            needed=rate,
            total=limit,
        )
    return describe_noise_model(model)


def job_calibration(machine: MachineConfig, policy: Policy) -> Any:
    """The calibration the job runs with: its policy's, if the machine allows one
    (``machine.job_calibration``), or the machine's.

    Raises:
        AdmissionError: the job gives one and the machine allows none.
    """
    if policy.calibration is None:
        return machine.calibration
    if not machine.job_calibration:
        raise AdmissionError(
            "policy.calibration: this machine runs every job with its own calibration "
            "(machine.job_calibration = false)",
            limit="machine.job_calibration",
        )
    return policy.calibration
