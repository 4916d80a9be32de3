"""The kernel's files are its user's alone whatever the umask (folders 0700, files 0600),
and a data directory others may use is refused (``QK121``) or repaired on request."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.execution.checkpoint import write_state
from qmk.kernel.datafiles import (
    ARTIFACTS,
    AUDIT_FILE,
    CHECKPOINTS,
    DB_FILE,
    LOCK_FILE,
    SECRET_FILE,
)
from qmk.kernel.errors import ExposureError
from qmk.kernel.service import Kernel
from support.cli import qmk
from support.kernel import (
    FENCED,
    WorkerGate,
    config_toml,
    login,
    make_config,
    run_kernel,
    wait_state,
)


@pytest.fixture
def umask_000() -> Iterator[None]:
    """The process's umask 000 for the test (restored after)."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def a_state() -> object:
    """A real execution state: FENCED stopped at its first fence."""
    from qmk.execution.runs import run
    from qmk.execution.trajectories import Suspended

    class AtFirstFence:
        urgent = False
        saved = None

        def at_fence(self, epoch: int) -> str | None:
            return "yield" if self.saved is None else None

        def at_op(self) -> None:
            return None

        def after_segment(self) -> None:
            return None

        def save(self, state: object) -> None:
            self.saved = state

    control = AtFirstFence()
    with pytest.raises(Suspended):
        run(FENCED, shots=50, seed=3, noise=False, control=control)
    return control.saved


def test_a_state_file_and_its_folders_are_private_under_umask_000(
    tmp_path: Path, umask_000: None
) -> None:
    state = a_state()
    path = tmp_path / "checkpoints" / "job_x" / "ckpt_1.qmkstate"
    write_state(path, state)  # type: ignore[arg-type]
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700


def test_a_kernel_under_umask_000_writes_only_private_files(
    tmp_path: Path, umask_000: None
) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice, graph=FENCED.to_json(), shots=200, seed=5, policy={"noise": False}
        )
        await wait_state(kernel, alice, job.job_id, "RUNNING")  # held at its first fence
        checkpoint = await kernel.q_checkpoint(session_id=alice, job_id=job.job_id)
        assert checkpoint.saved is True
        pause.open()
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)

    with WorkerGate(tmp_path, "pause-gate") as pause:
        run_kernel(tmp_path, body, workers=1, pause=pause)
    data = tmp_path / "data"
    assert mode(data) & 0o077 == 0, oct(mode(data))
    for name in (DB_FILE, AUDIT_FILE, SECRET_FILE, LOCK_FILE):
        assert mode(data / name) == 0o600, name
    for extra in (f"{DB_FILE}-wal", f"{DB_FILE}-shm"):
        if (data / extra).exists():
            assert mode(data / extra) == 0o600, extra
    checkpoints = data / CHECKPOINTS
    assert mode(checkpoints) & 0o007 == 0, oct(mode(checkpoints))
    (job_dir,) = checkpoints.iterdir()
    assert mode(job_dir) & 0o077 == 0, oct(mode(job_dir))
    states = list(job_dir.iterdir())
    assert states and all(mode(state) == 0o600 for state in states)


def _a_closed_kernel(data: Path) -> None:
    async def main() -> None:
        kernel = await Kernel.open(make_config(), data)
        await kernel.close()

    asyncio.run(main())


@pytest.mark.parametrize(("name", "lax"), [("", 0o777), (DB_FILE, 0o644), (SECRET_FILE, 0o640)])
def test_a_lax_data_directory_is_refused_with_qk121_and_repaired_on_request(
    tmp_path: Path, name: str, lax: int
) -> None:
    data = tmp_path / "data"
    _a_closed_kernel(data)
    target = data / name if name else data
    os.chmod(target, lax)

    async def reopen(repair: bool) -> None:
        kernel = await Kernel.open(make_config(), data, repair_perms=repair)
        await kernel.close()

    with pytest.raises(ExposureError) as refused:
        asyncio.run(reopen(False))
    assert refused.value.code == "QK121" and str(target) in refused.value.message
    assert mode(target) == lax  # refused: nothing changed
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml())
    code, out, err = qmk(
        "serve", "--socket", str(tmp_path / "k.sock"), "--config", str(config),
        "--data-dir", str(data),
    )  # fmt: skip
    assert code == 2 and out == "" and err.startswith("QK121 lax-permissions: ")
    assert err.count("\n") == 1 and "--repair-perms" in err
    asyncio.run(reopen(True))
    assert mode(target) == lax & ~(0o027 if not name else 0o077)
    opens = [
        json.loads(line)
        for line in (data / AUDIT_FILE).read_text().splitlines()
        if '"open"' in line
    ]
    assert opens[-1]["repaired"]["permissions"] == [str(target)]
    asyncio.run(reopen(False))  # repaired for good


DAVE = "dave-key"


def _device_config() -> Any:
    from qmk.kernel.config import config_from_dict

    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"dave": {"key": DAVE, "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"]}},
        }
    )


def _store_artifacts(tmp_path: Path) -> Path:
    """A streamed device job's artifacts, stored by a kernel on ``tmp_path / "data"``;
    the job's folder of them."""
    from support.neutral_atom import device_submit, gate, job

    ghz = job(3, gate("H", 0), gate("CX", 0, 1), profile="benchmark_chain", shots=50, seed=7)

    async def body(kernel: Kernel) -> str:
        reply = await kernel.q_negotiate_caps(
            tenant="dave", key=DAVE, requested=["CAP_ALLOC", "CAP_DEVICE_NA"]
        )
        sid = reply.session_id
        stream = {"measurements": True, "pulses": True}
        accepted = await device_submit(
            kernel.q_submit, session_id=sid, job=ghz, policy={"stream": stream}
        )
        done = await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=120_000)
        assert done.state == "COMPLETED", done.error
        return str(accepted.job_id)

    job_id = run_kernel(tmp_path, body, config=_device_config())
    return tmp_path / "data" / ARTIFACTS / job_id


def test_a_device_jobs_artifacts_are_private_under_umask_000(
    tmp_path: Path, umask_000: None
) -> None:
    folder = _store_artifacts(tmp_path)
    assert mode(folder.parent) == 0o700 and mode(folder) == 0o700
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["index.json", "measurements.json", "pulses.json"]
    assert all(mode(folder / name) == 0o600 for name in files)


@pytest.mark.parametrize(("where", "lax"), [("file", 0o644), ("folder", 0o755)])
def test_a_lax_artifact_is_refused_with_qk121_at_start_and_repaired_on_request(
    tmp_path: Path, where: str, lax: int
) -> None:
    folder = _store_artifacts(tmp_path)
    target = folder / "measurements.json" if where == "file" else folder
    os.chmod(target, lax)

    async def reopen(repair: bool) -> None:
        kernel = await Kernel.open(_device_config(), tmp_path / "data", repair_perms=repair)
        await kernel.close()

    with pytest.raises(ExposureError) as refused:
        asyncio.run(reopen(False))
    assert refused.value.code == "QK121" and str(target) in refused.value.message
    asyncio.run(reopen(True))
    assert mode(target) == (0o600 if where == "file" else 0o750)  # a folder: 0o027 taken
    asyncio.run(reopen(False))  # repaired for good
