"""The Dask bridge: ``qmk serve --dask local:N`` runs jobs on Dask from a supervised
process of its own, and the kernel's process loads no Dask.

A real server and a real ``LocalCluster`` (the bridge's). Which process is the kernel
is structural (the server's pid, it holds the data dir); the bridge is its child named
``qmk-dask``. What the kernel loaded is read from a ``sitecustomize`` on its
``PYTHONPATH`` that records ``sys.modules`` at its exit (as
``tests/kernel/test_trusted_core.py`` does). Waits are bounded only against a hang.
A job is held at a fence of a killed bridge by a bridge process on the tests' hooks
(:mod:`support.dask_bridge`), whose kernel reaches it as one started alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from qmk.execution.runs import run
from support.children import die_with_us, terminate
from support.cli import qmk
from support.kernel import (
    EXAMPLES,
    FENCED,
    TENANTS,
    ServerProcess,
    WorkerGate,
    config_toml,
    stop_all,
    support_env,
)

pytest.importorskip("distributed")

GUARD_S = 180.0  # a hang guard, never a timing assertion
#: The kernel process loads none of these (the bridge holds them).
DASK_MODULES = (
    "distributed",
    "dask",
    "tornado",
    "qmk.kernel.pools.dask_pool",
    "qmk.kernel.pools.dask_cluster",
    "qmk.kernel.pools.dask_jobs",
    "qmk.kernel.pools.dask_parts",
    "qmk.kernel.pools.dask_worker",
    "qmk.kernel.pools.dask_scaler",
    "qmk.kernel.pools.dask_bridge",
)
SITECUSTOMIZE = """\
import atexit, json, os, sys

def _record():
    path = os.path.join(os.environ["QMK_TEST_MODULES_DIR"], f"{os.getpid()}.json")
    with open(path, "w") as out:
        json.dump(sorted(sys.modules), out)

atexit.register(_record)
"""
TENANTS_OBSERVED = {**TENANTS, "ops": {"key": "ops-secret-key", "caps": ["CAP_OBSERVE"]}}


def _bell() -> dict[str, Any]:
    return json.loads((EXAMPLES / "bell.qvm.json").read_text())


def _server(tmp_path: Path) -> ServerProcess:
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml(tenants=TENANTS_OBSERVED))
    return ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=2,
        log=tmp_path / "serve.log",
        extra=("--dask", "local:2", "--log-level", "info"),
    )


def _kernel_only(
    tmp_path: Path, bridge_socket: Path, kernel: dict[str, Any] | None = None
) -> ServerProcess:
    """A ``qmk serve --kernel-only`` of one worker that reaches the bridge on
    ``bridge_socket`` (``kernel``: more keys of its ``[kernel]`` table)."""
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml(kernel=kernel))
    return ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=1,
        log=tmp_path / "serve.log",
        extra=("--kernel-only", "--dask-bridge", str(bridge_socket)),
    )


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _bridge_of(pid: int, name: str = "qmk-dask") -> int | None:
    """The bridge child of the kernel ``pid`` named ``name`` (the serving one, or
    ``qmk-dask-spare``), if any."""
    for child in _children(pid):
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() == name:
                return child
        except OSError:
            continue
    return None


def _wait_bridge(server: ServerProcess, not_this: int | None = None) -> int:
    """The kernel's serving bridge (other than ``not_this``), once it is there: the
    kernel prints its listening line once its first bridge serves."""
    deadline = time.monotonic() + GUARD_S
    while True:
        found = _bridge_of(server.pid) if "listening on" in server.output() else None
        if found is not None and found != not_this:
            return found
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.02)


def _check_bell(result: Any, shots: int, seed: int) -> None:
    """A Bell pair's counts: only 00 and 11 (exact theory), all shots, and those of the
    same program and seed run in this process."""
    counts = dict(result["counts"])
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == shots
    assert counts == run(_bell(), shots=shots, seed=seed).counts


def test_jobs_run_through_the_bridge_and_the_kernel_process_loads_no_dask(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    records = tmp_path / "modules"
    records.mkdir()
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    server = _server(tmp_path)
    try:
        server.start(
            timeout_s=GUARD_S, env={"PYTHONPATH": path, "QMK_TEST_MODULES_DIR": str(records)}
        )
        assert _wait_bridge(server) != server.pid  # a process of its own
        key = TENANTS["alice"]["key"]
        with Client.connect(str(server.socket), tenant="alice", key=key) as client:
            jobs = [(client.q_submit(_bell(), 300, seed), seed) for seed in (11, 12, 13)]
            for job, seed in jobs:
                done = client.q_wait(job.job_id, int(GUARD_S * 1000))
                assert done.state == "COMPLETED", done
                _check_bell(done.result, 300, seed)
    finally:
        stop_all([server])
    modules = json.loads((records / f"{server.pid}.json").read_text())
    assert "qmk.kernel.service" in modules  # the record is the kernel's
    assert "qmk.kernel.pools.remote" in modules  # its jobs went to the bridge
    banned = [m for m in modules if any(m == b or m.startswith(b + ".") for b in DASK_MODULES)]
    assert banned == []


def test_a_killed_bridge_is_replaced_by_its_warm_spare_counted_and_loses_no_accepted_job(
    tmp_path: Path,
) -> None:
    server = _server(tmp_path)
    try:
        server.start(timeout_s=GUARD_S)
        first = _wait_bridge(server)
        deadline = time.monotonic() + GUARD_S
        while "spare stands by" not in server.output():  # its cluster up, its jobs' processes
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.02)
        spare = _bridge_of(server.pid, "qmk-dask-spare")
        assert spare is not None
        warm = _descendants(spare)
        key = TENANTS["alice"]["key"]
        with Client.connect(str(server.socket), tenant="alice", key=key) as client:
            jobs = [(client.q_submit(_bell(), 200, seed), seed) for seed in range(21, 27)]
            # the barrier: the kernel has handed a job to the bridge's pool
            deadline = time.monotonic() + GUARD_S
            while client.q_status(jobs[0][0].job_id).state == "QUEUED":
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.01)
            os.kill(first, signal.SIGKILL)
            for job, seed in jobs:  # every accepted job completes, with its counts
                done = client.q_wait(job.job_id, int(GUARD_S * 1000))
                assert done.state == "COMPLETED", (done, server.output())
                _check_bell(done.result, 200, seed)
        assert _wait_bridge(server, not_this=first) == spare
        # the spare ran them on the processes it had started while it stood by
        assert warm and _descendants(spare) <= warm
        ops = TENANTS_OBSERVED["ops"]["key"]
        with Client.connect(str(server.socket), tenant="ops", key=ops) as observer:
            load = observer.q_kernel_load()
        assert load.snapshot["server_restarts"] == {"dask": 1}
    finally:
        stop_all([server])
    assert "restart 1 by its spare" in server.output()  # logged


def test_a_bridge_started_alone_runs_the_jobs_of_a_kernel_only_that_names_its_socket(
    tmp_path: Path,
) -> None:
    bridge_socket = tmp_path / "dask.sock"
    log = (tmp_path / "bridge.log").open("wb")
    argv = [sys.executable, "-m", "qmk", "dask-bridge", "--listen", str(bridge_socket)]
    bridge = subprocess.Popen(
        [*argv, "--dask", "local:1", "--json"],
        stdout=subprocess.PIPE,
        stderr=log,
        preexec_fn=die_with_us(),
    )
    # the kernel may start first: it tries the socket until the bridge listens
    server = _kernel_only(tmp_path, bridge_socket)
    try:
        server.start(timeout_s=GUARD_S)
        assert bridge.stdout is not None
        ready = json.loads(bridge.stdout.readline())  # once it serves
        assert ready["dask"].startswith("tls://127.0.0.1:")
        key = TENANTS["alice"]["key"]
        with Client.connect(str(server.socket), tenant="alice", key=key) as client:
            job = client.q_submit(_bell(), 300, 5)
            done = client.q_wait(job.job_id, int(GUARD_S * 1000))
            assert done.state == "COMPLETED", (done, server.output())
            _check_bell(done.result, 300, 5)
    finally:
        stop_all([server])
        assert terminate(bridge, GUARD_S) == 0, (tmp_path / "bridge.log").read_text()


def _tests_bridge(
    tmp_path: Path, socket: Path, name: str, pause: WorkerGate | None
) -> subprocess.Popen[bytes]:
    """A bridge process on the tests' hooks (:mod:`support.dask_bridge`), in a session
    of its own (its cluster's processes outlive a SIGKILL of it: the test ends them),
    once it serves."""
    argv = [sys.executable, "-m", "support.dask_bridge", "--listen", str(socket)]
    if pause is not None:
        argv += ["--pause-gate", str(pause.path)]
    bridge = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / f"{name}.log").open("wb"),
        env=support_env(),
        start_new_session=True,
        preexec_fn=die_with_us(),
    )
    assert bridge.stdout is not None
    line = bridge.stdout.readline()  # once it serves
    assert line, (tmp_path / f"{name}.log").read_text()
    return bridge


def _held_then_killed(
    client: Client, server: ServerProcess, bridge: subprocess.Popen[bytes], shots: int, seed: int
) -> tuple[str, Any]:
    """Submit a fenced job that ``bridge`` holds at its first fence; once its state there
    is saved and recorded by the kernel (the barrier), kill -9 the bridge. The job's id
    and its checkpoint."""
    job_id = str(client.q_submit(FENCED, shots, seed, policy={"noise": False}).job_id)
    deadline = time.monotonic() + GUARD_S
    while client.q_status(job_id).state != "RUNNING":  # held at its first fence
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.01)
    checkpoint = client.q_checkpoint(job_id)
    assert checkpoint.saved and checkpoint.program_epoch == 1
    os.kill(bridge.pid, signal.SIGKILL)
    assert bridge.wait(GUARD_S) == -signal.SIGKILL
    return job_id, checkpoint


def _kill_bridge(bridge: subprocess.Popen[bytes]) -> None:
    """kill -9 a test's bridge and its cluster's processes, if they live."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(bridge.pid, signal.SIGKILL)
    bridge.wait(GUARD_S)


def test_a_job_whose_bridge_is_killed_resumes_from_its_checkpoint_on_the_next_bridge(
    tmp_path: Path,
) -> None:
    shots, seed = 500, 17
    expected = dict(run(FENCED, shots=shots, seed=seed, noise=False).counts)
    socket = tmp_path / "dask.sock"
    server = _kernel_only(tmp_path, socket)
    bridges: list[subprocess.Popen[bytes]] = []
    with WorkerGate(tmp_path, "pause-gate") as pause:
        try:
            bridges.append(_tests_bridge(tmp_path, socket, "first", pause))
            server.start(timeout_s=GUARD_S)
            key = TENANTS["alice"]["key"]
            with Client.connect(str(server.socket), tenant="alice", key=key) as client:
                job_id, checkpoint = _held_then_killed(client, server, bridges[0], shots, seed)
                bridges.append(_tests_bridge(tmp_path, socket, "second", None))
                done = client.q_wait(job_id, int(GUARD_S * 1000))
                assert done.state == "COMPLETED", (done, server.output())
                result = done.result
                assert isinstance(result, dict), done
                assert dict(result["counts"]) == expected
                assert result["telemetry"]["resumed_from_epoch"] == 1  # not from its start
        finally:
            stop_all([server])
            for bridge in bridges:
                _kill_bridge(bridge)
    lines = [
        json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().splitlines()
    ]
    moves = [r for r in lines if r.get("job_id") == job_id and r["event"] == "job"]
    # queued again, not failed, once its bridge went away; one result, once
    states = [r["state"] for r in moves]
    assert states[-4:] == ["RUNNING", "QUEUED", "RUNNING", "COMPLETED"], states
    assert states.count("COMPLETED") == 1 and "FAILED" not in states
    assert "its worker was lost" in moves[-3]["reason"]
    assert [r.get("attempt") for r in moves[-4:]] == [1, None, 2, None]
    saved = [r["checkpoint_id"] for r in lines if r["event"] == "checkpoint"]
    assert saved == [checkpoint.checkpoint_id]  # the one it resumed from


def test_a_job_whose_worker_is_lost_past_its_retries_fails_with_worker_lost(
    tmp_path: Path,
) -> None:
    """With ``worker_lost_retries = 0`` the first loss of its bridge fails the held job
    (``QK312``): a job is not queued again forever."""
    socket = tmp_path / "dask.sock"
    server = _kernel_only(tmp_path, socket, kernel={"worker_lost_retries": 0})
    with WorkerGate(tmp_path, "pause-gate") as pause:
        bridge = _tests_bridge(tmp_path, socket, "first", pause)
        try:
            server.start(timeout_s=GUARD_S)
            key = TENANTS["alice"]["key"]
            with Client.connect(str(server.socket), tenant="alice", key=key) as client:
                job_id, _ = _held_then_killed(client, server, bridge, 100, 5)
                done = client.q_wait(job_id, int(GUARD_S * 1000))
                assert done.state == "FAILED", (done, server.output())
                assert done.error is not None and done.error.code == "QK312", done
                assert "(losses: 1; kernel.worker_lost_retries: 0)" in done.error.message
        finally:
            stop_all([server])
            _kill_bridge(bridge)


def test_kernel_only_starts_no_bridge_and_dask_bridge_excludes_dask(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml())
    argv = ["serve", "--socket", str(tmp_path / "k.sock"), "--config", str(config)]
    argv += ["--data-dir", str(tmp_path / "data"), "--dask", "local:1"]
    code, _, err = qmk(*argv, "--kernel-only")
    assert code == 2 and err.startswith("QW011 bad-option: --kernel-only starts no Dask bridge")
    code, _, err = qmk(*argv, "--dask-bridge", str(tmp_path / "dask.sock"))
    assert code == 2 and err.startswith("QW011 bad-option: --dask starts a bridge"), err
    assert not (tmp_path / "data").exists()
