"""Capability delegation: a tenant lends some of its capabilities to another, for a while.

A **delegation** (``q_delegate_caps``) names the delegating tenant, the recipient, the
capabilities lent and when the loan ends (``expires_at``, on the kernel's clock). While
it is **live** (neither revoked nor expired) the recipient's ``q_negotiate_caps`` may
grant those capabilities beyond its own configured ones; the recipient's quotas, jobs and
results stay its own. ``q_revoke_delegation`` ends one at once (either tenant may: the
delegator takes it back, the recipient gives it up), and so does its expiry.

What a delegation lends is checked at every use, never copied. A session holds the caps
it was granted by delegation as such (``Session.delegated``), and each call sees of them
only those a live delegation still lends (:meth:`DelegationTable.lent`). A job queued
with one is refused at execution when no live delegation lends it any more, as a job
whose tenant lost a capability in the config is. Only a tenant's own configured
capabilities can be lent (a lent capability is not lent on), and a delegation lends
nothing the delegator's config no longer allows.

The table holds the live delegations in memory (checked on every call); every delegation,
live or ended, is a row of the store's ``delegations`` table, so a restart keeps them.

**Limits.** A tenant has at most :data:`~qmk.defaults.MAX_LIVE_DELEGATIONS` live ones;
the calls that write audit lines (``q_delegate_caps``, ``q_revoke_delegation``) are
within the tenant's rate of such calls, which the door keeps for every wire
(:data:`qmk.abi.door.AUDITED`, ``[server] audit_rate_per_tenant``). **Retention**
(:class:`Retention`): an ended delegation (revoked, or expired) is deleted ``[kernel]
delegation_keep_s`` after it ended, on the kernel's epoch ticks and when it opens, with
one ``deleg`` audit line (``action: "expire"``) a sweep; until then it is listed and
read as it ended. **Audit lines** (:class:`DelegationLines`): a tenant's delegation lines
(its delegations, revocations, their capability decisions and the uses of what it was
lent) are written in full up to :data:`LINES_PER_WINDOW` a window of
:data:`AUDIT_WINDOW_S`. Past that, they are counted into one ``deleg`` line (``action:
"summary"``) when the window ends. So churn grows the log by a bounded number of lines a
window, whatever the audit rate lets through. The rows keep each delegation's story for
``delegation_keep_s`` after it ended.

>>> table = DelegationTable([])
>>> d = Delegation(delegation_id="dlg_1", from_tenant="alice", to_tenant="bob",
...                caps=("CAP_MAGIC",), created_at=100.0, expires_at=160.0)
>>> table.add(d)
>>> sorted(table.lent("bob", 120.0, own_caps={"alice": {"CAP_ALLOC", "CAP_MAGIC"}}.get))
['CAP_MAGIC']
>>> sorted(table.lent("bob", 160.0, own_caps={"alice": {"CAP_MAGIC"}}.get))  # expired
[]
>>> d.state(120.0), d.state(160.0), d.revoked(130.0, by="alice").state(130.0)
('LIVE', 'EXPIRED', 'REVOKED')
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import qmk.abi.replies as replies
from qmk.errors import NotFoundError

LIVE = "LIVE"
REVOKED = "REVOKED"
EXPIRED = "EXPIRED"
#: A delegation's states: live until revoked or expired, then final.
STATES: tuple[str, ...] = (LIVE, REVOKED, EXPIRED)

#: The columns of the store's ``delegations`` table, in order.
COLUMNS: tuple[str, ...] = (
    "delegation_id",
    "from_tenant",
    "to_tenant",
    "caps",
    "session",
    "created_at",
    "expires_at",
    "revoked_at",
    "revoked_by",
)

#: A tenant's configured capabilities by name (None: no such tenant any more).
OwnCaps = Callable[[str], Collection[str] | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Delegation:
    """One loan of capabilities from one tenant to another.

    Attributes:
        delegation_id: its id (``dlg_...``).
        from_tenant: the tenant that lends.
        to_tenant: the tenant that may be granted them.
        caps: the capabilities lent.
        created_at: when it was made (kernel clock, Unix seconds).
        expires_at: when it ends by itself.
        session: the delegating session's id (its random part), for the audit.
        revoked_at: when it was revoked (None: it was not).
        revoked_by: the tenant that revoked it.
    """

    delegation_id: str
    from_tenant: str
    to_tenant: str
    caps: tuple[str, ...]
    created_at: float
    expires_at: float
    session: str = ""
    revoked_at: float | None = None
    revoked_by: str | None = None

    def state(self, now: float) -> str:
        """LIVE, REVOKED or EXPIRED at ``now``."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return REVOKED
        if now >= self.expires_at:
            return EXPIRED
        return LIVE

    def revoked(self, now: float, *, by: str) -> Delegation:
        """This delegation revoked at ``now`` by tenant ``by``."""
        return dataclasses.replace(self, revoked_at=now, revoked_by=by)

    def involves(self, tenant: str) -> bool:
        """Whether ``tenant`` is either end."""
        return tenant in (self.from_tenant, self.to_tenant)

    def reply(self, now: float) -> replies.Delegation:
        """The delegation as the syscalls answer it, with its state at ``now``."""
        return replies.Delegation(
            delegation_id=self.delegation_id,
            from_tenant=self.from_tenant,
            to_tenant=self.to_tenant,
            caps=list(self.caps),
            state=self.state(now),
            created_at=self.created_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            revoked_by=self.revoked_by,
        )

    def to_row(self) -> tuple[Any, ...]:
        """The store's row (:data:`COLUMNS`)."""
        return (
            self.delegation_id,
            self.from_tenant,
            self.to_tenant,
            json.dumps(list(self.caps)),
            self.session,
            self.created_at,
            self.expires_at,
            self.revoked_at,
            self.revoked_by,
        )

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> Delegation:
        """The delegation of a store row (:data:`COLUMNS`)."""
        values = dict(zip(COLUMNS, row, strict=True))
        values["caps"] = tuple(json.loads(values["caps"]))
        return cls(**values)


class DelegationTable:
    """The live delegations, by recipient; ended ones drop out as they are met.

    Args:
        live: the delegations to start with (the store's live ones).
    """

    def __init__(self, live: Iterable[Delegation]) -> None:
        self._by_id: dict[str, Delegation] = {}
        self._to: dict[str, dict[str, Delegation]] = {}
        for delegation in live:
            self.add(delegation)

    def add(self, delegation: Delegation) -> None:
        """Hold ``delegation`` (live) in the table."""
        self._by_id[delegation.delegation_id] = delegation
        self._to.setdefault(delegation.to_tenant, {})[delegation.delegation_id] = delegation

    def drop(self, delegation_id: str) -> None:
        """Forget a delegation that ended."""
        delegation = self._by_id.pop(delegation_id, None)
        if delegation is not None:
            received = self._to.get(delegation.to_tenant, {})
            received.pop(delegation_id, None)
            if not received:
                self._to.pop(delegation.to_tenant, None)

    def live_to(self, tenant: str, now: float) -> Iterator[Delegation]:
        """The live delegations ``tenant`` receives (ended ones are dropped on the way)."""
        for delegation in list(self._to.get(tenant, {}).values()):
            if delegation.state(now) == LIVE:
                yield delegation
            else:
                self.drop(delegation.delegation_id)

    def lent(self, tenant: str, now: float, *, own_caps: OwnCaps) -> frozenset[str]:
        """The capabilities live delegations lend ``tenant`` at ``now``: of each, those its
        delegator's config still allows (``own_caps``)."""
        if tenant not in self._to:
            return frozenset()
        caps: set[str] = set()
        for delegation in self.live_to(tenant, now):
            allowed = own_caps(delegation.from_tenant) or ()
            caps.update(c for c in delegation.caps if c in allowed)
        return frozenset(caps)

    def lenders(
        self, tenant: str, caps: Collection[str], now: float, *, own_caps: OwnCaps
    ) -> dict[str, list[str]]:
        """For each of ``caps`` that a live delegation lends ``tenant``: the ids of the
        delegations that lend it (for the audit's ``use`` lines)."""
        found: dict[str, list[str]] = {}
        for delegation in self.live_to(tenant, now):
            allowed = own_caps(delegation.from_tenant) or ()
            for cap in delegation.caps:
                if cap in caps and cap in allowed:
                    found.setdefault(cap, []).append(delegation.delegation_id)
        return found

    def live_from(self, tenant: str, now: float) -> int:
        """How many live delegations ``tenant`` made (every ended one met is dropped, so
        the table holds no more than the live ones and those ended since the last call)."""
        count = 0
        for delegation in list(self._by_id.values()):
            if delegation.state(now) != LIVE:
                self.drop(delegation.delegation_id)
            elif delegation.from_tenant == tenant:
                count += 1
        return count

    def get(self, delegation_id: str) -> Delegation | None:
        """A live delegation by id (None: not held, e.g. ended)."""
        return self._by_id.get(delegation_id)


class Retention:
    """Deletes the delegations that ended ``keep_s`` before now (see the module
    docstring), looked at every hundredth of ``keep_s``, at most once a minute.

    Args:
        delete: the store's deletion of the rows that ended before a time; their ids.
        audit: appends an audit line (``audit(event, **fields)``).
        keep_s: how long an ended delegation is kept.
    """

    def __init__(
        self,
        delete: Callable[[float], list[str]],
        audit: Callable[..., Any],
        keep_s: float,
    ) -> None:
        self.delete, self.audit, self.keep_s = delete, audit, keep_s
        self._next = -float("inf")

    def expire(self, now: float, *, force: bool = False) -> list[str]:
        """Delete what ended before ``now - keep_s`` (unless looked at lately and not
        ``force``); the ids deleted."""
        if not force and now < self._next:
            return []
        self._next = now + min(self.keep_s / 100, 60.0)
        gone = self.delete(now - self.keep_s)
        if gone:
            self.audit(
                "deleg", action="expire", delegations=len(gone), ended_before=now - self.keep_s
            )
        return gone


#: The window of a tenant's delegation lines (kernel seconds), and how many of its lines a
#: window writes in full (the rest are counted into its summary line).
AUDIT_WINDOW_S = 60.0
LINES_PER_WINDOW = 60
#: The most distinct recipients and capabilities a summary line names.
_SUMMARY_NAMES = 8


@dataclass(slots=True)
class _Window:
    """One tenant's window of delegation lines: when it ends, how many it wrote in full,
    and what it counted since."""

    start: float
    end: float
    written: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    to_tenants: set[str] = field(default_factory=set)
    caps: set[str] = field(default_factory=set)
    first_id: str | None = None
    last_id: str | None = None

    def count(self, fields: Mapping[str, Any]) -> None:
        kind = fields.get("action") or f"{fields.get('where')}-{fields.get('decision')}"
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if isinstance(to := fields.get("to_tenant"), str) and len(self.to_tenants) < _SUMMARY_NAMES:
            self.to_tenants.add(to)
        for cap in fields.get("caps") or fields.get("required") or ():
            if len(self.caps) < _SUMMARY_NAMES:
                self.caps.add(str(cap))
        if isinstance(ident := fields.get("delegation_id"), str):
            self.first_id = self.first_id or ident
            self.last_id = ident


class DelegationLines:
    """A tenant's delegation audit lines, bounded a window (see the module docstring):
    the first :data:`LINES_PER_WINDOW` of each window of :data:`AUDIT_WINDOW_S` in full,
    the rest counted into one summary line written when the window ends (at the tenant's
    next line, at the kernel's sweeps, :meth:`flush`, and at its close).

    Args:
        append: the audit log's append (``append(event, fields)``).
        window_s: the window's length (kernel seconds).
    """

    def __init__(
        self,
        append: Callable[..., Any],
        *,
        window_s: float = AUDIT_WINDOW_S,
    ) -> None:
        self.append, self.window_s = append, window_s
        self._windows: dict[str, _Window] = {}

    def write(self, now: float, tenant: str, event: str, fields: Mapping[str, Any]) -> bool:
        """Write (or count) ``tenant``'s line ``event`` of ``fields`` at ``now``; whether
        a line was written (its own, or a summary that ended before it)."""
        window = self._windows.get(tenant)
        summed = False
        if window is None or now >= window.end:
            if window is not None:
                summed = self._summary(tenant, window)
            window = self._windows[tenant] = _Window(start=now, end=now + self.window_s)
        if window.written < LINES_PER_WINDOW:
            window.written += 1
            self.append(event, fields)
            return True
        window.count(fields)
        return summed

    def flush(self, now: float, *, force: bool = False) -> bool:
        """Write the summary of each window that ended by ``now`` (``force``: of every
        window, the kernel closing); whether any was written."""
        written = False
        for tenant, window in list(self._windows.items()):
            if force or now >= window.end:
                del self._windows[tenant]
                written = self._summary(tenant, window) or written
        return written

    def _summary(self, tenant: str, window: _Window) -> bool:
        if not window.kinds:
            return False
        self.append(
            "deleg",
            {
                "action": "summary",
                "tenant": tenant,
                "since": window.start,
                "window_s": self.window_s,
                "lines": sum(window.kinds.values()),
                "kinds": dict(sorted(window.kinds.items())),
                "to_tenants": sorted(window.to_tenants),
                "caps": sorted(window.caps),
                "first_id": window.first_id,
                "last_id": window.last_id,
            },
        )
        return True


def not_found(delegation_id: object) -> NotFoundError:
    """The refusal of a delegation id that is not one of the tenant's (either end)."""
    return NotFoundError(
        f"no delegation {str(delegation_id)[:80]!r} of this tenant",
        delegation_id=str(delegation_id)[:80],
    )


__all__ = [
    "AUDIT_WINDOW_S",
    "COLUMNS",
    "EXPIRED",
    "LINES_PER_WINDOW",
    "LIVE",
    "REVOKED",
    "STATES",
    "Delegation",
    "DelegationLines",
    "DelegationTable",
    "Retention",
    "not_found",
]
