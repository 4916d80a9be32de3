"""The job desk's own checks (:mod:`qmk.kernel.syscalls.jobs`)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qmk.errors import UnavailableError
from qmk.kernel.config import config_from_dict
from qmk.kernel.syscalls.jobs import DISK_READ_S, JobDesk


def test_the_disk_is_read_again_a_while_after_a_reading_with_room_and_at_once_after_one_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_from_dict(
        {"machine": {"physical_qubits": 10_000}, "kernel": {"min_free_disk_mb": 64}}
    )
    now = [1000.0]
    free_mb = [1000]
    reads: list[str] = []

    def statvfs(path: Any) -> SimpleNamespace:  # the disk: 1 MiB blocks
        reads.append(str(path))
        return SimpleNamespace(f_bavail=free_mb[0], f_frsize=2**20)

    monkeypatch.setattr(os, "statvfs", statvfs)
    desk = JobDesk(
        config,
        tmp_path,
        store=None,  # type: ignore[arg-type]  # the disk check needs none of these
        admission=None,  # type: ignore[arg-type]
        supervisor=None,  # type: ignore[arg-type]
        delegations=None,  # type: ignore[arg-type]
        check_open=lambda: None,
        monotonic=lambda: now[0],
    )
    desk._check_disk()
    assert reads == [str(tmp_path)]
    free_mb[0] = 10  # the disk fills: a reading with room still holds a while
    now[0] += DISK_READ_S / 2
    desk._check_disk()
    assert len(reads) == 1
    now[0] = 1000.0 + DISK_READ_S  # then it is read again, and the submit refused
    with pytest.raises(UnavailableError) as refused:
        desk._check_disk()
    assert "min_free_disk_mb" in refused.value.message
    with pytest.raises(UnavailableError):  # a reading without room is never trusted
        desk._check_disk()
    assert len(reads) == 3
    free_mb[0] = 100  # room again: the next submit sees it at once
    desk._check_disk()
    assert len(reads) == 4
