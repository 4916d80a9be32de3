"""Live event streams: how many a session and a tenant hold, on every wire together.

A REST client's Server-Sent Events (``GET /v1/events``, ``GET /v1/jobs/{id}/events``,
``POST /v1/assist``), a JSON-RPC connection's ``q_watch`` and a gRPC ``WatchJob`` are
each one live stream of their session. :class:`StreamCaps` counts them all: a session
holds at most ``max_streams_per_session`` and a tenant ``max_streams_per_tenant``; one
more is ``QS1006 quota-exceeded`` with ``reason`` ``too-many-streams``, ``scope``
(``session`` or ``tenant``) and ``limit``. The event hubs that feed the streams
(:class:`qmk.abi.events.EventHub`, one per listener that has one) take and give their
places here, so a wire added later shares the same caps.

>>> caps = StreamCaps(per_session=1, per_tenant=2)
>>> caps.take("alice", "s1"); caps.take("alice", "s2"); caps.held("alice")
2
>>> try:
...     caps.take("alice", "s3")
... except Exception as exc:
...     print(exc.code, exc.details["scope"])
QS1006 tenant
>>> caps.give("alice", "s1"); caps.take("alice", "s3"); caps.held("alice")
2
"""

from __future__ import annotations

from qmk.errors import QuotaError


class StreamCaps:
    """The live streams of each session and tenant (see the module docstring).

    Args:
        per_session, per_tenant: the most streams of one session, and of one tenant, at
            once (None: no limit).
    """

    def __init__(self, per_session: int | None, per_tenant: int | None) -> None:
        self.per_session = per_session
        self.per_tenant = per_tenant
        self._of_session: dict[str, int] = {}
        self._of_tenant: dict[str, int] = {}

    def take(self, tenant: str, session: str | None) -> None:
        """Count one more stream of ``tenant`` (and ``session``).

        Raises:
            QuotaError: the session, or the tenant, holds its limit of streams.
        """
        held = self._of_session.get(session, 0) if session is not None else 0
        if self.per_session is not None and held >= self.per_session:
            raise QuotaError(
                f"this session holds its limit of {self.per_session} live event "
                "streams; close one (server.max_streams_per_session)",
                reason="too-many-streams",
                scope="session",
                limit=self.per_session,
            )
        held = self._of_tenant.get(tenant, 0)
        if self.per_tenant is not None and held >= self.per_tenant:
            raise QuotaError(
                f"tenant {tenant!r} holds its limit of {self.per_tenant} live event "
                "streams; close one (server.max_streams_per_tenant)",
                reason="too-many-streams",
                scope="tenant",
                limit=self.per_tenant,
            )
        self._of_tenant[tenant] = self._of_tenant.get(tenant, 0) + 1
        if session is not None:
            self._of_session[session] = self._of_session.get(session, 0) + 1

    def give(self, tenant: str, session: str | None) -> None:
        """A stream of ``tenant`` (and ``session``) ended."""
        for counts, key in ((self._of_tenant, tenant), (self._of_session, session)):
            if key is None:
                continue
            left = counts.get(key, 1) - 1
            if left > 0:
                counts[key] = left
            else:
                counts.pop(key, None)

    def held(self, tenant: str) -> int:
        """The streams ``tenant`` holds now."""
        return self._of_tenant.get(tenant, 0)


__all__ = ["StreamCaps"]
