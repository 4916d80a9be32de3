"""The router's gate features of a micro-op list (``executor._gate_features``), against a
reference written gate by gate from their definition on random lists: allocs after
gates, qubits no alloc names, feed-forward gates, mid-circuit operations that end a
fused segment, swaps and Toffolis."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from qmk.engines import fusion
from qmk.engines.registry import GATE_KINDS
from qmk.execution.executor import _LINEAR, FUSION_SAMPLE, _gate_features
from qmk.execution.microcode import MicroOp, Ops

GATES = {"h": 1, "s": 1, "x": 1, "y": 1, "t": 1, "rz": 1, "cx": 2, "cz": 2, "swap": 2, "ccx": 3}
GATES |= {"ccz": 3}
MID = ("meas", "reset", "free", "werner")


def _random_ops(
    rng: random.Random, qubits: int, length: int, late: bool, gates: dict[str, int] = GATES
) -> list[MicroOp]:
    """Half the qubits allocated first, then ``length`` micro-ops of ``gates`` (more
    allocs among them where ``late``): a qubit may meet a gate before its alloc, or have
    none."""
    names = [f"q{i}" for i in range(qubits)]
    ops = [MicroOp("alloc", (q,)) for q in rng.sample(names, qubits // 2)]
    for _ in range(length):
        roll = rng.random()
        if roll < 0.6:
            gate = rng.choice([g for g, arity in gates.items() if arity <= qubits])
            params = (rng.uniform(0, 3),) if gate == "rz" else ()
            ops.append(
                MicroOp("gate", tuple(rng.sample(names, gates[gate])), params=params, gate=gate)
            )
        elif roll < 0.65:
            ops.append(MicroOp("cond", (rng.choice(names),), gate=rng.choice("xz"), inputs=(0,)))
        elif roll < 0.72 and late:
            ops.append(MicroOp("alloc", (rng.choice(names),)))
        elif roll < 0.8:
            kind = rng.choice(MID)
            ops.append(
                MicroOp(kind, tuple(rng.sample(names, min(qubits, 2 if kind == "werner" else 1))))
            )
        else:
            ops.append(MicroOp(rng.choice(("fence", "calc", "pauli")), ()))
    return ops


def _mixes(gate: str, arity: int) -> bool:
    kind = GATE_KINDS.get(gate)
    if arity > 2:
        return kind != "diagonal"
    return kind != "diagonal" and not (kind == "permutation" and gate in _LINEAR)


def _reference(ops: list[MicroOp]) -> dict[str, Any]:
    """The features as their definitions say, one gate at a time."""
    place: dict[str, int] = {}  # allocation order: first in an alloc or a gate
    gates: list[tuple[str, tuple[int, ...]]] = []
    segments: list[list[tuple[int, ...]]] = [[]]
    for op in ops:
        if op.kind in ("alloc", "gate", "cond"):
            for q in op.qubits:
                place.setdefault(q, len(place))
        if op.kind in ("gate", "cond"):
            gates.append((op.gate, tuple(place[q] for q in op.qubits)))
            if len(gates) <= FUSION_SAMPLE:
                segments[-1].append(gates[-1][1])
        elif op.kind in MID:
            segments.append([])
    n = len(place)
    blocks = sum(len(fusion.widths(segment)) for segment in segments if segment)
    seen = min(len(gates), FUSION_SAMPLE)
    if len(gates) > seen:
        blocks = math.ceil(blocks * len(gates) / seen)
    crossings = [0] * max(n - 1, 0)
    work = 0
    for gate, places in gates:
        for cut in range(min(places), max(places)) if len(places) > 1 else ():
            crossings[cut] += 2 if gate == "swap" else 1
            work += 8 ** min(crossings[cut], cut + 1, n - cut - 1)
    kinds = [(GATE_KINDS.get(g), g, len(p)) for g, p in gates]
    return {
        "gates": frozenset(g for g, _ in gates),
        "gate_count": len(gates),
        "wide_gates": sum(1 for _, _, a in kinds if a > 2),
        "diagonal_gates": sum(1 for k, _, a in kinds if a <= 2 and k == "diagonal"),
        "permutation_gates": sum(1 for k, _, a in kinds if a <= 2 and k == "permutation"),
        "linear_gates": sum(
            1 for k, g, a in kinds if a <= 2 and k == "permutation" and g in _LINEAR
        ),
        "blocks": blocks,
        "mixed_qubits": len({q for g, p in gates if _mixes(g, len(p)) for q in p}),
        "bond": max((min(c, i + 1, n - i - 1) for i, c in enumerate(crossings)), default=0),
        "log2_bond_work": math.log2(work) if work else -math.inf,
    }


@pytest.mark.parametrize("seed", range(40))
def test_the_gate_features_are_those_of_a_gate_by_gate_reference(seed: int) -> None:
    rng = random.Random(seed)
    ops = _random_ops(rng, rng.randint(1, 12), rng.choice((0, 1, 5, 30, 200)), seed % 2 == 1)
    got, expected = _gate_features(Ops.of(ops)), _reference(ops)
    assert got.pop("log2_bond_work") == pytest.approx(expected.pop("log2_bond_work"), rel=1e-12)
    assert got == expected


def test_past_the_fusion_sample_the_blocks_are_scaled_and_the_rest_counted_whole() -> None:
    rng = random.Random(7)
    ops = _random_ops(rng, 10, 2 * FUSION_SAMPLE, late=False)
    got, expected = _gate_features(Ops.of(ops)), _reference(ops)
    assert expected["gate_count"] > FUSION_SAMPLE
    assert got.pop("log2_bond_work") == pytest.approx(expected.pop("log2_bond_work"), rel=1e-12)
    assert got == expected


@pytest.mark.parametrize("seed", range(20))
def test_without_swaps_the_bond_work_counted_by_cut_is_the_reference_s(seed: int) -> None:
    """With no swap every crossing adds one to its cut, and the bond work is counted by
    cut, in closed form: the same figure as gate by gate."""
    rng = random.Random(seed)
    gates = {gate: arity for gate, arity in GATES.items() if gate != "swap"}
    ops = _random_ops(rng, rng.randint(2, 40), rng.choice((5, 30, 200, 2000)), False, gates)
    got, expected = _gate_features(Ops.of(ops)), _reference(ops)
    assert got.pop("log2_bond_work") == pytest.approx(expected.pop("log2_bond_work"), rel=1e-12)
    assert got == expected


@pytest.mark.parametrize("seed", range(30))
def test_the_first_gates_shape_is_that_of_the_ops_before_the_next_gate(seed: int) -> None:
    """``placed``: the mixed qubits, bond and bond work are the first gates' (floors of
    the whole's), the rest the whole's."""
    rng = random.Random(seed)
    ops = _random_ops(rng, rng.randint(1, 12), rng.choice((5, 30, 200)), seed % 2 == 1)
    gates = [i for i, op in enumerate(ops) if op.kind in ("gate", "cond")]
    placed = rng.randint(0, len(gates))
    end = gates[placed] if placed < len(gates) else len(ops)
    got, whole, first = _gate_features(Ops.of(ops), placed), _reference(ops), _reference(ops[:end])
    shape = ("mixed_qubits", "bond", "log2_bond_work")
    assert got.pop("log2_bond_work") == pytest.approx(first["log2_bond_work"], rel=1e-12)
    assert first["log2_bond_work"] <= whole["log2_bond_work"]
    assert (got["mixed_qubits"], got["bond"]) == (first["mixed_qubits"], first["bond"])
    assert got["mixed_qubits"] <= whole["mixed_qubits"] and got["bond"] <= whole["bond"]
    rest = {k: v for k, v in got.items() if k not in (*shape, "blocks")}
    assert rest == {k: v for k, v in whole.items() if k not in (*shape, "blocks")}
