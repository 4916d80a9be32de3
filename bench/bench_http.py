"""Benchmark: small-job throughput and status round trips, REST beside JSON-RPC, one server.

Against a real ``qmk serve --socket ... --http 127.0.0.1:0 --workers 2`` started here
(figures, not tests: nothing fails on a timing). What it measures:

1. **Status round trip**, p50/p99, one call at a time on one keep-alive connection:
   ``GET /v1/jobs/{id}`` from the standard library's ``http.client`` (the least client
   overhead there is) and from ``httpx``; ``q_status`` over the Unix socket from
   :class:`qmk.client.Client`. Goal: REST p50 < 1 ms.
2. **Throughput of small jobs** (a Bell pair, 100 shots, QVM JSON): 8 concurrent clients,
   each with its own connection and session (opened before the clock starts), submit
   their share of the jobs one after another, then wait for each (REST:
   ``GET /v1/jobs/{id}/wait``; JSON-RPC: ``q_wait``, pipelined). Jobs/s = jobs submitted
   *and completed* / (first submit .. last completion); every job's state and counts are
   checked. Goal: >= 500 jobs/s over REST. Three clients, side by side:

   - ``rest``: a lean HTTP/1.1 client (asyncio streams, keep-alive, the program's JSON
     encoded once) -- what the server sustains when the client costs little;
   - ``rest-httpx``: ``httpx.AsyncClient`` (what a typical Python client costs);
   - ``jsonrpc``: :class:`qmk.client.AsyncClient` over the Unix socket.

   Beside each rate: the CPU time per job of the kernel process (with its HTTP server),
   of its worker processes and of the clients (this process), from ``/proc``; and the
   *server's* ceiling on this machine, cores / (kernel + workers CPU per job), which
   does not depend on the client's cost.

The machine's cores are shared by the server, its workers and the clients (and, on a
shared machine, with other people's work: the load average is printed; compare medians
of ``--repeat`` runs). ``--against SRC`` also starts a server from another checkout's
``src`` folder (e.g. ``git archive`` of an older commit) and measures the two servers
turn about, so a before/after comparison shares the machine's load. Results go to
``bench/results/http.json``.

``--gateway-latency`` measures only the REST round trips (``GET /v1/jobs/{id}``, Bell
``POST /v1/jobs``) served inline and by a gateway process (with ``--against``, of both
checkouts, turn about), each with the CPU per call of the kernel, of the gateway
process and of the client (this process); with ``grpc`` among ``--wires``, the gRPC
ones too (``Status`` of a completed job, Bell ``Submit`` as QVM JSON, from
:class:`qmk.grpc.client.Client`; the gRPC gateway's CPU beside them). The same calls
straight to the kernel's socket (``q_status``, ``q_submit`` over JSON-RPC) are timed
beside them, and each wire's hop over them is printed: the least p50 and p90 of the
runs, through the wire less straight, and the status call's CPU of its gateway and of
its client over JSON-RPC's client. Results go to ``bench/results/http_gateway.json``.

    python bench/bench_http.py [--jobs 400] [--calls 3000] [--clients 8] [--workers 2]
                               [--repeat 1] [--against SRC] [--gateway-latency]
                               [--wires rest,grpc]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import (
    KEY,
    RESULTS,
    call_latencies,
    cpu_seconds,
    descendants,
    describe,
    kernel_config,
    load_average,
    load_averages,
    machine,
    percentile,
    write_json,
)
from qmk.client import AsyncClient, Client
from qmk.qvm.files import read_graph

ROOT = Path(__file__).resolve().parents[1]
LOGIN = {"tenant": "bench", "key": KEY, "requested": ["CAP_ALLOC"]}
SHOTS = 100
#: The issue's goals.
GOAL_JOBS_PER_S = 500.0
GOAL_GET_P50_MS = 1.0
WIRES = ("rest", "rest-httpx", "jsonrpc")
#: The wires ``--gateway-latency`` times.
GATEWAY_WIRES = ("rest", "grpc")
CONFIG = kernel_config()


# --------------------------------------------------------------------------- the server


@dataclass(kw_only=True)
class Server:
    """One ``qmk serve`` process: its REST URL, its socket and its gRPC address (None:
    it serves no gRPC)."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    socket: Path
    grpc: str | None = None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def start_server(
    tmp: Path,
    workers: int,
    *,
    name: str = "this",
    src: str | None = None,
    gateway: str = "process",
    extra: tuple[str, ...] = (),
) -> Server:
    """``qmk serve`` in ``tmp/name`` (from ``src``, another checkout's src folder, if given),
    its REST API served as ``gateway`` says (``process``: the default, a gateway process;
    ``inline``: on the kernel's loop), with ``extra`` arguments."""
    home = tmp / name
    home.mkdir(parents=True)
    (home / "bench.toml").write_text(CONFIG)
    out = home / "serve.out"
    argv = [
        sys.executable, "-m", "qmk", "serve", "--socket", str(home / "bench.sock"),
        "--data-dir", str(home / "data"), "--config", str(home / "bench.toml"),
        "--workers", str(workers), "--http", "127.0.0.1:0", "--gateway", gateway, *extra,
    ]  # fmt: skip
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    log = home / "serve.log"
    proc = subprocess.Popen(argv, stdout=out.open("wb"), stderr=log.open("wb"), env=env)
    deadline = time.monotonic() + 60
    while True:
        text = out.read_text()
        found = re.search(r"(http://\S+)", text)
        grpc = re.search(r"grpc://(\S+)", text)
        if found and (home / "bench.sock").exists() and (grpc or "--grpc" not in extra):
            return Server(
                name=name,
                proc=proc,
                url=found.group(1),
                socket=home / "bench.sock",
                grpc=grpc.group(1) if grpc else None,
            )
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"qmk serve did not start: {log.read_text()}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- CPU time


@dataclass(kw_only=True)
class CpuMeter:
    """CPU seconds spent by the kernel, by its workers and by this process in a window.

    A worker replaced during the window (one that spent its CPU budget) takes its time
    with it, so the workers' figure is a lower bound.
    """

    kernel_pid: int
    start: dict[str, Any] = field(default_factory=dict)

    def _now(self) -> dict[str, Any]:
        own = os.times()
        return {
            "kernel": cpu_seconds(self.kernel_pid),
            "workers": {pid: cpu_seconds(pid) for pid in descendants(self.kernel_pid)},
            "clients": own.user + own.system,
        }

    def __enter__(self) -> CpuMeter:
        self.start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        before = self.start["workers"]
        self.spent = {
            "kernel": end["kernel"] - self.start["kernel"],
            "workers": sum(t - before.get(pid, 0.0) for pid, t in end["workers"].items()),
            "clients": end["clients"] - self.start["clients"],
        }


# --------------------------------------------------------------------------- a lean client


class Http11:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a request, then its reply.

    Only what the bench needs: ``Content-Length`` bodies (the API's JSON replies), no
    redirects, no chunked replies (refused).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> Http11:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request and read its reply: (status, body)."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:] if line)
        }
        if "content-length" not in fields:
            raise SystemExit(f"{method} {target}: a reply without Content-Length: {head}")
        return status, await self.reader.readexactly(int(fields["content-length"]))

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# --------------------------------------------------------------------------- round trips


def bench_get(url: str, calls: int, graph: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/jobs/{id}`` round trips of a completed job: http.client, then httpx."""
    import httpx

    with httpx.Client(base_url=url) as client:
        sid = client.post("/v1/sessions", json=LOGIN).json()["session_id"]
        auth = {"Authorization": f"Bearer {sid}"}
        job = client.post(
            "/v1/jobs", json={"program": graph, "shots": SHOTS, "seed": 1}, headers=auth
        )
        job_id = job.json()["job_id"]
        client.get(f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 30000}, headers=auth)
        with_httpx = call_latencies(lambda: client.get(f"/v1/jobs/{job_id}", headers=auth), calls)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    path = f"/v1/jobs/{job_id}"
    last: list[Any] = []

    def get() -> None:
        connection.request("GET", path, headers=auth)
        reply = connection.getresponse()
        last[:] = [reply.status, reply.read()]

    plain = call_latencies(get, calls)
    connection.close()
    assert last[0] == 200 and json.loads(last[1])["state"] == "COMPLETED"
    return {"http_client": plain, "httpx": with_httpx}


def metered(
    what: Callable[[], Any], count: int, warmup: int, meter: Mapping[str, int] | None
) -> dict[str, Any]:
    """``count`` round trips of ``what`` after ``warmup`` untimed ones: their figures
    (:func:`call_latencies`, and the p90) and the CPU milliseconds per call each process
    of ``meter`` (by name) spent, and with ``meter`` this process's own (``client``: a
    wire's client library is part of its round trip, and of its hop over another wire)."""
    for _ in range(warmup):
        what()
    before = {name: cpu_seconds(pid) for name, pid in (meter or {}).items()}
    own = os.times()
    times: list[float] = []

    def timed() -> None:
        started = time.perf_counter()
        what()
        times.append(time.perf_counter() - started)

    figures: dict[str, Any] = call_latencies(timed, count, warmup=0)
    figures["p90_ms"] = percentile(times, 0.9) * 1e3
    figures["cpu_ms_per_call"] = {
        name: (cpu_seconds(pid) - before[name]) * 1000 / count
        for name, pid in (meter or {}).items()
    }
    if meter:
        now = os.times()
        spent = now.user + now.system - own.user - own.system
        figures["cpu_ms_per_call"]["client"] = spent * 1000 / count
    return figures


def bench_rest_latency(
    url: str, calls: int, graph: dict[str, Any], meter: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """REST round trips one at a time on one keep-alive ``http.client`` connection:
    ``GET /v1/jobs/{id}`` of a completed job, and ``POST /v1/jobs`` of a Bell job (its
    answer, not its run: the jobs run behind the calls). With ``meter`` (processes by
    name), the CPU milliseconds each spent per call of each kind too: on a loaded
    machine a steadier figure than the round trip."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    last: list[Any] = []

    def call(method: str, path: str, body: bytes | None = None, **headers: str) -> Any:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        last[:] = [reply.status, reply.read()]
        return json.loads(last[1])

    login = call("POST", "/v1/sessions", json.dumps(LOGIN).encode())
    auth = {"Authorization": f"Bearer {login['session_id']}", "Content-Type": "application/json"}
    seeds = iter(range(1, 10**9))

    def submit() -> Any:
        body = json.dumps({"program": graph, "shots": SHOTS, "seed": next(seeds)}).encode()
        return call("POST", "/v1/jobs", body, **auth)

    job_id = submit()["job_id"]
    call("GET", f"/v1/jobs/{job_id}/wait?timeout_ms=30000", **auth)
    status = metered(lambda: call("GET", f"/v1/jobs/{job_id}", **auth), calls, 200, meter)
    assert last[0] == 200 and json.loads(last[1])["state"] == "COMPLETED"
    submits = metered(submit, max(1, calls // 4), 50, meter)
    assert last[0] in (200, 201, 202), last
    connection.close()
    return {"status": status, "submit": submits}


def bench_grpc_latency(
    address: str, calls: int, graph: dict[str, Any], meter: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """gRPC round trips one at a time on one channel, as :func:`bench_rest_latency`'s:
    ``Status`` of a completed job and ``Submit`` of a Bell job (QVM JSON), each with
    the CPU milliseconds per call of the processes of ``meter``."""
    from qmk.grpc.client import Client as GrpcClient

    client = GrpcClient.connect(address, tenant="bench", key=KEY, caps=["CAP_ALLOC"])
    return _status_and_submit(client, calls, graph, meter)


def bench_jsonrpc_latency(
    socket: Path, calls: int, graph: dict[str, Any], meter: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """The same calls straight to the kernel's socket (:class:`qmk.client.Client`):
    ``q_status`` of a completed job and ``q_submit`` of a Bell job, what a gateway's hop
    is added to."""
    return _status_and_submit(
        Client.connect(str(socket), tenant="bench", key=KEY), calls, graph, meter
    )


def _status_and_submit(
    client: Any, calls: int, graph: dict[str, Any], meter: Mapping[str, int] | None
) -> dict[str, Any]:
    """``q_status`` of a completed job and ``q_submit`` of a Bell job over ``client``
    (closed after), each with the CPU milliseconds per call of ``meter``'s processes."""
    seeds = iter(range(1, 10**9))
    with client:
        job_id = client.q_submit(graph, SHOTS, next(seeds)).job_id
        client.q_wait(job_id, 30_000)
        status = metered(lambda: client.q_status(job_id), calls, 200, meter)
        assert client.q_status(job_id).state == "COMPLETED"
        submit = lambda: client.q_submit(graph, SHOTS, next(seeds))  # noqa: E731
        submits = metered(submit, max(1, calls // 4), 50, meter)
    return {"status": status, "submit": submits}


def gateway_pid(server: Server, wire: str = "http") -> int | None:
    """The ``wire`` gateway process serving for ``server`` (None: it serves inline):
    the child named ``qmk-WIRE`` (its warm spare is ``qmk-WIRE-spare``)."""
    for pid in descendants(server.proc.pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == f"qmk-{wire}":
                return pid
        except OSError:
            continue
    return None


def bench_gateway_latency(
    tmp: Path, options: argparse.Namespace, graph: dict[str, Any], wires: list[str]
) -> int:
    """REST (and with ``grpc`` in ``wires``, gRPC) status and submit p50 served inline
    and by a gateway process, each also with ``--log-level info`` (access and job lines;
    the gateway then follows its jobs), turn about; with ``--against SRC``, inline and
    by a gateway process of that src too. Beside each p50, the least CPU per call of the
    kernel and of the gateway process. Printed and written."""
    grpc = "grpc" in wires
    wired = ("--grpc", "127.0.0.1:0") if grpc else ()
    modes: dict[str, tuple[str, tuple[str, ...], str | None]] = {
        "inline": ("inline", wired, None),
        "process": ("process", wired, None),
        "inline+info": ("inline", ("--log-level", "info", *wired), None),
        "process+follower": ("process", ("--log-level", "info", *wired), None),
    }
    if options.against:
        modes["inline@against"] = ("inline", wired, options.against)
        modes["process@against"] = ("process", wired, options.against)
    servers = {
        name: start_server(tmp, options.workers, name=name, gateway=mode, extra=extra, src=src)
        for name, (mode, extra, src) in modes.items()
    }
    timed: dict[str, Callable[[Server, int, Mapping[str, int] | None], dict[str, Any]]] = {}
    if "rest" in wires:
        timed["rest"] = lambda server, calls, meter: bench_rest_latency(
            server.url, calls, graph, meter
        )
    if grpc:
        timed["grpc"] = lambda server, calls, meter: bench_grpc_latency(
            str(server.grpc), calls, graph, meter
        )
    timed["jsonrpc"] = lambda server, calls, meter: bench_jsonrpc_latency(
        server.socket, calls, graph, meter
    )
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {
        wire: {name: [] for name in servers} for wire in timed
    }
    meters: dict[str, dict[str, dict[str, int]]] = {wire: {} for wire in timed}
    try:
        for name, server in servers.items():  # warm: imports, workers, connections
            for wire, run in timed.items():
                run(server, 300, None)
                meters[wire][name] = {"kernel": server.proc.pid}
                if (
                    wire != "jsonrpc"
                    and (gateway := gateway_pid(server, "http" if wire == "rest" else wire))
                    is not None
                ):
                    meters[wire][name]["gateway"] = gateway
        for repeat in range(options.repeat):
            order = list(servers.items())
            for name, server in order if repeat % 2 == 0 else order[::-1]:
                for wire, run in timed.items():
                    rows[wire][name].append(run(server, options.calls, meters[wire][name]))
    finally:
        for server in servers.values():
            server.stop()
    kinds = ("status", "submit")
    calls = {
        "rest": ("GET /v1/jobs/{id}", "POST /v1/jobs"),
        "grpc": ("Status", "Submit"),
        "jsonrpc": ("q_status", "q_submit"),
    }
    summary: dict[str, Any] = {}
    cpu: dict[str, Any] = {}
    least: dict[str, Any] = {
        wire: {
            name: {
                what: {q: min(run[what][f"{q}_ms"] for run in runs) for q in ("p50", "p90")}
                for what in kinds
            }
            for name, runs in by_name.items()
        }
        for wire, by_name in rows.items()
    }
    for wire, by_name in rows.items():
        summary[wire] = {
            name: {what: statistics.median(run[what]["p50_ms"] for run in runs) for what in kinds}
            for name, runs in by_name.items()
        }
        cpu[wire] = {
            name: {
                what: {
                    process: min(run[what]["cpu_ms_per_call"][process] for run in runs)
                    for process in runs[0][what]["cpu_ms_per_call"]
                }
                for what in kinds
            }
            for name, runs in by_name.items()
        }
        for name, figures in summary[wire].items():
            inline = summary[wire]["inline@against" if name.endswith("@against") else "inline"]
            spent = "; ".join(
                f"{what} "
                + ", ".join(f"{process} {ms:.3f}" for process, ms in cpu[wire][name][what].items())
                for what in kinds
            )
            status, submit = calls[wire]
            print(
                f"{wire:4} {name:18} {status} p50 {figures['status']:.3f} ms  "
                f"{submit} p50 {figures['submit']:.3f} ms  "
                f"(+{figures['status'] - inline['status']:.3f} / "
                f"+{figures['submit'] - inline['submit']:.3f} ms over inline)  "
                f"[CPU ms/call: {spent}]"
            )
    hops: dict[str, Any] = {}
    print(f"hop over JSON-RPC straight to the kernel (least of {options.repeat} runs' p50 / p90):")
    for wire in (w for w in rows if w != "jsonrpc"):
        for name in rows[wire]:
            direct, through = least["jsonrpc"][name], least[wire][name]
            hops.setdefault(wire, {})[name] = hop = {
                what: {q: through[what][q] - direct[what][q] for q in ("p50", "p90")}
                for what in kinds
            }
            status, submit = calls[wire]
            spent = cpu[wire][name]["status"]
            client = spent["client"] - cpu["jsonrpc"][name]["status"]["client"]
            print(
                f"{wire:4} {name:18} {status} p50 {through['status']['p50']:.3f} "
                f"(+{hop['status']['p50']:.3f}) p90 {through['status']['p90']:.3f} "
                f"(+{hop['status']['p90']:.3f}) ms; {submit} p50 "
                f"{through['submit']['p50']:.3f} (+{hop['submit']['p50']:.3f}) p90 "
                f"{through['submit']['p90']:.3f} (+{hop['submit']['p90']:.3f}) ms "
                f"[{status} CPU ms: gateway {spent.get('gateway', 0.0):.3f}, client "
                f"{client:+.3f} over JSON-RPC's]"
            )
    print(f"load average after: {load_average()}")
    write_json(
        {**machine(), "calls": options.calls, "repeat": options.repeat, "runs": rows,
         "p50_ms": summary, "least_ms": least, "hop_over_jsonrpc_ms": hops,
         "least_cpu_ms_per_call": cpu, "against": options.against},
        RESULTS / "http_gateway.json",
    )  # fmt: skip
    return 0


def bench_rpc_status(socket: Path, calls: int, graph: dict[str, Any]) -> dict[str, float]:
    """``q_status`` round trips over the Unix socket (the blocking client)."""
    with Client.connect(str(socket), tenant="bench", key=KEY) as client:
        job_id = client.q_submit(graph, SHOTS, 1).job_id
        client.q_wait(job_id, 30_000)
        return call_latencies(lambda: client.q_status(job_id), calls)


# --------------------------------------------------------------------------- throughput


def _check(job: dict[str, Any]) -> str:
    """The job's final state; exits if a completed Bell job's counts are wrong."""
    counts = (job.get("result") or {}).get("counts") or {}
    agree = counts.get("00", 0) + counts.get("11", 0)
    if job["state"] == "COMPLETED" and (sum(counts.values()) != SHOTS or agree < 0.9 * SHOTS):
        raise SystemExit(f"job {job['job_id']} completed with wrong counts {counts}")
    return str(job["state"])


#: A client: connect and open a session (untimed), then ``run(jobs, seed0)`` -> states.
Runner = Callable[[int, int], Awaitable[list[str]]]
Opener = Callable[[], Awaitable[tuple[Runner, Callable[[], Awaitable[None]]]]]


def lean_rest(url: str, graph: dict[str, Any]) -> Opener:
    program = json.dumps(graph, separators=(",", ":"))  # a client sends the same program

    async def open_() -> tuple[Runner, Callable[[], Awaitable[None]]]:
        conn = await Http11.open(url)
        status, data = await conn.request("POST", "/v1/sessions", json.dumps(LOGIN).encode())
        assert status == 201, data
        auth = {"Authorization": f"Bearer {json.loads(data)['session_id']}"}

        async def run(jobs: int, seed0: int) -> list[str]:
            ids = []
            for i in range(jobs):
                body = f'{{"program":{program},"shots":{SHOTS},"seed":{seed0 + i}}}'.encode()
                status, data = await conn.request("POST", "/v1/jobs", body, auth)
                assert status == 201, data
                ids.append(json.loads(data)["job_id"])
            states = []
            for job_id in ids:
                target = f"/v1/jobs/{job_id}/wait?timeout_ms=120000"
                status, data = await conn.request("GET", target, None, auth)
                states.append(_check(json.loads(data)))
            return states

        return run, conn.close

    return open_


def httpx_rest(url: str, graph: dict[str, Any]) -> Opener:
    async def open_() -> tuple[Runner, Callable[[], Awaitable[None]]]:
        import httpx

        limits = httpx.Limits(max_connections=1)
        client = httpx.AsyncClient(base_url=url, limits=limits, timeout=120)
        reply = await client.post("/v1/sessions", json=LOGIN)
        auth = {"Authorization": f"Bearer {reply.json()['session_id']}"}

        async def run(jobs: int, seed0: int) -> list[str]:
            ids = []
            for i in range(jobs):
                body = {"program": graph, "shots": SHOTS, "seed": seed0 + i}
                ids.append(
                    (await client.post("/v1/jobs", json=body, headers=auth)).json()["job_id"]
                )
            params = {"timeout_ms": 120000}
            return [
                _check((await client.get(f"/v1/jobs/{j}/wait", params=params, headers=auth)).json())
                for j in ids
            ]

        return run, client.aclose

    return open_


def jsonrpc(socket: Path, graph: dict[str, Any]) -> Opener:
    async def open_() -> tuple[Runner, Callable[[], Awaitable[None]]]:
        client = await AsyncClient.connect(str(socket), tenant="bench", key=KEY)

        async def run(jobs: int, seed0: int) -> list[str]:
            ids = [(await client.q_submit(graph, SHOTS, seed0 + i)).job_id for i in range(jobs)]
            finals = await asyncio.gather(*(client.q_wait(job_id, 120_000) for job_id in ids))
            return [_check(job) for job in finals]

        return run, client.aclose

    return open_


def opener(wire: str, server: Server, graph: dict[str, Any]) -> Opener:
    if wire == "rest":
        return lean_rest(server.url, graph)
    if wire == "rest-httpx":
        return httpx_rest(server.url, graph)
    return jsonrpc(server.socket, graph)


def bench_throughput(
    wire: str, server: Server, clients: int, jobs: int, graph: dict[str, Any], cores: int
) -> dict[str, Any]:
    """``jobs`` small jobs from ``clients`` clients of ``wire``; the rate and CPU per job."""
    share = jobs // clients
    open_ = opener(wire, server, graph)

    async def main() -> tuple[list[str], float, dict[str, float]]:
        opened = [await open_() for _ in range(clients)]
        try:
            with CpuMeter(kernel_pid=server.proc.pid) as meter:
                started = time.perf_counter()
                runs = [run(share, 10_000 * c) for c, (run, _) in enumerate(opened)]
                per_client = await asyncio.gather(*runs)
                elapsed = time.perf_counter() - started
        finally:
            for _, close in opened:
                await close()
        return [s for states in per_client for s in states], elapsed, meter.spent

    states, elapsed, spent = asyncio.run(main())
    done = states.count("COMPLETED")
    per_job = {name: seconds / len(states) * 1e3 for name, seconds in spent.items()}
    server_cpu = per_job["kernel"] + per_job["workers"]
    return {
        "wire": wire,
        "server": server.name,
        "clients": clients,
        "jobs": len(states),
        "completed": done,
        "seconds": elapsed,
        "jobs_per_s": done / elapsed,
        "cpu_ms_per_job": per_job,
        "server_ceiling_jobs_per_s": cores / server_cpu * 1e3 if server_cpu > 0 else None,
        "load_average": load_average(),
    }


def _line(run: dict[str, Any]) -> str:
    cpu = run["cpu_ms_per_job"]
    ceiling = run["server_ceiling_jobs_per_s"]
    return (
        f"{run['wire']:>10} [{run['server']}]: {run['completed']}/{run['jobs']} jobs in "
        f"{run['seconds']:.2f} s = {run['jobs_per_s']:4.0f} jobs/s "
        f"({run['jobs_per_s'] / GOAL_JOBS_PER_S:.2f}x goal); CPU ms/job kernel "
        f"{cpu['kernel']:.2f} workers {cpu['workers']:.2f} clients {cpu['clients']:.2f}; "
        f"server ceiling {ceiling or 0:.0f} jobs/s; load {run['load_average']:.1f}"
    )


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def server_ms(run: dict[str, Any]) -> float:
    """The server's CPU milliseconds per job in ``run``: kernel and workers."""
    return float(run["cpu_ms_per_job"]["kernel"] + run["cpu_ms_per_job"]["workers"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400, help="jobs per throughput run")
    parser.add_argument("--calls", type=int, default=3000, help="status calls timed")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="kernel worker processes")
    parser.add_argument("--repeat", type=int, default=1, help="measure this many times")
    parser.add_argument(
        "--wires",
        default=None,
        help="which clients, of " + ",".join(WIRES) + " (all by default); with "
        "--gateway-latency, which wires of " + ",".join(GATEWAY_WIRES) + " (rest by default)",
    )
    parser.add_argument("--against", metavar="SRC", help="also a server from this src folder")
    parser.add_argument(
        "--gateway-latency",
        action="store_true",
        help="only REST status and submit p50 and CPU per call: inline, gateway process, "
        "and with its follower (and inline and gateway process of --against)",
    )
    options = parser.parse_args(argv)
    known = GATEWAY_WIRES if options.gateway_latency else WIRES
    default = ("rest",) if options.gateway_latency else WIRES
    wires = [w for w in (options.wires or ",".join(default)).split(",") if w]
    if unknown := set(wires) - set(known):
        parser.error(f"unknown wires {sorted(unknown)}: they are {', '.join(known)}")
    graph = read_graph(str(ROOT / "examples" / "bell.qvm.asm")).to_json()
    info = machine()
    cores = info["cpu_count"] or 1
    results: dict[str, Any] = {
        **info,
        "version": info["qmk"],  # the keys this file had before machine()
        "cpus": cores,
        "load_avg_before": info["load_average_at_start"],
        "workers": options.workers,
        "clients": options.clients,
        "jobs": options.jobs,
        "measures": "jobs submitted and completed per second, first submit .. last completion",
        "goals": {"jobs_per_s": GOAL_JOBS_PER_S, "get_p50_ms": GOAL_GET_P50_MS},
        "against": options.against,
        "status": [],
        "throughput": [],
    }
    print(
        describe(
            info,
            f"{options.workers} workers, {options.clients} clients x "
            f"{options.jobs // options.clients} Bell jobs ({SHOTS} shots)",
        )
    )
    with tempfile.TemporaryDirectory(prefix="qmk-bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        if options.gateway_latency:
            return bench_gateway_latency(tmp, options, graph, wires)
        servers = [start_server(tmp, options.workers)]
        if options.against:
            servers.append(start_server(tmp, options.workers, name="against", src=options.against))
        try:
            for server in servers:  # warm: imports, workers, connections
                for wire in wires:
                    bench_throughput(
                        wire, server, options.clients, 16 * options.clients, graph, cores
                    )
            for repeat in range(options.repeat):
                for server in servers:
                    gets = bench_get(server.url, options.calls, graph)
                    rpc = bench_rpc_status(server.socket, options.calls, graph)
                    results["status"].append({"server": server.name, "get": gets, "q_status": rpc})
                    hc, hx = gets["http_client"], gets["httpx"]
                    print(
                        f"status round trip [{server.name}]: GET /v1/jobs/{{id}} p50 "
                        f"{hc['p50_ms']:.3f} ms, p99 {hc['p99_ms']:.3f} ms (http.client; goal "
                        f"p50 < {GOAL_GET_P50_MS:g} ms: {hc['p50_ms'] / GOAL_GET_P50_MS:.2f}x); "
                        f"httpx p50 {hx['p50_ms']:.3f} ms; q_status p50 {rpc['p50_ms']:.3f} ms"
                    )
                for wire in wires:
                    for server in servers if repeat % 2 == 0 else servers[::-1]:  # turn about
                        run = bench_throughput(
                            wire, server, options.clients, options.jobs, graph, cores
                        )
                        run["repeat"] = repeat
                        results["throughput"].append(run)
                        print(_line(run))
        finally:
            results["exit_status"] = {server.name: server.stop() for server in servers}
    print(f"\nmedians over {options.repeat} run(s), jobs/s with {options.clients} clients:")
    summary: dict[str, Any] = {}
    for wire in wires:
        for server in servers:
            runs = [
                r for r in results["throughput"] if (r["wire"], r["server"]) == (wire, server.name)
            ]
            rate = median_of(runs, "jobs_per_s")
            ceiling = median_of(runs, "server_ceiling_jobs_per_s")
            summary[f"{wire}/{server.name}"] = {
                "jobs_per_s": rate,
                "goal_ratio": rate / GOAL_JOBS_PER_S,
                "server_ceiling_jobs_per_s": ceiling,
                "all_completed": all(r["completed"] == r["jobs"] for r in runs),
            }
            print(
                f"  {wire:>10} [{server.name}]: {rate:.0f} jobs/s "
                f"({rate / GOAL_JOBS_PER_S:.2f}x the goal of {GOAL_JOBS_PER_S:.0f}); server "
                f"ceiling on {cores} cores {ceiling:.0f} jobs/s"
            )
        if options.against:  # each repeat measured both back to back: compare in pairs
            by = {(r["repeat"], r["server"]): r for r in results["throughput"] if r["wire"] == wire}
            pairs = [(by[n, "this"], by[n, "against"]) for n in range(options.repeat)]
            rates = statistics.median(a["jobs_per_s"] / b["jobs_per_s"] for a, b in pairs)
            cpu = statistics.median(server_ms(a) / server_ms(b) for a, b in pairs)
            summary[f"{wire}/this_over_against"] = {"jobs_per_s": rates, "server_cpu_ms": cpu}
            print(
                f"  {wire:>10}: this / against, median of {len(pairs)} back-to-back pairs: "
                f"jobs/s {rates:.2f}x, server CPU per job {cpu:.2f}x"
            )
    results["summary"] = summary
    results["load_avg_after"] = load_averages()
    write_json(results, RESULTS / "http.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
