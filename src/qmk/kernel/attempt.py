"""The worker side of a job: one attempt run in a worker process.

:func:`run_job` verifies the program again (:func:`qmk.kernel.programs.verified`),
checks the capabilities again and runs it on the executor, under a
:class:`~qmk.kernel.control.WorkerControl` that answers the kernel's checkpoint and
yield requests; :func:`run_device_job` does the same for a neutral-atom device job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qmk.kernel.control import WorkerControl
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.jobs import DEVICE_CAP, encode_result
from qmk.kernel.programs import verified


def run_device_job(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run one neutral-atom device job in a worker: check its capability again, then
    :func:`qmk.devices.neutral_atom.emulator.run_job` (validators, scheduler, emulator).

    ``spec["device_job"]`` is the stored text ``{"job": wire job, "strict_timing": bool}``
    (shots, seed, profile and backend already in the job). Returns the encoded
    ``Result.to_json(measurements=False)`` (:func:`_answer`) or ``{"ok": False, "error": ...}``.
    """
    import json

    from qmk.devices.neutral_atom.emulator import run_job as run_device
    from qmk.errors import CapabilityError, QMKError

    try:
        if DEVICE_CAP not in spec["caps"]:
            raise CapabilityError(
                f"refused at execution: the job lacks {DEVICE_CAP}", missing=[DEVICE_CAP]
            )
        stored = json.loads(spec["device_job"])
        result = run_device(stored["job"], strict_timing=bool(stored.get("strict_timing")))
    except QMKError as exc:
        return {"ok": False, "error": error_json(exc)}
    return _answer(result.to_json(measurements=False), spec)


def _traced(spec: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`run_job` of ``spec`` inside a ``qmk.worker`` span, under its ``trace`` (the
    W3C traceparent of the kernel's run span); the worker's spans come back as ``spans``
    beside the outcome, for the kernel to export (:mod:`qmk.execution.spans`)."""
    import os

    from qmk.execution.spans import recording

    plain = {key: value for key, value in spec.items() if key != "trace"}
    with recording(spec["trace"]) as recorder:
        if recorder is None:  # not a traceparent: the run goes on untraced
            return run_job(plain)
        attributes: dict[str, Any] = {
            "qmk.shots": int(spec.get("shots") or 0),
            "qmk.pid": os.getpid(),
        }
        if isinstance(spec.get("seed"), int):
            attributes["qmk.seed"] = spec["seed"]
        part = spec.get("part")
        if part is not None:
            attributes["qmk.part"] = f"{part[0]}/{part[1]}"
        with recorder.span("qmk.worker", attributes) as top:
            outcome = run_job(plain)
            if outcome.get("yielded") is not None:
                top.set("qmk.yielded_at_epoch", int(outcome["yielded"].get("epoch") or 0))
            elif not outcome.get("ok"):
                top.error = str((outcome.get("error") or {}).get("message", "failed"))[:500]
            if recorder.untraced_groups:
                top.set("qmk.groups_untraced", recorder.untraced_groups)
            if recorder.dropped:
                top.set("qmk.spans_dropped", recorder.dropped)
        return {**outcome, "spans": recorder.finished()}


def run_job(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run one job in a worker: verify again, check capabilities again, execute.

    ``spec`` holds ``graph`` (QVM JSON text), ``shots``, ``seed``, ``caps`` (granted at
    submit), ``engine``, ``noise``, ``qubit``, ``profile`` and the machine's ``noise_model``
    (text) and ``calibration`` (JSON), each None when the machine sets none;
    ``checkpoint_dir`` (where the kernel's checkpoints of the job go) and ``resume`` (the
    checkpoint file to go on from, or None); ``part``, ``[k, n]`` for part k of n of a
    job split over workers (:mod:`qmk.execution.parts`), else absent. Returns ``{"ok": True,
    "result": RunResult.to_json()}``, ``{"ok": False, "error": {code, name, message}}``
    for a refusal (missing capabilities) or an error of the program or engine, or
    ``{"ok": False, "yielded": {"epoch": ...}}`` when the kernel asked the job to stop
    and it did, its state saved (:class:`WorkerControl`). A spec with ``device_job`` is a
    neutral-atom device job: :func:`run_device_job`. A success is ``{"ok": True,
    "result_json": text, "result_meta": index}`` (:func:`_answer`), or ``{"ok": True,
    "result": RunResult.to_json()}`` for a part. A spec with ``trace`` (a W3C
    traceparent) also returns ``spans``, the worker's spans of the run (:func:`_traced`).

    The worker verifies each distinct graph text once and keeps the verified program
    (an LRU of :data:`VERIFIED_CACHE_SIZE`); the capability check runs for every job.
    """
    from qmk.errors import CapabilityError, QMKError
    from qmk.execution.executor import run
    from qmk.execution.spans import span
    from qmk.execution.trajectories import Suspended
    from qmk.kernel.workers import current_link
    from qmk.qec.logical import Calibration
    from qmk.qec.noise import parse_noise_model

    if spec.get("trace") is not None:
        return _traced(spec)
    if "device_job" in spec:
        return run_device_job(spec)
    link = current_link()
    directory = spec.get("checkpoint_dir")
    every_ops = int(spec.get("checkpoint_every_ops") or 0)
    control = (
        None
        if link is None or directory is None
        else WorkerControl(link, directory, every_ops=every_ops)
    )

    try:
        with span("qmk.worker.verify"):
            program = verified(spec["graph"])
        missing = sorted(set(program.required_caps) - set(spec["caps"]))
        if missing:
            raise CapabilityError(
                f"refused at execution: the job lacks {', '.join(missing)}", missing=missing
            )
        noise = spec["noise"]
        if noise and spec.get("noise_model"):
            noise = parse_noise_model(spec["noise_model"])
        calibration = spec.get("calibration")
        result = run(
            program,
            shots=spec["shots"],
            seed=spec["seed"],
            engine=spec["engine"],
            noise=noise,
            qubit=spec["qubit"],
            profile=spec["profile"],
            calibration=None if calibration is None else Calibration.from_json(calibration),
            require_calibration=False,  # machine-wide: it applies where it fits
            control=control,
            resume=spec.get("resume"),
            part=spec.get("part"),  # [k, n]: a part of a split job (qmk.execution.parts)
        )
    except Suspended as stop:
        return {"ok": False, "yielded": {"epoch": stop.state.epoch}}
    except QMKError as exc:
        return {"ok": False, "error": error_json(exc)}
    return _answer(result.to_json(), spec)


def _answer(value: dict[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """A worker's successful outcome: the result encoded here, once (``result_json``,
    ``result_meta``: :func:`encode_result`), so the kernel stores and serves the text as
    it is; or, for a part of a split job, the result object (the pool merges the parts).
    A result over ``spec["max_result_bytes"]`` is ``QK305`` instead: it never leaves the
    worker."""
    if spec.get("part") is not None:
        return {"ok": True, "result": value}
    stored = encode_result(value)
    limit = spec.get("max_result_bytes")
    if limit is not None and stored.nbytes > limit:
        too_big = JobError.of(
            "result-too-large",
            f"the result is {stored.nbytes} bytes of JSON; the kernel keeps at most {limit} "
            "per job",
        )
        return {"ok": False, "error": error_json(too_big)}
    return {"ok": True, "result_json": stored.data, "result_meta": dict(stored.meta)}


__all__ = ["run_device_job", "run_job"]
