"""The group commit on its own: who waits for which commit, and what a failed one tells."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from qmk.errors import UnavailableError
from qmk.kernel.datafiles import AUDIT_FILE, DB_FILE, SECRET_FILE
from qmk.kernel.security.sessions import load_secret
from qmk.kernel.storage.audit import AuditKeys, AuditLog
from qmk.kernel.storage.audit_verify import verify
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.datadir import open_data_dir
from qmk.kernel.storage.store import Store, committed_audit_head


def committed_channels(data_dir: Path) -> list[str]:
    """The channel ids another connection sees committed."""
    db = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT channel_id FROM channels ORDER BY 1")]
    finally:
        db.close()


def channel(channel_id: str) -> dict[str, object]:
    return {
        "channel_id": channel_id,
        "proposer": "alice",
        "peer": "bob",
        "state": "OPEN",
        "fidelity": 0.99,
        "created_at": 1.0,
        "opened_at": 1.0,
        "closed_at": None,
    }


async def with_committer(data_dir: Path, body: object, **options: float) -> None:
    store, audit = Store(data_dir), AuditLog(data_dir, load_secret(data_dir))
    commits = GroupCommit(store, audit, **options)
    committer = asyncio.create_task(commits.run())
    try:
        await body(store, audit, commits)  # type: ignore[operator]
    finally:
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        audit.close()


def test_a_request_returns_once_a_commit_holds_what_was_written_before_it(
    tmp_path: Path,
) -> None:
    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        store.save_channel(channel("ch_1"))
        audit.append("chan", channel_id="ch_1")
        commits.dirty(urgent=False)  # within the window
        assert commits.pending and committed_channels(tmp_path) == []
        await commits.durable()  # at the end of this turn
        assert not commits.pending and committed_channels(tmp_path) == ["ch_1"]
        assert verify(tmp_path).ok

    asyncio.run(with_committer(tmp_path, body))


def test_a_request_cancelled_while_it_waits_leaves_the_commit_to_the_others(
    tmp_path: Path,
) -> None:
    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        store.save_channel(channel("ch_2"))
        first = asyncio.create_task(commits.durable())
        second = asyncio.create_task(commits.durable())
        await asyncio.sleep(0)  # both wait now
        first.cancel()
        await second  # not cancelled with the first
        assert first.cancelled() and committed_channels(tmp_path) == ["ch_2"]

    asyncio.run(with_committer(tmp_path, body))


async def in_company(store: Store, commits: GroupCommit) -> None:
    """Two requests wait for one commit (at the end of this turn: none before them did),
    so the next urgent commit finds company."""
    store.save_channel(channel("ch_0"))
    await asyncio.gather(commits.durable(), commits.durable())


#: A delay no test waits out: what is committed before it, something else committed.
FOREVER_S = 3600.0


def test_requests_in_company_share_one_commit_made_after_the_delay(tmp_path: Path) -> None:
    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        await in_company(store, commits)
        store.save_channel(channel("ch_a"))
        first = asyncio.create_task(commits.durable())
        for _ in range(3):  # turns of the loop: the end of the first's turn has passed
            await asyncio.sleep(0)
        assert not first.done() and committed_channels(tmp_path) == ["ch_0"]
        store.save_channel(channel("ch_b"))
        second = asyncio.create_task(commits.durable())
        await asyncio.sleep(0)
        assert not first.done() and not second.done()
        commits.commit()  # what the delay's end does, done now
        await asyncio.gather(first, second)
        assert committed_channels(tmp_path) == ["ch_0", "ch_a", "ch_b"]
        assert verify(tmp_path).ok

    asyncio.run(with_committer(tmp_path, body, delay_s=FOREVER_S))


def test_a_delayed_commit_is_made_when_its_delay_ends(tmp_path: Path) -> None:
    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        await in_company(store, commits)
        store.save_channel(channel("ch_c"))
        await asyncio.wait_for(commits.durable(), 60)  # 60 s: only a guard against a hang
        assert committed_channels(tmp_path) == ["ch_0", "ch_c"]

    asyncio.run(with_committer(tmp_path, body, delay_s=0.01))


def test_a_request_alone_is_committed_at_the_end_of_its_turn_whatever_the_delay(
    tmp_path: Path,
) -> None:
    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        for number in range(3):  # each commit held one request: no company for the next
            store.save_channel(channel(f"ch_{number}"))
            await asyncio.wait_for(commits.durable(), 60)  # never FOREVER_S
        assert committed_channels(tmp_path) == ["ch_0", "ch_1", "ch_2"]
        await in_company(store, commits)  # then two together: the next one waits
        store.save_channel(channel("ch_d"))
        waiting = asyncio.create_task(commits.durable())
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.done()
        commits.commit()
        await waiting

    asyncio.run(with_committer(tmp_path, body, delay_s=FOREVER_S))


def test_a_request_alone_commits_on_its_own_turn_and_one_in_company_waits_its_turn(
    tmp_path: Path,
) -> None:
    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        await asyncio.sleep(0)  # the committer runs
        store.save_channel(channel("ch_1"))
        audit.append("chan", channel_id="ch_1")
        commits.dirty(urgent=False)  # a lazy write rides along
        assert commits.durable_alone()  # no await: committed before it returns
        assert not commits.pending and committed_channels(tmp_path) == ["ch_1"]
        assert verify(tmp_path).ok
        await in_company(store, commits)
        store.save_channel(channel("ch_e"))
        commits.dirty(urgent=False)
        assert not commits.durable_alone()  # in company: nothing done here
        assert commits.pending and committed_channels(tmp_path) == ["ch_0", "ch_1"]
        waiting = asyncio.create_task(commits.durable())
        await asyncio.sleep(0)
        assert not commits.durable_alone()  # another request waits for the commit
        commits.commit()
        await waiting
        assert committed_channels(tmp_path) == ["ch_0", "ch_1", "ch_e"]

    asyncio.run(with_committer(tmp_path, body, delay_s=FOREVER_S))


def test_audit_lines_alone_are_answered_at_their_write_and_their_head_follows(
    tmp_path: Path,
) -> None:
    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        await asyncio.sleep(0)  # the committer runs
        audit.append("kernel", action="open")
        commits.commit()  # a head stored, as a kernel's start stores one
        audit.append("cap", where="negotiate", tenant="alice", decision="grant")
        assert commits.durable_alone()
        lines = (tmp_path / "audit.log").read_bytes().splitlines()
        assert len(lines) == 2 and AuditKeys(load_secret(tmp_path)).signed(lines[-1])
        assert head_seq(tmp_path) == 1  # (its head: the next commit's)
        assert commits.pending  # that commit is asked for, on the loop's next turn
        await asyncio.sleep(0)
        assert head_seq(tmp_path) == 2 and verify(tmp_path).ok

    asyncio.run(with_committer(tmp_path, body))


def test_lines_written_alone_survive_a_crash_before_their_head_is_stored(tmp_path: Path) -> None:
    data, crashed = tmp_path / "data", tmp_path / "crashed"

    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        await asyncio.sleep(0)
        audit.append("kernel", action="open")
        commits.commit()
        audit.append("cap", where="negotiate", tenant="alice", decision="grant")
        assert commits.durable_alone()
        # the process dies here, before the loop turns: its files as a kill -9 leaves them
        crashed.mkdir(mode=0o700)
        for name in (DB_FILE, f"{DB_FILE}-wal", AUDIT_FILE, SECRET_FILE):
            shutil.copy2(data / name, crashed / name)

    asyncio.run(with_committer(data, body))
    opened = open_data_dir(crashed)  # what the next start finds
    try:
        assert opened.accepted == [] and opened.repaired_bytes == 0
        assert head_seq(crashed) == 1
        assert opened.checked[0] == 2  # the grant's line kept, past the head
        assert verify(crashed).ok
    finally:
        opened.close()


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_lines_with_other_writes_or_under_synchronous_full_are_committed_whole(
    tmp_path: Path, synchronous: str
) -> None:
    async def main() -> None:
        store = Store(tmp_path, synchronous=synchronous)
        audit = AuditLog(tmp_path, load_secret(tmp_path))
        commits = GroupCommit(store, audit)
        committer = asyncio.create_task(commits.run())
        try:
            await asyncio.sleep(0)
            audit.append("kernel", action="open")
            commits.commit()
            audit.append("chan", channel_id="ch_1")
            if synchronous == "normal":
                store.save_channel(channel("ch_1"))  # a row in the transaction
            assert commits.durable_alone()
            assert not commits.pending and head_seq(tmp_path) == 2
        finally:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
            audit.close()

    asyncio.run(main())


def head_seq(data_dir: Path) -> int:
    """The seq of the audit head the database of ``data_dir`` committed (0: none)."""
    head = committed_audit_head(data_dir)
    return 0 if head is None else head[0]


def test_a_request_alone_without_a_committer_is_left_to_wait(tmp_path: Path) -> None:
    async def main() -> None:
        store, audit = Store(tmp_path), AuditLog(tmp_path, load_secret(tmp_path))
        commits = GroupCommit(store, audit)
        store.save_channel(channel("ch_7"))
        commits.dirty(urgent=False)
        try:
            assert not commits.durable_alone()  # the kernel opening: its commit comes later
            assert commits.pending and committed_channels(tmp_path) == []
        finally:
            audit.close()

    asyncio.run(main())


class BrokenAuditLog(AuditLog):
    """An audit log whose write fails with an error no commit expects (a fault of the
    committer's own, not of the disk)."""

    broken = True

    def flush(self) -> tuple[int, str, int]:
        if self.broken:
            raise ValueError("a fault of the committer's own")
        return super().flush()


def test_a_fault_of_the_committer_in_a_lone_commit_fails_the_request_and_ends_the_committer(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store, audit = Store(tmp_path), BrokenAuditLog(tmp_path, load_secret(tmp_path))
        commits = GroupCommit(store, audit)
        committer = asyncio.create_task(commits.run())
        try:
            await asyncio.sleep(0)  # the committer runs
            store.save_channel(channel("ch_8"))
            commits.dirty(urgent=False)
            with pytest.raises(ValueError, match="committer's own"):
                commits.durable_alone()
            with pytest.raises(ValueError, match="committer's own"):
                await asyncio.wait_for(committer, 60)  # ended, as by a fault in its callback
            assert committed_channels(tmp_path) == []
        finally:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
            audit.broken = False
            audit.close()

    asyncio.run(main())


def test_a_failed_commit_refuses_every_request_that_waited_and_the_next_one_commits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(store: Store, audit: AuditLog, commits: GroupCommit) -> None:
        store.save_channel(channel("ch_3"))
        store.db.execute("PRAGMA query_only=1")  # the commit's writes refused
        waiting = [asyncio.create_task(commits.durable()) for _ in range(3)]
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(outcome, UnavailableError) for outcome in outcomes)
        store.db.execute("PRAGMA query_only=0")
        store.save_channel(channel("ch_4"))
        await commits.durable()
        assert committed_channels(tmp_path) == ["ch_4"]  # the failed one kept nothing

    asyncio.run(with_committer(tmp_path, body))
    assert "never retrieved" not in caplog.text


def test_writes_made_before_the_committer_starts_are_committed_once_it_runs(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store, audit = Store(tmp_path), AuditLog(tmp_path, load_secret(tmp_path))
        commits = GroupCommit(store, audit)
        store.save_channel(channel("ch_5"))
        commits.dirty()  # urgent, with no committer yet: nothing is committed
        await asyncio.sleep(0)
        assert commits.pending and committed_channels(tmp_path) == []
        committer = asyncio.create_task(commits.run())
        try:
            while commits.pending:  # its start asks for the commit; a turn of the loop makes it
                await asyncio.sleep(0)
            assert committed_channels(tmp_path) == ["ch_5"] and verify(tmp_path).ok
        finally:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
            audit.close()

    asyncio.run(main())


def test_a_stopped_committer_commits_nothing_more_until_asked(tmp_path: Path) -> None:
    async def main() -> None:
        store, audit = Store(tmp_path), AuditLog(tmp_path, load_secret(tmp_path))
        commits = GroupCommit(store, audit)
        committer = asyncio.create_task(commits.run())
        await asyncio.sleep(0)
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        store.save_channel(channel("ch_6"))
        commits.dirty()
        for _ in range(3):
            await asyncio.sleep(0)
        assert commits.pending and committed_channels(tmp_path) == []  # the kernel closing
        commits.commit()  # as the kernel's close does
        assert committed_channels(tmp_path) == ["ch_6"]
        audit.close()

    asyncio.run(main())
