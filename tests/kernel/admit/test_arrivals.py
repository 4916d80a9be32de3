"""A tenant's submits go through admission in the order they arrived
(:mod:`qmk.kernel.admit.arrivals`); tenants do not wait for each other."""

from __future__ import annotations

import asyncio

from qmk.kernel.admit.arrivals import Arrivals


def test_a_tenants_later_submit_waits_for_the_earlier_one_and_another_tenants_does_not() -> None:
    async def main() -> tuple[bool, bool, tuple[bool, bool]]:
        arrivals = Arrivals()
        first = arrivals.arrive("alice")
        second, bobs = arrivals.arrive("alice"), arrivals.arrive("bob")
        behind = second.behind, bobs.behind
        waiting = asyncio.ensure_future(second.wait())
        await asyncio.sleep(0)
        still = not waiting.done()
        first.end()
        await waiting
        second.end()
        third = arrivals.arrive("alice")
        return still, not third.behind, behind

    still, free, behind = asyncio.run(main())
    assert still and free
    assert behind == (True, False)


def test_a_submit_cancelled_while_it_waits_lets_the_next_go_only_after_the_one_ahead() -> None:
    async def main() -> list[str]:
        arrivals = Arrivals()
        ended: list[str] = []
        first = arrivals.arrive("alice")
        second = arrivals.arrive("alice")
        third = arrivals.arrive("alice")
        waiting = asyncio.ensure_future(second.wait())
        thirds = asyncio.ensure_future(third.wait())
        await asyncio.sleep(0)
        waiting.cancel()
        second.end()  # cancelled: it ends before the first did
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        ended.append("third waits" if not thirds.done() else "third passed")
        first.end()
        await thirds
        ended.append("third went on")
        return ended

    assert asyncio.run(main()) == ["third waits", "third went on"]
