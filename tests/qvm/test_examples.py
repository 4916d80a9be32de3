"""The example programs: each assembly file matches its canonical JSON twin exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmk.qvm.asm import assemble, assemble_file, disassemble
from qmk.qvm.graph_file import dumps, load
from support.paths import EXAMPLES

ASM_FILES = sorted(EXAMPLES.glob("*.qvm.asm"))
JSON_FILES = sorted(EXAMPLES.glob("*.qvm.json"))
EXPECTED = {
    "bell",
    "ghz",
    "teleport_guards",
    "teleport_cond_pauli",
    "t_gate_injection",
    "linked_modules",
    "rev_segment",
}


def _twin(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".qvm.asm") + ".qvm.json")


def test_every_expected_example_has_assembly_and_json() -> None:
    asm_names = {path.name.removesuffix(".qvm.asm") for path in ASM_FILES}
    json_names = {path.name.removesuffix(".qvm.json") for path in JSON_FILES}
    assert asm_names >= EXPECTED
    assert asm_names == json_names


@pytest.mark.parametrize("path", ASM_FILES, ids=lambda p: p.name)
def test_example_assembles_to_its_json_twin(path: Path) -> None:
    expected = _twin(path).read_text(encoding="utf-8")
    assert dumps(assemble_file(path)) + "\n" == expected


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_example_json_round_trips_through_assembly_text(path: Path) -> None:
    graph = load(path)
    assert dumps(assemble(disassemble(graph))) == dumps(graph)


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_example_json_is_already_canonical(path: Path) -> None:
    assert path.read_text(encoding="utf-8") == dumps(load(path)) + "\n"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_example_is_labelled_described_and_declares_its_resources(path: Path) -> None:
    graph = load(path)
    assert graph.version == "0.2"
    assert graph.description
    assert all(not node.id.startswith("n") or not node.id[1:].isdigit() for node in graph)
    used_vqs = {name for node in graph for name in node.vqs}
    assert used_vqs == set(graph.resources.vqs)
