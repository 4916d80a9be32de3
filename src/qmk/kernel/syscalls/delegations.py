"""Capability delegations as the syscalls see them: lend, revoke, list, and what a live
loan lends a tenant now (``q_delegate_caps``, ``q_revoke_delegation``,
``q_list_delegations``; the loans themselves are :mod:`qmk.kernel.security.delegations`).

The kernel makes the desk where it holds a delegation or is asked a delegation syscall
(:meth:`qmk.kernel.syscalls.loans.Loans.made`); until then no loan exists, and the
other desks ask :class:`~qmk.kernel.syscalls.loans.Loans`, which answers nothing lent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import qmk.abi.replies as replies
from qmk import defaults
from qmk.errors import CapabilityError, InvalidArgument, NotFoundError, QuotaError
from qmk.kernel.clock import Clock
from qmk.kernel.config import KernelConfig
from qmk.kernel.records import jobs as J
from qmk.kernel.security.delegations import STATES as DELEGATION_STATES
from qmk.kernel.security.delegations import (
    Delegation,
    DelegationLines,
    DelegationTable,
    Retention,
    not_found,
)
from qmk.kernel.security.sessions import Session
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.delegation_rows import DelegationRows
from qmk.kernel.storage.reserve import DiskReserve
from qmk.kernel.storage.store import Store


class DelegationDesk:
    """The delegation syscalls' work and the loans' effect on sessions (see the module
    docstring).

    Args:
        config: the kernel configuration (the tenants, ``max_delegation_s``,
            ``delegation_keep_s``).
        reserve: the data directory's disk reserve (checked at a delegation).
        store, audit, commits, clock: the kernel's.
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        reserve: DiskReserve,
        store: Store,
        audit: AuditLog,
        commits: GroupCommit,
        clock: Clock,
    ) -> None:
        self.config = config
        #: The delegations' rows in the store.
        self.rows = DelegationRows(store)
        #: The live delegations (:mod:`qmk.kernel.security.delegations`).
        self.delegations = DelegationTable(
            Delegation.from_row(row) for row in self.rows.live(clock.now())
        )
        #: The retention of ended delegations (a sweep of the kernel's, and at its open).
        self.retention = Retention(self.rows.delete_ended, audit.append, config.delegation_keep_s)
        self.reserve = reserve
        self.audit = audit
        self.commits = commits
        self.clock = clock
        #: Each tenant's delegation lines, bounded a window (summaries at the sweeps).
        self.lines = DelegationLines(audit.append)

    def _own_caps(self, tenant: str) -> tuple[str, ...] | None:
        """A tenant's configured capabilities (None: no such tenant any more)."""
        conf = self.config.tenants.get(tenant)
        return None if conf is None else conf.caps

    def lent(self, tenant: str) -> frozenset[str]:
        """The capabilities live delegations lend ``tenant`` now."""
        return self.delegations.lent(tenant, self.clock.now(), own_caps=self._own_caps)

    def audit_use(self, session: Session, caps: Sequence[str], **where: Any) -> None:
        """An audit line per delegation that lends ``session`` one of ``caps`` it uses
        beyond its own (at a grant, a submit)."""
        conf = self.config.tenants[session.tenant]
        used = [c for c in caps if c in session.delegated and c not in conf.caps]
        if not used:
            return
        lenders = self.delegations.lenders(
            session.tenant, used, self.clock.now(), own_caps=self._own_caps
        )
        by_delegation: dict[str, list[str]] = {}
        for cap, ids in lenders.items():
            for delegation_id in ids:
                by_delegation.setdefault(delegation_id, []).append(cap)
        now = self.clock.now()
        for delegation_id, lent in by_delegation.items():
            fields = {
                "action": "use",
                "delegation_id": delegation_id,
                "tenant": session.tenant,
                "session": session.sid,
                "caps": lent,
                **where,
            }
            self.lines.write(now, session.tenant, "deleg", fields)
        self.commits.dirty()

    async def delegate(
        self, session: Session, to_tenant: str, caps: Sequence[str], expires_s: float
    ) -> replies.Delegation:
        """``q_delegate_caps`` of a checked ``session``."""
        now = self.clock.now()
        if not isinstance(to_tenant, str) or to_tenant not in self.config.tenants:
            raise NotFoundError(f"no tenant {str(to_tenant)[:64]!r}", tenant=str(to_tenant)[:64])
        if to_tenant == session.tenant:
            raise InvalidArgument("a tenant cannot delegate to itself", key="to_tenant")
        if (
            not isinstance(caps, list | tuple)
            or not caps
            or not all(isinstance(c, str) for c in caps)
            or len(caps) > 64
        ):
            raise InvalidArgument("caps must be a non-empty list of capability names", key="caps")
        limit = self.config.max_delegation_s
        if (
            isinstance(expires_s, bool)
            or not isinstance(expires_s, int | float)
            or not 0 < expires_s <= limit
        ):
            raise InvalidArgument(
                f"expires_s must be a number of seconds in (0, {limit:g}] "
                f"([kernel] max_delegation_s), got {str(expires_s)[:40]}",
                key="expires_s",
            )
        wanted = list(dict.fromkeys(caps))
        self.reserve.check("a delegation")
        self._check_lendable(session, wanted)
        if self.delegations.live_from(session.tenant, now) >= defaults.MAX_LIVE_DELEGATIONS:
            raise QuotaError(
                f"tenant {session.tenant!r} has {defaults.MAX_LIVE_DELEGATIONS} live delegations "
                "already; revoke one first",
                limit="live_delegations",
                value=defaults.MAX_LIVE_DELEGATIONS,
            )
        delegation = Delegation(
            delegation_id=J.new_id("dlg"),
            from_tenant=session.tenant,
            to_tenant=to_tenant,
            caps=tuple(wanted),
            created_at=now,
            expires_at=now + float(expires_s),
            session=session.sid,
        )
        self.delegations.add(delegation)
        self.rows.save(delegation.to_row())
        fields = {
            "action": "delegate",
            "delegation_id": delegation.delegation_id,
            "tenant": session.tenant,
            "session": session.sid,
            "to_tenant": to_tenant,
            "caps": wanted,
            "expires_at": delegation.expires_at,
        }
        self.lines.write(now, session.tenant, "deleg", fields)
        await self.commits.durable()
        return delegation.reply(now)

    def _check_lendable(self, session: Session, wanted: list[str]) -> None:
        """Audit the decision whether ``session`` may lend ``wanted`` (its tenant's own
        capabilities that the session holds); refuse it if not."""
        own = self.config.tenants[session.tenant].caps
        missing = [c for c in wanted if c not in session.caps or c not in own]
        fields = {
            "where": "delegate",
            "tenant": session.tenant,
            "session": session.sid,
            "required": wanted,
            "decision": "deny" if missing else "allow",
            **({"missing": missing} if missing else {}),
        }
        self.lines.write(self.clock.now(), session.tenant, "cap", fields)
        if missing:
            self.commits.dirty()
            lent = [c for c in missing if c in session.caps]
            why = (
                f"{', '.join(lent)} {'is' if len(lent) == 1 else 'are'} lent to this tenant, "
                "not its own, and cannot be lent on"
                if lent
                else f"this session does not hold {', '.join(missing)}"
            )
            raise CapabilityError(f"cannot delegate: {why}", missing=missing)

    def _delegation(self, delegation_id: object, tenant: str) -> Delegation:
        """A delegation ``tenant`` made or received, live or ended (else not found)."""
        if not isinstance(delegation_id, str) or len(delegation_id) > 128:
            raise not_found(delegation_id)
        held = self.delegations.get(delegation_id)
        if held is None:
            row = self.rows.load(delegation_id)
            held = None if row is None else Delegation.from_row(row)
        if held is None or not held.involves(tenant):
            raise not_found(delegation_id)
        return held

    async def revoke(self, session: Session, delegation_id: str) -> replies.Delegation:
        """``q_revoke_delegation`` of a checked ``session``."""
        now = self.clock.now()
        delegation = self._delegation(delegation_id, session.tenant)
        if delegation.state(now) != "LIVE":
            return delegation.reply(now)
        ended = delegation.revoked(now, by=session.tenant)
        self.delegations.drop(delegation.delegation_id)
        self.rows.save(ended.to_row())
        fields = {
            "action": "revoke",
            "delegation_id": delegation.delegation_id,
            "tenant": session.tenant,
            "session": session.sid,
            "from_tenant": delegation.from_tenant,
            "to_tenant": delegation.to_tenant,
            "caps": list(delegation.caps),
        }
        self.lines.write(now, session.tenant, "deleg", fields)
        await self.commits.durable()
        return ended.reply(now)

    def listed(self, session: Session, state: str | None, limit: int) -> replies.DelegationList:
        """``q_list_delegations`` of a checked ``session``."""
        if state is not None and state not in DELEGATION_STATES:
            raise InvalidArgument(
                f"state must be one of {', '.join(DELEGATION_STATES)} or null, got "
                f"{str(state)[:40]!r}",
                key="state",
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be an integer 1..10000, got {limit!r}", key="limit")
        now = self.clock.now()
        found = []
        # ended ones are filtered after the query, so a state filter reads a wider window
        rows = self.rows.listed(session.tenant, limit if state is None else 10_000)
        for row in rows:
            delegation = Delegation.from_row(row)
            if state is None or delegation.state(now) == state:
                found.append(delegation.reply(now))
            if len(found) == limit:
                break
        return replies.DelegationList(delegations=found)


__all__ = ["DelegationDesk"]
