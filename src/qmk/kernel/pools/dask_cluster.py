"""The Dask cluster as the kernel's pool sees it: its connection to the scheduler, the
workers that answered its hello, and the kernel's queue told to the scheduler's autoscaler.

:class:`ClusterLink` keeps the client connected: a scheduler back after it went away gets
the plugins and the notes' subscription again, and a client that gave up reconnecting is
replaced. It asks the scheduler every :data:`REFRESH_S` which workers there are: a
worker gone is lost, and the calls out to it end; a new one that answers a hello takes
jobs. It picks the worker with the fewest calls out per thread for each attempt, and
publishes the kernel's queue to the queue plugin (:mod:`.dask_scaler`). A pool that
follows the cluster runs as many jobs at once as the cluster has worker threads now. The
jobs out on it are :mod:`.dask_jobs`'s; the pool that holds both is :mod:`.dask_pool`'s
:class:`~qmk.kernel.pools.dask_pool.DaskPool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qmk.errors import UnavailableError
from qmk.kernel.pools.dask_protocol import NOTES_TOPIC, PLUGIN

_log = logging.getLogger("qmk.kernel.dask")

#: How often the pool looks at its client's connection to the scheduler.
WATCH_S = 0.25
#: How often the pool asks the scheduler which workers there are (and at once when a
#: call to a worker fails, or no worker is known).
REFRESH_S = 1.0
#: How long the pool waits for the scheduler's or a worker's answer to a question.
ASK_S = 5.0
#: The kernel's queue goes to the scheduler when it changes (looked at every
#: :data:`WATCH_S`), and at least this often while it does not.
QUEUE_PUBLISH_S = 5.0
#: The scheduler forgets a kernel's queue this long after its last word.
QUEUE_TTL_S = 30.0


@dataclass(eq=False)
class KnownWorker:
    """A Dask worker that answered the pool's hello: it runs jobs."""

    address: str
    threads: int
    pid: int
    gone: asyncio.Future[str]  # done (with why) once the pool has lost it
    out: int = 0  # calls out to it now


class ClusterLink:
    """The connection to a Dask cluster and its workers (see the module docstring), on
    the pool's loop.

    Args:
        address: the scheduler's address.
        security: a ``distributed.security.Security`` (TLS) for the cluster's wire.
        connect_s: how long to try the scheduler, then to wait for its first worker, at
            the start.
        loop: the pool's loop (every method but the plain reads runs on it).
        on_note: the handler of the notes of running jobs (the scheduler's events of
            :data:`~qmk.kernel.pools.dask_protocol.NOTES_TOPIC`).
        name: the kernel's name on the scheduler's queue plugin.
        max_workers: how many jobs the kernel runs at once (None: the cluster's worker
            threads, at least one, followed as workers join and leave).
    """

    def __init__(
        self,
        address: str,
        *,
        security: Any,
        connect_s: float,
        loop: asyncio.AbstractEventLoop,
        on_note: Callable[[Any], None],
        name: str,
        max_workers: int | None,
    ) -> None:
        self.address = address
        self.security = security
        self.connect_s = connect_s
        self.loop = loop
        self._on_note = on_note
        self._name = name
        self.client: Any = None
        #: The workers the pool sends jobs to, by address.
        self.workers: dict[str, KnownWorker] = {}
        #: Workers the pool sends jobs to, and workers it lost since it started (plain
        #: ints, read by the kernel's metrics from another thread).
        self.known_workers = 0
        self.lost_workers = 0
        #: A call failed or no worker was known: ask the scheduler at once.
        self.stale = False
        self._comm_seen: Any = None
        self._demand: Callable[[], tuple[int, int]] | None = None
        self._capacity: Callable[[int], None] | None = None
        self._published: tuple[Any, ...] | None = None
        self._published_at = float("-inf")
        #: Whether the scheduler took the queue plugin (a scheduler without QMK cannot).
        self.queue_plugin = False
        #: Whether :attr:`max_workers` follows the cluster's worker threads.
        self.follows = max_workers is None
        #: How many jobs the kernel runs at once.
        self.max_workers = max_workers or 1

    # ------------------------------------------------------------------ the connection

    async def open(self) -> int:
        """Connect to the scheduler, install the plugins; the cluster's worker threads.

        Raises:
            UnavailableError: the scheduler does not answer within ``connect_s``, or
                stopped answering, or its workers cannot take QMK's job handlers.
        """
        from distributed import Client

        self.changed = asyncio.Event()
        try:
            self.client = await Client(
                self.address,
                security=self.security,
                timeout=self.connect_s,
                asynchronous=True,
                set_as_default=False,
            )
        except (OSError, TimeoutError) as exc:
            raise UnavailableError(
                f"--dask: no Dask scheduler answers at {self.address}: {exc}"
            ) from None
        try:
            await self._attach()
            with contextlib.suppress(Exception):  # a cluster whose workers are still coming
                await self.client.wait_for_workers(1, timeout=self.connect_s)
            listed = await self.refresh()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self.client.close()
            if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError)):
                raise UnavailableError(
                    f"--dask: the Dask scheduler at {self.address} stopped answering: {exc!r}"
                ) from None
            raise
        return sum(listed.values())

    async def _attach(self) -> None:
        """On a (new) connection to a scheduler: the notes subscribed, the plugins there."""
        from qmk.kernel.pools.dask_worker import JobsPlugin

        self._comm_seen = self.client.scheduler_comm
        self.client.subscribe_topic(NOTES_TOPIC, self._on_note)
        try:
            await self.client.register_plugin(JobsPlugin(), name=PLUGIN)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            raise
        except Exception as exc:  # a worker that cannot load it (no QMK there, another one)
            raise UnavailableError(
                f"--dask: a worker of {self.address} cannot take QMK's job handlers "
                f"({type(exc).__name__}: {exc}); install the same QMK on every worker"
            ) from None
        await self._attach_queue()

    async def _attach_queue(self) -> None:
        """The queue plugin on the scheduler; one that cannot load it (no QMK there)
        runs the jobs all the same, and its autoscaler does not see the queue."""
        from qmk.kernel.pools.dask_protocol import QUEUE_PLUGIN
        from qmk.kernel.pools.dask_scaler import QueuePlugin

        try:
            await self.client.register_plugin(QueuePlugin(), name=QUEUE_PLUGIN)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            raise
        except Exception as exc:
            self.queue_plugin = False
            _log.warning(
                "the Dask scheduler at %s cannot take QMK's queue plugin (%s: %s): its "
                "adaptive target will not see the kernel's queue; install QMK beside it",
                self.address,
                type(exc).__name__,
                exc,
            )
            return
        self.queue_plugin = True
        self._published = None  # a new scheduler hears the queue at once

    async def watch(self) -> None:
        """Keep the connection: a scheduler back after it went away gets the plugin and
        the subscription again; ask it which workers there are every REFRESH_S."""
        from distributed import Client

        refreshed = 0.0
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                if self.client.status == "closed":  # it gave up reconnecting: a new one
                    try:
                        client = await Client(
                            self.address,
                            security=self.security,
                            timeout=1,
                            asynchronous=True,
                            set_as_default=False,
                        )
                    except (OSError, TimeoutError, asyncio.TimeoutError):
                        continue
                    old, self.client = self.client, client
                    with contextlib.suppress(Exception):
                        await old.close()
                if self.client.status != "running":
                    continue
                if self.client.scheduler_comm is not self._comm_seen:
                    await self._attach()
                    refreshed = 0.0
                now = self.loop.time()
                if now - refreshed >= REFRESH_S or self.stale:
                    refreshed = now
                    await self.refresh()
                await self._publish_if_due()
            except (OSError, TimeoutError, asyncio.TimeoutError) as exc:  # it went away
                _log.info("the Dask scheduler did not answer: %r", exc)
            except UnavailableError as exc:  # a new scheduler's workers refuse the plugin
                _log.error("%s", exc)
            except Exception:  # a bug of ours must not end the watch
                _log.exception("the Dask pool's watch failed")

    async def scheduler_answers(self) -> bool:
        """Whether the scheduler answers now (its workers went with it when it does not)."""
        if self.client.status != "running":
            return False
        try:
            await asyncio.wait_for(self.client.nthreads(), ASK_S)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            return False
        return self.client.status == "running"

    async def close(self) -> None:
        """The notes unsubscribed and the client closed (whatever fails on the way)."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(NOTES_TOPIC)
            with contextlib.suppress(Exception):
                await self.client.close(timeout=5)

    # ------------------------------------------------------------------ the workers

    async def refresh(self) -> dict[str, int]:
        """Take the scheduler's list of workers: the ones gone are lost (their jobs
        start again elsewhere), the new ones that answer a hello take jobs. Returns the
        list (address -> threads)."""
        self.stale = False
        listed = await asyncio.wait_for(self.client.nthreads(), ASK_S)
        for address, worker in list(self.workers.items()):
            if address not in listed:
                self.lose(worker, "its Dask worker left the cluster")
        new = [address for address in listed if address not in self.workers]
        for address, hello in zip(new, await asyncio.gather(*map(self._hello, new)), strict=True):
            if hello is not None and address in listed and address not in self.workers:
                self.workers[address] = KnownWorker(
                    address=address,
                    threads=max(int(hello["threads"]), 1),
                    pid=int(hello["pid"]),
                    gone=self.loop.create_future(),
                )
        self.known_workers = len(self.workers)
        self._follow()
        self.changed.set()
        return dict(listed)

    def _follow(self) -> None:
        """A pool that follows the cluster runs as many jobs as it has threads now."""
        if not self.follows:
            return
        threads = max(sum(worker.threads for worker in self.workers.values()), 1)
        if threads != self.max_workers:
            self.max_workers = threads
            if self._capacity is not None:
                self._capacity(threads)

    async def _hello(self, address: str) -> Mapping[str, Any] | None:
        """The worker's hello: None if it does not answer, or has no handlers (yet)."""
        try:
            hello = await asyncio.wait_for(self.client.rpc(address).qmk_hello(), ASK_S)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            return None
        return hello if isinstance(hello, Mapping) else None

    def lose(self, worker: KnownWorker, why: str) -> None:
        """The pool no longer sends ``worker`` jobs; the calls out to it end (``why``)."""
        if self.workers.get(worker.address) is worker:
            del self.workers[worker.address]
            self.known_workers = len(self.workers)
            self._follow()
        if not worker.gone.done():
            worker.gone.set_result(why)
            self.lost_workers += 1
        self.stale = True

    async def pick(self, wanted: Callable[[], bool]) -> KnownWorker | None:
        """The worker with the fewest calls out per thread (waits while there is none,
        or no scheduler: Dask workers close without theirs); None once ``wanted()`` is
        false (the attempt is over)."""
        while True:
            if not wanted():
                return None
            best: KnownWorker | None = None
            if self.client.status == "running":
                for worker in self.workers.values():
                    if best is None or worker.out * best.threads < best.out * worker.threads:
                        best = worker
            if best is not None:
                return best
            self.stale = True
            self.changed.clear()
            await self.changed.wait()

    # ------------------------------------------------------------------ the queue

    def watch_queue(
        self,
        demand: Callable[[], tuple[int, int]],
        capacity: Callable[[int], None] | None = None,
    ) -> None:
        """Publish the kernel's queue to the scheduler: ``demand()`` is (jobs queued in
        the kernel, jobs it has out), read on the pool's loop; ``capacity(n)`` is told
        each new :attr:`max_workers` of a pool that follows the cluster."""
        self._demand = demand
        self._capacity = capacity

    async def publish_queue(self) -> bool:
        """Publish the kernel's queue now (on the pool's loop); whether the scheduler
        took it (False: no queue to publish, no scheduler, or one without the plugin)."""
        said = self._queue_now()
        if said is None or not self.queue_plugin or self.client.status != "running":
            return False
        queued, running, busy, threads = said
        await asyncio.wait_for(
            self.client.scheduler.qmk_queue(
                kernel=self._name,
                queued=queued,
                running=running,
                busy=list(busy),
                threads=threads,
                ttl_s=QUEUE_TTL_S,
            ),
            ASK_S,
        )
        self._published, self._published_at = said, self.loop.time()
        return True

    def _queue_now(self) -> tuple[int, int, tuple[str, ...], int] | None:
        """(jobs queued in the kernel, jobs out, the workers holding them, threads per
        worker), or None while the kernel has not said where to read its queue."""
        if self._demand is None:
            return None
        queued, running = self._demand()
        busy = tuple(sorted(a for a, worker in self.workers.items() if worker.out))
        threads = max((worker.threads for worker in self.workers.values()), default=1)
        return int(queued), int(running), busy, threads

    async def _publish_if_due(self) -> None:
        if self._demand is None or not self.queue_plugin:
            return
        due = self.loop.time() - self._published_at >= QUEUE_PUBLISH_S
        if due or self._published != self._queue_now():
            await self.publish_queue()


__all__ = ["ASK_S", "REFRESH_S", "ClusterLink", "KnownWorker"]
