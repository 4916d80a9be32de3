"""Import order is architecture: each layer imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import SRC


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


def test_qvm_imports_nothing_of_qmk_but_itself_and_the_error_root():
    for path in (SRC / "qvm").rglob("*.py"):
        for name in qmk_imports(path):
            assert name.startswith("qmk.qvm") or name == "qmk.errors", (path.name, name)


def test_the_error_root_and_the_defaults_import_nothing_of_qmk():
    assert qmk_imports(SRC / "errors.py") == set()
    assert qmk_imports(SRC / "defaults.py") == set()


def test_client_never_imports_the_kernel():
    client = SRC / "client.py"
    if client.exists():
        assert not any(name.startswith("qmk.kernel") for name in qmk_imports(client))
        for name in qmk_imports(client):  # only the wire's table and errors, and the op table
            leaf = name in ("qmk.errors", "qmk.defaults", "qmk.aio", "qmk.qvm.ops")
            assert leaf or name.startswith("qmk.abi"), name
        assert not any(name.startswith("qmk.abi.server") for name in qmk_imports(client))


def test_the_wire_layer_never_imports_the_kernel():
    _layer_imports_only("abi", ("qmk.abi", "qmk.qvm"))


def _layer_imports_only(layer: str, allowed: tuple[str, ...]) -> None:
    for path in (SRC / layer).rglob("*.py"):
        for name in qmk_imports(path):
            leaf = name in ("qmk.errors", "qmk.defaults", "qmk.aio")  # leaves every layer may use
            assert leaf or name.startswith(allowed), (layer, path.name, name)


def test_engines_know_gates_not_graphs():
    _layer_imports_only("engines", ("qmk.engines",))


def test_qec_builds_only_on_the_program_format():
    _layer_imports_only("qec", ("qmk.qec", "qmk.qvm"))


def test_the_estimator_builds_on_the_qec_layer_and_the_program_format():
    _layer_imports_only("estimate", ("qmk.estimate", "qmk.qec", "qmk.qvm"))


def test_experiments_build_on_the_qec_layer_only():
    _layer_imports_only("experiments", ("qmk.experiments", "qmk.qec", "qmk.qvm"))


def test_execution_combines_programs_engines_and_qec():
    _layer_imports_only(
        "execution", ("qmk.execution", "qmk.qvm", "qmk.frontends", "qmk.engines", "qmk.qec")
    )


def test_frontends_lower_into_the_program_format_only():
    _layer_imports_only("frontends", ("qmk.frontends", "qmk.qvm"))


def test_the_kernel_combines_the_layers_below_it_and_nothing_above():
    _layer_imports_only(
        "kernel",
        ("qmk.kernel", "qmk.execution", "qmk.qvm", "qmk.frontends", "qmk.engines", "qmk.qec"),
    )
