"""A job's own physics in its policy, read as ``qmk run`` reads them: a calibration
(``policy.calibration``) and a noise model's text (``policy.noise_model``).

:func:`qmk.kernel.records.jobs.parse_policy` loads this module at the first policy that
names either: a kernel of jobs that run under its machine's physics never holds it (nor
the noise models, :mod:`qmk.qec.noise`, which it loads at the first noise model).
"""

from __future__ import annotations

from typing import Any

from qmk.errors import InvalidArgument, QMKError
from qmk.execution.request import Policy
from qmk.qec.values import Calibration


def checked_calibration(data: Any) -> dict[str, Any]:
    """``policy.calibration`` read as ``qmk run --calibration`` reads its file (the
    ``fit`` details of ``qmk qec calibrate --output`` ignored), as the JSON the policy
    holds: the value's own (:meth:`~qmk.qec.values.Calibration.to_json`).

    Raises:
        InvalidArgument: not a calibration (the QEC layer's reason in the message).
    """
    try:
        return Calibration.from_json(data).to_json()
    except QMKError as exc:
        raise InvalidArgument(
            f"policy.calibration: {exc.message}", key="policy.calibration"
        ) from None


def check_noise_model(policy: Policy) -> None:
    """``policy.noise_model`` reads as ``qmk run --noise-model`` reads it, with noise on.

    Raises:
        InvalidArgument: it does not parse, or the policy turns noise off.
    """
    from qmk.qec.noise import parse_noise_model  # the noise models: where one is named

    if not policy.noise:
        raise InvalidArgument(
            "policy.noise_model and policy.noise = false contradict each other: give one",
            key="policy.noise_model",
        )
    try:
        parse_noise_model(str(policy.noise_model))
    except QMKError as exc:
        raise InvalidArgument(
            f"policy.noise_model: {exc.message}", key="policy.noise_model"
        ) from None


__all__ = ["check_noise_model", "checked_calibration"]
