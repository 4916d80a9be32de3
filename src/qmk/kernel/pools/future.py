"""The future of a pool's task: a :class:`concurrent.futures.Future` whose lock is its
own condition.

A :class:`~concurrent.futures.Future` enters its ``threading.Condition`` at each look
and change of its state (four to five times in a task's life: running, a done-callback
added, the result set, the result read) and notifies it at the end; each entry is a
Python call of the condition's, around its lock's. :class:`TaskFuture` holds a
:class:`LockCondition` there instead: a reentrant lock (the C one) that is its own
condition, entered and left without a Python frame, with ``threading.Condition``'s own
``wait`` and ``notify`` over it, so a thread that waits for the result (``result(timeout)``,
``concurrent.futures.wait``, ``as_completed``) waits and wakes as it would. Its result is
set and read as the base class does it, less the Python calls that find nothing to do (a
notice to no waiting thread; the lock and a second call to read a result already set,
which never changes). A task's future costs far fewer instructions than a plain one
over the life a kernel job's run has (``docs/kernel.md`` has the count).

>>> import threading
>>> future = TaskFuture()
>>> future.set_running_or_notify_cancel()
True
>>> threading.Timer(0.01, future.set_result, (42,)).start()
>>> future.result(timeout=30)
42
"""

from __future__ import annotations

import _thread
import collections
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import FINISHED, LOGGER, PENDING, RUNNING
from typing import Any


class LockCondition(_thread.RLock):  # type: ignore[misc]  # final in typeshed, not at run time
    """A reentrant lock that is its own condition variable: ``with`` enters the lock
    (no Python frame), ``wait``/``notify`` are ``threading.Condition``'s over it."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: collections.deque[Any] = collections.deque()

    wait = threading.Condition.wait
    wait_for = threading.Condition.wait_for
    notify = threading.Condition.notify

    def notify_all(self) -> None:
        """Wake every thread waiting (none waits, most of the time: nothing to do)."""
        if self._waiters:
            threading.Condition.notify(self, len(self._waiters))  # type: ignore[arg-type]


class TaskFuture(Future[Any]):
    """A :class:`~concurrent.futures.Future` over a :class:`LockCondition` (see the
    module docstring); every method is the base class's, :meth:`set_result`, :meth:`result`
    and :meth:`_invoke_callbacks` in fewer calls or with less left behind."""

    def __init__(self) -> None:  # Future.__init__'s fields, but the condition
        self._condition = LockCondition()  # type: ignore[assignment]
        self._state = PENDING
        self._result = None
        self._exception = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []

    def set_result(self, result: Any) -> None:
        """:meth:`Future.set_result`: the result set, the waiting threads woken (when
        there are any), then the callbacks called (:meth:`_invoke_callbacks`).

        Raises:
            InvalidStateError: the future is done already (or cancelled).
        """
        with self._condition:
            if self._state not in _SETTABLE:
                raise InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._state = FINISHED
            for waiter in self._waiters:
                waiter.add_result(self)
            if self._condition._waiters:  # type: ignore[attr-defined]
                self._condition.notify_all()
        self._invoke_callbacks()

    def _invoke_callbacks(self) -> None:
        """The done-callbacks called in order (one that raises is logged), as the base
        class calls them, then dropped: a callback that holds the future (a run's holds
        the run's record, which holds its future) would otherwise close a cycle that only
        the garbage collector frees, some ten objects a job for it to walk and free."""
        callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                LOGGER.exception("exception calling callback for %r", self)

    def result(self, timeout: float | None = None) -> Any:
        """:meth:`Future.result`; one that is set already is read without the lock (a
        finished future never changes)."""
        if self._state is FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result
        return super().result(timeout)


#: The states a result may be set in.
_SETTABLE = frozenset({PENDING, RUNNING})


__all__ = ["LockCondition", "TaskFuture"]
