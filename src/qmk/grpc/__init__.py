"""gRPC for the kernel: the service ``qmk.v1.Kernel`` (``qmk serve --grpc``) and a client.

:class:`Client` (in :mod:`qmk.grpc.client`) calls every syscall as the JSON-RPC client
does (``q_submit``, ``q_wait``, ...), plus :meth:`Client.submit` for program text and
:meth:`Client.watch_job`; the server is :mod:`qmk.grpc.server`, the messages
:mod:`qmk.grpc.schema`, the status table :mod:`qmk.grpc.status`. Needs the ``grpc``
extra (``pip install 'quantum-microkernel[grpc]'``). See ``docs/grpc.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from qmk.grpc.client import Client

        return Client
    raise AttributeError(f"module 'qmk.grpc' has no attribute {name!r}")
