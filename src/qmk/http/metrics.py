"""Prometheus metrics of the kernel and its wires, served at ``GET /metrics``.

Every metric is named ``qmk_*`` and lives in the application's own registry (two kernels
in one process never share a counter). Three sources feed them:

- at each scrape, the kernel's load (``q_kernel_load``, read as the scraper): jobs
  not final by state and tenant, queue depth, workers and their use, the audit chain's
  length, physical qubits, the epoch;
- with it, the kernel's job counters (:class:`~qmk.abi.tally.JobTally` of its events):
  jobs that ended by state and tenant, the queue and run latency histograms, the engine
  each completed job ran on and the logical errors its run injected;
- every syscall of every wire: its latency by transport and syscall (the door every
  wire passes tells :meth:`Metrics.observe_rpc` of each, :meth:`qmk.abi.door.Door.
  observe`).

The table :data:`METRICS` names and documents each one; docs/http.md lists it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from qmk.abi.events import Call
from qmk.abi.probe import KernelSnapshot, MachineFacts
from qmk.abi.probing import snapshot_from_json
from qmk.abi.tally import COUNTERS, HISTOGRAMS, JobTally
from qmk.errors import AuthError, SessionError

#: The media type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Every metric: (name, type, help). Counters are exposed with ``_total``.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("qmk_jobs", "gauge", "jobs not final, by state and tenant"),
    ("qmk_queue_depth", "gauge", "jobs waiting in the run queue, by tenant"),
    ("qmk_workers", "gauge", "worker processes"),
    ("qmk_workers_busy", "gauge", "workers running a job"),
    ("qmk_worker_utilisation", "gauge", "busy workers / workers (0..1)"),
    ("qmk_audit_chain_length", "gauge", "lines in the audit log's hash chain"),
    ("qmk_physical_qubits", "gauge", "physical qubits of the modules that are up"),
    ("qmk_physical_qubits_in_use", "gauge", "physical qubits held by running jobs"),
    ("qmk_epoch", "gauge", "the kernel's epoch counter"),
    ("qmk_jobs_finished", "counter", "jobs that reached a final state, by state and tenant"),
    ("qmk_job_transitions", "counter", "job state transitions, by state"),
    ("qmk_job_queue_seconds", "histogram", "seconds from acceptance to start, by tenant"),
    ("qmk_job_run_seconds", "histogram", "seconds of a job's last run, by final state"),
    ("qmk_engine_choice", "counter", "completed jobs by the engine that ran them"),
    (
        "qmk_result_cache_hits",
        "counter",
        "jobs answered from an earlier run's stored result (no run), by tenant",
    ),
    ("qmk_logical_errors_injected", "counter", "logical errors injected by runs, by tenant"),
    ("qmk_queue_oldest_seconds", "gauge", "seconds the oldest job in the run queue has waited"),
    (
        "qmk_data_disk_free_bytes",
        "gauge",
        "bytes free on the data directory's disk (absent: not knowable)",
    ),
    (
        "qmk_data_disk_reserve_bytes",
        "gauge",
        "free bytes below which submits, logins and delegations are refused "
        "(kernel.min_free_disk_mb; 0: none)",
    ),
    ("qmk_result_storage_bytes", "gauge", "bytes of stored results, by tenant"),
    (
        "qmk_result_storage_limit_bytes",
        "gauge",
        "results a tenant may store (max_result_storage_mb), by tenant",
    ),
    (
        "qmk_audit_chain_problems",
        "gauge",
        "audit-chain and data-directory damage the kernel was started over (--recover)",
    ),
    ("qmk_dask_workers", "gauge", "Dask workers the pool sends jobs to (with --dask only)"),
    (
        "qmk_workers_lost",
        "counter",
        "workers the pool lost under it (a Dask worker killed or gone); their jobs ran again",
    ),
    (
        "qmk_server_restarts",
        "counter",
        "times qmk serve replaced a user-mode server that ended (killed or crashed), by server",
    ),
    ("qmk_job_errors", "counter", "jobs that ended with an error, by its QMK code and tenant"),
    (
        "qmk_webhook_backlog",
        "gauge",
        "billing webhooks not yet delivered (PENDING in the outbox; absent: no webhook)",
    ),
    (
        "qmk_webhook_oldest_pending_seconds",
        "gauge",
        "seconds the oldest undelivered billing webhook has waited since its job ended",
    ),
    (
        "qmk_webhook_dead_letters",
        "gauge",
        "billing webhooks refused at every attempt (qmk billing dead-letters; until replayed)",
    ),
    (
        "qmk_rpc_seconds",
        "histogram",
        "syscall latency, by transport (http, jsonrpc, grpc) and method",
    ),
    ("qmk_http_requests", "counter", "HTTP requests by route and status"),
    ("qmk_machine_cycle", "gauge", "the shared machine's clock, in logical cycles"),
    (
        "qmk_machine_jobs",
        "gauge",
        "jobs on the shared machine in machine time, by state (queued, running, stopped, done)",
    ),
    (
        "qmk_machine_utilization",
        "gauge",
        "busy over available since the first arrival, by resource (tiles, factories, links)",
    ),
    ("qmk_machine_tenant_share", "gauge", "each tenant's share of the machine's tile-cycles"),
    ("qmk_machine_jain_fairness", "gauge", "Jain's index over tenants' shares, by quota"),
    ("qmk_machine_throughput_jobs_per_second", "gauge", "jobs done per machine-second"),
    ("qmk_machine_slowdown", "gauge", "turnaround over runtime alone, by statistic (mean, p95)"),
    (
        "qmk_machine_idle_logical_error",
        "gauge",
        "the idle logical error jobs done were given, by statistic (mean, max)",
    ),
    ("qmk_machine_over_budget", "gauge", "jobs done whose idle error passed their error budget"),
)

_LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
)  # fmt: skip


def _help(name: str) -> str:
    return next(text for metric, _, text in METRICS if metric == name)


#: Each counter of a :class:`~qmk.abi.tally.JobTally`: its metric.
_TALLY_COUNTERS = {
    "finished": "qmk_jobs_finished",
    "transitions": "qmk_job_transitions",
    "engines": "qmk_engine_choice",
    "cache_hits": "qmk_result_cache_hits",
    "injected": "qmk_logical_errors_injected",
    "errors": "qmk_job_errors",
}
_TALLY_HISTOGRAMS = {"queue_seconds": "qmk_job_queue_seconds", "run_seconds": "qmk_job_run_seconds"}


class _Tallied(Collector):
    """The job counters of a :class:`~qmk.abi.tally.JobTally`, read at each scrape
    (``tally()``: the app's own, or the one a gateway's scrape fetched)."""

    def __init__(self, tally: Callable[[], JobTally]) -> None:
        self.tally = tally

    def describe(self) -> Iterator[Metric]:
        """Nothing at registration: the tally is read at a scrape only."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        tally = self.tally()
        for name, metric in _TALLY_COUNTERS.items():
            keys = COUNTERS[name]
            family = CounterMetricFamily(metric, _help(metric), labels=list(keys))
            for key, value in sorted(tally.counters[name].items()):
                family.add_metric(list(key), value)
            yield family
        for name, metric in _TALLY_HISTOGRAMS.items():
            key_name = HISTOGRAMS[name]
            histogram = HistogramMetricFamily(metric, _help(metric), labels=[key_name])
            for which, hist in sorted(tally.histograms[name].items()):
                histogram.add_metric([which], hist.cumulative(), hist.total)
            yield histogram


class _KernelLoad(Collector):
    """The gauges read from the kernel's snapshot at each scrape (``snapshot()``: the
    probe's, or the one a gateway's scrape fetched)."""

    def __init__(self, snapshot: Callable[[], KernelSnapshot]) -> None:
        self.snapshot = snapshot

    def describe(self) -> Iterator[Metric]:
        """Nothing at registration: the snapshot is read at a scrape only (a gateway's
        comes with the scrape's ``q_kernel_load``)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        jobs = GaugeMetricFamily("qmk_jobs", _help("qmk_jobs"), labels=["state", "tenant"])
        for (state, tenant), count in sorted(snap.jobs.items()):
            jobs.add_metric([state, tenant], count)
        yield jobs
        queue = GaugeMetricFamily("qmk_queue_depth", _help("qmk_queue_depth"), labels=["tenant"])
        for tenant, count in sorted(snap.queued.items()):
            queue.add_metric([tenant], count)
        yield queue
        utilisation = snap.busy_workers / snap.workers if snap.workers else 0.0
        for name, value in (
            ("qmk_workers", snap.workers),
            ("qmk_workers_busy", snap.busy_workers),
            ("qmk_worker_utilisation", utilisation),
            ("qmk_audit_chain_length", snap.audit_seq),
            ("qmk_physical_qubits", snap.physical_qubits_total),
            ("qmk_physical_qubits_in_use", snap.physical_qubits_in_use),
            ("qmk_epoch", snap.epoch),
            ("qmk_queue_oldest_seconds", snap.oldest_queued_s),
            ("qmk_data_disk_reserve_bytes", snap.data_disk_reserve_bytes),
            ("qmk_audit_chain_problems", snap.audit_chain_problems),
        ):
            yield GaugeMetricFamily(name, _help(name), value=value)
        if snap.dask_workers is not None:
            yield GaugeMetricFamily(
                "qmk_dask_workers", _help("qmk_dask_workers"), value=snap.dask_workers
            )
        yield CounterMetricFamily(
            "qmk_workers_lost", _help("qmk_workers_lost"), value=snap.workers_lost
        )
        restarts = CounterMetricFamily(
            "qmk_server_restarts", _help("qmk_server_restarts"), labels=["server"]
        )
        for server, count in sorted(snap.server_restarts.items()):
            restarts.add_metric([server], count)
        yield restarts
        if snap.data_disk_free_bytes is not None:
            name = "qmk_data_disk_free_bytes"
            yield GaugeMetricFamily(name, _help(name), value=snap.data_disk_free_bytes)
        if snap.webhook_backlog is not None:
            for name, value in (
                ("qmk_webhook_backlog", snap.webhook_backlog),
                ("qmk_webhook_oldest_pending_seconds", snap.webhook_oldest_s),
                ("qmk_webhook_dead_letters", snap.webhook_dead_letters),
            ):
                yield GaugeMetricFamily(name, _help(name), value=value)
        if snap.machine is not None:
            yield from _machine(snap.machine)
        for name, by_tenant in (
            ("qmk_result_storage_bytes", snap.result_storage_bytes),
            ("qmk_result_storage_limit_bytes", snap.result_storage_limit_bytes),
        ):
            family = GaugeMetricFamily(name, _help(name), labels=["tenant"])
            for tenant, value in sorted(by_tenant.items()):
                family.add_metric([tenant], value)
            yield family


def _machine(facts: MachineFacts) -> Iterator[Metric]:
    """The shared machine's gauges (docs/machine.md)."""
    yield GaugeMetricFamily("qmk_machine_cycle", _help("qmk_machine_cycle"), value=facts.cycle)
    for name, key, values in (
        ("qmk_machine_jobs", "state", facts.jobs),
        ("qmk_machine_utilization", "resource", facts.utilization),
        (
            "qmk_machine_slowdown",
            "statistic",
            {"mean": facts.mean_slowdown, "p95": facts.p95_slowdown},
        ),
        (
            "qmk_machine_idle_logical_error",
            "statistic",
            {"mean": facts.mean_idle_logical_error, "max": facts.max_idle_logical_error},
        ),
    ):
        family = GaugeMetricFamily(name, _help(name), labels=[key])
        for which, value in values.items():
            family.add_metric([which], value)
        yield family
    shares = GaugeMetricFamily(
        "qmk_machine_tenant_share", _help("qmk_machine_tenant_share"), labels=["tenant"]
    )
    for tenant, share in sorted(facts.tenant_shares.items()):
        shares.add_metric([tenant], share)
    yield shares
    for name, value in (
        ("qmk_machine_jain_fairness", facts.jain_fairness),
        ("qmk_machine_throughput_jobs_per_second", facts.throughput_jobs_per_s),
        ("qmk_machine_over_budget", facts.over_budget),
    ):
        yield GaugeMetricFamily(name, _help(name), value=value)


class Metrics:
    """The metrics of one HTTP server: its own wires' calls and requests, and the
    kernel's load and job counters as the scrape's ``q_kernel_load`` gave them
    (:meth:`exposition`; tenants labelled as ``[http] metrics_tenants`` says)."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: a scrape shows what the table says
        self.registry = CollectorRegistry(auto_describe=True)
        #: The kernel's job counters, of the last scrape's load.
        self.tally = JobTally()
        self._snapshot: KernelSnapshot | None = None
        self.registry.register(_KernelLoad(self._fetched))
        self.registry.register(_Tallied(lambda: self.tally))
        reg = self.registry
        self.rpc = Histogram(
            "qmk_rpc_seconds",
            _help("qmk_rpc_seconds"),
            ["transport", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.requests = Counter(
            "qmk_http_requests", _help("qmk_http_requests"), ["route", "status"], registry=reg
        )
        # label children are made once: a request's cost is a dict lookup and an add
        self._rpc_children: dict[tuple[str, str], Any] = {}
        self._request_children: dict[tuple[str, int], Any] = {}

    def _fetched(self) -> KernelSnapshot:
        assert self._snapshot is not None, "an exposition is given its load"
        return self._snapshot

    def observe_rpc(self, transport: str, method: str, seconds: float) -> None:
        """One syscall answered on ``transport`` in ``seconds``."""
        child = self._rpc_children.get((transport, method))
        if child is None:
            child = self._rpc_children[(transport, method)] = self.rpc.labels(transport, method)
        child.observe(seconds)

    def observe_request(self, route: str, status: int) -> None:
        """One HTTP request of ``route`` (its path template) answered with ``status``."""
        child = self._request_children.get((route, status))
        if child is None:
            child = self._request_children[(route, status)] = self.requests.labels(
                route, str(status)
            )
        child.inc()

    def exposition(self, load: tuple[KernelSnapshot, JobTally]) -> bytes:
        """The metrics in Prometheus' text format; ``load``: the kernel's snapshot and
        job counters as ``q_kernel_load`` gave them (tenants as shown there)."""
        self._snapshot, self.tally = load
        return generate_latest(self.registry)


#: Logins of scrapers an application keeps a session of at once (the oldest go first).
LOGIN_CACHE = 64


class Scrapers:
    """Who reads ``/metrics``: an operator's read-only view, which takes the
    capability ``CAP_OBSERVE`` (the kernel checks it at each ``q_kernel_load``).

    A scrape sends ``Authorization: Basic`` with a tenant and its key (a session asking
    ``CAP_OBSERVE`` is opened and kept, under a hash of the header, until the kernel
    refuses it) or ``Bearer`` with a session that holds the capability. The kernel's
    load and job counters come from that call, tenants named unless ``[http]
    metrics_tenants = "hashed"``.
    """

    def __init__(self) -> None:
        self._logins: OrderedDict[bytes, str] = OrderedDict()

    async def load(self, call: Call, authorization: str | None) -> tuple[KernelSnapshot, JobTally]:
        """The kernel's snapshot and job counters (``q_kernel_load``) as the scraper
        behind ``authorization`` may read them.

        Raises:
            AuthError: no credentials, or credentials the kernel refuses.
            CapabilityError: the session does not hold ``CAP_OBSERVE``.
        """
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip()
        if scheme.lower() == "bearer" and given:
            reply = await call("q_kernel_load", {"session_id": given})
        elif scheme.lower() == "basic" and given:
            reply = await self._as_login(call, given)
        else:
            raise AuthError(
                "/metrics reads the kernel's load as its scraper: send Authorization: "
                "Basic <tenant:key> of a tenant with CAP_OBSERVE, or Bearer <session> of a "
                "session that holds it",
                reason="no-credentials",
            )
        return snapshot_from_json(reply.snapshot), JobTally.from_json(reply.tally)

    async def _as_login(self, call: Call, basic: str) -> Any:
        """``q_kernel_load`` with the session of the login ``basic`` (kept; opened again
        once when the kernel no longer knows it)."""
        key = hashlib.sha256(basic.encode()).digest()
        known = self._logins.get(key)
        if known is not None:
            try:
                return await call("q_kernel_load", {"session_id": known})
            except SessionError:
                self._logins.pop(key, None)
        try:
            tenant, sep, secret = base64.b64decode(basic, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            tenant, sep, secret = "", "", ""
        if not sep:
            raise AuthError("Authorization: Basic must hold base64 of tenant:key")
        session = await call(
            "q_negotiate_caps", {"tenant": tenant, "key": secret, "requested": ["CAP_OBSERVE"]}
        )
        self._logins[key] = session.session_id
        while len(self._logins) > LOGIN_CACHE:
            self._logins.popitem(last=False)
        return await call("q_kernel_load", {"session_id": session.session_id})
