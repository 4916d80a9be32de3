"""A worker whose pool dies without a word (``kill -9`` of the pool's process) ends at
once instead of computing on: :func:`~qmk.kernel.pools.worker.exit_when_closed`.

The pool runs in a child process that prints its job's worker pid once the job is
running; the test kills that child and waits (a bounded loop on the condition, never a
fixed sleep) until the worker is gone. The pools have the default isolation, so the
watcher runs inside a confined worker (seccomp, Landlock, rlimits).
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

from qmk.kernel.pools.pool import WorkerPool

GUARD_S = 30.0  # a hang guard, never a timing assertion

JOBS = '''
import os, signal
from qmk.kernel.pools.worker import current_link

def spin():
    """Compute forever in Python bytecode, never writing to the pool."""
    current_link().notify(os.getpid())
    n = 0
    while True:
        n += 1

def pause():
    """Wait forever in a system call."""
    current_link().notify(os.getpid())
    signal.pause()

def c_loop():
    """Compute in one call of C code that holds the GIL (no thread of ours runs)."""
    current_link().notify(os.getpid())
    sum(range(10**15))
'''

OWNER = """
import sys, threading
from orphan_jobs import c_loop, pause, spin
from qmk.kernel.pools.pool import WorkerPool

pool = WorkerPool(1, memory_mb=512)
started = threading.Event()
future = pool.submit({"spin": spin, "pause": pause, "c_loop": c_loop}[sys.argv[1]])
pool.listen(future, lambda pid: (print(pid, flush=True), started.set()))
started.wait()
threading.Event().wait()  # until killed
"""


def gone(pid: int) -> bool:
    """No process ``pid`` any more (a zombie counts as gone: it computes nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], GUARD_S)
    assert ready, "the pool's owner never said its job started"
    return process.stdout.readline()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="poll(POLLRDHUP), /proc")
@pytest.mark.parametrize("job", ["spin", "pause", "c_loop"])
def test_a_job_process_ends_when_the_process_that_owns_its_pool_is_killed(
    tmp_path: Path, job: str
) -> None:
    (tmp_path / "orphan_jobs.py").write_text(JOBS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, job], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        worker = int(read_line(owner))
        assert not gone(worker)
        owner.kill()  # SIGKILL: the pool gets no chance to stop its workers
        owner.wait(GUARD_S)
        end = time.monotonic() + GUARD_S
        while not gone(worker) and time.monotonic() < end:
            time.sleep(0.01)
        alive = not gone(worker)
        if alive:
            os.kill(worker, signal.SIGKILL)
        assert not alive, f"the {job} job's worker {worker} outlived its pool"
    finally:
        owner.kill()
        owner.wait(GUARD_S)


def test_a_pool_still_gets_its_workers_replies_and_stops_them_with_the_watcher_on() -> None:
    pool = WorkerPool(2, memory_mb=512)
    try:
        assert [pool.submit(abs, -n).result(timeout=GUARD_S) for n in range(10)] == list(range(10))
        workers = pool.pids
    finally:
        pool.shutdown()
    assert all(gone(pid) for pid in workers)


def test_the_watcher_ends_its_process_when_the_peer_closes_and_not_when_data_comes() -> None:
    script = (
        "import os, socket, sys, time\n"
        "from qmk.kernel.pools.worker import exit_when_closed\n"
        "fd = int(sys.argv[1])\n"
        "exit_when_closed(fd, status=7)\n"
        "print('watching', flush=True)\n"
        "for _ in sys.stdin:\n"
        "    print('alive', flush=True)\n"
        "time.sleep(3600)\n"
    )
    import socket

    ours, theirs = socket.socketpair()
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    theirs.close()
    try:
        assert child.stdin is not None
        assert read_line(child) == "watching\n"
        ours.sendall(b"data to read does not end it\n")
        child.stdin.write("ping\n")
        child.stdin.flush()
        assert read_line(child) == "alive\n"
        ours.close()
        assert child.wait(GUARD_S) == 7
    finally:
        child.kill()
        child.wait(GUARD_S)
