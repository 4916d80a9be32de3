"""The worker side of a job: one attempt (:class:`~qmk.kernel.pools.attempt.Attempt`),
as a worker process runs it.

:func:`attempt_outcome` reads the program as the request's target reads it: a QVM
graph, the request's rewrite applied, verified once per text and process
(:func:`qmk.kernel.records.programs.verified`), or a device job. It checks the
capabilities again, and runs the program through its target (:mod:`qmk.execution.target`:
the logical machine, lattice surgery, the neutral-atom device). A
:class:`~qmk.kernel.pools.control.WorkerControl` answers the kernel's checkpoint and
yield requests at its pause points. A target that streams records (a device job's
measurements) sends them to the kernel as notes while it runs, and its result's
artifacts come back beside the result.

Only workers import this module (:func:`qmk.kernel.pools.attempt.run_job`, the task the
kernel hands its pool, imports it there): the kernel makes attempts and runs none.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.errors import CapabilityError, QMKError
from qmk.execution.rewritten import rewritten
from qmk.execution.targets import get as get_target
from qmk.execution.targets import spec as target_spec
from qmk.kernel.errors import JobError
from qmk.kernel.pools.worker import current_link
from qmk.kernel.records.encoded import encode_result
from qmk.kernel.records.outcome import Done, Failed, Outcome, Ran, Yielded
from qmk.kernel.records.programs import verified
from qmk.kernel.storage.artifacts import PART_RECORDS
from qmk.kernel.storage.store import meta_text

if TYPE_CHECKING:
    from qmk.execution.trajectories import Suspended
    from qmk.kernel.pools.attempt import Attempt
    from qmk.kernel.pools.control import WorkerControl


def attempt_outcome(
    attempt: Attempt, *, control: Callable[..., WorkerControl] | None = None
) -> Outcome:
    """Run one attempt of a job in a worker (see the module docstring).

    The program is read as its target reads it (:mod:`qmk.execution.target`): a QVM
    graph is verified once per text and process (the kernel's cache) and a device job
    parsed; the capability check runs for every attempt; the target compiles it with the
    request and runs it. ``control`` makes the run's control, called as
    :class:`WorkerControl` is (``(link, directory, every_ops=)``): it (None: it, loaded
    here, in the worker: the kernel sends attempts and never holds one), or a subclass
    that also holds the run where it looks (the tests' pause gate,
    ``tests/support/pools.py``, passes one).
    """
    Suspended = _suspended()
    from qmk.execution.spans import span  # the worker's, not the kernel's (as Suspended)

    request = attempt.request
    if request.trace_context is not None:
        return _traced(attempt, control)
    link = current_link()
    if control is None:
        from qmk.kernel.pools.control import WorkerControl

        control = WorkerControl
    watch = (
        None
        if link is None or attempt.checkpoint_dir is None
        else control(link, attempt.checkpoint_dir, every_ops=request.checkpoint_every_ops)
    )
    if watch is not None:
        watch.state_key = attempt.state_key
    try:
        entry = target_spec(request.target)
        target = get_target(request.target)
        with span("qmk.worker.verify"):
            text = attempt.program
            if entry.program == "qvm":  # verified once per text (qmk.kernel.records.programs)
                ran = rewritten(text, request.rewrite)
                program = verified(ran, attempt.limits)  # past the unrolling limit: QV505
            else:
                program = target.read(text)
        missing = sorted(set(program.required_caps) - set(attempt.caps))
        if missing:
            raise CapabilityError(
                f"refused at execution: the job lacks {', '.join(missing)}", missing=missing
            )
        executable = target.compile(program, request)
        streamer = _shots_streamer() if entry.streams else None
        result = executable.run(
            request.shots,
            request.seed,
            control=watch,
            resume=attempt.resume_state(),
            **({} if streamer is None else {"sink": streamer}),
        )
    except Suspended as stop:
        return Yielded(epoch=stop.state.epoch)
    except QMKError as exc:
        return Failed.of(exc)
    outcome = _answer(result.to_json(), attempt)
    if result.artifacts and isinstance(outcome, Done):
        outcome = msgspec.structs.replace(outcome, artifacts=[dict(a) for a in result.artifacts])
    return outcome


@functools.cache
def _suspended() -> type[Suspended]:
    """The executor's ``Suspended``: imported on a worker's first job, not with this
    module (the kernel imports it to make attempts, and runs no execution), and kept."""
    from qmk.execution.trajectories import Suspended

    return Suspended


def _shots_streamer() -> Callable[[list[Any]], None] | None:
    """The ``sink`` of a run that streams records (a device job's ``measurements``,
    :class:`~qmk.execution.target.TargetSpec` ``streams``): each chunk's records go to
    the kernel as notes while the job runs (``{"stream": {"artifact", "kind",
    "records"}}``, whole parts of :data:`~qmk.kernel.storage.artifacts.PART_RECORDS` records; the
    rest comes with the result), for :meth:`qmk.kernel.storage.artifacts.Artifacts.part`. None:
    no kernel to send to (a worker outside a pool)."""
    link = current_link()
    if link is None:
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


def _traced(attempt: Attempt, control: Callable[..., WorkerControl] | None) -> Outcome:
    """:func:`attempt_outcome` of ``attempt`` inside a ``qmk.worker`` span, under its request's
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
            return attempt_outcome(plain, control=control)
        attributes: dict[str, Any] = {
            "qmk.shots": request.shots,
            "qmk.pid": os.getpid(),
            "qmk.seed": request.seed,
        }
        if request.part is not None:
            attributes["qmk.part"] = f"{request.part[0]}/{request.part[1]}"
        with recorder.span("qmk.worker", attributes) as top:
            outcome = attempt_outcome(plain, control=control)
            if isinstance(outcome, Yielded):
                top.set("qmk.yielded_at_epoch", outcome.epoch or 0)
            elif isinstance(outcome, Failed):
                top.error = outcome.error.message[:500]
            if recorder.untraced_groups:
                top.set("qmk.groups_untraced", recorder.untraced_groups)
            if recorder.dropped:
                top.set("qmk.spans_dropped", recorder.dropped)
        return msgspec.structs.replace(outcome, spans=recorder.finished())


def _answer(value: dict[str, Any], attempt: Attempt) -> Outcome:
    """A worker's successful outcome: the result encoded here, once (``result_json``,
    ``result_meta``: :func:`~qmk.kernel.records.encoded.encode_result`; a job's run says
    ``cache_hit: false`` in its telemetry), with its SHA-256 (``result_sha256``). So the
    kernel stores and serves the text as it is and hashes none of it. For a part of a
    split job it is the result object (the pool merges the parts). A result over
    ``attempt.max_result_bytes`` is ``QK305`` instead: it never leaves the worker."""
    if attempt.request.part is not None:
        return Ran(result=value)
    telemetry = value.get("telemetry")  # a run's result is its own (cache hits run none)
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
        return Failed.of(too_big)
    # its digests taken here, off the kernel's loop (its audit line and seal carry them)
    meta = meta_text(stored.meta)
    return Done(
        result_json=stored.data,
        # the index as the store keeps it, without the head: the kernel reads the few
        # members it needs from the text (StoredResult.facts), and keeps no decoded head
        result_meta={key: value for key, value in stored.meta.items() if key != "head"},
        result_sha256=stored.sha256,
        result_meta_text=meta,
        result_meta_sha256=hashlib.sha256(meta.encode()).hexdigest(),
    )


__all__ = ["attempt_outcome"]
