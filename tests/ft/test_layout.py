"""The layout compiler: Litinski's blocks with the tile counts of his formulas, the fast
block equal to the estimator's layout, factories from the estimator beside it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qmk.estimate.counts import count_graph
from qmk.frontends import read_program
from qmk.ft.errors import FTError
from qmk.ft.layout import BLOCKS, block_tiles, draw_png, layout_block, layout_for
from qmk.ft.model import ft_model

PROGRAMS = Path(__file__).parent / "programs"
FORMULAS = {
    "compact": lambda n: math.ceil(1.5 * n) + 3,
    "intermediate": lambda n: 2 * n + 4,
    "fast": lambda n: 2 * n + math.ceil(math.sqrt(8 * n)) + 1,
}


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_places_exactly_its_formulas_tiles_without_overlap(block):
    for n in range(1, 301):
        layout = layout_block(block, n)
        tiles = [t for p in layout.patches for t in p] + list(layout.routing)
        assert len(tiles) == len(set(tiles)), (block, n)
        assert layout.tiles == FORMULAS[block](n) == block_tiles(block, n), (block, n)
        assert all(0 <= r < layout.height and 0 <= c < layout.width for r, c in tiles)
        # the drawing shows each tile once: labels and routing marks count the tiles
        assert sum(ch != " " for ch in layout.text() if ch != "\n") == layout.tiles


def test_fast_block_patches_take_two_tiles_and_the_others_one():
    assert {len(p) for p in layout_block("fast", 7).patches} == {2}
    assert {len(p) for p in layout_block("compact", 7).patches} == {1}
    assert {len(p) for p in layout_block("intermediate", 7).patches} == {1}


@pytest.mark.parametrize("name", ["toffoli.qasm", "adder2.qasm", "random_ct4.qasm"])
def test_the_fast_block_with_its_factories_has_the_estimates_physical_qubits(name):
    graph = read_program(str(PROGRAMS / name))
    model = ft_model(count_graph(graph), "qubit_gate_ns_e3")
    layout = layout_for(model, "fast", graph.resources.vqs)
    breakdown = model.estimate["physicalCounts"]["breakdown"]
    assert layout.tiles == breakdown["algorithmicLogicalQubits"]
    assert layout.tiles * layout.patch_qubits == breakdown["physicalQubitsForAlgorithm"]
    assert layout.physical_qubits == model.estimate["physicalCounts"]["physicalQubits"]
    assert model.factory is not None
    assert len(layout.factories) == breakdown["numTfactories"]
    per_copy = math.ceil(model.factory.physical_qubits / model.patch_qubits)
    assert all(len(f) == per_copy for f in layout.factories)


def test_an_unknown_block_is_a_coded_error():
    with pytest.raises(FTError) as caught:
        layout_block("roomy", 3)
    assert caught.value.code == "QP107"


def test_a_layout_draws_as_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "layout.png"
    draw_png(layout_block("fast", 5), str(path), "five qubits")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
