"""Small noisy programs sampled from their exact density matrix (mode ``density-matrix``).

Where a noisy program's measurements all come at its end and the router estimates its
density matrix cheaper than a trajectory per shot an error hits, the statevector engine
runs it once as that matrix and samples every shot from it. Checked against exact theory
(:func:`support.exact.noisy_distribution`) and Aer's density-matrix method on the same
channels, for determinism at a seed, and for leaving noise-off runs as they were.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

import qmk
from qmk.engines.base import EngineError
from qmk.engines.limits import WorkerLimits
from qmk.engines.registry import spec
from qmk.engines.router import route
from qmk.engines.statevector import MAX_BYTES_ENV
from qmk.execution import executor, runs
from qmk.execution.batch import CHUNK_SHOTS
from qmk.execution.parts import merge
from qmk.execution.plan import Plan, build_plan, gate_of
from qmk.execution.trajectories import YIELD, Suspended
from qmk.qec.noise import Depolarizing
from qmk.qvm.asm import assemble
from qmk.qvm.graph import Graph
from support import workloads
from support.exact import assert_distribution, noisy_distribution
from support.resume import StopAt
from support.workloads import graph_of, random_gates

SEED = 20261127
PROFILE = "logical:surface_code(d=3)"
#: A physical rate at which d=3 logical errors strike most shots of these programs.
NOISE = Depolarizing(p=3e-3)


def random_program(n: int, depth: int, seed: int) -> Graph:
    """``depth`` layers of RZ RY RZ on every qubit and a CZ brickwork; every qubit
    measured at the end (event ``m{i}``)."""
    return graph_of(n, random_gates(n, depth, seed))


def noisy_plan(graph: Graph) -> Plan:
    return workloads.noisy_plan(graph, PROFILE, NOISE)


def _run(graph: Graph, shots: int, seed: int, **options: object) -> qmk.RunResult:
    return runs.run(graph, shots=shots, seed=seed, noise=NOISE, profile=PROFILE, **options)


def _digest(counts: object) -> str:
    return hashlib.sha256(json.dumps(counts, sort_keys=True).encode()).hexdigest()[:16]


def test_a_small_noisy_program_is_sampled_from_its_density_matrix_with_its_exact_distribution():
    graph = random_program(5, 5, seed=1)
    plan = noisy_plan(graph)
    assert 0.2 < sum(loc.total for loc in plan.noise) < 1.0  # thousands of trajectories
    shots = 20_000
    result = _run(graph, shots, SEED)
    telemetry = result.telemetry
    assert (result.engine, telemetry.mode, telemetry.noise_sampling) == (
        "statevector",
        "density-matrix",
        "exact",
    )
    assert (telemetry.simulations, telemetry.injected_logical_errors) == (1, 0)
    assert result.choice is not None and result.choice.batch
    assert_distribution(result.counts, noisy_distribution(plan), shots)


def _aer_probabilities(plan: Plan, n: int) -> dict[str, float]:
    """Aer's density-matrix method on the plan's gates with every noise location a Pauli
    channel at its place (keys in QMK's order: m0 first)."""
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import pauli_error

    qc = QuantumCircuit(n)
    here: dict[tuple[int, bool], list[object]] = {}
    for loc in plan.noise:
        here.setdefault((loc.step, loc.before), []).append(loc)

    def noise(step: int, before: bool) -> None:
        for loc in here.get((step, before), ()):
            errors = [("X", loc.px), ("Y", loc.py), ("Z", loc.pz), ("I", 1 - loc.total)]
            qc.append(pauli_error(errors), [int(loc.qubit[1:])])

    for at, (node, kind) in enumerate(zip(plan.steps.nodes, plan.steps.kinds, strict=True)):
        noise(at, True)
        if kind == "gate":
            qubits = [int(q[1:]) for q in node.vqs]
            name, params = gate_of(node)
            getattr(qc, name)(*params, *qubits)
        noise(at, False)
    qc.save_probabilities()
    simulator = AerSimulator(method="density_matrix")
    probs = simulator.run(qc, shots=1).result().data()["probabilities"]
    # Aer's index: qubit 0 the least significant bit
    return {format(i, f"0{n}b")[::-1]: float(p) for i, p in enumerate(probs)}


def test_the_density_matrix_s_counts_fit_aer_s_density_matrix_of_the_same_channels():
    pytest.importorskip("qiskit_aer")
    n = 6
    graph = random_program(n, 6, seed=2)
    plan = noisy_plan(graph)
    aer = _aer_probabilities(plan, n)
    exact = noisy_distribution(plan)
    assert max(abs(aer[k] - exact.get(k, 0.0)) for k in aer) < 1e-9  # one theory, twice
    shots = 20_000
    result = _run(graph, shots, SEED + 1)
    assert result.telemetry.mode == "density-matrix"
    assert_distribution(result.counts, aer, shots)
    tvd = 0.5 * sum(abs(result.counts.get(k, 0) / shots - p) for k, p in aer.items())
    assert tvd < 0.04  # 64 outcomes at 20,000 shots: about 0.02 expected


def test_a_seed_repeats_its_counts_and_another_seed_draws_others():
    graph = random_program(4, 4, seed=3)
    first = _run(graph, 2000, SEED)
    assert first.telemetry.mode == "density-matrix"
    assert _run(graph, 2000, SEED).counts == first.counts
    assert _run(graph, 2000, SEED + 1).counts != first.counts


def test_noise_off_runs_give_the_counts_they_gave_before_density_matrices():
    # taken on 1d16a7e, before this mode: noise off, nothing changes
    graph = random_program(6, 6, seed=3)
    for engine in (None, "statevector"):
        result = qmk.run(graph, shots=2000, seed=SEED, noise=False, engine=engine)
        assert result.telemetry.mode == "trajectories"
        assert _digest(dict(result.counts)) == "e008b1b58f2c0150"


def test_the_parts_of_a_density_matrix_run_merge_to_the_whole_run():
    graph = random_program(4, 4, seed=4)
    whole = _run(graph, 3000, SEED)
    parts = [_run(graph, 3000, SEED, part=(k, 3)) for k in range(3)]
    assert whole.telemetry.mode == "density-matrix"
    assert merge(parts).counts == whole.counts


def _workload(n: int, noise: Depolarizing | None, shots: int = 1024):
    graph = random_program(n, 20, seed=0)
    plan = build_plan(
        executor.load_program(graph),
        noise=True,
        qubit=executor.DEFAULT_QUBIT,
        default_profile=PROFILE,
        noise_model=noise,
    )
    return executor.workload(plan, shots)


def test_the_router_holds_a_density_matrix_where_it_is_cheaper_than_the_trajectories():
    # random-8 with 1.8 errors a shot: ~850 trajectories against one 16-bit matrix;
    # random-12 with 0.3 errors: ~260 small trajectories against a 24-bit one
    many = _workload(8, NOISE)
    assert many.terminal and route(many).batch
    few = _workload(12, None)
    assert few.terminal and not route(few).batch
    assert route(few).engine == "statevector"


def test_the_router_prices_stacked_trajectories_and_takes_them_where_they_are_cheaper():
    # random-12 at 2.65 errors a shot, 1024 shots: ~950 stacked rows of 4096 amplitudes
    # against one 24-bit matrix; the choice says it stacks them
    work = _workload(12, NOISE)
    assert work.terminal and work.stacked
    choice = route(work)
    assert (choice.engine, choice.batch) == ("statevector", False)
    chosen = next(c for c in choice.candidates if c.engine == "statevector")
    assert chosen.stacked and "trajectories stacked" in choice.explain()
    # random-8 at 1.77 errors a shot: a 16-bit matrix is cheaper than ~850 or ~8300 rows
    for shots in (1024, 10_000):
        small = _workload(8, NOISE, shots)
        assert small.stacked and route(small).batch
    # the stacked estimate is rows times passes: it grows with the shots' trajectories
    sv = spec("statevector")
    few, many = _workload(12, NOISE, 1024), _workload(12, NOISE, 4096)
    assert sv.seconds(few, density=False) < sv.seconds(many, density=False)


def test_a_program_that_never_stacks_is_priced_group_by_group():
    # a fence before the measurements keeps the trajectories group by group
    graph = graph_of(4, random_gates(4, 3, seed=4), fence_after=5)
    plan = noisy_plan(graph)
    assert executor.stack_of(plan) is None
    work = executor.workload(plan, 500)
    assert work.trajectories > 1 and not work.stacked
    assert not spec("statevector").runs_stacked(work)


def test_a_program_wider_than_the_stack_is_refused_before_its_micro_ops_are_made():
    # the stack holds 14 qubits; at 15 the workload says it does not stack, and the stack
    # was never compiled (a million-gate Clifford file's run on 100 qubits spent two
    # thirds of its time making the micro-ops of a stack that refused them)
    wide = noisy_plan(random_program(executor.STACK_QUBITS + 1, 2, seed=3))
    work = executor.workload(wide, 1000)
    assert work.trajectories > 1 and not work.stacked
    assert executor.stack_of(wide) is None
    narrow = noisy_plan(random_program(executor.STACK_QUBITS, 2, seed=3))
    assert executor.stack_of(narrow) is not None


def test_the_choice_of_a_density_matrix_does_not_depend_on_the_worker_s_threads():
    work = _workload(8, NOISE)
    for threads in (1, 2, 16):
        limits = replace(WorkerLimits.read(), threads=threads)
        assert route(work, "statevector", limits=limits).batch


def test_where_the_matrix_does_not_fit_the_state_s_memory_the_trajectories_run():
    graph = random_program(6, 4, seed=5)
    # 2**20 bytes hold a 6-qubit state and its copy, not the matrix (a 12-qubit state)
    result = _run(graph, 500, SEED, engine="statevector", engine_options={"max_bytes": 2**15})
    assert (result.telemetry.mode, result.telemetry.noise_sampling) == (
        "trajectories",
        "per-pattern",
    )
    assert _run(graph, 500, SEED, engine="statevector").telemetry.mode == "density-matrix"


def test_explain_says_the_statevector_holds_a_density_matrix():
    result = _run(random_program(4, 4, seed=6), 100, SEED)
    assert result.choice is not None
    assert "as a density matrix" in result.choice.explain()


def test_a_run_stopped_between_chunks_resumes_bit_for_bit_and_never_into_trajectories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a fence after the measurements ends the program (no pause point before them), so
    # the density matrix runs it, in chunks, asked between them; a worker whose memory
    # the matrix does not fit would run trajectories, and refuses the chunks' state
    text = "\n".join(
        [
            ".caps CAP_ALLOC",
            "a: ALLOC_LQ vq:q0, vq:q1, vq:q2",
            "h: APPLY_H vq:q0",
            "t: APPLY_T vq:q0",
            "c: APPLY_CNOT vq:q0, vq:q1",
            "r: APPLY_RY vq:q2, theta=0.7",
            *(f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(3)),
            "e: FENCE_EPOCH",
            "f: FREE_LQ vq:q0, vq:q1, vq:q2",
        ]
    )
    graph = assemble(text + "\n")
    shots = 2 * CHUNK_SHOTS + 10
    whole = _run(graph, shots, SEED)
    assert whole.telemetry.mode == "density-matrix"
    control = StopAt(YIELD, epoch=1)
    with pytest.raises(Suspended):
        _run(graph, shots, SEED, control=control)
    (state,) = control.saved
    assert state.group == 1
    resumed = _run(graph, shots, SEED, resume=state)
    assert resumed.telemetry.mode == "density-matrix"
    assert np.array_equal(resumed.bits, whole.bits)
    # room for a 3-qubit state and its copy, not for the matrix (a 6-qubit state)
    monkeypatch.setenv(MAX_BYTES_ENV, str(2 * 16 * 2**5))
    assert _run(graph, 100, SEED).telemetry.mode == "trajectories"
    with pytest.raises(EngineError) as refused:
        _run(graph, shots, SEED, resume=state)
    assert refused.value.code == "QE106"
