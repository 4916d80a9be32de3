"""The kernel test harness: in-process kernels, real ``qmk serve`` processes, and the gate.

In process (tests/kernel): :func:`make_config` and :data:`KEYS` (tenants alice, bob and
carol), :func:`run_kernel` (a real kernel with real workers and SQLite under
``tmp_path``), :func:`login`, :func:`wait_state` and programs (:data:`BELL`,
:func:`ghz_graph`, :func:`slow_graph`, :func:`teleport_graph`).

A real server (tests/e2e): :class:`ServerProcess` and :func:`serve_factory`, behind the
``serve`` and ``shared_server`` fixtures of tests/e2e/conftest.py.

Both can hold jobs at a :class:`WorkerGate`, so a test decides how many jobs run and
when instead of racing the machine's speed; an in-process kernel can also run on a
:class:`~qmk.kernel.manual_clock.ManualClock`, so timeouts, deadlines, session expiry and epochs
happen exactly when the test says. The gates (and the stall and the probe) are the
tests' pool's (:mod:`support.pools`): an in-process kernel gets it through
``Kernel.open(pool_factory=...)``, a real server by running ``python -m support.serve``
(:mod:`support.serve`, the same ``qmk serve`` on that pool) instead of ``qmk serve``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from qmk.kernel.clock import Clock, MachineClock
from qmk.kernel.config import KernelConfig, config_from_dict
from qmk.kernel.service import Kernel
from qmk.qvm.asm import assemble
from support.children import die_with_us, terminate
from support.paths import EXAMPLES
from support.pools import Hooks

#: The tests' folder: on ``PYTHONPATH`` of a server run with hooks (``support.serve``).
TESTS = Path(__file__).resolve().parents[1]

T = TypeVar("T")


def support_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, ``env``, and ``tests/`` on ``PYTHONPATH``: for a
    child process that imports ``support`` (a server on the tests' pool)."""
    return {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
    }


BELL: dict[str, Any] = json.loads((EXAMPLES / "bell.qvm.json").read_text())

# A fenced program for checkpoints: non-Clifford (so it runs as trajectories), with a
# mid-circuit measurement (branches) and three fences; epoch 2 holds a REV segment of five
# gates.
FENCED = assemble(
    """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
t: APPLY_T vq:q0
h1: APPLY_H vq:q0
m: MEASURE_Z vq:q0, out:m
f1: FENCE_EPOCH
r1: APPLY_RY vq:q1, theta=0.9
r2: APPLY_RZ vq:q1, theta=0.4
c: APPLY_CNOT vq:q1, vq:q0
r3: APPLY_RX vq:q0, theta=1.1
t2: APPLY_T vq:q1
m1: MEASURE_Z vq:q1, out:m1
f2: FENCE_EPOCH
h2: APPLY_H vq:q1
f3: FENCE_EPOCH
m0: MEASURE_Z vq:q0, out:m0
m2: MEASURE_Z vq:q1, out:m2
"""
)

# Gates and fences, then only terminal measurements (what a QASM circuit with barriers
# is); non-Clifford, so it runs as trajectories. Its fences are pause points all the same.
GATES_THEN_MEASURE = assemble(
    """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1, vq:q2
h0: APPLY_H vq:q0
t0: APPLY_T vq:q0
ry: APPLY_RY vq:q1, theta=0.8
f1: FENCE_EPOCH
c01: APPLY_CNOT vq:q0, vq:q1
rx: APPLY_RX vq:q2, theta=1.9
h1: APPLY_H vq:q0
f2: FENCE_EPOCH
c12: APPLY_CNOT vq:q1, vq:q2
t2: APPLY_T vq:q2
h2: APPLY_H vq:q2
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_Z vq:q1, out:m1
m2: MEASURE_Z vq:q2, out:m2
f: FREE_LQ vq:q0, vq:q1, vq:q2
"""
)

# A Clifford program with fences: sampled in bulk by stim (stim-batch), in chunks of shots,
# pausing between them.
FENCED_CLIFFORD = assemble(
    """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1, vq:q2
h: APPLY_H vq:q0
f1: FENCE_EPOCH
c: APPLY_CNOT vq:q0, vq:q1
s: APPLY_S vq:q2
h2: APPLY_H vq:q2
f2: FENCE_EPOCH
c2: APPLY_CNOT vq:q1, vq:q2
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_Z vq:q1, out:m1
m2: MEASURE_Z vq:q2, out:m2
"""
)

# --------------------------------------------------------------------------- the gate


class WorkerGate:
    """A FIFO that holds every job in its worker until the test lets it through.

    :meth:`release` lets ``count`` jobs run; :meth:`open` lets every job run from then on
    (and is what leaving the ``with`` block does, so no worker stays held). Pass it to
    :func:`run_kernel` (``gate=``, or ``pause=`` as a pause gate), or its :meth:`hooks`
    (:meth:`pause_hooks`) to a server's start (a :class:`support.pools.GatedPool`
    holds the jobs).
    """

    def __init__(self, directory: Path, name: str = "worker-gate") -> None:
        self.path = directory / name
        os.mkfifo(self.path)
        # the write end (O_RDWR: opening never blocks); while it is open, workers wait
        self._fd: int | None = os.open(self.path, os.O_RDWR)

    def release(self, count: int = 1) -> None:
        """Let ``count`` more jobs through."""
        assert self._fd is not None, "the gate is open already"
        os.write(self._fd, b"x" * count)

    def step(self, count: int = 1) -> None:
        """As a pause gate: let a job held at a fence run ``count`` micro-ops, then hold
        it again before the next one."""
        assert self._fd is not None, "the gate is open already"
        os.write(self._fd, b"s" * count)

    def open(self) -> None:
        """Let every job through from now on (waiting ones see the end of the FIFO)."""
        if self._fd is None:
            return
        self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def hooks(self) -> Hooks:
        """The hooks that hold jobs in their workers at this gate (the pool's ``gate``)."""
        return Hooks(gate=str(self.path))

    def pause_hooks(self) -> Hooks:
        """The hooks that hold running jobs at their fences at this gate (the pool's
        ``pause_gate``)."""
        return Hooks(pause_gate=str(self.path))

    def stall_hooks(self) -> Hooks:
        """The hooks that freeze a worker mid-reply for each byte of this FIFO (the
        pool's ``stall``)."""
        return Hooks(stall=str(self.path))

    def __enter__(self) -> WorkerGate:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.open()


# --------------------------------------------------------------------------- in process

#: The tenants' keys of :func:`make_config`.
KEYS = {"alice": "alice-key", "bob": "bob-key", "carol": "carol-key", "ops": "ops-key"}

#: The ``[tenants]`` row of an operator who reads the kernel's load (``CAP_OBSERVE``).
OPS = {"key": KEYS["ops"], "caps": ["CAP_OBSERVE"]}


def make_config(**kernel: Any) -> KernelConfig:
    """alice (every capability but one, room for 2 concurrent jobs), bob (4 logical
    qubits), carol (3 queued jobs at most); ``kernel`` overrides the ``[kernel]`` table."""
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, **kernel},
            "tenants": {
                "alice": {
                    "key": KEYS["alice"],
                    "caps": ["CAP_ALLOC", "CAP_LINK", "CAP_MAGIC"],
                    "max_logical_qubits": 30,
                    "max_concurrent_jobs": 2,
                    "max_queued_jobs": 50,
                },
                "bob": {
                    "key": KEYS["bob"],
                    "caps": ["CAP_ALLOC", "CAP_LINK"],
                    "max_logical_qubits": 4,
                    "max_queued_jobs": 50,
                },
                "carol": {"key": KEYS["carol"], "caps": ["CAP_ALLOC"], "max_queued_jobs": 3},
            },
        }
    )


def alice_and_bob(**alice: Any) -> KernelConfig:
    """Two tenants with ``CAP_ALLOC`` only: alice (``alice`` sets her limits) and bob."""
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"], **alice},
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


def run_kernel(
    tmp_path: Path,
    body: Callable[[Kernel], Awaitable[T]],
    *,
    workers: int = 2,
    config: KernelConfig | None = None,
    gate: WorkerGate | None = None,
    clock: Clock | None = None,
    pause: WorkerGate | None = None,
    hooks: Hooks | None = None,
    machine_clock: MachineClock | None = None,
) -> T:
    """``body(kernel)`` against a kernel opened on ``tmp_path / "data"``; closed after.

    ``gate`` holds its jobs in the workers before they start, ``pause`` holds running
    jobs at their fences, ``hooks`` sets any of the tests' hooks (:mod:`support.pools`);
    ``clock`` replaces the system clock, ``machine_clock`` the shared machine's.
    """
    config = config or make_config()
    hooks = hooks or Hooks()
    if gate is not None:
        hooks = dataclasses.replace(hooks, gate=str(gate.path))
    if pause is not None:
        hooks = dataclasses.replace(hooks, pause_gate=str(pause.path))

    async def main() -> T:
        kernel = await Kernel.open(
            config,
            tmp_path / "data",
            workers=workers,
            clock=clock,
            machine_clock=machine_clock,
            pool_factory=hooks.factory() if hooks.any else None,
        )
        try:
            return await body(kernel)
        finally:
            await kernel.close()

    return asyncio.run(main())


async def login(kernel: Kernel, tenant: str, caps: list[str] | None = None) -> str:
    """A session id of ``tenant`` (asking for CAP_ALLOC and CAP_LINK unless ``caps``)."""
    reply = await kernel.q_negotiate_caps(
        tenant=tenant, key=KEYS[tenant], requested=caps or ["CAP_ALLOC", "CAP_LINK"]
    )
    return str(reply.session_id)


async def scrape(kernel: Kernel, session_id: str) -> str:
    """``/metrics`` as a server writes it: the kernel's load and job counters read with
    ``q_kernel_load`` in the session ``session_id`` (one holding ``CAP_OBSERVE``)."""
    from qmk.abi.probing import snapshot_from_json
    from qmk.abi.tally import JobTally
    from qmk.http.metrics import Metrics

    load = await kernel.q_kernel_load(session_id=session_id)
    snapshot, tally = snapshot_from_json(load.snapshot), JobTally.from_json(load.tally)
    return Metrics().exposition((snapshot, tally)).decode()


async def admit(admission: Any, session: Any, graph: Any, *args: Any, **kwargs: Any) -> Any:
    """The job ``admission`` builds of ``graph`` as a submit does (read by its one reader,
    then admitted; not stored): ``args`` and ``kwargs`` are :meth:`Admission.admit`'s."""
    target = kwargs.get("target", "logical")
    read = await admission.read(session.tenant, graph, target=target)
    return await admission.admit(session, read, *args, **kwargs)


async def wait_state(
    kernel: Kernel, sid: str, job_id: str, state: str, limit_s: float = 60.0
) -> None:
    """Return once the job is in ``state`` (the limit only guards against a hang)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        job = await kernel.q_status(session_id=sid, job_id=job_id)
        if job.state == state:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"job never reached {state}")


async def wait_run_queue(kernel: Kernel, *job_ids: str, limit_s: float = 60.0) -> None:
    """Return once the supervisor's run queue holds these jobs and no other. A job
    waits QUEUED on the shared machine until its schedule there ends (in machine time),
    and only then joins the run queue, where preemption and dispatch see it (the limit
    only guards against a hang)."""
    end = time.monotonic() + limit_s
    while sorted(job.job_id for job in kernel.supervisor.queue) != sorted(job_ids):
        if time.monotonic() >= end:
            raise AssertionError(f"the run queue never held {list(job_ids)}")
        await asyncio.sleep(0.005)


def qubits(n: int) -> list[str]:
    return [f"q{i}" for i in range(n)]


def slow_graph(n: int = 22, rounds: int = 30) -> dict[str, Any]:
    """A statevector program on ``n`` qubits (T/H layers and CNOT ladders), for its size:
    22 live logical qubits, or 25 to overflow a small worker's memory."""
    q = qubits(n)
    nodes: list[dict[str, Any]] = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": n}, "vqs": q}]
    for r in range(rounds):
        for i in range(n):
            nodes.append({"id": f"t{r}_{i}", "op": "APPLY_T", "vqs": [q[i]]})
            nodes.append({"id": f"h{r}_{i}", "op": "APPLY_H", "vqs": [q[i]]})
        for i in range(n - 1):
            nodes.append({"id": f"c{r}_{i}", "op": "APPLY_CNOT", "vqs": [q[i], q[i + 1]]})
    nodes.append({"id": "m", "op": "MEASURE_Z", "vqs": [q[0]], "produces": ["m"]})
    nodes.append({"id": "f", "op": "FREE_LQ", "vqs": q})
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": q, "chs": [], "events": ["m"]},
        "caps": ["CAP_ALLOC"],
    }


def chain_graph(nodes: int, *, flips: int = 0, valid: bool = True) -> dict[str, Any]:
    """A graph of ``nodes`` nodes on one qubit: X gates (``flips`` of them Z, which tells
    graphs of one size apart), a measurement and a free; not ``valid``: measured after
    its free."""
    body = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": 1}, "vqs": ["q"]}]
    body += [{"id": f"x{i}", "op": "APPLY_X", "vqs": ["q"]} for i in range(nodes - 3 - flips)]
    body += [{"id": f"z{i}", "op": "APPLY_Z", "vqs": ["q"]} for i in range(flips)]
    end = [
        {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["m"]},
        {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
    ]
    body += end if valid else end[::-1]
    return {
        "version": "0.2",
        "program": {"nodes": body},
        "resources": {"vqs": ["q"], "chs": [], "events": ["m"]},
        "caps": ["CAP_ALLOC"],
    }


def ghz_graph(n: int) -> dict[str, Any]:
    """GHZ on ``n`` qubits, every qubit measured."""
    q = qubits(n)
    nodes: list[dict[str, Any]] = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": n}, "vqs": q}]
    nodes.append({"id": "h", "op": "APPLY_H", "vqs": [q[0]]})
    nodes += [{"id": f"c{i}", "op": "APPLY_CNOT", "vqs": [q[i], q[i + 1]]} for i in range(n - 1)]
    nodes += [
        {"id": f"m{i}", "op": "MEASURE_Z", "vqs": [q[i]], "produces": [f"m{i}"]} for i in range(n)
    ]
    nodes.append({"id": "f", "op": "FREE_LQ", "vqs": q})
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": q, "chs": [], "events": [f"m{i}" for i in range(n)]},
        "caps": ["CAP_ALLOC"],
    }


def teleport_graph(peer: str, *, cnot_instead: bool = False) -> dict[str, Any]:
    """Teleport |+i> from the submitter's qubit to ``peer``'s qubit over channel ``link``."""
    alloc_b: dict[str, Any] = {
        "id": "alloc_b",
        "op": "ALLOC_LQ",
        "args": {"n": 1},
        "vqs": ["b"],
        "metadata": {"tenant": peer},
    }
    if cnot_instead:
        joint: dict[str, Any] = {"id": "entangle", "op": "APPLY_CNOT", "vqs": ["a", "b"]}
    else:
        joint = {
            "id": "open",
            "op": "OPEN_CHAN",
            "args": {"opts": {"fidelity": 1.0}},
            "vqs": ["a", "b"],
            "chs": ["link"],
        }
    nodes = [
        {"id": "alloc_a", "op": "ALLOC_LQ", "args": {"n": 2}, "vqs": ["msg", "a"]},
        alloc_b,
        joint,
        {"id": "prep_h", "op": "APPLY_H", "vqs": ["msg"]},
        {"id": "prep_s", "op": "APPLY_S", "vqs": ["msg"]},
        {"id": "bell", "op": "MEASURE_BELL", "vqs": ["msg", "a"], "produces": ["x", "z"]},
        {"id": "fix_x", "op": "COND_PAULI", "args": {"mask": "X"}, "vqs": ["b"], "inputs": ["z"]},
        {"id": "fix_z", "op": "COND_PAULI", "args": {"mask": "Z"}, "vqs": ["b"], "inputs": ["x"]},
        {"id": "meas_b", "op": "MEASURE_Y", "vqs": ["b"], "produces": ["m_b"]},
        {"id": "free", "op": "FREE_LQ", "vqs": ["msg", "a", "b"]},
    ]
    if not cnot_instead:
        nodes.insert(6, {"id": "close", "op": "CLOSE_CHAN", "chs": ["link"]})
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {
            "vqs": ["msg", "a", "b"],
            "chs": [] if cnot_instead else ["link"],
            "events": ["x", "z", "m_b"],
        },
        "caps": ["CAP_ALLOC"] if cnot_instead else ["CAP_ALLOC", "CAP_LINK"],
    }


# --------------------------------------------------------------------------- a real server

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
    tables: dict[str, dict[str, Any]] | None = None,
    machine: dict[str, Any] | None = None,
) -> str:
    """A ``kernel.toml`` text (:data:`TENANTS` unless ``tenants``; ``tables``: more
    tables, e.g. ``{"http": {...}}``; ``machine``: more keys of ``[machine]``, a key
    whose value is a table as its own ``[machine.KEY]``)."""
    lines = ["[machine]", f"physical_qubits = {physical_qubits}"]
    subtables = {k: v for k, v in (machine or {}).items() if isinstance(v, dict)}
    lines.extend(
        f"{key} = {toml_value(value)}"
        for key, value in (machine or {}).items()
        if key not in subtables
    )
    for name, table in subtables.items():
        lines.append(f"[machine.{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
    if kernel:
        lines.append("[kernel]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in kernel.items())
    for name, table in (tables or {}).items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
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
    #: More ``qmk serve`` arguments (``--dask local:2``, TLS files, ...).
    extra: tuple[str, ...] = ()

    def command(self, hooks: Hooks | None = None) -> list[str]:
        """The command line of a start: ``python -m qmk serve ...``, or with ``hooks``
        ``python -m support.serve HOOKS -- ...`` (the same server, on the tests' pool)."""
        options = [
            "--socket",
            str(self.socket),
            "--data-dir",
            str(self.data_dir),
            "--config",
            str(self.config),
            "--workers",
            str(self.workers),
            *self.extra,
        ]
        if hooks is None or not hooks.any:
            return [sys.executable, "-m", "qmk", "serve", *options]
        return [sys.executable, "-m", "support.serve", *hooks.argv(), "--", *options]

    @staticmethod
    def environment(
        hooks: Hooks | None = None, env: dict[str, str] | None = None
    ) -> dict[str, str]:
        """The environment of a start: this process's, ``env``, and with ``hooks``
        ``tests/`` on ``PYTHONPATH`` (``support`` must import in the server)."""
        if hooks is not None and hooks.any:
            return support_env(env)
        return {**os.environ, **(env or {})}

    def start(
        self,
        timeout_s: float = 60.0,
        *,
        env: dict[str, str] | None = None,
        hooks: Hooks | None = None,
    ) -> ServerProcess:
        """Start the process and wait until its socket accepts connections.

        ``env`` adds to the environment of this start; ``hooks`` (e.g. a
        :class:`WorkerGate`'s) run the server on the tests' pool (:mod:`support.serve`).
        """
        assert self.log is not None
        self.stopped = False
        self.proc = subprocess.Popen(
            self.command(hooks),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=self.environment(hooks, env),
            preexec_fn=die_with_us(),
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

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM; return the exit status (the caller checks it). Not exited within
        ``timeout_s``: SIGKILLed, and an AssertionError."""
        assert self.proc is not None
        self.stopped = True
        return terminate(self.proc, timeout_s)

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


def serve_factory(root: Path) -> tuple[ServeFactory, list[ServerProcess]]:
    """A ``serve(name, workers=, physical_qubits=, kernel=, tenants=, env=, hooks=)``
    that starts ``qmk serve`` processes under ``root`` (``hooks``: on the tests' pool,
    :meth:`ServerProcess.start`), and the list of those it started."""
    started: list[ServerProcess] = []

    def serve(
        name: str = "k",
        *,
        workers: int = 2,
        physical_qubits: int = 2_000_000,
        kernel: dict[str, Any] | None = None,
        tenants: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        hooks: Hooks | None = None,
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
        return server.start(env=env, hooks=hooks)

    return serve, started


def stop_all(started: list[ServerProcess]) -> None:
    """SIGTERM every server still running; each must exit 0 and remove its socket. Every
    one is stopped (or killed) before the first failure is raised."""
    failures: list[str] = []
    for server in started:
        if server.stopped:
            continue
        try:
            code = server.stop()
        except AssertionError as exc:
            failures.append(f"{exc}: {server.output()}")
            continue
        if code != 0:
            failures.append(f"qmk serve exited {code}: {server.output()}")
        elif server.socket.exists():
            failures.append(f"the socket {server.socket} was not removed")
    assert not failures, "\n".join(failures)
