"""The observing syscalls: a tenant's own event feed with a cursor (``q_events``), its
own audit records (``q_audit``), and the kernel's load for a session holding
``CAP_OBSERVE`` (``q_kernel_load``), against a real kernel and its audit log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qmk.abi.events import EventHub, Stream
from qmk.abi.jsonrpc import encode
from qmk.abi.probe import KernelEvent
from qmk.abi.probing import snapshot_from_json
from qmk.abi.replies import KernelLoad
from qmk.abi.tally import JobTally
from qmk.errors import CapabilityError, InvalidArgument, NotFoundError
from qmk.kernel.config import config_from_dict
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from qmk.kernel.storage import commit as commit_module
from support.kernel import BELL, KEYS, WorkerGate, login, run_kernel
from support.wire import until

SEED = 5


def _config(**http: object) -> object:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "http": http,
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"]},
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC", "CAP_OBSERVE"]},
            },
        }
    )


def test_the_feed_gives_a_tenant_its_own_records_after_its_cursor(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        bob = await login(kernel, "bob", ["CAP_ALLOC"])
        now = await kernel.q_events(session_id=alice)
        assert now.events == [] and now.dropped == 0 and now.tenant == "alice"
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=SEED)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        other = await kernel.q_submit(session_id=bob, graph=BELL, shots=10, seed=SEED)
        await kernel.q_wait(session_id=bob, job_id=other.job_id, timeout_ms=60_000)
        page = await kernel.q_events(session_id=alice, after=now.cursor)
        assert {e["tenant"] for e in page.events} == {"alice"}
        states = [e["state"] for e in page.events if e["job_id"] == job.job_id]
        assert states[0] == "QUEUED" and states[-1] == "COMPLETED"
        assert other.job_id not in {e["job_id"] for e in page.events}
        seqs = [e["seq"] for e in page.events]
        assert seqs == sorted(seqs) and seqs[0] > now.cursor and page.cursor == seqs[-1]
        # the same records as the audit log holds, line for line
        lines = [
            json.loads(x) for x in (tmp_path / "data" / "audit.log").read_text().split("\n") if x
        ]
        by_seq = {line["seq"]: line for line in lines}
        for event in page.events:
            assert by_seq[event["seq"]]["event"] == event["event"]
        limited = await kernel.q_events(session_id=alice, after=now.cursor, limit=2)
        assert limited.events == page.events[:2] and limited.cursor == seqs[1]
        again = await kernel.q_events(session_id=alice, after=page.cursor)
        assert again.events == [] and again.cursor >= page.cursor

    run_kernel(tmp_path, body, workers=1, config=_config())


def test_a_waiting_feed_answers_at_the_tenants_next_record(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        now = await kernel.q_events(session_id=alice)
        waiting = asyncio.ensure_future(
            kernel.q_events(session_id=alice, after=now.cursor, wait_ms=60_000)
        )
        await asyncio.sleep(0)
        assert not waiting.done()
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=SEED)
        page = await asyncio.wait_for(waiting, 30)
        assert page.events and page.events[0]["job_id"] == job.job_id
        quiet = await kernel.q_events(session_id=alice, after=10**9, wait_ms=1)
        assert quiet.events == [] and quiet.cursor == 10**9

    run_kernel(tmp_path, body, workers=1, config=_config())


def test_audit_reads_the_tenants_records_and_never_another_tenants_job(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        bob = await login(kernel, "bob", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=SEED)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        entries = (await kernel.q_audit(session_id=alice, job_id=job.job_id)).entries
        events = [(e["event"], e.get("state")) for e in entries]
        assert ("job", "QUEUED") in events and events[-1] == ("job", "COMPLETED")
        assert all(e["tenant"] == "alice" for e in entries)
        assert len((await kernel.q_audit(session_id=alice, limit=1)).entries) == 1
        with pytest.raises(NotFoundError):
            await kernel.q_audit(session_id=bob, job_id=job.job_id)
        assert (await kernel.q_audit(session_id=bob, limit=1000)).entries == [
            e
            for e in (await kernel.q_audit(session_id=bob, limit=1000)).entries
            if e["tenant"] == "bob"
        ]
        with pytest.raises(InvalidArgument):
            await kernel.q_audit(session_id=alice, limit=1001)

    run_kernel(tmp_path, body, workers=1, config=_config())


def test_the_load_needs_cap_observe_and_counts_the_jobs(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        plain = await login(kernel, "bob", ["CAP_ALLOC"])
        observer = await login(kernel, "bob", ["CAP_OBSERVE"])
        for sid in (alice, plain):
            with pytest.raises(CapabilityError) as refused:
                await kernel.q_kernel_load(session_id=sid)
            assert refused.value.details["missing"] == ["CAP_OBSERVE"]
        before = await kernel.q_kernel_load(session_id=observer)
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=SEED)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        load = await kernel.q_kernel_load(session_id=observer)
        wire = json.loads(encode(load))
        assert set(wire) == set(KernelLoad.__struct_fields__)
        assert KernelLoad.from_json(wire).to_json() == wire
        assert load.tenants == "names"
        snap = snapshot_from_json(load.snapshot)
        assert snap.audit_seq > snapshot_from_json(before.snapshot).audit_seq
        assert snap.workers == 1 and "alice" in snap.result_storage_bytes
        tally = JobTally.from_json(load.tally)
        assert tally.counters["finished"][("COMPLETED", "alice")] == 1
        assert sum(tally.histograms["run_seconds"]["COMPLETED"].counts) == 1

    run_kernel(tmp_path, body, workers=1, config=_config())


def test_hashed_tenants_hide_the_names_in_the_load(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        observer = await login(kernel, "bob", ["CAP_OBSERVE"])
        load = await kernel.q_kernel_load(session_id=observer)
        assert load.tenants == "hashed"
        tenants = set(load.snapshot["result_storage_bytes"])
        assert len(tenants) == 2 and not tenants & {"alice", "bob"}
        assert all(t.startswith("t-") for t in tenants)

    run_kernel(tmp_path, body, workers=1, config=_config(metrics_tenants="hashed"))


def test_a_device_jobs_stream_parts_are_in_the_feed_and_a_cursor_resumes_after_each(
    tmp_path: Path,
) -> None:
    from support.neutral_atom import device_submit, gate, job

    shots = 600  # 3 parts of measurements (PART_RECORDS = 256), and its pulses
    steps = (gate("H", 0), gate("CX", 0, 1), gate("CX", 1, 2))
    ghz = job(3, *steps, profile="benchmark_chain", shots=shots, seed=SEED)
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"dave": {"key": "dave-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"]}},
        }
    )

    async def body(kernel: Kernel) -> tuple[list[dict], list[dict], object]:
        reply = await kernel.q_negotiate_caps(
            tenant="dave", key="dave-key", requested=["CAP_ALLOC", "CAP_DEVICE_NA"]
        )
        sid = reply.session_id
        now = await kernel.q_events(session_id=sid)
        policy = {"stream": {"measurements": True, "pulses": True}}
        accepted = await device_submit(kernel.q_submit, session_id=sid, job=ghz, policy=policy)
        await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=120_000)
        whole = await kernel.q_events(session_id=sid, after=now.cursor)
        walked, cursor = [], (now.cursor, now.cursor_sub)
        while True:  # one record a call: each resumes after the one before
            page = await kernel.q_events(
                session_id=sid, after=cursor[0], after_sub=cursor[1], limit=1
            )
            if not page.events:
                break
            walked += page.events
            cursor = (page.cursor, page.cursor_sub)
            assert cursor == (page.events[0]["seq"], page.events[0]["sub"])
        with pytest.raises(InvalidArgument):
            await kernel.q_events(session_id=sid, after=now.cursor, after_sub=-1)
        return whole.events, walked, accepted.job_id

    whole, walked, job_id = run_kernel(tmp_path, body, workers=1, config=config)
    assert walked == whole
    order = [(e["seq"], e["sub"]) for e in whole]
    assert order == sorted(order) and len(set(order)) == len(order)
    parts = [e for e in whole if e["event"] == "stream"]
    assert parts and all(e["sub"] >= 1 and e["job_id"] == job_id for e in parts)
    assert all(e["sub"] == 0 for e in whole if e["event"] != "stream")
    shots_seen = [
        r["shot"]
        for e in parts
        if e["record"]["artifact"] == "measurements"
        for r in e["record"]["records"]
    ]
    assert shots_seen == list(range(shots))
    assert any(e["record"]["artifact"] == "pulses" for e in parts)
    # the parts come before the job's final state, after the line before them
    final = next(i for i, e in enumerate(whole) if e.get("state") == "COMPLETED")
    assert all(whole.index(p) < final for p in parts)


def test_a_submit_with_a_traceparent_gets_its_workers_spans_in_the_feed_before_its_end(
    tmp_path: Path,
) -> None:
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"

    async def body(kernel: Kernel) -> tuple[list[dict], list[dict], str]:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        now = await kernel.q_events(session_id=alice)
        plain = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=SEED)
        await kernel.q_wait(session_id=alice, job_id=plain.job_id, timeout_ms=60_000)
        traced = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=10, seed=SEED + 1, traceparent=parent
        )
        await kernel.q_wait(session_id=alice, job_id=traced.job_id, timeout_ms=60_000)
        with pytest.raises(InvalidArgument) as refused:
            await kernel.q_submit(session_id=alice, graph=BELL, traceparent="00-xyz")
        assert refused.value.details["key"] == "traceparent"
        page = await kernel.q_events(session_id=alice, after=now.cursor)
        return page.events, [plain.job_id], traced.job_id

    events, untraced, job_id = run_kernel(tmp_path, body, workers=1, config=_config())
    spans = [e for e in events if e["event"] == "spans"]
    assert [e["job_id"] for e in spans] == [job_id]  # the plain submit's worker records none
    (record,) = spans
    assert record["sub"] >= 1 and record["record"]["traceparent"] == parent
    names = {s["name"] for s in record["record"]["spans"]}
    assert {"qmk.worker", "qmk.shots"} <= names
    final = next(
        i for i, e in enumerate(events) if e["job_id"] == job_id and e["state"] == "COMPLETED"
    )
    assert events.index(record) < final
    assert untraced[0] not in {e["job_id"] for e in spans}


def _lines_on_disk(data: Path) -> dict[int, dict[str, object]]:
    text = (data / "audit.log").read_text()
    return {line["seq"]: line for line in map(json.loads, filter(None, text.split("\n")))}


def test_a_record_reaches_the_feed_and_the_streams_only_once_its_line_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's start is a lazy write (no request waits for it): held uncommitted here
    (no lazy commit within the test), its record is in no feed page nor stream until a
    commit keeps its line. So no cursor names a line a crash of the kernel still takes
    back, whose seq the next kernel's line would take (a client resuming there would
    skip it)."""
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel) -> None:
        data = tmp_path / "data"
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        hub = EventHub(KernelObserver(kernel), asyncio.get_running_loop())
        stream = hub.open("alice")
        start = await kernel.q_events(session_id=alice)
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=SEED)
        await until(lambda: job.job_id in kernel.supervisor.running)  # held at the gate
        assert kernel.audit.pending  # its RUNNING line: queued, not written
        page = await kernel.q_events(session_id=alice, after=start.cursor)
        told = [event async for event in _drain(stream)]
        on_disk = _lines_on_disk(data)
        assert [e["state"] for e in page.events] == ["QUEUED"]
        assert [e.state for e in told] == ["QUEUED"]
        for seq in [e["seq"] for e in page.events] + [e.seq for e in told]:
            assert seq in on_disk  # a cursor of a kept line
        await login(kernel, "bob", ["CAP_ALLOC"])  # an urgent commit keeps the line
        page = await kernel.q_events(session_id=alice, after=page.cursor)
        assert [e["state"] for e in page.events] == ["RUNNING"]
        assert [e.state for e in [event async for event in _drain(stream)]] == ["RUNNING"]
        assert _lines_on_disk(data)[page.cursor]["state"] == "RUNNING"
        gate.open()
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        hub.close()

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, config=_config(), gate=gate)


async def _drain(stream: Stream) -> AsyncIterator[KernelEvent]:
    """The events a stream holds now."""
    while stream.pending():
        event = await stream.get(60.0)  # (one is there)
        assert event is not None
        yield event
