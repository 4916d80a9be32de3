"""What capability delegations lend, as every negotiation, session check, submit and job
start asks it (:class:`Loans`): nothing while the kernel holds no delegation.

The delegations' desk (:mod:`qmk.kernel.syscalls.delegations`), with the live loans'
table, their rows, retention and audit lines, is made where a kernel holds a delegation
(its store has one as it opens) or at the first delegation syscall
(:attr:`qmk.kernel.service.Kernel.delegation_desk`), and handed here then. So a kernel of
plain jobs loads none of it, and asks nothing of it: no loan exists before its desk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.kernel.security.sessions import Session
    from qmk.kernel.syscalls.delegations import DelegationDesk

_NOTHING: frozenset[str] = frozenset()


class Loans:
    """The delegations' answers to the other desks: the desk's own once it is made
    (:attr:`desk`), nothing lent and nothing to audit before."""

    def __init__(self) -> None:
        #: The delegations' desk, once made (None: no delegation exists).
        self.desk: DelegationDesk | None = None

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
