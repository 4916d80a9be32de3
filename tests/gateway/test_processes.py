"""The HTTP and gRPC gateways in processes of their own (``qmk serve --http --grpc
--gateway process``, ``qmk gateway http``): clients of the kernel's socket, supervised,
and never a part of the kernel's process.

Which process is the kernel is structural: ``qmk serve``'s own pid (it holds the data
dir), the gateway its child. What the kernel process loaded is read from Python's own
``-X importtime`` lines of that process (the gateway is started without the flag) and
from ``/proc/PID/maps``; the gateway's maps are the control that the check can fail.
Waits are bounded only against a hang (:data:`GUARD_S`), except the restart's bound,
which is the issue's promise.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket as sock
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qmk import defaults
from qmk.cli import main
from qmk.client import Client
from qmk.errors import QMKError
from qmk.kernel.pools.confine import landlock_abi
from qmk.kernel.pools.workers import PLANNER_NAME
from support.children import die_with_us, terminate
from support.http import bearer, session
from support.kernel import TENANTS, config_toml
from support.paths import EXAMPLES

GUARD_S = 60.0  # a hang guard, never a timing assertion
#: A killed gateway serves again within this (the supervisor's first wait is 0.1 s;
#: the rest is a Python start on a loaded 2-core host).
RESTART_BOUND_S = 20.0
BELL_QASM = (EXAMPLES / "bell.qasm").read_text()
_URL = re.compile(r"(https?://[^\s]+)")
#: What the kernel's process may not load: the wire libraries and our wire layers.
WIRE_MODULES = ("starlette", "uvicorn", "strawberry", "httptools", "uvloop", "grpc")
WIRE_ROOMS = ("qmk.http", "qmk.grpc", "qmk.gateway")
_GRPC = re.compile(r"grpc://([^\s]+)")


@dataclass
class Served:
    """A ``qmk serve`` (or a lone gateway) and its files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    url: str = ""

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_url(self) -> str:
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.text()}")
            found = _URL.search(self.out.read_text(errors="replace"))
            if found:
                self.url = found.group(1)
                return self.url
            time.sleep(0.02)
        raise AssertionError(f"did not listen: {self.text()}")


def _start(root: Path, name: str, argv: list[str]) -> Served:
    out, err = root / f"{name}.out", root / f"{name}.err"
    proc = subprocess.Popen(
        argv, stdout=out.open("wb"), stderr=err.open("wb"), preexec_fn=die_with_us()
    )
    return Served(proc, out, err)


def _serve(root: Path, *extra: str, python: tuple[str, ...] = ()) -> Served:
    config = root / "kernel.toml"
    if not config.exists():
        config.write_text(config_toml(tenants=TENANTS))
    argv = [sys.executable, *python, "-m", "qmk", "serve", "--socket", str(root / "k.sock")]
    argv += ["--data-dir", str(root / "data"), "--config", str(config), "--workers", "1"]
    return _start(root, "serve", [*argv, *extra])


def _kernel_only(root: Path, deadline: float) -> Served:
    """``qmk serve --kernel-only``, once it has printed its listening line (or ``deadline``)."""
    kernel = _serve(root, "--kernel-only")
    while not (root / "serve.out").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    return kernel


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with_children = task / "children"
        if with_children.exists():
            found |= {int(p) for p in with_children.read_text().split()}
    return found


def _gateway_of(pid: int, wire: str = "http", name: str | None = None) -> int:
    """The serving ``wire`` gateway child of ``qmk serve`` ``pid`` (its command line
    names the wire, its process name ``qmk-WIRE`` says it serves; ``name``: another,
    such as the spare's ``qmk-WIRE-spare``)."""
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            comm = Path(f"/proc/{child}/comm").read_text().strip()
        except FileNotFoundError:
            continue
        serves = b"gateway" in cmdline and cmdline[cmdline.index(b"gateway") + 1] == wire.encode()
        if serves and comm == (name or f"qmk-{wire}"):
            return child
    raise AssertionError(f"qmk serve {pid} has no {name or wire} gateway child")


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _run_bell(client: httpx.Client, sid: str) -> dict[str, Any]:
    reply = client.post(
        "/v1/jobs", json={"program": BELL_QASM, "shots": 50, "seed": 7}, headers=bearer(sid)
    )
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def _wait(client: httpx.Client, sid: str, job_id: str) -> dict[str, Any]:
    reply = client.get(f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 60000}, headers=bearer(sid))
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``qmk serve --http 127.0.0.1:0 --grpc 127.0.0.1:0`` (gateway processes are the
    default), its kernel run under ``-X importtime`` (each module it imports is a line of
    its stderr)."""
    wires = ("--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0")
    server = _serve(tmp_path, *wires, python=("-X", "importtime"))
    server.wait_url()
    yield server
    terminate(server.proc, GUARD_S)


def test_kernel_process_loads_no_wire_library_when_gateways_serve_http_and_grpc(
    served: Served,
) -> None:
    with httpx.Client(base_url=served.url, timeout=GUARD_S) as client:
        sid = session(client)
        job = _wait(client, sid, _run_bell(client, sid)["job_id"])
    assert job["state"] == "COMPLETED" and sum(job["result"]["counts"].values()) == 50
    with _grpc_client(served) as alice:
        assert alice.q_status(job["job_id"]).state == "COMPLETED"
    kernel = served.proc.pid
    # the controls: the checks see a loaded parser, and gRPC's core, where they are
    assert "httptools" in _maps(_gateway_of(kernel, "http"))
    assert "cygrpc" in _maps(_gateway_of(kernel, "grpc"))
    assert not re.search(r"httptools|uvloop|cygrpc|_strawberry", _maps(kernel))
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in served.err.read_text(errors="replace").splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "qmk.kernel.service" in imported  # the control: the lines are the kernel's
    loaded = sorted(
        m
        for m in imported
        if m.split(".")[0] in WIRE_MODULES
        or m.startswith(tuple(f"{r}." for r in WIRE_ROOMS))
        or m in WIRE_ROOMS
    )
    assert loaded == [], loaded


def _address_space_cap(pid: int) -> str:
    """The soft "Max address space" of process ``pid``, as ``/proc/PID/limits`` says it."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return line.split()[3]
    raise AssertionError(f"no address-space line for {pid}")


def test_each_gateway_is_capped_in_memory_as_a_worker_and_the_kernel_is_not(
    served: Served,
) -> None:
    kernel = served.proc.pid
    cap = str(defaults.WORKER_MEMORY_MB * 2**20)  # the config's kernel.worker_memory_mb
    assert _address_space_cap(_gateway_of(kernel, "http")) == cap
    assert _address_space_cap(_gateway_of(kernel, "grpc")) == cap
    assert _address_space_cap(kernel) != cap  # the control: the limit is the gateways'


def _no_new_privs(pid: int) -> bool:
    return "NoNewPrivs:\t1" in Path(f"/proc/{pid}/status").read_text()


def test_each_gateway_is_told_to_hide_the_data_directory_and_confined(
    served: Served, tmp_path: Path
) -> None:
    kernel = served.proc.pid
    data = os.path.realpath(tmp_path / "data")
    for wire in ("http", "grpc"):
        gateway = _gateway_of(kernel, wire)
        argv = Path(f"/proc/{gateway}/cmdline").read_bytes().decode().split("\0")
        assert argv[argv.index("--hide") + 1] == data
        assert _no_new_privs(gateway)
    assert not _no_new_privs(kernel)  # the control: the flag is the gateways'


def _ignores(pid: int, signum: int) -> bool:
    line = next(
        x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("SigIgn:")
    )
    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)


def test_each_gateway_has_a_process_group_of_its_own_and_writes_to_a_terminal_from_it(
    served: Served,
) -> None:
    kernel = served.proc.pid
    for wire in ("http", "grpc"):
        gateway = _gateway_of(kernel, wire)
        assert os.getpgid(gateway) == gateway != os.getpgid(kernel)  # ^C reaches qmk serve
        assert os.getsid(gateway) == os.getsid(kernel)  # one session: one autogroup
        assert _ignores(gateway, signal.SIGTTOU)  # a background group's writes go on
    assert not _ignores(kernel, signal.SIGTTOU)  # the control: the gateways' own


def _grpc_client(served: Served) -> Any:
    from qmk.grpc.client import Client

    found = _GRPC.search(served.out.read_text(errors="replace"))
    assert found, served.text()
    alice = TENANTS["alice"]
    return Client.connect(found.group(1), tenant="alice", key=alice["key"], caps=alice["caps"])


def test_killed_grpc_gateway_serves_again_and_watch_job_streams_through_it(
    served: Served,
) -> None:
    kernel = served.proc.pid
    gateway = _gateway_of(kernel, "grpc")
    with _grpc_client(served) as alice:
        job_id = alice.submit(BELL_QASM, shots=20, seed=3).job_id
    os.kill(gateway, signal.SIGKILL)
    killed_at = time.monotonic()
    events = None
    while events is None and time.monotonic() - killed_at < RESTART_BOUND_S:
        try:
            with _grpc_client(served) as alice:
                events = list(alice.watch_job(job_id))
        except QMKError:  # UNAVAILABLE while no gateway listens
            time.sleep(0.05)
    assert events is not None, f"no answer {RESTART_BOUND_S} s after the kill"
    assert events[0].event == "state" and events[-1].event == "result"
    assert events[-1].state == "COMPLETED"
    assert _gateway_of(kernel, "grpc") != gateway


def test_killed_gateway_serves_again_and_loses_no_accepted_job(served: Served) -> None:
    kernel = served.proc.pid
    gateway = _gateway_of(kernel)
    with httpx.Client(base_url=served.url, timeout=GUARD_S) as client:
        sid = session(client)
        accepted = [_run_bell(client, sid)["job_id"] for _ in range(3)]
    os.kill(gateway, signal.SIGKILL)
    killed_at = time.monotonic()
    # the other wires do not notice: JSON-RPC and gRPC answer while no HTTP gateway runs
    alice = TENANTS["alice"]
    socket_path = str(served.out.parent / "k.sock")
    with Client.connect(socket_path, tenant="alice", key=alice["key"]) as rpc:
        assert rpc.q_status(accepted[0]).job_id == accepted[0]
    with _grpc_client(served) as over_grpc:
        assert over_grpc.q_status(accepted[0]).job_id == accepted[0]
    answered = None
    while time.monotonic() - killed_at < RESTART_BOUND_S:
        try:  # a fresh connection each try: the old one died with its gateway
            with httpx.Client(base_url=served.url, timeout=GUARD_S) as client:
                answered = client.get("/v1/jobs", headers=bearer(sid))
            break
        except httpx.TransportError:
            time.sleep(0.05)
    assert answered is not None, f"no answer {RESTART_BOUND_S} s after the kill"
    assert answered.status_code == 200, answered.text
    assert _gateway_of(kernel) != gateway
    with httpx.Client(base_url=served.url, timeout=GUARD_S) as client:
        for job_id in accepted:
            assert _wait(client, sid, job_id)["state"] == "COMPLETED"
    assert "restart 1 " in served.err.read_text(errors="replace")


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in _children(todo.pop()) - found:
            found.add(child)
            todo.append(child)
    return found


def _planner_of(pid: int) -> int:
    """The planner process of the kernel ``pid``: its descendant named ``qmk-planner``."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        for child in _descendants(pid):
            try:
                name = Path(f"/proc/{child}/comm").read_text().strip()
            except FileNotFoundError:
                continue
            if name == PLANNER_NAME and _alive(child):
                return child
        time.sleep(0.02)
    raise AssertionError(f"the kernel {pid} has no {PLANNER_NAME} descendant")


def _new_program(n: int) -> str:
    """A program no plan of this kernel's was cached for (admission caches by its text)."""
    return BELL_QASM + f"rz({n + 1}/{n + 7}) q[0];\n"


def test_killed_planner_is_replaced_and_loses_no_accepted_job(served: Served) -> None:
    kernel = served.proc.pid
    planner = _planner_of(kernel)
    with httpx.Client(base_url=served.url, timeout=GUARD_S) as client:
        sid = session(client)
        accepted = [_run_bell(client, sid)["job_id"] for _ in range(3)]
        os.kill(planner, signal.SIGKILL)
        killed_at = time.monotonic()
        # the wires do not notice: a plan cached before the kill is not asked again
        with Client.connect(str(served.out.parent / "k.sock"), **_alice()) as rpc:
            assert rpc.q_status(accepted[0]).job_id == accepted[0]
        tries, planned = 0, None
        while planned is None and time.monotonic() - killed_at < RESTART_BOUND_S:
            tries += 1  # each try a program never planned: the planner must plan it
            body = {"program": _new_program(tries), "shots": 20, "seed": tries}
            reply = client.post("/v1/jobs", json=body, headers=bearer(sid))
            if reply.status_code == 201:
                planned = reply.json()["job_id"]
            else:  # the submit the dead planner was asked: unavailable, retry
                assert reply.status_code == 503, reply.text
                assert reply.json()["details"]["reason"].startswith("planner-"), reply.text
                time.sleep(0.05)
        assert planned is not None, f"no plan {RESTART_BOUND_S} s after the kill ({tries} tries)"
        assert served.proc.poll() is None  # the kernel lived through it
        assert _planner_of(kernel) != planner
        for job_id in [*accepted, planned]:
            assert _wait(client, sid, job_id)["state"] == "COMPLETED"


def _alice() -> dict[str, Any]:
    return {"tenant": "alice", "key": TENANTS["alice"]["key"]}


def test_gateway_ends_when_qmk_serve_is_killed(served: Served) -> None:
    gateway = _gateway_of(served.proc.pid)
    served.proc.kill()
    served.proc.wait()
    deadline = time.monotonic() + GUARD_S
    while _alive(gateway) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(gateway)


#: Tenants of the comparisons: alice runs jobs; ops may read the kernel's load.
OBSERVED = {
    "alice": TENANTS["alice"],
    "ops": {"key": "ops-secret-key", "caps": ["CAP_OBSERVE"]},
}
#: Families of the kernel's load that move between two scrapes of a live kernel.
MOVING = {"qmk_data_disk_free_bytes", "qmk_queue_oldest_seconds", "qmk_epoch"}
#: Families of each process's own wires (its requests and their syscall latencies).
OWN = {"qmk_rpc_seconds", "qmk_http_requests"}


def _basic(tenant: str) -> dict[str, str]:
    pair = f"{tenant}:{OBSERVED[tenant]['key']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _families(text: str) -> dict[str, set[tuple[str, tuple[tuple[str, str], ...], float]]]:
    """A scrape as {family: {(sample, labels, value)}}, less each process's own and the
    moving ones."""
    found: dict[str, set[tuple[str, tuple[tuple[str, str], ...], float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name in OWN or family.name in MOVING or family.name.startswith("qmk_machine"):
            continue
        found[family.name] = {
            (s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples
        }
    return found


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """One kernel served two ways at once: ``qmk serve --http`` (inline) and a lone
    ``qmk gateway http`` on its socket; their URLs."""
    (tmp_path / "kernel.toml").write_text(config_toml(tenants=OBSERVED))
    inline = _serve(tmp_path, "--http", "127.0.0.1:0", "--gateway", "inline")
    inline.wait_url()
    argv = [sys.executable, "-m", "qmk", "gateway", "http", "--kernel", str(tmp_path / "k.sock")]
    gateway = _start(tmp_path, "gateway", [*argv, "--listen", "127.0.0.1:0"])
    try:
        gateway.wait_url()
        yield inline.url, gateway.url
    finally:
        terminate(gateway.proc, GUARD_S)
        terminate(inline.proc, GUARD_S)


def _blocks(text: str) -> list[dict[str, str]]:
    """A whole event stream's events, each as its fields."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.partition(": ")[::2] for line in block.splitlines() if line)
        if "event" in fields:
            found.append(fields)
    return found


def _step(block: dict[str, str]) -> tuple[str, str]:
    """An assist stream's event as (event, its step or its answer's status)."""
    data = json.loads(block["data"])
    return block["event"], data.get("step") or data.get("status")


def _sse_until(lines: Iterator[str], job_id: str) -> list[tuple[str, str, str]]:
    """The events of a stream, as (id, event, data), through ``job_id``'s final one."""
    got: list[tuple[str, str, str]] = []
    block: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(": ")
            block[name] = value
            continue
        if "event" in block:
            got.append((block.get("id", ""), block["event"], block.get("data", "")))
            if job_id in block.get("data", "") and '"state":"COMPLETED"' in block["data"]:
                return got
        block = {}
    raise AssertionError(f"the stream ended before {job_id} completed: {got}")


def test_gateway_streams_audits_and_scrapes_as_the_kernels_own_process(
    both: tuple[str, str],
) -> None:
    inline_url, gateway_url = both
    with (
        httpx.Client(base_url=inline_url, timeout=GUARD_S) as inline,
        httpx.Client(base_url=gateway_url, timeout=GUARD_S) as gateway,
    ):
        sid = session(inline)
        before = gateway.get("/metrics", headers=_basic("ops"))
        assert before.status_code == 200, before.text
        with (
            inline.stream("GET", "/v1/events", headers=bearer(sid)) as a,
            gateway.stream("GET", "/v1/events", headers=bearer(sid)) as b,
        ):
            streams = [a.iter_lines(), b.iter_lines()]
            for lines in streams:  # each has taken its place in the feed: hello first
                assert next(lines) == "event: hello"
            job = _wait(inline, sid, _run_bell(inline, sid)["job_id"])
            relayed = [_sse_until(lines, job["job_id"]) for lines in streams]
        assert relayed[0] == relayed[1]
        events = [event for _, event, _ in relayed[0]]
        assert events[0] == "job" and len(events) >= 3, relayed[0]
        audits = [
            c.get("/v1/audit", params={"job_id": job["job_id"]}, headers=bearer(sid))
            for c in (inline, gateway)
        ]
        assert audits[0].status_code == audits[1].status_code == 200, audits[1].text
        assert audits[0].json() == audits[1].json()
        assert audits[0].json()["entries"][-1]["state"] == "COMPLETED"
        scrapes = [
            inline.get("/metrics", headers=_basic("ops")),
            gateway.get("/metrics", headers=_basic("ops")),
        ]
        assert scrapes[1].status_code == 200, scrapes[1].text
        a_load, b_load = (_families(r.text) for r in scrapes)
        assert a_load == b_load
        finished = a_load["qmk_jobs_finished"]
        assert (
            "qmk_jobs_finished_total",
            (("state", "COMPLETED"), ("tenant", "alice")),
            1.0,
        ) in finished
        # the assistant's steps (its audit lines) stream as they are written, then its answer
        asked = [
            c.post("/v1/assist", json={"prompt": "what does QS1006 mean?"}, headers=bearer(sid))
            for c in (inline, gateway)
        ]
        steps = [[_step(block) for block in _blocks(r.text)] for r in asked]
        assert steps[0] == steps[1] and steps[0][-1] == ("result", "advice"), steps
        assert ("step", "ask") in steps[0], steps
        # a scrape again with the same login: its session is kept, the answer is the same
        again = gateway.get("/metrics", headers=_basic("ops"))
        assert _families(again.text)["qmk_jobs_finished"] == finished


def test_gateway_metrics_need_a_scraper_holding_cap_observe(both: tuple[str, str]) -> None:
    _, gateway_url = both
    with httpx.Client(base_url=gateway_url, timeout=GUARD_S) as gateway:
        bare = gateway.get("/metrics")
        assert bare.status_code == 401 and bare.json()["code"] == "QS1001", bare.text
        sid = session(gateway)
        for headers in (_basic("alice"), bearer(sid)):  # alice holds no CAP_OBSERVE
            refused = gateway.get("/metrics", headers=headers)
            assert refused.status_code == 403, refused.text
            assert refused.json()["details"]["missing"] == ["CAP_OBSERVE"], refused.text
        wrong = {"Authorization": "Basic " + base64.b64encode(b"ops:not-the-key").decode()}
        assert gateway.get("/metrics", headers=wrong).status_code == 401


def test_grpc_gateway_metrics_page_times_its_calls_for_a_scraper_holding_cap_observe(
    tmp_path: Path,
) -> None:
    from qmk.grpc.client import Client as GrpcClient

    (tmp_path / "kernel.toml").write_text(config_toml(tenants=OBSERVED))
    kernel = _kernel_only(tmp_path, time.monotonic() + GUARD_S)
    argv = [sys.executable, "-m", "qmk", "gateway", "grpc", "--kernel", str(tmp_path / "k.sock")]
    argv += ["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--json"]
    gateway = _start(tmp_path, "gateway", argv)
    try:
        deadline = time.monotonic() + GUARD_S
        while not gateway.out.read_text() and gateway.proc.poll() is None:
            assert time.monotonic() < deadline, gateway.text()
            time.sleep(0.02)
        line = json.loads(gateway.out.read_text().splitlines()[0])
        address = line["listening"].removeprefix("grpc://")
        with GrpcClient.connect(address, **_alice(), caps=TENANTS["alice"]["caps"]) as alice:
            job_id = alice.submit(BELL_QASM, shots=20, seed=5).job_id
            assert alice.q_status(job_id).job_id == job_id
        with httpx.Client(timeout=GUARD_S) as scraper:
            assert scraper.get(line["metrics"]).status_code == 401
            refused = scraper.get(line["metrics"], headers=_basic("alice"))
            assert refused.status_code == 403, refused.text
            assert refused.json()["details"]["missing"] == ["CAP_OBSERVE"], refused.text
            page = scraper.get(line["metrics"], headers=_basic("ops"))
        assert page.status_code == 200, page.text
        families = {f.name: f.samples for f in text_string_to_metric_families(page.text)}
        timed = {(s.labels["transport"], s.labels["method"]) for s in families["qmk_rpc_seconds"]}
        # its own calls, by their wire's name: alice's over gRPC, the scraper's over HTTP
        assert {("grpc", "q_submit"), ("grpc", "q_status")} <= timed
        assert {method for transport, method in timed if transport == "http"} <= {
            "q_negotiate_caps",
            "q_kernel_load",
        }
        assert families["qmk_workers"][0].value == 1  # the kernel's load, as ops reads it
    finally:
        terminate(gateway.proc, GUARD_S)
        terminate(kernel.proc, GUARD_S)


def _restarts(page: str) -> dict[str, float]:
    """``qmk_server_restarts_total`` of a metrics page, by server."""
    families = {f.name: f.samples for f in text_string_to_metric_families(page)}
    return {s.labels["server"]: s.value for s in families["qmk_server_restarts"]}


def test_supervised_grpc_gateway_serves_its_metrics_page_again_after_a_kill_and_meters_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "kernel.toml").write_text(config_toml(tenants=OBSERVED))
    served = _serve(tmp_path, "--grpc", "127.0.0.1:0", "--grpc-metrics", "127.0.0.1:0")
    try:
        page = served.wait_url()  # the only http URL on its line: the page's
        assert page.endswith("/metrics"), served.text()
        with httpx.Client(timeout=GUARD_S) as scraper:
            before = scraper.get(page, headers=_basic("ops"))
            assert before.status_code == 200, before.text
            assert _restarts(before.text) == {"grpc": 0}
            gateway = _gateway_of(served.proc.pid, "grpc")
            os.kill(gateway, signal.SIGKILL)
            killed_at, answered = time.monotonic(), None
            while answered is None and time.monotonic() - killed_at < RESTART_BOUND_S:
                try:  # the same port: qmk serve holds its socket across restarts
                    answered = scraper.get(page, headers=_basic("ops"))
                except httpx.TransportError:
                    time.sleep(0.05)
            assert answered is not None, f"no page {RESTART_BOUND_S} s after the kill"
            assert answered.status_code == 200, answered.text
            assert "qmk_workers" in answered.text
            # the supervisor counted the death before its spare served this page
            assert _restarts(answered.text) == {"grpc": 1}
            assert _gateway_of(served.proc.pid, "grpc") != gateway
    finally:
        terminate(served.proc, GUARD_S)


def test_grpc_metrics_wants_the_gateway_process_and_grpc(tmp_path: Path) -> None:
    for extra in (("--gateway", "inline", "--grpc", "127.0.0.1:0"), ()):
        refused = _serve(tmp_path, "--grpc-metrics", "127.0.0.1:0", *extra)
        assert refused.proc.wait(GUARD_S) != 0
        assert "--grpc-metrics" in refused.text(), refused.text()


def test_supervised_gateway_answers_the_feed_routes(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=GUARD_S) as client:
        sid = session(client)
        job = _wait(client, sid, _run_bell(client, sid)["job_id"])
        audit = client.get("/v1/audit", params={"job_id": job["job_id"]}, headers=bearer(sid))
        assert audit.status_code == 200 and audit.json()["tenant"] == "alice", audit.text
        scrape = client.get("/metrics", headers=bearer(sid))  # alice is no operator
        assert scrape.status_code == 403, scrape.text


def _rpc_result(socket_path: Path, method: str, params: dict[str, Any]) -> bytes:
    """The result of one JSON-RPC call, as the bytes of the kernel's reply line hold it."""
    with sock.socket(sock.AF_UNIX) as conn:
        conn.settimeout(GUARD_S)
        conn.connect(str(socket_path))
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        conn.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            more = conn.recv(65536)
            assert more, data
            data += more
    head, result = data.split(b',"result":', 1)
    assert head == b'{"jsonrpc":"2.0","id":1', data
    return result[:-2]  # less the reply's closing brace and its newline


def test_supervised_gateways_answer_a_job_in_the_kernels_own_bytes(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=GUARD_S) as client:
        sid = session(client)
        job_id = _run_bell(client, sid)["job_id"]
        _wait(client, sid, job_id)
        rest = client.get(f"/v1/jobs/{job_id}", headers=bearer(sid))
    with _grpc_client(served) as over_grpc:
        status = over_grpc.rpc("Status", session_id=sid, job_id=job_id)
    params = {"session_id": sid, "job_id": job_id}
    own = _rpc_result(served.out.parent / "k.sock", "q_status", params)
    assert rest.status_code == 200, rest.text
    assert rest.headers["x-qmk-job-id"] == job_id and rest.headers["x-qmk-tenant"] == "alice"
    assert rest.content == own
    assert status.json.encode() == own
    counts = json.loads(own)["result"]["counts"]
    assert (status.job_id, status.state, dict(status.counts)) == (job_id, "COMPLETED", counts)


def test_job_events_stream_through_the_kernels_watch(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=GUARD_S) as client:
        sid = session(client)
        job_id = _run_bell(client, sid)["job_id"]
        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=bearer(sid)) as reply:
            assert reply.status_code == 200
            names = [line[7:] for line in reply.iter_lines() if line.startswith("event: ")]
    assert names[0] == "state" and names[-1] == "result", names


def test_lone_gateway_answers_503_while_the_kernel_is_away_then_reconnects(
    tmp_path: Path,
) -> None:
    deadline = time.monotonic() + GUARD_S
    kernel = _kernel_only(tmp_path, deadline)
    argv = [sys.executable, "-m", "qmk", "gateway", "http", "--kernel", str(tmp_path / "k.sock")]
    gateway = _start(tmp_path, "gateway", [*argv, "--listen", "127.0.0.1:0"])
    try:
        url = gateway.wait_url()
        with httpx.Client(base_url=url, timeout=GUARD_S) as client:
            sid = session(client)
            job_id = _run_bell(client, sid)["job_id"]
            assert terminate(kernel.proc, GUARD_S) == 0
            away = client.get(f"/v1/jobs/{job_id}", headers=bearer(sid))
            assert away.status_code == 503, away.text
            assert away.json()["code"] == "QS1011", away.text
            assert away.json()["details"]["reason"] == "kernel-away", away.text
            assert away.json()["details"]["retry_after_s"] > 0, away.text
            # the restarted kernel gets a guard of its own: the first one may be spent
            kernel = _kernel_only(tmp_path, time.monotonic() + GUARD_S)
            job = _wait(client, sid, job_id)  # the same session: the kernel signed it
        assert job["state"] == "COMPLETED"
    finally:
        terminate(gateway.proc, GUARD_S)
        terminate(kernel.proc, GUARD_S)


def test_a_kernel_on_a_free_tcp_port_alone_is_reached_by_its_gateway(tmp_path: Path) -> None:
    """No Unix socket, ``--tcp 127.0.0.1:0``: the gateway is told the port the kernel
    bound once it listens, and a job runs over REST through it."""
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml(tenants=TENANTS))
    argv = [sys.executable, "-m", "qmk", "serve", "--tcp", "127.0.0.1:0", "--workers", "1"]
    argv += ["--data-dir", str(tmp_path / "data"), "--config", str(config)]
    server = _start(tmp_path, "serve", [*argv, "--http", "127.0.0.1:0"])
    try:
        server.wait_url()
        with httpx.Client(base_url=server.url, timeout=GUARD_S) as client:
            sid = session(client)
            job = _wait(client, sid, _run_bell(client, sid)["job_id"])
        assert job["state"] == "COMPLETED"
        gateway = Path(f"/proc/{_gateway_of(server.proc.pid)}/cmdline").read_bytes()
        kernel_at = gateway.split(b"\0")[gateway.split(b"\0").index(b"--kernel") + 1]
        assert re.fullmatch(rb"127\.0\.0\.1:[1-9][0-9]*", kernel_at), kernel_at
    finally:
        terminate(server.proc, GUARD_S)


def test_kernel_only_refuses_a_wire() -> None:
    err = io.StringIO()
    code = main(
        [
            *("serve", "--socket", "/nonexistent/k.sock", "--data-dir", "/nonexistent"),
            *("--config", str(EXAMPLES / "kernel.toml"), "--kernel-only", "--http", "127.0.0.1:0"),
        ],
        stderr=err,
    )
    assert code == 2 and "--kernel-only starts no --http or --grpc" in err.getvalue()


def test_lone_gateway_with_json_prints_its_listening_line_as_one_json_object(
    tmp_path: Path,
) -> None:
    deadline = time.monotonic() + GUARD_S
    kernel = _kernel_only(tmp_path, deadline)
    socket_path = str(tmp_path / "k.sock")
    argv = [sys.executable, "-m", "qmk", "gateway", "http", "--kernel", socket_path]
    gateway = _start(tmp_path, "gateway", [*argv, "--listen", "127.0.0.1:0", "--json"])
    try:
        while not gateway.out.read_text().endswith("\n") and time.monotonic() < deadline:
            time.sleep(0.02)
        line = json.loads(gateway.out.read_text())
        assert line["kernel"] == socket_path
        assert line["listening"].startswith("http://127.0.0.1:")
        confinement = line["confinement"]  # what the gateway closed, or why not
        if landlock_abi() >= 1:
            assert confinement["filesystem"].startswith("landlock ABI")
        else:
            assert any(gap.startswith("filesystem:") for gap in confinement["gaps"])
    finally:
        terminate(gateway.proc, GUARD_S)
        terminate(kernel.proc, GUARD_S)
