"""Helpers of the gRPC tests: the listener's address from a server's ready line, clients."""

from __future__ import annotations

import re
from typing import Any

from support.http import HttpServer
from support.kernel import TENANTS

_GRPC = re.compile(r"grpcs?://([^\s\"]+)")


def grpc_target(server: HttpServer) -> str:
    """The ``HOST:PORT`` of the server's gRPC listener, read from its ready line."""
    found = _GRPC.search(server.out_path.read_text(errors="replace"))
    assert found, server.output()
    return found.group(1)


def connect(target: str, tenant: str = "alice", caps: tuple[str, ...] = (), **options: Any) -> Any:
    """A :class:`qmk.grpc.Client` with a session of ``tenant`` (all its caps unless
    ``caps``)."""
    from qmk.grpc.client import Client

    wanted = list(caps or TENANTS[tenant]["caps"])
    return Client.connect(target, tenant=tenant, key=TENANTS[tenant]["key"], caps=wanted, **options)
