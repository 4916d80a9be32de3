"""A resumed attempt keeps its checkpoint's physics (:func:`resumed`).

The logical-error patterns of a whole run are drawn when it starts, from the physics it
starts with, so an execution state only continues under that physics. A checkpoint
records it (:meth:`~qmk.execution.request.RunRequest.physics`: the qubit, profile, noise
model, calibration, rewrite and machine schedule of the attempt that saved it), and an
attempt that resumes from it runs with it again. When the policies' answer at the new
epoch (:func:`~qmk.kernel.admit.adjusted.adjust`) differs, telemetry and the audit log say
``keep-physics`` and which parts differ; the policies apply again when the job starts
from its beginning. The kernel imports this module at the first attempt that resumes
from a checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from msgspec.structs import replace

from qmk.errors import QMKError
from qmk.execution.request import PHYSICS_FIELDS, Rewrite, RunRequest
from qmk.execution.rewritten import rewritten
from qmk.kernel.admit.adjusted import Adjusted, adjust, planned_figures, profiles_of
from qmk.kernel.admit.degraded import device_model
from qmk.kernel.device import LogicalMachine
from qmk.kernel.records.programs import verified
from qmk.qvm.limits import Limits


def resumed(
    request: RunRequest,
    job: Any,
    device: LogicalMachine,
    epoch: int,
    *,
    room: int,
    checkpoint: Mapping[str, Any],
    limits: Limits | None = None,
) -> tuple[RunRequest, Adjusted]:
    """The run request of ``job`` resuming from ``checkpoint`` (a store row with the
    ``physics`` it was saved under, :meth:`~qmk.execution.request.RunRequest.physics`):
    :func:`~qmk.kernel.admit.adjusted.adjust`'s answer when it gives that physics again,
    else that physics kept (a ``keep-physics`` action)."""
    physics = checkpoint["physics"]
    try:
        now, adjusted = adjust(request, job, device, epoch, room=room, limits=limits)
    except QMKError as exc:  # e.g. the link no longer delivers: the saved run goes on
        differs = [f"refused ({exc.code})"]
    else:
        found = json.loads(json.dumps(now.physics(), sort_keys=True))
        if found == physics:
            return now, adjusted
        differs = [key for key in PHYSICS_FIELDS if found.get(key) != physics.get(key)]
    return _keep(
        request, physics, job, device, epoch, checkpoint=checkpoint, differs=differs, limits=limits
    )


def _keep(
    request: RunRequest,
    physics: Mapping[str, Any],
    job: Any,
    device: LogicalMachine,
    epoch: int,
    *,
    checkpoint: Mapping[str, Any],
    differs: list[str],
    limits: Limits | None = None,
) -> tuple[RunRequest, Adjusted]:
    request = request.with_physics(physics)
    faults = device.faults
    if request.noise and faults.drift_factor(epoch) != 1.0 and faults.drift_fence_cycles:
        # the policy's saves go on
        request = replace(request, checkpoint_every_ops=faults.drift_fence_cycles)
    rewrite = request.rewrite or Rewrite()
    physical, load = planned_figures(job, request, rewrite, faults, limits)
    used = profiles_of(verified(rewritten(job.graph, rewrite), limits), request.profile)
    action = {
        "epoch": epoch,
        "kind": "resume",
        "action": "keep-physics",
        "checkpoint_id": checkpoint.get("checkpoint_id"),
        "program_epoch": checkpoint.get("program_epoch"),
        "differs_now": differs,
        "noise_model": request.noise_model,
        "profiles": list(used),
    }
    rates = {p: device_model(device, p, epoch, request).logical_error_per_cycle for p in used}
    return request, Adjusted(
        actions=(action,),
        rewrite=rewrite,
        physical_qubits=physical,
        decoder_load=load,
        logical_error_per_cycle=rates,
    )


__all__ = ["resumed"]
