"""Footprints of the shared machine's tests: a job of ``tiles`` tiles (one of them for
routing) that runs ``steps``."""

from __future__ import annotations

from qmk.execution.footprint import Footprint, Step


def footprint(tiles: int, *steps: Step, qubits: int = 2) -> Footprint:
    """A job's footprint on ``tiles`` tiles, ``qubits`` logical qubits at distance 9."""
    return Footprint(
        target="test",
        logical_qubits=qubits,
        block="fast",
        data_tiles=tiles - 1,
        routing_tiles=1,
        code_distance=9,
        steps=steps,
    )
