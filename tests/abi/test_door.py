"""The door (qmk.abi.door) on a real kernel, in-process: logins limited per peer before
any key is checked, a tenant's audit-writing calls within their rate, the session
checked before a program is read, and the bounds it keeps for every wire (connections,
streams, answers held whole). Time is a clock the tests move: nothing waits for it.

The same guards, seen through every wire on a real ``qmk serve``, are the door
conformance suite (tests/e2e/test_door_conformance.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from qmk.abi.door import (
    AUDITED,
    REFUSED_LINGER_MAX,
    SMALL,
    Connections,
    Door,
    HeldAnswers,
    LoopClock,
    ProgramText,
    StreamCaps,
)
from qmk.abi.door.answers import HeapTrim
from qmk.abi.door.programs import read
from qmk.abi.limits import ServerConfig
from qmk.abi.methods import METHODS
from qmk.errors import AuthError, NotFoundError, QuotaError, SessionError, UnavailableError
from qmk.frontends.text import lower_text
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from support.kernel import KEYS, make_config, run_kernel

BAD_QASM = "OPENQASM 3.0;\n}{"


def door_of(kernel: Kernel, clock: ManualClock, **limits: Any) -> Door:
    """The door ``qmk serve`` puts before ``kernel``, with ``limits`` of its [server] table."""
    config = ServerConfig(tcp=("127.0.0.1", 0), **limits)
    return Door(kernel, config, probe=KernelObserver(kernel), clock=clock)


def login(tenant: str, key: str | None = None) -> dict[str, Any]:
    return {"tenant": tenant, "key": key or KEYS[tenant], "requested": ["CAP_ALLOC"]}


def test_every_audited_call_is_a_syscall_and_submits_are_left_to_admission():
    assert AUDITED.issubset(METHODS)
    assert "q_submit" not in AUDITED


def test_a_peer_past_its_failed_logins_is_refused_before_its_key_is_checked(tmp_path: Path):
    clock = ManualClock(start=100.0)

    async def body(kernel: Kernel) -> None:
        door = door_of(kernel, clock, failed_logins_per_peer=3, failed_login_rate_per_peer=0.5)
        guesser = door.visitor("test", "ip 10.0.0.66")
        for _ in range(3):
            with pytest.raises(AuthError):
                await door.call(guesser, "q_negotiate_caps", login("alice", "guess"))
        with pytest.raises(QuotaError) as refused:  # even the right key: it is not looked at
            await door.call(guesser, "q_negotiate_caps", login("alice"))
        details = refused.value.details
        assert details["reason"] == "too-many-failed-logins" and details["limit"] == 3
        assert details["retry_after_s"] == pytest.approx(2.0)
        assert not guesser.signed_in
        other = door.visitor("test", "ip 10.0.0.7")  # another peer is not held back
        assert (await door.call(other, "q_negotiate_caps", login("alice"))).tenant == "alice"
        assert other.signed_in
        clock.advance(2.0)  # one more try is due
        assert (await door.call(guesser, "q_negotiate_caps", login("alice"))).tenant
        # a success gives its try back: the peer still has one
        with pytest.raises(AuthError):
            await door.call(guesser, "q_negotiate_caps", login("alice", "guess"))
        with pytest.raises(QuotaError):
            await door.call(guesser, "q_negotiate_caps", login("alice", "guess"))

    run_kernel(tmp_path, body, workers=1, config=make_config())


def test_a_peers_wrong_keys_for_one_tenant_do_not_hold_back_its_login_as_another(
    tmp_path: Path,
):
    clock = ManualClock(start=100.0)

    async def body(kernel: Kernel) -> None:
        door = door_of(kernel, clock, failed_logins_per_peer=3, failed_login_rate_per_peer=0.5)
        gateway = door.visitor("jsonrpc", "pid 4242")  # one peer for all its clients
        for _ in range(3):
            with pytest.raises(AuthError):
                await door.call(gateway, "q_negotiate_caps", login("alice", "guess"))
        with pytest.raises(QuotaError) as refused:  # alice's logins are held back
            await door.call(gateway, "q_negotiate_caps", login("alice"))
        assert "as 'alice'" in refused.value.message
        assert (await door.call(gateway, "q_negotiate_caps", login("bob"))).tenant == "bob"
        long_name = "x" * 5000  # a name of any length is one bucket of its own
        for _ in range(3):
            with pytest.raises(AuthError):
                await door.call(gateway, "q_negotiate_caps", login(long_name, "guess"))
        with pytest.raises(QuotaError) as refused:
            await door.call(gateway, "q_negotiate_caps", login(long_name, "guess"))
        assert len(refused.value.message) < 400
        assert (await door.call(gateway, "q_negotiate_caps", login("bob"))).tenant == "bob"

    run_kernel(tmp_path, body, workers=1, config=make_config())


def test_a_tenants_audit_writing_calls_past_its_rate_say_when_to_retry(tmp_path: Path):
    clock = ManualClock(start=100.0)

    async def body(kernel: Kernel) -> None:
        door = door_of(kernel, clock, audit_burst_per_tenant=3, audit_rate_per_tenant=2.0)
        visitor = door.visitor("test", "ip 10.0.0.1")
        sid = (await door.call(visitor, "q_negotiate_caps", login("alice"))).session_id
        await door.call(visitor, "q_negotiate_caps", login("alice"))
        with pytest.raises(NotFoundError):  # refused by the kernel, but it counts
            await door.call(visitor, "q_cancel", {"session_id": sid, "job_id": "job_x"})
        for call, params in (
            ("q_cancel", {"session_id": sid, "job_id": "job_x"}),
            ("q_negotiate_caps", login("alice")),
        ):
            with pytest.raises(QuotaError) as refused:
                await door.call(visitor, call, params)
            assert refused.value.details["reason"] == "audit-rate"
            assert refused.value.details["retry_after_s"] == pytest.approx(0.5)
        # a call that writes no audit line, and another tenant, are not held back
        assert (await door.call(visitor, "q_resource_query", {"session_id": sid})).tenant
        assert (await door.call(visitor, "q_negotiate_caps", login("bob"))).tenant == "bob"
        # a failed login spends none of the tenant's rate (only a granted session writes)
        clock.advance(0.5)
        for _ in range(3):
            with pytest.raises(AuthError):
                await door.call(visitor, "q_negotiate_caps", login("alice", "guess"))
        assert (await door.call(visitor, "q_negotiate_caps", login("alice"))).tenant

    run_kernel(tmp_path, body, workers=1, config=make_config())


def test_a_bad_session_is_refused_before_its_program_is_read(tmp_path: Path):
    clock = ManualClock(start=100.0)

    async def body(kernel: Kernel) -> None:
        door = door_of(kernel, clock)
        visitor = door.visitor("test", "ip 10.0.0.1")
        submit = {"session_id": "junk", "graph": {}, "shots": 10}
        with pytest.raises(SessionError):  # read first, it would be the front-end's QL error
            await door.call(visitor, "q_submit", submit, program=ProgramText(BAD_QASM, "qasm"))
        assert not visitor.signed_in
        sid = (await door.call(visitor, "q_negotiate_caps", login("alice"))).session_id
        with pytest.raises(Exception) as lowered:
            await door.call(
                visitor,
                "q_submit",
                {**submit, "session_id": sid},
                program=ProgramText(BAD_QASM, "qasm"),
            )
        assert lowered.value.code.startswith("QL")  # type: ignore[attr-defined]

    run_kernel(tmp_path, body, workers=1, config=make_config())


def test_every_syscall_checks_its_session_before_its_params_so_the_door_may_leave_it_that(
    tmp_path: Path,
):
    # a signed-in visitor's plain call goes straight to the syscall (Door.call): its
    # session is checked there alone, so it must be checked before anything else
    async def body(kernel: Kernel) -> None:
        door = door_of(kernel, ManualClock(start=100.0))
        visitor = door.visitor("test", "ip 10.0.0.3")
        await door.call(visitor, "q_negotiate_caps", login("alice"))
        assert visitor.signed_in
        for name, spec in METHODS.items():
            if not spec.needs_session or name in AUDITED:
                continue
            params = {p.name: object() for p in spec.params if p.name != "session_id"}
            with pytest.raises(SessionError):  # not a TypeError or InvalidArgument of a param
                await door.call(visitor, name, {"session_id": "junk", **params})

    run_kernel(tmp_path, body, workers=1, config=make_config())


def test_program_text_is_read_without_ever_holding_its_whole_graph_json():
    """A lowered program's JSON is written and freed a piece of nodes at a time: whole,
    a 100,000-node program's is 400,000 objects that the program thread frees in one
    call (20 ms with the interpreter held, the event loop waiting). Counted in bytes:
    reading costs little more than lowering, not twice it."""
    text = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\n' + "x q[0];\n" * 20_000
    program = ProgramText(text, "qasm")
    read(program, max_nodes=30_000, max_depth=64)  # imports and caches made beforehand
    tracemalloc.start()
    try:
        lowered = lower_text(text, "qasm", "program", max_nodes=30_000)
        lowering = tracemalloc.get_traced_memory()[1]
        del lowered
        tracemalloc.reset_peak()
        graph = read(program, max_nodes=30_000, max_depth=64)
        reading = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert graph.nodes == 20_002  # the qubit's alloc and free, and the 20,000 x
    assert reading < 1.5 * lowering, (reading, lowering)


def test_a_stim_repeat_past_the_graph_cap_is_read_folded_for_the_stim_target(tmp_path: Path):
    # unrolled, 5000 turns of two instructions are past a graph cap of 1000 (QL110
    # before); the stim target reads them folded: 5 rows, verified, and the job runs
    text = "REPEAT 5000 {\n  H 0\n  M 0\n}\n"
    clock = ManualClock(start=100.0)

    async def body(kernel: Kernel) -> Any:
        door = door_of(kernel, clock)
        visitor = door.visitor("test", "ip 10.0.0.1")
        sid = (await door.call(visitor, "q_negotiate_caps", login("alice"))).session_id
        submit = {"session_id": sid, "graph": {}, "shots": 2, "seed": 7, "target": "stim"}
        accepted = await door.call(visitor, "q_submit", submit, program=ProgramText(text, "stim"))
        return await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)

    assert read(ProgramText(text, "stim"), max_nodes=1000, max_depth=64, target="stim") == {
        "stim": text
    }
    done = run_kernel(tmp_path, body, workers=1, config=make_config(max_graph_nodes=1000))
    assert done.state == "COMPLETED", done.error
    assert sum(done.result["counts"].values()) == 2


def test_stream_caps_count_every_wires_streams_of_a_session_and_a_tenant():
    caps = StreamCaps(per_session=2, per_tenant=3)
    caps.take("alice", "s1")
    caps.take("alice", "s1")
    with pytest.raises(QuotaError) as session_full:
        caps.take("alice", "s1")
    assert session_full.value.details == {
        "reason": "too-many-streams",
        "scope": "session",
        "limit": 2,
    }
    caps.take("alice", "s2")
    with pytest.raises(QuotaError) as tenant_full:
        caps.take("alice", "s3")
    assert tenant_full.value.details["scope"] == "tenant"
    caps.take("bob", "s4")  # another tenant's own count
    caps.give("alice", "s1")
    caps.take("alice", "s3")
    assert caps.held("alice") == 3


def test_answers_held_whole_wait_in_turn_within_their_bound_and_a_cancelled_wait_holds_none():
    async def main() -> None:
        held = HeldAnswers(4 * SMALL)
        small = await held.hold(SMALL)  # small answers are never counted
        assert held.held == 0
        first = await held.hold(3 * SMALL)
        second = asyncio.ensure_future(held.hold(2 * SMALL))
        third = asyncio.ensure_future(held.hold(SMALL + 1))
        gone = asyncio.ensure_future(held.hold(2 * SMALL))
        await asyncio.sleep(0)
        assert not (second.done() or third.done() or gone.done())
        gone.cancel()
        first.release()
        granted = await second
        await asyncio.sleep(0)
        assert third.done() and held.held == 3 * SMALL + 1  # in turn: second, then third
        granted.release()
        (await third).release()
        small.release()
        assert held.held == 0
        huge = await held.hold(10 * SMALL)  # bigger than the bound: alone
        waiting = asyncio.ensure_future(held.hold(2 * SMALL))
        await asyncio.sleep(0)
        assert not waiting.done()
        huge.release()
        (await waiting).release()
        assert held.held == 0

    asyncio.run(main())


def test_a_refusal_past_the_lingering_room_cuts_the_oldest_short_and_lingers_itself():
    class Clock:
        def now(self) -> float:
            return 0.0

    connections = Connections(ServerConfig(tcp=("127.0.0.1", 0)), Clock())  # type: ignore[arg-type]
    cut: list[int] = []
    cuts = [lambda n=n: cut.append(n) for n in range(REFUSED_LINGER_MAX + 2)]
    for each in cuts[:REFUSED_LINGER_MAX]:
        connections.linger(each)
    assert connections.lingering == REFUSED_LINGER_MAX and not cut
    connections.linger(cuts[REFUSED_LINGER_MAX])  # the room is full: the oldest ends now
    assert cut == [0] and connections.lingering == REFUSED_LINGER_MAX
    connections.lingered(cuts[0])  # its close, once its connection sees the cut: counted out
    assert connections.lingering == REFUSED_LINGER_MAX
    connections.lingered(cuts[5])  # one ends of itself: room for the next without a cut
    connections.linger(cuts[REFUSED_LINGER_MAX + 1])
    assert cut == [0] and connections.lingering == REFUSED_LINGER_MAX


def test_the_heap_is_trimmed_in_a_thread_of_its_own_while_the_loop_answers():
    # malloc_trim walks the whole heap: on the loop it held every wire 100 ms and more
    # after a flood of non-readers of a big result (bench nonreading-result-http)
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        entered, release, where = asyncio.Event(), threading.Event(), []

        def trim(pad: int) -> int:
            where.append(threading.get_ident())
            loop.call_soon_threadsafe(entered.set)
            assert release.wait(30), "the loop never went on while the heap was trimmed"
            return 1

        HeapTrim(delay_s=0.0, trim=trim).soon()
        await asyncio.wait_for(entered.wait(), 30)  # the loop goes on while it trims
        release.set()
        return where

    where = asyncio.run(main())
    assert len(where) == 1 and where[0] != threading.get_ident()


def connection(door: Door, peer: str, expired: list[str]) -> Any:
    """A visitor of a connection (its guard started, as every wire's is)."""
    visitor = door.visitor("test", peer)
    guard = door.guard(
        visitor, "test", expire=lambda error, answered: expired.append(error.details["reason"])
    )
    guard.start(None)
    return visitor, guard


def test_a_tenant_past_its_connection_cap_is_refused_coded_while_others_sign_in(tmp_path: Path):
    clock = ManualClock(start=100.0)

    async def body(kernel: Kernel) -> None:
        door = door_of(kernel, clock, max_connections_per_tenant=2, audit_burst_per_tenant=50)
        expired: list[str] = []
        (a1, g1), (a2, _), (a3, _) = (connection(door, f"pid {n}", expired) for n in (1, 2, 3))
        session = (await door.call(a1, "q_negotiate_caps", login("alice"))).session_id
        await door.call(a2, "q_resource_query", {"session_id": session})  # a session signs in
        with pytest.raises(UnavailableError) as refused:
            await door.call(a3, "q_negotiate_caps", login("alice"))
        assert refused.value.code == "QS1011"
        assert refused.value.details == {"reason": "too-many-connections-per-tenant", "limit": 2}
        with pytest.raises(UnavailableError):  # nor by a session it has
            await door.call(a3, "q_resource_query", {"session_id": session})
        assert not a3.signed_in and door.connections.of_tenant("alice") == 2
        bob, _ = connection(door, "pid 4", expired)
        assert (await door.call(bob, "q_negotiate_caps", login("bob"))).tenant == "bob"
        g1.close()  # one of alice's closes: its place is hers again
        assert (await door.call(a3, "q_negotiate_caps", login("alice"))).tenant == "alice"
        assert door.connections.of_tenant("alice") == 2 and not expired
        # a failed login gives back the place it held while its key was checked
        a4, _ = connection(door, "pid 5", expired)
        with pytest.raises(AuthError):
            await door.call(a4, "q_negotiate_caps", login("carol", "guess"))
        assert door.connections.of_tenant("carol") == 0

    run_kernel(tmp_path, body, workers=1, config=make_config())


def test_a_signed_in_connection_idle_past_its_expiry_is_closed_coded_and_a_call_renews_it(
    tmp_path: Path,
):
    clock = ManualClock(start=100.0)

    async def body(kernel: Kernel) -> None:
        door = door_of(kernel, clock, idle_timeout_s=30.0)
        expired: list[str] = []
        visitor, guard = connection(door, "pid 1", expired)
        session = (await door.call(visitor, "q_negotiate_caps", login("alice"))).session_id
        clock.advance(20.0)
        await asyncio.sleep(0)
        await door.call(visitor, "q_resource_query", {"session_id": session})
        clock.advance(20.0)  # 40 s since sign-in, 20 s since its last call
        await asyncio.sleep(0)
        assert expired == []
        clock.advance(10.0)  # 30 s since its last call
        await asyncio.sleep(0)
        assert expired == ["idle-timeout"]
        assert door.connections.of_tenant("alice") == 1  # until the wire closes it
        guard.close()
        assert door.connections.of_tenant("alice") == 0

    run_kernel(tmp_path, body, workers=1, config=make_config())


class _CountingClock(ManualClock):
    """A manual clock that counts the timers asked of it."""

    def __init__(self, start: float) -> None:
        super().__init__(start=start)
        self.timers = 0

    def call_at(self, when: float, callback: Any) -> Any:
        self.timers += 1
        return super().call_at(when, callback)


@pytest.mark.parametrize(("auth_timeout_s", "new_timers"), [(10.0, 0), (60.0, 1)])
def test_a_sign_in_sets_no_timer_of_its_own_unless_its_deadline_comes_after_the_idle_expiry(
    tmp_path: Path, auth_timeout_s: float, new_timers: int
):
    clock = _CountingClock(start=100.0)

    async def body(kernel: Kernel) -> None:
        door = door_of(kernel, clock, auth_timeout_s=auth_timeout_s, idle_timeout_s=30.0)
        expired: list[str] = []
        visitor, _ = connection(door, "pid 1", expired)
        before = clock.timers
        await door.call(visitor, "q_negotiate_caps", login("alice"))
        assert clock.timers - before == new_timers
        clock.advance(29.0)  # the deadline's timer (at 10 s) looked, and set the expiry's
        await asyncio.sleep(0)
        assert expired == []
        clock.advance(1.0)
        await asyncio.sleep(0)
        assert expired == ["idle-timeout"]

    run_kernel(tmp_path, body, workers=1, config=make_config())


class _StoppedClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock stands at ``at`` (its coroutines here set no timer)."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def time(self) -> float:
        return self.at


def test_the_loop_clock_reads_the_running_loop_and_the_next_one_once_that_is_closed() -> None:
    clock = LoopClock()

    async def read() -> float:
        return clock.now()

    for at in (1e6, 2e6):
        loop = _StoppedClockLoop(at)
        try:
            assert [loop.run_until_complete(read()) for _ in range(2)] == [at, at]
        finally:
            loop.close()
    with pytest.raises(RuntimeError):  # no running loop: none read
        LoopClock().now()


def test_the_loop_clock_on_asyncios_own_loop_reads_the_monotonic_clock_in_one_call() -> None:
    clock = LoopClock()

    async def read() -> float:
        return clock.now()

    before = time.monotonic()
    read_at = asyncio.run(read())
    assert before <= read_at <= time.monotonic()
    assert clock.now is time.monotonic  # from then on: one call a reading, no loop asked
