"""The kernel keeps a disk reserve that its tenants' requests and its own database log never
eat, on a real small filesystem (a tmpfs, :mod:`support.small_disk`) under a real ``qmk
serve``: a flood of logins keeps the log to its share of the disk and a restart on the
same disk serves logins; below the reserve a login, a submit and a delegation are refused
with ``reason: disk-reserve`` while a job accepted before ends into it; and the reading of
the disk is cached as it says."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qmk.client import Client
from qmk.errors import UnavailableError
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.storage.reserve import DISK_READ_S, DiskReserve
from qmk.qvm.generate import uniform_graph
from support.kernel import TENANTS, WorkerGate
from support.small_disk import SmallDisk
from support.wires import FLOOD_LIMITS, DoorServer, flood_logins

#: The small disk (MiB) and the reserve its kernel keeps (MiB): a log restarted at its
#: usual bound (64 MiB) fills such a disk within about 1,200 logins (13 KB of log each).
DISK_MIB, RESERVE_MIB = 16, 2


@pytest.fixture
def disk(tmp_path: Path) -> Any:
    with contextlib.closing(SmallDisk(tmp_path / "disk", DISK_MIB)) as small:
        yield small


def client(server: DoorServer, tenant: str) -> Client:
    return Client.connect(
        str(server.root / "k.sock"),
        tenant=tenant,
        key=TENANTS[tenant]["key"],
        caps=TENANTS[tenant]["caps"],
    )


def verified(disk: SmallDisk) -> dict[str, Any]:
    """``qmk audit verify`` of the disk's data directory, run where the disk is."""
    done = disk.run("qmk", "audit", "verify", str(disk.path / "data"), "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_log_of_a_login_flood_keeps_to_a_small_disk_and_a_restart_serves_logins(
    disk: SmallDisk, tmp_path: Path
) -> None:
    server = disk.serve(
        tmp_path, kernel={"min_free_disk_mb": RESERVE_MIB}, server=FLOOD_LIMITS
    ).start()
    wal = disk.outside(disk.path / "data" / f"{DB_FILE}-wal")

    def log_bytes() -> int:
        return wal.stat().st_size if wal.exists() else 0

    with client(server, "bob") as bob:
        job = bob.q_submit(uniform_graph(2).to_json(), 10, 1).job_id
        outcomes, largest = flood_logins(server, "alice", 3_000, watch=log_bytes)
        assert outcomes == {"granted": 3_000}  # nothing of them needed the reserve
        assert largest < DISK_MIB * 2**20 // 2, largest  # its share, and a few commits past
        assert disk.free_bytes() > RESERVE_MIB * 2**20
        assert bob.q_wait(job, 60_000).state == "COMPLETED"  # nothing lost
    assert server.stop() == 0, server.log()

    server.start()  # on the same disk: it starts, and serves logins and jobs
    with client(server, "alice") as alice:
        job = alice.q_submit(uniform_graph(2).to_json(), 10, 2).job_id
        assert alice.q_wait(job, 60_000).state == "COMPLETED"
    assert server.stop() == 0, server.log()
    assert verified(disk)["ok"]


def test_below_the_reserve_tenants_requests_are_refused_and_accepted_jobs_end_into_it(
    disk: SmallDisk, tmp_path: Path
) -> None:
    with WorkerGate(tmp_path) as gate:
        server = disk.serve(
            tmp_path, kernel={"min_free_disk_mb": RESERVE_MIB}, hooks=gate.hooks()
        ).start()
        with client(server, "alice") as alice:
            held = alice.q_submit(uniform_graph(2).to_json(), 10, 1).job_id
            filler = disk.fill(leave=RESERVE_MIB * 2**19)  # half the reserve left
            time.sleep(DISK_READ_S)  # past the last reading that had room
            calls = {
                "a login": lambda: client(server, "bob").close(),
                "a submit": lambda: alice.q_submit(uniform_graph(2).to_json(), 10, 2),
                "a delegation": lambda: alice.q_delegate_caps("bob", ["CAP_ALLOC"], 60),
            }
            for what, call in calls.items():
                with pytest.raises(UnavailableError) as refused:
                    call()
                assert refused.value.details["reason"] == "disk-reserve", what
                assert f"{what} is refused" in refused.value.message
                assert refused.value.details["reserve_mb"] == RESERVE_MIB
            gate.open()  # the job accepted before runs, and ends into the reserve
            assert alice.q_wait(held, 60_000).state == "COMPLETED"
            filler.unlink()  # room again: a login is served at once
            client(server, "bob").close()
        assert server.stop() == 0, server.log()
    assert verified(disk)["ok"]


def test_the_disk_is_read_again_a_while_after_a_reading_with_room_and_at_once_after_one_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    free_mb = [1000]
    reads: list[str] = []

    def statvfs(path: Any) -> SimpleNamespace:  # the disk: 1 MiB blocks
        reads.append(str(path))
        return SimpleNamespace(f_bavail=free_mb[0], f_frsize=2**20)

    monkeypatch.setattr(os, "statvfs", statvfs)
    reserve = DiskReserve(tmp_path, 64, monotonic=lambda: now[0])
    reserve.check("a submit")
    assert reads == [str(tmp_path)]
    free_mb[0] = 10  # the disk fills: a reading with room still holds a while
    now[0] += DISK_READ_S / 2
    reserve.check("a submit")
    assert len(reads) == 1
    now[0] = 1000.0 + DISK_READ_S  # then it is read again, and the request refused
    with pytest.raises(UnavailableError) as refused:
        reserve.check("a submit")
    assert "min_free_disk_mb" in refused.value.message
    assert refused.value.details == {"reason": "disk-reserve", "free_mb": 10.0, "reserve_mb": 64}
    with pytest.raises(UnavailableError):  # a reading without room is never trusted
        reserve.check("a login")
    assert len(reads) == 3
    free_mb[0] = 100  # room again: the next request sees it at once
    reserve.check("a login")
    assert len(reads) == 4
