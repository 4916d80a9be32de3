"""Spans a worker records of its run, carried back to the kernel with the result.

A kernel with tracing on (``qmk serve --http ... --trace EXPORTER``) puts the W3C
``traceparent`` of the job's ``qmk.run`` span into the worker's spec. Worker processes
are sandboxed (no network: :mod:`qmk.kernel.pools.sandbox`), so they export nothing
themselves. :func:`recording` makes a :class:`Recorder` current for the run. The
executor and its runner open spans on it (:func:`span`; the verification, the engine
choice, the shots, each group of shots and each of its epochs). The finished spans
go back to the kernel as plain JSON (:meth:`SpanRecord.to_json`) beside the result.
The kernel's tracer (:mod:`qmk.http.tracing`) exports them as child spans of the run,
under the job's trace, with their own start and end times.

With no ``traceparent`` nothing is recorded: :func:`span` hands out one shared
do-nothing context, and the runner asks :func:`current` once per run.

>>> with recording("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01") as recorder:
...     with span("qmk.shots", {"qmk.shots": 10}) as outer:
...         with span("qmk.epoch"):
...             pass
...         outer.set("qmk.mode", "stim-batch")
>>> [(r.name, r.parent_id == recorder.records[1].span_id) for r in recorder.records]
[('qmk.epoch', True), ('qmk.shots', False)]
>>> recorder.records[1].parent_id is None, recorder.records[1].attributes["qmk.mode"]
(True, 'stim-batch')
>>> with span("nothing") as s:  # tracing off: no recorder, nothing kept
...     s.set("qmk.shots", 1)
>>> current() is None
True
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A worker keeps at most this many spans per run; past it they are counted, not kept.
MAX_SPANS = 1_000
#: Groups of shots (error patterns) of a trajectories run that get spans of their own;
#: later groups are counted on the run's span (``qmk.groups_untraced``).
MAX_GROUPS = 16

#: A span attribute's value (what OpenTelemetry takes).
Scalar = str | bool | int | float

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def parse_traceparent(text: str) -> tuple[str, str] | None:
    """``(trace id, parent span id)`` of a W3C ``traceparent`` (version 00), or None
    when it is not one.

    >>> parse_traceparent("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")[1]
    'cdcdcdcdcdcdcdcd'
    >>> parse_traceparent("01-xyz") is None
    True
    """
    found = _TRACEPARENT.match(text.strip().lower()) if isinstance(text, str) else None
    if found is None or found.group(1) == _ZERO_TRACE or found.group(2) == _ZERO_SPAN:
        return None
    return found.group(1), found.group(2)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanRecord:
    """One finished span of a worker.

    Attributes:
        name: the span's name (``qmk.shots``, ``qmk.epoch``...).
        span_id: its id in the worker (16 hex digits).
        parent_id: its parent's ``span_id``; None: the span the ``traceparent`` named
            (the kernel's ``qmk.run`` of the attempt).
        start_ns, end_ns: wall-clock times (nanoseconds since the epoch).
        attributes: its attributes.
        error: what went wrong (the span failed), else None.
    """

    name: str
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Scalar] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON (what the worker sends back)."""
        return {
            "name": self.name,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "attributes": dict(self.attributes),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpanRecord:
        """The record of :meth:`to_json`'s JSON.

        Raises:
            ValueError: not a span record.
        """
        try:
            attributes = data.get("attributes") or {}
            record = cls(
                name=str(data["name"]),
                span_id=str(data["span_id"]),
                parent_id=None if data.get("parent_id") is None else str(data["parent_id"]),
                start_ns=int(data["start_ns"]),
                end_ns=int(data["end_ns"]),
                attributes={
                    str(k): v
                    for k, v in dict(attributes).items()
                    if isinstance(v, (str, bool, int, float))
                },
                error=None if data.get("error") is None else str(data["error"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a span record: {exc}") from None
        return record


class OpenSpan:
    """A span being recorded: set attributes on it while it is open."""

    __slots__ = ("attributes", "error", "name", "parent_id", "span_id", "start_ns")

    def __init__(self, name: str, span_id: str, parent_id: str | None, start_ns: int) -> None:
        self.name = name
        self.span_id = span_id
        self.parent_id = parent_id
        self.start_ns = start_ns
        self.attributes: dict[str, Scalar] = {}
        self.error: str | None = None

    def set(self, key: str, value: Scalar) -> None:
        """Set one attribute."""
        self.attributes[key] = value


class _Nothing:
    """The span of a run that records none: every call does nothing."""

    __slots__ = ()

    def set(self, key: str, value: Scalar) -> None:
        pass

    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING = _Nothing()


class Recorder:
    """The spans of one run in a worker.

    Args:
        trace_id: the job's trace (32 hex digits).
        parent_id: the span the worker's spans hang under (the kernel's ``qmk.run``).
        limit: spans kept at most (:data:`MAX_SPANS`); more are counted in :attr:`dropped`.
        seed: seeds the span ids (None: from the OS).
    """

    def __init__(
        self, trace_id: str, parent_id: str, *, limit: int = MAX_SPANS, seed: int | None = None
    ) -> None:
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.limit = limit
        self.records: list[SpanRecord] = []
        self.dropped = 0
        #: Groups of shots run without spans of their own (past :data:`MAX_GROUPS`).
        self.untraced_groups = 0
        self._open: list[OpenSpan] = []
        self._ids = random.Random(seed)

    def _new_id(self) -> str:
        return f"{self._ids.getrandbits(64) | 1:016x}"  # never all zeros

    @property
    def current_id(self) -> str | None:
        """The innermost open span's id (None: none open)."""
        return self._open[-1].span_id if self._open else None

    def begin(self, name: str, attributes: Mapping[str, Scalar] | None = None) -> OpenSpan:
        """Open a span under the innermost open one (end it with :meth:`end`)."""
        opened = OpenSpan(name, self._new_id(), self.current_id, time.time_ns())
        if attributes:
            opened.attributes.update(attributes)
        self._open.append(opened)
        return opened

    def end(self, opened: OpenSpan, error: str | None = None) -> None:
        """End ``opened`` (and any span still open inside it)."""
        while self._open:
            top = self._open.pop()
            self._keep(
                SpanRecord(
                    name=top.name,
                    span_id=top.span_id,
                    parent_id=top.parent_id,
                    start_ns=top.start_ns,
                    end_ns=time.time_ns(),
                    attributes=dict(top.attributes),
                    error=error if error is not None else top.error,
                )
            )
            if top is opened:
                return

    def add(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, Scalar] | None = None,
        *,
        parent_id: str | None = None,
    ) -> None:
        """Keep a span measured elsewhere (an epoch's), under ``parent_id``."""
        self._keep(
            SpanRecord(
                name=name,
                span_id=self._new_id(),
                parent_id=parent_id,
                start_ns=start_ns,
                end_ns=max(end_ns, start_ns),
                attributes=dict(attributes or {}),
            )
        )

    def _keep(self, record: SpanRecord) -> None:
        if len(self.records) < self.limit or record.parent_id is None:  # tops: always
            self.records.append(record)
        else:
            self.dropped += 1

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, Scalar] | None = None) -> Iterator[OpenSpan]:
        """A span around the block (an exception marks it failed and goes on)."""
        opened = self.begin(name, attributes)
        try:
            yield opened
        except BaseException as exc:
            self.end(opened, error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        self.end(opened)

    def finished(self) -> list[dict[str, Any]]:
        """Every kept span as JSON (a span still open is ended now)."""
        if self._open:
            self.end(self._open[0])
        return [record.to_json() for record in self.records]


_CURRENT: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "qmk_worker_spans", default=None
)


def current() -> Recorder | None:
    """The recorder of the run in this context (None: tracing is off)."""
    return _CURRENT.get()


@contextlib.contextmanager
def recording(traceparent: str | None, *, seed: int | None = None) -> Iterator[Recorder | None]:
    """Make a recorder current for the block when ``traceparent`` is one (else None)."""
    parsed = None if traceparent is None else parse_traceparent(traceparent)
    if parsed is None:
        yield None
        return
    recorder = Recorder(*parsed, seed=seed)
    token = _CURRENT.set(recorder)
    try:
        yield recorder
    finally:
        _CURRENT.reset(token)


def span(
    name: str, attributes: Mapping[str, Scalar] | None = None
) -> contextlib.AbstractContextManager[OpenSpan | _Nothing]:
    """A span of the current recorder around the block; with none, a shared no-op."""
    recorder = _CURRENT.get()
    if recorder is None:
        return _NOTHING
    return recorder.span(name, attributes)


class EpochClock:
    """The epochs of one group of shots of a trajectories run, as spans.

    A group runs as branches (shots split at measurements), each from where it split to
    its end, passing the group's fences. An epoch's span goes from the first moment any
    branch was in it to the last (``qmk.passes``: how many branch passages it had).
    Epoch 0 is before the first fence, epoch k after fence k (as ``Control.at_fence``).

    Args:
        recorder: where the spans go.
        fences: the positions of the group's fence micro-ops.
        parent_id: the group's span.
    """

    __slots__ = (
        "_first",
        "_last",
        "_passes",
        "current",
        "fences",
        "parent_id",
        "recorder",
    )

    def __init__(self, recorder: Recorder, fences: Sequence[int], parent_id: str | None) -> None:
        self.recorder = recorder
        self.fences = list(fences)
        self.parent_id = parent_id
        self.current = 0
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._passes: dict[int, int] = {}

    def _mark(self, now: int) -> None:
        self._first.setdefault(self.current, now)
        self._last[self.current] = now

    def enter(self, pos: int) -> None:
        """A branch starts at micro-op ``pos``."""
        self.current = bisect.bisect_left(self.fences, pos)
        self._passes[self.current] = self._passes.get(self.current, 0) + 1
        self._mark(time.time_ns())

    def fence(self, epoch: int) -> None:
        """The running branch passes the fence that opens ``epoch``."""
        now = time.time_ns()
        self._mark(now)
        self.current = epoch
        self._passes[epoch] = self._passes.get(epoch, 0) + 1
        self._mark(now)

    def leave(self) -> None:
        """The running branch ended: it sampled its terminal measurements, which come
        after the group's last fence (no fence lies in the sampled tail:
        :func:`~qmk.execution.trajectories.tail_start`), in its last epoch."""
        self._mark(time.time_ns())

    def close(self) -> None:
        """Keep one span per epoch seen."""
        for epoch in sorted(self._first):
            self.recorder.add(
                "qmk.epoch",
                self._first[epoch],
                self._last[epoch],
                {"qmk.epoch": epoch, "qmk.passes": self._passes.get(epoch, 0)},
                parent_id=self.parent_id,
            )


__all__ = [
    "MAX_GROUPS",
    "MAX_SPANS",
    "EpochClock",
    "OpenSpan",
    "Recorder",
    "SpanRecord",
    "current",
    "parse_traceparent",
    "recording",
    "span",
]
