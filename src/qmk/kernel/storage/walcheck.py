"""The kernel database's WAL checkpoints, in a thread of their own, off the event loop.

SQLite in WAL mode appends every commit's pages to the ``-wal`` file. It copies them back
into the database (a *checkpoint*) once the log passes ``wal_autocheckpoint`` pages, by
default inside the commit that passed it: on the thread that committed, which in the
kernel is the event loop's. A checkpoint reads the log, writes the pages in place and
syncs the log and the database (``synchronous=NORMAL``). On the loop, no other tenant is
answered meanwhile: after a big program's commit, and again and again under a stream of
small jobs (``docs/kernel.md`` has the figures).

:class:`WalCheckpoints` turns the automatic checkpoint off on the kernel's connection and
runs it on a connection and a thread of its own, woken by :meth:`WalCheckpoints.poke`
after each commit and at most every :data:`CHECKPOINT_EVERY_S`. Each checkpoint is
``PASSIVE``: it copies what is committed and never blocks the kernel's writes. A passive
checkpoint cannot reset the log while commits keep coming (the kernel appends while it
copies). So once the log holds :data:`RESTART_FRAMES` pages, the thread asks for a
``RESTART`` instead. The frames left are the few committed since the passive copy, and
the kernel's next write waits for them (SQLite's busy handler) before the log starts
again from its beginning. The log's file keeps the size it reached by then
(``journal_size_limit`` is :func:`log_keep_bytes` of the bound, twice it). The log
starting again writes its frames over blocks the file has, in pages the OS has cached.
A file trimmed back further would have each restart's next frames grow it again, each
write past its end allocating and zeroing the OS's pages and blocks and each restart
truncating them (a good part of a commit's CPU under a stream of small jobs). A bigger
file (a single huge transaction's) is still trimmed back to that size. A crash in the
middle of any checkpoint loses nothing: SQLite's recovery reads the log again.

**Within the disk.** The log also keeps to the disk it is on: past a quarter of the room
the disk has above the kernel's reserve (:mod:`qmk.kernel.storage.reserve`; the log's own
bytes counted as room), a checkpoint truncates it (``TRUNCATE``), giving its blocks back. The
thread looks at the log's size every :data:`WATCH_S` between checkpoints, so a flood of commits
on a small disk never grows it past that share by more than a fraction of a second's
commits. On a disk with room for :data:`LOG_KEEP_BYTES` in that share, the log is
restarted and kept as above. A log that took the disk would leave its checkpoints no room
to copy pages back, and the kernel none to write, even after a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: The least time between two checkpoints. Each copies back the pages written since the
#: last, a page once however many commits wrote it (an index's last leaf, the audit
#: head's page, a leaf shared by the jobs that ended meanwhile), and syncs the log and the
#: database. Every second, not more often: each costs the kernel's CPU under a stream of
#: small jobs (``docs/kernel.md``). With ``synchronous=NORMAL`` a commit is
#: synced to the disk (not only handed to the OS) by the checkpoint after it: a power cut
#: may take the last second's commits (a crash or ``kill -9`` of the kernel takes none);
#: ``FULL`` syncs each commit.
CHECKPOINT_EVERY_S = 1.0
#: The log's pages (4 KiB each) past which a checkpoint restarts it (64 MiB).
RESTART_FRAMES = 16_384
#: How often the thread looks at the log's size between checkpoints (seconds): a
#: ``stat`` of the log and a ``statvfs`` of its disk (a few microseconds each).
WATCH_S = 0.05
#: The least bound of the log on a small disk (bytes): below it, checkpoints would come
#: at every few commits for little room.
MIN_LOG_BYTES = 1 * 2**20
#: A page's frame in the log: its 24-byte header, then the page (the kernel's database
#: keeps SQLite's default page size); the log's own header is 32 bytes.
PAGE_BYTES, FRAME_HEADER_BYTES, LOG_HEADER_BYTES = 4096, 24, 32


def log_keep_bytes(restart_frames: int) -> int:
    """The size the log's file is trimmed back to when it restarts (SQLite's
    ``journal_size_limit``): the log at twice ``restart_frames`` pages.

    That leaves room for the commits made after the log passed its bound, until a
    checkpoint (one a second) finds it there and restarts it. So a log restarted at its
    bound is never trimmed (the module docstring). A cap, not a reservation: the file is
    only as big as the log got.

    >>> log_keep_bytes(RESTART_FRAMES) // 2**20  # MiB
    128
    """
    return LOG_HEADER_BYTES + 2 * restart_frames * (FRAME_HEADER_BYTES + PAGE_BYTES)


#: The log file's size it is trimmed back to when it restarts, at :data:`RESTART_FRAMES`.
LOG_KEEP_BYTES = log_keep_bytes(RESTART_FRAMES)


class WalCheckpoints:
    """Checkpoints of the WAL-mode database at ``path`` on their own thread.

    Args:
        execute: runs a statement on the kernel's connection (``connection.execute``):
            its automatic checkpoints are turned off here.
        path: the database file (the thread opens its own connection to it).
        every_s: the least time between two checkpoints.
        restart_frames: the log's pages past which a checkpoint restarts it.
        reserve_bytes: the disk's reserve (:mod:`qmk.kernel.storage.reserve`): the log
            keeps to a quarter of the room above it (the module docstring).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> db = sqlite3.connect(folder / "k.db", check_same_thread=False)
    >>> _ = db.execute("PRAGMA journal_mode=WAL")
    >>> checkpoints = WalCheckpoints(db.execute, folder / "k.db", every_s=0.0)
    >>> _ = db.execute("CREATE TABLE t (x)"); db.commit(); checkpoints.poke()
    >>> checkpoints.close(); db.close()
    >>> checkpoints.checkpoints >= 0 and checkpoints.failed is None
    True
    """

    def __init__(
        self,
        execute: Callable[[str], object],
        path: str | os.PathLike[str],
        *,
        every_s: float = CHECKPOINT_EVERY_S,
        restart_frames: int = RESTART_FRAMES,
        reserve_bytes: int = 0,
    ) -> None:
        execute("PRAGMA wal_autocheckpoint=0")
        #: The size the log's file is trimmed back to when it restarts.
        self.keep_bytes = log_keep_bytes(restart_frames)
        execute(f"PRAGMA journal_size_limit={self.keep_bytes}")
        self._path = os.fspath(path)
        self._wal = self._path + "-wal"
        self._folder = os.path.dirname(self._path) or "."
        self._reserve = reserve_bytes
        self._every_s = every_s
        self._restart_frames = restart_frames
        self._wanted = threading.Event()  # a commit was made since the last checkpoint
        self._stopping = threading.Event()
        self._made = threading.Condition()  # notified as each checkpoint ends
        self._started = 0
        self._ended = False  # the thread returned
        #: Checkpoints made, restarts among them, and truncations (a restart that gave
        #: the log's blocks back to a small disk).
        self.checkpoints = 0
        self.restarts = 0
        self.truncations = 0
        #: Checkpoints that failed (each is tried again after the next commit).
        self.errors = 0
        #: Why the thread could not open the database, if it could not (the store then
        #: turns SQLite's own checkpoints on again).
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="qmk-wal-checkpoints", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """A commit was made: checkpoint soon (within ``every_s`` of the last one)."""
        # set already: the thread has not yet cleared it, and clears it before the
        # checkpoint that then covers this commit (no lock taken at every commit)
        if not self._wanted.is_set():
            self._wanted.set()

    def checkpoint_now(self, timeout: float | None = None) -> bool:
        """Have the thread checkpoint what is committed now, and wait until it did
        (within ``every_s`` of its last checkpoint); False if ``timeout`` passed first or
        the thread stopped."""
        with self._made:
            wanted = self._started + 1  # one that starts after this call
            self._wanted.set()
            return (
                self._made.wait_for(lambda: self.checkpoints >= wanted or self._ended, timeout)
                and self.checkpoints >= wanted
            )

    def close(self) -> None:
        """Stop the thread (after the checkpoint it is making, if any)."""
        self._stopping.set()
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            self._stopped(exc)
            self._end()
            return
        try:
            while True:
                self._wanted.wait()
                if self._stopping.is_set():
                    return
                self._wanted.clear()
                try:
                    self._checkpoint(conn)
                except sqlite3.Error as exc:  # a full disk, say: the log waits for the next
                    self.errors += 1
                    log.warning("a checkpoint of the database failed: %s", exc)
                if self._rest():
                    return
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._end()

    def _rest(self) -> bool:
        """Wait ``every_s`` after a checkpoint, or less when the log passes its bound on
        the disk meanwhile (looked at every :data:`WATCH_S`); True when stopping."""
        waited = 0.0
        while waited < self._every_s:
            step = min(WATCH_S, self._every_s - waited)
            if self._stopping.wait(step):
                return True
            waited += step
            if self._over_bound():
                self._wanted.set()
                return False
        return False

    def _over_bound(self) -> bool:
        bound = self.log_bound()
        return bound is not None and self._log_bytes() > bound

    def _log_bytes(self) -> int:
        """The log file's size (0 where there is none)."""
        try:
            return os.stat(self._wal).st_size
        except OSError:
            return 0

    def log_bound(self) -> int | None:
        """The log's bytes past which a checkpoint gives them back now: a quarter of the
        disk's room above the reserve (the log's own bytes counted as room), at least
        :data:`MIN_LOG_BYTES`. None on a disk whose share holds the log's kept size
        (:attr:`keep_bytes`: restarted at its frames' bound and kept)."""
        try:
            stats = os.statvfs(self._folder)
        except OSError:
            return None
        room = stats.f_bavail * stats.f_frsize + self._log_bytes() - self._reserve
        if room // 4 >= self.keep_bytes:
            return None
        return max(MIN_LOG_BYTES, room // 4)

    def _end(self) -> None:
        with self._made:
            self._ended = True
            self._made.notify_all()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        with self._made:
            self._started += 1
        try:
            _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if self._over_bound():  # a small disk: its blocks back
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                self.truncations += 1
            elif frames >= self._restart_frames:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                self.restarts += 1
        finally:
            with self._made:
                self.checkpoints += 1
                self._made.notify_all()

    def _stopped(self, exc: BaseException) -> None:
        self.failed = exc
        log.error("the database's checkpoint thread could not start: %s", exc)


__all__ = [
    "CHECKPOINT_EVERY_S",
    "LOG_KEEP_BYTES",
    "MIN_LOG_BYTES",
    "RESTART_FRAMES",
    "WATCH_S",
    "WalCheckpoints",
    "log_keep_bytes",
]
