"""gRPC for the kernel: the service ``qmk.v1.Kernel`` (``qmk serve --grpc``) and a client.

:class:`Client` (in :mod:`qmk.grpc.client`) calls every syscall as the JSON-RPC client
does (``q_submit``, ``q_wait``, ...), plus :meth:`Client.submit` for program text and
:meth:`Client.watch_job`; the server is :mod:`qmk.grpc.server`, the messages
:mod:`qmk.grpc.schema`, the status table :mod:`qmk.grpc.status`. Needs the ``grpc``
extra (``pip install 'quantum-microkernel[grpc]'``). See ``docs/grpc.md``.
"""

from __future__ import annotations

import os
from typing import Any

#: gRPC's fork support, off unless the environment says otherwise (read when gRPC's core
#: starts, so before any of this package imports it): it restarts gRPC's threads in a
#: forked child, and a process that forks only to exec (the kernel starting its
#: forkserver, a test starting ``qmk serve``) can have the child's restarted poller meet
#: the descriptors closed before the exec and abort (SIGABRT, ``epoll_wait error: Bad
#: file descriptor``: a CI run's ``qmk serve`` started after the gRPC tests).
FORK_SUPPORT_ENV = "GRPC_ENABLE_FORK_SUPPORT"
os.environ.setdefault(FORK_SUPPORT_ENV, "false")

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from qmk.grpc.client import Client

        return Client
    raise AttributeError(f"module 'qmk.grpc' has no attribute {name!r}")
