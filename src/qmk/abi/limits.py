"""The ``[server]`` table: where the listeners listen, and the limits every wire keeps.

:class:`ServerConfig` is one frozen value: the addresses of the JSON-RPC server and every
key of the kernel config's ``[server]`` table (:data:`LIMITS`, each with its lowest value
and doc line in its field's metadata). The JSON-RPC server (:mod:`qmk.abi.server`), the
door every wire passes (:mod:`qmk.abi.door`), the HTTP API and gRPC read their limits
from it; docs/qsyscall.md's table lists every key (a test compares them).

>>> config = ServerConfig.from_table({"max_connections": 10}, tcp=("127.0.0.1", 0))
>>> config.max_connections, config.max_connections_per_peer == defaults.MAX_CONNECTIONS_PER_PEER
(10, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from qmk import defaults
from qmk.abi.errors import ServeError

#: The smallest file-descriptor reserve, and the share of RLIMIT_NOFILE it grows with.
FD_RESERVE_MIN, FD_RESERVE_SHARE = 64, 8


def _limit(default: Any, low: float, doc: str, kind: type = int) -> Any:
    """A field of :class:`ServerConfig` that the ``[server]`` table may set."""
    return field(default=default, metadata={"low": low, "doc": doc, "kind": kind})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Where the server listens, and its limits.

    Every field but the addresses is a key of the kernel config's ``[server]`` table
    (:meth:`from_table`); its metadata hold the key's lowest value and its doc line.

    Args:
        socket_path: the Unix socket's path (None: no Unix socket).
        tcp: ``(host, port)`` to listen on TCP too (None: no TCP). Port 0 picks one.
    """

    socket_path: Path | None = None
    tcp: tuple[str, int] | None = None
    max_line: int = _limit(defaults.MAX_LINE_BYTES, 1024, "the longest request line, in bytes")
    max_line_unauthenticated: int = _limit(
        defaults.MAX_LINE_UNAUTHENTICATED_BYTES,
        1024,
        "the longest line, and the most bytes of requests in flight, of a connection "
        "before one of its requests succeeds",
    )
    max_depth: int = _limit(
        defaults.MAX_JSON_DEPTH, 2, "the deepest nesting of arrays and objects in a line"
    )
    max_connections: int = _limit(defaults.MAX_CONNECTIONS, 1, "connections held at once")
    max_connections_per_peer: int = _limit(
        defaults.MAX_CONNECTIONS_PER_PEER,
        1,
        "connections of one peer (an IP address; a process on the Unix socket)",
    )
    max_connections_per_tenant: int = _limit(
        defaults.MAX_CONNECTIONS_PER_TENANT,
        1,
        "signed-in connections of one tenant, on every listener together",
    )
    fd_reserve: int | None = _limit(
        defaults.FD_RESERVE,
        0,
        "file descriptors kept free for workers and the database "
        f"(default: the larger of {FD_RESERVE_MIN} and RLIMIT_NOFILE/{FD_RESERVE_SHARE})",
    )
    max_inflight: int = _limit(defaults.MAX_INFLIGHT, 1, "requests of a connection run at once")
    max_inflight_bytes: int = _limit(
        defaults.MAX_INFLIGHT_BYTES,
        1024,
        "bytes of requests of an authenticated connection run at once (one line always may)",
    )
    max_unsent_bytes: int = _limit(
        defaults.MAX_UNSENT_BYTES,
        4096,
        "unsent reply bytes of a connection past which its requests are not read",
    )
    drain_timeout_s: float = _limit(
        defaults.DRAIN_TIMEOUT_S,
        0,
        "seconds a stopping server gives requests in flight and unsent replies",
        float,
    )
    auth_timeout_s: float = _limit(
        defaults.AUTH_TIMEOUT_S,
        0.001,
        "seconds a connection may stay before one of its requests succeeds",
        float,
    )
    idle_timeout_s: float = _limit(
        defaults.IDLE_TIMEOUT_S,
        0.001,
        "seconds a signed-in connection may stay idle (no request, no byte sent to it, no "
        "live watch) before it is closed",
        float,
    )
    accept_rate: float = _limit(
        defaults.ACCEPT_RATE,
        0.001,
        "connections accepted per second of all peers (bursts up to max_connections)",
        float,
    )
    accept_rate_per_peer: float = _limit(
        defaults.ACCEPT_RATE_PER_PEER,
        0.001,
        "connections accepted per second of one peer (bursts up to max_connections_per_peer)",
        float,
    )
    write_timeout_s: float = _limit(
        defaults.WRITE_TIMEOUT_S,
        0.001,
        "seconds a connection's unsent replies may stay above max_unsent_bytes (its client "
        "does not read) before it is dropped, on both wires",
        float,
    )
    http_header_timeout_s: float = _limit(
        defaults.HTTP_HEADER_TIMEOUT_S,
        0.001,
        "seconds an HTTP connection may take to send a request's line and headers",
        float,
    )
    http_body_timeout_s: float = _limit(
        defaults.HTTP_BODY_TIMEOUT_S,
        0.001,
        "seconds an HTTP request's body may take to arrive once its headers are read",
        float,
    )
    http_keep_alive_s: float = _limit(
        defaults.HTTP_KEEP_ALIVE_S,
        0.001,
        "seconds an idle kept-alive HTTP connection stays open after its last response",
        float,
    )
    http_max_url_bytes: int = _limit(
        defaults.HTTP_MAX_URL_BYTES, 256, "the longest URL (path and query) of an HTTP request"
    )
    http_max_head_bytes: int = _limit(
        defaults.HTTP_MAX_HEAD_BYTES,
        1024,
        "the most bytes of an HTTP request's line and headers together",
    )
    max_streams_per_session: int = _limit(
        defaults.MAX_STREAMS_PER_SESSION,
        1,
        "live event streams (SSE, q_watch, WatchJob) of one session at once",
    )
    max_streams_per_tenant: int = _limit(
        defaults.MAX_STREAMS_PER_TENANT,
        1,
        "live event streams (SSE, q_watch, WatchJob) of one tenant at once",
    )
    failed_logins_per_peer: int = _limit(
        defaults.FAILED_LOGINS_PER_PEER,
        1,
        "failed logins (a wrong key or tenant) one peer may make in a burst as one tenant "
        "name, all wires together",
    )
    failed_login_rate_per_peer: float = _limit(
        defaults.FAILED_LOGIN_RATE_PER_PEER,
        0.001,
        "failed logins one peer may make per second as one tenant name past its burst",
        float,
    )
    audit_rate_per_tenant: float = _limit(
        defaults.AUDIT_RATE_PER_TENANT,
        0.001,
        "calls that write audit lines (sessions, delegations, channels, checkpoints, ...) "
        "one tenant may make per second",
        float,
    )
    audit_burst_per_tenant: int = _limit(
        defaults.AUDIT_BURST_PER_TENANT,
        1,
        "calls that write audit lines one tenant may make in a burst",
    )
    max_held_answer_bytes: int = _limit(
        defaults.MAX_HELD_ANSWER_BYTES,
        1024 * 1024,
        "bytes of answers held whole until sent (gRPC messages, GraphQL answers), all calls "
        "together; one GraphQL answer holds at most this much",
    )
    graphql_max_answer_bytes: int = _limit(
        defaults.GRAPHQL_MAX_ANSWER_BYTES,
        1024,
        "bytes of one GraphQL answer, its fields together (a field past it is null, and an "
        "answer past it has no data)",
    )
    graphql_max_depth: int = _limit(
        defaults.GRAPHQL_MAX_DEPTH, 1, "the deepest nesting of a GraphQL query's fields"
    )
    graphql_max_cost: int = _limit(
        defaults.GRAPHQL_MAX_COST,
        1,
        "the largest cost of a GraphQL query (each field 1, each syscall field 10, times the "
        "lists above it)",
    )
    graphql_max_aliases: int = _limit(
        defaults.GRAPHQL_MAX_ALIASES, 0, "aliases of a GraphQL query, its fragments expanded"
    )
    graphql_max_tokens: int = _limit(
        defaults.GRAPHQL_MAX_TOKENS, 1, "tokens of a GraphQL query's text"
    )
    graphql_max_fields: int = _limit(
        defaults.GRAPHQL_MAX_FIELDS, 1, "fields of a GraphQL query, its fragments expanded"
    )
    graphql_max_spreads: int = _limit(
        defaults.GRAPHQL_MAX_SPREADS, 0, "fragment spreads written in a GraphQL query"
    )
    graphql_max_time_s: float = _limit(
        defaults.GRAPHQL_MAX_TIME_S,
        0.001,
        "seconds a GraphQL query may run (parse, validation, execution)",
        float,
    )
    graphql_max_queries: int = _limit(
        defaults.GRAPHQL_MAX_QUERIES, 1, "GraphQL queries running or waiting at once"
    )

    def __post_init__(self) -> None:
        if self.socket_path is None and self.tcp is None:
            raise ValueError("a server needs a socket path or a TCP address")
        for spec in LIMITS:
            value = getattr(self, spec.name)
            if value is not None and not value >= spec.metadata["low"]:
                raise ValueError(f"{spec.name} must be >= {spec.metadata['low']}, got {value}")

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], *, source: str | None = None, **addresses: Any
    ) -> ServerConfig:
        """The config of a ``[server]`` table (parsed TOML), with ``addresses``.

        Raises:
            ServeError: ``bad-server-config``, naming the key (and ``source``, the file).
        """
        prefix = f"{source}: " if source else ""
        known = {spec.name: spec for spec in LIMITS}
        values: dict[str, Any] = {}
        for key, value in table.items():
            spec = known.get(key)
            if spec is None:
                raise ServeError.of(
                    "bad-server-config",
                    f"{prefix}unknown key 'server.{key}'; expected one of {', '.join(known)}",
                    key=f"server.{key}",
                )
            low, kind = spec.metadata["low"], spec.metadata["kind"]
            number = isinstance(value, int) or (kind is float and isinstance(value, float))
            if isinstance(value, bool) or not number or not math.isfinite(value) or value < low:
                what = "an integer" if kind is int else "a number"
                raise ServeError.of(
                    "bad-server-config",
                    f"{prefix}server.{key} must be {what} >= {low:g}, got {value!r}",
                    key=f"server.{key}",
                )
            values[key] = kind(value)
        return cls(**addresses, **values)


#: The fields of :class:`ServerConfig` that are limits: the keys of the ``[server]`` table.
LIMITS = tuple(spec for spec in fields(ServerConfig) if "doc" in spec.metadata)

__all__ = ["FD_RESERVE_MIN", "FD_RESERVE_SHARE", "LIMITS", "ServerConfig"]
