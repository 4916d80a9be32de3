"""What ``qmk plan --layout`` prints (``qmk run --lattice-surgery`` prints a run's
result as every target's, :mod:`qmk.commands.run`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.ft.layout import Layout
    from qmk.ft.model import FTModel


def layout_json(layout: Layout, model: FTModel) -> dict[str, Any]:
    """The layout with the numbers it rests on and the estimate's, side by side."""
    est = model.estimate
    breakdown = est["physicalCounts"]["breakdown"]
    factory = model.factory
    return {
        "layout": layout.to_json(),
        "profile": model.profile,
        "qubit_params": model.qubit,
        "factory": None
        if factory is None
        else {
            "copies": factory.copies,
            "units": factory.description,
            "physical_qubits": factory.physical_qubits,
            "duration_cycles": factory.duration_cycles,
            "states_per_run": factory.states_per_run,
        },
        "estimate": {
            "logical_qubits": breakdown["algorithmicLogicalQubits"],
            "physical_qubits_for_algorithm": breakdown["physicalQubitsForAlgorithm"],
            "physical_qubits": est["physicalCounts"]["physicalQubits"],
            "code_distance": est["logicalQubit"]["codeDistance"],
        },
    }


def layout_text(path: str, layout: Layout, model: FTModel) -> str:
    """The drawing, its legend and its counts."""
    factory = model.factory
    lines = [
        f"{path}: {layout.n} data qubits in the {layout.block} block, {model.profile} on "
        f"{model.qubit}",
        layout.text(),
        layout.legend(),
        f"block: {layout.tiles} tiles ({sum(len(p) for p in layout.patches)} data, "
        f"{len(layout.routing)} routing) x {layout.patch_qubits} physical qubits = "
        f"{layout.tiles * layout.patch_qubits:,}",
    ]
    if factory is not None:
        lines.append(
            f"factories: {factory.copies} x ({factory.description}), "
            f"{factory.physical_qubits:,} physical qubits each "
            f"({-(-factory.physical_qubits // layout.patch_qubits)} tiles), "
            f"{factory.states_per_run} T state{'s' * (factory.states_per_run != 1)} per run "
            f"of {factory.duration_cycles} logical cycles"
        )
    lines.append(f"physical qubits: {layout.physical_qubits:,}")
    breakdown = model.estimate["physicalCounts"]["breakdown"]
    lines.append(
        f"estimate (qmk estimate, d={model.estimate['logicalQubit']['codeDistance']}): "
        f"{breakdown['algorithmicLogicalQubits']} logical qubits (the fast block's tiles), "
        f"{model.estimate['physicalCounts']['physicalQubits']:,} physical qubits"
    )
    return "\n".join(lines) + "\n"
