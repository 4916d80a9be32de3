"""Session tokens: HMAC-SHA256-signed by the kernel secret, with expiry and revocation.

A token is ``s1.<payload>.<mac>``: the payload (base64url JSON) names the tenant, a
random session id, the granted capabilities and the expiry; the mac is
HMAC-SHA256(secret, ``s1.<payload>``). Checking a token needs no database lookup except
the revocation set, so it is cheap on every call; the mac is compared in constant time.

>>> sessions = Sessions(b"k" * 32, ttl_s=60)
>>> token = sessions.issue("alice", ("CAP_ALLOC",), now=1000.0)
>>> s = sessions.check(token, now=1001.0)
>>> s.tenant, s.caps
('alice', ('CAP_ALLOC',))
>>> sessions.check(token, now=2000.0)
Traceback (most recent call last):
qmk.errors.SessionExpired: QS1003 session-expired: the session expired; negotiate a new one
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from qmk.errors import SessionError, SessionExpired
from qmk.kernel.datafiles import SECRET_FILE
from qmk.kernel.security.keys import b64, unb64
from qmk.kernel.security.seals import KeyedMac

_PREFIX = "s1"
_CHECKED_MAX = 10_000
_COMPACT = msgspec.json.Encoder()  # a token's payload as compact JSON


def load_secret(data_dir: str | os.PathLike[str]) -> bytes:
    """The kernel secret of ``data_dir``, created (32 random bytes, mode 0600) on first use."""
    path = Path(data_dir) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = -1
    if fd >= 0:
        secret = secrets.token_bytes(32)
        try:
            os.write(fd, secret)
            os.fsync(fd)
        finally:
            os.close(fd)
        return secret
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)
    secret = path.read_bytes()
    if len(secret) < 32:
        raise SessionError(f"{path} is shorter than 32 bytes; remove it to make a new one")
    return secret


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A checked session: who holds it, what it may do, until when."""

    session_id: str
    sid: str
    tenant: str
    caps: tuple[str, ...]
    expires_at: float
    #: Those of ``caps`` granted by a delegation (:mod:`qmk.kernel.security.delegations`), not by
    #: the tenant's config: a call sees them only while a live delegation lends them.
    delegated: tuple[str, ...] = ()


class Sessions:
    """Issues and checks session tokens.

    Args:
        secret: the kernel secret (>= 32 bytes).
        ttl_s: lifetime of a new token, in seconds.
        revoked: session ids (the random part) already revoked.
    """

    def __init__(self, secret: bytes, *, ttl_s: float, revoked: Iterable[str] = ()) -> None:
        self._keyed = KeyedMac(secret)
        self.ttl_s = ttl_s
        #: The session ids (the random part) refused: read by the session desk's check
        #: of a session it checked before; changed only by :meth:`revoke`.
        self.revoked: set[str] = set(revoked)
        self._checked: dict[str, Session] = {}  # tokens whose signature already checked

    def _mac(self, signed: bytes) -> bytes:
        return self._keyed.digest(signed)

    def issue(
        self,
        tenant: str,
        caps: Iterable[str],
        *,
        now: float | None = None,
        ttl_s: float | None = None,
        delegated: Iterable[str] = (),
    ) -> str:
        """A new token for ``tenant`` holding ``caps`` (``delegated``: those of them
        granted by a delegation)."""
        now = time.time() if now is None else now
        expires = now + (self.ttl_s if ttl_s is None else ttl_s)
        sid, granted = secrets.token_urlsafe(16), list(caps)
        payload: dict[str, object] = {"t": tenant, "i": sid, "c": granted, "e": expires}
        lent = list(delegated)
        if lent:  # only then: a token without delegated caps reads as before
            payload["d"] = lent
        body = b64(_COMPACT.encode(payload))
        signed = f"{_PREFIX}.{body}"
        token = f"{signed}.{b64(self._mac(signed.encode()))}"
        # its session as check() would read it back: checking it after is a lookup
        self._remember(
            Session(
                session_id=token,
                sid=sid,
                tenant=str(tenant),
                caps=tuple(map(str, granted)),
                expires_at=float(expires),
                delegated=tuple(map(str, lent)),
            )
        )
        return token

    def check(self, token: object, *, now: float | None = None) -> Session:
        """The session ``token`` stands for.

        Raises:
            SessionError: not a token, a bad signature (forged or from another kernel),
                or revoked.
            SessionExpired: a good token past its expiry.
        """
        now = time.time() if now is None else now
        known = self._checked.get(token) if isinstance(token, str) else None
        if known is not None:
            return self._live(known, now)
        if not isinstance(token, str) or len(token) > 4096:
            raise SessionError("not a session id")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _PREFIX:
            raise SessionError("not a session id")
        signed = f"{parts[0]}.{parts[1]}".encode()
        try:
            mac = unb64(parts[2])
        except ValueError:
            raise SessionError("not a session id") from None
        if b64(mac) != parts[2]:  # one spelling only: no padding, no stray characters
            raise SessionError("not a session id")
        if not hmac.compare_digest(mac, self._mac(signed)):
            raise SessionError("the session id's signature is not valid")
        try:
            payload = json.loads(unb64(parts[1]))
            tenant, sid = str(payload["t"]), str(payload["i"])
            caps, expires = tuple(str(c) for c in payload["c"]), float(payload["e"])
            delegated = tuple(str(c) for c in payload.get("d", ()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SessionError("not a session id") from None
        session = Session(
            session_id=token,
            sid=sid,
            tenant=tenant,
            caps=caps,
            expires_at=expires,
            delegated=delegated,
        )
        self._remember(session)
        return self._live(session, now)

    def _remember(self, session: Session) -> None:
        """Keep ``session`` as its token's, checked (past the bound, all kept before go)."""
        if len(self._checked) >= _CHECKED_MAX:
            self._checked.clear()
        self._checked[session.session_id] = session

    def _live(self, session: Session, now: float) -> Session:
        if session.sid in self.revoked:
            raise SessionError("the session was revoked; negotiate a new one")
        if now >= session.expires_at:
            raise SessionExpired("the session expired; negotiate a new one")
        return session

    def revoke(self, sid: str) -> None:
        """Refuse the session with random id ``sid`` from now on."""
        self.revoked.add(sid)


__all__ = ["SECRET_FILE", "Session", "Sessions", "load_secret"]
