"""The data directory: one kernel at a time, a torn audit tail repaired, and no silent
start on a cut audit log, a lost database or secret, or a corrupt database page."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from qmk.kernel.errors import DataDirError
from qmk.kernel.service import Kernel
from qmk.kernel.storage.audit_verify import verify
from support.cli import qmk
from support.kernel import BELL, login, make_config, run_kernel


def submit_one(tmp_path: Path) -> None:
    """A kernel on ``tmp_path / "data"`` that completes one job, then closes."""

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)

    run_kernel(tmp_path, body, workers=1)


def open_error(tmp_path: Path, **options: Any) -> DataDirError:
    async def main() -> None:
        kernel = await Kernel.open(make_config(), tmp_path / "data", workers=1, **options)
        await kernel.close()

    with pytest.raises(DataDirError) as caught:
        asyncio.run(main())
    return caught.value


def open_lines(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("action") == "open"]


def test_a_second_kernel_on_the_same_directory_is_refused_with_data_dir_locked(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        error = await asyncio.to_thread(open_error, tmp_path)
        assert error.code == "QK102" and "in use by another kernel" in error.message

    run_kernel(tmp_path, body, workers=1)
    submit_one(tmp_path)  # the lock went with the first kernel


def test_qmk_serve_on_a_locked_directory_exits_2_with_one_coded_line(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text('[machine]\nphysical_qubits = 1000\n[tenants.alice]\nkey = "k"\n')

    async def body(kernel: Kernel) -> tuple[int, str, str]:
        # the holder's worker says its confinement (a warning as root) before its first
        # result: one job done, so that warning is not logged while `qmk serve` listens
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        argv = ["serve", "--socket", str(tmp_path / "s")]
        argv += ["--data-dir", str(tmp_path / "data"), "--config", str(config)]
        return await asyncio.to_thread(qmk, *argv)

    status, out, err = run_kernel(tmp_path, body, workers=1)
    assert status == 2 and out == ""
    assert err.startswith("QK102 data-dir-locked") and err.count("\n") == 1


def test_a_torn_audit_tail_is_cut_off_at_start_and_the_chain_verifies(tmp_path: Path) -> None:
    submit_one(tmp_path)
    log = tmp_path / "data" / "audit.log"
    with open(log, "ab") as handle:
        handle.write(b'{"seq":99,"ts":1.0,"event":"job","job_')  # died inside a write
    submit_one(tmp_path)
    assert open_lines(tmp_path)[-1]["repaired"] == {"torn_audit_bytes": 38}
    assert verify(tmp_path / "data").ok


def test_a_cut_audit_log_stops_the_kernel_unless_told_to_recover(tmp_path: Path) -> None:
    submit_one(tmp_path)
    log = tmp_path / "data" / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-2]))  # the last two lines are gone
    error = open_error(tmp_path)
    assert error.code == "QK103" and "not the head the database recorded" not in error.message
    assert "ends before line" in error.message
    submit_one_recovering(tmp_path)
    (last_open,) = open_lines(tmp_path)[-1:]
    assert "ends before line" in last_open["recovered_from"][0]
    report = verify(tmp_path / "data")  # the chain is whole again, and says where it broke
    ((line, problems),) = report.recoveries
    assert line == report.lines - 1 and "ends before line" in problems[0]


def submit_one_recovering(tmp_path: Path) -> None:
    async def main() -> None:
        kernel = await Kernel.open(make_config(), tmp_path / "data", workers=1, recover=True)
        await kernel.close()

    asyncio.run(main())


def test_an_edited_head_line_is_damage(tmp_path: Path) -> None:
    submit_one(tmp_path)
    log = tmp_path / "data" / "audit.log"
    data = log.read_bytes()
    log.write_bytes(data[:-3] + b"0}\n")  # the last character of the head's mac changed
    error = open_error(tmp_path)
    assert error.code == "QK103" and "not the head the database recorded" in error.message


def test_a_deleted_database_or_secret_is_damage_not_a_fresh_start(tmp_path: Path) -> None:
    submit_one(tmp_path)
    (tmp_path / "data" / "kernel.secret").unlink()
    assert "secret is missing" in open_error(tmp_path).message
    submit_one_recovering(tmp_path)  # accepted: a new secret, recorded
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / "data" / f"kernel.db{suffix}").unlink(missing_ok=True)
    error = open_error(tmp_path)
    assert error.code == "QK103" and "the database records none" in error.message


def test_a_corrupt_database_page_is_damage(tmp_path: Path) -> None:
    submit_one(tmp_path)
    db = tmp_path / "data" / "kernel.db"
    data = bytearray(db.read_bytes())
    assert len(data) >= 3 * 4096
    data[4096 : 3 * 4096] = b"\xa5" * (2 * 4096)  # pages 2 and 3 overwritten
    db.write_bytes(bytes(data))
    error = open_error(tmp_path)
    assert error.code == "QK103" and "database" in error.message


def test_the_kernels_files_are_private_to_its_user(tmp_path: Path) -> None:
    submit_one(tmp_path)
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("kernel.db", "audit.log", "kernel.secret", "kernel.lock"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
