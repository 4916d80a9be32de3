"""Running a workflow: every step's jobs, in dependency order, with retries.

A step's jobs run once every step it names in ``after`` has COMPLETED all of its jobs;
otherwise they are SKIPPED (with the reason). A job that ends FAILED (or is refused) is
run again up to the step's ``retries``. Where the jobs run is a :class:`Backend`:

- :class:`LocalBackend`: in this process, through the targets ``qmk run`` uses (a
  ``device`` step on the neutral-atom device);
- :class:`KernelBackend`: on a kernel, through :class:`qmk.client.Client` (JSON-RPC on a
  socket) or :class:`qmk.http.client.RestClient` (the REST API); a step's jobs are all
  queued, then awaited, so the kernel's workers run them side by side;
- a kernel's own trigger runs (:mod:`qmk.kernel.running.triggers`), on its event loop
  (:func:`run_workflow_async`), as the trigger owner's jobs.

One logic of steps, dependencies and retries serves them all (:func:`conversation`).
Same file, same seeds: same counts, on every backend.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qmk import defaults
from qmk.abi.errors import CommandError
from qmk.abi.replies import Job
from qmk.errors import QMKError
from qmk.workflows.spec import OPTION_KEYS, Step, Workflow, bad

#: What a progress callback is told: jobs done, jobs in all, what just ended.
Progress = Callable[[int, int, str], None]
#: A workflow job's own state: a step it depends on did not complete, so it never ran.
SKIPPED = "SKIPPED"
#: The states a job of a workflow ends in: a kernel job's final states, and SKIPPED.
FINAL = (*defaults.FINAL_JOB_STATES, SKIPPED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Planned:
    """One job of a step: its sweep point and what it runs with."""

    step: Step
    index: int
    point: Mapping[str, Any]
    graph: Mapping[str, Any]
    shots: int
    seed: int | None
    engine: str | None
    noise: bool | str
    qubit: str | None
    distance: int | None

    @property
    def label(self) -> str:
        if not self.point:
            return self.step.name
        return f"{self.step.name}[{', '.join(f'{k}={v}' for k, v in self.point.items())}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """How one job of the workflow ended."""

    step: str
    index: int
    point: Mapping[str, Any]
    state: str
    shots: int
    seed: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    engine: str | None = None
    job_id: str | None = None
    attempts: int = 1
    error: str | None = None
    telemetry: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "index": self.index,
            "point": dict(self.point),
            "state": self.state,
            "shots": self.shots,
            "seed": self.seed,
            "counts": dict(self.counts),
            "engine": self.engine,
            "job_id": self.job_id,
            "attempts": self.attempts,
            "error": self.error,
            "telemetry": dict(self.telemetry),
        }


class Backend(Protocol):
    """Where jobs run: all of a batch started, then each one's end."""

    def run_batch(self, jobs: Sequence[Planned], done: Callable[[JobResult], None]) -> None:
        """Run ``jobs``; call ``done`` with each one's result as it ends."""
        ...


def _profile(distance: int | None) -> str | None:
    return None if distance is None else f"logical:surface_code(d={distance})"


_TELEMETRY = ("mode", "engine", "logical_cycles", "injected_logical_errors", "wall_time_s")


class LocalBackend:
    """Runs jobs in this process, through their targets as ``qmk run`` runs them (a
    ``device`` step's on the neutral-atom device, its preset the step's ``device``)."""

    def run_batch(self, jobs: Sequence[Planned], done: Callable[[JobResult], None]) -> None:
        for job in jobs:
            done(self._one(job))

    def _one(self, job: Planned) -> JobResult:
        from qmk.execution.runs import run

        base: dict[str, Any] = {
            "step": job.step.name,
            "index": job.index,
            "point": job.point,
            "shots": job.shots,
        }
        try:
            result = run(dict(job.graph), **local_keywords(job))
        except QMKError as exc:
            return JobResult(**base, state=defaults.FAILED, seed=job.seed, error=str(exc))
        telemetry = result.telemetry.to_json() if hasattr(result.telemetry, "to_json") else {}
        return JobResult(
            **base,
            state=defaults.COMPLETED,
            seed=result.seed,
            counts=dict(result.counts),
            engine=result.engine if job.step.device is None else f"device:{job.step.device}",
            telemetry={k: telemetry.get(k) for k in _TELEMETRY if k in telemetry},
        )


def local_keywords(job: Planned) -> dict[str, Any]:
    """The run keywords of a job run in this process (:func:`qmk.execution.runs.run`'s):
    its shots and seed, and the settings its step gives (unset ones left to the target:
    a device step's target refuses an engine, a qubit set or a distance with ``QM102``).

    Raises:
        CommandError: ``QW013 bad-workflow`` for a device step with a noise model.
    """
    noise: Any = job.noise
    keywords: dict[str, Any] = {"shots": job.shots, "seed": job.seed}
    if job.step.device is not None:
        if isinstance(noise, str):
            raise bad(f"step {job.step.name!r}: a device step takes noise true or false")
        keywords.update(target="neutral-atom", target_options={"preset": str(job.step.device)})
    elif isinstance(noise, str):
        from qmk.qec.noise import parse_noise_model

        noise = parse_noise_model(noise)
    keywords["noise"] = noise
    given = {"engine": job.engine, "qubit": job.qubit, "profile": _profile(job.distance)}
    keywords.update({key: value for key, value in given.items() if value is not None})
    return keywords


class KernelBackend:
    """Runs jobs on a kernel through a client with ``call(syscall, **params)``-like methods.

    Args:
        submit: ``submit(graph, shots, seed, policy) -> job`` (a
            :class:`~qmk.abi.replies.Job`, as the clients give it).
        wait: ``wait(job_id, timeout_ms) -> job``.
        wait_ms: how long one wait call lasts before it is made again.
    """

    def __init__(
        self,
        submit: Callable[..., Job],
        wait: Callable[[str, int], Job],
        *,
        wait_ms: int = defaults.WAIT_TIMEOUT_MS,
    ) -> None:
        self.submit = submit
        self.wait = wait
        self.wait_ms = wait_ms

    def run_batch(self, jobs: Sequence[Planned], done: Callable[[JobResult], None]) -> None:
        started: list[tuple[Planned, Job | None, str | None]] = []
        for job in jobs:
            try:
                reply = self.submit(dict(job.graph), job.shots, job.seed, kernel_policy(job))
                started.append((job, reply, None))
            except QMKError as exc:
                if _unrunnable(exc):
                    raise
                started.append((job, None, str(exc)))
        for job, submitted, refused in started:
            if submitted is None:
                done(refused_result(job, str(refused)))
                continue
            final = submitted
            while final.state not in FINAL:
                final = self.wait(submitted.job_id, self.wait_ms)
            done(ended_result(job, final))


def kernel_policy(job: Planned) -> dict[str, Any]:
    """The kernel policy of a job of a workflow run on a kernel.

    Raises:
        CommandError: ``QW013 bad-workflow`` for a step a kernel cannot run (a device
            step; a noise model, which is the kernel config's).
    """
    if job.step.device is not None:
        raise bad(f"step {job.step.name!r}: device steps run locally (no --server/--socket)")
    if isinstance(job.noise, str):
        raise bad(
            f"step {job.step.name!r}: noise models run locally; a kernel's noise model is "
            "its config's (noise may be true or false)"
        )
    from qmk.execution.request import submit_policy

    chosen: dict[str, Any] = {
        "engine": job.engine,
        "qubit": job.qubit,
        "profile": _profile(job.distance),
    }
    if not job.noise:
        chosen["noise"] = False
    given = {key: value for key, value in chosen.items() if value is not None}
    return submit_policy(**{**job.step.policy, **given}) or {}


def _base(job: Planned) -> dict[str, Any]:
    return {"step": job.step.name, "index": job.index, "point": job.point, "shots": job.shots}


def refused_result(job: Planned, error: str) -> JobResult:
    """A job a kernel refused at submit: FAILED, with the refusal."""
    return JobResult(**_base(job), state=defaults.FAILED, seed=job.seed, error=error)


def ended_result(job: Planned, ended: Job) -> JobResult:
    """A job of a kernel as it ended (its counts, engine, telemetry, error), from the job
    as the kernel answers it (:class:`~qmk.abi.replies.Job`)."""
    result = ended.result or {}
    error = ended.error
    telemetry = result.get("telemetry") or {}
    return JobResult(
        **_base(job),
        state=ended.state,
        seed=ended.seed,
        counts=dict(result.get("counts") or {}),
        engine=result.get("engine"),
        job_id=ended.job_id,
        error=None if error is None else f"{error.code} {error.name}: {error.message}",
        telemetry={k: telemetry.get(k) for k in _TELEMETRY if k in telemetry},
    )


def _graph(step: Step, point: Mapping[str, Any], cache: dict[Any, Any]) -> dict[str, Any]:
    """The QVM JSON of ``step`` at ``point`` (program parameters bound): the cache's,
    where it holds it (a kernel's, lowered in its planner: no front-end loads here)."""
    params = {k: v for k, v in point.items() if k not in OPTION_KEYS}
    key = (step.name, tuple(sorted(params.items())))
    if key in cache:
        return dict(cache[key])
    from qmk.http.programs import to_graph

    if params:
        fmt = step.format or "qasm"
        if fmt not in ("qasm", "qasm2", "qasm3"):
            raise bad(
                f"step {step.name!r} sweeps {', '.join(params)}: parameters bind OpenQASM "
                f"inputs (input float NAME;), and its program is {fmt}"
            )
        from qmk.frontends.text import lower_text

        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad(f"step {step.name!r}: sweep {name} values must be numbers")
        values = {k: float(v) for k, v in params.items()}
        graph = lower_text(step.source, fmt, step.origin, params=values).to_json()
    else:
        source: Any = step.source
        if step.format in (None, "qvm-json") and step.source.lstrip().startswith("{"):
            import json

            source = json.loads(step.source)
        graph, _ = to_graph(source, step.format)
    cache[key] = graph
    return dict(graph)


def plan(step: Step, cache: dict[Any, Any] | None = None) -> list[Planned]:
    """Every job of ``step``, its programs lowered."""
    cache = {} if cache is None else cache
    jobs = []
    for index, point in enumerate(step.points()):
        jobs.append(
            Planned(
                step=step,
                index=index,
                point=point,
                graph=_graph(step, point, cache),
                shots=int(point.get("shots", step.shots)),
                seed=point.get("seed", step.seed),
                engine=point.get("engine", step.engine),
                noise=point.get("noise", step.noise),
                qubit=point.get("qubit", step.qubit),
                distance=point.get("distance", step.distance),
            )
        )
    return jobs


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowResult:
    """Every job's result, in step and sweep order, and how long it all took."""

    workflow: Workflow
    jobs: tuple[JobResult, ...]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return all(job.state == defaults.COMPLETED for job in self.jobs)


#: The workflow as a conversation with whoever runs its jobs (:func:`conversation`).
Conversation = Generator[list[Planned], list[JobResult], WorkflowResult]


def conversation(
    flow: Workflow,
    *,
    progress: Progress | None = None,
    cache: dict[Any, Any] | None = None,
) -> Conversation:
    """The workflow's steps as a conversation: it yields each batch of jobs to run and is
    sent their results, in the batch's order; it returns the :class:`WorkflowResult`.
    One logic of steps, dependencies and retries for whoever runs the jobs, in this
    thread (:func:`run_workflow`) or on an event loop (:func:`run_workflow_async`).

    ``cache``: programs lowered before (:func:`lower_all`): no step is lowered again.

    Raises:
        CommandError: ``QW013 bad-workflow`` for a step that cannot be run at all (a
            program that does not lower, a sweep a program cannot take).
    """
    start = time.monotonic()
    total, finished = flow.size, 0
    results: list[JobResult] = []
    complete: dict[str, bool] = {}
    cache = {} if cache is None else cache
    for step in flow.steps:
        failed = [name for name in step.after if not complete.get(name)]
        if failed:
            for index, point in enumerate(step.points()):
                results.append(
                    JobResult(
                        step=step.name,
                        index=index,
                        point=point,
                        state=SKIPPED,
                        shots=int(point.get("shots", step.shots)),
                        error=f"step {failed[0]!r} did not complete",
                    )
                )
                finished += 1
                if progress is not None:
                    progress(finished, total, f"{step.name}: skipped")
            complete[step.name] = False
            continue
        jobs = _planned(step, cache)
        ended: dict[int, JobResult] = {}
        pending = list(jobs)
        attempt = 0
        while pending:
            attempt += 1
            batch = yield list(pending)
            retry = []
            for job, result in zip(pending, batch, strict=True):
                if result.state != defaults.COMPLETED and attempt <= step.retries:
                    retry.append(job)
                    continue
                ended[job.index] = _with_attempts(result, attempt)
                finished += 1
                if progress is not None:
                    progress(finished, total, f"{job.label}: {result.state}")
            pending = retry
        step_results = [ended[i] for i in range(len(jobs))]
        results.extend(step_results)
        complete[step.name] = all(r.state == defaults.COMPLETED for r in step_results)
    return WorkflowResult(
        workflow=flow, jobs=tuple(results), elapsed_s=round(time.monotonic() - start, 3)
    )


def _planned(step: Step, cache: dict[Any, Any]) -> list[Planned]:
    try:
        return plan(step, cache)
    except QMKError as exc:
        if _unrunnable(exc):
            raise
        raise bad(f"step {step.name!r}: the program does not lower: {exc}") from None


def lower_all(flow: Workflow) -> dict[Any, Any]:
    """Every step's programs lowered (the cache :func:`conversation` takes): the work of
    a run that is not running its jobs, done ahead (in a thread, by a kernel).

    Raises:
        CommandError: as :func:`conversation`.
    """
    cache: dict[Any, Any] = {}
    for step in flow.steps:
        _planned(step, cache)
    return cache


def runnable(flow: Workflow) -> dict[Any, Any]:
    """Every program of ``flow`` lowered and every job's kernel policy read: a workflow a
    kernel can run (checked when its trigger is made, again by each run).

    Raises:
        CommandError: ``QW013 bad-workflow`` (a program that does not lower, a device
            step, a noise model).
    """
    cache = lower_all(flow)
    for step in flow.steps:
        for job in plan(step, cache):
            kernel_policy(job)
    return cache


def lowered(link: object, flow: Workflow) -> dict[str, Any]:
    """:func:`runnable` in the kernel's planner process (a pool's task, ``link`` its
    unused line), as plain data: ``{"cache": ..., "cpu_s": ...}``, or ``{"error": ...,
    "cpu_s": ...}`` with the refusal's JSON. The kernel never reads a trigger's program
    text itself; it charges ``cpu_s`` to the trigger's tenant."""
    began = time.process_time()
    try:
        answer: dict[str, Any] = {"cache": runnable(flow)}
    except QMKError as exc:
        answer = {"error": exc.to_json()}
    answer["cpu_s"] = time.process_time() - began
    return answer


def run_workflow(
    flow: Workflow, backend: Backend, *, progress: Progress | None = None
) -> WorkflowResult:
    """Run every step of ``flow`` on ``backend`` (see the module docstring).

    Raises:
        CommandError: ``QW013 bad-workflow`` for a step that cannot be run at all (a
            program that does not lower, a sweep a program cannot take).
    """
    steps = conversation(flow, progress=progress)
    try:
        batch = next(steps)
        while True:
            ended: list[JobResult] = []
            backend.run_batch(batch, ended.append)
            batch = steps.send(ended)
    except StopIteration as stop:
        done: WorkflowResult = stop.value
        return done


async def run_workflow_async(
    flow: Workflow,
    run_batch: Callable[[Sequence[Planned]], Awaitable[list[JobResult]]],
    *,
    cache: dict[Any, Any] | None = None,
) -> WorkflowResult:
    """Run every step of ``flow`` on an event loop: ``await run_batch(jobs)`` runs a
    batch and answers its results in its order (a kernel's trigger runs,
    :mod:`qmk.kernel.running.triggers`). ``cache``: :func:`lower_all`'s, so that nothing is
    lowered on the loop.

    Raises:
        CommandError: as :func:`conversation`.
    """
    steps = conversation(flow, cache=cache)
    try:
        batch = next(steps)
        while True:
            batch = steps.send(await run_batch(batch))
    except StopIteration as stop:
        done: WorkflowResult = stop.value
        return done


def _with_attempts(result: JobResult, attempts: int) -> JobResult:
    from dataclasses import replace

    return replace(result, attempts=attempts)


def _unrunnable(error: QMKError) -> bool:
    """Whether ``error`` says the workflow itself cannot run (``bad-workflow``), rather
    than that one job failed."""
    return isinstance(error, CommandError) and error.name == "bad-workflow"
