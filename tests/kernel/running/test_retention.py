"""Retention of execution states: a job keeps its newest ``checkpoints_per_job`` states,
the states of a job that ended are deleted ``checkpoint_keep_s`` later, and files no
checkpoint names are deleted when the kernel opens its data directory.

Jobs are held at a pause gate and time is a ManualClock, so nothing races the machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qmk.errors import NotFoundError, StateError
from qmk.execution.runs import run
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.kernel import FENCED, WorkerGate, login, make_config, run_kernel, wait_state

SHOTS, SEED = 300, 5


def states(tmp_path: Path) -> list[str]:
    """The names of the state files in the data directory, sorted."""
    return sorted(p.name for p in (tmp_path / "data" / "checkpoints").glob("*/*"))


def pruned(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "checkpoint-pruned"]


async def submit(kernel: Kernel, session: str) -> str:
    job = await kernel.q_submit(
        session_id=session, graph=FENCED.to_json(), shots=SHOTS, seed=SEED, policy={"noise": False}
    )
    return str(job.job_id)


def test_a_job_keeps_its_newest_states_and_an_older_one_is_gone(tmp_path: Path) -> None:
    expected = dict(run(FENCED, shots=SHOTS, seed=SEED, noise=False).counts)

    async def body(kernel: Kernel) -> list[str]:
        alice = await login(kernel, "alice")
        job_id = await submit(kernel, alice)
        await wait_state(kernel, alice, job_id, "RUNNING")  # held at fence 1
        ids = []
        for _ in range(3):  # three states, each saved at fence 1 where the job is held
            saved = await kernel.q_checkpoint(session_id=alice, job_id=job_id)
            assert saved.saved and saved.program_epoch == 1
            ids.append(saved.checkpoint_id)
        assert states(tmp_path) == sorted(f"{i}.qmkstate" for i in ids[1:])
        pause.open()
        await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        with pytest.raises(NotFoundError):
            await kernel.q_restore(session_id=alice, job_id=job_id, checkpoint_id=ids[0])
        await kernel.q_restore(session_id=alice, job_id=job_id, checkpoint_id=ids[1])
        again = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert again.result["counts"] == expected
        assert again.result["telemetry"]["resumed_from_epoch"] == 1
        return ids

    with WorkerGate(tmp_path, "pause-gate") as pause:
        ids = run_kernel(
            tmp_path, body, workers=1, pause=pause, config=make_config(checkpoints_per_job=2)
        )
    (line,) = pruned(tmp_path)
    assert line["reason"] == "per-job" and line["checkpoint_ids"] == [ids[0]]


def test_the_states_of_a_job_that_ended_are_deleted_after_checkpoint_keep_s(
    tmp_path: Path,
) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job_id = await submit(kernel, alice)
        await wait_state(kernel, alice, job_id, "RUNNING")
        saved = await kernel.q_checkpoint(session_id=alice, job_id=job_id)
        pause.open()
        await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        clock.advance(90)
        await clock.tick()
        assert states(tmp_path) == [f"{saved.checkpoint_id}.qmkstate"]  # kept for 100 s
        clock.advance(20)
        await clock.tick()
        assert states(tmp_path) == []
        with pytest.raises(StateError):
            await kernel.q_restore(session_id=alice, job_id=job_id)

    with WorkerGate(tmp_path, "pause-gate") as pause:
        config = make_config(checkpoint_keep_s=100)
        run_kernel(tmp_path, body, workers=1, pause=pause, clock=clock, config=config)
    (line,) = pruned(tmp_path)
    assert line["reason"] == "ended"


def test_state_files_no_checkpoint_names_are_deleted_when_the_kernel_opens(
    tmp_path: Path,
) -> None:
    async def checkpointed(kernel: Kernel) -> str:
        alice = await login(kernel, "alice")
        job_id = await submit(kernel, alice)
        await wait_state(kernel, alice, job_id, "RUNNING")
        saved = await kernel.q_checkpoint(session_id=alice, job_id=job_id)
        pause.open()
        await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        return f"{saved.checkpoint_id}.qmkstate"

    with WorkerGate(tmp_path, "pause-gate") as pause:
        named = run_kernel(tmp_path, checkpointed, workers=1, pause=pause)
    # what a crash between a worker's write and the checkpoint's commit leaves behind
    # (private, as workers write them)
    root = tmp_path / "data" / "checkpoints"
    (root / "job_gone").mkdir(mode=0o700)
    (root / "job_gone" / "ckpt_lost.qmkstate").write_bytes(b"state")
    (next(root.glob("job_*/*.qmkstate")).parent / ".ckpt_half.qmkstate.tmp").write_bytes(b"x")
    for leftover in root.glob("job_*/*"):
        leftover.chmod(0o600)

    async def nothing(kernel: Kernel) -> None:
        return None

    run_kernel(tmp_path, nothing, workers=1)
    assert states(tmp_path) == [named]
    assert not (root / "job_gone").exists()
