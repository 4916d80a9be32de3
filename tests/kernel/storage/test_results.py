"""Results stored once encoded, read in pages, within each tenant's storage quota, and
deleted ``result_keep_s`` after their job ended.

Jobs run on real workers; time is a ManualClock where it matters, so nothing races the
machine's speed."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
from msgspec import UNSET

from qmk.abi import replies
from qmk.abi.jsonrpc import RpcCore, dumps, encode
from qmk.errors import InvalidArgument, QuotaError, StateError
from qmk.execution.runs import run
from qmk.kernel.config import config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.records.encoded import encode_result
from qmk.kernel.records.stored import RESULT_MARK_EVERY, stored_result
from qmk.kernel.service import Kernel
from qmk.qvm import graph as graph_io
from qmk.qvm.generate import uniform_graph
from support.kernel import KEYS, login, make_config, run_kernel

SEED = 7


def wide(n: int) -> dict[str, Any]:
    """H on ``n`` qubits, each measured: about one distinct key per shot."""
    return uniform_graph(n).to_json()


def expected(n: int, shots: int) -> dict[str, int]:
    program = graph_io.loads(json.dumps(wide(n)))
    return dict(run(program, shots=shots, seed=SEED, noise=False).counts)


async def rpc(core: RpcCore, method: str, **params: Any) -> dict[str, Any]:
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    reply = await core.handle_line(line.encode())
    assert reply is not None
    answer: dict[str, Any] = json.loads(reply)
    return answer


async def finished(kernel: Kernel, sid: str, shots: int, n: int = 12) -> replies.Job:
    job = await kernel.q_submit(
        session_id=sid, graph=wide(n), shots=shots, seed=SEED, policy={"noise": False}
    )
    return await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)


# ---------------------------------------------------------------- the stored form


def test_pages_of_a_stored_result_give_every_entry_once_in_stored_order() -> None:
    rng = random.Random(SEED)
    counts = {format(rng.getrandbits(30), "030b"): rng.randrange(1, 10**12) for _ in range(5000)}
    # keys json must escape, non-ASCII keys, and keys that look like JSON punctuation
    counts.update({'a"b,': 1, "back\\slash": 2, "é∑ü": 3, "new\nline": 4, '":,{}': 5})
    stored = encode_result({"counts": counts, "shots": 9, "engine": "x"})
    assert json.loads(stored.data) == {"counts": counts, "shots": 9, "engine": "x"}
    for limit in (1, 7, RESULT_MARK_EVERY - 1, RESULT_MARK_EVERY, 2500, 10**6):
        seen: list[tuple[str, int]] = []
        start: int | None = 0
        while start is not None:
            page, start = stored.page(start, limit)
            items = list(json.loads(page).items())
            assert len(items) == min(limit, len(counts) - len(seen))
            seen += items
        assert seen == list(counts.items())


@pytest.mark.parametrize(
    "counts",
    [
        {"00": 51, "11": 49},  # a run's counts: sorted, ASCII
        {"11": 3, "00": 5},  # unsorted
        {"0 1": 2, "-3": 1, "7": 4},  # layouts: separators, signed integers
        {"caf\u00e9": 1, "a": 2},  # non-ASCII: written raw in the result, escaped digested
        {"a\x7fb": 1},  # DEL: written raw, escaped digested
        {"a\nb": 1, "\x00": 2, 'q"\\': 3},  # escaped alike by both
        {},
    ],
)
def test_a_stored_result_is_json_dumps_text_with_the_canonical_counts_digest(counts) -> None:
    from qmk.kernel.records.stored import digest_counts

    value = {"counts": counts, "shots": 8, "telemetry": {"x": 1.5e-7, "y": 1e16, "z": None}}
    stored = encode_result(value)
    head = {"shots": 8, "telemetry": value["telemetry"]}
    text = json.dumps({"counts": counts, **head}, separators=(",", ":"), ensure_ascii=False)
    assert stored.data == text.encode()
    assert stored.counts_sha256 == digest_counts(counts)
    with pytest.raises(ValueError):
        encode_result({"counts": {"0": 1}, "x": float("nan")})


def test_a_stored_result_reads_as_its_mapping_in_process() -> None:
    stored = encode_result({"counts": {"01": 2}, "telemetry": {"checkpoints": 0}})
    assert stored == {"counts": {"01": 2}, "telemetry": {"checkpoints": 0}}
    assert stored["telemetry"] == {"checkpoints": 0} and dict(stored)["counts"] == {"01": 2}
    assert stored_result(stored.data.decode(), json.dumps(dict(stored.meta))) == stored  # a row


def test_a_reply_carries_the_stored_bytes_spliced_in_unparsed() -> None:
    stored = encode_result({"counts": {"00": 1, "11": 3}, "shots": 4})
    message = {"id": 1, "result": {"job_id": "j", "result": stored, "note": "\x00\x00"}}
    line = encode(message)
    assert stored.data in line and line.endswith(b"\n")
    assert json.loads(line) == {
        "id": 1,
        "result": {
            "job_id": "j",
            "result": {"counts": {"00": 1, "11": 3}, "shots": 4},
            "note": "\x00\x00",  # a string like a marker is written as itself
        },
    }
    assert json.loads(dumps([stored, stored])) == [json.loads(stored.data)] * 2


# ---------------------------------------------------------------- serving and paging


def test_q_status_and_q_get_result_over_json_rpc_give_the_executors_counts(
    tmp_path: Path,
) -> None:
    shots = 3000  # 12 qubits: ~2600 distinct keys, three marks of the index
    want = expected(12, shots)

    async def body(kernel: Kernel) -> None:
        core = RpcCore(kernel)
        alice = await login(kernel, "alice")
        done = await finished(kernel, alice, shots)
        job_id = done.job_id
        status = (await rpc(core, "q_status", session_id=alice, job_id=job_id))["result"]
        assert status["state"] == "COMPLETED" and status["result"]["counts"] == want
        # the reply holds the stored bytes as they are
        line = await core.handle_line(
            json.dumps(
                {"jsonrpc": "2.0", "id": 2, "method": "q_wait", "params": [alice, job_id]}
            ).encode()
        )
        assert line is not None and kernel.supervisor.job(job_id, "alice").result.data in line
        pages, cursor, seen = 0, None, {}
        while True:
            page = (
                await rpc(
                    core, "q_get_result", session_id=alice, job_id=job_id, cursor=cursor, limit=700
                )
            )["result"]
            assert page["entries"] == len(want) and page["cursor"] == cursor
            assert page["summary"]["shots"] == shots and "counts" not in page["summary"]
            seen.update(page["counts"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == want and pages == -(-len(want) // 700)

    run_kernel(tmp_path, body, workers=1)


def test_q_get_result_refuses_bad_cursors_and_jobs_without_a_result(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        core = RpcCore(kernel)
        alice = await login(kernel, "alice")
        one = await finished(kernel, alice, shots=100)
        two = await finished(kernel, alice, shots=200)
        first = await kernel.q_get_result(session_id=alice, job_id=one.job_id, limit=10)
        cursor = first.next_cursor
        # a cursor of another result, a forged one, a bad limit: 1012, naming the param
        for bad in (cursor, "5", "5.zz", "-1." + cursor.split(".")[1], "9" * 30):
            error = (
                await rpc(core, "q_get_result", session_id=alice, job_id=two.job_id, cursor=bad)
            )["error"]
            assert error["code"] == 1012 and error["data"]["key"] == "cursor", bad
        for limit in (0, 100_001):
            with pytest.raises(InvalidArgument):
                await kernel.q_get_result(session_id=alice, job_id=one.job_id, limit=limit)
        cancelled = await kernel.q_submit(
            session_id=alice, graph=wide(3), shots=10, seed=1, policy={"priority": 0}
        )
        await kernel.q_cancel(session_id=alice, job_id=cancelled.job_id)
        error = (await rpc(core, "q_get_result", session_id=alice, job_id=cancelled.job_id))[
            "error"
        ]
        assert error["code"] == 1009 and error["data"]["state"] == "CANCELLED"
        bob = await login(kernel, "bob")
        error = (await rpc(core, "q_get_result", session_id=bob, job_id=one.job_id))["error"]
        assert error["code"] == 1005  # another tenant's job is not found

    run_kernel(tmp_path, body, workers=1)


# ---------------------------------------------------------------- the storage quota


#: 12 qubits: BIG shots are ~28 KB of result JSON, 20 shots ~2 KB; the quota ~41 KB holds
#: one big result and a small one, not two big ones.
BIG, QUOTA_MB = 2000, 1 / 25


def quota_config(mb: float, **kernel: Any) -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, **kernel},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"], "max_result_storage_mb": mb},
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


def test_a_result_past_the_tenants_storage_quota_fails_its_job_with_a_code(
    tmp_path: Path,
) -> None:
    config = quota_config(QUOTA_MB)

    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        big = await finished(kernel, alice, shots=BIG)
        assert big.state == "COMPLETED"
        used = kernel.supervisor.results.usage["alice"]
        assert used == kernel.supervisor.job(big.job_id, "alice").result.nbytes
        over = await finished(kernel, alice, shots=BIG)
        assert over.state == "FAILED" and over.error.code == "QK307"
        assert over.result is None and kernel.supervisor.results.usage["alice"] == used
        small = await finished(kernel, alice, shots=20)  # still fits
        assert small.state == "COMPLETED"
        other = await finished(kernel, bob, shots=BIG)  # bob's quota is his own
        assert other.state == "COMPLETED"
        negotiated = await kernel.q_negotiate_caps(tenant="alice", key=KEYS["alice"])
        assert negotiated.quota["max_result_storage_mb"] == QUOTA_MB

    run_kernel(tmp_path, body, workers=1, config=config)

    async def reopened(kernel: Kernel) -> None:  # the bytes in use are read back at open
        alice = await login(kernel, "alice")
        again = await finished(kernel, alice, shots=BIG)
        assert again.state == "FAILED" and again.error.code == "QK307"

    run_kernel(tmp_path, reopened, workers=1, config=config)


def test_a_tenant_whose_results_fill_its_quota_queues_nothing_more(tmp_path: Path) -> None:
    """Its job could only run and then FAIL with QK307, so the submit is refused before
    anything is stored (QS1006), naming the key; other tenants submit as before."""

    async def fill(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        assert (await finished(kernel, alice, shots=BIG)).state == "COMPLETED"

    run_kernel(tmp_path, fill, workers=1, config=quota_config(QUOTA_MB))

    async def smaller(kernel: Kernel) -> None:  # the operator lowered the quota below use
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        before = await kernel.q_list_jobs(session_id=alice)
        with pytest.raises(QuotaError, match="max_result_storage_mb") as info:
            await kernel.q_submit(session_id=alice, graph=wide(4), shots=10, seed=SEED)
        assert info.value.code == "QS1006" and info.value.details["limit"] == (
            "max_result_storage_mb"
        )
        assert await kernel.q_list_jobs(session_id=alice) == before  # nothing stored
        assert (await finished(kernel, bob, shots=20)).state == "COMPLETED"

    run_kernel(tmp_path, smaller, workers=1, config=quota_config(QUOTA_MB / 100))


# ---------------------------------------------------------------- retention


def expired_lines(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "result-expired"]


def test_a_result_is_deleted_result_keep_s_after_its_job_ended_and_the_job_says_so(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    config = quota_config(QUOTA_MB, result_keep_s=100)

    async def body(kernel: Kernel) -> str:
        core = RpcCore(kernel)
        alice = await login(kernel, "alice")
        done = await finished(kernel, alice, shots=BIG)
        job_id = done.job_id
        assert (await finished(kernel, alice, shots=BIG)).error.code == "QK307"
        clock.advance(99)
        await clock.tick()
        kept = await kernel.q_status(session_id=alice, job_id=job_id)
        assert kept.result["counts"] == expected(12, BIG) and kept.result_error is UNSET
        clock.advance(2)
        await clock.tick()
        status = (await rpc(core, "q_status", session_id=alice, job_id=job_id))["result"]
        assert status["state"] == "COMPLETED" and status["result"] is None
        assert status["result_error"]["code"] == "QK306"
        assert status["result_expired_at"] == clock.now()
        error = (await rpc(core, "q_get_result", session_id=alice, job_id=job_id))["error"]
        assert error["code"] == 1009 and error["data"]["code"] == "QK306"
        listed = await kernel.q_list_jobs(session_id=alice, state="COMPLETED")
        assert listed.jobs[0].result_error.code == "QK306"
        # the bytes came back: a result of the same size fits again
        assert kernel.supervisor.results.usage["alice"] == 0
        assert (await finished(kernel, alice, shots=BIG)).state == "COMPLETED"
        return str(job_id)

    job_id = run_kernel(tmp_path, body, workers=1, clock=clock, config=config)
    (line,) = expired_lines(tmp_path)
    assert line["tenant"] == "alice" and line["job_ids"] == [job_id]


def test_results_past_their_time_are_deleted_when_the_kernel_opens(tmp_path: Path) -> None:
    clock = ManualClock()
    config = make_config(result_keep_s=3600)

    async def body(kernel: Kernel) -> str:
        alice = await login(kernel, "alice")
        return str((await finished(kernel, alice, shots=10)).job_id)

    job_id = run_kernel(tmp_path, body, workers=1, clock=clock, config=config)
    clock = ManualClock(clock.now() + 7200)  # the kernel was down meanwhile

    async def reopened(kernel: Kernel) -> None:
        assert kernel.supervisor.results.usage["alice"] == 0  # before any tick
        alice = await login(kernel, "alice")
        status = await kernel.q_status(session_id=alice, job_id=job_id)
        assert status.result is None and status.result_error.code == "QK306"
        with pytest.raises(StateError):
            await kernel.q_get_result(session_id=alice, job_id=job_id)

    run_kernel(tmp_path, reopened, workers=1, clock=clock, config=config)
    assert len(expired_lines(tmp_path)) == 1


def test_the_outcome_a_restored_job_had_before_expires_with_the_same_rule(tmp_path: Path) -> None:
    clock = ManualClock()
    config = make_config(result_keep_s=100)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        done = await finished(kernel, alice, shots=10)
        job_id = done.job_id
        telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=job_id)
        assert telemetry.earlier_outcomes == []
        await kernel.q_checkpoint(session_id=alice, job_id=job_id)
        clock.advance(50)
        await kernel.q_restore(session_id=alice, job_id=job_id)
        again = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert again.result["counts"] == done.result["counts"]
        telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=job_id)
        assert telemetry.earlier_outcomes[0]["result"] == done.result
        clock.advance(60)  # the first outcome is 110 s old, the rerun's result 60 s
        await clock.tick()
        telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=job_id)
        assert telemetry.earlier_outcomes[0]["result"] is None
        status = await kernel.q_status(session_id=alice, job_id=job_id)
        assert status.result == again.result and status.result_error is UNSET

    run_kernel(tmp_path, body, workers=1, clock=clock, config=config)


def test_the_retention_key_and_the_quota_key_are_checked_like_every_key() -> None:
    from qmk.kernel.errors import ConfigError

    with pytest.raises(ConfigError, match=r"kernel\.result_keep_s"):
        make_config(result_keep_s=0)
    with pytest.raises(ConfigError, match="max_result_storage_mb"):
        quota_config(-1)
    assert asyncio.iscoroutinefunction(Kernel.q_get_result)
