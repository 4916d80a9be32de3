"""Import order is architecture: every room of src/qmk has a layer, and imports only what
its layer allows, all of it below.

A room is a top-level package or module of ``src/qmk``. :data:`LAYERS` lists them bottom
first; :data:`MAY_IMPORT` says what each may import (beside itself). A new room fails
:func:`test_every_room_of_the_package_has_a_layer` until it is given a layer and a line
here (and in docs/layout.md).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from support.paths import SRC

#: The rooms every layer may import: they import nothing of QMK themselves.
LEAVES = (
    "qmk.errors",
    "qmk.defaults",
    "qmk.aio",
    "qmk.rate",
    "qmk.memo",
    "qmk.gates",
    "qmk.arrays",
)
#: The leaves and, above them, the door to the schema library every typed value uses.
BASE = (*LEAVES, "qmk.values")
#: Everything of QMK (for the rooms at the top, which wire the others together).
ANYTHING = ("qmk",)

#: The layers, bottom first: (what the layer is, its rooms).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "the leaves: the error root and registry, the shared defaults, asyncio names, "
        "token buckets, bounded memos, the gate records, NumPy idioms",
        LEAVES,
    ),
    ("typed values from plain data (the schema library's door)", ("qmk.values",)),
    ("the program format", ("qmk.qvm",)),
    ("front-ends, engines and the QEC physics", ("qmk.frontends", "qmk.engines", "qmk.qec")),
    (
        "built on one of those: the estimator, QEC experiments",
        ("qmk.estimate", "qmk.experiments"),
    ),
    (
        "fault-tolerant execution: patch layouts, lattice surgery scheduled and run",
        ("qmk.ft",),
    ),
    ("the in-process machine", ("qmk.execution",)),
    ("the assistant: a model that works through QMK's own tools", ("qmk.assist",)),
    ("devices behind the device interface (HAL), on the machine", ("qmk.devices",)),
    (
        "the conformance kits: every engine's and every target's checks",
        ("qmk.testing",),
    ),
    (
        "the wire: qSyscall's method table, JSON-RPC core, the door every wire passes, and "
        "the JSON-RPC server",
        ("qmk.abi",),
    ),
    ("the REST wire beside it: HTTP routes, events, metrics, traces, console", ("qmk.http",)),
    (
        "job templates and sweeps, run in-process, through a client, or by the kernel's triggers",
        ("qmk.workflows",),
    ),
    ("the kernel service", ("qmk.kernel",)),
    (
        "libraries for users: the client, the Qiskit backend, the PennyLane device, the doc "
        "generator",
        ("qmk.client", "qmk.qiskit", "qmk.pennylane", "qmk.docgen"),
    ),
    (
        "the gRPC wire: the service beside the other listeners, and its client (built on "
        "the JSON-RPC client's core)",
        ("qmk.grpc",),
    ),
    (
        "the gateways: a wire's server in a process of its own, a client of the kernel's socket",
        ("qmk.gateway",),
    ),
    (
        "the kernel process's entry: `qmk serve`'s kernel, its listeners, inline wires and "
        "its gateways' supervision",
        ("qmk.serve",),
    ),
    ("`qmk.run`: a program's text, file or graph, read and run in-process", ("qmk._front",)),
    ("`import qmk`: the user's surface, each name loaded on first use", ("qmk",)),
    ("the subcommands", ("qmk.commands",)),
    ("the command line", ("qmk.cli",)),
    ("python -m qmk", ("qmk.__main__",)),
)

#: What each room may import besides its own modules (module names or their prefixes).
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "qmk.errors": (),
    "qmk.defaults": (),
    "qmk.aio": (),
    "qmk.rate": (),
    "qmk.memo": (),
    "qmk.gates": (),
    "qmk.arrays": (),
    "qmk.values": ("qmk.errors",),
    # qvm imports nothing else of ours but the error root, the typed values' helpers,
    # NumPy idioms and the gate records (its gate ops take their gates' facts from them)
    "qmk.qvm": ("qmk.errors", "qmk.values", "qmk.gates", "qmk.arrays"),
    "qmk.frontends": (*BASE, "qmk.qvm"),
    # engines know gates, not graphs
    "qmk.engines": BASE,
    "qmk.qec": (*BASE, "qmk.qvm"),
    "qmk.estimate": (*BASE, "qmk.qec", "qmk.qvm"),
    "qmk.experiments": (*BASE, "qmk.qec", "qmk.qvm"),
    # the engines' checks read the gate table; the targets' run the corpus through the
    # target protocol (every target, the device's too, through qmk.execution.target)
    "qmk.testing": (*BASE, "qmk.engines", "qmk.qvm", "qmk.execution"),
    # the estimator's factory and code model, the engines that execute the PPMs
    "qmk.ft": (*BASE, "qmk.qvm", "qmk.engines", "qmk.qec", "qmk.estimate"),
    # execution is the one place that combines programs, engines and the QEC layer; its
    # targets run lattice surgery (qmk.ft), count T states as the estimator does and
    # decode a stim circuit's detectors with the memory experiments' matching decoder
    "qmk.execution": (
        *BASE,
        "qmk.qvm",
        "qmk.frontends",
        "qmk.engines",
        "qmk.qec",
        "qmk.estimate",
        "qmk.experiments",
        "qmk.ft",
    ),
    # the assistant's tools are QMK's verifier, estimator, planner and executor
    "qmk.assist": (*BASE, "qmk.qvm", "qmk.frontends", "qmk.estimate", "qmk.execution"),
    # devices sit beside the machine: the simulated logical machine runs on it; the
    # neutral-atom device runs the QEC memory experiments' circuits (qmk device qec) and
    # reads Bloqade kernels through the OpenQASM 2 front-end
    "qmk.devices": (
        *BASE,
        "qmk.qvm",
        "qmk.frontends",
        "qmk.engines",
        "qmk.qec",
        "qmk.experiments",
        "qmk.execution",
    ),
    # the wire never imports the kernel (it serves any object that has the methods); the
    # door (qmk.abi.door) reads program text with the front-ends
    "qmk.abi": (*BASE, "qmk.qvm", "qmk.frontends.text"),
    # the REST wire serves the same syscalls (it never imports the kernel: the kernel
    # gives it a probe, qmk.abi.probe, as it implements qmk.abi.protocol); programs in
    # other languages are lowered by the front-ends
    "qmk.http": (*BASE, "qmk.abi", "qmk.qvm", "qmk.frontends"),
    # the kernel runs execution in workers, implements the ABI's contract (typing only) and
    # answers its reply structs
    "qmk.kernel": (
        *BASE,
        "qmk.execution",
        "qmk.estimate",  # policy.profile "auto": the cheapest code variant
        "qmk.qvm",
        "qmk.frontends",
        "qmk.engines",
        "qmk.qec",
        "qmk.devices",  # the device it holds (the HAL), its faults and inventory
        "qmk.abi.protocol",
        "qmk.abi.replies",  # what its syscalls answer: the reply structs every wire encodes
        "qmk.abi.probe",  # what its observer (kernel/observe.py) gives the wires
        "qmk.abi.probing",  # the probe's JSON, for q_kernel_load and q_audit (syscalls/feed.py)
        "qmk.abi.tally",  # the job counters it keeps for q_kernel_load (syscalls/feed.py)
        "qmk.assist",  # q_assist: the assistant, per tenant
        "qmk.abi.webhook",  # the POST of the billing outbox (kernel/storage/outbox.py)
        "qmk.ft",  # the machine's footprints: patch layouts and lattice-surgery ticks
        "qmk.workflows",  # the workflows its triggers run (kernel/running/triggers.py)
    ),
    # the client talks to a kernel over the wire only
    "qmk.client": (*BASE, "qmk.abi", "qmk.qvm.ops"),
    "qmk.qiskit": (*BASE, "qmk.engines", "qmk.execution", "qmk.frontends", "qmk.qec", "qmk.qvm"),
    "qmk.pennylane": (*BASE, "qmk.engines", "qmk.execution", "qmk.frontends"),
    "qmk.docgen": ANYTHING,
    # gRPC serves the same syscalls as the other wires (never importing the kernel: it is
    # given the kernel and its probe), lowers programs as REST does, streams the same job
    # events, and its client shares the JSON-RPC client's core and generated methods
    "qmk.grpc": (*BASE, "qmk.abi", "qmk.qvm", "qmk.frontends", "qmk.http", "qmk.client"),
    # a gateway serves a wire's application on a kernel it reaches through the client
    "qmk.gateway": (*BASE, "qmk.abi", "qmk.qvm", "qmk.http", "qmk.grpc", "qmk.client"),
    # the kernel process: the kernel, its door and listeners, the wires it serves inline
    # (--gateway inline), and the supervisor of the gateways' processes
    "qmk.serve": (*BASE, "qmk.abi", "qmk.kernel", "qmk.http", "qmk.grpc"),
    "qmk._front": (*BASE, "qmk.qvm", "qmk.frontends", "qmk.engines", "qmk.qec", "qmk.execution"),
    # the user's surface: the front door, the result, the client and the errors a user catches
    "qmk": (
        "qmk.errors",
        "qmk._front",
        "qmk.execution.result",
        "qmk.execution.target",  # TargetError (QM101, QM102), loaded on first use
        "qmk.client",
        "qmk.qvm.errors",
        "qmk.frontends.errors",
        "qmk.engines.base",
        "qmk.qec.errors",
        "qmk.abi.errors",
    ),
    # workflows run jobs in-process (the executor, a device) or through a client
    "qmk.workflows": (
        *BASE,
        "qmk.abi.errors",
        "qmk.abi.replies",  # the typed replies a client gives
        "qmk.qvm",
        "qmk.frontends",
        "qmk.qec",
        "qmk.execution",
        "qmk.devices",
        "qmk.http.programs",
        "qmk.http.client",
    ),
    "qmk.commands": ANYTHING,
    "qmk.cli": ANYTHING,
    "qmk.__main__": ("qmk.cli",),
}

#: Modules a room may not import although a prefix above allows them.
MAY_NOT_IMPORT: dict[str, tuple[str, ...]] = {"qmk.client": ("qmk.abi.server",)}

#: The rooms that speak a wire (open sockets, serve or call JSON-RPC).
#: (and the assistant: as a client of its model server).
WIRE = ("qmk.abi", "qmk.http", "qmk.client", "qmk.grpc", "qmk.gateway", "qmk.assist")
_WIRE_MODULES = ("socket", "ssl", "http", "urllib", "selectors")
_WIRE_CALLS = ("start_server", "start_unix_server", "open_connection", "open_unix_connection")


@functools.cache
def room_names() -> frozenset[str]:
    """Every room of src/qmk: its packages and modules (``qmk`` is its ``__init__``)."""
    rooms = {"qmk"}
    for path in SRC.iterdir():
        if path.is_dir() and (path / "__init__.py").exists():
            rooms.add(f"qmk.{path.name}")
        elif path.suffix == ".py" and path.name != "__init__.py":
            rooms.add(f"qmk.{path.stem}")
    return frozenset(rooms)


def files_of(room: str) -> list[Path]:
    """The source files of ``room``."""
    if room == "qmk":
        return [SRC / "__init__.py"]
    path = SRC / room.removeprefix("qmk.")
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def room_of(module: str) -> str:
    """The room a qmk module name is in (``qmk.__version__`` is in ``qmk``)."""
    parts = module.split(".")
    return (
        "qmk" if len(parts) == 1 or f"qmk.{parts[1]}" not in room_names() else ".".join(parts[:2])
    )


@functools.cache  # read by most tests here, some once per room: each file parsed once
def qmk_imports(path: Path) -> frozenset[str]:
    """The qmk modules a source file imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "qmk" and node.level == 0:
            found.update(f"qmk.{alias.name}" for alias in node.names)  # from qmk import defaults
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return frozenset(name for name in found if name == "qmk" or name.startswith("qmk."))


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _layer_of(room: str) -> int:
    return next(i for i, (_, rooms) in enumerate(LAYERS) if room in rooms)


def test_every_room_of_the_package_has_a_layer():
    layered = [room for _, rooms in LAYERS for room in rooms]
    assert len(layered) == len(set(layered))
    assert set(layered) == room_names(), "give the new room a layer in LAYERS and MAY_IMPORT"
    assert set(MAY_IMPORT) == room_names()


def test_a_room_may_import_only_rooms_of_lower_layers():
    for room, allowed in MAY_IMPORT.items():
        if allowed == ANYTHING:
            continue
        for name in allowed:
            assert _layer_of(room_of(name)) < _layer_of(room), (room, name)


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_each_room_imports_only_what_its_layer_allows(room: str):
    top = _layer_of(room)
    for path in files_of(room):
        for name in qmk_imports(path):
            if room_of(name) == room:
                continue
            where = (room, path.name, name)
            assert _within(name, MAY_IMPORT[room]), where
            assert not _within(name, MAY_NOT_IMPORT.get(room, ())), where
            assert _layer_of(room_of(name)) < top, where  # nothing from its own layer or above


#: What the door (qmk.abi.door) may not import although its room may: the wires that
#: call it, so that every wire sits above the one door and none of them below it.
DOOR_MAY_NOT_IMPORT = (
    "qmk.abi.server",
    "qmk.abi.watch",
    "qmk.abi.watchhub",
    "qmk.http",
    "qmk.grpc",
    "qmk.client",
)


def test_the_door_imports_no_wire_it_guards():
    for path in (SRC / "abi" / "door").rglob("*.py"):
        for name in qmk_imports(path):
            assert not _within(name, DOOR_MAY_NOT_IMPORT), (path.name, name)


def test_every_import_of_qmk_is_absolute_so_the_checks_above_see_it():
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, path


def test_qvm_imports_nothing_of_qmk_but_itself_the_error_root_the_gate_records_and_numpy_idioms():
    for path in (SRC / "qvm").rglob("*.py"):
        for name in qmk_imports(path):
            assert name.startswith("qmk.qvm") or name in (
                "qmk.errors",
                "qmk.gates",
                "qmk.arrays",
            ), (
                path.name,
                name,
            )


def test_the_error_root_the_defaults_and_the_gate_records_import_nothing_of_qmk():
    assert qmk_imports(SRC / "errors.py") == set()
    assert qmk_imports(SRC / "defaults.py") == set()
    assert qmk_imports(SRC / "gates.py") == set()


def test_client_never_imports_the_kernel():
    client = SRC / "client.py"
    assert not any(name.startswith("qmk.kernel") for name in qmk_imports(client))
    for name in qmk_imports(client):  # only the wire's table and errors, and the op table
        leaf = name in ("qmk.errors", "qmk.defaults", "qmk.aio", "qmk.qvm.ops")
        assert leaf or name.startswith("qmk.abi"), name
    assert not any(name.startswith("qmk.abi.server") for name in qmk_imports(client))


def test_the_wire_layer_never_imports_the_kernel():
    for path in files_of("qmk.abi"):
        assert not any(_within(name, ("qmk.kernel",)) for name in qmk_imports(path)), path


def test_engines_know_gates_not_graphs():
    for path in files_of("qmk.engines"):
        assert not any(_within(name, ("qmk.qvm",)) for name in qmk_imports(path)), path


def test_only_the_wire_rooms_open_sockets_or_streams():
    for room in room_names() - set(WIRE):
        for path in files_of(room):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                else:
                    names = []
                assert not any(_within(n, _WIRE_MODULES) for n in names), (path, names)
                if isinstance(node, ast.Attribute):
                    assert node.attr not in _WIRE_CALLS, (path, node.attr)


#: What the machine scheduler (kernel/machine/) may import of the kernel: its errors and
#: its config, nothing of the service, the store, the workers or the wires, so a
#: schedule-only run (qmk machine simulate) needs no server. Below the kernel it may use
#: the targets (qmk.execution), whose executables report the footprints it schedules.
MACHINE_MAY_IMPORT = (
    *BASE,
    "qmk.kernel.machine",
    "qmk.kernel.errors",
    "qmk.kernel.config",
    "qmk.kernel.machine_physics",  # the config's machine checked as the planner derives it
    "qmk.execution",  # the targets, whose footprints are what the machine places
    "qmk.ft",
    "qmk.estimate",
    "qmk.qec",
    "qmk.qvm",
    "qmk.frontends",
    "qmk.kernel.device",
)


def test_the_machine_scheduler_imports_no_service_store_or_wire():
    files = sorted((SRC / "kernel" / "machine").rglob("*.py"))
    assert files, "src/qmk/kernel/machine is the machine scheduler's package"
    for path in files:
        for name in qmk_imports(path):
            assert _within(name, MACHINE_MAY_IMPORT), (path.name, name)


#: The machine scheduler's own rooms, bottom first (``policies`` is one room): a module
#: imports at run time only rooms of lower layers, so the room has no arrow up and no
#: circle. Imports under ``if TYPE_CHECKING`` name types only and are not arrows.
MACHINE_LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "values and the things they are made of: the floorplan's figures, tiles, jobs, "
        "who is where, the supply, footprints, programs, metrics",
        (
            "metrics",
            "tiles",
            "factories",
            "jobs",
            "state",
            "supply",
            "footprints",
            "programs",
            "draw",
        ),
    ),
    ("the machine declared", ("spec",)),
    ("the least machine that holds a job", ("hold",)),
    ("the refusal's words, what to raise for a job no placement holds", ("refusal",)),
    ("where a job's patches run: its block and code distance", ("placement",)),
    ("the machine derived from a config, where the estimator is (the planner)", ("derive",)),
    ("running jobs' paces under their shares of the machine", ("rates",)),
    ("the scheduler's event loop", ("core",)),
    ("the scheduling policies", ("policies",)),
    ("a job alone on the empty machine", ("alone",)),
    ("workloads, schedule-only runs, a kernel's live machine", ("workload", "simulate", "live")),
    ("the fastest configuration of a workload's machine, over its runs", ("baseline",)),
)


def test_the_machine_rooms_import_only_rooms_below_them():
    rank = {room: i for i, (_, rooms) in enumerate(MACHINE_LAYERS) for room in rooms}
    prefix = "qmk.kernel.machine."
    graph = import_graph(SRC)
    inside = [m for m in graph if m.startswith(prefix)]
    assert inside, "src/qmk/kernel/machine is the machine scheduler's package"
    for module in inside:
        room = module[len(prefix) :].split(".")[0]
        assert room in rank, f"give {module} a layer in MACHINE_LAYERS"
        for name in graph[module]:
            if not name.startswith(prefix):
                continue
            other = name[len(prefix) :].split(".")[0]
            assert other == room or rank[other] < rank[room], (module, name)


def test_no_machine_module_writes_the_schedulers_private_state():
    # one owner: only the scheduler's module touches its underscored fields
    for path in sorted((SRC / "kernel" / "machine").rglob("*.py")):
        if path.name == "core.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "sched._" not in text, path.name


# --------------------------------------------------------------------------- kernel sub-rooms
#
# The kernel is a room of rooms: each package of src/qmk/kernel (and each module at its top)
# is a sub-room with a layer here, and imports only the sub-rooms its line allows, all of
# them below it. A new module at the top of kernel/ fails the first test until it is given
# a layer (and a row in docs/layout.md).

#: The kernel's leaves, which every sub-room may import: they import nothing of the kernel.
KERNEL_LEAVES = (
    "qmk.kernel.errors",
    "qmk.kernel.datafiles",
    "qmk.kernel.clock",
    "qmk.kernel.device",
)

#: The kernel's sub-rooms, bottom first: (what the layer is, its sub-rooms).
KERNEL_LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "the kernel's errors, its data directory's file names, its clock, its device",
        KERNEL_LEAVES,
    ),
    ("the clocks a test drives (never the kernel process's)", ("qmk.kernel.manual_clock",)),
    (
        "what a job is: the record, a worker's outcome, a stored result, usage, verified programs",
        ("qmk.kernel.records",),
    ),
    (
        "who may do what and what proves it: keys, sessions, delegations, seals, attestation",
        ("qmk.kernel.security",),
    ),
    (
        "a configured machine's physics as the QEC layer checks them (where it loads)",
        ("qmk.kernel.machine_physics",),
    ),
    ("the kernel's config (kernel.toml)", ("qmk.kernel.config",)),
    (
        "the machine scheduler; what the kernel keeps: store, audit, commit, data directory, "
        "migrations, results, artifacts, billing",
        ("qmk.kernel.machine", "qmk.kernel.storage"),
    ),
    (
        "what is let in (admission, budgets, cache, faults, channels, the run queue); where "
        "jobs run (the worker pools, a worker's attempt, Dask)",
        ("qmk.kernel.admit", "qmk.kernel.pools"),
    ),
    (
        "jobs run: the supervisor, checkpoints, the shared machine in machine time, the "
        "workflow triggers",
        ("qmk.kernel.running",),
    ),
    (
        "the syscalls' work by concern: sessions, delegations, jobs, channels, the machine "
        "and usage",
        ("qmk.kernel.syscalls",),
    ),
    (
        "the kernel's load and audit tail as its observer reads them, at the first ask",
        ("qmk.kernel.observe_load",),
    ),
    ("what the wires see of the kernel: its events and load", ("qmk.kernel.observe",)),
    ("the syscalls' facade", ("qmk.kernel.service",)),
    ("beside the facade: its contract with the method table", ("qmk.kernel._contract",)),
)

#: What each sub-room of the kernel may import of the kernel besides itself (whatever
#: the kernel room may import outside it is :data:`MAY_IMPORT`'s).
KERNEL_MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "qmk.kernel.errors": (),
    "qmk.kernel.datafiles": (),
    "qmk.kernel.clock": (),
    "qmk.kernel.device": (),
    "qmk.kernel.manual_clock": ("qmk.kernel.clock",),
    "qmk.kernel.records": ("qmk.kernel.errors",),
    "qmk.kernel.security": (*KERNEL_LEAVES, "qmk.kernel.records"),
    # the config reads usage's units and checks a key's hash (the machine reads it)
    "qmk.kernel.machine_physics": ("qmk.kernel.errors",),
    # ... and checks its machine's physics where the QEC layer loads (machine_physics)
    "qmk.kernel.config": (
        *KERNEL_LEAVES,
        "qmk.kernel.records",
        "qmk.kernel.security",
        "qmk.kernel.machine_physics",
    ),
    "qmk.kernel.machine": (
        "qmk.kernel.errors",
        "qmk.kernel.device",  # the [faults] schedule the derived machine reads
        "qmk.kernel.config",
        "qmk.kernel.machine_physics",
    ),
    "qmk.kernel.storage": (
        *KERNEL_LEAVES,
        "qmk.kernel.records",
        "qmk.kernel.security",
        "qmk.kernel.config",
    ),
    # admission refuses a job too big for the machine with the floorplan's answer
    "qmk.kernel.admit": (
        *KERNEL_LEAVES,
        "qmk.kernel.records",
        "qmk.kernel.security",
        "qmk.kernel.config",
        "qmk.kernel.machine",
        "qmk.kernel.storage",
    ),
    # a worker's attempt writes its device artifacts (storage) and seals its result
    "qmk.kernel.pools": (
        *KERNEL_LEAVES,
        "qmk.kernel.records",
        "qmk.kernel.security",
        "qmk.kernel.config",
        "qmk.kernel.storage",
    ),
    # the supervisor holds the shared machine (qmk.kernel.running.shared_machine), which
    # keeps the machine scheduler's live state
    "qmk.kernel.running": (
        *KERNEL_LEAVES,
        "qmk.kernel.records",
        "qmk.kernel.security",
        "qmk.kernel.config",
        "qmk.kernel.machine",
        "qmk.kernel.storage",
        "qmk.kernel.admit",
        "qmk.kernel.pools",
    ),
    # each desk does one concern's syscalls with the parts below (the facade checks the
    # session and hands over)
    "qmk.kernel.syscalls": (
        *KERNEL_LEAVES,
        "qmk.kernel.records",
        "qmk.kernel.security",
        "qmk.kernel.config",
        "qmk.kernel.storage",
        "qmk.kernel.admit",
        "qmk.kernel.running",
    ),
    "qmk.kernel.service": (
        *KERNEL_LEAVES,
        "qmk.kernel.records",
        "qmk.kernel.security",
        "qmk.kernel.config",
        "qmk.kernel.machine",
        "qmk.kernel.storage",
        "qmk.kernel.admit",
        "qmk.kernel.pools",
        "qmk.kernel.running",
        "qmk.kernel.syscalls",
        "qmk.kernel.observe",  # the one observer of the kernel, its feed desk's
    ),
    "qmk.kernel.observe_load": (),
    "qmk.kernel.observe": ("qmk.kernel.records", "qmk.kernel.observe_load"),
    "qmk.kernel._contract": ("qmk.kernel.service",),
}


def kernel_room_of(name: str) -> str:
    """The kernel sub-room of the dotted name ``name`` (``qmk.kernel.storage.store`` is
    ``qmk.kernel.storage``; ``qmk.kernel.config`` is itself)."""
    return ".".join(name.split(".")[:3])


def kernel_room_names() -> set[str]:
    """The sub-rooms of src/qmk/kernel: its packages and its modules bar ``__init__``."""
    kernel = SRC / "kernel"
    return {
        f"qmk.kernel.{path.name.removesuffix('.py')}"
        for path in kernel.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.name != "__init__.py")
    }


def _kernel_layer_of(room: str) -> int:
    return next(i for i, (_, rooms) in enumerate(KERNEL_LAYERS) if room in rooms)


def test_every_sub_room_of_the_kernel_has_a_layer():
    layered = [room for _, rooms in KERNEL_LAYERS for room in rooms]
    assert len(layered) == len(set(layered))
    assert set(layered) == kernel_room_names(), "give it a layer in KERNEL_LAYERS"
    assert set(KERNEL_MAY_IMPORT) == kernel_room_names()


def test_a_kernel_sub_room_may_import_only_sub_rooms_of_lower_layers():
    for room, allowed in KERNEL_MAY_IMPORT.items():
        for name in allowed:
            assert _kernel_layer_of(name) < _kernel_layer_of(room), (room, name)


def test_the_kernel_package_itself_imports_nothing():
    assert qmk_imports(SRC / "kernel" / "__init__.py") == set()


@pytest.mark.parametrize("room", sorted(KERNEL_MAY_IMPORT))
def test_each_kernel_sub_room_imports_only_what_its_layer_allows(room: str):
    top = SRC / "kernel" / room.rpartition(".")[2]
    files = sorted(top.rglob("*.py")) if top.is_dir() else [top.with_suffix(".py")]
    assert files, room
    for path in files:
        for name in qmk_imports(path):
            if not _within(name, ("qmk.kernel",)) or kernel_room_of(name) == room:
                continue
            assert _within(name, KERNEL_MAY_IMPORT[room]), (room, path.name, name)


def test_nothing_below_the_command_line_imports_it():
    for room in room_names() - {"qmk.commands", "qmk.cli", "qmk.__main__"}:
        for path in files_of(room):
            names = qmk_imports(path)
            assert not any(_within(n, ("qmk.commands", "qmk.cli")) for n in names), path


# --------------------------------------------------------------------------- import circles
#
# Layers order the rooms; inside a room, modules must not import each other in a circle
# either: a circle means neither module can be read (or loaded) without the other, and a
# function-local import that hides one is still a circle. Only imports under
# ``if TYPE_CHECKING:`` are exempt, as they never run.

#: An import graph: module -> the modules it imports -> the lines where it does.
Graph = dict[str, dict[str, list[int]]]


def module_files(root: Path, package: str = "qmk") -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name (a package is its
    ``__init__.py``)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of ``tree`` that can run: at any depth, bar the bodies of
    ``if TYPE_CHECKING:`` (their ``else:`` runs)."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return sorted(found, key=lambda node: node.lineno)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, files: dict[str, Path]
) -> list[str]:
    """The dotted names ``node`` in ``module`` loads: ``import a.b`` names ``a.b``;
    ``from a import b`` names ``a.b`` when ``b`` is a submodule, else ``a``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: level 1 is the package the module is in
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    names = [f"{base}.{alias.name}" for alias in node.names]
    return [name if name in files else base for name in names]


def import_graph(root: Path, package: str = "qmk") -> Graph:
    """The modules of the package at ``root`` each imports (TYPE_CHECKING-only imports
    aside), with the lines that import them.

    An import names the deepest module it loads (``from qmk.engines import gates`` is
    ``qmk.engines.gates``, ``from qmk.engines.gates import GATES`` is ``qmk.engines.gates``).
    A module's imports of the packages it is inside are left out: Python runs those
    ``__init__`` files before the module whatever it imports.
    """
    files = module_files(root, package)
    graph: Graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        edges: dict[str, list[int]] = {}
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            for name in _imported_names(module, is_package, node, files):
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if not name or name == module or module.startswith(name + "."):
                    continue
                lines = edges.setdefault(name, [])
                if node.lineno not in lines:
                    lines.append(node.lineno)
        graph[module] = edges
    return graph


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one module, each
    sorted, in order of their first module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:  # depth at most the number of modules
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.get(module, {}):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component: list[str] = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def describe_circle(graph: Graph, component: list[str]) -> str:
    """One circle as lines: each module and its imports inside the circle, with lines."""
    inside = set(component)
    lines = [f"{len(component)} modules: {', '.join(component)}"]
    for module in component:
        for other, at in sorted(graph[module].items()):
            if other in inside:
                lines.append(f"    {module} -> {other} (line {', '.join(map(str, at))})")
    return "\n".join(lines)


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_the_import_graph_sees_local_relative_and_submodule_imports_but_not_type_checking(
    tmp_path: Path,
):
    root = _write_package(
        tmp_path,
        {
            "__init__.py": "from pkg import a\n",
            "a.py": "import pkg\nfrom pkg.sub import b\n",
            "sub/__init__.py": "from . import c\nfrom .c import thing\n",
            "sub/b.py": (
                "from typing import TYPE_CHECKING\nimport os\nfrom .. import a\n"
                "if TYPE_CHECKING:\n    from pkg.sub import c\nelse:\n    import pkg.d\n"
            ),
            "sub/c.py": "def f():\n    from ..sub import b\n    from pkg import sub\nthing = 1\n",
            "d.py": "from pkg.sub.c import *\nfrom pkg.sub.c import f, thing\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert {module: set(edges) for module, edges in graph.items()} == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b"},  # import pkg: its own package's __init__ does not count
        "pkg.sub": {"pkg.sub.c"},
        "pkg.sub.b": {"pkg.a", "pkg.d"},  # the TYPE_CHECKING import of c does not count
        "pkg.sub.c": {"pkg.sub.b"},  # function-local; pkg.sub is its own package
        "pkg.d": {"pkg.sub.c"},
    }
    assert graph["pkg.sub.b"]["pkg.d"] == [7]
    assert circles(graph) == [["pkg.a", "pkg.d", "pkg.sub.b", "pkg.sub.c"]]
    assert describe_circle(graph, circles(graph)[0]).splitlines()[1:] == [
        "    pkg.a -> pkg.sub.b (line 2)",
        "    pkg.d -> pkg.sub.c (line 1, 2)",
        "    pkg.sub.b -> pkg.a (line 3)",
        "    pkg.sub.b -> pkg.d (line 7)",
        "    pkg.sub.c -> pkg.sub.b (line 2)",
    ]


def test_no_modules_of_qmk_import_each_other_in_a_circle():
    graph = import_graph(SRC)
    found = circles(graph)
    assert not found, "import circles (move what both need below both):\n" + "\n".join(
        describe_circle(graph, component) for component in found
    )
