"""A job's watch (qmk.abi.events.JobWatch) resumed from its cursor, on a real kernel
in-process (real workers, SQLite, the audit log): what every wire's stream gives after a
reconnect (SSE's ``Last-Event-ID``, ``q_watch``'s and ``WatchJob``'s ``after`` and
``after_sub``), a device job's stream parts included.

Jobs are held in their worker by a :class:`~support.kernel.WorkerGate`, so what a watch
hears never depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from qmk.abi.events import RECENT, EventHub, JobWatch, syscalls
from qmk.abi.probe import Cursor
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from support.kernel import BELL, KEYS, WorkerGate, run_kernel
from support.wire import GUARD_S

Told = tuple[str, Any, Cursor | None]


async def _login(kernel: Kernel) -> str:
    session = await kernel.q_negotiate_caps(
        tenant="alice", key=KEYS["alice"], requested=["CAP_ALLOC"]
    )
    return str(session.session_id)


async def _all(watch: JobWatch) -> list[Told]:
    return [told async for told in watch]


def _lines_of(hub: EventHub, job_id: str) -> list[tuple[Cursor, str | None]]:
    return [(e.cursor, e.state) for e in hub.recent if e.job_id == job_id]


def test_a_watch_resumed_past_a_cursor_gives_the_lines_after_it_then_live_then_the_result(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> Any:
        sid = await _login(kernel)
        hub = EventHub(KernelObserver(kernel), asyncio.get_running_loop())
        call = syscalls(kernel)
        job_id = (await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=3)).job_id
        async with asyncio.timeout(GUARD_S):  # QUEUED, RUNNING (held in its worker)
            while len(_lines_of(hub, job_id)) < 2:
                await asyncio.sleep(0.01)
        (queued, _), (running, _) = _lines_of(hub, job_id)[:2]
        watch = await JobWatch.open(call, hub, sid, job_id, after=queued)
        told: list[Told] = []
        async with asyncio.timeout(GUARD_S):
            async for item in watch:
                told.append(item)
                if item[0] == "state" and item[1]["state"] == "RUNNING":
                    gate.release()  # replayed: now the job may end, heard live
        fresh = await _all(await JobWatch.open(call, hub, sid, job_id))
        return running, told, fresh, hub.stream_count("alice")

    with WorkerGate(tmp_path) as gate:
        running, told, fresh, streams_left = run_kernel(tmp_path, body, workers=1, gate=gate)
    states = [(data["state"], seq) for name, data, seq in told if name == "state"]
    assert states[0] == ("RUNNING", running)  # the line past the cursor, not the state now
    assert [state for state, _ in states] == ["RUNNING", "COMPLETED"]
    seqs = [seq for _, _, seq in told if seq is not None]
    assert seqs == sorted(seqs) and seqs[0] == running
    assert told[-1][0] == "result" and told[-1][1].state == "COMPLETED"
    # the control: a watch with no cursor starts with the state now (no seq), then the result
    assert [(name, seq) for name, _, seq in fresh] == [("state", None), ("result", None)]
    assert streams_left == 0


def test_a_watch_resumed_past_its_jobs_last_line_gives_only_the_result(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> Any:
        sid = await _login(kernel)
        hub = EventHub(KernelObserver(kernel), asyncio.get_running_loop())
        job_id = (await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=3)).job_id
        await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=int(GUARD_S * 1000))
        last = _lines_of(hub, job_id)[-1][0]
        watch = await JobWatch.open(syscalls(kernel), hub, sid, job_id, after=last)
        return await _all(watch)

    told = run_kernel(tmp_path, body, workers=1)
    assert [(name, seq) for name, _, seq in told] == [("result", None)]
    assert told[0][1].state == "COMPLETED"


def test_a_cursor_older_than_the_recent_lines_kept_starts_with_lagged_then_the_state_now(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> Any:
        sid = await _login(kernel)
        hub = EventHub(KernelObserver(kernel), asyncio.get_running_loop())
        job_id = (await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=3)).job_id
        await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=int(GUARD_S * 1000))
        cursor = _lines_of(hub, job_id)[0][0]
        for _ in range(RECENT):  # a line each: the job's lines leave the recent ones
            await _login(kernel)
        gone = not _lines_of(hub, job_id)
        watch = await JobWatch.open(syscalls(kernel), hub, sid, job_id, after=cursor)
        return gone, await _all(watch)

    gone, told = run_kernel(tmp_path, body, workers=1)
    assert gone
    assert [(name, seq) for name, _, seq in told] == [
        ("lagged", None),
        ("state", None),
        ("result", None),
    ]
    assert told[0][1] == {"dropped": None} and told[1][1]["state"] == "COMPLETED"


def test_a_device_jobs_watch_resumed_at_each_of_its_cursors_gives_exactly_the_events_after_it(
    tmp_path: Path,
) -> None:
    """Stream parts share the seq of the line before them: the cursor's sub tells them
    apart, so a watch resumed after any part (or line) loses and repeats nothing. The
    watch's cursors are the feed's (``q_events``' seq and sub: one numbering)."""
    from qmk.kernel.config import config_from_dict
    from support.neutral_atom import device_submit, gate, job

    shots = 600  # 3 parts of measurements (256 records a part), and its pulses
    steps = (gate("H", 0), gate("CX", 0, 1), gate("CX", 1, 2))
    ghz = job(3, *steps, profile="benchmark_chain", shots=shots, seed=5)
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"dave": {"key": "dave-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"]}},
        }
    )

    async def body(kernel: Kernel) -> Any:
        reply = await kernel.q_negotiate_caps(
            tenant="dave", key="dave-key", requested=["CAP_ALLOC", "CAP_DEVICE_NA"]
        )
        sid = reply.session_id
        now = await kernel.q_events(session_id=sid)  # the desk listens from here on
        hub = EventHub(KernelObserver(kernel), asyncio.get_running_loop())
        start = Cursor(now.cursor, now.cursor_sub)
        policy = {"stream": {"measurements": True, "pulses": True}}
        accepted = await device_submit(kernel.q_submit, session_id=sid, job=ghz, policy=policy)
        job_id = accepted.job_id
        await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=int(GUARD_S * 1000))
        call = syscalls(kernel)
        whole = await _all(await JobWatch.open(call, hub, sid, job_id, after=start))
        resumed = {}
        for cursor in dict.fromkeys(c for _, _, c in whole if c is not None):
            watch = await JobWatch.open(call, hub, sid, job_id, after=cursor)
            resumed[cursor] = await _all(watch)
        feed = await kernel.q_events(session_id=sid, after=start.seq, after_sub=start.sub)
        return whole, resumed, feed.events, hub.stream_count("dave")

    whole, resumed, feed, streams_left = run_kernel(tmp_path, body, workers=1, config=config)
    parts = [(data, cursor) for name, data, cursor in whole if name == "stream"]
    assert len(parts) >= 4 and all(cursor.sub >= 1 for _, cursor in parts)
    shots_seen = [
        r["shot"]
        for data, _ in parts
        if data["record"]["artifact"] == "measurements"
        for r in data["record"]["records"]
    ]
    assert shots_seen == list(range(shots))
    cursors = [c for _, _, c in whole if c is not None]
    assert cursors == sorted(cursors) and whole[-1][0] == "result"
    for cursor, told in resumed.items():
        last = max(i for i, (_, _, c) in enumerate(whole) if c == cursor)
        assert told == whole[last + 1 :], cursor
    # one numbering: the watch's cursors are the feed's, the job's own records
    job_id = whole[-1][1].job_id
    job_records = [Cursor(e["seq"], e["sub"]) for e in feed if e["job_id"] == job_id]
    assert sorted(set(cursors)) == job_records
    assert streams_left == 0
