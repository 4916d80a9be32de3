"""The kernel process is the trusted core: what a real ``qmk serve`` holds after a job.

Issue 79: the kernel verifies and admits programs; it does not plan, route, price engines,
decode, run engines or speak HTTP/gRPC. What it loaded is read from outside its code: a
``sitecustomize`` on the server's ``PYTHONPATH`` (Python's own start-up seam, nothing of
QMK) records ``sys.modules`` of each process when it exits, under that process's id, and
``/proc/<pid>/maps`` names the shared objects the running kernel has mapped. Workers are
other processes, with other ids: what they load is theirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from qmk.errors import InvalidArgument
from support.kernel import EXAMPLES, TENANTS, ServerProcess, config_toml, stop_all

#: Modules (and packages with all their submodules) the kernel process may not load.
KERNEL_PROCESS_MAY_NOT_LOAD: tuple[str, ...] = (
    "qmk.engines",
    "qmk.execution.plan",
    "qmk.execution.executor",
    "qmk.execution.trajectories",
    "qmk.execution.batch",
    "qmk.http",
    "qmk.grpc",
    "qmk.assist",
    "qmk.workflows",
    "qmk.ft",
    # the estimator, and the machine's factories from it: the planner derives the machine
    "qmk.estimate",
    "qmk.kernel.machine.factories",
    "qmk.kernel.machine.derive",
    # the front-ends: program text of another language is lowered where it is read
    "qmk.frontends",
    # what only rare paths (or other programs than the Bell pair's gates) use, imported
    # there (RARE_PATHS)
    "qmk.kernel.admit.assist",
    "qmk.kernel.running.triggers",
    "qmk.kernel.syscalls.triggers",
    "qmk.qvm.teleport",
    "qmk.devices.purification",
    "qmk.execution.spans",
    "qmk.qec.physics",
    "qmk.qvm.classical",
    "qmk.qvm.fold",
    "qmk.qvm.foldcheck",
    "qmk.qvm.folded",
    "qmk.qvm.rows",
    "qmk.qvm.guards",
    "qmk.qvm.reports",
    "qmk.kernel.admit.own",
    "qmk.kernel.storage.outbox",
    "qmk.kernel.admit.teleport",
    "qmk.kernel.syscalls.feed",
    "qmk.abi.tally",
    "qmk.kernel.syscalls.delegations",
    "qmk.kernel.security.delegations",
    "qmk.kernel.storage.delegation_rows",
    "qmk.kernel.storage.usage_rows",
    "qmk.kernel.storage.job_reads",
    "qmk.kernel.observe_load",
    # a plan's (start, end) pairs: the planner's and the worker's
    "qmk.qvm.pairs",
    # the columns' walk when first read: the bulk reader's (qmk run), not the kernel's
    "qmk.qvm.walked",
    # the steps a composite op stands for: the executors' and the writers', not the verifier's
    "qmk.qvm.expansions",
    # a REV segment's undo: a rewrite asked for, not a check
    "qmk.qvm.uncompute",
    # attestations read back and replayed: the command line's (qmk audit replay)
    "qmk.kernel.security.replay",
    # the QEC layer's models: the planner checks the machine's physics and prices each
    # profile's logical error; the device loads them for its status and changed physics
    "qmk.qec.logical",
    "qmk.qec.codes",
    "qmk.qec.noise",
    "qmk.qec.params",
    "qmk.qec.formula",
    # the machine's physics checked with those models: the planner's, the command line's
    "qmk.kernel.machine_physics",
    # the command line: qmk serve becomes the kernel's entry (qmk.serve) in its process
    "qmk.cli",
    "qmk.commands",
    # qmk serve's option table: the command line reads the options, the kernel takes them
    "qmk.serve.options",
    # qmk serve's Dask options, and the bridge it starts: only where one is given
    "qmk.serve.dask",
    # the gateways and their supervisor: a plain qmk serve (no --http, --grpc) starts none
    "qmk.gateway",
    "qmk.serve.gateways",
    # the wires in the kernel's process (--gateway inline): their configs
    "qmk.serve.inline",
    # the worker's side of its confinement (Landlock, seccomp, its CPU budget)
    "qmk.kernel.pools.confine",
    # the worker's end of its line: it reads the task frames the pool writes
    "qmk.kernel.pools.worker_line",
    # the pools that reach the network: the assistant's and the billing webhook's
    "qmk.kernel.pools.networked",
    # a job's own calibration and noise model, read where a policy names one
    "qmk.kernel.records.policy_physics",
    # TCP addresses and listeners, TLS files: only where --tcp or a TLS option is given
    "qmk.abi.tcp",
    # the event hub and the socket's watches, at the first q_watch
    "qmk.abi.events",
    "qmk.abi.watch",
    # the billing webhook's POST: the webhook pool's processes make it
    "qmk.abi.webhook",
    # the probe's contract and its JSON: the wires', the feed's desk's and the event hub's
    "qmk.abi.probing",
    # a program's digest text (the planner's, the worker's), a graph's file form (the
    # command line's), a line too big to decode on the loop (a big program's submit), a
    # reply msgspec cannot write whole (a big stored result spliced in)
    "qmk.qvm.sorted_text",
    "qmk.qvm.graph_file",
    "qmk.abi.big_lines",
    "qmk.abi.spliced",
    # a restore's checks, a resumed attempt's kept physics: at the first of each; a
    # result's encoding and a rewrite's program text: the worker's; an in-process
    # program's kept digest: in-process runs'
    "qmk.kernel.admit.restore",
    "qmk.kernel.admit.resumed",
    "qmk.kernel.records.encoded",
    "qmk.execution.rewritten",
    "qmk.execution.kept_digests",
    # the QEC layer: a run's custom qubits and calibration are JSON in the kernel
    "qmk.qec",
    # the device interface: the kernel's machine is plain data (qmk.kernel.device)
    "qmk.devices",
    # what only a kernel that met them loads: device jobs' artifacts, the checks of a data
    # directory an earlier kernel left, preemption (jobs waiting for a full pool)
    "qmk.kernel.storage.artifacts",
    "qmk.kernel.storage.reopen",
    "qmk.kernel.running.preemption",
    "llvmlite",
    "stim",
    "pymatching",
    "grpc",
    "uvicorn",
    "strawberry",
)

#: What the kernel imports where a rare path needs it, each with where: a kernel that
#: serves the rarer syscalls (:func:`rare_calls`) may hold these, and nothing else of
#: :data:`KERNEL_PROCESS_MAY_NOT_LOAD`.
RARE_PATHS: dict[str, str] = {
    "qmk.kernel.admit.assist": "the assistant's desk, at the first question",
    "qmk.kernel.running.triggers": "the triggers' table, where there are triggers",
    "qmk.kernel.syscalls.triggers": "the triggers' host, made with their table",
    "qmk.qvm.teleport": "a job that spans modules or holds channels",
    "qmk.devices.purification": "a link below a channel's fidelity",
    "qmk.execution.spans": "none in the kernel: a worker's",
    "qmk.qec.physics": "none in the kernel: a request made from a physics config",
    "qmk.qvm.classical": "a program with a CALC node",
    "qmk.qvm.fold": "a program with a REPEAT or CALL row, or blocks",
    "qmk.qvm.foldcheck": "a program with a REPEAT or CALL row, or blocks",
    "qmk.qvm.folded": "a program with a REPEAT or CALL row, or blocks",
    "qmk.qvm.rows": "a program with a REPEAT row or blocks, read from JSON",
    "qmk.qvm.guards": "a guarded node that starts, ends or follows a lifetime",
    "qmk.qvm.reports": "an unknown op, a repeated operand, an event read before its producer",
    "qmk.kernel.admit.own": "a job of a target that reads its own program (a device job)",
    "qmk.kernel.storage.outbox": "a kernel with [billing] webhook_url",
    "qmk.kernel.admit.teleport": "a job that spans modules or holds channels, q_get_telemetry",
    "qmk.qec.logical": "the device's status and calibration, a drifted or recalibrated start",
    "qmk.qec.codes": "the device's status and calibration, a drifted or recalibrated start",
    "qmk.qec.noise": "the device's status, a job's own noise model, a drifted start",
    "qmk.qec.params": "the device's status and calibration, a job's own noise model",
    "qmk.qec.formula": "the device's status and calibration, a drifted or recalibrated start",
    "qmk.abi.events": "the first q_watch on the JSON-RPC socket",
    "qmk.abi.watch": "a connection's first q_watch or q_unwatch on the JSON-RPC socket",
    "qmk.kernel.machine.hold": "a job refused as too big for a module",
    "qmk.kernel.syscalls.feed": "q_events, q_audit, q_kernel_load; a kernel a gateway may ask",
    "qmk.abi.tally": "the feed's desk (its job counters)",
    "qmk.kernel.pools.networked": (
        "the assistant's first question, a kernel with [billing] webhook_url"
    ),
    "qmk.kernel.records.policy_physics": "a policy that names a calibration or a noise model",
    "qmk.qec": "a policy's or an ingest's physics checked, the device's status, a drifted start",
    "qmk.devices": "the device's status and calibration ingest, a link below a channel's fidelity",
    "qmk.abi.probing": "the feed's desk (q_kernel_load, q_audit), the event hub (q_watch)",
    "qmk.kernel.syscalls.delegations": "a kernel that holds a delegation, a delegation syscall",
    "qmk.kernel.security.delegations": "the delegations' desk",
    "qmk.kernel.storage.delegation_rows": "the delegations' desk",
    "qmk.kernel.storage.usage_rows": "q_usage (the machine's desk)",
    "qmk.kernel.storage.job_reads": "a row read back: q_list_jobs, a checkpoint, a job not held",
    "qmk.kernel.observe_load": "the kernel's load and audit tail: q_kernel_load, q_audit, a scrape",
    "qmk.kernel.storage.artifacts": "a job that streams, q_device_artifacts, a data dir with some",
    "qmk.kernel.storage.reopen": "a data directory an earlier kernel left (a restart)",
    "qmk.kernel.running.preemption": "the first tick at which jobs wait for a full pool",
}

#: Shared objects whose mapping in the kernel betrays an engine, decoder or wire library.
KERNEL_PROCESS_MAY_NOT_MAP: tuple[str, ...] = (
    "llvmlite",
    "stim",
    "pymatching",
    "grpc",
)

SITECUSTOMIZE = """\
import atexit, os, sys

def _record():
    path = os.path.join(os.environ["QMK_TEST_MODULES_DIR"], f"{os.getpid()}.json")
    files = {}
    for name, module in list(sys.modules.items()):
        files[name] = getattr(module, "__file__", None)
    with open(path, "w") as out:
        import json
        json.dump(files, out)

atexit.register(_record)
"""


def loaded(modules: dict[str, str | None], banned: tuple[str, ...]) -> dict[str, list[str]]:
    """For each banned name, the loaded modules that are it or inside it."""
    found: dict[str, list[str]] = {}
    for ban in banned:
        hits = sorted(name for name in modules if name == ban or name.startswith(ban + "."))
        if hits:
            found[ban] = hits
    return found


def mapped(pid: int, banned: tuple[str, ...]) -> dict[str, list[str]]:
    """For each banned library, the shared objects of its that ``pid`` has mapped."""
    objects = {
        line.split()[-1]
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
        if line.split()[-1].endswith(".so") or ".so." in line.split()[-1]
    }
    found: dict[str, list[str]] = {}
    for ban in banned:
        hits = sorted(o for o in objects if f"/{ban}/" in o or f"/{ban}." in o or f"/_{ban}" in o)
        if hits:
            found[ban] = hits
    return found


Jobs = Callable[[Client, dict[str, Any]], None]


def bell_jobs(client: Client, graph: dict[str, Any]) -> None:
    """The Bell example as it is, naming its engine, and naming an engine there is not
    (a job's engine name is checked where the engines' registry is: the planner)."""
    job = client.q_submit(graph, 100, 7)
    done = client.q_wait(job.job_id, 60_000)
    assert done.state == "COMPLETED", done
    named = client.q_submit(graph, 100, 7, policy={"engine": "statevector"})
    done = client.q_wait(named.job_id, 60_000)
    assert done.state == "COMPLETED", done
    with pytest.raises(InvalidArgument) as misspelt:
        client.q_submit(graph, 100, 7, policy={"engine": "statevektor"})
    assert misspelt.value.details["key"] == "policy.engine"


def record_kernel(
    tmp_path: Path, jobs: Jobs, tables: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, str | None], dict[str, list[str]]]:
    """Start ``qmk serve`` (``tables``: more tables of its config), run ``jobs`` through
    it with the Bell example, and return the kernel's modules (at its exit) and the
    banned shared objects it had mapped (while it ran)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    records = tmp_path / "modules"
    records.mkdir()
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    config = tmp_path / "k.toml"
    config.write_text(config_toml(tables=tables))
    server = ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "k-data",
        config=config,
        workers=2,
        log=tmp_path / "k.log",
    )
    try:
        server.start(env={"PYTHONPATH": path, "QMK_TEST_MODULES_DIR": str(records)})
        key = TENANTS["alice"]["key"]
        with Client.connect(str(server.socket), tenant="alice", key=key) as client:
            jobs(client, json.loads((EXAMPLES / "bell.qvm.json").read_text()))
        maps = mapped(server.pid, KERNEL_PROCESS_MAY_NOT_MAP)
    finally:
        stop_all([server])
    record = records / f"{server.pid}.json"
    assert record.exists(), f"the kernel wrote no module record: {server.output()}"
    modules = json.loads(record.read_text())
    assert "qmk.kernel.service" in modules  # the record is a kernel's
    return modules, maps


@pytest.fixture(scope="module")
def kernel_holds(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, str | None], dict[str, list[str]]]:
    """What the kernel of a plain ``qmk serve`` holds after :func:`bell_jobs`."""
    return record_kernel(tmp_path_factory.mktemp("trusted-core"), bell_jobs)


#: Not yet achieved (issue 79), each with why; strict, so each flips when it is fixed.
NOT_YET: dict[str, str] = {}


@pytest.mark.parametrize(
    "banned",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[name]))
        if name in NOT_YET
        else name
        for name in KERNEL_PROCESS_MAY_NOT_LOAD
    ],
)
def test_the_kernel_process_after_a_job_has_not_loaded(
    banned: str, kernel_holds: tuple[dict[str, str | None], dict[str, list[str]]]
) -> None:
    modules, _ = kernel_holds
    assert loaded(modules, (banned,)) == {}


def test_a_kernel_with_a_decoder_capacity_fault_plans_no_job_in_its_process(
    tmp_path: Path,
) -> None:
    def bell(client: Client, graph: dict[str, Any]) -> None:
        job = client.q_submit(graph, 100, 7)
        assert client.q_wait(job.job_id, 60_000).state == "COMPLETED"

    faults = {"faults": {"decoder_capacity_bits_per_s": 1e12}}
    modules, _ = record_kernel(tmp_path, bell, faults)
    assert loaded(modules, ("qmk.execution.plan", "qmk.engines")) == {}


def rare_calls(client: Client, graph: dict[str, Any]) -> None:
    """A Bell job, then one of each rarer syscall of a tenant about it (a refusal is an
    answer too: it went through the kernel's path for that call)."""
    from qmk.errors import QMKError

    job = client.q_submit(graph, 10, 3)
    assert client.q_wait(job.job_id, 60_000).state == "COMPLETED"
    calls: list[Callable[[], Any]] = [
        lambda: client.q_get_telemetry(job.job_id),
        lambda: client.q_resource_query(),
        lambda: client.q_machine_status(),
        lambda: client.q_machine_status(speedup=True),
        lambda: client.q_usage(),
        lambda: client.q_audit(),
        lambda: client.q_kernel_load(),
        lambda: client.q_list_delegations(),
        lambda: client.q_list_triggers(),
        lambda: client.q_list_channels(),
        lambda: client.q_list_jobs(),
        lambda: client.q_assist("what is a Bell pair?"),
        lambda: client.q_checkpoint(job.job_id),
        lambda: client.q_device_artifacts(job.job_id),
    ]
    for call in calls:
        with contextlib.suppress(QMKError):
            call()


def test_a_kernel_that_served_the_rarer_syscalls_loaded_only_what_their_paths_need(
    tmp_path: Path,
) -> None:
    modules, maps = record_kernel(tmp_path, rare_calls)
    banned = tuple(name for name in KERNEL_PROCESS_MAY_NOT_LOAD if name not in RARE_PATHS)
    assert maps == {}
    assert loaded(modules, banned) == {}


#: A trigger's workflow of OpenQASM text, as ``qmk workflow trigger add`` sends it.
TRIGGER_FLOW = {
    "name": "bell",
    "steps": [
        {
            "name": "bell",
            "source": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
            "h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n",
            "shots": 10,
            "seed": 1,
        }
    ],
}


def a_trigger_run(client: Client, graph: dict[str, Any]) -> None:
    """A trigger of OpenQASM text made, and its first run (every second) ended."""
    made = client.q_create_trigger("bell", TRIGGER_FLOW, "schedule", every_s=1.0)
    deadline = time.monotonic() + 120  # a hang guard only
    while time.monotonic() < deadline:
        (trigger,) = client.q_list_triggers(trigger_id=made.trigger_id).triggers
        if trigger.last_run is not None and trigger.last_run.state != "RUNNING":
            assert trigger.last_run.state == "COMPLETED", trigger.last_run
            return
        time.sleep(0.05)
    raise AssertionError("the trigger's first run did not end")


def test_a_kernel_that_ran_a_trigger_of_program_text_read_none_of_it(tmp_path: Path) -> None:
    # its programs are lowered in the planner process: no front-end in the kernel's
    modules, _ = record_kernel(tmp_path, a_trigger_run)
    assert "qmk.kernel.running.triggers" in modules  # the control: it held the trigger
    assert loaded(modules, ("qmk.frontends", "qmk.http", "qmk.execution.plan")) == {}


def test_the_kernel_process_maps_no_engine_decoder_or_wire_library(
    kernel_holds: tuple[dict[str, str | None], dict[str, list[str]]],
) -> None:
    _, maps = kernel_holds
    assert maps == {}


#: The page that gives the trusted core's size (its "now" row, checked here).
KERNEL_DOCS = Path(__file__).resolve().parents[2] / "docs" / "kernel.md"
#: How far the loaded QMK modules and lines may drift from the page's figures before the
#: page is out of date (a change of a few lines elsewhere in the kernel is not news).
DRIFT = 0.05


def qmk_size(modules: dict[str, str | None]) -> tuple[int, int]:
    """The QMK modules of ``modules`` that are files, and their lines together."""
    files = [f for n, f in modules.items() if f and (n == "qmk" or n.startswith("qmk."))]
    return len(files), sum(len(Path(f).read_text().splitlines()) for f in files)


def test_docs_give_the_qmk_modules_and_lines_the_kernel_process_loads_after_a_job(
    kernel_holds: tuple[dict[str, str | None], dict[str, list[str]]],
) -> None:
    modules, _ = kernel_holds
    row = re.search(
        r"^\| now \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", KERNEL_DOCS.read_text(), re.M
    )
    assert row is not None, "docs/kernel.md has no '| now | modules | QMK modules | lines |' row"
    documented = [int(figure.replace(",", "")) for figure in row.groups()]
    measured = [len(modules), *qmk_size(modules)]
    names = ("modules", "QMK modules", "QMK lines")
    for name, doc, real in zip(names, documented, measured, strict=True):
        assert abs(real - doc) <= DRIFT * doc, (
            f"docs/kernel.md says the kernel process loads {doc:,} {name}; it loads {real:,}"
        )


#: The most QMK lines the kernel process may load after :func:`bell_jobs`: what it loads
#: now (docs/kernel.md's "now" row) and a little room; issue 79's goal is 30,000. Lower it
#: as the kernel sheds code: code that loads where it is not used should not creep back.
KERNEL_QMK_LINES_AT_MOST = 39_065


def test_the_kernel_process_loads_no_more_qmk_lines_than_its_ceiling(
    kernel_holds: tuple[dict[str, str | None], dict[str, list[str]]],
) -> None:
    modules, _ = kernel_holds
    _, lines = qmk_size(modules)
    assert lines <= KERNEL_QMK_LINES_AT_MOST, (
        f"the kernel process loads {lines:,} lines of QMK; at most {KERNEL_QMK_LINES_AT_MOST:,}"
    )


#: How far a room's figures may drift from the page's before the page is out of date: the
#: larger of :data:`DRIFT` and these (a small room's few lines are not news either).
ROOM_DRIFT_MODULES = 2
ROOM_DRIFT_LINES = 150


def room_of(name: str, file: str) -> str:
    """The room of QMK module ``name`` (from ``file``): the package that holds it, to
    three names (``qmk.kernel.machine.policies.base`` is in ``qmk.kernel.machine``)."""
    package = name if Path(file).name == "__init__.py" else name.rpartition(".")[0]
    return ".".join(package.split(".")[:3])


def rooms(modules: dict[str, str | None]) -> dict[str, tuple[int, int]]:
    """The QMK modules of ``modules`` that are files, by room: ``(modules, lines)``."""
    found: dict[str, tuple[int, int]] = {}
    for name, file in modules.items():
        if file and (name == "qmk" or name.startswith("qmk.")):
            room = room_of(name, file)
            count, lines = found.get(room, (0, 0))
            found[room] = (count + 1, lines + len(Path(file).read_text().splitlines()))
    return found


def test_docs_list_every_room_the_kernel_process_loads_with_its_modules_and_lines(
    kernel_holds: tuple[dict[str, str | None], dict[str, list[str]]],
) -> None:
    modules, _ = kernel_holds
    rows = re.findall(
        r"^\| `(qmk[\w.]*)` \| ([\d,]+) \| ([\d,]+) \| [^|]+ \|$", KERNEL_DOCS.read_text(), re.M
    )
    documented = {room: (int(m), int(n.replace(",", ""))) for room, m, n in rows}
    measured = rooms(modules)
    assert sorted(documented) == sorted(measured), "docs/kernel.md's rooms are not the loaded ones"
    for room, (count, lines) in measured.items():
        doc_count, doc_lines = documented[room]
        assert abs(count - doc_count) <= max(DRIFT * doc_count, ROOM_DRIFT_MODULES), (
            f"docs/kernel.md says the kernel loads {doc_count} modules of {room}; it loads {count}"
        )
        assert abs(lines - doc_lines) <= max(DRIFT * doc_lines, ROOM_DRIFT_LINES), (
            f"docs/kernel.md says the kernel loads {doc_lines:,} lines of {room}; "
            f"it loads {lines:,}"
        )
