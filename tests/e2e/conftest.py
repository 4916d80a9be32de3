"""Fixtures that run a real ``qmk serve`` process on a real Unix socket.

``serve(config=..., workers=...)`` writes the TOML config into a temporary directory,
starts ``python -m qmk serve``, waits for the socket to appear (it appears only once
the server listens), and on teardown sends SIGTERM and checks that the process exits
0 and removes its socket.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Tenants every test server knows. alice and dave hold every capability with room for
#: the load test; bob may only allocate; carol has tight quotas.
TENANTS: dict[str, dict[str, Any]] = {
    "alice": {
        "key": "alice-secret-key",
        "caps": ["CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"],
        "max_queued_jobs": 1000,
        "max_concurrent_jobs": 2,
    },
    "dave": {
        "key": "dave-secret-key",
        "caps": ["CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"],
        "max_queued_jobs": 1000,
        "max_concurrent_jobs": 2,
    },
    "bob": {"key": "bob-secret-key", "caps": ["CAP_ALLOC"]},
    "carol": {
        "key": "carol-secret-key",
        "caps": ["CAP_ALLOC", "CAP_MAGIC"],
        "max_logical_qubits": 2,
        "max_queued_jobs": 2,
        "max_concurrent_jobs": 1,
    },
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(value)


def config_toml(
    *,
    physical_qubits: int = 2_000_000,
    kernel: dict[str, Any] | None = None,
    tenants: dict[str, dict[str, Any]] | None = None,
) -> str:
    lines = ["[machine]", f"physical_qubits = {physical_qubits}"]
    if kernel:
        lines.append("[kernel]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in kernel.items())
    for name, table in (tenants or TENANTS).items():
        lines.append(f"[tenants.{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"


@dataclass
class ServerProcess:
    """A running ``qmk serve`` and where it keeps its things."""

    socket: Path
    data_dir: Path
    config: Path
    workers: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    stopped: bool = field(default=False)

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        """Start the process and wait until its socket accepts connections."""
        assert self.log is not None
        self.stopped = False
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qmk",
                "serve",
                "--socket",
                str(self.socket),
                "--data-dir",
                str(self.data_dir),
                "--config",
                str(self.config),
                "--workers",
                str(self.workers),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        previous = self.socket.stat().st_ino if self.socket.exists() else None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"qmk serve exited {self.proc.returncode}: {self.output()}")
            if self.socket.exists() and self.socket.stat().st_ino != previous:
                return self
            time.sleep(0.02)
        raise AssertionError(f"qmk serve did not listen within {timeout_s} s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM; return the exit status (the caller checks it)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self.stopped = True
        return code

    def kill(self) -> None:
        """SIGKILL the kernel, as a crash would (its workers notice and exit)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.stopped = True

    def env(self, tenant: str) -> dict[str, str]:
        return {
            **os.environ,
            "QMK_SOCKET": str(self.socket),
            "QMK_TENANT": tenant,
            "QMK_KEY": TENANTS[tenant]["key"],
        }

    def rss_kib(self) -> tuple[int, int]:
        """The server process's (VmRSS, VmHWM) in KiB."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


ServeFactory = Callable[..., ServerProcess]


def _factory(root: Path) -> tuple[ServeFactory, list[ServerProcess]]:
    started: list[ServerProcess] = []

    def serve(
        name: str = "k",
        *,
        workers: int = 2,
        physical_qubits: int = 2_000_000,
        kernel: dict[str, Any] | None = None,
        tenants: dict[str, dict[str, Any]] | None = None,
    ) -> ServerProcess:
        config = root / f"{name}.toml"
        config.write_text(
            config_toml(physical_qubits=physical_qubits, kernel=kernel, tenants=tenants)
        )
        server = ServerProcess(
            socket=root / f"{name}.sock",
            data_dir=root / f"{name}-data",
            config=config,
            workers=workers,
            log=root / f"{name}.log",
        )
        started.append(server)
        return server.start()

    return serve, started


def _teardown(started: list[ServerProcess]) -> None:
    for server in started:
        if server.stopped:
            continue
        code = server.stop()
        assert code == 0, f"qmk serve exited {code}: {server.output()}"
        assert not server.socket.exists(), "the socket was not removed"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """Start ``qmk serve`` processes; each is SIGTERMed and checked at teardown."""
    factory, started = _factory(tmp_path)
    yield factory
    _teardown(started)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server (2 workers) shared by the tests of a module."""
    factory, started = _factory(tmp_path_factory.mktemp("qmk"))
    yield factory()
    _teardown(started)
