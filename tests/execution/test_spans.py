"""The spans a worker records of its run (qmk.execution.spans), read in-process."""

from __future__ import annotations

from collections import Counter
from typing import Any

from qmk.execution import run, spans
from qmk.execution.spans import SpanRecord, recording
from support.kernel import FENCED

TRACEPARENT = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"


def _by_id(records: list[SpanRecord]) -> dict[str, SpanRecord]:
    return {r.span_id: r for r in records}


def test_with_no_traceparent_the_run_records_nothing_and_span_is_the_shared_no_op():
    assert spans.current() is None
    first, second = spans.span("qmk.shots"), spans.span("qmk.epoch", {"qmk.epoch": 1})
    assert first is second  # nothing made per call while tracing is off
    with recording(None) as recorder:
        assert recorder is None and spans.current() is None
        run(FENCED, shots=50, seed=3)


def test_a_traceparent_that_is_not_one_records_nothing():
    for bad in ("", "00-" + "0" * 32 + "-" + "cd" * 8 + "-01", "01-abc", "00-xyz"):
        with recording(bad) as recorder:
            assert recorder is None and spans.current() is None


def test_every_epoch_of_every_group_gets_one_span_under_its_group_under_the_shots():
    with recording(TRACEPARENT, seed=1) as recorder:
        assert recorder is not None and recorder.trace_id == "ab" * 16
        result = run(FENCED, shots=400, seed=11)
    records = recorder.records
    by_id = _by_id(records)
    names = Counter(r.name for r in records)
    assert names["qmk.engine.choice"] == 1 and names["qmk.shots"] == 1
    (shots,) = [r for r in records if r.name == "qmk.shots"]
    assert shots.parent_id is None  # the run's top here: under the traceparent's span
    assert shots.attributes["qmk.mode"] == "trajectories"
    assert shots.attributes["qmk.shots"] == 400
    assert shots.attributes["qmk.epochs"] == result.telemetry.epochs == 4
    groups = [r for r in records if r.name == "qmk.group"]
    assert groups and all(g.parent_id == shots.span_id for g in groups)
    assert sum(int(g.attributes["qmk.shots"]) for g in groups) == 400
    for group in groups:
        epochs = [r for r in records if r.name == "qmk.epoch" and r.parent_id == group.span_id]
        assert sorted(int(e.attributes["qmk.epoch"]) for e in epochs) == [0, 1, 2, 3]
        for epoch in epochs:
            assert group.start_ns <= epoch.start_ns <= epoch.end_ns <= group.end_ns
    choice = next(r for r in records if r.name == "qmk.engine.choice")
    assert choice.attributes["qmk.engine"] == result.engine
    for record in records:  # every parent is a record of the run, or the traceparent's span
        assert record.parent_id is None or record.parent_id in by_id
        assert record.start_ns <= record.end_ns


def test_recording_spans_leaves_the_counts_as_they_were():
    plain = run(FENCED, shots=300, seed=21)
    with recording(TRACEPARENT):
        traced = run(FENCED, shots=300, seed=21)
    assert traced.counts == plain.counts


def test_spans_past_the_limit_are_counted_not_kept_but_the_top_one_is():
    recorder = spans.Recorder("ab" * 16, "cd" * 8, limit=3, seed=0)
    with recorder.span("top") as top:
        for k in range(10):
            recorder.add("qmk.epoch", k, k + 1, {"qmk.epoch": k}, parent_id=top.span_id)
    kept = recorder.finished()
    assert recorder.dropped == 7
    assert [r["name"] for r in kept] == ["qmk.epoch"] * 3 + ["top"]


def test_a_span_that_raises_is_kept_with_its_error():
    recorder = spans.Recorder("ab" * 16, "cd" * 8, seed=0)
    try:
        with recorder.span("qmk.verify"):
            raise ValueError("bad graph")
    except ValueError:
        pass
    (record,) = recorder.records
    assert record.error == "ValueError: bad graph"


def test_a_record_round_trips_through_json():
    record = SpanRecord(
        name="qmk.epoch",
        span_id="12" * 8,
        parent_id=None,
        start_ns=5,
        end_ns=9,
        attributes={"qmk.epoch": 2, "qmk.tail": True},
    )
    data: dict[str, Any] = record.to_json()
    assert SpanRecord.from_json(data) == record
