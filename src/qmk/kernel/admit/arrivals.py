"""A tenant's submits reach the queue in the order they arrived.

A submit may wait in admission: for the planner process (a new program's plan), for a
thread (a big program's reading). Without a rule, a later submit of the same tenant that
waits for nothing (a program admitted before) would pass it and take its place in the
queue, its ``seq``, its audit line and, for an ``idempotency_key`` used twice, the
first one's job. So each submit takes a :class:`Turn` as it arrives, before its first
wait. It goes through admission once every earlier submit of its tenant has been
queued or refused, and ends its turn as its job is queued (or it is refused). Submits
read together (one chunk of a connection, one loop turn) then keep the rows, replies
and audit lines of the same submits sent one at a time
(``tests/kernel/syscalls/test_submits_together.py``). Tenants do not wait for each
other. A submit that arrives behind none waits for nothing: its turn is one future.

>>> import asyncio
>>> async def two():
...     arrivals = Arrivals()
...     first, second = arrivals.arrive("alice"), arrivals.arrive("alice")
...     other = arrivals.arrive("bob")
...     behind = (first.behind, second.behind, other.behind)
...     first.end()
...     await second.wait()
...     return behind
>>> asyncio.run(two())
(False, True, False)
"""

from __future__ import annotations

import asyncio


class Turn:
    """One submit's place among its tenant's (:meth:`Arrivals.arrive`)."""

    __slots__ = ("_ahead", "_done")

    def __init__(self, ahead: asyncio.Future[None] | None, done: asyncio.Future[None]) -> None:
        self._ahead = ahead
        self._done = done

    @property
    def behind(self) -> bool:
        """An earlier submit of the tenant is not queued or refused yet."""
        return self._ahead is not None and not self._ahead.done()

    async def wait(self) -> None:
        """Until every earlier submit of the tenant has been queued or refused.
        Cancelling this wait leaves the earlier submits as they are."""
        if self._ahead is not None and not self._ahead.done():
            await asyncio.wait([self._ahead])

    def end(self) -> None:
        """This submit is queued or refused (idempotent). The next submit of its tenant
        goes on, in a later step of the loop: what this one does before its next wait
        (queueing its job) comes first. A submit that ends before the one ahead of it
        (cancelled while it waited) hands its turn on when that one ends."""
        done = self._done
        if done.done():
            return
        ahead = self._ahead
        if ahead is None or ahead.done():
            done.set_result(None)
        else:
            ahead.add_done_callback(lambda _: _settle(done))


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


class Arrivals:
    """The last submit of each tenant, as it arrived: the one a new submit waits for."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}

    def arrive(self, tenant: str) -> Turn:
        """A turn for a submit of ``tenant`` arriving now, behind the tenant's last one
        (call it on the loop, before the submit's first wait)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turn = Turn(self._last.get(tenant), done)
        self._last[tenant] = done
        return turn
