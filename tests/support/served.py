"""Real ``qmk serve`` and ``qmk gateway`` processes for the wires' tests: a server (its
jobs held at a :class:`~support.kernel.WorkerGate` when given), or a kernel alone and
its lone gateways, each found by the JSON line it prints once it listens.

Waits are bounded only against a hang (:data:`GUARD_S`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support.children import die_with_us, terminate
from support.kernel import WorkerGate, config_toml, support_env

GUARD_S = 60.0  # a hang guard, never a timing assertion


class Process:
    """A started process and its output files; :meth:`listening` is its JSON line's."""

    def __init__(self, root: Path, name: str, argv: list[str]) -> None:
        self.out, self.err = root / f"{name}.out", root / f"{name}.err"
        self.proc = subprocess.Popen(
            argv,
            stdout=self.out.open("wb"),
            stderr=self.err.open("wb"),
            env=support_env(),
            preexec_fn=die_with_us(),
        )

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def listening(self) -> Any:
        """The ``listening`` of the first JSON line it prints (a list for ``qmk serve``,
        a URL for a gateway)."""
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.text()}")
            for line in self.out.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    return json.loads(line)["listening"]
            time.sleep(0.02)
        raise AssertionError(f"did not listen: {self.text()}")

    def stop(self) -> None:
        terminate(self.proc, GUARD_S)


class Served(Process):
    """A real ``qmk serve --http 127.0.0.1:0 --gateway MODE`` under ``root`` (its jobs
    held at ``gate`` when given; ``grpc``: ``--grpc 127.0.0.1:0`` too; ``tenants``: the
    config's, :data:`support.kernel.TENANTS` by default; ``kernel_only``: the kernel
    alone, no wire but its socket): its socket, its REST URL, its gRPC address."""

    def __init__(
        self,
        root: Path,
        mode: str = "process",
        *,
        server: dict[str, Any] | None = None,
        gate: WorkerGate | None = None,
        grpc: bool = False,
        tenants: dict[str, dict[str, Any]] | None = None,
        kernel_only: bool = False,
    ) -> None:
        self.root = root
        self.socket = root / "k.sock"
        config = root / "kernel.toml"
        config.write_text(
            config_toml(tenants=tenants, tables={"server": server} if server else None)
        )
        options = [
            *("--socket", str(self.socket), "--data-dir", str(root / "data")),
            *("--config", str(config), "--workers", "1", "--json"),
        ]
        if kernel_only:
            options.append("--kernel-only")
        else:
            options += ["--http", "127.0.0.1:0", "--gateway", mode]
            options += ["--grpc", "127.0.0.1:0"] if grpc else []
        hooks = [] if gate is None else [*gate.hooks().argv(), "--"]
        module = ("-m", "support.serve", *hooks) if gate else ("-m", "qmk", "serve")
        super().__init__(root, "serve", [sys.executable, *module, *options])
        listening = list(self.listening())
        self.url = next((a for a in listening if a.startswith("http")), "")
        self.grpc = next((a for a in listening if a.startswith("grpc://")), "")


class LoneGateway(Process):
    """``qmk gateway WIRE --kernel SOCKET --listen 127.0.0.1:0 --json``: its URL."""

    def __init__(self, root: Path, wire: str, socket: Path) -> None:
        argv = [sys.executable, "-m", "qmk", "gateway", wire, "--kernel", str(socket)]
        super().__init__(root, f"gateway-{wire}", [*argv, "--listen", "127.0.0.1:0", "--json"])
        self.url = str(self.listening())


def gateway_of(pid: int, wire: str = "http") -> int:
    """The serving ``wire`` gateway child of ``qmk serve`` ``pid``: its command line names
    the wire and its process name is ``qmk-WIRE`` (a spare's is ``qmk-WIRE-spare``).

    Raises:
        AssertionError: it has none.
    """
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        for child in children.read_text().split() if children.exists() else ():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                comm = Path(f"/proc/{child}/comm").read_text().strip()
            except FileNotFoundError:
                continue
            named = b"gateway" in cmdline and cmdline[cmdline.index(b"gateway") + 1]
            if named == wire.encode() and comm == f"qmk-{wire}":
                return int(child)
    raise AssertionError(f"qmk serve {pid} has no {wire} gateway child")


__all__ = ["GUARD_S", "LoneGateway", "Process", "Served", "gateway_of"]
