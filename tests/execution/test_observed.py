"""Micro-ops no record can see are not simulated, and their logical errors make no group.

:class:`qmk.execution.trajectories.Observed` drops the unitary micro-ops (and the logical
errors) that cannot reach any measurement, reset, mid-circuit free or channel draw. It
must change no outcome's distribution, and where every gate is seen it must change
nothing at all (the same micro-ops, so the same counts at a seed).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import qmk
import qmk._front as front
from qmk.execution.executor import _pattern_errors, load_program, sample_error_patterns
from qmk.execution.microcode import MicroOp, Ops
from qmk.execution.plan import build_plan
from qmk.execution.trajectories import NoiselessOps, Observed, noiseless_ops, observed, tail_start
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify
from support.frontends import ALPHA, homogeneity_p
from support.micro_ops import node_ops
from support.paths import EXAMPLES

NOISY = "logical:surface_code(d=1)"  # a logical error in most shots of these programs
QUBIT = "qubit_gate_us_e3"


def _program(
    measured: int, idle_gates: int, *, seed: int, measure_u: bool = False, pause: bool = False
) -> str:
    """``measured`` qubits in a random circuit, measured; one more, ``u``, entangled with
    ``q0`` first and then given ``idle_gates`` one-qubit gates, measured last only if
    ``measure_u`` (its gates after the CNOT then reach no record). ``pause``: a fence
    before the measurements (a pause point: the run takes trajectories, not the
    density matrix)."""
    rng = random.Random(seed)
    qs = [f"q{i}" for i in range(measured)]
    lines = [".caps CAP_ALLOC", f"a: ALLOC_LQ {', '.join(f'vq:{q}' for q in [*qs, 'u'])}"]
    if qs:
        lines += ["e0: APPLY_H vq:q0", "e1: APPLY_CNOT vq:q0, vq:u"]
    for k in range(12 if qs else 0):
        kind = rng.choice(["h", "t", "cx"])
        if kind == "cx" and measured > 1:
            a, b = rng.sample(qs, 2)
            lines.append(f"g{k}: APPLY_CNOT vq:{a}, vq:{b}")
        else:
            lines.append(f"g{k}: APPLY_{'T' if kind == 't' else 'H'} vq:{rng.choice(qs)}")
    lines += [f"u{k}: APPLY_{rng.choice(['H', 'T', 'X'])} vq:u" for k in range(idle_gates)]
    lines += ["p: FENCE_EPOCH"] if pause else []
    lines += [f"m{i}: MEASURE_Z vq:{q}, out:m{i}" for i, q in enumerate(qs)]
    if measure_u:
        lines.append("mu: MEASURE_Z vq:u, out:mu")
    lines.append(f"f: FREE_LQ {', '.join(f'vq:{q}' for q in [*qs, 'u'])}")
    return "\n".join(lines)


def _plan(text: str):
    return build_plan(verify(assemble(text)), noise=True, qubit=QUBIT, default_profile=NOISY)


def test_where_every_gate_is_seen_the_spliced_micro_ops_are_the_rebuilt_ones() -> None:
    plan = _plan(_program(3, 5, seed=5, measure_u=True))
    observed = Observed(plan)
    gates = [op for op in node_ops(plan)[0] if op.kind == "gate"]
    assert observed.dropped == 0 and len(gates) == 19
    groups, _ = sample_error_patterns(plan, 400, np.random.default_rng(5))
    assert len(groups) > 20  # many patterns, with several errors at one step among them
    for pattern in groups:
        errors = _pattern_errors(plan, pattern)
        assert list(observed.with_errors(errors)) == list(node_ops(plan, errors)[0])


def test_gates_and_errors_on_a_qubit_nothing_measures_after_are_dropped() -> None:
    plan = _plan(_program(2, 30, seed=3))
    observed = Observed(plan)
    assert observed.dropped == 30  # u's gates after its CNOT with q0; the CNOT stays
    assert [op.gate for op in observed.ops if "u" in op.qubits and op.kind == "gate"] == ["cx"]
    cnot = next(k for k, node in enumerate(plan.steps.nodes) if node.id == "e1")
    on_u = [loc for loc in plan.noise if loc.qubit == "u"]
    later = [loc for loc in on_u if loc.step > cnot]
    assert later and not any(observed.observable(loc.step, loc.before, "u") for loc in later)
    assert observed.observable(cnot, True, "u")  # before the CNOT it reaches q0's record
    last = max(plan.noise, key=lambda loc: loc.step)  # after every measurement
    assert not observed.observable(last.step, last.before, last.qubit)


def test_a_program_that_measures_nothing_is_simulated_once_with_noise_on() -> None:
    text = _program(0, 200, seed=1)
    result = qmk.run(
        assemble(text), shots=500, seed=2, noise=True, qubit=QUBIT, profile=NOISY,
        engine="statevector",
    )  # fmt: skip
    assert result.telemetry.injected_logical_errors > 100
    assert result.telemetry.simulations == 1
    assert result.counts == {"": 500}


def test_dropping_unseen_gates_and_errors_keeps_the_measured_distribution() -> None:
    # u entangled with q0, then 40 gates: unmeasured, they and their errors are dropped;
    # measured last (so nothing is dropped) and marginalised, the other qubits' counts
    # must be the same distribution (chi-square test of homogeneity, seed 7)
    runs = [
        qmk.run(assemble(_program(3, 40, seed=9, measure_u=measure_u, pause=True)), shots=4000,
                seed=7, noise=True, qubit=QUBIT, profile=NOISY, engine="statevector")
        for measure_u in (False, True)
    ]  # fmt: skip
    assert {run.telemetry.mode for run in runs} == {"trajectories"}
    assert runs[0].telemetry.simulations < runs[1].telemetry.simulations
    marginal: dict[str, int] = {}
    for key, n in runs[1].counts.items():
        marginal[key[:-1]] = marginal.get(key[:-1], 0) + n
    assert homogeneity_p(runs[0].counts, marginal) > ALPHA
    assert len(marginal) > 2


def test_a_plans_noiseless_micro_ops_and_observed_are_built_once_and_equal_a_rebuild() -> None:
    plan = _plan(_program(3, 5, seed=7, measure_u=True))
    kept = noiseless_ops(plan)
    fresh, bounds = node_ops(plan)
    assert list(kept.ops) == list(fresh) and list(kept.bounds) == bounds
    assert kept.tail == tail_start(fresh)
    assert noiseless_ops(plan) is kept and observed(plan) is observed(plan)
    assert list(observed(plan).ops) == list(Observed(plan).ops)
    other = _plan(_program(3, 5, seed=7, measure_u=True))  # equal, but another object
    assert noiseless_ops(other) is not kept and list(noiseless_ops(other).ops) == list(fresh)


@pytest.mark.parametrize(
    "name",
    [
        "bell.qvm.json",
        "linked_modules.qvm.json",
        "rev_segment.qvm.json",
        "t_gate_injection.qvm.json",
        "teleport_cond_pauli.qvm.json",
        "teleport_guards.qvm.json",
    ],
)
def test_a_plans_op_columns_are_those_of_its_micro_ops_made_one_by_one(name: str) -> None:
    """A plan's micro-ops are columns gathered off its steps' columns, no object a
    micro-op; they, the steps' bounds and the tail are those of the micro-ops written
    node by node (composites, guards, COND_PAULI, fences, frees)."""
    program = load_program(front.read((EXAMPLES / name).read_text()))
    plan = build_plan(program, noise=True, qubit=QUBIT, default_profile=NOISY)
    fresh, bounds = node_ops(plan)
    made = NoiselessOps(plan)
    assert list(made.ops) == list(fresh) and list(made.bounds) == bounds
    assert made.tail == tail_start(fresh)
    # the columns' qubit reader answers from any micro-op, in any order
    read = made.ops.qubit_reader()
    for i in [len(fresh) - 1, 0, len(fresh) // 2, len(fresh) - 1]:
        assert [made.ops.names[q] for q in read(i)] == list(fresh.row(i).qubits)


def test_the_terminal_suffix_starts_past_the_last_fence_guard_and_foreign_kind() -> None:
    """tail_start on micro-ops built by hand: the suffix holds measurements of distinct
    qubits, frees and gates before them; a reset, a guarded op or a fence ends what
    comes before it, and trailing frees and fences do not hold the tail back."""
    h, meas = MicroOp("gate", ("a",), gate="h"), MicroOp("meas", ("a",), event=0)
    meas_b, free = MicroOp("meas", ("b",), event=1), MicroOp("free", ("a",))
    reset, fence = MicroOp("reset", ("a",)), MicroOp("fence", (), epoch=1)
    assert tail_start(Ops.of([h, meas, meas_b])) == 0
    assert tail_start(Ops.of([h, reset, h, meas, meas_b, free, fence])) == 2
    assert tail_start(Ops.of([h, fence, meas, meas_b])) == 2
    assert tail_start(Ops.of([meas, h, meas])) == 3  # a second measurement of a: none is terminal
    assert tail_start(Ops.of([h, reset])) == 2  # no measurement: the tail is empty
    assert tail_start(Ops.of([free, fence])) == 0
    assert tail_start(Ops.of([])) == 0


def test_the_terminal_suffix_is_found_past_thousands_of_micro_ops_from_either_end() -> None:
    """tail_start looks for the last foreign kind and the last non-ending micro-op a block
    at a time from the end: found where they stand however many micro-ops lie between
    (more than the first block's, and more than the blocks doubled up to them)."""
    h, meas = MicroOp("gate", ("a",), gate="h"), MicroOp("meas", ("a",), event=0)
    free, fence = MicroOp("free", ("a",)), MicroOp("fence", (), epoch=1)
    reset = MicroOp("reset", ("a",))
    for before, after in [(0, 5000), (5000, 10_000), (20_000, 3), (3, 20_000)]:
        assert tail_start(Ops.of([h] * before + [reset] + [h] * after + [meas])) == before + 1
        assert tail_start(Ops.of([h] * before + [fence] + [h] * after + [meas, free])) == before + 1
    assert tail_start(Ops.of([h, meas] + [free] * 9000 + [fence] * 9000)) == 0
    assert tail_start(Ops.of([reset] + [free] * 9000 + [fence])) == 1
