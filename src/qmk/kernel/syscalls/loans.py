"""What capability delegations lend, as every negotiation, session check, submit and job
start asks it (:class:`Loans`): nothing while the kernel holds no delegation.

The delegations' desk (:mod:`qmk.kernel.syscalls.delegations`), with the live loans'
table, their rows, retention and audit lines, is made where a kernel holds a delegation
(its store has one as it opens) or at the first delegation syscall (:meth:`Loans.made`).
So a kernel of plain jobs loads none of it, and asks nothing of it: no loan exists before
its desk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.kernel.security.sessions import Session
    from qmk.kernel.syscalls.delegations import DelegationDesk

_NOTHING: frozenset[str] = frozenset()


class Loans:
    """The delegations' answers to the other desks: the desk's own once it is made
    (:meth:`made`, by the kernel's ``make``), nothing lent and nothing to audit before."""

    def __init__(
        self, make: Callable[[], DelegationDesk], sweeps: list[Callable[..., Any]]
    ) -> None:
        self._make = make
        self._sweeps = sweeps  # the supervisor's: the desk's retention and lines join them
        #: The delegations' desk, once made (None: no delegation exists).
        self.desk: DelegationDesk | None = None

    def made(self) -> DelegationDesk:
        """The delegations' desk (loans made, revoked and listed; what they lend, their
        retention and audit lines), made at the first ask."""
        if self.desk is None:
            desk = self.desk = self._make()
            self._sweeps += (desk.retention.expire, desk.lines.flush)
        return self.desk

    def expire(self, now: float) -> None:
        """Ended delegations past their retention gone: at the kernel's open."""
        if self.desk is not None:
            self.desk.retention.expire(now, force=True)

    def flush(self, now: float) -> None:
        """The audit lines of loans used written: at the kernel's close."""
        if self.desk is not None:
            self.desk.lines.flush(now, force=True)

    def lent(self, tenant: str) -> frozenset[str]:
        """The capabilities live delegations lend ``tenant`` now."""
        desk = self.desk
        return _NOTHING if desk is None else desk.lent(tenant)

    def audit_use(self, session: Session, caps: Sequence[str], **where: Any) -> None:
        """An audit line per delegation that lends ``session`` one of ``caps`` it uses
        beyond its own (:meth:`DelegationDesk.audit_use`)."""
        if self.desk is not None:
            self.desk.audit_use(session, caps, **where)


__all__ = ["Loans"]
