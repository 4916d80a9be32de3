"""The router asks for a job's whole shape (mixed qubits, bond, bond work: a pass over
every gate) only where its choice depends on it (``route``'s ``whole``): on the floor of
the first gates' shape it makes the choice it makes on the whole workload."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from qmk import defaults
from qmk._front import read
from qmk.engines.base import EngineError
from qmk.engines.registry import Workload
from qmk.engines.router import Choice, route
from qmk.execution.executor import SHAPE_SAMPLE, build_plan, load_program, workload
from support.workloads import HEAD


def _workloads(body: str) -> tuple[Workload, Workload]:
    """The floor (its first :data:`SHAPE_SAMPLE` gates' shape) and the whole workload of
    the OpenQASM 2 body ``body``, at 1000 shots, noise off."""
    plan = build_plan(
        load_program(read(HEAD + body)),
        noise=False,
        qubit="qubit_gate_ns_e3",
        default_profile="logical:surface_code(d=9)",
    )
    floor = workload(plan, 1000, samples_only=True, placed=SHAPE_SAMPLE)
    return floor, workload(plan, 1000, samples_only=True)


def _clifford_body(qubits: int, gates: int, *, reach: int, seed: int, among: int = 0) -> str:
    """``gates`` random Clifford gates on ``qubits`` qubits, half of them CNOTs between
    qubits at most ``reach`` apart (among the first ``among``, or all), every qubit
    measured."""
    rng = random.Random(seed)
    lines = [f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    for _ in range(gates):
        if rng.random() < 0.5:
            a = rng.randrange((among or qubits) - 1)
            b = min(qubits - 1, a + rng.randint(1, reach))
            lines.append(f"cx q[{a}],q[{b}];")
        else:
            lines.append(f"{rng.choice(('h', 's', 'x', 'z'))} q[{rng.randrange(qubits)}];")
    lines.append("measure q -> c;")
    return "\n".join(lines)


def _unasked() -> Workload:
    raise AssertionError("the router asked for the whole shape where the floor settles it")


def _alike(floor: Choice, whole: Choice) -> None:
    """The same choice; each candidate the same, but that one too slow at the floor is
    told with its least estimate."""
    assert (floor.engine, floor.reason, floor.precision, floor.batch, floor.options) == (
        whole.engine,
        whole.reason,
        whole.precision,
        whole.batch,
        whole.options,
    )
    for low, exact in zip(floor.candidates, whole.candidates, strict=True):
        if low.reason is not None and "or more, past" in low.reason:
            assert exact.refusal == low.refusal == "too-slow"
            assert replace(low, reason=None) == replace(exact, reason=None)
        else:
            assert low == exact


def test_a_long_range_clifford_plan_routes_alike_without_its_whole_shape() -> None:
    floor, whole = _workloads(_clifford_body(40, 3 * SHAPE_SAMPLE, reach=39, seed=1))
    assert floor.bond is not None and whole.bond is not None and floor.bond <= whole.bond
    choice = route(floor, whole=_unasked)
    _alike(choice, route(whole))
    assert choice.engine == defaults.STABILIZER and choice.batch
    slow = {c.engine for c in choice.candidates if c.reason and "or more, past" in c.reason}
    assert defaults.MPS in slow


def test_where_the_floor_leaves_an_engine_able_the_whole_shape_decides() -> None:
    floor, whole = _workloads(_clifford_body(40, 3 * SHAPE_SAMPLE, reach=1, seed=2, among=3))
    asked: list[Workload] = []

    def once() -> Workload:
        asked.append(whole)
        return whole

    choice = route(floor, whole=once)
    assert asked
    _alike(choice, route(whole))
    assert any(c.engine == defaults.MPS and c.able for c in choice.candidates)
    assert not any(c.reason and "or more, past" in c.reason for c in choice.candidates)


def test_a_named_engine_too_slow_at_the_floor_is_refused_alike() -> None:
    floor, whole = _workloads(_clifford_body(40, 3 * SHAPE_SAMPLE, reach=39, seed=3))
    with pytest.raises(EngineError) as exact:
        route(whole, defaults.MPS)
    with pytest.raises(EngineError) as low:
        route(floor, defaults.MPS, whole=_unasked)
    assert low.value.code == exact.value.code == "QE118"
    assert "s or more, past the most" in str(low.value)
