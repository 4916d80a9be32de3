"""The supervisor of ``qmk serve --gateway process`` (qmk.serve.gateways): a gateway
that dies is replaced by its warm spare, and one that keeps dying before it serves is
started again with a doubling wait, each replacement a log line.

The gateways are stand-ins (:data:`STAND_IN`) that keep the supervisor's protocol: a
spare waits on its ``--standby-fd`` pipe, a gateway prints its ``--json`` ready line
once it serves. Each leaves a file per step, which the test waits for (a hang guard bounds the
waits; no timing is asserted but the backoff's printed values)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from qmk.abi.tcp import bind_tcp
from qmk.serve.gateways import BOUND_LATER, RESTART_FIRST_S, Supervisor, kernel_address

GUARD_S = 60.0  # a hang guard, never a timing assertion
#: A stand-in gateway (argv: its folder, its mode, then what the supervisor hands it).
#: Mode ``serves``: every one serves until killed. Mode ``once``: the first serves, each
#: later one ends with status 3 before it serves. Mode ``leaves``: as ``serves``, and each
#: first starts a child that holds its stdout (as a ``local:N`` cluster's processes do).
STAND_IN = """
import os, subprocess, sys, time
argv, folder, mode = sys.argv, sys.argv[1], sys.argv[2]
def mark(name):
    open(os.path.join(folder, name + "-" + str(os.getpid())), "w").close()
if "--standby-fd" in argv:
    mark("waiting")
    if not os.read(int(argv[argv.index("--standby-fd") + 1]), 1):
        sys.exit(0)
first = not os.path.exists(os.path.join(folder, "served"))
if mode in ("serves", "leaves") or first:
    open(os.path.join(folder, "served"), "a").close()
    if mode == "leaves":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(os.path.join(folder, "child-" + str(child.pid)), "w").close()
    mark("serving")
    print('{"listening": "http://x:1"}', flush=True)
    time.sleep(600)
sys.exit(3)
"""


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _pids(folder: Path, step: str) -> set[int]:
    return {int(p.name.rpartition("-")[2]) for p in folder.glob(f"{step}-*")}


async def _until(done: Callable[[], object]) -> None:
    """Poll ``done()`` until it is true (a hang guard bounds it)."""
    deadline = time.monotonic() + GUARD_S
    while not done():
        assert time.monotonic() < deadline, "a hang"
        await asyncio.sleep(0.01)


def _supervised(
    folder: Path, mode: str, scenario: Callable[[Supervisor, list[str]], Awaitable[None]]
) -> list[str]:
    """Run ``scenario(supervisor, lines)`` against a supervised stand-in; the log lines."""

    async def run() -> list[str]:
        stop = asyncio.Event()
        lines = _Lines()
        logger = logging.getLogger("qmk.gateway")
        logger.addHandler(lines)
        sock = bind_tcp("127.0.0.1", 0)
        supervisor = Supervisor([sys.executable, "-c", STAND_IN, str(folder), mode], sock)
        try:
            assert await supervisor.start() == "http://x:1"
            watching = asyncio.ensure_future(supervisor.supervise(stop))
            await scenario(supervisor, lines.lines)
            stop.set()
            await asyncio.wait_for(watching, GUARD_S)
        finally:
            logger.removeHandler(lines)
            sock.close()
        return lines.lines

    return asyncio.run(run())


def test_a_killed_gateway_is_replaced_by_its_warm_spare_which_gets_a_spare_in_turn(
    tmp_path: Path,
) -> None:
    async def scenario(supervisor: Supervisor, lines: list[str]) -> None:
        await _until(lambda: _pids(tmp_path, "waiting"))  # the first one's spare
        (serving,) = _pids(tmp_path, "serving")
        (spare,) = _pids(tmp_path, "waiting")
        os.kill(serving, signal.SIGKILL)
        await _until(lambda: spare in _pids(tmp_path, "serving"))  # it serves
        await _until(lambda: len(_pids(tmp_path, "waiting")) == 2)  # its own spare
        assert lines == [
            f"the http gateway (pid {serving}) ended with -9; restart 1 by its spare (pid {spare})"
        ]
        assert supervisor.restarts == 1

    _supervised(tmp_path, "serves", scenario)
    # stopped: the serving gateway and its spare ended with the supervisor
    for pid in _pids(tmp_path, "waiting") | _pids(tmp_path, "serving"):
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def test_a_killed_gateway_is_replaced_at_its_exit_while_a_child_it_left_holds_its_stdout(
    tmp_path: Path,
) -> None:
    async def scenario(supervisor: Supervisor, lines: list[str]) -> None:
        await _until(lambda: _pids(tmp_path, "waiting"))
        (serving,) = _pids(tmp_path, "serving")
        (spare,) = _pids(tmp_path, "waiting")
        (child,) = _pids(tmp_path, "child")
        try:
            os.kill(serving, signal.SIGKILL)
            await _until(lambda: spare in _pids(tmp_path, "serving"))
            assert _state(child) != "Z"  # it lives, and holds the dead one's stdout
            assert lines[0].startswith(f"the http gateway (pid {serving}) ended with -9")
        finally:
            for pid in _pids(tmp_path, "child"):
                os.kill(pid, signal.SIGKILL)

    _supervised(tmp_path, "leaves", scenario)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_gateway_that_dies_before_serving_restarts_with_a_doubling_wait(
    tmp_path: Path,
) -> None:
    async def scenario(supervisor: Supervisor, lines: list[str]) -> None:
        await _until(lambda: _pids(tmp_path, "waiting"))
        (serving,) = _pids(tmp_path, "serving")
        os.kill(serving, signal.SIGKILL)
        await _until(lambda: len(lines) >= 4)

    lines = _supervised(tmp_path, "once", scenario)
    assert "restart 1 by its spare" in lines[0]  # the spare was promoted, then died
    waits = [RESTART_FIRST_S * 2**n for n in range(3)]
    for n, (line, wait) in enumerate(zip(lines[1:4], waits, strict=True), start=2):
        assert line.startswith("the http gateway (pid ")
        assert line.endswith(f"ended with 3; restart {n} in {wait:.3g} s"), line


def test_a_gateway_reaches_a_kernel_bound_on_a_wildcard_at_its_loopback() -> None:
    argv = ["qmk", "gateway", "http", "--kernel", BOUND_LATER, "--json"]
    for bound, reached in (
        ("tcp:0.0.0.0:5001", "127.0.0.1:5001"),
        ("tcp:[::]:5000", "[::1]:5000"),
        ("tcp:[fe80::1]:5002", "[fe80::1]:5002"),
    ):
        assert kernel_address(argv, ["unix:/k.sock", bound])[4] == reached
