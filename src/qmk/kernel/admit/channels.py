"""Channels between tenants, and the entanglement firewall that checks graphs against them.

A channel joins two tenants. One proposes it (``q_open_chan`` with ``channel_id`` null:
PENDING), the other accepts it (``q_open_chan`` with that ``channel_id``: OPEN); both
sessions must hold CAP_LINK. Either side may close it (CLOSED, final).

The firewall (:func:`check_firewall`) reads a submitted graph: an ``ALLOC_LQ`` whose
``metadata`` has ``"tenant": "B"`` allocates qubits owned by tenant B, any other belongs
to the submitter. A multi-qubit operation whose qubits belong to different tenants is
refused, except an ``OPEN_CHAN`` whose channel handle is bound (``policy.channels``) to a
kernel channel that is OPEN between exactly those two tenants. Qubits of a peer may be
allocated only when such a channel to that peer is bound. Single-qubit operations on a
peer's qubits (corrections fed by the submitter's measurements) do not entangle and pass.
"""

from __future__ import annotations

import heapq
import secrets
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import qmk.abi.replies as replies
from qmk.errors import FirewallError, InvalidArgument, NotFoundError, QuotaError, StateError
from qmk.qvm.graph import Graph
from qmk.qvm.ops import NOT_ENTANGLING

PENDING = "PENDING"
OPEN = "OPEN"
CLOSED = "CLOSED"
#: A channel's states, in their order.
STATES = (PENDING, OPEN, CLOSED)


@dataclass(slots=True, kw_only=True)
class Channel:
    """A channel between ``proposer`` and ``peer`` (mutable: it opens and closes)."""

    channel_id: str
    proposer: str
    peer: str
    state: str
    fidelity: float
    created_at: float
    opened_at: float | None = None
    closed_at: float | None = None

    @property
    def tenants(self) -> tuple[str, str]:
        return (self.proposer, self.peer)

    def reply(self) -> replies.Channel:
        """The channel as the syscalls answer it."""
        return replies.Channel(
            channel_id=self.channel_id,
            state=self.state,
            tenants=[self.proposer, self.peer],
            fidelity=self.fidelity,
            created_at=self.created_at,
            opened_at=self.opened_at,
            closed_at=self.closed_at,
        )

    def to_row(self) -> dict[str, Any]:
        """The channel as :meth:`qmk.kernel.storage.store.Store.save_channel` takes it."""
        return {
            "channel_id": self.channel_id,
            "proposer": self.proposer,
            "peer": self.peer,
            "state": self.state,
            "fidelity": self.fidelity,
            "created_at": self.created_at,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
        }


def _not_found(channel_id: object) -> NotFoundError:
    return NotFoundError(f"no channel {channel_id!r}", channel_id=str(channel_id))


class ChannelTable:
    """The kernel's channels.

    Args:
        rows: channels loaded from the store.
        load: looks a channel up in the store by id (for channels closed before a restart).
    """

    def __init__(
        self,
        rows: Collection[Mapping[str, Any]] = (),
        load: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self._channels: dict[str, Channel] = {row["channel_id"]: Channel(**row) for row in rows}
        self._load = load
        #: (created_at, id) of the proposals that may still be PENDING, oldest first: the
        #: epoch tick looks at the oldest only (:meth:`expire_proposals`).
        self._proposals = [
            (c.created_at, c.channel_id) for c in self._channels.values() if c.state == PENDING
        ]
        heapq.heapify(self._proposals)

    def get(self, channel_id: str, tenant: str) -> Channel:
        """``tenant``'s channel ``channel_id``.

        Raises:
            NotFoundError: unknown, or ``tenant`` is not one of its two ends.
        """
        channel = self._channels.get(channel_id)
        if channel is None and self._load is not None and isinstance(channel_id, str):
            row = self._load(channel_id)
            if row is not None:
                channel = self._channels[channel_id] = Channel(**row)
        if channel is None or tenant not in channel.tenants:
            raise _not_found(channel_id)
        return channel

    def of(self, tenant: str, state: str | None = None) -> list[Channel]:
        """``tenant``'s channels (either end; ``state`` only, if given), newest first."""
        found = [
            c
            for c in self._channels.values()
            if tenant in c.tenants and (state is None or c.state == state)
        ]
        return sorted(found, key=lambda c: c.created_at, reverse=True)

    def expire_proposals(self, before: float, now: float) -> list[Channel]:
        """Close every PENDING proposal made before ``before``; the channels closed."""
        expired = []
        while self._proposals and self._proposals[0][0] < before:
            _, channel_id = heapq.heappop(self._proposals)
            channel = self._channels.get(channel_id)
            if channel is not None and channel.state == PENDING:  # else accepted or closed
                channel.state = CLOSED
                channel.closed_at = now
                expired.append(channel)
        return expired

    def count(self, tenant: str) -> int:
        """The channels that count against ``tenant``'s ``max_channels``: those it proposed
        (PENDING or OPEN) and those it accepted (OPEN). A proposal made *to* the tenant is
        not its own until it accepts: no tenant can use up another's quota without consent.
        """
        return sum(
            1
            for c in self._channels.values()
            if (c.proposer == tenant and c.state != CLOSED)
            or (c.peer == tenant and c.state == OPEN)
        )

    def _check_room(self, tenant: str, max_channels: int) -> None:
        """Refuse a channel more for ``tenant`` (proposed or accepted) when :meth:`count`
        is at ``max_channels`` already.

        Raises:
            QuotaError: ``tenant`` already has ``max_channels`` channels.
        """
        if self.count(tenant) >= max_channels:
            raise QuotaError(
                f"tenant {tenant!r} already has {max_channels} open or pending channels "
                "(max_channels); close one first",
                limit="max_channels",
                value=max_channels,
            )

    def propose(
        self,
        tenant: str,
        peer: str,
        fidelity: float,
        max_channels: int,
        *,
        now: float | None = None,
    ) -> Channel:
        """A new PENDING channel from ``tenant`` to ``peer`` (made at ``now``: the kernel's
        clock; proposals expire, :meth:`expire_proposals`).

        Raises:
            QuotaError: ``tenant`` already has ``max_channels`` channels.
        """
        self._check_room(tenant, max_channels)
        channel = Channel(
            channel_id="ch_" + secrets.token_urlsafe(16),
            proposer=tenant,
            peer=peer,
            state=PENDING,
            fidelity=fidelity,
            created_at=time.time() if now is None else now,
        )
        self._channels[channel.channel_id] = channel
        heapq.heappush(self._proposals, (channel.created_at, channel.channel_id))
        return channel

    def accept(
        self, tenant: str, peer: str, channel_id: str, fidelity: float, max_channels: int
    ) -> Channel:
        """``tenant`` accepts ``peer``'s proposal ``channel_id``: the channel is OPEN.

        The channel's fidelity is the lower of the two asked for. Accepting a channel that
        is already OPEN returns it unchanged.

        Raises:
            NotFoundError: no such proposal from ``peer`` to ``tenant``.
            StateError: the channel is CLOSED.
            QuotaError: ``tenant`` has no channel left in its quota.
        """
        channel = self.get(channel_id, tenant)
        if channel.peer != tenant or channel.proposer != peer:
            if channel.state == OPEN and set(channel.tenants) == {tenant, peer}:
                return channel
            raise _not_found(channel_id)
        if channel.state == OPEN:
            return channel
        if channel.state == CLOSED:
            raise StateError(f"channel {channel_id!r} is CLOSED", channel_id=channel_id)
        self._check_room(tenant, max_channels)
        channel.state = OPEN
        channel.fidelity = min(channel.fidelity, fidelity)
        channel.opened_at = time.time()
        return channel

    def close(self, tenant: str, channel_id: str) -> Channel:
        """Close ``channel_id`` (either end may). Closing a CLOSED channel is a no-op."""
        channel = self.get(channel_id, tenant)
        if channel.state != CLOSED:
            channel.state = CLOSED
            channel.closed_at = time.time()
        return channel


def check_fidelity(value: object) -> float:
    """A channel fidelity in (0, 1].

    Raises:
        InvalidArgument: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise InvalidArgument(f"fidelity must be a number in (0, 1], got {value!r}", key="fidelity")
    return float(value)


def check_firewall(
    graph: Graph,
    tenant: str,
    bindings: Mapping[str, str],
    channels: ChannelTable,
    tenants: Collection[str],
) -> dict[str, int]:
    """Check ``graph`` submitted by ``tenant`` against the firewall.

    Args:
        graph: the (verified) graph.
        tenant: the submitter.
        bindings: ``policy.channels``: graph channel name -> kernel channel id.
        channels: the kernel's channels.
        tenants: the configured tenant names.

    Returns:
        Peak live logical qubits per tenant whose qubits the graph allocates.

    Raises:
        FirewallError: naming the node, for a cross-tenant op without an open channel.
        NotFoundError: a binding names a channel ``tenant`` does not have.
    """
    bound: dict[str, Channel] = {}
    for name, channel_id in bindings.items():
        channel = channels.get(channel_id, tenant)
        if channel.state != OPEN:
            raise FirewallError(
                f"policy.channels binds {name!r} to channel {channel_id!r}, which is "
                f"{channel.state}, not OPEN",
                channel=name,
            )
        if name not in graph.resources.chs:
            raise FirewallError(
                f"policy.channels binds {name!r}, which the graph does not declare",
                channel=name,
            )
        bound[name] = channel
    linked = {t for c in bound.values() for t in c.tenants} - {tenant}
    # the tenants a qubit may belong to: a guarded ALLOC_LQ adds its tenant to those the
    # handle had, since it may not run (the events decide): an op is refused when its
    # qubits may belong to two tenants on any run, not only on the run in list order
    owner: dict[str, frozenset[str]] = {}
    live: Counter[str] = Counter()
    peak: dict[str, int] = {tenant: 0}

    def where(index: int, node: Any) -> str:
        return f"node #{index} {node.id!r} ({node.op})"

    for index, node in enumerate(graph.nodes):
        if node.op == "ALLOC_LQ":
            _allocated(index, node, tenant, tenants, linked, owner, live, peak)
            continue
        if node.op == "FREE_LQ":
            if node.guard is None:  # a guarded free may not run: the qubits count on
                for q in node.vqs:
                    whose = owner.get(q, frozenset({tenant}))
                    if len(whose) == 1:  # (whose it is not known: it counts on, an upper bound)
                        live[next(iter(whose))] -= 1
            continue
        if node.op in NOT_ENTANGLING or len(node.vqs) < 2:
            continue
        owners = set().union(*(owner.get(q, frozenset({tenant})) for q in node.vqs))
        if len(owners) == 1:
            continue
        if node.op == "OPEN_CHAN" and node.chs and node.chs[0] in bound:
            channel = bound[node.chs[0]]
            if set(channel.tenants) == owners:
                asked = (node.args.get("opts") or {}).get("fidelity", 1.0)
                if isinstance(asked, (int, float)) and asked > channel.fidelity + 1e-12:
                    raise FirewallError(
                        f"{where(index, node)} asks fidelity {asked} of channel "
                        f"{channel.channel_id!r}, which was opened at {channel.fidelity}",
                        node=node.id,
                    )
                continue
        names = " and ".join(sorted(owners))
        raise FirewallError(
            f"{where(index, node)} would entangle qubits of tenants {names} without a channel; "
            "only an OPEN_CHAN bound (policy.channels) to an OPEN kernel channel between them "
            "may join two tenants' qubits",
            node=node.id,
            tenants=sorted(owners),
        )
    return peak


def _allocated(
    index: int,
    node: Any,
    tenant: str,
    tenants: Collection[str],
    linked: Collection[str],
    owner: dict[str, frozenset[str]],
    live: Counter[str],
    peak: dict[str, int],
) -> None:
    """:func:`check_firewall`'s ALLOC_LQ at node ``index``: whose the qubits are (a
    guarded one: whose they may be), and the tenants' live counts.

    Raises:
        FirewallError: the qubits are of no tenant of the kernel, or of another tenant
            with no channel bound to it.
    """
    where = f"node #{index} {node.id!r} ({node.op})"
    who = (node.metadata or {}).get("tenant", tenant)
    if not isinstance(who, str) or (who != tenant and who not in tenants):
        raise FirewallError(
            f"{where} allocates qubits of tenant {who!r}, which is no tenant of this kernel",
            node=node.id,
        )
    if who != tenant and who not in linked:
        raise FirewallError(
            f"{where} allocates qubits of tenant {who!r} without an open channel to {who!r} "
            "bound in policy.channels",
            node=node.id,
        )
    for q in node.vqs:
        before = owner.get(q, frozenset({tenant}))
        owner[q] = frozenset({who}) if node.guard is None else before | {who}
    live[who] += len(node.vqs)
    peak[who] = max(peak.get(who, 0), live[who])


__all__ = [
    "CLOSED",
    "OPEN",
    "PENDING",
    "STATES",
    "Channel",
    "ChannelTable",
    "check_fidelity",
    "check_firewall",
]
