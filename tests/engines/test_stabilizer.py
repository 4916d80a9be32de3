"""The stim-backed stabilizer engine: Clifford gates only, exact, seeded, fast sampling."""

from __future__ import annotations

import math
import time
from functools import reduce

import numpy as np
import pytest
import stim

from qmk.engines import Engine, EngineError, make_engine
from qmk.engines.gates import BASES, GATES
from qmk.engines.stabilizer import StabilizerEngine
from qmk.engines.stim_gates import stim_gate

# Each quarter-turn rotation and the Clifford gates (applied left to right) it equals up to
# a global phase.
QUARTER_TURNS = [
    ("rz", 0, ["i"]),
    ("rz", 1, ["s"]),
    ("rz", 2, ["z"]),
    ("rz", 3, ["sdg"]),
    ("rz", -1, ["sdg"]),
    ("rz", 5, ["s"]),
    ("rx", 1, ["h", "s", "h"]),
    ("rx", 2, ["x"]),
    ("rx", 3, ["h", "sdg", "h"]),
    ("rx", -1, ["h", "sdg", "h"]),
    ("ry", 1, ["z", "h"]),
    ("ry", 2, ["y"]),
    ("ry", 3, ["h", "z"]),
    ("ry", 4, ["i"]),
]

# Gates preparing each single-qubit stabilizer state from |0>.
CARDINAL_STATES = [[], ["x"], ["h"], ["x", "h"], ["h", "s"], ["h", "sdg"]]


def bloch(engine: StabilizerEngine, qubit: int) -> list[float]:
    return [engine.probability(qubit, basis) for basis in BASES]


def ghz(engine: StabilizerEngine, n: int) -> list[int]:
    qubits = [engine.allocate() for _ in range(n)]
    engine.apply("h", [qubits[0]])
    for q in qubits[1:]:
        engine.apply("cx", [qubits[0], q])
    return qubits


def random_clifford_state(engine: StabilizerEngine, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    qubits = [engine.allocate() for _ in range(n)]
    for q in qubits[::2]:
        engine.apply("h", [q])
    for _ in range(6 * n):
        if rng.random() < 0.5:
            engine.apply(["h", "s", "x", "sdg"][int(rng.integers(4))], [int(rng.integers(n))])
        else:
            a, b = (int(q) for q in rng.choice(n, size=2, replace=False))
            engine.apply(["cx", "cz", "swap"][int(rng.integers(3))], [qubits[a], qubits[b]])
    return qubits


def exact_joint(engine: StabilizerEngine, qubits: list[int]) -> dict[tuple[int, ...], float]:
    """Z outcome probabilities of ``qubits`` by collapsing one qubit at a time."""
    out: dict[tuple[int, ...], float] = {}

    def visit(prefix: tuple[int, ...], weight: float) -> None:
        if len(prefix) == len(qubits):
            out[prefix] = weight
            return
        q = qubits[len(prefix)]
        p1 = engine.probability(q)
        saved = engine.snapshot()
        for bit, p in ((0, 1 - p1), (1, p1)):
            if p > 0:
                engine.collapse(q, bit)
                visit((*prefix, bit), weight * p)
                engine.restore(saved)

    visit((), 1.0)
    return out


def test_the_stabilizer_engine_is_an_engine_made_by_the_registry():
    engine = make_engine("stabilizer", seed=1)
    assert isinstance(engine, StabilizerEngine)
    assert isinstance(engine, Engine)
    assert engine.name == "stabilizer"


@pytest.mark.parametrize(("gate", "turns", "clifford"), QUARTER_TURNS)
def test_quarter_turn_rotations_act_as_their_clifford_gates(gate, turns, clifford):
    theta = turns * math.pi / 2
    # The table itself is right: same unitary as GATES up to a global phase.
    product = reduce(lambda acc, name: GATES[name].matrix() @ acc, clifford, np.eye(2))
    rotation = GATES[gate].matrix((theta,))
    phase = np.vdot(product.ravel(), rotation.ravel()) / 2
    assert abs(abs(phase) - 1) < 1e-12
    assert np.allclose(rotation, phase * product)

    for prep in CARDINAL_STATES:
        rotated, reference = StabilizerEngine(seed=1), StabilizerEngine(seed=1)
        a, b = rotated.allocate(), reference.allocate()
        for name in prep:
            rotated.apply(name, [a])
            reference.apply(name, [b])
        rotated.apply(gate, [a], [theta])
        for name in clifford:
            reference.apply(name, [b])
        assert bloch(rotated, a) == bloch(reference, b), prep


def test_t_is_refused_with_qe103_pointing_at_the_statevector_engine_and_state_kept():
    engine = StabilizerEngine(seed=2)
    q = engine.allocate()
    engine.apply("h", [q])
    assert not engine.supports("t")
    with pytest.raises(EngineError) as caught:
        engine.apply("t", [q])
    assert caught.value.code == "QE103"
    assert "t" in caught.value.message and "statevector" in caught.value.message
    assert bloch(engine, q) == [0.5, 0.0, 0.5]


@pytest.mark.parametrize(
    ("gate", "params"),
    [("tdg", ()), ("ccx", ()), ("ccz", ()), ("rz", (0.3,)), ("rx", (math.pi / 4,)), ("ry", (1.0,))],
)
def test_non_clifford_gates_are_refused_with_qe103(gate, params):
    engine = StabilizerEngine(seed=3)
    qubits = [engine.allocate() for _ in range(GATES[gate].qubits)]
    assert not engine.supports(gate, params)
    with pytest.raises(EngineError, match=f"QE103 gate-unsupported: .*{gate}"):
        engine.apply(gate, qubits, params)


def test_rotations_within_tolerance_of_a_quarter_turn_are_accepted_and_nan_is_refused():
    engine = StabilizerEngine(seed=4)
    q = engine.allocate()
    engine.apply("rx", [q], [math.pi + 1e-12])
    assert engine.probability(q) == 1.0
    assert not engine.supports("rz", [math.nan])
    with pytest.raises(EngineError, match="QE103"):
        engine.apply("rz", [q], [math.inf])


def test_wrong_arity_and_unknown_qubits_are_misuse():
    engine = StabilizerEngine(seed=5)
    a, b = engine.allocate(), engine.allocate()
    for call in (
        lambda: engine.apply("cx", [a]),
        lambda: engine.apply("cx", [a, a]),
        lambda: engine.apply("h", [b + 1]),
        lambda: engine.probability(a, "W"),
        lambda: engine.collapse(a, 2),
        lambda: engine.apply_pauli_channel(a, 0.7, 0.7, 0.0),
        lambda: engine.sample([a], -1),
        lambda: engine.restore("not a snapshot"),
    ):
        with pytest.raises(EngineError, match="QE105"):
            call()


def test_a_rotation_without_its_angle_is_refused_as_every_engine_refuses_it():
    # supports() refuses it, so apply raises QE103, as every engine's base does
    engine = StabilizerEngine(seed=5)
    a = engine.allocate()
    assert not engine.supports("rz", [])
    with pytest.raises(EngineError, match=r"QE103 gate-unsupported: .*rz"):
        engine.apply("rz", [a])


def test_ghz_1000_sampling_is_all_equal_balanced_and_fast():
    engine = StabilizerEngine(seed=6)
    qubits = ghz(engine, 1000)
    start = time.perf_counter()
    shots = engine.sample(qubits, 100_000)
    elapsed = time.perf_counter() - start
    assert shots.shape == (100_000, 1000) and shots.dtype == np.uint8
    assert (shots == shots[:, :1]).all()
    assert abs(shots[:, 0].mean() - 0.5) < 0.01  # 6 standard deviations
    assert elapsed < 5.0, f"100k shots of GHZ-1000 took {elapsed:.2f}s"
    # The state is untouched: still GHZ.
    assert engine.probability(qubits[500]) == 0.5
    outcome = engine.measure(qubits[0])
    assert {engine.probability(q) for q in qubits[1:]} == {float(outcome)}


# Few qubits of many and many of few take different paths through the tableau.
@pytest.mark.parametrize(("width", "picked"), [(10, (9, 2, 5, 0, 7, 3)), (60, (41, 3, 17, 59))])
def test_sample_of_a_random_clifford_state_matches_its_exact_distribution(width, picked):
    engine = StabilizerEngine(seed=7)
    qubits = random_clifford_state(engine, width, seed=70)
    chosen = [qubits[k] for k in picked]
    exact = exact_joint(engine, chosen)
    shots = engine.sample(chosen, 20_000)
    rows, counts = np.unique(shots, axis=0, return_counts=True)
    observed = {
        tuple(int(b) for b in row): count / len(shots)
        for row, count in zip(rows, counts, strict=True)
    }
    assert set(observed) <= set(exact)  # never an impossible outcome
    tvd = 0.5 * sum(abs(observed.get(x, 0.0) - p) for x, p in exact.items())
    # E[TVD] <= sqrt(K/N)/2 for K outcomes; plus McDiarmid's sqrt(ln(1e9)/2N).
    assert tvd < 0.5 * math.sqrt(len(exact) / 20_000) + math.sqrt(math.log(1e9) / 40_000)


def test_sample_of_never_touched_and_repeated_qubits():
    engine = StabilizerEngine(seed=8)
    qubits = [engine.allocate() for _ in range(6)]
    engine.apply("x", [qubits[1]])
    engine.apply("h", [qubits[0]])
    shots = engine.sample([qubits[5], qubits[1], qubits[0], qubits[0]], 500)
    assert (shots[:, 0] == 0).all() and (shots[:, 1] == 1).all()
    assert (shots[:, 2] == shots[:, 3]).all() and 0 < shots[:, 2].mean() < 1


def test_sample_agrees_with_plain_stim_on_the_ghz_circuit():
    n, shots = 200, 20_000
    circuit = stim.Circuit()
    circuit.append("H", [0])
    circuit.append("CX", [t for k in range(1, n) for t in (0, k)])
    circuit.append("M", range(n))
    plain = circuit.compile_sampler(seed=9).sample(shots)
    engine = StabilizerEngine(seed=9)
    got = engine.sample(ghz(engine, n), shots)
    assert (plain == plain[:, :1]).all() and (got == got[:, :1]).all()
    # Both means are within 0.02 of 1/2 (5.6 standard deviations).
    assert abs(plain[:, 0].mean() - got[:, 0].mean()) < 0.04


def test_empty_samples_have_the_requested_shape():
    engine = StabilizerEngine(seed=9)
    q = engine.allocate()
    assert engine.sample([], 5).shape == (5, 0)
    assert engine.sample([q], 0).shape == (0, 1)


def test_capacity_is_enforced_and_freed_indices_are_reused_lowest_first():
    engine = StabilizerEngine(seed=10, max_qubits=3)
    assert engine.max_qubits == 3
    a, _, c = (engine.allocate() for _ in range(3))
    with pytest.raises(EngineError, match="QE102 engine-capacity"):
        engine.allocate()
    engine.apply("x", [c])
    engine.free(c)
    engine.free(a)
    assert engine.num_qubits == 1
    assert engine.allocate() == a
    reused = engine.allocate()
    assert reused == c and engine.probability(reused) == 0.0


def test_free_of_an_entangled_qubit_leaves_a_fresh_zero_for_reuse():
    engine = StabilizerEngine(seed=11)
    a, b = ghz(engine, 2)
    engine.free(a)
    assert engine.probability(b) in (0.0, 1.0)  # the partner collapsed
    fresh = engine.allocate()
    assert fresh == a and bloch(engine, fresh) == [0.0, 0.5, 0.5]


def test_seeded_engines_repeat_measurements_channels_and_samples():
    def record(seed: int) -> list[object]:
        engine = StabilizerEngine(seed=seed)
        qubits = random_clifford_state(engine, 6, seed=12)
        out: list[object] = [engine.sample(qubits, 50).tolist()]
        for q in qubits:
            out.append(engine.apply_pauli_channel(q, 0.25, 0.25, 0.25))
            out.append(engine.measure(q, BASES[q % 3]))
        return out

    assert record(12) == record(12)
    assert record(12) != record(13)


def test_an_unseeded_engine_draws_its_seed_and_can_be_replayed():
    engine = StabilizerEngine()
    again = StabilizerEngine(seed=engine.seed)
    a, b = ghz(engine, 4), ghz(again, 4)
    assert engine.sample(a, 64).tolist() == again.sample(b, 64).tolist()


def test_collapse_onto_an_impossible_outcome_raises_qe104_and_keeps_the_state():
    engine = StabilizerEngine(seed=14)
    a, b = ghz(engine, 2)
    engine.collapse(a, 1)
    with pytest.raises(EngineError, match="QE104 outcome-impossible"):
        engine.collapse(b, 0)
    assert engine.probability(b) == 1.0
    engine.apply("h", [b])
    with pytest.raises(EngineError, match="QE104"):
        engine.collapse(b, 0, "X")
    assert engine.probability(b, "X") == 1.0


def test_y_basis_measurement_outcome_zero_is_plus_i():
    engine = StabilizerEngine(seed=15)
    q = engine.allocate()
    engine.apply("h", [q])
    engine.apply("s", [q])
    assert [engine.measure(q, "Y") for _ in range(5)] == [0] * 5
    assert bloch(engine, q) == [0.5, 0.5, 0.0]


def test_snapshot_is_independent_of_later_changes_and_restores_twice():
    engine = StabilizerEngine(seed=16)
    a, b = ghz(engine, 2)
    saved = engine.snapshot()
    first = [engine.measure(a), engine.sample([a, b], 8).tolist()]
    engine.free(b)
    engine.allocate()
    engine.allocate()
    for _ in range(2):
        engine.restore(saved)
        assert engine.num_qubits == 2 and engine.probability(b) == 0.5
        assert [engine.measure(a), engine.sample([a, b], 8).tolist()] == first


def _stim_cases() -> list[tuple[str, tuple[float, ...]]]:
    """Every gate of the table: fixed ones bare, rotations at each quarter turn and off them."""
    cases: list[tuple[str, tuple[float, ...]]] = []
    for name, gate in GATES.items():
        if not gate.params:
            cases.append((name, ()))
        elif len(gate.params) == 1:
            cases += [(name, (k * math.pi / 2,)) for k in range(-1, 5)]
            cases += [(name, (0.3,)), (name, (math.nan,))]
    return cases


@pytest.mark.parametrize(("gate", "params"), _stim_cases())
def test_the_stim_name_of_each_gate_is_its_unitary_up_to_phase_and_what_the_engine_accepts(
    gate, params
):
    name = stim_gate(gate, params)
    assert (name is not None) == StabilizerEngine(seed=0).supports(gate, params)
    if name is None:
        return
    matrix = GATES[gate].matrix(params)
    expected = stim.Tableau.from_unitary_matrix(matrix, endian="big")
    assert stim.Tableau.from_named_gate(name) == expected, (gate, params, name)
