"""Group commit: the writes of a burst share one SQLite commit and one audit-log write.

Every kernel write (a database row, an audit line) goes into the open transaction and
marks it dirty with :meth:`GroupCommit.dirty`. A syscall that changes state awaits
:meth:`GroupCommit.durable`: an *urgent* commit, run by the committer task at the end of
the current event-loop turn, that carries every other write of that turn along. Writes no
request waits for (a job starting, finishing, timing out) ask for a lazy commit, made
within :data:`GROUP_COMMIT_S` or sooner with the next urgent one, so a stream of job
transitions costs one commit per burst instead of one per transition. The audit lines of
a transaction are written (one ``write``) just before its commit, which stores the chain
head; the audit log's listeners hear them after it.

The committer (:meth:`GroupCommit.run`) is a task of the kernel's task group. While it
runs, each commit is a callback of the loop, asked for by the write that needs it: the
end of the turn (:meth:`asyncio.loop.call_soon`) for an urgent one, a timer at the end of
the window (:meth:`~asyncio.loop.call_later`) for a lazy one, or the urgent one that
comes first. A callback costs fewer Python calls a commit than a task woken by events
with a window in an :func:`asyncio.timeout` scope. What a commit's callback cannot tell
the requests (a fault of the committer itself) ends the task, so the kernel's group
stops.

**Commit delay.** Under load, an urgent commit waits :data:`COMMIT_DELAY_S` for the
requests about to come, as PostgreSQL's ``commit_delay`` does when ``commit_siblings``
other transactions are open. When the last commit held the writes of more than one
request, others are about. The end of this turn would commit one request's writes,
where a millisecond later it commits several: each commit's fixed pages, ``pwrite`` s
and loop turns are shared by more jobs (``docs/kernel.md`` has the figures). A request
alone (the last commit held one, or none) is committed at the end of its turn: a lone
client never waits for company that is not coming. The delay bounds what any answer
waits more.

**Lines alone.** A request alone whose writes are audit lines alone (a session's grant)
needs no SQLite commit before its answer. Its lines are written, signed, on its turn: in
the file, they survive ``kill -9`` as a ``synchronous=normal`` commit does, and no later
commit's failure cuts them back (it goes back to where its own write began). The chain
head that covers them is stored by a commit of their own, on the loop's next turn (after
the answer is written, not before it); a crash before it leaves signed lines past the
stored head, which a start keeps (only an unsigned tail is cut) and the audit module
counts as not covered by the head. A store that commits
``synchronous=full``, or a transaction that holds any other write, is committed whole.

A write that must be durable only before some later answer (a submit that waits: its
job's acceptance is answered with the job's end) asks for no commit of its own. It rides
with the next one (:meth:`GroupCommit.after`), which tells it how it went before any
request that waits for that commit resumes, so a failed one is undone on that turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable

from qmk.errors import UnavailableError
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.store import Store

#: Longest a write that no request waits for (a job starting or finishing) stays
#: uncommitted; a request that needs durability commits at once and takes it along.
GROUP_COMMIT_S = 0.002

#: How long an urgent commit waits for other requests' writes while requests come in
#: company (the last commit held more than one): the module docstring's commit delay.
COMMIT_DELAY_S = 0.001


class GroupCommit:
    """The open transaction of ``store`` and ``audit``, and when it is committed.

    Create it on the event loop's thread; :meth:`run` is the committer task.
    """

    def __init__(self, store: Store, audit: AuditLog, *, delay_s: float = COMMIT_DELAY_S) -> None:
        self.store = store
        self.audit = audit
        #: The commit delay (module docstring): 0, none.
        self.delay_s = delay_s
        #: The last commit held more than one request's writes: the next urgent one waits
        #: :attr:`delay_s` for more.
        self._company = False
        #: The number of the open transaction: what is written now is committed once
        #: :meth:`holds` it (the numbers of the commits count up from 1).
        self.number = 1
        #: The number of the last transaction committed (0: none yet).
        self._kept = 0
        self._loop = asyncio.get_running_loop()
        #: The requests that wait for the commit that will hold the writes (:meth:`durable`),
        #: one future each: one cancelled meanwhile is its own, never the commit others
        #: wait for (no ``asyncio.shield`` of a shared one: two callbacks and a loop turn
        #: more per request).
        self._waiters: list[asyncio.Future[None]] = []
        #: Those told of the commit that will hold the writes, at once (:meth:`after`).
        self._riders: list[Callable[[BaseException | None], None]] = []
        self._pending = False  # some write is not committed yet
        self._urgent = False  # a request waits for it: commit this loop turn
        #: The commit asked for at the end of this turn, and the one at the window's end.
        self._now: asyncio.Handle | None = None
        self._due: asyncio.TimerHandle | None = None
        #: While the committer runs: its end (what a commit's callback could not tell).
        self._running: asyncio.Future[None] | None = None

    def dirty(self, *, urgent: bool = True) -> None:
        """Ask for a commit of the writes made so far.

        An urgent commit runs at the end of this loop turn (after :attr:`delay_s` while
        requests come in company: the module docstring); otherwise within
        :data:`GROUP_COMMIT_S`, sooner when an urgent one comes along.
        """
        self._pending = True
        if urgent:
            self._urgent = True
        if self._running is None or self._now is not None:
            return  # no committer yet (its start looks), or a commit this turn already
        if urgent:
            if self._company and self.delay_s > 0:
                self._now = self._loop.call_later(self.delay_s, self._commit)
            else:
                self._now = self._loop.call_soon(self._commit)
        elif self._due is None:
            self._due = self._loop.call_later(GROUP_COMMIT_S, self._commit)

    @property
    def pending(self) -> bool:
        """Whether a write made so far is not committed yet (a commit flushes on the
        event loop's thread in one step: no write is ever half committed)."""
        return self._pending

    def holds(self, number: int) -> bool:
        """Whether the writes of transaction ``number`` (:attr:`number` when they were
        made; 0: none of this kernel's) are committed: a final job whose end is needs no
        commit before its answer, though other writes wait for one.

        >>> import asyncio, tempfile
        >>> from qmk.kernel.security.sessions import load_secret
        >>> async def demo(data):
        ...     store, audit = Store(data), AuditLog(data, load_secret(data))
        ...     commits = GroupCommit(store, audit)
        ...     committer = asyncio.create_task(commits.run())
        ...     mine = commits.number
        ...     before = commits.holds(mine)
        ...     await commits.durable()
        ...     commits.dirty(urgent=False)  # another write, not committed yet
        ...     committer.cancel()
        ...     audit.close()
        ...     return before, commits.holds(mine), commits.holds(commits.number), commits.holds(0)
        >>> with tempfile.TemporaryDirectory() as data:
        ...     asyncio.run(demo(data))
        (False, True, False, True)
        """
        return number <= self._kept

    async def durable(self) -> None:
        """Return once every write made so far is committed (urgently)."""
        self.dirty()
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def durable_alone(self) -> bool:
        """Commit every write made so far now, on the caller's turn, when the request is
        alone: the committer runs, no other request waits for a commit and the last one
        held at most one request's writes. Its commit at the end of the turn would then
        hold its writes alone too; made here, the request answers on this turn, not two
        turns later (the commit's callback, then its own wake-up). Writes that are audit
        lines alone are written, their head left to the next commit (module docstring,
        "Lines alone"). False: nothing done (requests come in company): await
        :meth:`durable`.

        Raises:
            UnavailableError: the commit failed (:meth:`commit`): nothing of it was kept.
        """
        running = self._running
        if running is None or self._company or self._waiters:
            return False
        if self._lines_alone():
            self._write_lines()
            return True
        try:
            self.commit()
        except UnavailableError:
            raise
        except Exception as exc:  # the committer's own fault, as in _commit: it ends with it
            if not running.done():
                running.set_exception(exc)
            raise
        return True

    def _lines_alone(self) -> bool:
        """Whether the writes not yet committed are audit lines alone, kept as a commit
        keeps them by their write (module docstring, "Lines alone"): the store holds no
        write, no rider waits, a commit of this kernel stored a head before, and the store
        commits ``synchronous=normal``."""
        return (
            self._kept > 0
            and not self._riders
            and self.audit.pending
            and self.store.synchronous == "normal"
            and not self.store.written
        )

    def _write_lines(self) -> None:
        """Write the pending audit lines now (signed, one ``write``) and leave their head
        to a commit on the loop's next turn (module docstring, "Lines alone").

        Raises:
            UnavailableError: the write failed: the log is cut back, nothing of it stays.
        """
        position = self.audit.position()
        try:
            self.audit.flush()
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.audit.restore(position)
            raise UnavailableError(
                f"the kernel could not write its data directory ({exc}); nothing of this "
                "request was kept: retry later"
            ) from exc
        self.audit.release()  # kept: no later commit's failure cuts them back
        self.dirty()  # their head: a commit of its own, on the loop's next turn

    def after(self, told: Callable[[BaseException | None], None], *, urgent: bool = False) -> None:
        """Have ``told`` called with how the commit that will hold the writes made so far
        went (None: committed; else its error, all of them rolled back).

        It is called on that commit's turn, before any request that waits for it
        resumes. That commit is asked for (:meth:`dirty`: ``urgent``, at the end of this
        turn, else within the window).

        >>> import asyncio, tempfile
        >>> from qmk.kernel.security.sessions import load_secret
        >>> async def demo(data):
        ...     store, audit = Store(data), AuditLog(data, load_secret(data))
        ...     commits, told = GroupCommit(store, audit), []
        ...     committer = asyncio.create_task(commits.run())
        ...     commits.after(told.append)
        ...     before = list(told)
        ...     await commits.durable()
        ...     committer.cancel()
        ...     audit.close()
        ...     return before, told
        >>> with tempfile.TemporaryDirectory() as data:
        ...     asyncio.run(demo(data))
        ([], [None])
        """
        self._riders.append(told)
        self.dirty(urgent=urgent)

    def commit(self) -> None:
        """Commit now, on the caller's turn (kernel open and close). Raises what it raises."""
        waiters, riders = self._take()
        try:
            self._flush()
        except Exception as exc:
            _tell(waiters, riders, exc)
            raise
        _tell(waiters, riders, None)

    async def run(self) -> None:
        """The committer: until it is cancelled, the commits asked for are made (by the
        loop's callbacks: the module docstring); the writes made before it started are
        committed as they asked."""
        self._running = self._loop.create_future()
        try:
            if self._pending:
                self.dirty(urgent=self._urgent)
            await self._running
        finally:
            self._running = None
            self._cancel_calls()

    def _commit(self) -> None:
        """A commit's callback: commit what is written; the requests that wait for it get
        the error of one that failed."""
        try:
            waiters, riders = self._take()
            try:
                self._flush()
            except Exception as exc:
                _tell(waiters, riders, exc)
                return
            _tell(waiters, riders, None)
        except BaseException as exc:  # the committer's own fault: it ends with it
            running = self._running
            if running is None or running.done():
                raise
            running.set_exception(exc)

    def abort(self, error: BaseException) -> None:
        """Fail the pending commit with ``error`` (the committer is gone: nothing commits)."""
        _tell(*self._take(), error)

    def _take(
        self,
    ) -> tuple[list[asyncio.Future[None]], list[Callable[[BaseException | None], None]]]:
        """The requests that wait for the commit about to be made, and its riders
        (:meth:`after`); the writes from now on wait for the next one."""
        waiters, self._waiters = self._waiters, []
        riders, self._riders = self._riders, []
        self._company = len(waiters) > 1
        self.number += 1
        self._pending = self._urgent = False
        self._cancel_calls()
        return waiters, riders

    def _cancel_calls(self) -> None:
        """The commits asked for are not needed (made now, or no committer any more)."""
        if self._now is not None:
            self._now.cancel()
            self._now = None
        if self._due is not None:
            self._due.cancel()
            self._due = None

    def _flush(self) -> None:
        """Write the audit lines, then commit with their head; all or nothing.

        Raises:
            UnavailableError: a write failed (a full disk, say): the audit log is cut back
                and the transaction rolled back, so nothing of it stays, and every request
                that waited for it is refused.
        """
        position = self.audit.position()
        number = self.number - 1  # the transaction _take closed
        try:
            head = self.audit.flush()
            self.store.commit(head)
            self._kept = number
            self.audit.release()  # the streams hear only what is kept
        except (OSError, sqlite3.Error) as exc:
            with contextlib.suppress(OSError, sqlite3.Error):
                self.audit.restore(position)
                self.store.rollback()
            raise UnavailableError(
                f"the kernel could not write its data directory ({exc}); nothing of this "
                "request was kept: retry later"
            ) from exc


def _tell(
    waiters: list[asyncio.Future[None]],
    riders: list[Callable[[BaseException | None], None]],
    error: BaseException | None,
) -> None:
    """Tell a commit's riders how it went, then the requests that waited for it (but
    those cancelled)."""
    for told in riders:
        told(error)
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


__all__ = ["COMMIT_DELAY_S", "GROUP_COMMIT_S", "GroupCommit"]
