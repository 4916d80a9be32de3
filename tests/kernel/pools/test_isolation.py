"""Workers are closed the way the OS allows: every escape is tried from inside a worker.

The probe (``support.isolation``, the ``probe`` hook of the tests' pool,
:class:`support.pools.GatedPool`) runs in place of the task, in a confined worker,
exactly where a job would run, and reports what each escape met. A layer the OS here
cannot provide is skipped with the reason (and the worker says so in its report, which
the tests check too).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.abi import replies
from qmk.client import Client
from qmk.kernel.datafiles import DB_FILE, SECRET_FILE
from qmk.kernel.errors import ConfigError
from qmk.kernel.pools.confine import landlock_abi
from qmk.kernel.pools.pool import WorkerDied, WorkerPool
from qmk.kernel.pools.sandbox import Isolation, unreachable
from qmk.kernel.pools.workers import kernel_isolation
from qmk.kernel.service import Kernel
from support.isolation import UNIX_BAIT, burn, escapes
from support.kernel import BELL, TENANTS, login, make_config, run_kernel, serve_factory, stop_all
from support.paths import EXAMPLES
from support.pools import GatedPool, Hooks

LANDLOCK = landlock_abi()
# How long a test waits on a sandboxed worker or probe: a guard against a hang, not a
# measure of speed (a worker's first start imports the engines, slow on a loaded host).
HANG_S = 300
no_landlock = pytest.mark.skipif(LANDLOCK < 1, reason="this Linux kernel has no Landlock")
no_signal_scope = pytest.mark.skipif(
    LANDLOCK < 6, reason="Landlock below ABI 6 cannot stop a worker's signals"
)
not_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the tests do not run as root: workers have no user to drop to"
)


class Bait:
    """What a worker must not reach: a data directory with a secret and a database, a
    folder outside it, a TCP port and a Unix socket listening on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(mode=0o700)
        for name in (SECRET_FILE, DB_FILE):
            path = self.data / name
            path.write_bytes(b"the kernel's own")
            path.chmod(0o600)
        self.outside = root / "outside"
        self.outside.mkdir()
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(str(root / UNIX_BAIT))
        self.unix.listen()

    def targets(self) -> dict[str, Any]:
        return {
            **self.targets_in(self.root, self.data),
            "port": self.port,
            "unix": str(self.root / UNIX_BAIT),
        }

    @staticmethod
    def targets_in(root: Path, data: Path) -> dict[str, Any]:
        """The bait of a data directory ``data`` in ``root`` (no sockets: port 9)."""
        outside = root / "outside"
        outside.mkdir(exist_ok=True)
        return {
            "data_dir": str(data),
            "checkpoints": str(data / "checkpoints" / "job_x"),
            "outside": str(outside),
            "port": 9,
        }

    def isolation(self, **options: Any) -> Isolation:
        return Isolation(
            hidden=(str(self.data),), writable=(str(self.data / "checkpoints"),), **options
        )

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


@pytest.fixture(scope="module")
def bait(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bait]:
    found = Bait(tmp_path_factory.mktemp("bait"))
    yield found
    found.close()


@pytest.fixture(scope="module")
def pool(bait: Bait) -> Iterator[WorkerPool]:
    pool = GatedPool(1, memory_mb=1024, isolation=bait.isolation(file_mb=1), probe=escapes)
    yield pool
    pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="module")
def report(pool: WorkerPool, bait: Bait) -> dict[str, Any]:
    value = pool.submit(dict, **bait.targets()).result(timeout=HANG_S)
    assert isinstance(value, dict)
    return value


# --------------------------------------------------------------------------- network


def test_a_worker_cannot_open_a_tcp_connection_to_this_machine(report: dict[str, Any]) -> None:
    assert report["socket_inet"] == "EACCES"  # socket() itself is refused


def test_a_worker_cannot_open_a_unix_socket_or_reach_one(report: dict[str, Any]) -> None:
    assert report["socket_unix"] == "EACCES"
    assert report["connect_unix"] == "EACCES"


def test_a_worker_says_its_network_is_denied_by_the_os(pool: WorkerPool) -> None:
    confinement = pool.confinement
    assert confinement is not None
    assert confinement["network"].startswith("denied (")
    assert "seccomp" in confinement["network"]
    if os.geteuid() == 0:
        assert "network namespace" in confinement["network"]
    else:
        assert any(gap.startswith("network: no network namespace") for gap in confinement["gaps"])


# --------------------------------------------------------------------------- files


@no_landlock
def test_a_worker_cannot_write_outside_its_own_directories(report: dict[str, Any]) -> None:
    assert report["write_outside"] == "EACCES"
    assert report["write_tmp_shared"] == "EACCES"  # /dev/shm, world-writable
    assert report["write_data_dir"] == "EACCES"


@no_landlock
def test_a_worker_cannot_read_or_list_the_kernels_data_directory(report: dict[str, Any]) -> None:
    assert report["read_secret"] == "EACCES"
    assert report["read_database"] == "EACCES"
    assert report["list_data_dir"] == "EACCES"


@no_landlock
def test_a_worker_writes_checkpoints_it_cannot_list_and_reads_code(
    report: dict[str, Any],
) -> None:
    assert report["write_checkpoint"] == "ok"
    assert report["list_checkpoints"] == "EACCES"  # a job's folder is reached by its id
    assert report["write_tmpdir"] == "ok"
    assert report["read_code"] == "ok"


def test_a_file_past_the_size_limit_fails_with_efbig(report: dict[str, Any]) -> None:
    assert report["rlimit_fsize"] == 1024 * 1024
    assert report["write_past_file_limit"] == "EFBIG"


def test_a_worker_holds_no_inherited_descriptor(report: dict[str, Any]) -> None:
    descriptors = report["descriptors"]
    assert {fd: descriptors.pop(fd) for fd in ("0", "1", "2")} == dict.fromkeys(
        ("0", "1", "2"), "devnull"
    )
    assert list(descriptors.values()) == ["fifo", "fifo"]  # its line to the pool (a pipe each
    # way), nothing else


@no_signal_scope
def test_a_worker_cannot_signal_the_kernel(report: dict[str, Any]) -> None:
    assert report["signal_kernel"] == "EPERM"


def test_each_worker_has_a_temp_dir_of_its_own_removed_after_it(bait: Bait) -> None:
    pool = WorkerPool(1, isolation=bait.isolation())
    try:
        first = pool.submit(os.getenv, "TMPDIR").result(timeout=HANG_S)
        assert first is not None and Path(first).is_dir()
        assert Path(first).parent != Path(tempfile.gettempdir())  # not the shared /tmp
        with pytest.raises(WorkerDied):
            pool.submit(os._exit, 0).result(timeout=HANG_S)
        second = pool.submit(os.getenv, "TMPDIR").result(timeout=HANG_S)
        assert second != first and Path(second).is_dir()
        assert not Path(first).exists()  # removed when its worker was reaped
    finally:
        pool.shutdown(cancel_futures=True)
    assert not Path(second).exists() and not Path(second).parent.exists()


# --------------------------------------------------------------------------- the user


@not_root
def test_a_worker_of_a_root_pool_runs_as_an_unprivileged_user() -> None:
    # the data directory's parents must be searchable by the worker's user (pytest's own
    # temp dir is 0700): a directory under the system's temp dir, searchable
    root = Path(tempfile.mkdtemp(prefix="qmk-user-test-"))
    root.chmod(0o711)
    bait = Bait(root)
    try:
        isolation = bait.isolation(user="nobody", filesystem=False)  # what the uid alone does
        pool = GatedPool(1, isolation=isolation, probe=escapes)
        try:
            found = pool.submit(dict, **bait.targets()).result(timeout=HANG_S)
            confinement = pool.confinement
        finally:
            pool.shutdown(cancel_futures=True)
    finally:
        bait.close()
        shutil.rmtree(root, ignore_errors=True)
    assert (found["uid"], found["gid"], found["groups"]) == (65534, 65534, [])
    assert confinement is not None and confinement["user"] == "nobody (uid 65534)"
    assert found["read_secret"] == found["read_database"] == "EACCES"  # mode 0600, root's
    assert found["list_data_dir"] == found["write_data_dir"] == "EACCES"
    assert found["write_outside"] == "EACCES"
    assert found["write_checkpoint"] == "ok"  # its folder is open to the worker's group
    assert found["list_checkpoints"] == "EACCES"
    assert found["signal_kernel"] == "EPERM"


def test_a_user_who_cannot_reach_a_directory_is_told_which_one() -> None:
    root = Path(tempfile.mkdtemp(prefix="qmk-reach-test-"))  # pytest's temp dir is 0700
    try:
        root.chmod(0o755)
        closed = root / "closed"
        inner = closed / "inner"
        inner.mkdir(parents=True)
        closed.chmod(0o700)
        inner.chmod(0o755)
        stranger = os.getuid() + 12345  # owns nothing here
        why = unreachable(str(inner), stranger, stranger, "rx")
        assert why is not None and why.startswith(f"{closed} (mode 0700")
        closed.chmod(0o711)
        assert unreachable(str(inner), stranger, stranger, "rx") is None
        assert unreachable(str(inner), stranger, stranger, "rwx") is not None  # not writable
    finally:
        shutil.rmtree(root)


# --------------------------------------------------------------------------- the kernel


def test_a_kernel_job_cannot_escape_its_worker(tmp_path: Path) -> None:
    tcp = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(tmp_path / UNIX_BAIT))
    unix.listen()

    async def body(kernel: Kernel) -> tuple[dict[str, Any], dict[str, Any]]:
        sid = await login(kernel, "alice")
        port = tcp.getsockname()[1]
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=1, seed=port)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "FAILED" and done.error.name == "probe"
        health = await kernel.q_resource_query(session_id=sid)
        return json.loads(done.error.message), health.machine["worker_isolation"]

    try:
        found, health = run_kernel(  # the kernel's pool runs the probe for each job
            tmp_path, body, config=make_config(worker_file_mb=1), hooks=Hooks(probe=escapes)
        )
    finally:
        tcp.close()
        unix.close()
    assert found["socket_inet"] == found["socket_unix"] == found["connect_unix"] == "EACCES"
    assert found["rlimit_fsize"] == 1024 * 1024 and found["write_past_file_limit"] == "EFBIG"
    assert found["rlimit_cpu"] > 0
    assert health["network"].startswith("denied") and health["file_mb"] == 1
    if LANDLOCK >= 1:
        assert found["read_secret"] == found["read_database"] == found["list_data_dir"]
        assert found["read_secret"] == "EACCES"
        assert found["write_outside"] == found["write_data_dir"] == "EACCES"
        assert found["write_checkpoint"] == "ok" and found["list_checkpoints"] == "EACCES"
    if os.geteuid() == 0 and found["uid"] == 0:  # the kernel says why it kept root
        assert any(gap.startswith("user: the workers run as root") for gap in health["gaps"])


def test_a_kernel_job_past_its_cpu_limit_fails_naming_the_limit(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> replies.Job:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=1, seed=1)
        return await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=120_000)

    done = run_kernel(tmp_path, body, config=make_config(worker_cpu_s=1), hooks=Hooks(probe=burn))
    assert done.state == "FAILED"  # the pool's WorkerCpuLimit, as the kernel words it
    assert done.error.name == "worker-failed"
    assert "CPU-time limit (1 s)" in done.error.message


def test_a_served_kernel_reports_its_isolation_and_its_jobs_cannot_reach_its_socket(
    tmp_path: Path,
) -> None:
    serve, started = serve_factory(tmp_path)
    try:
        # named after the bait: its own socket is the Unix socket the probe tries
        server = serve(UNIX_BAIT.removesuffix(".sock"), hooks=Hooks(probe=escapes))
        key = TENANTS["alice"]["key"]
        with Client.connect(str(server.socket), tenant="alice", key=key) as client:
            graph = json.loads((EXAMPLES / "bell.qvm.json").read_text())
            job = client.q_submit(graph, 1, 1)
            done = client.q_wait(job.job_id, 60_000)
            machine = client.q_resource_query().machine
    finally:
        stop_all(started)
    found = json.loads(done.error.message)
    assert found["connect_unix"] == "EACCES"  # the kernel's own socket
    isolation = machine["worker_isolation"]
    assert isolation["network"].startswith("denied")
    for gap in isolation["gaps"]:  # every gap is in the server's log
        assert f"worker isolation gap: {gap}" in server.output()


@no_landlock
def test_a_data_directory_that_holds_the_code_hides_all_but_the_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "checkout"  # ``qmk serve --data-dir .`` in a checkout
    code = data / "src"
    code.mkdir(parents=True)
    (code / "module.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(code))
    isolation = kernel_isolation(make_config(), data)
    assert str(code) not in isolation.hidden and str(data) not in isolation.hidden
    pool = GatedPool(1, isolation=isolation, probe=escapes)
    try:
        (data / SECRET_FILE).write_bytes(b"made after the workers started")
        (data / SECRET_FILE).chmod(0o600)
        targets = {**Bait.targets_in(tmp_path, data), "read": str(code / "module.py")}
        found = pool.submit(dict, **targets).result(timeout=HANG_S)
    finally:
        pool.shutdown(cancel_futures=True)
    assert found["read_given"] == "ok"  # its code stays readable
    assert found["read_secret"] == found["list_data_dir"] == "EACCES"
    assert found["write_checkpoint"] == "ok"


def test_the_worker_limit_keys_are_checked() -> None:
    for key, value in (
        ("worker_cpu_s", 0),
        ("worker_file_mb", 0),
        ("worker_user", -1),
        ("worker_user", ""),
        ("worker_user", True),
    ):
        with pytest.raises(ConfigError, match=rf"kernel\.{key}"):
            make_config(**{key: value})
    config = make_config(worker_cpu_s=5, worker_file_mb=3, worker_user=65534)
    assert (config.worker_cpu_s, config.worker_file_mb, config.worker_user) == (5, 3, 65534)
    isolation = kernel_isolation(config, "/nonexistent/data")
    assert (isolation.cpu_s, isolation.file_mb) == (5, 3)
    assert kernel_isolation(make_config(), "/nonexistent/data").file_mb == 1024  # the memory cap


@not_root
def test_a_worker_user_that_does_not_exist_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"kernel\.worker_user: no user 'no-such-qmk-user'"):
        kernel_isolation(make_config(worker_user="no-such-qmk-user"), "/nonexistent/data")


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_new_workers_root_reaps_the_roots_of_killed_owners_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    from qmk.kernel.pools.sandbox import OWNER_FILE, Sandboxes, owned_temp_dir

    dead = owned_temp_dir("qmk-workers-", str(tmp_path))
    Path(dead, OWNER_FILE).write_text(f"{_dead_pid()} 1")
    Path(dead, "wleftover").mkdir()
    reused = owned_temp_dir("qmk-workers-", str(tmp_path))
    Path(reused, OWNER_FILE).write_text(f"{os.getpid()} 1")  # our pid, another start: reused
    alive = owned_temp_dir("qmk-workers-", str(tmp_path))  # this process's: kept
    unmarked = tmp_path / "qmk-workers-unmarked"  # being made, or an older QMK's: kept
    unmarked.mkdir()
    other = owned_temp_dir("qmk-dask-", str(tmp_path))
    Path(other, OWNER_FILE).write_text(f"{_dead_pid()} 1")  # another prefix: not ours to reap

    boxes = Sandboxes(Isolation(filesystem=False, temp_root=str(tmp_path)), memory_mb=None)
    try:
        left = {p.name for p in tmp_path.iterdir()}
        assert Path(dead).name not in left and Path(reused).name not in left
        assert {Path(alive).name, unmarked.name, Path(other).name, Path(boxes.root).name} <= left
    finally:
        boxes.close()
    assert not Path(boxes.root).exists()


# --------------------------------------------------------------------------- servers

#: A user-mode server's start, then each escape it tries (argv: the data dir, a folder
#: outside it, the secret's name).
_SERVER_PROBE = """
import json, os, sys, tempfile
from qmk.kernel.pools.confine import confine_server

data, outside, secret = sys.argv[1:4]
report = confine_server([data])

def attempt(act):
    try:
        act()
        return "ok"
    except PermissionError:
        return "EACCES"

def write(path):
    with open(path, "w") as handle:
        handle.write("x")

print(json.dumps({
    "filesystem": report.filesystem,
    "gaps": list(report.gaps),
    "read_secret": attempt(lambda: open(os.path.join(data, secret)).read()),
    "list_data_dir": attempt(lambda: os.listdir(data)),
    "write_outside": attempt(lambda: write(os.path.join(outside, "new"))),
    "read_outside": attempt(lambda: open(os.path.join(outside, "kept")).read()),
    "write_temp": attempt(lambda: tempfile.mkstemp()),
    "no_new_privs": open("/proc/self/status").read().count("NoNewPrivs:\\t1"),
    "temp_dir": tempfile.gettempdir(),
}))
"""


@no_landlock
def test_a_confined_server_reads_no_data_directory_and_writes_only_its_temp_dir(
    bait: Bait,
) -> None:
    (bait.outside / "kept").write_text("anyone's")
    done = subprocess.run(
        [sys.executable, "-c", _SERVER_PROBE, str(bait.data), str(bait.outside), SECRET_FILE],
        capture_output=True,
        text=True,
        timeout=HANG_S,
        check=True,
    )
    found = json.loads(done.stdout)
    assert found["filesystem"].startswith("landlock ABI") and found["gaps"] == []
    assert found["read_secret"] == found["list_data_dir"] == "EACCES"
    assert found["write_outside"] == "EACCES"
    assert found["read_outside"] == found["write_temp"] == "ok"  # the controls
    assert found["no_new_privs"] == 1
    # its temp dir's folder stays marked as its own, so the next server's start reaps it
    root = Path(found["temp_dir"]).parent
    from qmk.kernel.pools.sandbox import OWNER_FILE, owned_temp_dir

    assert (root / OWNER_FILE).exists()
    shutil.rmtree(owned_temp_dir("qmk-server-"))  # a next server's start, as it does
    assert not root.exists()
