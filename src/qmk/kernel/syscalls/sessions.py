"""Sessions as the syscalls see them: a negotiation's key checked and its capabilities
granted (``q_negotiate_caps``), every other syscall's session checked against the
configuration and the live delegations now, failed negotiations audited at a bounded
rate, a session revoked by an operator.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
from collections.abc import Callable, Sequence
from itertools import repeat

import qmk.abi.replies as replies
from qmk.errors import AuthError, InvalidArgument, SessionError
from qmk.kernel.clock import Clock
from qmk.kernel.config import KernelConfig, TenantConfig
from qmk.kernel.security.keys import KeyChecker, is_hash
from qmk.kernel.security.sessions import Session, Sessions
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.reserve import DiskReserve
from qmk.kernel.storage.store import Store
from qmk.kernel.syscalls.loans import Loans

#: Failed negotiations within this many seconds after one that was audited in full are
#: audited as one summary line.
AUTH_AUDIT_WINDOW_S = 1.0
#: The longest key a negotiation checks (a longer one is wrong without a hash's work).
MAX_KEY_CHARS = 4096
#: The most sessions :meth:`SessionDesk.check` remembers as within their configuration
#: (then it forgets them all and checks each again once).
FITS_MAX = 10_000


class SessionDesk:
    """Negotiations and session checks (see the module docstring).

    Args:
        config: the kernel configuration (the tenants, their keys and capabilities).
        sessions: the kernel's sessions (issued tokens, revocations).
        keys: checks the keys of negotiations.
        delegations: what live delegations lend a tenant, and their use audited.
        check_open: raises while the kernel is closing or stopped.
        reserve: the data directory's disk reserve (checked at a login).
        store, audit, commits, clock: the kernel's.
    """

    def __init__(
        self,
        config: KernelConfig,
        sessions: Sessions,
        keys: KeyChecker,
        delegations: Loans,
        *,
        check_open: Callable[[], None],
        reserve: DiskReserve,
        store: Store,
        audit: AuditLog,
        commits: GroupCommit,
        clock: Clock,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.keys = keys
        self.delegations = delegations
        self._check_open = check_open
        self.reserve = reserve
        self.store = store
        self.audit = audit
        self.commits = commits
        self.clock = clock
        self._hashed_keys = any(is_hash(t.stored_key) for t in config.tenants.values())
        #: Failed negotiations counted, not yet audited (see :meth:`_auth_failed`).
        self._auth_window_end = -math.inf
        self._auth_more = 0
        self._auth_tenants: set[str] = set()
        #: Sessions (by id) whose capabilities :meth:`check` found within their tenant's
        #: configuration, each with that configuration: a session holds what it was
        #: granted for good, so while its tenant's configuration is the same object, every
        #: call's check needs only its expiry and revocation, tested here without a call
        #: (a session with delegated capabilities is checked in full at every call: a
        #: delegation ends with time).
        self._fits: dict[str, tuple[Session, TenantConfig]] = {}
        #: Each tenant's quotas as a sign-in answers them, and the configuration read.
        self._quotas: dict[str, tuple[TenantConfig, dict[str, int | float]]] = {}

    async def negotiate(self, tenant: str, key: str, requested: Sequence[str]) -> replies.Session:
        """``q_negotiate_caps``: grant ``requested`` ∩ the tenant's allowed capabilities
        (its own, and those a live delegation lends it: ``delegated``)."""
        self._check_open()
        conf = self.config.tenants.get(tenant) if isinstance(tenant, str) else None
        if not await self._key_ok(tenant, conf, key) or conf is None:
            self._auth_failed(str(tenant)[:64])
            raise AuthError("unknown tenant or wrong key")
        self._check_open()
        self.reserve.check("a login")  # its audit line
        if not isinstance(requested, list | tuple) or not all(  # (no generator: a call a name)
            map(isinstance, requested, repeat(str))
        ):
            raise InvalidArgument("requested must be a list of capability names", key="requested")
        lent = self.delegations.lent(tenant)
        wanted = list(dict.fromkeys(requested))
        granted = [c for c in wanted if c in conf.caps or c in lent]
        denied = [c for c in wanted if c not in granted]
        delegated = [c for c in granted if c not in conf.caps]
        now = self.clock.now()
        token = self.sessions.issue(tenant, granted, now=now, delegated=delegated)
        session = self.sessions.check(token, now=now)
        self.audit.append(
            "cap",
            where="negotiate",
            tenant=tenant,
            session=session.sid,
            granted=granted,
            denied=denied,
            decision="grant",
            **({"delegated": delegated} if delegated else {}),
        )
        self.delegations.audit_use(session, delegated, where="negotiate")
        if not self.commits.durable_alone():  # alone: answered on this turn
            await self.commits.durable()
        quota = self._quotas.get(tenant)
        if quota is None or quota[0] is not conf:  # read again once its configuration changes
            quota = self._quotas[tenant] = (conf, conf.quota())
        return replies.Session(
            session_id=token,
            tenant=tenant,
            granted=granted,
            denied=denied,
            delegated=delegated,
            quota=dict(quota[1]),  # the caller's own copy
            expires_at=session.expires_at,
        )

    async def _key_ok(self, tenant: object, conf: TenantConfig | None, key: object) -> bool:
        """Whether ``key`` is ``conf``'s tenant's key: a hash is checked by scrypt in a
        thread (once per key: :class:`~qmk.kernel.security.keys.KeyChecker` remembers it); an
        unknown tenant costs what a hashed tenant's wrong key does."""
        stored = None if conf is None else conf.stored_key
        given = key if isinstance(key, str) and len(key) <= MAX_KEY_CHARS else ""
        name = tenant if isinstance(tenant, str) else ""
        if stored is not None and self.keys.remembered(name, stored, given):
            return True
        slow = (stored is None and self._hashed_keys) or (stored is not None and is_hash(stored))
        if slow:
            return await self.keys.check_soon(name, stored, given)  # its own threads
        return hmac.compare_digest(given.encode(), (stored or "x" * 32).encode()) and (
            stored is not None
        )

    def _auth_failed(self, tenant: str) -> None:
        """Audit a failed negotiation: the first of each window of
        :data:`AUTH_AUDIT_WINDOW_S` in full, the rest of the window as one summary line
        (so unauthenticated clients cannot grow the audit log at their request rate)."""
        now = self.clock.now()
        if now >= self._auth_window_end:
            self.flush_auth_failures()
            self._auth_window_end = now + AUTH_AUDIT_WINDOW_S
            self.audit.append("cap", where="negotiate", tenant=tenant, decision="auth")
            self.commits.dirty()
            return
        self._auth_more += 1
        if len(self._auth_tenants) < 8:
            self._auth_tenants.add(tenant)

    def flush_auth_failures(self) -> None:
        """Write the summary of the failed negotiations counted since the last full line."""
        if self._auth_more:
            self.audit.append(
                "cap",
                where="negotiate",
                decision="auth",
                failures=self._auth_more,
                tenants=sorted(self._auth_tenants),
                window_s=AUTH_AUDIT_WINDOW_S,
            )
            self.commits.dirty()
        self._auth_more = 0
        self._auth_tenants = set()

    def check(self, session_id: str) -> Session:
        """The live session ``session_id``, holding only the capabilities its tenant's
        configuration and live delegations still give it.

        Raises:
            UnavailableError: the kernel is closing or stopped.
            SessionError, AuthError: no such session, an expired or revoked one, a tenant
                no longer configured, or capabilities the configuration took away.
        """
        self._check_open()
        now = self.clock.now()
        fit = self._fits.get(session_id) if type(session_id) is str else None
        if fit is not None:  # checked before: live, and its configuration the same object?
            known, fitted = fit
            if (
                now < known.expires_at
                and known.sid not in self.sessions.revoked
                and self.config.tenants.get(known.tenant) is fitted
            ):
                return known
        session = self.sessions.check(session_id, now=now)  # expiry, revocation
        conf = self.config.tenants.get(session.tenant)
        if conf is None:
            raise AuthError("the session's tenant is no longer configured")
        revoked = sorted(set(session.caps) - set(conf.caps) - set(session.delegated))
        if revoked:  # the config took capabilities away since the session was granted
            raise SessionError(
                f"the session holds {', '.join(revoked)}, which tenant {session.tenant!r} no "
                "longer has; open a new session",
                revoked=revoked,
            )
        if session.delegated:  # of those lent, only what a live delegation still lends
            lent = self.delegations.lent(session.tenant)
            caps = tuple(c for c in session.caps if c in conf.caps or c in lent)
            if caps != session.caps:
                return dataclasses.replace(session, caps=caps)
            return session  # checked again at each call: a delegation ends in time
        if len(self._fits) >= FITS_MAX:
            self._fits.clear()
        self._fits[session.session_id] = (session, conf)
        return session

    def tenant_of(self, session_id: str) -> str:
        """The tenant of the live session ``session_id`` (:meth:`check`'s)."""
        return self.check(session_id).tenant

    def revoke(self, session_id: str) -> None:
        """Refuse ``session_id`` from now on (an in-process admin call, not a syscall)."""
        session = self.sessions.check(session_id, now=self.clock.now())
        self.sessions.revoke(session.sid)
        self.store.revoke_session(session.sid, session.tenant, session.caps, session.expires_at)
        self.audit.append("cap", where="revoke", tenant=session.tenant, session=session.sid)
        self.commits.dirty()


__all__ = ["AUTH_AUDIT_WINDOW_S", "FITS_MAX", "MAX_KEY_CHARS", "SessionDesk"]
