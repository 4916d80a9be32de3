"""The kernel database's WAL checkpoints run on a thread of their own, never inside a
commit on the event loop (issue 47: a 10 MB program's commit held the loop 30-50 ms more
while SQLite copied the log back), and the log still stays bounded."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.service import Kernel
from qmk.kernel.storage.store import Store
from qmk.kernel.storage.walcheck import (
    LOG_KEEP_BYTES,
    RESTART_FRAMES,
    WalCheckpoints,
    log_keep_bytes,
)
from support.kernel import BELL, login, run_kernel

PAGE = 4096
TEXT = "x" * (PAGE * 200)  # about 200 pages of the log a row


def wal_database(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x TEXT)")
    db.commit()
    return db


def write_rows(db: sqlite3.Connection, rows: int) -> None:
    for _ in range(rows):
        db.execute("INSERT INTO t (x) VALUES (?)", (TEXT,))
        db.commit()


def test_commits_past_a_thousand_pages_leave_the_log_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    db = wal_database(path)
    checkpoints = WalCheckpoints(db.execute, path)
    try:
        write_rows(db, 10)  # ~2,000 pages: SQLite's own rule would have checkpointed at 1,000
        assert path.stat().st_size < 100 * PAGE  # nothing copied back inside a commit
        assert Path(f"{path}-wal").stat().st_size > 2_000 * PAGE
        assert checkpoints.checkpoints == 0  # never poked: the thread made none either
        assert checkpoints.checkpoint_now(timeout=60)
        assert path.stat().st_size > 2_000 * PAGE  # the thread copied the log back
    finally:
        checkpoints.close()
        db.close()
    assert checkpoints.failed is None


def test_a_log_past_its_bound_is_restarted_and_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    db = wal_database(path)
    checkpoints = WalCheckpoints(db.execute, path, every_s=0.0, restart_frames=1_000)
    try:
        write_rows(db, 30)  # ~6,000 pages, 24 MB of log
        assert Path(f"{path}-wal").stat().st_size > 5_000 * PAGE
        assert checkpoints.checkpoint_now(timeout=60)
        assert checkpoints.restarts == 1
        write_rows(db, 1)  # the next write starts the log again, from its beginning
        assert Path(f"{path}-wal").stat().st_size <= checkpoints.keep_bytes
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 31
    finally:
        checkpoints.close()
        db.close()


def test_a_log_restarted_at_its_bound_keeps_its_file_for_the_frames_that_follow(
    tmp_path: Path,
) -> None:
    # a bound whose log (about 21 MB) is past the 16 MiB a restarted log was trimmed to:
    # trimmed, the frames after the restart grew the file again past its end, each write
    # allocating the OS's pages and blocks anew
    path = tmp_path / "k.db"
    db = wal_database(path)
    checkpoints = WalCheckpoints(db.execute, path, every_s=0.0, restart_frames=5_000)
    try:
        write_rows(db, 26)  # ~5,200 pages
        reached = Path(f"{path}-wal").stat().st_size
        assert reached > 16 * 2**20
        assert checkpoints.checkpoint_now(timeout=60)
        assert checkpoints.restarts == 1
        write_rows(db, 1)  # the log starts again from its beginning, over the file it has
        assert Path(f"{path}-wal").stat().st_size == reached
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 27
    finally:
        checkpoints.close()
        db.close()


def test_the_log_kept_holds_the_log_at_its_restart_bound_and_the_commits_after_it() -> None:
    frame = 24 + PAGE
    at_bound = 32 + RESTART_FRAMES * frame  # the log's header, then its frames
    # committed until a checkpoint (one a second) finds the log past its bound: at ~3,000
    # frames a second, what a stream of small jobs makes here, with room to spare
    after = RESTART_FRAMES * frame
    assert LOG_KEEP_BYTES == log_keep_bytes(RESTART_FRAMES) >= at_bound + after


def test_the_commits_of_a_second_are_copied_back_by_one_checkpoint(tmp_path: Path) -> None:
    # each checkpoint copies the pages the commits since the last one wrote, each page
    # once however many of them wrote it (an index's last leaf, the audit head's page)
    # and syncs the log and the database: one a second (CHECKPOINT_EVERY_S) where there
    # were four
    path = tmp_path / "k.db"
    db = wal_database(path)
    checkpoints = WalCheckpoints(db.execute, path)
    try:
        end = time.monotonic() + 0.5  # commits for half an interval
        rows = 0
        while time.monotonic() < end:
            db.execute("INSERT INTO t (x) VALUES ('a')")
            db.commit()
            checkpoints.poke()
            rows += 1
    finally:
        checkpoints.close()
    assert checkpoints.checkpoints <= 1  # the first poke's; the next waits out the interval
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == rows
    db.close()


def test_a_thread_that_cannot_open_the_database_says_so_and_stops(tmp_path: Path) -> None:
    db = wal_database(tmp_path / "k.db")
    checkpoints = WalCheckpoints(db.execute, tmp_path / "missing" / "k.db")
    try:
        assert not checkpoints.checkpoint_now(timeout=60)  # it ended: no checkpoint comes
    finally:
        checkpoints.close()
        db.close()
    assert isinstance(checkpoints.failed, sqlite3.OperationalError)


def test_a_store_falls_back_to_sqlites_checkpoints_once_its_thread_stopped(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "data", checkpoints_apart=True)
    try:
        auto = store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert auto == 0
        thread = store.checkpoints
        assert thread is not None
        thread.close()  # as if its thread had stopped on an error
        thread.failed = sqlite3.OperationalError("disk I/O error")
        store.commit()
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        store.close()


def test_only_the_kernel_store_moves_its_checkpoints_off_the_committing_thread(
    tmp_path: Path,
) -> None:
    reader = Store(tmp_path / "reader")
    try:  # a command's store (qmk audit replay, migrate) keeps SQLite's own
        assert reader.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        reader.close()

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert kernel.store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        checkpoints = kernel.store.checkpoints
        assert checkpoints is not None and checkpoints.checkpoint_now(timeout=60)

    run_kernel(tmp_path, body)
    # closed: the log is checkpointed and the database whole for the next reader
    db = sqlite3.connect(f"file:{tmp_path / 'data' / DB_FILE}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT state FROM jobs").fetchall() == [("COMPLETED",)]
    finally:
        db.close()
