"""A real small filesystem for a test: a tmpfs of a few MiB, mounted in a mount namespace
of its own (a user namespace too, so no privilege is needed where the host allows them),
held open by a sleeping process. A command runs in it through :attr:`SmallDisk.prefix`
(``nsenter``), so a ``qmk serve`` keeps its data directory there while its sockets stay
where the test reaches them; this process reaches the files through
:meth:`SmallDisk.outside` (``/proc/PID/root``). SQLite opens a database by its path with
symbolic links resolved, which leads it out of the namespace: a database there is read
by a command run in it (:meth:`SmallDisk.run`). Where the host allows no such namespace
the test is skipped, with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.children import die_with_us
from support.wires import DoorServer


class SmallDisk:
    """A tmpfs of ``mib`` MiB at ``path`` (created here), seen by the commands run through
    :attr:`prefix` until :meth:`close` (``with contextlib.closing(SmallDisk(...))``)."""

    def __init__(self, path: Path, mib: int) -> None:
        self.path = path
        self.mib = mib
        path.mkdir(parents=True, exist_ok=True)
        missing = [tool for tool in ("unshare", "nsenter") if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"a small real filesystem needs {' and '.join(missing)} (util-linux)")
        mount = f"mount -t tmpfs -o size={mib}m,mode=0700 qmk-small-disk {path}"
        argv = [
            "unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
            "sh", "-c", f"{mount} && echo mounted && exec cat",
        ]  # fmt: skip
        self._holder = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_us(),
        )
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != b"mounted":
            why = self._holder.communicate(timeout=30)[1].decode(errors="replace").strip()
            pytest.skip(f"no user and mount namespace for a small real filesystem: {why}")
        #: Runs a command in the namespace that sees the filesystem (prefix its argv).
        self.prefix: tuple[str, ...] = (
            "nsenter", f"--target={self._holder.pid}", "--user", "--mount",
            "--preserve-credentials", "--",
        )  # fmt: skip

    def outside(self, path: Path | None = None) -> Path:
        """``path`` (default: the filesystem's root) as this process reaches it."""
        return Path(f"/proc/{self._holder.pid}/root{(path or self.path).resolve()}")

    def free_bytes(self) -> int:
        """The bytes free on the filesystem, as ``statvfs`` says to an unprivileged user."""
        stats = os.statvfs(self.outside())
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave: int) -> Path:
        """A file that takes the disk's room but ``leave`` bytes (another process's data);
        its path, as this process reaches it."""
        filler = self.outside() / "filler"
        with filler.open("wb") as out:
            os.posix_fallocate(out.fileno(), 0, self.free_bytes() - leave)
        return filler

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """``python -m ARGV...`` in the namespace (e.g. ``qmk audit verify`` of a data
        directory here), its output captured."""
        return subprocess.run(
            [*self.prefix, sys.executable, "-m", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def serve(self, root: Path, **options: Any) -> DoorServer:
        """A :class:`~support.wires.DoorServer` in ``root`` whose data directory is on
        this disk (``options``: its other fields), not started."""
        return DoorServer(root, data=self.path / "data", prefix=self.prefix, **options)

    def close(self) -> None:
        """Unmount it (its namespace ends with the holder)."""
        if self._holder.poll() is None:
            assert self._holder.stdin is not None
            self._holder.stdin.close()
            self._holder.wait(30)
