"""The door itself: :class:`Door`, through which every wire calls the kernel, and
:class:`Visitor`, one caller at it (the package docstring tells the whole contract)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from qmk.abi.door.answers import HeldAnswers
from qmk.abi.door.guard import Expire, Guard
from qmk.abi.door.peers import Connections, LoopClock, ServerClock
from qmk.abi.door.programs import GRAPH_PARAM, ProgramText, read
from qmk.abi.door.streams import StreamCaps
from qmk.abi.jsonrpc import THREAD_BYTES
from qmk.abi.limits import ServerConfig
from qmk.errors import AuthError, QMKError, QuotaError, SessionError, UnavailableError
from qmk.qvm.graph import free_value_in_pieces
from qmk.rate import Buckets

T = TypeVar("T")

#: The syscall that opens a session (a login: it needs a key, not a session).
NEGOTIATE = "q_negotiate_caps"
#: The characters of a tenant name a login refusal shows, and a failed-login bucket
#: keeps as they are (a longer name is digested: :func:`login_bucket`).
NAME_SHOWN = 40
#: The syscalls that write audit lines whose rate the door bounds per tenant
#: (``audit_rate_per_tenant``, ``audit_burst_per_tenant``). Submits are not among them:
#: admission bounds those (queued jobs, verification rate, CPU budget), and a job's
#: lines are its own. ``tests/abi/test_door.py`` checks every name against the method
#: table.
AUDITED: frozenset[str] = frozenset(
    {
        NEGOTIATE,
        "q_cancel",
        "q_checkpoint",
        "q_restore",
        "q_replay",
        "q_open_chan",
        "q_close_chan",
        "q_calibrate",
        "q_delegate_caps",
        "q_revoke_delegation",
        "q_assist",
        "q_create_trigger",
        "q_delete_trigger",
    }
)


class DoorProbe(Protocol):
    """What the door reads of the kernel beside its syscalls (the kernel's observer,
    :class:`qmk.kernel.observe.KernelObserver`, has it; so does every
    :class:`qmk.abi.probing.KernelProbe`)."""

    @property
    def max_graph_nodes(self) -> int:
        """The most nodes a submitted graph may have (``kernel.max_graph_nodes``)."""
        ...

    def session_tenant(self, session_id: str) -> str:
        """The tenant of a valid session.

        Raises:
            SessionError, AuthError: the session is unknown, expired or revoked.
        """
        ...

    async def lower(
        self, tenant: str, work: Callable[[], T], *, what: str = "reading program text"
    ) -> tuple[T, float]:
        """``work()`` off the event loop for ``tenant``: its answer and CPU seconds.

        Raises:
            QuotaError: the tenant's CPU budget is spent, before the work (the refusal
                names ``what`` was refused).
        """
        ...

    def charge(self, tenant: str, seconds: float) -> None:
        """Charge ``seconds`` of CPU to ``tenant``'s budget."""
        ...


#: Told of every call through the door: ``(wire, method, seconds)``.
Observer = Callable[[str, str, float], None]
#: Runs a syscall (``await wrap(name, method, params)``): a tracer's span around it.
Wrap = Callable[[str, Callable[..., Awaitable[Any]], dict[str, Any]], Awaitable[Any]]


class Visitor:
    """One caller at the door: a connection of a wire, or an in-process caller.

    Attributes:
        wire: the wire it came by (``jsonrpc``, ``http``, ``grpc``, ...; the label of
            its calls in the metrics).
        peer: who it is (:func:`~qmk.abi.door.peers.peer_of`): its failed logins count
            against that peer.
        signed_in: one of its calls showed a valid session or a good key; until then
            it may send :meth:`Door.size_limit` bytes (``max_line_unauthenticated``).
        connection: it is a connection with a :class:`~qmk.abi.door.guard.Guard` (its
            sign-in counts against its tenant's ``max_connections_per_tenant``).
        tenant: the tenant its connection counts against, once signed in.
        idle_since: when its last call ended (the door's clock).
        inflight: its calls in the door now.
        holding: its answers held whole and not yet sent (:class:`HeldAnswers`).
        on_holding: called when ``holding`` rises from 0 (its connection's watch on
            the answer's progress: a gRPC splice's).
    """

    __slots__ = (
        "_callbacks",
        "connection",
        "holding",
        "idle_since",
        "inflight",
        "on_holding",
        "peer",
        "signed_in",
        "tenant",
        "wire",
    )

    def __init__(self, wire: str, peer: str) -> None:
        self.wire = wire
        self.peer = peer
        self.signed_in = False
        self.connection = False
        self.tenant: str | None = None
        self.idle_since = 0.0
        self.inflight = 0
        self.holding = 0
        self.on_holding: Callable[[], None] | None = None
        self._callbacks: list[Callable[[], None]] = []

    def sign_in(self) -> None:
        """Mark it signed in (the first time: tell those waiting for it)."""
        if self.signed_in:
            return
        self.signed_in = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_sign_in(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once it signs in (at once if it has)."""
        if self.signed_in:
            callback()
        else:
            self._callbacks.append(callback)

    def __repr__(self) -> str:
        state = "signed in" if self.signed_in else "not signed in"
        return f"<Visitor {self.wire} {self.peer} {state}>"


class Door:
    """The one guarded path from every wire to ``kernel`` (see :mod:`qmk.abi.door`).

    Args:
        kernel: the object whose coroutine methods are the syscalls (the kernel).
        config: the ``[server]`` limits.
        probe: what the door reads of the kernel to check sessions and read programs
            first (None: ``kernel`` checks its own sessions, and the door takes no
            program text: a bare JSON-RPC server of tests).
        clock: the clock of its rates (default: the event loop's).

    Attributes:
        connections: every listener's connections, counted together.
        streams: every wire's live event streams, per session and tenant.
        answers: the answers held whole until sent (gRPC's messages).
    """

    def __init__(
        self,
        kernel: object,
        config: ServerConfig,
        *,
        probe: DoorProbe | None = None,
        clock: ServerClock | None = None,
    ) -> None:
        self.kernel = kernel
        self.config = config
        self.probe = probe
        self.clock: ServerClock = clock or LoopClock()
        self.connections = Connections(config, self.clock)
        self.streams = StreamCaps(config.max_streams_per_session, config.max_streams_per_tenant)
        self.answers = HeldAnswers(config.max_held_answer_bytes)
        self._logins = Buckets(
            rate=config.failed_login_rate_per_peer, burst=config.failed_logins_per_peer
        )
        self._audited = Buckets(
            rate=config.audit_rate_per_tenant, burst=config.audit_burst_per_tenant
        )
        self._observers: list[Observer] = []
        self._wrap: Wrap | None = None
        self._named: dict[str, Visitor] = {}

    # ------------------------------------------------------------------ visitors

    def visitor(self, wire: str, peer: str) -> Visitor:
        """A new caller of ``wire`` from ``peer``."""
        return Visitor(wire, peer)

    def name(self, name: str, visitor: Visitor) -> None:
        """Know ``visitor`` by ``name`` (a spliced connection's inner socket, which its
        wire's server reports for each call), until :meth:`forget`."""
        self._named[name] = visitor

    def named(self, name: str) -> Visitor | None:
        """The visitor known by ``name``, if any."""
        return self._named.get(name)

    def forget(self, name: str) -> None:
        """Forget the name of a visitor that left."""
        self._named.pop(name, None)

    def size_limit(self, signed_in: bool) -> int:
        """The bytes one request may hold: ``max_line`` once its caller has signed in
        (a valid session or key seen: :attr:`Visitor.signed_in`, or the request's own
        session checked), ``max_line_unauthenticated`` before."""
        if signed_in:
            return self.config.max_line
        return min(self.config.max_line, self.config.max_line_unauthenticated)

    # ------------------------------------------------------------------ instruments

    def observe(self, observer: Observer) -> None:
        """Tell ``observer`` of every call (the metrics' syscall latency)."""
        self._observers.append(observer)

    def trace(self, wrap: Wrap | None) -> None:
        """Run every syscall inside ``wrap`` (a tracer's span; None: none)."""
        self._wrap = wrap

    # ------------------------------------------------------------------ calls

    def tenant(self, visitor: Visitor, session_id: str) -> str:
        """The tenant of ``session_id``, checked before any work of a call (and the
        visitor signed in by it).

        Raises:
            SessionError, AuthError: the session is not valid (no probe: never).
        """
        if self.probe is None:
            raise SessionError("this door checks no sessions (it has no probe of a kernel)")
        tenant = self.probe.session_tenant(session_id)
        if not visitor.signed_in:
            self._sign_in(visitor, tenant)
        return tenant

    async def tenant_of(self, visitor: Visitor, session_id: str) -> str:
        """:meth:`tenant`, for a wire that can wait: a door whose probe asks a kernel in
        another process (the HTTP gateway's) waits for its answer here.

        Raises:
            SessionError, AuthError: the session is not valid.
        """
        return self.tenant(visitor, session_id)

    def _sign_in(self, visitor: Visitor, tenant: str) -> None:
        """Sign ``visitor`` in as ``tenant``: a connection takes a place of its tenant's.

        Raises:
            UnavailableError: ``QS1011`` ``too-many-connections-per-tenant``.
        """
        if visitor.connection and visitor.tenant is None:
            self._count(visitor, tenant)
        visitor.sign_in()

    def _count(self, visitor: Visitor, tenant: str) -> None:
        refused = self.connections.sign_in(tenant)
        if refused is not None:
            raise refused.error()
        visitor.tenant = tenant

    def sign_out(self, visitor: Visitor) -> None:
        """Give back the place of ``visitor``'s tenant (its connection closed, or its
        login failed)."""
        tenant, visitor.tenant = visitor.tenant, None
        if tenant is not None:
            self.connections.sign_out(tenant)

    def guard(
        self,
        visitor: Visitor,
        label: str,
        *,
        expire: Expire,
        abort: Callable[[], None] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> Guard:
        """The guard of a new connection of ``visitor`` (:class:`~qmk.abi.door.guard.
        Guard`: its sign-in deadline, unsent bytes and write timeout); the wire calls
        its :meth:`~qmk.abi.door.guard.Guard.start` once the connection is made."""
        return Guard(self, visitor, label, expire=expire, abort=abort, busy=busy)

    async def decode(
        self,
        session_id: str | None,
        size: int,
        work: Callable[[], T],
        named: Callable[[T], object],
    ) -> tuple[T, Callable[[], None]]:
        """``work()`` (decoding a big request of ``size`` bytes) off the event loop, on
        the CPU budget of the tenant whose session the request names.

        ``session_id`` is the session its first bytes name: while that tenant's budget
        is spent the request is refused undecoded; otherwise it is decoded in the
        budget's threads. A request whose first bytes name no live session is decoded in
        a thread too, and charged to the session ``named(value)`` gives. The charge is
        made by the returned call, once the request is answered.

        Raises:
            QuotaError: the tenant's CPU budget is spent (``retry_after_s``), before the work.
        """
        probe = self.probe
        tenant = None if probe is None or session_id is None else self._tenant_or_none(session_id)
        if tenant is not None:
            assert probe is not None
            value, seconds = await probe.lower(tenant, work, what=f"a request of {size} bytes")
        else:
            value, seconds = await asyncio.to_thread(_timed, work)
            named_id = named(value) if probe is not None else None
            tenant = self._tenant_or_none(named_id) if type(named_id) is str else None
        if tenant is None or probe is None:
            return value, _nothing
        charged = tenant
        return value, lambda: probe.charge(charged, seconds)

    def _tenant_or_none(self, session_id: str) -> str | None:
        assert self.probe is not None
        try:
            return self.probe.session_tenant(session_id)
        except QMKError:
            return None

    async def call(
        self,
        visitor: Visitor,
        method: str,
        params: Mapping[str, Any],
        *,
        program: ProgramText | None = None,
    ) -> Any:
        """Call the syscall ``method`` with ``params`` (checked against the method table
        by the wire) for ``visitor``.

        In this order: a login (``q_negotiate_caps``) within its peer's failed logins at
        the tenant it names;
        any other call's session, before anything else (a signed-in visitor's call with
        no program, no audit rate and no observer goes straight to the syscall, which
        checks its session first: checked once, not twice); the tenant's rate of calls that
        write audit lines (:data:`AUDITED`); ``program``, read off the event loop within
        the graph cap and the tenant's CPU budget, as the ``graph`` param; then the
        syscall, timed (:meth:`observe`) and traced (:meth:`trace`). The CPU the reading
        took is charged to the tenant once the syscall has answered.

        Raises:
            QMKError: what the checks and the syscall raise (``QuotaError`` with
                ``retry_after_s`` past a rate).
        """
        visitor.inflight += 1
        try:
            if method == NEGOTIATE:
                return await self._login(visitor, params)
            if (
                program is None
                and visitor.signed_in
                and method not in AUDITED
                and not self._observers
                and self._wrap is None
            ):  # its tenant read for nothing here: the syscall's own check is the one
                return await getattr(self.kernel, method)(**params)
            session_id = params.get("session_id")
            tenant = None
            probe = self.probe
            if probe is not None and isinstance(session_id, str):  # as tenant(), without its frame
                tenant = probe.session_tenant(session_id)
                if not visitor.signed_in:
                    self._sign_in(visitor, tenant)
                if method in AUDITED:
                    self._take_audited(tenant)
            if program is None:
                if not self._observers and self._wrap is None:  # _invoke's, without a frame
                    return await getattr(self.kernel, method)(**params)
                return await self._invoke(visitor, method, params)
            if tenant is None:
                tenant = self.tenant(visitor, str(session_id))  # raises: no session
            assert probe is not None
            cap, depth = probe.max_graph_nodes, self.config.max_depth
            graph, spent = await probe.lower(
                tenant,
                lambda: read(program, max_nodes=cap, max_depth=depth, target=params.get("target")),
            )
            try:
                return await self._invoke(visitor, method, {**params, GRAPH_PARAM: graph})
            finally:
                probe.charge(tenant, spent)  # once the submit's own budget check is done
                if len(program.text) >= THREAD_BYTES:  # what it decoded, freed off the loop
                    await asyncio.to_thread(free_value_in_pieces, graph)
        finally:
            visitor.inflight -= 1
            if visitor.tenant is not None:  # a signed-in connection: its idle time starts
                visitor.idle_since = self.clock.now()

    async def _login(self, visitor: Visitor, params: Mapping[str, Any]) -> Any:
        """A login: refused while its peer's failed logins at the tenant it names are
        spent (:func:`login_bucket`); a failure keeps the token it took, a success gives
        it back and signs the visitor in."""
        now = self.clock.now()
        tenant = params.get("tenant")
        name = tenant if isinstance(tenant, str) else ""
        bucket = login_bucket(visitor.peer, name)
        wait = self._logins.take(bucket, now)
        if wait:
            burst, rate = self.config.failed_logins_per_peer, self.config.failed_login_rate_per_peer
            raise QuotaError(
                f"this peer ({visitor.peer}) failed to log in as {name[:NAME_SHOWN]!r} "
                f"{burst} times in a row; one more try is allowed every {1 / rate:g} s: "
                f"retry in {wait:.3g} s (server.failed_logins_per_peer)",
                reason="too-many-failed-logins",
                limit=burst,
                retry_after_s=round(wait, 3),
            )
        spend = self._audited.wait(name, now)  # only a granted session writes its line
        if spend:
            self._logins.give(bucket, now)
            raise self._audit_refusal(name, spend)
        counted = visitor.connection and visitor.tenant is None
        if counted:  # its tenant's place, held while the key is checked
            try:
                self._count(visitor, name)
            except UnavailableError:
                self._logins.give(bucket, now)
                raise
        try:
            result = await self._invoke(visitor, NEGOTIATE, params)
        except AuthError:
            if counted:
                self.sign_out(visitor)
            raise  # the failure keeps its token
        except BaseException:
            if counted:
                self.sign_out(visitor)
            self._logins.give(bucket, self.clock.now())
            raise
        now = self.clock.now()
        self._logins.give(bucket, now)
        self._audited.take(name, now)
        visitor.sign_in()
        return result

    def _take_audited(self, tenant: str) -> None:
        wait = self._audited.take(tenant, self.clock.now())
        if wait:
            raise self._audit_refusal(tenant, wait)

    def _audit_refusal(self, tenant: str, wait: float) -> QuotaError:
        rate = self.config.audit_rate_per_tenant
        return QuotaError(
            f"tenant {tenant!r} makes calls that write audit lines faster than {rate:g} a "
            f"second; retry in {wait:.3g} s (server.audit_rate_per_tenant)",
            reason="audit-rate",
            limit=rate,
            retry_after_s=round(wait, 3),
        )

    async def _invoke(self, visitor: Visitor, method: str, params: Mapping[str, Any]) -> Any:
        target = getattr(self.kernel, method)
        if not self._observers:
            if self._wrap is not None:
                return await self._wrap(method, target, dict(params))
            return await target(**params)
        start = time.perf_counter()
        try:
            if self._wrap is not None:
                return await self._wrap(method, target, dict(params))
            return await target(**params)
        finally:
            took = time.perf_counter() - start
            for observer in self._observers:
                observer(visitor.wire, method, took)


def login_bucket(peer: str, tenant: str) -> str:
    """The failed logins a login counts against: its peer's tries at the tenant it names.

    Keyed by both, one client's wrong keys for one tenant do not hold back another
    tenant's login from the same peer: a gateway process is one peer to the kernel for
    all its clients. A long name is digested, so a bucket's key stays small.

    >>> login_bucket("pid 7", "alice") == login_bucket("pid 7", "bob")
    False
    >>> len(login_bucket("ip 10.0.0.1", "x" * 10_000)) < 64
    True
    """
    if len(tenant) > NAME_SHOWN:
        tenant = "#" + hashlib.blake2b(tenant.encode(errors="replace"), digest_size=12).hexdigest()
    return f"{peer} as {tenant}"


def _timed(work: Callable[[], T]) -> tuple[T, float]:
    """``work()`` and the CPU seconds of its thread it took."""
    start = time.thread_time()
    value = work()
    return value, time.thread_time() - start


def _nothing() -> None:
    """No charge to make."""


__all__ = [
    "AUDITED",
    "NEGOTIATE",
    "Door",
    "DoorProbe",
    "Observer",
    "Visitor",
    "Wrap",
    "login_bucket",
]
