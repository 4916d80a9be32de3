"""The kernel's data directory: one kernel at a time, and no silent start on damage.

:func:`open_data_dir` runs before the kernel reads anything in the directory:

1. **Lock.** It takes an exclusive ``flock`` on ``DATA_DIR/kernel.lock`` (holding the
   kernel's pid). A second kernel on the same directory is refused with ``QK102
   data-dir-locked``; the lock goes with the process, so a ``kill -9`` leaves none.
2. **A torn audit tail** (the kernel died inside a write of ``audit.log``: a last line
   without its newline, past the chain head the database committed) is cut off; the
   kernel's ``open`` audit line says how many bytes (``repaired``).
3. **Checks.** The database passes SQLite's ``quick_check``. The secret, the database
   and the audit log are all there or all absent (a new directory). The audit log holds
   the chain head the database committed, at the offset and with the hash it recorded,
   and every line after it chains on. A database that records the head without its
   offset is an older kernel's: ``QK105 data-dir-outdated`` until ``qmk admin migrate``
   (which finds the offset) brings it forward.

   Every line after the one the last start's check reached is where that check left it,
   chains on (seq, prev) and carries its HMAC. (That line's seq, hash and offset are in
   the database with their HMAC: :func:`~qmk.kernel.storage.store.verified_audit_head`;
   it is the first line when there is none.) So lines swapped, removed or forged
   anywhere since the last start are seen, and each start reads only what was written
   since (``qmk audit verify`` reads it all).

   Anything else is ``QK103 data-dir-damaged`` naming the problem, and the kernel does
   not start, unless it is told to recover (``qmk serve --recover``). Then it starts, and
   its ``open`` audit line lists the problems (``audit verify`` still reports the break
   where it is). The kernel records the line the check reached (:attr:`DataDir.checked`)
   when it opens.

Files the kernel creates in the directory are mode 0600, the directory and its folders
0700, whatever the umask. Before anything else is read, :func:`lax_paths` looks at what
is there: the directory, its files, the checkpoints and artifacts folders, their jobs'
folders and the files in them. A file that its group or others may use is ``QK121
lax-permissions``. So is a folder that others may use or its group may write into, but
the checkpoints folder, which the kernel itself opens to its workers' group when they
run as another user. Then the kernel does not start, unless told to repair them (``qmk
serve --repair-perms``): then those bits are taken away and the kernel's ``open`` audit
line lists the paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmk.kernel.datafiles import (
    ARTIFACTS,
    AUDIT_FILE,
    CHECKPOINTS,
    DB_FILE,
    LOCK_FILE,
    SECRET_FILE,
)
from qmk.kernel.errors import DataDirError, ExposureError
from qmk.kernel.storage.audit import GENESIS, tail


@dataclass(slots=True, kw_only=True)
class DataDir:
    """An open data directory: its lock, and what the checks repaired or accepted."""

    path: Path
    lock_fd: int
    #: Bytes of a torn audit tail that were cut off (0: none).
    repaired_bytes: int = 0
    #: Problems accepted by ``recover=True`` (empty: none found).
    accepted: list[str] = field(default_factory=list)
    #: Paths whose lax permissions were repaired (``repair_perms=True``).
    repaired_perms: list[str] = field(default_factory=list)
    #: (seq, hash, byte offset) of the audit log's last line when it was checked: where
    #: the next start's check begins (the kernel records it, with its HMAC).
    checked: tuple[int, str, int] = (0, GENESIS, 0)

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self.lock_fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
            os.close(self.lock_fd)
            self.lock_fd = -1

    def open_record(self) -> dict[str, Any]:
        """The fields the kernel's ``open`` audit line adds for what happened here."""
        record: dict[str, Any] = {}
        if self.repaired_bytes:
            record["repaired"] = {"torn_audit_bytes": self.repaired_bytes}
        if self.accepted:
            record["recovered_from"] = list(self.accepted)
        if self.repaired_perms:
            record.setdefault("repaired", {})["permissions"] = list(self.repaired_perms)
        return record


def open_data_dir(
    path: str | os.PathLike[str],
    *,
    recover: bool = False,
    repair_perms: bool = False,
    offset_of: Callable[[Path, int], int] | None = None,
) -> DataDir:
    """Lock ``path`` (created if missing), check its permissions (repaired with
    ``repair_perms``), repair a torn audit tail, check the rest.

    ``offset_of(audit_log, seq)`` finds the byte offset of the chain head's line where
    the database does not record it: ``qmk admin migrate`` passes one, the kernel none.

    Raises:
        DataDirError: ``data-dir-locked``, ``data-dir-damaged`` (unless ``recover``),
            ``data-dir-unusable``, or ``data-dir-outdated`` (a head without its offset,
            and no ``offset_of``).
        ExposureError: ``lax-permissions`` (unless ``repair_perms``).
    """
    root = Path(path)
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DataDirError.of("data-dir-unusable", f"{root}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DataDirError.of(
            "data-dir-locked", f"{root} is in use by another kernel (pid {holder})"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    opened = DataDir(path=root, lock_fd=fd)
    try:
        opened.repaired_perms = _check_perms(root, repair_perms)
        problems: list[str] = []
        if any((root / name).exists() for name in (DB_FILE, AUDIT_FILE, SECRET_FILE)):
            from qmk.kernel.storage.reopen import check_left  # an earlier kernel's files

            opened.repaired_bytes, problems = check_left(root, offset_of)
        opened.checked = tail(root / AUDIT_FILE)
    except BaseException:
        opened.close()
        raise
    if problems and not recover:
        opened.close()
        raise DataDirError.of(
            "data-dir-damaged", f"{root}: {'; '.join(problems)}", problems=problems
        )
    opened.accepted = problems
    return opened


def lax_paths(root: Path) -> list[tuple[Path, int, int]]:
    """(path, its mode, the bits too many) of each entry of the data directory ``root``
    (itself, its files, the checkpoints and artifacts folders, their jobs' folders and
    the files in them) whose mode lets other users in (see the module docstring)."""
    found: list[tuple[Path, int, int]] = []

    def look(path: Path, opened_to_group: bool = False) -> bool:
        try:
            info = path.lstat()
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(info.st_mode):
            return False
        mode = stat.S_IMODE(info.st_mode)
        folder = stat.S_ISDIR(info.st_mode)
        extra = mode & ((0o007 if opened_to_group else 0o027) if folder else 0o077)
        if extra:
            found.append((path, mode, extra))
        return stat.S_ISDIR(info.st_mode)

    look(root)
    for name in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", AUDIT_FILE, SECRET_FILE, LOCK_FILE):
        look(root / name)
    for folder, opened in ((root / CHECKPOINTS, True), (root / ARTIFACTS, False)):
        if look(folder, opened_to_group=opened):
            for job in sorted(folder.iterdir()):
                if look(job):
                    for file in sorted(job.iterdir()):
                        look(file)
    return found


def _check_perms(root: Path, repair: bool) -> list[str]:
    """The paths :func:`lax_paths` finds, repaired (``repair``: the extra bits taken
    away); else ``QK121`` naming them.

    Raises:
        ExposureError: ``lax-permissions``.
    """
    lax = lax_paths(root)
    if lax and not repair:
        named = ", ".join(f"{path} (mode {mode:04o})" for path, mode, _ in lax[:5])
        more = f" and {len(lax) - 5} more" if len(lax) > 5 else ""
        raise ExposureError.of(
            "lax-permissions",
            f"{named}{more}: other users may read or change the kernel's files; chmod "
            "them 0600 (folders 0700), or start once with qmk serve --repair-perms",
            paths=[str(path) for path, _, _ in lax],
        )
    for path, mode, extra in lax:
        os.chmod(path, mode & ~extra)
    return [str(path) for path, _, _ in lax]


__all__ = [
    "DataDir",
    "DataDirError",
    "lax_paths",
    "open_data_dir",
]
