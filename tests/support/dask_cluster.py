"""A real Dask ``LocalCluster`` for the tests of the Dask pool (the dask extra)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def local_cluster(workers: int, **options: Any) -> Iterator[Any]:
    """``workers`` Dask worker processes of one thread each on 127.0.0.1, with the
    settings the kernel's pool needs (``CLUSTER_CONFIG``) held for the cluster's life:
    a worker added later reads them as it starts (without them it would be daemonic and
    refuse every job). ``options`` go to ``LocalCluster`` (``protocol``, ``security``).
    Closed on leaving."""
    import dask
    import distributed

    from qmk.kernel.dask_pool import CLUSTER_CONFIG

    with dask.config.set(CLUSTER_CONFIG):
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # its HTTP server binds anyway: not on 8787
            worker_dashboard_address=None,
            **options,
        )
        try:
            yield cluster
        finally:
            cluster.close(timeout=20)
