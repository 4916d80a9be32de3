"""Runs on workers: an attempt of a job handed to the worker pool, watched within its
timeout, and ended with the worker's answer.

Each **run attempt** is the pool's future of its answer and the time its job's timeout
ends it (``timeout_ms`` counted from the start); a cancel, preemption, deadline or restore
takes it off the running (:meth:`~qmk.kernel.running.book.JobBook.stop`) and kills the
worker. The answer is taken in the pool's own reply callback (:meth:`Runs.answered`),
which hands the free worker its next job in the same loop turn.

The timeouts are watched by **one timer** of the kernel's clock, at the earliest end of
the runs it has seen (no task and no timer per run: a run's start compares two times).
When it fires it times out each run past its end (one whose answer came with it keeps
that answer) and is set again at the earliest end of those still running; a run that
ended meanwhile leaves it to fire for nothing, once. A running job's notes (a checkpoint it
saved at a fence, records of an artifact it streams) arrive through the pool's
``listen`` (:meth:`Runs.noted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any

from msgspec import UNSET
from msgspec.structs import replace

from qmk.execution.targets import spec as target_spec
from qmk.kernel.clock import Alarm
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.pools.attempt import Attempt, run_job
from qmk.kernel.pools.pool import TaskError, WorkerLost, WorkerMemoryError
from qmk.kernel.records import jobs as J
from qmk.kernel.records.jobs import Job
from qmk.kernel.records.outcome import Done, Outcome, Ran, Yielded, decode, result_of
from qmk.kernel.records.programs import limits_of, verified
from qmk.kernel.records.stored import with_telemetry
from qmk.kernel.running.book import JobBook, Running
from qmk.kernel.security.attest import Attested, attested

#: The outcomes that carry a result.
_RESULTS = (Done, Ran)


class Runs:
    """The attempts of jobs on workers (see the module docstring).

    Args:
        book: the kernel's jobs and their moves.
        dispatch: the dispatcher's round (a worker that answered takes its next job).
    """

    def __init__(self, book: JobBook, dispatch: Callable[[], None]) -> None:
        self.book = book
        self._dispatch = dispatch
        self._answering = False  # in answered: its dispatch must not nest another
        #: The timeouts' one timer (module docstring).
        self._watch = Alarm(book.clock, self._watched)

    def submit(self, job: Job, attempt: Attempt, *, streams: bool) -> None:
        """Hand ``attempt`` to the worker pool and watch the run (FAILED if the pool
        refuses); ``streams``: its target streams artifacts while it runs (a device job's,
        :attr:`~qmk.execution.target.TargetSpec.streams`), which the pool's notes carry."""
        book = self.book
        if book.traces is not None:  # the worker records its spans under the run's
            traceparent = book.traces.traceparent(job.job_id)
            if traceparent is not None:
                request = replace(attempt.request, trace_context=traceparent)
                attempt = replace(attempt, request=request)
        try:
            future = book.pool.submit(run_job, attempt)
        except Exception as exc:  # a pool that takes no work (e.g. its cluster is gone)
            book.release(job)
            refused = JobError.of("worker-failed", f"the worker pool refused the job: {exc}")
            book.finish(job, J.FAILED, error_json(refused))
            return
        run = Running(future=future, attempt=job.attempts, work=attempt)
        book.running[job.job_id] = run
        assert job.started_at is not None  # set by the dispatcher's start
        streams = streams and hasattr(book.pool, "listen")
        if book.checkpoints.requestable or streams:  # checkpoints; a device job's streams
            book.pool.listen(future, lambda note: self.noted(job, run, note))
        run.ends_at = job.started_at + job.policy.timeout_s
        self._watch.ask(run.ends_at)  # the earliest end: the watch is set at it
        future.add_done_callback(functools.partial(self._settled, job, run))

    def _watched(self) -> None:
        """The timeouts' timer: time out each run past its end (unless its answer came
        with it: it is taken in its own callback), then set the timer at the earliest end
        of the runs left; nothing once the kernel closes (its task group ended)."""
        book = self.book
        if not book.starting:
            return
        now = book.clock.now()
        for job_id, run in list(book.running.items()):
            job = book.jobs.get(job_id)
            if run.ends_at <= now and job is not None and not run.future.done():
                self._timed_out(job, run)
        ends = [run.ends_at for run in book.running.values()]
        if ends:
            self._watch.ask(min(ends))

    def close(self) -> None:
        """The kernel closes: the timeouts' timer goes (no run is watched any more)."""
        self._watch.cancel()

    def _settled(self, job: Job, run: Running, _future: Any = None) -> None:
        """The pool's future of ``run`` is done (its callback, ``_future`` the future):
        its answer is taken now when this is the loop's thread, at the top of the loop
        (:meth:`answered`), else in a later turn of the loop."""
        book = self.book
        if threading.get_ident() != book.thread_id:  # a pool driven by its own thread
            with contextlib.suppress(RuntimeError):  # after close() the loop may be gone
                book.loop.call_soon_threadsafe(self.answered, job, run)
            return
        # (its loop named: Python 3.11 asks the pid of the process to find the running one)
        if self._answering or asyncio.current_task(book.loop) is not None:
            # a future the supervisor completes itself (a kill in stop, a pool that
            # fails a task while the supervisor submits): its answer in a later turn
            book.loop.call_soon(self.answered, job, run)
            return
        self.answered(job, run)

    def answered(self, job: Job, run: Running) -> None:
        """The worker answered: end the attempt and hand the free worker its next job
        now, in this loop turn (the worker would sit idle otherwise while the loop
        serves requests). A job no longer running (stopped, timed out) has nothing left
        to end.

        Only at the top of the loop (no task running) and not nested in itself
        (:meth:`_settled` defers the others to a later turn). What goes wrong here stops
        the kernel, raised by a task of the kernel's group (a loop callback must not
        raise).
        """
        book = self.book
        if book.running.get(job.job_id) is not run or not book.starting:
            return  # cancelled, timed out or preempted: already handled
        self._answering = True
        try:
            book.round_follows = True  # what the end kicks, the round below does
            try:
                self._worker_done(job, run)
            finally:
                book.round_follows = False
            self._dispatch()
        except BaseException as exc:  # raised by a task of the kernel's group
            self._raise(exc)
        finally:
            self._answering = False

    def _raise(self, exc: BaseException) -> None:
        """Have the kernel's task group raise ``exc`` (it stops the kernel, as a failed
        task of it would); the loop's exception handler reports it when there is none."""

        async def fail() -> None:
            raise exc

        if self.book.spawn(fail()) is None:
            self.book.loop.call_exception_handler(
                {"message": "a worker's answer could not be taken", "exception": exc}
            )

    def _timed_out(self, job: Job, run: Running) -> None:
        book = self.book
        if book.running.get(job.job_id) is not run:
            return
        book.stop(job, "timeout")
        book.finish(
            job,
            J.TIMED_OUT,
            error_json(
                JobError.of(
                    "timeout", f"the job ran past its timeout of {job.policy.timeout_s:g} s"
                )
            ),
        )

    def _worker_done(self, job: Job, run: Running) -> None:
        """End ``run``'s attempt of ``job`` (still running: :meth:`answered` looked) with
        its worker's answer.

        The worker it held takes its next job first, before this one's result is kept,
        attested and its end written (the worker then computes while the loop does that
        bookkeeping, instead of waiting for it; the next job's start lines come before
        this job's end lines).
        """
        book = self.book
        del book.running[job.job_id]
        book.release(job)
        book.checkpoints.attempt_ended(job)
        self._dispatch()
        try:
            answer = run.future.result()
        except WorkerLost as exc:  # its pool's server went away: no fault of the job
            self._lost(job, exc)
            return
        except WorkerMemoryError as exc:
            failure = JobError.of("memory-limit", f"memory limit: {exc}")
            book.finish(job, J.FAILED, error_json(failure))
            return
        except TaskError as exc:  # died, raised, or killed by someone other than the kernel
            failure = JobError.of("worker-failed", f"{exc.kind}: {exc.message}")
            book.finish(job, J.FAILED, error_json(failure))
            return
        except Exception as exc:
            book.finish(job, J.FAILED, error_json(JobError.of("worker-failed", repr(exc))))
            return
        try:
            outcome = decode(answer)
        except ValueError as exc:  # msgspec.ValidationError: a worker that answered junk
            failure = JobError.of("worker-failed", f"the worker's answer is no outcome: {exc}")
            book.finish(job, J.FAILED, error_json(failure))
            return
        self._worker_spans(job, run, outcome)
        self._ended(job, run, outcome)

    def _ended(self, job: Job, run: Running, outcome: Outcome) -> None:
        """End ``job``'s attempt with the worker's ``outcome``: its result kept (or
        refused), preempted back to the queue, or FAILED."""
        book = self.book
        if isinstance(outcome, _RESULTS):
            result = result_of(outcome)
            telemetry = result.facts.telemetry  # its head is not decoded for this
            ran = telemetry is not None and telemetry.cache_hit is not UNSET
            if not ran:  # parts merged here: not marked yet
                result = with_telemetry(result, cache_hit=False)
            refusal = book.results.take(job, result)
            if refusal is not None:  # over the tenant's result storage: not kept
                book.finish(job, J.FAILED, refusal)
                return
            job.result = result
            streamed = outcome.artifacts if isinstance(outcome, Done) else []
            if streamed:  # before COMPLETED: its stream events precede the final state
                book.stored_artifacts().take(job.job_id, job.tenant, streamed, book.clock.now())
            if run.work is not None:  # its result answers later runs of its request
                book.cache.index(job, run.work.request)
            book.finish(job, J.COMPLETED, attested=self._attestation(job, run))
        elif isinstance(outcome, Yielded):  # preempted: it saved its state and stopped
            job.preemptions += 1
            program_epoch = outcome.epoch
            self._requeue(
                job, f"preempted at epoch {book.epoch}; saved at its fence {program_epoch}"
            )
        else:
            book.finish(job, J.FAILED, outcome.error.to_json())

    def _lost(self, job: Job, exc: WorkerLost) -> None:
        """``job``'s worker was lost: it resumes from its checkpoint on another, unless
        its losses are past ``worker_lost_retries`` (a job whose runs keep killing their
        workers, or a pool that keeps dying, would otherwise be queued forever)."""
        book = self.book
        job.worker_losses += 1
        losses = job.worker_losses
        retries = book.config.worker_lost_retries
        if losses > retries:
            message = (
                f"its worker was lost at epoch {book.epoch} (losses: {losses}; "
                f"kernel.worker_lost_retries: {retries})"
            )
            failure = JobError.of("worker-lost", f"{message}: {exc.message}")
            book.finish(job, J.FAILED, error_json(failure))
            return
        self._requeue(job, f"its worker was lost at epoch {book.epoch}: {exc.message}")

    def _requeue(self, job: Job, reason: str) -> None:
        """``job``'s attempt ended short of its end, not by its fault (it yielded, or its
        worker was lost): it waits in the queue again, and its next start resumes from
        its latest checkpoint (the dispatcher's choice, which the fault policies read)."""
        book = self.book
        book.transition(job, J.QUEUED, reason=reason)
        book.queue.push(job)
        book.kick()

    def _worker_spans(self, job: Job, run: Running, outcome: Outcome) -> None:
        """Hand the spans the worker recorded to the tracer (it logs its own failures)."""
        spans = outcome.spans
        traceparent = None if run.work is None else run.work.request.trace_context
        traces = self.book.traces
        if spans and traces is not None and isinstance(traceparent, str):
            traces.worker_spans(job.job_id, traceparent, spans)

    def _attestation(self, job: Job, run: Running) -> Attested | None:
        """The completed job's attestation (inputs, epochs, result digest), the fields
        its COMPLETED audit line carries (:mod:`qmk.kernel.security.attest`); None for a
        device job, whose record is its stored wire job and seed (no epochs)."""
        if run.work is None or job.result is None:
            return None
        if target_spec(job.request.target).program != "qvm":
            return None
        program = verified(job.graph, limits_of(self.book.config))
        return attested(run.work.request, job.result, program)

    def noted(self, job: Job, run: Running, note: Any) -> None:
        """A note from a running job's worker: it saved its execution state (record the
        checkpoint and answer the q_checkpoint waiting for it), or a device job sent
        records of an artifact it streams (:meth:`Artifacts.part`)."""
        book = self.book
        if threading.get_ident() != book.thread_id:  # a pool driven by its own thread
            with contextlib.suppress(RuntimeError):
                book.loop.call_soon_threadsafe(self.noted, job, run, note)
            return
        if book.running.get(job.job_id) is not run or not isinstance(note, dict):
            return  # stopped meanwhile: the kernel no longer follows this attempt
        streamed = note.get("stream")
        if isinstance(streamed, dict):
            artifact = {
                "name": streamed.get("artifact"),
                "kind": streamed.get("kind"),
                "records": list(streamed.get("records") or ()),
            }
            book.stored_artifacts().part(job.job_id, job.tenant, artifact, total=job.shots)
            return
        physics = None if run.work is None else run.work.request.physics()
        book.checkpoints.saved(job, {**note, "physics": physics})


__all__ = ["Runs"]
