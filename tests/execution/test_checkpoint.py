"""Resumable runs: a run stopped at any fence, or inside a REV segment, and resumed from
its saved state (through its file format) gives exactly the counts of a run that never
stopped; states of another run, or damaged ones, are coded errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from qmk.engines import EngineError, make_engine
from qmk.execution.checkpoint import ExecutionState, read_state, write_state
from qmk.execution.runs import run
from qmk.execution.trajectories import CHECKPOINT, YIELD, YIELD_NOW, Suspended
from qmk.qvm.asm import assemble
from qmk.qvm.graph import Graph, from_json
from support.exact import assert_distribution
from support.exact_corpus import CASES, Case
from support.resume import StopAt, stopped_then_resumed
from support.workloads import ry_brickwork

SHOTS = 400


def fenced(graph: Graph) -> Graph:
    """``graph`` with a FENCE_EPOCH after every node (the same program, cut into epochs)."""
    data = graph.to_json()
    nodes: list[dict[str, Any]] = []
    for i, node in enumerate(data["program"]["nodes"]):
        nodes += [node, {"id": f"fence_{i}", "op": "FENCE_EPOCH"}]
    data["program"]["nodes"] = nodes
    return from_json(data)


def _stops(c: Case) -> bool:
    control = StopAt(YIELD, epoch=1)
    try:
        run(fenced(c.graph), shots=1, seed=0, engine="statevector", control=control)
    except Suspended:
        return True
    return False


# Programs with a fence to stop at: every fenced case (every fence is a pause point,
# whatever follows it), gates-then-measurements programs included.
DYNAMIC = [c for c in CASES if _stops(c)][:40]


@pytest.mark.parametrize("c", DYNAMIC, ids=lambda c: c.id)
def test_a_run_stopped_at_a_fence_and_resumed_gives_the_uninterrupted_counts(c: Case) -> None:
    graph = fenced(c.graph)
    options = {"shots": SHOTS, "seed": 11, "engine": "statevector", "noise": False}
    whole = run(graph, **options)
    epochs = whole.telemetry.epochs
    for epoch in sorted({1, epochs // 2, epochs - 1} - {0}):
        control = StopAt(YIELD, epoch=epoch)
        resumed = stopped_then_resumed(graph, control, **options)
        assert resumed.counts == whole.counts, (c.id, epoch)
        assert np.array_equal(resumed.bits, whole.bits)
        if control.saved or epoch == 1:
            assert resumed.telemetry.resumed_from_epoch == epoch
            assert resumed.telemetry.preempted_at_epochs == (epoch,)
    assert_distribution(whole.counts, c.expected, SHOTS)


def test_a_wide_run_the_router_samples_in_single_precision_resumes_to_the_same_counts() -> None:
    # 20 qubits, 24 layers (no MPS), a fence half-way: the default route runs it on the
    # statevector in single precision
    graph = ry_brickwork(20, 24, fence_after=12)
    options = {"shots": 300, "seed": 8, "noise": False}
    whole = run(graph, **options)
    assert whole.choice is not None and whole.choice.precision == "single"
    control = StopAt(YIELD, epoch=1)
    resumed = stopped_then_resumed(graph, control, **options)
    assert control.saved and resumed.counts == whole.counts
    assert resumed.choice is not None and resumed.choice.precision == "single"


def test_a_routed_run_resumes_on_the_engine_that_saved_it_where_the_router_now_picks_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # preempted on a worker whose state allowance (64 KiB) holds no 12-qubit statevector
    # in double precision, the router ran it as an MPS; resumed where the router picks
    # otherwise (another worker, or another release's cost model), it goes on as the MPS
    graph = ry_brickwork(12, 8, fence_after=1)
    options = {"shots": 300, "seed": 8, "noise": False}
    monkeypatch.setenv("QMK_MAX_STATE_BYTES", str(2**16))
    whole = run(graph, **options)
    control = StopAt(YIELD, epoch=1)
    with pytest.raises(Suspended):
        run(graph, control=control, **options)
    (state,) = control.saved
    monkeypatch.delenv("QMK_MAX_STATE_BYTES")
    assert state.engine == whole.engine
    assert run(graph, **options).engine != whole.engine, "the router must now pick another"
    resumed = run(graph, resume=state, **options)
    assert resumed.engine == whole.engine
    assert resumed.counts == whole.counts
    assert resumed.telemetry.resumed_from_epoch == 1
    assert resumed.choice is not None and not resumed.choice.named
    assert resumed.telemetry.engine_reason.startswith("resumes where its checkpoint left off")


@pytest.mark.parametrize("c", DYNAMIC[::4], ids=lambda c: c.id)
def test_with_logical_noise_a_resumed_run_injects_the_same_errors(c: Case) -> None:
    graph = fenced(c.graph)
    options = {"shots": SHOTS, "seed": 5, "engine": "statevector", "qubit": "qubit_gate_us_e3"}
    whole = run(graph, profile="logical:surface_code(d=3)", **options)
    resumed = stopped_then_resumed(
        graph, StopAt(YIELD, epoch=2), profile="logical:surface_code(d=3)", **options
    )
    assert resumed.counts == whole.counts
    assert resumed.telemetry.injected_logical_errors == whole.telemetry.injected_logical_errors


@pytest.mark.parametrize("c", DYNAMIC[::3], ids=lambda c: c.id)
@pytest.mark.parametrize("op", [3, 7, 12])
def test_a_run_stopped_inside_a_rev_segment_rolls_it_back_and_resumes_exactly(
    c: Case, op: int
) -> None:
    assert len(DYNAMIC) >= 20
    options = {"shots": SHOTS, "seed": 3, "engine": "statevector", "noise": False}
    whole = run(c.graph, **options)
    control = StopAt(YIELD_NOW, op=op)
    try:
        run(c.graph, control=control, **options)
    except Suspended:
        resumed = run(c.graph, resume=control.saved[0], **options)
        assert resumed.counts == whole.counts
        telemetry = resumed.telemetry
        assert telemetry.rollbacks == (1 if telemetry.rollback_gates else 0)
    else:
        assert control.ops < op  # the run ended before its op-th micro-op


ROTATIONS = assemble(
    """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
m: MEASURE_Z vq:q0, out:m
f: FENCE_EPOCH
r1: APPLY_RY vq:q0, theta=0.7
r2: APPLY_RZ vq:q1, theta=1.3
c: APPLY_CNOT vq:q0, vq:q1
t: APPLY_T vq:q1
r3: APPLY_RX vq:q1, theta=-0.4
f2: FENCE_EPOCH
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_Z vq:q1, out:m1
"""
)


def test_rollback_undoes_each_gate_of_the_segment_and_counts_them() -> None:
    options = {"shots": 2000, "seed": 8, "engine": "statevector", "noise": False}
    whole = run(ROTATIONS, **options)
    # micro-ops simulated one by one: alloc x2, h, meas, fence, ry, rz, cx, t, rx, fence
    # (the measurements after the last fence are the tail, sampled at once): stop
    # before the 8th (cx)
    control = StopAt(YIELD_NOW, op=8)
    resumed = stopped_then_resumed(ROTATIONS, control, **options)
    assert resumed.counts == whole.counts
    assert (resumed.telemetry.rollbacks, resumed.telemetry.rollback_gates) == (1, 2)
    assert control.saved[0].epoch == 1  # the segment began at the fence
    # exact theory: q0 is |1> after H, measure (m=1 half the time), then RY(0.7)
    p0 = {0: math.sin(0.35) ** 2, 1: math.cos(0.35) ** 2}  # P(m0 = 1 | m)
    m1_counts = sum(n for key, n in whole.counts.items() if key[0] == "1")
    assert abs(m1_counts / 2000 - 0.5) < 5 * math.sqrt(0.25 / 2000)
    m0_given_m1 = sum(n for k, n in whole.counts.items() if k[:2] == "11") / m1_counts
    assert abs(m0_given_m1 - p0[1]) < 5 * math.sqrt(p0[1] * (1 - p0[1]) / m1_counts)


@pytest.mark.parametrize("name", ["statevector", "stabilizer"])
def test_an_engine_snapshot_survives_its_file_form(name: str) -> None:
    engine = make_engine(name, seed=4)
    a, b, c = engine.allocate(), engine.allocate(), engine.allocate()
    engine.apply("h", [a])
    engine.apply("cx", [a, b])
    engine.apply("s", [b])
    engine.apply("h", [c])
    engine.collapse(c, 1, "Z")
    saved = engine.snapshot()
    meta, arrays = type(engine).export_snapshot(saved)
    other = make_engine(name, seed=0)
    other.restore(type(engine).import_snapshot(meta, arrays))
    for q in (a, b, c):
        for basis in ("Z", "X", "Y"):
            assert math.isclose(other.probability(q, basis), engine.probability(q, basis))
    assert other.num_qubits == 3


def test_a_checkpoint_that_goes_on_changes_nothing_and_every_saved_state_resumes(
    tmp_path,
) -> None:
    graph = fenced(DYNAMIC[0].graph)
    options = {"shots": SHOTS, "seed": 21, "engine": "statevector", "noise": False}
    whole = run(graph, **options)

    class Every:
        urgent = False

        def __init__(self) -> None:
            self.paths: list[Any] = []

        def at_fence(self, epoch: int) -> str | None:
            return CHECKPOINT if len(self.paths) < epoch else None

        def at_op(self) -> str | None:
            return None

        def after_segment(self) -> str | None:
            return None

        def save(self, state: ExecutionState) -> None:
            path = tmp_path / f"{state.epoch}.qmkstate"
            write_state(path, state)
            self.paths.append(path)

    control = Every()
    checked = run(graph, control=control, **options)
    assert checked.counts == whole.counts and checked.telemetry.checkpoints == len(control.paths)
    # every fence was a stop but those that end the program (nothing but frees after them)
    ops = [node.op for node in graph.nodes]
    last_work = max(i for i, op in enumerate(ops) if op not in ("FENCE_EPOCH", "FREE_LQ"))
    assert len(control.paths) == ops[:last_work].count("FENCE_EPOCH")
    for path in control.paths:
        assert run(graph, resume=path, **options).counts == whole.counts


def test_a_state_of_another_run_or_a_damaged_one_is_refused_with_a_code(tmp_path) -> None:
    graph = fenced(DYNAMIC[0].graph)
    control = StopAt(YIELD, epoch=1)
    with pytest.raises(Suspended):
        run(graph, shots=50, seed=1, noise=False, engine="statevector", control=control)
    (state,) = control.saved
    with pytest.raises(EngineError) as err:
        run(graph, shots=50, seed=2, noise=False, engine="statevector", resume=state)
    assert err.value.code == "QE106"
    path = tmp_path / "state.qmkstate"
    write_state(path, state)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(EngineError) as err:
        read_state(path)
    assert err.value.code == "QE107"
    with pytest.raises(EngineError) as err:
        run(graph, shots=50, seed=1, noise=False, resume=tmp_path / "missing.qmkstate")
    assert err.value.code == "QE107"
