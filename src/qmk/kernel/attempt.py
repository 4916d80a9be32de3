"""The worker side of a job: one attempt, as a worker process runs it.

The kernel hands a worker pool ``run_job(attempt)``: an :class:`Attempt` holds the job's
run request (:class:`~qmk.execution.request.RunRequest`, as the fault policies left it),
the program text as submitted, the capabilities granted at submit, and where the
attempt's checkpoints go and which one it resumes from. :func:`run_job` applies the
request's rewrite, verifies the program (once per text and process:
:func:`qmk.kernel.programs.verified`), checks the capabilities again and runs it on the
executor (:func:`qmk.execution.executor.execute`), under a
:class:`~qmk.kernel.control.WorkerControl` that answers the kernel's checkpoint and
yield requests at fences; a device job runs on the neutral-atom device instead
(:func:`run_device_job`).

What comes back is plain data (it crosses a process boundary, or a Dask cluster):
``{"ok": True, "result_json": bytes, "result_meta": index}`` (the result encoded once,
here: :func:`_answer`), ``{"ok": True, "result": RunResult JSON}`` for a part of a split
job, ``{"ok": False, "error": {code, name, message}}`` for a refusal or an error of the
program or engine, or ``{"ok": False, "yielded": {"epoch": ...}}`` when the kernel asked
the job to stop and it did, its state saved. A traced attempt also returns ``spans``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.errors import CapabilityError, QMKError
from qmk.execution.request import RunRequest
from qmk.execution.spans import span
from qmk.kernel.artifacts import PART_RECORDS
from qmk.kernel.control import WorkerControl
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.jobs import DEVICE_CAP
from qmk.kernel.pool import current_link
from qmk.kernel.programs import verified
from qmk.kernel.stored import encode_result

if TYPE_CHECKING:
    from qmk.execution.result import RunResult
    from qmk.execution.trajectories import Suspended


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of a job on a worker: what :func:`run_job` runs.

    ``request`` decides the run; ``program`` is the job's text as submitted (QVM JSON,
    or a device job's stored ``{"job": wire job, "strict_timing": bool}``); ``caps``
    the capabilities granted at submit (checked again here). ``checkpoint_dir`` is where
    the attempt saves execution states (None: nowhere), ``resume`` the state file it goes
    on from (None: the start), and ``max_result_bytes`` the largest result the kernel
    keeps (None: no limit). ``state_key`` seals the states it saves and must open the
    one it resumes from (:mod:`qmk.kernel.seals`: an edited file is ``QK309``); None:
    states are neither sealed nor checked (an attempt outside a kernel).
    """

    request: RunRequest
    program: str
    caps: tuple[str, ...]
    checkpoint_dir: str | None = None
    resume: str | None = None
    max_result_bytes: int | None = None
    state_key: bytes | None = None

    def resume_state(self) -> Any:
        """What the run resumes from: the state file's path, or (with ``state_key``)
        the state read from it once its seal is checked; None: the start.

        Raises:
            JobError: ``QK309 checkpoint-tampered``.
            EngineError: ``QE107 checkpoint-unreadable``.
        """
        if self.resume is None or self.state_key is None:
            return self.resume
        from qmk.engines import EngineError
        from qmk.execution.checkpoint import ExecutionState
        from qmk.kernel.seals import unseal_state

        try:
            with open(self.resume, "rb") as handle:
                sealed = handle.read()
        except OSError as exc:
            raise EngineError.of(
                "checkpoint-unreadable", f"cannot read checkpoint {self.resume!r}: {exc}"
            ) from None
        return ExecutionState.from_bytes(unseal_state(self.state_key, sealed))

    @property
    def device(self) -> bool:
        """Whether this is a neutral-atom device job."""
        policy = self.request.policy
        return policy is not None and policy.device is not None


def run_job(
    attempt: Attempt, *, control: Callable[..., WorkerControl] = WorkerControl
) -> dict[str, Any]:
    """Run one attempt of a job in a worker (see the module docstring).

    The worker verifies each distinct program text once and keeps the verified program;
    the capability check runs for every attempt. ``control`` makes the run's control,
    called as :class:`WorkerControl` is (``(link, directory, every_ops=)``): it, or a
    subclass that also holds the run where it looks (the tests' pause gate,
    ``tests/support/pools.py``, passes one).
    """
    execute, Suspended = _execution()
    request = attempt.request
    if request.trace_context is not None:
        return _traced(attempt, control)
    link = current_link()
    watch = (
        None
        if link is None or attempt.checkpoint_dir is None
        else control(link, attempt.checkpoint_dir, every_ops=request.checkpoint_every_ops)
    )
    if watch is not None:
        watch.state_key = attempt.state_key
    if attempt.device:
        return run_device_job(attempt, control=watch)
    try:
        with span("qmk.worker.verify"):
            text = attempt.program
            program = verified(text if request.rewrite is None else request.rewrite.apply(text))
        missing = sorted(set(program.required_caps) - set(attempt.caps))
        if missing:
            raise CapabilityError(
                f"refused at execution: the job lacks {', '.join(missing)}", missing=missing
            )
        result = execute(program, request, control=watch, resume=attempt.resume_state())
    except Suspended as stop:
        return {"ok": False, "yielded": {"epoch": stop.state.epoch}}
    except QMKError as exc:
        return {"ok": False, "error": error_json(exc)}
    return _answer(result.to_json(), attempt)


@functools.cache
def _execution() -> tuple[Callable[..., RunResult], type[Suspended]]:
    """The executor's ``execute`` and ``Suspended``: imported on a worker's first job, not
    with this module (the kernel imports it to make attempts, and runs no execution), and
    kept (an import statement costs a microsecond or so even when the module is loaded)."""
    from qmk.execution.executor import execute
    from qmk.execution.trajectories import Suspended

    return execute, Suspended


def run_device_job(attempt: Attempt, *, control: WorkerControl | None = None) -> dict[str, Any]:
    """Run one neutral-atom device job in a worker: check its capability again, then
    :func:`qmk.devices.neutral_atom.emulator.run_job` (validators, scheduler, emulator).

    ``attempt.program`` is the stored text ``{"job": wire job, "strict_timing": bool}``
    (shots, seed, profile and backend already in the job). ``control`` answers the
    kernel's checkpoint and yield requests between the job's chunks of shots (its pause
    points: :mod:`qmk.devices.neutral_atom.shots`), saving into the attempt's checkpoint
    directory; ``attempt.resume`` is the state it goes on from. Returns the encoded
    ``Result.to_json(measurements=False)`` (:func:`_answer`), ``{"ok": False, "error": ...}``
    or ``{"ok": False, "yielded": {"epoch": chunks done}}``.
    """
    from qmk.devices.neutral_atom.emulator import run_job as run_device
    from qmk.execution.trajectories import Suspended

    try:
        if DEVICE_CAP not in attempt.caps:
            raise CapabilityError(
                f"refused at execution: the job lacks {DEVICE_CAP}", missing=[DEVICE_CAP]
            )
        stored = json.loads(attempt.program)
        result = run_device(
            stored["job"],
            strict_timing=bool(stored.get("strict_timing")),
            control=control,
            resume=attempt.resume_state(),
            on_shots=_shots_streamer(stored),
        )
        artifacts = _device_artifacts(stored, result)
    except Suspended as stop:
        return {"ok": False, "yielded": {"epoch": stop.state.epoch}}
    except QMKError as exc:
        return {"ok": False, "error": error_json(exc)}
    outcome = _answer(result.to_json(measurements=False), attempt)
    if artifacts and outcome.get("ok"):
        outcome["artifacts"] = artifacts
    return outcome


def _shots_streamer(stored: dict[str, Any]) -> Callable[[list[Any]], None] | None:
    """The ``on_shots`` of a device job that streams its ``measurements``: the records of
    each chunk of shots go to the kernel as notes while the job runs
    (``{"stream": {"artifact", "kind", "records"}}``, whole parts of
    :data:`~qmk.kernel.artifacts.PART_RECORDS` records; the rest comes with the result),
    for :meth:`qmk.kernel.artifacts.Artifacts.part`. None: nothing to stream, or no
    kernel to send to (a worker outside a pool)."""
    link = current_link()
    spec = stored.get("stream")
    if link is None or not spec:
        return None
    from qmk.devices.neutral_atom.streams import parse_spec

    if not parse_spec(spec).measurements:
        return None
    pending: list[dict[str, Any]] = []

    def on_shots(records: list[dict[str, Any]]) -> None:
        pending.extend(records)
        whole = len(pending) - len(pending) % PART_RECORDS
        if whole:
            part = {"artifact": "measurements", "kind": "measurements", "records": pending[:whole]}
            del pending[:whole]
            link.notify({"stream": part})

    return on_shots


def _device_artifacts(stored: dict[str, Any], result: Any) -> list[dict[str, Any]]:
    """The artifacts the stored job's ``stream`` asks for (none without one):
    :func:`qmk.devices.neutral_atom.streams.artifacts`, for :mod:`qmk.kernel.artifacts`."""
    if not stored.get("stream"):
        return []
    from qmk.devices.neutral_atom.job import parse_job
    from qmk.devices.neutral_atom.streams import artifacts, parse_spec

    return artifacts(parse_job(stored["job"]), result, parse_spec(stored["stream"]))


def _traced(attempt: Attempt, control: Callable[..., WorkerControl]) -> dict[str, Any]:
    """:func:`run_job` of ``attempt`` inside a ``qmk.worker`` span, under its request's
    trace context (the W3C traceparent of the kernel's run span); the worker's spans come
    back as ``spans`` beside the outcome, for the kernel to export
    (:mod:`qmk.execution.spans`)."""
    from qmk.execution.spans import recording

    request = attempt.request
    plain = msgspec.structs.replace(
        attempt, request=msgspec.structs.replace(request, trace_context=None)
    )
    with recording(request.trace_context) as recorder:
        if recorder is None:  # not a traceparent: the run goes on untraced
            return run_job(plain, control=control)
        attributes: dict[str, Any] = {
            "qmk.shots": request.shots,
            "qmk.pid": os.getpid(),
            "qmk.seed": request.seed,
        }
        if request.part is not None:
            attributes["qmk.part"] = f"{request.part[0]}/{request.part[1]}"
        with recorder.span("qmk.worker", attributes) as top:
            outcome = run_job(plain, control=control)
            if outcome.get("yielded") is not None:
                top.set("qmk.yielded_at_epoch", int(outcome["yielded"].get("epoch") or 0))
            elif not outcome.get("ok"):
                top.error = str((outcome.get("error") or {}).get("message", "failed"))[:500]
            if recorder.untraced_groups:
                top.set("qmk.groups_untraced", recorder.untraced_groups)
            if recorder.dropped:
                top.set("qmk.spans_dropped", recorder.dropped)
        return {**outcome, "spans": recorder.finished()}


def _answer(value: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
    """A worker's successful outcome: the result encoded here, once (``result_json``,
    ``result_meta``: :func:`~qmk.kernel.stored.encode_result`; a job's run says
    ``cache_hit: false`` in its telemetry), with its SHA-256 (``result_sha256``), so the
    kernel stores and serves the text as it is and hashes none of it; or, for a part of
    a split job, the result object (the pool merges the parts). A result over
    ``attempt.max_result_bytes`` is ``QK305`` instead: it never leaves the worker."""
    if attempt.request.part is not None:
        return {"ok": True, "result": value}
    if not attempt.device:  # a run's result is its own (the kernel's cache hits run none)
        telemetry = value.get("telemetry")
        cached = {**(telemetry if isinstance(telemetry, dict) else {}), "cache_hit": False}
        value = {**value, "telemetry": cached}
    stored = encode_result(value)
    limit = attempt.max_result_bytes
    if limit is not None and stored.nbytes > limit:
        too_big = JobError.of(
            "result-too-large",
            f"the result is {stored.nbytes} bytes of JSON; the kernel keeps at most {limit} "
            "per job",
        )
        return {"ok": False, "error": error_json(too_big)}
    # its digest taken here, off the kernel's loop (its audit line and seal carry it)
    return {
        "ok": True,
        "result_json": stored.data,
        "result_meta": dict(stored.meta),
        "result_sha256": stored.sha256,
    }


__all__ = ["Attempt", "run_device_job", "run_job"]
