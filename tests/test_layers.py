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
LEAVES = ("qmk.errors", "qmk.defaults", "qmk.aio", "qmk.rate")
#: The leaves and, above them, the door to the schema library every typed value uses.
BASE = (*LEAVES, "qmk.values")
#: Everything of QMK (for the rooms at the top, which wire the others together).
ANYTHING = ("qmk",)

#: The layers, bottom first: (what the layer is, its rooms).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "the leaves: the error root and registry, the shared defaults, asyncio names, "
        "token buckets",
        LEAVES,
    ),
    ("typed values from plain data (the schema library's door)", ("qmk.values",)),
    ("the program format", ("qmk.qvm",)),
    ("front-ends, engines and the QEC physics", ("qmk.frontends", "qmk.engines", "qmk.qec")),
    (
        "built on one of those: the estimator, QEC experiments, the engine conformance kit",
        ("qmk.estimate", "qmk.experiments", "qmk.testing"),
    ),
    ("the in-process machine", ("qmk.execution",)),
    ("devices behind the device interface (HAL), on the machine", ("qmk.devices",)),
    ("the wire: qSyscall's method table, JSON-RPC core and server", ("qmk.abi",)),
    ("the REST wire beside it: HTTP routes, events, metrics, traces, console", ("qmk.http",)),
    ("the kernel service", ("qmk.kernel",)),
    (
        "libraries for users: the client, the Qiskit backend, the doc generator, `import qmk`",
        ("qmk.client", "qmk.qiskit", "qmk.docgen", "qmk"),
    ),
    ("job templates and sweeps, run in-process or on a kernel", ("qmk.workflows",)),
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
    "qmk.values": ("qmk.errors",),
    # qvm imports nothing else of ours but the error root and the typed values' helpers
    "qmk.qvm": ("qmk.errors", "qmk.values"),
    "qmk.frontends": (*BASE, "qmk.qvm"),
    # engines know gates, not graphs
    "qmk.engines": BASE,
    "qmk.qec": (*BASE, "qmk.qvm"),
    "qmk.estimate": (*BASE, "qmk.qec", "qmk.qvm"),
    "qmk.experiments": (*BASE, "qmk.qec", "qmk.qvm"),
    "qmk.testing": (*BASE, "qmk.engines"),
    # execution is the one place that combines programs, engines and the QEC layer
    "qmk.execution": (*BASE, "qmk.qvm", "qmk.frontends", "qmk.engines", "qmk.qec"),
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
    # the wire never imports the kernel (it serves any object that has the methods)
    "qmk.abi": (*BASE, "qmk.qvm"),
    # the REST wire serves the same syscalls (it never imports the kernel: the kernel
    # gives it a probe, qmk.http.probe, as it implements qmk.abi.protocol); programs in
    # other languages are lowered by the front-ends
    "qmk.http": (*BASE, "qmk.abi", "qmk.qvm", "qmk.frontends"),
    # the kernel runs execution in workers, and implements the ABI's contract (typing only)
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
        "qmk.http.probe",  # what its observer (kernel/observe.py) gives the HTTP layer
    ),
    # the client talks to a kernel over the wire only
    "qmk.client": (*BASE, "qmk.abi", "qmk.qvm.ops"),
    "qmk.qiskit": (*BASE, "qmk.engines", "qmk.execution", "qmk.frontends", "qmk.qec", "qmk.qvm"),
    "qmk.docgen": ANYTHING,
    "qmk": ("qmk.errors", "qmk.values", "qmk.execution"),
    # workflows run jobs in-process (the executor, a device) or through a client
    "qmk.workflows": (
        *BASE,
        "qmk.abi.errors",
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
WIRE = ("qmk.abi", "qmk.http", "qmk.client")
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


def qmk_imports(path: Path) -> set[str]:
    """The qmk modules a source file imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "qmk" and node.level == 0:
            found.update(f"qmk.{alias.name}" for alias in node.names)  # from qmk import defaults
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "qmk" or name.startswith("qmk.")}


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


def test_every_import_of_qmk_is_absolute_so_the_checks_above_see_it():
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, path


def test_qvm_imports_nothing_of_qmk_but_itself_and_the_error_root():
    for path in (SRC / "qvm").rglob("*.py"):
        for name in qmk_imports(path):
            assert name.startswith("qmk.qvm") or name == "qmk.errors", (path.name, name)


def test_the_error_root_and_the_defaults_import_nothing_of_qmk():
    assert qmk_imports(SRC / "errors.py") == set()
    assert qmk_imports(SRC / "defaults.py") == set()


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


def test_nothing_below_the_command_line_imports_it():
    for room in room_names() - {"qmk.commands", "qmk.cli", "qmk.__main__"}:
        for path in files_of(room):
            names = qmk_imports(path)
            assert not any(_within(n, ("qmk.commands", "qmk.cli")) for n in names), path
