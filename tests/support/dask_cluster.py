"""A real Dask ``LocalCluster`` for the tests of the Dask pool (the dask extra)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def local_cluster(workers: int, **options: Any) -> Iterator[Any]:
    """:func:`qmk.kernel.pools.dask_pool.local_cluster` with ``CLUSTER_CONFIG`` held for the
    cluster's life, so a worker added later is never daemonic (it would refuse every
    job). Closed on leaving."""
    import dask

    from qmk.kernel.pools import dask_pool

    with dask.config.set(dask_pool.CLUSTER_CONFIG):
        cluster = dask_pool.local_cluster(workers, **options)
        try:
            yield cluster
        finally:
            cluster.close(timeout=20)
