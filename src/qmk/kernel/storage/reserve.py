"""The data directory's disk reserve: room that no tenant's request takes.

The kernel's own writes need room whatever its tenants ask for: the end of each job it
accepted (its row, its result, its audit line, its usage record), its database log's
checkpoints, the lines of a start and a close. ``[kernel] min_free_disk_mb`` is that room.
Below it, the requests that would grow the directory for a tenant are refused before
anything of them is written (``QS1011 unavailable``, ``reason: disk-reserve``): a submit,
a restore, a replay, a login, a delegation. Jobs accepted before keep running and end
into the reserve, and the calls that read go on. The database's log keeps to a share of
the disk's room above the reserve as well (:mod:`qmk.kernel.storage.walcheck`), so the
kernel's own log never takes it either.

>>> import tempfile
>>> DiskReserve(tempfile.gettempdir(), 0).check("a login")  # no reserve: never refused
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from qmk.errors import UnavailableError

#: How long a reading of the disk's free space that passed the reserve is trusted
#: (monotonic seconds): a request reads it (``statvfs``) at most this often while
#: there is room, and at every request once there is not.
DISK_READ_S = 0.1


def free_bytes(path: str | os.PathLike[str]) -> int:
    """The bytes free on the disk of ``path`` for an unprivileged user (``statvfs``)."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


class DiskReserve:
    """The reserve of one data directory's disk (see the module docstring).

    Args:
        data_dir: the data directory.
        reserve_mb: the room its tenants' requests leave free (MiB; 0: no reserve).
        monotonic: the clock of :data:`DISK_READ_S` (not the kernel's clock: a test's
            clock stands still while the disk fills).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        reserve_mb: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = data_dir
        self.reserve_mb = reserve_mb
        self._monotonic = monotonic
        self._room_until = -math.inf  # until when the last reading that passed holds

    @property
    def reserve_bytes(self) -> int:
        """The reserve in bytes."""
        return self.reserve_mb * 2**20

    def check(self, what: str) -> None:
        """Refuse ``what`` (a request that writes for a tenant: "a submit", "a login")
        while the disk is below the reserve (read again :data:`DISK_READ_S` after a
        reading that had room; at once after one that had not).

        Raises:
            UnavailableError: ``reason: disk-reserve``, with the MiB free and the reserve.
        """
        if not self.reserve_mb:
            return
        now = self._monotonic()
        if now < self._room_until:
            return
        try:
            free_mb = free_bytes(self.data_dir) / 2**20
        except OSError:
            return  # not knowable here: the commit itself will say
        if free_mb >= self.reserve_mb:
            self._room_until = now + DISK_READ_S
            return
        raise UnavailableError(
            f"the data directory's disk has {free_mb:.0f} MiB free, below the reserve of "
            f"{self.reserve_mb} MiB (kernel.min_free_disk_mb) the kernel keeps for its own "
            f"writes: {what} is refused and nothing was kept; retry later",
            reason="disk-reserve",
            free_mb=round(free_mb, 1),
            reserve_mb=self.reserve_mb,
        )


__all__ = ["DISK_READ_S", "DiskReserve", "free_bytes"]
