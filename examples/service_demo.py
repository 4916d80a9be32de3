"""Start a QMK kernel, use it as two tenants, and stop it: the service in one minute.

Run ``python examples/service_demo.py`` (``make demo`` runs it). It starts
``qmk serve`` on a Unix socket in a temporary directory with examples/kernel.toml,
then, over the real socket:

1. alice submits a Bell program in OpenQASM and a teleportation in QVM, and waits;
   the counts equal what ``qmk run`` gives for the same file, shots and seed;
2. bob, who was not granted CAP_MAGIC, is refused a T-state program at submit, and
   cannot see alice's job (it is "not found" to him);
3. the kernel is stopped with SIGTERM and its audit log is verified.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qmk.client import Client
from qmk.errors import CapabilityError, NotFoundError
from qmk.execution.runs import run
from qmk.frontends import read_program

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "kernel.toml"
KEYS = {"alice": "alice-example-key-change-me", "bob": "bob-example-key-change-me"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="qmk-demo-") as tmp:
        sock = os.path.join(tmp, "qmk.sock")
        data = os.path.join(tmp, "data")
        cmd = [sys.executable, "-m", "qmk", "serve", "--socket", sock, "--data-dir", data]
        server = subprocess.Popen([*cmd, "--config", str(CONFIG), "--workers", "2"])
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(sock):
                if server.poll() is not None or time.monotonic() > deadline:
                    print("the kernel did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            print(f"kernel listening on {sock}")
            demo(sock)
        finally:
            server.send_signal(signal.SIGTERM)
            status = server.wait(timeout=30)
        gone = not os.path.exists(sock)
        print(f"kernel stopped with SIGTERM: exit {status}, socket removed: {gone}")
        audit = subprocess.run([sys.executable, "-m", "qmk", "audit", "verify", data], check=False)
        return status or audit.returncode


def demo(sock: str) -> None:
    with Client.connect(sock, tenant="alice", key=KEYS["alice"]) as alice:
        print(f"alice's session grants {', '.join(alice.core.session.granted)}")
        jobs = {}
        for name in ("bell.qasm", "teleport_guards.qvm.asm"):
            graph = read_program(str(HERE / name)).to_json()
            jobs[name] = alice.q_submit(graph, 1000, 7).job_id
        for name, job_id in jobs.items():
            job = alice.q_wait(job_id, 60_000)
            counts = (job.result or {})["counts"]
            local = run(read_program(str(HERE / name)), shots=1000, seed=7).counts
            same = "equal to" if counts == dict(local) else "DIFFERENT from"
            print(f"alice {name}: {job.state}, counts {json.dumps(counts)} ({same} qmk run)")
        with Client.connect(sock, tenant="bob", key=KEYS["bob"]) as bob:
            magic = read_program(str(HERE / "t_gate_injection.qvm.json")).to_json()
            try:
                bob.q_submit(magic, 100, 1)
            except CapabilityError as exc:
                print(f"bob refused at submit: {exc}")
            try:
                bob.q_status(next(iter(jobs.values())))
            except NotFoundError as exc:
                print(f"bob asks for alice's job: {exc}")


if __name__ == "__main__":
    raise SystemExit(main())
