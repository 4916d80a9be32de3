"""What every test process needs before any test module is imported."""

from __future__ import annotations

import os

# gRPC's fork support off before anything imports gRPC (as qmk.grpc sets it): the tests'
# gRPC clients leave gRPC's threads running, and a later test's ``qmk serve``, forked to
# exec, could abort in the child (qmk.grpc.FORK_SUPPORT_ENV says why)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
