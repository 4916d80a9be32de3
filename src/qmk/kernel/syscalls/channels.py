"""Channels between tenants as the syscalls see them: proposed, accepted, closed (the
running jobs bound to a closed one stop), found and listed (``q_open_chan``,
``q_close_chan``, ``q_chan_status``, ``q_list_channels``; the table and its firewall are
:mod:`qmk.kernel.admit.channels`).
"""

from __future__ import annotations

import qmk.abi.replies as replies
from qmk.errors import CapabilityError, InvalidArgument, NotFoundError
from qmk.kernel.admit.channels import STATES as CHANNEL_STATES
from qmk.kernel.admit.channels import ChannelTable, check_fidelity
from qmk.kernel.clock import Clock
from qmk.kernel.config import KernelConfig
from qmk.kernel.running.supervisor import Supervisor
from qmk.kernel.security.sessions import Session
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.store import Store


class ChannelDesk:
    """The channel syscalls' work, each for a checked session (see the module docstring).

    Args:
        config: the kernel configuration (the tenants, their ``max_channels``).
        channels: the channel table.
        supervisor: stops the running jobs bound to a channel that closes.
        store, audit, commits, clock: the kernel's.
    """

    def __init__(
        self,
        config: KernelConfig,
        channels: ChannelTable,
        supervisor: Supervisor,
        *,
        store: Store,
        audit: AuditLog,
        commits: GroupCommit,
        clock: Clock,
    ) -> None:
        self.config = config
        self.channels = channels
        self.supervisor = supervisor
        self.store = store
        self.audit = audit
        self.commits = commits
        self.clock = clock

    def _check_link(self, session: Session) -> None:
        """Audit whether ``session`` holds CAP_LINK, which channels need; refuse it if not."""
        decision = "CAP_LINK" in session.caps
        self.audit.append(
            "cap",
            where="channel",
            tenant=session.tenant,
            session=session.sid,
            required=["CAP_LINK"],
            decision="allow" if decision else "deny",
        )
        self.commits.dirty()
        if not decision:
            raise CapabilityError(
                "channels need CAP_LINK, which this session was not granted", missing=["CAP_LINK"]
            )

    async def open(
        self, session: Session, peer: str, channel_id: str | None, fidelity: float
    ) -> replies.Channel:
        """``q_open_chan``: propose a channel to ``peer`` (``channel_id`` null) or accept
        its proposal."""
        self._check_link(session)
        fidelity = check_fidelity(fidelity)
        if not isinstance(peer, str) or peer not in self.config.tenants:
            raise NotFoundError(f"no tenant {peer!r}", peer=str(peer))
        if peer == session.tenant:
            raise InvalidArgument("a channel joins two different tenants", key="peer")
        conf = self.config.tenants[session.tenant]
        if channel_id is None:
            channel = self.channels.propose(
                session.tenant, peer, fidelity, conf.max_channels, now=self.clock.now()
            )
        else:
            channel = self.channels.accept(
                session.tenant, peer, channel_id, fidelity, conf.max_channels
            )
        self.store.save_channel(channel.to_row())
        self.audit.append(
            "chan", channel_id=channel.channel_id, tenant=session.tenant, state=channel.state
        )
        await self.commits.durable()
        return channel.reply()

    async def close(self, session: Session, channel_id: str) -> replies.Channel:
        """``q_close_chan``: close a channel (either end); the jobs bound to it stop."""
        channel = self.channels.close(session.tenant, channel_id)
        self.store.save_channel(channel.to_row())
        self.audit.append("chan", channel_id=channel_id, tenant=session.tenant, state="CLOSED")
        self.supervisor.channel_closed(channel_id)  # running jobs bound to it stop
        await self.commits.durable()
        return channel.reply()

    def status(self, session: Session, channel_id: str) -> replies.Channel:
        """``q_chan_status``: a channel of this tenant."""
        return self.channels.get(channel_id, session.tenant).reply()

    def listed(self, session: Session, state: str | None) -> replies.ChannelList:
        """``q_list_channels``: this tenant's channels (either end), newest first."""
        if state is not None and state not in CHANNEL_STATES:
            raise InvalidArgument(
                f"state must be one of {', '.join(CHANNEL_STATES)} or null, got {state!r}",
                key="state",
            )
        return replies.ChannelList(
            channels=[c.reply() for c in self.channels.of(session.tenant, state)]
        )


__all__ = ["ChannelDesk"]
