"""A device job's streams and artifacts through a real in-process kernel: stream events
before the final state, the stored artifacts read in pages, the tenant's quota, retention."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from qmk.devices.neutral_atom.emulator import run_job
from qmk.errors import NotFoundError, ProgramError, QuotaError
from qmk.kernel.config import config_from_dict
from qmk.kernel.storage.artifacts import PART_RECORDS
from support.clocks import ClockFile, ShiftedClock
from support.kernel import run_kernel
from support.neutral_atom import device_submit, gate, job

KEY = "dave-key"
STREAM = {"measurements": True, "pulses": True, "snapshots": [1, 2]}


def config(**tenant: Any) -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, "artifact_keep_s": 3600, "session_ttl_s": 86400},
            "tenants": {
                "dave": {"key": KEY, "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"], **tenant},
            },
        }
    )


def ghz(shots: int, seed: int = 7) -> dict[str, Any]:
    steps = (gate("H", 0), gate("CX", 0, 1), gate("CX", 1, 2))
    return job(3, *steps, profile="benchmark_chain", shots=shots, seed=seed)


async def session(kernel: Any) -> str:
    reply = await kernel.q_negotiate_caps(
        tenant="dave", key=KEY, requested=["CAP_ALLOC", "CAP_DEVICE_NA"]
    )
    return str(reply.session_id)


def test_a_streamed_job_sends_its_records_before_completing_and_keeps_them(tmp_path):
    shots = 600
    heard: list[dict[str, Any]] = []

    async def body(kernel):
        kernel.audit.listeners.append(heard.append)
        sid = await session(kernel)
        accepted = await device_submit(
            kernel.q_submit, session_id=sid, job=ghz(shots), policy={"stream": STREAM}
        )
        job_id = accepted.job_id
        done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=120_000)
        listing = await kernel.q_device_artifacts(session_id=sid, job_id=job_id)
        pages, offset = [], 0
        while offset is not None:
            page = await kernel.q_device_artifacts(
                session_id=sid, job_id=job_id, name="measurements", offset=offset, limit=250
            )
            pages.append(page)
            offset = page.next_offset
        snaps = await kernel.q_device_artifacts(session_id=sid, job_id=job_id, name="snapshots")
        return job_id, done, listing, pages, snaps

    job_id, done, listing, pages, snaps = run_kernel(tmp_path, body, config=config())
    assert done.state == "COMPLETED", done.error
    assert done.result["counts"] == run_job(ghz(shots)).counts()
    assert [a["name"] for a in listing.artifacts] == ["measurements", "pulses", "snapshots"]
    assert listing.dropped == [] and listing.artifacts[0]["records"] == shots
    # the stored records are the shots, in order, and give the job's counts
    records = [r for page in pages for r in page.records]
    assert [len(p.records) for p in pages] == [250, 250, 100]
    assert [r["shot"] for r in records] == list(range(shots))
    counts: dict[str, int] = {}
    for r in records:
        key = "".join("L" if b < 0 else str(b) for m in r["measurements"] for b in m["bits"])
        counts[key] = counts.get(key, 0) + 1
    assert counts == done.result["counts"]
    # the snapshot after the first CX: (|00> + |11>)/sqrt(2) on atoms 0 and 1
    after_cx = snaps.records[1]["state"]
    assert after_cx == {
        "000": [pytest.approx(math.sqrt(0.5)), 0.0],
        "110": [pytest.approx(math.sqrt(0.5)), 0.0],
    }
    # the stream: every record in parts, before the job's COMPLETED line
    mine = [r for r in heard if r.get("job_id") == job_id]
    streamed = [r for r in mine if r["event"] == "stream" and r["artifact"] == "measurements"]
    assert [r["part"] for r in streamed] == list(range(math.ceil(shots / PART_RECORDS)))
    # as drawn (grouped by loss pattern), each record naming its shot: every shot once
    sent = [x for r in streamed for x in r["records"]]
    assert sorted(sent, key=lambda x: x["shot"]) == records
    completed = next(i for i, r in enumerate(mine) if r.get("state") == "COMPLETED")
    assert max(i for i, r in enumerate(mine) if r["event"] == "stream") < completed
    assert (tmp_path / "data" / "artifacts" / job_id / "measurements.json").exists()


def test_a_stream_the_device_cannot_serve_is_refused_at_submit(tmp_path):
    async def body(kernel):
        sid = await session(kernel)
        with pytest.raises(ProgramError) as caught:
            await device_submit(
                kernel.q_submit, session_id=sid, job=ghz(10), policy={"stream": {"snapshots": [4]}}
            )
        return caught.value

    refused = run_kernel(tmp_path, body, config=config())
    assert (refused.code, refused.rpc_code, refused.details["code"]) == ("QD114", 1008, "QD114")


def test_the_artifact_quota_drops_what_comes_after_it_fills_and_refuses_new_streams(tmp_path):
    stream = {"stream": {"measurements": True}}

    async def body(kernel):
        sid = await session(kernel)
        # both admitted while nothing is stored; whichever ends first fills the 2 KiB quota
        jobs = [
            (
                await device_submit(
                    kernel.q_submit, session_id=sid, job=ghz(200, seed), policy=stream
                )
            ).job_id
            for seed in (1, 2)
        ]
        for job_id in jobs:
            await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=120_000)
        listings = [
            await kernel.q_device_artifacts(session_id=sid, job_id=job_id) for job_id in jobs
        ]
        plain = await device_submit(kernel.q_submit, session_id=sid, job=ghz(50), policy=None)
        with pytest.raises(QuotaError) as caught:
            await device_submit(kernel.q_submit, session_id=sid, job=ghz(50), policy=stream)
        await kernel.q_wait(session_id=sid, job_id=plain.job_id, timeout_ms=120_000)
        return listings, caught.value

    listings, refused = run_kernel(tmp_path, body, config=config(max_artifact_storage_mb=0.002))
    kept = sorted(len(x.artifacts) for x in listings)
    dropped = [d for x in listings for d in x.dropped]
    assert kept == [0, 1] and len(dropped) == 1
    assert dropped[0]["name"] == "measurements"
    assert dropped[0]["reason"] == "max_artifact_storage_mb"
    assert refused.code == "QS1006" and refused.details["limit"] == "max_artifact_storage_mb"


def test_artifacts_expire_after_artifact_keep_s(tmp_path):
    clock_file = ClockFile(tmp_path / "clock")

    async def body(kernel):
        sid = await session(kernel)
        accepted = await device_submit(
            kernel.q_submit, session_id=sid, job=ghz(20), policy={"stream": {"pulses": True}}
        )
        job_id = accepted.job_id
        await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=120_000)
        before = await kernel.q_device_artifacts(session_id=sid, job_id=job_id)
        clock_file.advance(3601)
        kernel.supervisor.tick()
        after = await kernel.q_device_artifacts(session_id=sid, job_id=job_id)
        with pytest.raises(NotFoundError):
            await kernel.q_device_artifacts(session_id=sid, job_id=job_id, name="pulses")
        return job_id, before, after

    job_id, before, after = run_kernel(
        tmp_path, body, config=config(), clock=ShiftedClock(tmp_path / "clock")
    )
    assert [a["name"] for a in before.artifacts] == ["pulses"]
    assert after.artifacts == [] and after.expires_at is None
    assert not (tmp_path / "data" / "artifacts" / job_id).exists()


def test_stored_artifacts_outlive_a_restart_of_the_kernel(tmp_path):
    async def first(kernel):
        sid = await session(kernel)
        accepted = await device_submit(
            kernel.q_submit, session_id=sid, job=ghz(30), policy={"stream": {"measurements": True}}
        )
        await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=120_000)
        page = await kernel.q_device_artifacts(
            session_id=sid, job_id=accepted.job_id, name="measurements"
        )
        return accepted.job_id, page

    async def again(kernel, job_id):
        sid = await session(kernel)
        listing = await kernel.q_device_artifacts(session_id=sid, job_id=job_id)
        page = await kernel.q_device_artifacts(session_id=sid, job_id=job_id, name="measurements")
        return listing, page, kernel.supervisor.book.stored_artifacts().usage["dave"]

    job_id, before = run_kernel(tmp_path, first, config=config())
    listing, after, usage = run_kernel(
        tmp_path, lambda kernel: again(kernel, job_id), config=config()
    )
    assert after.records == before.records and len(after.records) == 30
    assert usage == listing.artifacts[0]["bytes"] > 0


def test_measurements_stream_while_the_job_runs_before_its_last_chunk_is_drawn(tmp_path):
    """The job is held at its first pause point (after its first chunk of shots): the
    parts of that chunk are heard while it is RUNNING, before anything else is drawn."""
    from qmk.devices.neutral_atom.shots import CHUNK_SHOTS
    from support.kernel import WorkerGate

    wire = dict(ghz(2 * CHUNK_SHOTS + 11, seed=23), profile="lossy_chain")
    heard: list[dict[str, Any]] = []

    async def body(kernel, pause):
        arrived = asyncio.Event()

        def listen(record: dict[str, Any]) -> None:
            heard.append(record)
            if record.get("event") == "stream":
                arrived.set()

        kernel.audit.listeners.append(listen)
        sid = await session(kernel)
        policy = {"stream": {"measurements": True}}
        accepted = await device_submit(kernel.q_submit, session_id=sid, job=wire, policy=policy)
        job_id = accepted.job_id
        await asyncio.wait_for(arrived.wait(), 120)
        held = await kernel.q_status(session_id=sid, job_id=job_id)
        parts_while_held = sum(1 for r in heard if r.get("event") == "stream")
        pause.open()
        done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=120_000)
        page = await kernel.q_device_artifacts(
            session_id=sid, job_id=job_id, name="measurements", limit=10_000
        )
        return job_id, held, parts_while_held, done, page

    with WorkerGate(tmp_path, "pause-gate") as pause:
        job_id, held, parts_while_held, done, page = run_kernel(
            tmp_path, lambda kernel: body(kernel, pause), config=config(), pause=pause
        )
    assert held.state == "RUNNING" and parts_while_held == CHUNK_SHOTS // PART_RECORDS
    assert done.state == "COMPLETED", done.error
    assert done.result["counts"] == run_job(wire).counts()
    mine = [r for r in heard if r.get("job_id") == job_id]
    streamed = [r for r in mine if r["event"] == "stream"]
    final = next(i for i, r in enumerate(mine) if r.get("state") == "COMPLETED")
    assert mine[0]["event"] == "job" and max(mine.index(r) for r in streamed) < final
    assert [r["part"] for r in streamed] == list(range(math.ceil(wire["shots"] / PART_RECORDS)))
    sent = sorted((x for r in streamed for x in r["records"]), key=lambda x: x["shot"])
    assert sent == page.records and len(sent) == wire["shots"]
