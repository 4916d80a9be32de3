"""A server a test starts ends with the test run that started it (support.children).

A pytest that is killed (``timeout`` sends SIGTERM, a CI runner SIGKILL) runs no
finalizer: before, a ``qmk serve`` it had started, its job held at a worker gate, ran on
for hours with its forkserver and workers. Here a stand-in for the test run (a child
process) starts the server the way the fixtures do, holds a job at the gate when it has
one, prints the server's pid and is killed with SIGKILL; the server and everything it
started must then end. The waits are on that condition, bounded only against a hang.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.children import die_with_us
from support.kernel import support_env

GUARD_S = 60.0  # a hang guard, never a timing assertion

TEST_RUN = """
import sys, time
from pathlib import Path
from qmk.client import Client
from support.kernel import BELL, TENANTS, ServerProcess, WorkerGate, config_toml

root, kind = Path(sys.argv[1]), sys.argv[2]
(root / "k.toml").write_text(config_toml())
server = ServerProcess(socket=root / "k.sock", data_dir=root / "data", config=root / "k.toml",
                       workers=1, log=root / "k.log")
gate = WorkerGate(root) if kind == "gated" else None
server.start(hooks=None if gate is None else gate.hooks())
if gate is not None:  # a job held in its worker, as when the test run was killed
    with Client.connect(str(server.socket), tenant="alice", key=TENANTS["alice"]["key"]) as c:
        job = c.q_submit(BELL, 10, 1, {}).job_id
        while c.q_status(job).state != "RUNNING":
            time.sleep(0.02)
print(server.pid, flush=True)
sys.stdin.read()  # until killed
"""


def descendants(pid: int) -> set[int]:
    """``pid`` and every process under it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


def gone(pid: int) -> bool:
    """No process ``pid`` any more (a zombie counts as gone: it computes nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc")
@pytest.mark.parametrize("kind", ["gated", "plain"])
def test_a_server_and_its_workers_end_when_the_test_run_that_started_it_is_killed(
    tmp_path: Path, kind: str
) -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", TEST_RUN, str(tmp_path), kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=support_env(),
        preexec_fn=die_with_us(),
    )
    left: set[int] = set()
    try:
        assert run.stdout is not None
        ready, _, _ = select.select([run.stdout], [], [], GUARD_S)
        assert ready, "the test run never said its server started"
        server = int(run.stdout.readline())
        tree = descendants(server)
        assert len(tree) > 2, tree  # the server, its forkserver, its workers
        run.kill()  # SIGKILL: no finalizer runs
        run.wait(GUARD_S)
        end = time.monotonic() + GUARD_S
        while time.monotonic() < end and not all(gone(pid) for pid in tree):
            time.sleep(0.01)
        left = {pid for pid in tree if not gone(pid)}
        assert not left, f"{kind} server processes outlived the test run: {sorted(left)}"
    finally:
        run.kill()
        run.wait(GUARD_S)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
