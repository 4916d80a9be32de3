"""Group commit: the writes of a burst share one SQLite commit and one audit-log write.

Every kernel write (a database row, an audit line) goes into the open transaction and
marks it dirty with :meth:`GroupCommit.dirty`. A syscall that changes state awaits
:meth:`GroupCommit.durable`: an *urgent* commit, run by the committer task at the end of
the current event-loop turn, that carries every other write of that turn along. Writes no
request waits for (a job starting, finishing, timing out) ask for a lazy commit, made
within :data:`GROUP_COMMIT_S` or sooner with the next urgent one, so a stream of job
transitions costs one commit per burst instead of one per transition. The audit lines of
a transaction are written (one ``write``) just before its commit, which stores the chain
head.

The committer (:meth:`GroupCommit.run`) is a task of the kernel's task group; it waits on
events, and its commit window is an :func:`asyncio.timeout` scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

from qmk import aio
from qmk.errors import UnavailableError
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.store import Store

#: Longest a write that no request waits for (a job starting or finishing) stays
#: uncommitted; a request that needs durability commits at once and takes it along.
GROUP_COMMIT_S = 0.002


class GroupCommit:
    """The open transaction of ``store`` and ``audit``, and when it is committed.

    Create it on the event loop's thread; :meth:`run` is the committer task.
    """

    def __init__(self, store: Store, audit: AuditLog) -> None:
        self.store = store
        self.audit = audit
        self._loop = asyncio.get_running_loop()
        #: The requests that wait for the commit that will hold the writes (:meth:`durable`),
        #: one future each: one cancelled meanwhile is its own, never the commit others
        #: wait for (no ``asyncio.shield`` of a shared one: two callbacks and a loop turn
        #: more per request).
        self._waiters: list[asyncio.Future[None]] = []
        self._pending = False  # some write is not committed yet
        self._wanted = asyncio.Event()  # some write waits for a commit
        self._urgent = asyncio.Event()  # a request waits for it: commit this loop turn

    def dirty(self, *, urgent: bool = True) -> None:
        """Ask for a commit of the writes made so far.

        An urgent commit runs at the end of this loop turn; otherwise within
        :data:`GROUP_COMMIT_S`, sooner when an urgent one comes along.
        """
        if not self._pending:
            self._pending = True
            self._wanted.set()
        if urgent:
            self._urgent.set()

    @property
    def pending(self) -> bool:
        """Whether a write made so far is not committed yet (a commit flushes on the
        event loop's thread in one step: no write is ever half committed)."""
        return self._pending

    async def durable(self) -> None:
        """Return once every write made so far is committed (urgently)."""
        self.dirty()
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def commit(self) -> None:
        """Commit now, on the caller's turn (kernel open and close). Raises what it raises."""
        waiters = self._take()
        try:
            self._flush()
        except Exception as exc:
            _tell(waiters, exc)
            raise
        _tell(waiters, None)

    async def run(self) -> None:
        """The committer: wait for a dirty transaction, then for its window, then commit."""
        while True:
            await self._wanted.wait()
            if not self._urgent.is_set():
                try:
                    async with aio.timeout(GROUP_COMMIT_S):
                        await self._urgent.wait()
                except TimeoutError:
                    pass  # the window closed: commit what is there
            waiters = self._take()
            try:
                self._flush()
            except Exception as exc:  # the requests that wait for it get the error
                _tell(waiters, exc)
                continue
            _tell(waiters, None)

    def abort(self, error: BaseException) -> None:
        """Fail the pending commit with ``error`` (the committer is gone: nothing commits)."""
        _tell(self._take(), error)

    def _take(self) -> list[asyncio.Future[None]]:
        """The requests that wait for the commit about to be made (the writes from now on
        wait for the next one)."""
        waiters, self._waiters = self._waiters, []
        self._pending = False
        self._wanted.clear()
        self._urgent.clear()
        return waiters

    def _flush(self) -> None:
        """Write the audit lines, then commit with their head; all or nothing.

        Raises:
            UnavailableError: a write failed (a full disk, say): the audit log is cut back
                and the transaction rolled back, so nothing of it stays, and every request
                that waited for it is refused.
        """
        position = self.audit.position()
        try:
            head = self.audit.flush()
            self.store.commit(head)
        except (OSError, sqlite3.Error) as exc:
            with contextlib.suppress(OSError, sqlite3.Error):
                self.audit.restore(position)
                self.store.rollback()
            raise UnavailableError(
                f"the kernel could not write its data directory ({exc}); nothing of this "
                "request was kept: retry later"
            ) from exc


def _tell(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """Tell the requests that waited for a commit how it went (but those cancelled)."""
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


__all__ = ["GROUP_COMMIT_S", "GroupCommit"]
