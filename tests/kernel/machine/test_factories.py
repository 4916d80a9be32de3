"""The factories' figures against what docs/machine.md says of them."""

from __future__ import annotations

import re

from qmk.kernel.machine.factories import figures
from support.paths import ROOT


def _per_tile_cycle(protocol: str) -> float:
    f = figures(protocol, "surface_code", "qubit_gate_ns_e3", 9)
    return f.states_per_run / (f.tiles_per_copy * f.duration_cycles)


def test_the_pages_states_per_tile_and_cycle_ratios_are_the_factories_figures():
    # estimator: 1.97 states / (60 tiles x 16 cycles); Litinski 1 / (11 x 11); cultivation
    # 1 / (3 x 4): 4.03x and 40.6x the estimator's
    base = _per_tile_cycle("estimator")
    litinski = _per_tile_cycle("litinski-15to1") / base
    cultivation = _per_tile_cycle("cultivation") / base
    assert round(litinski, 1) == 4.0 and round(cultivation) == 41
    page = " ".join((ROOT / "docs" / "machine.md").read_text(encoding="utf-8").split())
    said = re.search(
        r"Litinski's block makes ([\d.]+)x the estimator's states and cultivation ([\d.]+)x", page
    )
    assert said is not None
    assert (float(said[1]), float(said[2])) == (round(litinski, 1), round(cultivation))
