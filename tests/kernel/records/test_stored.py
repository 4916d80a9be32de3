"""A finished job's result as the kernel keeps it: what the kernel reads of its head at
the job's end (``StoredResult.facts``) read from its text, the head itself decoded only
where something asks for it, so the finished jobs the kernel keeps hold no decoded head
for the cyclic collector to walk (issue 50, item 3)."""

from __future__ import annotations

import gc
import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmk.kernel.records.encoded import encode_result
from qmk.kernel.records.stored import (
    ResultFacts,
    StoredResult,
    TelemetryFacts,
    facts_of,
    head_of,
    with_telemetry,
)
from qmk.kernel.service import Kernel
from support.kernel import BELL, login, run_kernel

#: Results of every layout the facts are read from: counts or none (or not a mapping),
#: a telemetry object, none, null, or not an object, the facts' names nested deeper (not
#: read), text that is not ASCII, numbers JSON spells otherwise than Python.
RESULTS: list[dict[str, Any]] = [
    {
        "counts": {"00": 51, "11": 49},
        "shots": 100,
        "engine": "stabilizer",
        "events": ["m0", "m1"],
        "telemetry": {
            "engine": "stabilizer",
            "logical_cycles": 4.0,
            "logical_time_ns": 14400.0,
            "injected_logical_errors": 0,
            "machine": {"logical_cycles": 99, "wait_cycles": {"queue": 28}},
            "profiles": ["logical:surface_code(d=9)"],
            "cache_hit": False,
        },
    },
    {"counts": {"caf\u00e9": 1}, "engine": "\u00e9ngine", "telemetry": {"mode": "\u00e9"}},
    {"counts": {}, "telemetry": {"logical_cycles": 1e16, "injected_logical_errors": 2**70}},
    {"counts": {"0": 1}},
    {"counts": {"0": 1}, "telemetry": None, "engine": None},
    {"counts": {"0": 1}, "telemetry": [1, {"logical_cycles": 3}], "engine": ["x"]},
    {"counts": {"0": 1}, "telemetry": {"cache_hit": None, "logical_time_ns": 1.5e-7}},
    {"shots": 3, "telemetry": {"logical_cycles": 7}},  # no counts
    {"counts": [1, 2], "telemetry": {"logical_cycles": 8}},  # counts, not a mapping
]


def _without_head(stored: StoredResult) -> StoredResult:
    """``stored`` as a worker's answer gives it to the kernel: its index without the head."""
    return StoredResult(stored.data, {k: v for k, v in stored.meta.items() if k != "head"})


@pytest.mark.parametrize("value", RESULTS)
def test_a_results_facts_read_from_its_text_are_those_of_its_head(value: dict[str, Any]) -> None:
    stored = encode_result(value)
    head = head_of(stored.data, stored.meta["counts_at"])  # as the text reads back
    answered = _without_head(stored)
    assert answered.facts == facts_of(head) == stored.facts == facts_of(stored.head)
    # read without decoding the head, but where its telemetry is no object (as it reads)
    assert (answered._head is None) is isinstance(value.get("telemetry"), (dict, type(None)))
    assert answered.head == head == stored.head  # which reads as before where asked for


def test_the_facts_are_the_heads_members_by_name_and_unset_where_it_has_none() -> None:
    stored = _without_head(encode_result(RESULTS[0]))
    assert stored.facts == ResultFacts(
        engine="stabilizer",
        telemetry=TelemetryFacts(
            logical_cycles=4.0,
            logical_time_ns=14400.0,
            injected_logical_errors=0,
            mode=None,
            cache_hit=False,
        ),
    )
    bare = _without_head(encode_result({"counts": {"0": 1}, "telemetry": {}}))
    assert bare.facts.telemetry == TelemetryFacts() and bare.facts.telemetry.cache_hit is (
        msgspec.UNSET
    )
    assert _without_head(encode_result(RESULTS[5])).facts.telemetry is None  # not an object


def test_a_result_marked_a_cache_hit_is_the_same_text_and_keeps_its_facts_not_its_head() -> None:
    stored = _without_head(encode_result(RESULTS[0]))
    marked = with_telemetry(stored, cache_hit=True)
    telemetry = {**RESULTS[0]["telemetry"], "cache_hit": True}
    text = json.dumps({**RESULTS[0], "telemetry": telemetry}, separators=(",", ":"))
    assert marked.data == text.encode()
    assert "head" not in marked.meta and marked._head is None
    assert marked.facts == facts_of(json.loads(text))
    assert marked.facts.telemetry is not None and marked.facts.telemetry.cache_hit is True
    assert dict(marked) == json.loads(text)


def _tracked_under(root: object) -> list[str]:
    """The names of the types of the objects the collector tracks that ``root`` holds
    (itself among them), classes left out."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen[id(item)] = item
        stack.extend(
            r for r in gc.get_referents(item) if gc.is_tracked(r) and not isinstance(r, type)
        )
    return sorted(type(item).__name__ for item in seen.values())


def test_a_finished_jobs_result_holds_no_decoded_head_and_its_row_reads_the_facts(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=5)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        result = kernel.supervisor.job(job.job_id, "alice").result
        assert isinstance(result, StoredResult)
        # its index (its counts' offsets and marks) and the index's text with its digest
        # (a tuple of two strings: untracked at the collector's first pass); no dicts and
        # lists of its head
        assert _tracked_under(result) == ["StoredResult", "dict", "list", "list", "tuple"]
        head = json.loads(result.data)
        telemetry = head["telemetry"]
        assert telemetry["cache_hit"] is False and telemetry["logical_cycles"] > 0
        data = tmp_path / "data"
        with sqlite3.connect(f"file:{data / 'kernel.db'}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT logical_cycles, injected_errors FROM jobs WHERE job_id=?",
                (job.job_id,),
            ).fetchone()
        assert row == (telemetry["logical_cycles"], telemetry["injected_logical_errors"])
        lines = [json.loads(line) for line in (data / "audit.log").read_text().splitlines()]
        (completed,) = [
            line
            for line in lines
            if line.get("job_id") == job.job_id and line.get("state") == "COMPLETED"
        ]
        assert completed["engine"] == head["engine"] and completed["cache_hit"] is False

    run_kernel(tmp_path, body, workers=1)
