"""OpenTelemetry traces of a job's life: submit -> verify -> admit -> queue -> run -> result.

``qmk serve --trace EXPORTER`` turns tracing on (off by default); EXPORTER is one of
:data:`EXPORTERS`: ``console`` (spans on stderr), ``jsonl:PATH`` (one JSON object per
span, appended to PATH: what the tests read), ``otlp`` or ``otlp:URL`` (OTLP over HTTP,
with ``opentelemetry-exporter-otlp-proto-http`` installed; ``OTEL_EXPORTER_OTLP_*``
variables apply).

The spans of one job form one trace:

- ``POST /v1/jobs`` (kind server; a ``traceparent`` header of the client is its parent),
  and under it ``qsyscall q_submit`` (every syscall of either wire has such a span);
- ``qmk.verify`` and ``qmk.admit``, under the submit: the verification of the graph, then
  the checks of capabilities, firewall, machine and quotas. Their bounds are the audit
  lines the kernel writes as it decides (the capability decision ends verification, the
  QUEUED line ends admission), heard through :mod:`qmk.abi.probe` in the submit's own
  context, so no kernel code knows about tracing. A submit whose capabilities are allowed
  has that decision on its QUEUED line (no ``cap`` line of its own): its verification
  ends there, and its ``qmk.admit`` span is empty;
- ``qmk.queue`` (accepted or re-queued -> started), ``qmk.run`` (started -> ended, one per
  attempt, with one span event per program epoch from the job's attestation) and
  ``qmk.result`` (the outcome: state, engine, injected logical errors, error code).

Under ``qmk.run``, the worker's own spans (:mod:`qmk.execution.spans`): the run's
``traceparent`` (:meth:`Tracing.traceparent`) rides in the worker's spec; the worker,
sandboxed with no network, records its spans (``qmk.worker``, and under it
``qmk.worker.verify``, ``qmk.engine.choice``, ``qmk.shots``, then ``qmk.group`` per group
of shots and ``qmk.epoch`` per program epoch) and returns them beside its result; the
kernel exports them here (:meth:`Tracing.worker_spans`) as child spans of the run, with
the worker's start and end times, so they share the job's trace. With tracing off the
spec carries no ``traceparent`` and the worker records nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmk.abi.errors import CommandError
from qmk.abi.probe import KernelEvent
from qmk.abi.probing import version

#: The exporters ``--trace`` takes (``jsonl`` and ``otlp`` with ``:`` and a path or URL).
EXPORTERS = ("none", "console", "jsonl:PATH", "otlp", "otlp:URL")
#: Jobs whose spans are followed at once (the oldest are dropped past it).
MAX_JOBS = 10_000
#: The syscalls that verify and admit a program (their spans get verify and admit).
_SUBMITS = frozenset({"q_submit"})
#: Spans of one worker run exported at most (the worker keeps fewer: qmk.execution.spans).
MAX_WORKER_SPANS = 10_000

_log = logging.getLogger("qmk.http.tracing")


@dataclass(slots=True)
class _Pending:
    """A syscall in flight in this context: the audit lines it caused, as they come."""

    name: str
    span: Any
    start_ns: int
    verified_ns: int | None = None
    queued_ns: int | None = None


@dataclass(slots=True)
class _JobTrace:
    """The open spans of one job."""

    context: Any  # the context its spans are children of
    trace_id: str
    queue: Any = None
    run: Any = None


_PENDING: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "qmk_pending_syscall", default=None
)


def _span_json(span: Any) -> dict[str, Any]:
    """A finished span as one JSON object (the JSONL exporter's line)."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": None if parent is None else f"{parent.span_id:016x}",
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": e.name, "time_unix_nano": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "resource": dict(span.resource.attributes),
    }


def _jsonl_exporter(path: Path) -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesExporter(SpanExporter):
        """Appends one JSON object per span to a file (flushed per batch)."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._file = path.open("a", encoding="utf-8")

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            lines = "".join(json.dumps(_span_json(s), default=str) + "\n" for s in spans)
            with self._lock:
                if self._file.closed:
                    return SpanExportResult.FAILURE
                self._file.write(lines)
                self._file.flush()
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            with self._lock:
                self._file.close()

    return JsonLinesExporter()


def make_provider(spec: str) -> Any:
    """The tracer provider of ``--trace SPEC`` (None for ``none``).

    Raises:
        CommandError: ``bad-option`` for an unknown exporter, a JSONL file that cannot be
            opened, or OTLP without its package.
    """
    if spec == "none":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    kind, _, where = spec.partition(":")
    resource = Resource.create({"service.name": "qmk", "service.version": version()})
    provider = TracerProvider(resource=resource)
    if kind == "console" and not where:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    elif kind == "jsonl" and where:
        try:
            exporter = _jsonl_exporter(Path(where))
        except OSError as exc:
            raise CommandError.of(
                "bad-option", f"--trace {spec}: cannot open the file: {exc.strerror}"
            ) from None
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif kind == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise CommandError.of(
                "bad-option",
                "--trace otlp needs opentelemetry-exporter-otlp-proto-http "
                "(pip install opentelemetry-exporter-otlp-proto-http)",
            ) from None
        otlp = OTLPSpanExporter(endpoint=where) if where else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(otlp))
    else:
        raise CommandError.of("bad-option", f"--trace {spec!r}: use one of {', '.join(EXPORTERS)}")
    return provider


class Tracing:
    """The spans of one application (a no-op when ``provider`` is None).

    Args:
        provider: an OpenTelemetry ``TracerProvider`` (:func:`make_provider`), or None.
    """

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._jobs: OrderedDict[str, _JobTrace] = OrderedDict()
        #: Submits answered before their QUEUED line was heard (a kernel in another
        #: process): their verify and admit spans wait for it.
        self._late: OrderedDict[str, _Pending] = OrderedDict()
        if provider is None:
            return
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self.tracer = provider.get_tracer("qmk.http")
        self._propagator = TraceContextTextMapPropagator()

    # ------------------------------------------------------------------ requests

    @contextlib.contextmanager
    def request(
        self, method: str, route: str, headers: Mapping[str, str]
    ) -> Iterator[dict[str, str]]:
        """A server span around one HTTP request (the client's ``traceparent`` is its
        parent); yields the headers to answer with (our ``traceparent``)."""
        if not self.enabled:
            yield {}
            return
        from opentelemetry.trace import SpanKind

        parent = self._propagator.extract(headers) if "traceparent" in headers else None
        with self.tracer.start_as_current_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        ) as span:
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            yield carrier
            self._span_status(span, carrier.get("status"))

    def _span_status(self, span: Any, status: str | None) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", int(status))

    def current_trace_id(self) -> str | None:
        """The trace id of the span in this context (None: none, or tracing off)."""
        if not self.enabled:
            return None
        ctx = self._trace.get_current_span().get_span_context()
        return f"{ctx.trace_id:032x}" if ctx.is_valid else None

    def trace_id_of(self, job_id: str | None) -> str | None:
        """The trace id of a job whose spans are followed (None: not followed)."""
        job = None if job_id is None else self._jobs.get(job_id)
        return None if job is None else job.trace_id

    async def call(self, name: str, method: Callable[..., Any], params: dict[str, Any]) -> Any:
        """``await method(**params)`` inside a ``qsyscall NAME`` span; for a submit, the
        verify and admit spans from the audit lines it causes."""
        if not self.enabled:
            return await method(**params)
        with self.tracer.start_as_current_span(
            f"qsyscall {name}", attributes={"rpc.system": "qsyscall", "rpc.method": name}
        ) as span:
            pending = _Pending(name=name, span=span, start_ns=time.time_ns())
            if name in _SUBMITS and params.get("traceparent") is None:
                params["traceparent"] = _traceparent(span)  # its workers' spans come back
            token = _PENDING.set(pending)
            try:
                result = await method(**params)
            except Exception as exc:
                code = getattr(exc, "code", None)
                if code is not None:
                    span.set_attribute("qmk.error.code", str(code))
                raise
            finally:
                _PENDING.reset(token)
            job_id = getattr(result, "job_id", None)  # a reply about a job names it
            if isinstance(job_id, str):
                span.set_attribute("qmk.job_id", job_id)
            if name in _SUBMITS and pending.queued_ns is None and isinstance(job_id, str):
                self._heard_later(job_id, pending)
            elif name in _SUBMITS:
                self._submit_spans(pending)
            return result

    def _heard_later(self, job_id: str, pending: _Pending) -> None:
        """A submit answered before its job's QUEUED line came (the kernel is another
        process, whose lines a gateway reads after the answer): the job's spans are the
        submit's children all the same, and its verify and admit spans end when the
        line is heard."""
        ctx = pending.span.get_span_context()
        context = self._trace.set_span_in_context(pending.span)
        self._jobs.setdefault(job_id, _JobTrace(context=context, trace_id=f"{ctx.trace_id:032x}"))
        self._late[job_id] = pending
        for kept in (self._jobs, self._late):
            while len(kept) > MAX_JOBS:
                kept.popitem(last=False)

    def _submit_spans(self, pending: _Pending) -> None:
        if pending.verified_ns is None or pending.queued_ns is None:
            return
        ctx = self._trace.set_span_in_context(pending.span)
        verify = self.tracer.start_span("qmk.verify", context=ctx, start_time=pending.start_ns)
        verify.end(end_time=pending.verified_ns)
        admit = self.tracer.start_span("qmk.admit", context=ctx, start_time=pending.verified_ns)
        admit.end(end_time=pending.queued_ns)

    # ------------------------------------------------------------------ the job's life

    def on_event(self, event: KernelEvent) -> None:
        """Follow a job through the kernel's events (a hub callback)."""
        if not self.enabled:
            return
        # the record's own time (the kernel's clock when it wrote it): the same in the
        # kernel's process and in a gateway that reads the records later, in pages
        now = int(event.ts * 1e9) if event.ts > 0 else time.time_ns()
        pending = _PENDING.get()
        if event.event == "cap" and pending is not None and pending.name in _SUBMITS:
            if event.record.get("where") == "submit" and pending.verified_ns is None:
                pending.verified_ns = now
            return
        if event.event == "attest" and event.job_id is not None:
            self._attested(event)
            return
        if event.event == "spans" and event.job_id is not None:
            self._worker_spans_heard(event)
            return
        if not event.is_job or event.job_id is None:
            return
        if event.state == "QUEUED":
            self._queued(event, pending, now)
        elif event.state == "RUNNING":
            self._running(event, now)
        elif event.job is not None and event.job.final:
            if "epochs" in event.record:  # its attestation is on its COMPLETED line
                self._attested(event)
            self._ended(event, now)

    def _job(self, event: KernelEvent, pending: _Pending | None) -> _JobTrace:
        assert event.job_id is not None
        job = self._jobs.get(event.job_id)
        if job is not None:
            return job
        if pending is not None:
            context = self._trace.set_span_in_context(pending.span)
            ctx = pending.span.get_span_context()
        else:  # a job the kernel recovered or restored: a trace of its own
            root = self.tracer.start_span("qmk.job", attributes={"qmk.job_id": event.job_id})
            root.end()
            context = self._trace.set_span_in_context(root)
            ctx = root.get_span_context()
        job = self._jobs[event.job_id] = _JobTrace(context=context, trace_id=f"{ctx.trace_id:032x}")
        if len(self._jobs) > MAX_JOBS:
            _, dropped = self._jobs.popitem(last=False)
            for span in (dropped.queue, dropped.run):
                if span is not None:
                    span.end()
        return job

    def _attrs(self, event: KernelEvent) -> dict[str, Any]:
        return {"qmk.job_id": event.job_id or "", "qmk.tenant": event.tenant or ""}

    def _queued(self, event: KernelEvent, pending: _Pending | None, now: int) -> None:
        late = self._late.pop(event.job_id or "", None) if pending is None else None
        if late is not None:
            pending = late
        if pending is not None and pending.queued_ns is None:
            if pending.verified_ns is None:  # an allowed submit's check is on this line
                pending.verified_ns = now
            pending.queued_ns = now
        if late is not None:
            self._submit_spans(late)
        job = self._job(event, pending)
        if job.run is not None:  # preempted: the attempt ends, the job waits again
            job.run.set_attribute("qmk.preempted", True)
            job.run.end(end_time=now)
            job.run = None
        if job.queue is None:
            attrs = self._attrs(event)
            reason = event.record.get("reason")
            if reason:
                attrs["qmk.reason"] = str(reason)
            job.queue = self.tracer.start_span(
                "qmk.queue", context=job.context, start_time=now, attributes=attrs
            )

    def _running(self, event: KernelEvent, now: int) -> None:
        job = self._job(event, None)
        if job.queue is not None:
            job.queue.end(end_time=now)
            job.queue = None
        attrs = self._attrs(event)
        for key in ("attempt", "epoch"):
            if isinstance(event.record.get(key), int):
                attrs[f"qmk.{key}"] = event.record[key]
        job.run = self.tracer.start_span(
            "qmk.run", context=job.context, start_time=now, attributes=attrs
        )

    def _attested(self, event: KernelEvent) -> None:
        job = self._jobs.get(event.job_id or "")
        if job is None or job.run is None:
            return
        engine = event.record.get("engine")
        if isinstance(engine, str):
            job.run.set_attribute("qmk.engine", engine)
        epochs = event.record.get("epochs")
        for record in epochs if isinstance(epochs, list) else ():
            if isinstance(record, dict):
                job.run.add_event(
                    "epoch",
                    {
                        "qmk.epoch": int(record.get("epoch", 0)),
                        "qmk.nodes": int(record.get("nodes", 0)),
                        "qmk.ops": json.dumps(record.get("ops", {}), sort_keys=True),
                    },
                )

    def _ended(self, event: KernelEvent, now: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        assert event.job_id is not None and event.job is not None
        job = self._job(event, _PENDING.get())
        failed = event.state != "COMPLETED"
        for span in (job.queue, job.run):
            if span is not None:
                if failed:
                    span.set_status(Status(StatusCode.ERROR, str(event.state)))
                span.end(end_time=now)
        job.queue = job.run = None
        attrs = self._attrs(event)
        attrs["qmk.state"] = event.state or ""
        facts = event.job
        if facts.engine is not None:
            attrs["qmk.engine"] = facts.engine
        if facts.injected_logical_errors is not None:
            attrs["qmk.injected_logical_errors"] = facts.injected_logical_errors
        reason = event.record.get("reason")
        if reason:
            attrs["qmk.reason"] = str(reason)[:500]
        result = self.tracer.start_span(
            "qmk.result", context=job.context, start_time=now, attributes=attrs
        )
        if failed:
            result.set_status(Status(StatusCode.ERROR, str(event.state)))
        result.end(end_time=time.time_ns())
        self._jobs.pop(event.job_id, None)

    # ------------------------------------------------------------------ the workers

    def _worker_spans_heard(self, event: KernelEvent) -> None:
        """A ``spans`` record of the kernel's feed (a kernel in another process): the
        spans a job's worker recorded, exported under the job's open run span."""
        assert event.job_id is not None
        traceparent = self.traceparent(event.job_id)
        spans = event.record.get("spans")
        if traceparent is not None and isinstance(spans, list):
            self.worker_spans(event.job_id, traceparent, spans)

    def traceparent(self, job_id: str) -> str | None:
        """The W3C ``traceparent`` of the job's run span (None: not followed, no run).

        The kernel puts it in the worker's spec when the run starts, so the spans the
        worker records are the run's children (:meth:`worker_spans`).
        """
        job = self._jobs.get(job_id) if self.enabled else None
        if job is None or job.run is None:
            return None
        return _traceparent(job.run)

    def worker_spans(
        self, job_id: str, traceparent: str, spans: Sequence[Mapping[str, Any]]
    ) -> None:
        """Export the spans a worker recorded under ``traceparent`` as real spans of
        that trace, with the worker's times: a record whose ``parent_id`` is None (or
        names no record) hangs under the ``traceparent``'s span, the others under the
        span made of their parent's record. A record that is not one is skipped, and a
        failure is logged, never raised (the job's outcome does not depend on it)."""
        if not self.enabled:
            return
        try:
            self._export_worker(job_id, traceparent, spans)
        except Exception:
            _log.exception("the spans of job %s's worker could not be exported", job_id)

    def _export_worker(
        self, job_id: str, traceparent: str, spans: Sequence[Mapping[str, Any]]
    ) -> None:
        from opentelemetry.trace import Status, StatusCode

        parent = self._propagator.extract({"traceparent": traceparent})
        if not self._trace.get_current_span(parent).get_span_context().is_valid:
            return
        records = [_worker_record(r) for r in list(spans)[:MAX_WORKER_SPANS]]
        kept = [r for r in records if r is not None]
        known = {r["span_id"] for r in kept}
        children: dict[str | None, list[dict[str, Any]]] = {}
        for record in kept:
            up = record["parent_id"] if record["parent_id"] in known else None
            children.setdefault(up, []).append(record)
        contexts: dict[str | None, Any] = {None: parent}
        todo: list[str | None] = [None]
        while todo:  # parents before children, each record once (a cycle is left out)
            up = todo.pop()
            for record in children.pop(up, ()):
                attributes = {**record["attributes"], "qmk.job_id": job_id}
                span = self.tracer.start_span(
                    record["name"],
                    context=contexts[up],
                    start_time=record["start_ns"],
                    attributes=attributes,
                )
                if record["error"] is not None:
                    span.set_status(Status(StatusCode.ERROR, record["error"]))
                span.end(end_time=max(record["end_ns"], record["start_ns"]))
                contexts[record["span_id"]] = self._trace.set_span_in_context(span)
                todo.append(record["span_id"])

    def shutdown(self) -> None:
        """End the spans still open and flush the exporters."""
        if self.provider is None:
            return
        for job in self._jobs.values():
            for span in (job.queue, job.run):
                if span is not None:
                    span.end()
        self._jobs.clear()
        self.provider.shutdown()


def _traceparent(span: Any) -> str | None:
    """The W3C ``traceparent`` of ``span`` (None: not a valid one)."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _worker_record(data: Any) -> dict[str, Any] | None:
    """A worker's span record (``qmk.execution.spans.SpanRecord.to_json``) checked, with
    only the attributes OpenTelemetry takes; None when it is not one."""
    if not isinstance(data, Mapping):
        return None
    try:
        attributes = data.get("attributes") or {}
        error = data.get("error")
        parent = data.get("parent_id")
        return {
            "name": str(data["name"]),
            "span_id": str(data["span_id"]),
            "parent_id": None if parent is None else str(parent),
            "start_ns": int(data["start_ns"]),
            "end_ns": int(data["end_ns"]),
            "attributes": {
                str(key): value
                for key, value in dict(attributes).items()
                if isinstance(value, (str, bool, int, float))
            },
            "error": None if error is None else str(error)[:500],
        }
    except (KeyError, TypeError, ValueError):
        return None
