"""The statevector engine against a dense reference, and its contract one clause at a time.

The reference builds each gate's full ``2**n`` unitary with ``np.kron`` (gate qubits first,
then the rest) and a permutation to the real wire order. Wire ``w`` is the engine qubit
``qs[w]``, wire 0 the most significant bit, the order ``state_vector(qs)`` uses. All
randomness is seeded; statistical checks state their seeds and bounds.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from qmk.engines import Engine, make_engine
from qmk.engines.base import EngineError
from qmk.engines.gates import GATES
from qmk.engines.statevector import (
    DEFAULT_MAX_BYTES,
    MAX_BYTES_ENV,
    StatevectorEngine,
    StatevectorSnapshot,
)

ALL_GATES = sorted(GATES)
PAULI = {name: GATES[name].matrix() for name in ("x", "y", "z")}

# --------------------------------------------------------------------------- the reference


def full_unitary(matrix: np.ndarray, wires: list[int], n: int) -> np.ndarray:
    """The ``2**n`` unitary of ``matrix`` acting on ``wires`` (gate qubit 0 on ``wires[0]``)."""
    rest = [w for w in range(n) if w not in wires]
    big = np.kron(matrix, np.eye(2 ** len(rest)))  # big's wire i is order[i]
    order = list(wires) + rest
    perm = np.zeros((2**n, 2**n))
    for index in range(2**n):
        actual = 0
        for i, wire in enumerate(order):
            actual |= ((index >> (n - 1 - i)) & 1) << (n - 1 - wire)
        perm[actual, index] = 1
    return perm @ big @ perm.T


def project(state: np.ndarray, wire: int, outcome: int, n: int) -> np.ndarray:
    """``state`` projected onto Z ``outcome`` of ``wire`` and renormalised."""
    keep = np.array([((i >> (n - 1 - wire)) & 1) == outcome for i in range(2**n)])
    out = np.where(keep, state, 0)
    return out / np.linalg.norm(out)


def random_gate(rng: np.random.Generator, n: int) -> tuple[str, list[int], list[float]]:
    name = ALL_GATES[rng.integers(len(ALL_GATES))]
    spec = GATES[name]
    wires = [int(w) for w in rng.permutation(n)[: spec.qubits]]
    params = [float(rng.uniform(-2 * math.pi, 2 * math.pi)) for _ in spec.params]
    return name, wires, params


def assert_same_state(got: np.ndarray, want: np.ndarray, atol: float = 1e-10) -> None:
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)


def fresh(n: int, **options) -> tuple[StatevectorEngine, list[int]]:
    engine = StatevectorEngine(**options)
    return engine, [engine.allocate() for _ in range(n)]


def scramble(engine: StatevectorEngine, qs: list[int], seed: int, depth: int = 12) -> None:
    """A seeded random entangled state: layers of rotations and a ring of cx."""
    rng = np.random.default_rng(seed)
    for _ in range(depth // 3):
        for q in qs:
            for gate in ("rx", "ry", "rz"):
                engine.apply(gate, [q], [float(rng.uniform(0, 2 * math.pi))])
        for a, b in zip(qs, qs[1:] + qs[:1], strict=True):
            engine.apply("cx", [a, b])


# --------------------------------------------------------------------------- gates


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("gate", ALL_GATES)
def test_every_gate_acts_as_its_matrix_on_random_states(gate: str, fuse: bool):
    n = 4
    rng = np.random.default_rng(100 + ALL_GATES.index(gate))
    for trial in range(4):
        engine, qs = fresh(n, seed=trial, fuse=fuse)
        scramble(engine, qs, seed=trial)
        before = engine.state_vector(qs)
        spec = GATES[gate]
        wires = [int(w) for w in rng.permutation(n)[: spec.qubits]]
        params = [float(rng.uniform(-4, 4)) for _ in spec.params]
        engine.apply(gate, [qs[w] for w in wires], params)
        want = full_unitary(spec.matrix(params), wires, n) @ before
        assert_same_state(engine.state_vector(qs), want)


@pytest.mark.parametrize("gate", ALL_GATES)
def test_every_gate_acts_as_its_matrix_on_basis_states_and_copies(gate: str):
    # Classical qubits and GHZ-style copies take the engine's bookkeeping paths.
    n = 4
    spec = GATES[gate]
    params = [0.7] * len(spec.params)
    for basis in range(2**n):
        for ghz in (False, True):
            engine, qs = fresh(n, seed=basis)
            for w in range(n):
                if basis >> (n - 1 - w) & 1:
                    engine.apply("x", [qs[w]])
            if ghz:
                engine.apply("h", [qs[0]])
                engine.apply("cx", [qs[0], qs[2]])
                engine.apply("cx", [qs[2], qs[3]])
            before = engine.state_vector(qs)
            wires = list(range(n))[-spec.qubits :][::-1]
            engine.apply(gate, [qs[w] for w in wires], params)
            want = full_unitary(spec.matrix(params), wires, n) @ before
            assert_same_state(engine.state_vector(qs), want)


@pytest.mark.parametrize("seed", range(40))
def test_random_circuits_match_the_dense_reference_at_every_step(seed: int):
    rng = np.random.default_rng(seed)
    n = 5
    engine, qs = fresh(n, seed=seed)
    want = np.zeros(2**n, dtype=complex)
    want[0] = 1
    for step in range(80):
        name, wires, params = random_gate(rng, n)
        engine.apply(name, [qs[w] for w in wires], params)
        want = full_unitary(GATES[name].matrix(params), wires, n) @ want
        if step % 8 == 7:
            assert_same_state(engine.state_vector(qs), want)
    assert_same_state(engine.state_vector(qs), want)


@pytest.mark.parametrize("seed", range(25))
def test_random_programs_with_measurements_match_a_projecting_reference(seed: int):
    rng = np.random.default_rng(1000 + seed)
    n = 5
    engine, qs = fresh(n, seed=seed)
    want = np.zeros(2**n, dtype=complex)
    want[0] = 1
    for _ in range(120):
        roll = rng.random()
        if roll < 0.1:
            wire = int(rng.integers(n))
            basis = "ZXY"[rng.integers(3)]
            before, after = {"Z": ([], []), "X": (["h"], ["h"]), "Y": (["sdg", "h"], ["h", "s"])}[
                basis
            ]
            outcome = engine.measure(qs[wire], basis)
            for gate in before:
                want = full_unitary(GATES[gate].matrix(), [wire], n) @ want
            want = project(want, wire, outcome, n)
            for gate in after:
                want = full_unitary(GATES[gate].matrix(), [wire], n) @ want
        elif roll < 0.14:
            wire = int(rng.integers(n))
            outcome = engine.measure(qs[wire])
            engine.reset(qs[wire])
            want = project(want, wire, outcome, n)
            if outcome:
                want = full_unitary(PAULI["x"], [wire], n) @ want
        else:
            name, wires, params = random_gate(rng, n)
            engine.apply(name, [qs[w] for w in wires], params)
            want = full_unitary(GATES[name].matrix(params), wires, n) @ want
        got = engine.state_vector(qs)
        phase = np.vdot(got, want)  # measurement renormalisation may differ by a phase
        assert abs(abs(phase) - 1) < 1e-9
    assert_same_state(engine.state_vector(qs), want)


@pytest.mark.parametrize("seed", range(10))
def test_fusion_on_and_off_give_the_same_states_and_measurement_outcomes(seed: int):
    rng = np.random.default_rng(seed)
    n = 6
    fused, qa = fresh(n, seed=seed, fuse=True)
    plain, qb = fresh(n, seed=seed, fuse=False)
    outcomes = {True: [], False: []}
    for _ in range(150):
        if rng.random() < 0.05:
            wire = int(rng.integers(n))
            outcomes[True].append(fused.measure(qa[wire], "X"))
            outcomes[False].append(plain.measure(qb[wire], "X"))
        else:
            name, wires, params = random_gate(rng, n)
            fused.apply(name, [qa[w] for w in wires], params)
            plain.apply(name, [qb[w] for w in wires], params)
    assert outcomes[True] == outcomes[False]
    assert_same_state(fused.state_vector(qa), plain.state_vector(qb))
    np.testing.assert_allclose(fused.probabilities(qa), plain.probabilities(qb), atol=1e-12)


def test_controlled_phases_made_of_cx_rz_cx_stay_exact_on_ten_qubits():
    # A QFT written with cx rz cx controlled phases, on a random input state.
    n = 10
    engine, qs = fresh(n, seed=3)
    scramble(engine, qs, seed=3, depth=6)
    before = engine.state_vector(qs)
    for j in range(n):
        engine.apply("h", [qs[j]])
        for k in range(j + 1, n):
            theta = math.pi / 2 ** (k - j)
            engine.apply("rz", [qs[k]], [theta / 2])
            engine.apply("cx", [qs[k], qs[j]])
            engine.apply("rz", [qs[j]], [-theta / 2])
            engine.apply("cx", [qs[k], qs[j]])
            engine.apply("rz", [qs[j]], [theta / 2])
    for j in range(n // 2):
        engine.apply("swap", [qs[j], qs[n - 1 - j]])
    got = engine.state_vector(qs)
    # The QFT up to a global phase: F[y, x] = exp(2 pi i x y / N) / sqrt(N) in this order.
    size = 2**n
    grid = np.arange(size)
    want = np.exp(2j * np.pi * np.outer(grid, grid) / size) / math.sqrt(size) @ before
    phase = np.vdot(want, got)
    assert abs(abs(phase) - 1) < 1e-9
    assert_same_state(got, want * phase)


def count_swaps(engine: StatevectorEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the engine's slice swaps (its passes for cx gates) from now on."""
    calls = [0]
    original = engine._swap_slices

    def counted(*args):
        calls[0] += 1
        return original(*args)

    monkeypatch.setattr(engine, "_swap_slices", counted)
    return calls


def test_cx_rz_cx_on_entangled_qubits_costs_no_pass_over_the_state(monkeypatch):
    engine, qs = fresh(8, seed=1)
    scramble(engine, qs, seed=1, depth=3)
    engine.probabilities(qs)  # settle the scramble
    swaps = count_swaps(engine, monkeypatch)
    for a, b in itertools.combinations(qs, 2):
        engine.apply("cx", [a, b])
        engine.apply("rz", [b], [0.3])
        engine.apply("cx", [a, b])
    engine.probabilities(qs)
    assert swaps[0] == 0


def test_pending_cx_gates_cost_at_most_one_pass_each_when_undone(monkeypatch):
    # ry layers between cx ladders: every ry needs its qubit's own variable back.
    for seed in range(3):
        rng = np.random.default_rng(seed)
        engine, qs = fresh(10, seed=seed)
        for q in qs:
            engine.apply("h", [q])
        engine.probabilities(qs)
        swaps = count_swaps(engine, monkeypatch)
        gates = 0
        for _ in range(4):
            for _ in range(12):
                a, b = (int(x) for x in rng.choice(10, 2, replace=False))
                engine.apply("cx", [qs[a], qs[b]])
                gates += 1
            for q in qs:
                engine.apply("ry", [q], [float(rng.uniform(0, 3))])
            engine.probabilities(qs)
        assert 0 < swaps[0] <= gates


def test_complex64_engines_agree_with_complex128_to_single_precision():
    rng = np.random.default_rng(8)
    single, qa = fresh(5, seed=8, dtype=np.complex64)
    double, qb = fresh(5, seed=8, dtype="complex128")
    assert single.dtype == np.complex64 and double.dtype == np.complex128
    for _ in range(100):
        name, wires, params = random_gate(rng, 5)
        single.apply(name, [qa[w] for w in wires], params)
        double.apply(name, [qb[w] for w in wires], params)
    got = single.state_vector(qa)
    assert got.dtype == np.complex64
    assert_same_state(got, double.state_vector(qb), atol=2e-5)
    assert StatevectorEngine(dtype="complex64").max_qubits == StatevectorEngine().max_qubits + 1


@pytest.mark.parametrize("dtype", [np.float64, "complex256", "c8", complex, None])
def test_dtypes_other_than_complex64_and_complex128_are_refused(dtype):
    with pytest.raises(EngineError) as info:
        StatevectorEngine(dtype=dtype)
    assert info.value.name == "engine-misuse"


# --------------------------------------------------------------------------- memory guard


def test_the_memory_guard_counts_the_state_and_one_working_copy():
    assert DEFAULT_MAX_BYTES == 8 * 2**30
    assert StatevectorEngine().max_qubits == 28  # 2**28 * 16 B * 2 = 8 GiB
    assert StatevectorEngine(max_bytes=2**20).max_qubits == 15
    assert StatevectorEngine(max_bytes=2**20 - 1).max_qubits == 14
    assert StatevectorEngine(max_bytes=2**20, dtype=np.complex64).max_qubits == 16
    assert StatevectorEngine(max_bytes=31).max_qubits == 0


def test_allocate_past_the_memory_guard_refuses_before_allocating():
    engine = StatevectorEngine(seed=0, max_bytes=1024)  # 32 amplitudes x 2 copies
    qs = [engine.allocate() for _ in range(5)]
    engine.apply("h", [qs[0]])
    for a, b in itertools.pairwise(qs):
        engine.apply("h", [b])
        engine.apply("cx", [a, b])
    before = engine.state_vector(qs)
    with pytest.raises(EngineError) as info:
        engine.allocate()
    error = info.value
    assert (error.code, error.name) == ("QE102", "engine-capacity")
    assert "a statevector of 6 qubits needs 2 KiB (complex128" in error.message
    assert "the limit is 1 KiB" in error.message and MAX_BYTES_ENV in error.message
    assert error.details == {
        "qubits": 6,
        "needed_bytes": 2048,
        "max_bytes": 1024,
        "dtype": "complex128",
    }
    assert engine.num_qubits == 5 and engine.tensor_qubits == 5
    assert_same_state(engine.state_vector(qs), before)
    engine.free(qs[0])
    assert engine.allocate() == qs[0]  # room again, and the freed index is reused


def test_the_memory_limit_comes_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv(MAX_BYTES_ENV, str(2**16))
    assert StatevectorEngine().max_qubits == 11
    assert StatevectorEngine(max_bytes=2**20).max_qubits == 15  # an argument wins
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(EngineError, match=MAX_BYTES_ENV) as info:
        StatevectorEngine()
    assert info.value.name == "engine-misuse"


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "1024"])
def test_max_bytes_must_be_a_positive_integer(bad):
    with pytest.raises(EngineError) as info:
        StatevectorEngine(max_bytes=bad)
    assert info.value.name == "engine-misuse"


# --------------------------------------------------------------------------- measurement


def test_measuring_plus_in_z_gives_fair_coin_statistics():
    # seed 11; 4000 fresh |+> states; 1 - P(|k - 2000| > 5 sigma) is about 1 - 6e-7.
    engine = StatevectorEngine(seed=11)
    ones = 0
    for _ in range(4000):
        q = engine.allocate()
        engine.apply("h", [q])
        ones += engine.measure(q)
        engine.free(q)
    assert abs(ones - 2000) < 5 * math.sqrt(4000 * 0.25)


def test_measurement_statistics_follow_the_born_rule_in_every_basis():
    # seed 12; ry(1.1) then rz(0.6); 3000 shots per basis, 5 sigma bounds.
    engine = StatevectorEngine(seed=12)
    for basis in ("Z", "X", "Y"):
        ones = 0
        expected = None
        for _ in range(3000):
            q = engine.allocate()
            engine.apply("ry", [q], [1.1])
            engine.apply("rz", [q], [0.6])
            p = engine.probability(q, basis)
            expected = p if expected is None else expected
            assert p == pytest.approx(expected, abs=1e-12)
            ones += engine.measure(q, basis)
            engine.free(q)
        bloch = {
            "Z": math.cos(1.1),
            "X": math.sin(1.1) * math.cos(0.6),
            "Y": math.sin(1.1) * math.sin(0.6),
        }
        assert expected == pytest.approx((1 - bloch[basis]) / 2, abs=1e-12)
        sigma = math.sqrt(3000 * expected * (1 - expected))
        assert abs(ones - 3000 * expected) < 5 * sigma


@pytest.mark.parametrize(
    ("basis", "zero", "one"),
    [
        ("Z", [1, 0], [0, 1]),
        ("X", [1, 1], [1, -1]),
        ("Y", [1, 1j], [1, -1j]),
    ],
)
def test_measurement_leaves_the_basis_eigenstate_of_its_outcome(basis, zero, one):
    eigen = [np.array(zero) / np.linalg.norm(zero), np.array(one) / np.linalg.norm(one)]
    for seed in range(6):
        engine, (q,) = fresh(1, seed=seed)
        engine.apply("ry", [q], [0.9 + seed])
        engine.apply("rz", [q], [0.4 * seed])
        outcome = engine.measure(q, basis)
        state = engine.state_vector([q])
        assert abs(abs(np.vdot(eigen[outcome], state)) - 1) < 1e-12
        assert engine.probability(q, basis) == pytest.approx(float(outcome), abs=1e-12)
        assert engine.measure(q, basis) == outcome  # repeatable


def test_eigenstates_measure_deterministically_in_their_own_basis():
    engine, (plus, minus, plus_i, minus_i, one) = fresh(5, seed=0)
    engine.apply("h", [plus])
    engine.apply("x", [minus])
    engine.apply("h", [minus])
    engine.apply("h", [plus_i])
    engine.apply("s", [plus_i])
    engine.apply("h", [minus_i])
    engine.apply("sdg", [minus_i])
    engine.apply("x", [one])
    cases = [(plus, "X", 0), (minus, "X", 1), (plus_i, "Y", 0), (minus_i, "Y", 1), (one, "Z", 1)]
    for q, basis, outcome in cases:
        assert engine.probability(q, basis) == pytest.approx(outcome, abs=1e-12)
        for _ in range(5):
            assert engine.measure(q, basis) == outcome


def test_collapse_projects_and_renormalises_in_each_basis():
    engine, (a, b) = fresh(2, seed=0)
    engine.apply("h", [a])
    engine.apply("cx", [a, b])
    engine.collapse(a, 1)
    assert_same_state(engine.state_vector([a, b]), np.array([0, 0, 0, 1]))
    engine.collapse(b, 0, "X")
    plus_minus = np.array([0, 0, 1, 1]) / math.sqrt(2)
    assert_same_state(engine.state_vector([a, b]), plus_minus)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_collapse_onto_an_impossible_outcome_is_refused_and_changes_nothing(fuse: bool):
    engine, (a, b, c, d) = fresh(4, seed=0, fuse=fuse)
    engine.apply("h", [a])
    engine.apply("cx", [a, b])  # a Bell pair
    engine.apply("h", [c])  # |+>
    engine.apply("h", [d])
    engine.apply("s", [d])  # |+i>
    engine.collapse(a, 0)  # possible: b is now |0>
    before = engine.state_vector([a, b, c, d])
    rng_before = engine.snapshot().rng_state
    for qubit, outcome, basis in [(b, 1, "Z"), (a, 1, "Z"), (c, 1, "X"), (d, 1, "Y")]:
        with pytest.raises(EngineError) as info:
            engine.collapse(qubit, outcome, basis)
        assert (info.value.code, info.value.name) == ("QE104", "outcome-impossible")
        assert info.value.details == {"qubit": qubit, "outcome": outcome, "basis": basis}
        assert_same_state(engine.state_vector([a, b, c, d]), before)
    assert engine.snapshot().rng_state == rng_before
    engine.collapse(c, 0, "X")  # the possible outcomes still work
    engine.collapse(d, 0, "Y")
    assert_same_state(engine.state_vector([a, b, c, d]), before)


def test_collapse_refuses_a_bad_outcome_or_basis():
    engine, (q,) = fresh(1, seed=0)
    for outcome, basis in [(2, "Z"), (True, "Z"), (0, "W"), (0, "z")]:
        with pytest.raises(EngineError) as info:
            engine.collapse(q, outcome, basis)
        assert info.value.name == "engine-misuse"


def test_reset_returns_a_qubit_to_zero_and_keeps_its_partner_consistent():
    for seed in range(8):
        engine, (a, b) = fresh(2, seed=seed)
        engine.apply("h", [a])
        engine.apply("cx", [a, b])
        engine.reset(a)
        assert engine.probability(a) == 0.0
        state = engine.state_vector([a, b])
        assert abs(abs(state[0]) + abs(state[1]) - 1) < 1e-12  # b is |0> or |1>


def test_pauli_channel_applies_what_it_reports_with_the_given_probabilities():
    # seed 21; 6000 draws, 5 sigma bounds per Pauli.
    engine, (q,) = fresh(1, seed=21)
    engine.apply("ry", [q], [0.8])
    engine.apply("rz", [q], [0.3])
    counts = {"I": 0, "X": 0, "Y": 0, "Z": 0}
    probs = {"X": 0.1, "Y": 0.2, "Z": 0.3}
    for _ in range(6000):
        before = engine.state_vector([q])
        pauli = engine.apply_pauli_channel(q, probs["X"], probs["Y"], probs["Z"])
        counts[pauli] += 1
        want = before if pauli == "I" else PAULI[pauli.lower()] @ before
        assert_same_state(engine.state_vector([q]), want)
    probs["I"] = 0.4
    for pauli, p in probs.items():
        assert abs(counts[pauli] - 6000 * p) < 5 * math.sqrt(6000 * p * (1 - p))


@pytest.mark.parametrize("probs", [(-0.1, 0, 0), (0.5, 0.5, 0.5), (float("nan"), 0, 0)])
def test_pauli_channel_refuses_probabilities_that_are_not_a_distribution(probs):
    engine, (q,) = fresh(1, seed=0)
    with pytest.raises(EngineError) as info:
        engine.apply_pauli_channel(q, *probs)
    assert info.value.name == "engine-misuse"


# --------------------------------------------------------------------------- free


def test_freeing_half_a_bell_pair_leaves_the_other_half_in_a_basis_state():
    seen = set()
    for seed in range(20):
        engine, (a, b) = fresh(2, seed=seed)
        engine.apply("h", [a])
        engine.apply("cx", [a, b])
        engine.free(a)
        assert engine.num_qubits == 1
        state = engine.state_vector([b])
        value = int(abs(state[1]) > 0.5)
        assert_same_state(np.abs(state), np.eye(2)[value])
        seen.add(value)
    assert seen == {0, 1}


def test_free_shrinks_the_tensor_and_keeps_the_others_reduced_state():
    engine, qs = fresh(6, seed=4)
    scramble(engine, qs[:3], seed=4)  # qs[:3] entangled, qs[3:] a product with them
    a, b, c = qs[3:]
    engine.apply("h", [a])
    engine.apply("cx", [a, b])
    engine.apply("h", [b])
    engine.apply("ry", [c], [0.4])
    engine.apply("cz", [c, a])
    engine.apply("cz", [b, c])
    keep = qs[:3]
    before = engine.state_vector(keep + qs[3:]).reshape(8, 8)
    reduced = before @ before.conj().T  # the first three qubits' density matrix
    assert engine.tensor_qubits == 6
    for q in qs[3:]:
        engine.free(q)
    assert engine.num_qubits == 3 and engine.tensor_qubits == 3
    after = engine.state_vector(keep)
    np.testing.assert_allclose(np.outer(after, after.conj()), reduced, atol=1e-10)
    assert [engine.allocate() for _ in range(3)] == qs[3:]  # indices reused, lowest first


def test_freed_and_unknown_qubits_are_refused_everywhere():
    engine, (a, b) = fresh(2, seed=0)
    engine.free(b)
    calls = [
        lambda: engine.apply("h", [b]),
        lambda: engine.apply("cx", [a, 7]),
        lambda: engine.measure(b),
        lambda: engine.probability(-1),
        lambda: engine.collapse(b, 0),
        lambda: engine.reset(b),
        lambda: engine.free(b),
        lambda: engine.apply_pauli_channel(b, 0, 0, 0),
        lambda: engine.sample([a, b], 3),
        lambda: engine.apply("x", [True]),
        lambda: engine.apply("x", ["0"]),
    ]
    for call in calls:
        with pytest.raises(EngineError) as info:
            call()
        assert (info.value.code, info.value.name) == ("QE105", "engine-misuse")


# --------------------------------------------------------------------------- apply errors


def test_unknown_gates_and_bad_parameters_are_unsupported():
    engine, (a,) = fresh(1, seed=0)
    for gate, params in [
        ("cphase", [0.1]),
        ("H", []),
        ("rz", []),
        ("h", [0.1]),
        ("rx", [math.inf]),
    ]:
        assert not engine.supports(gate, params)
        with pytest.raises(EngineError) as info:
            engine.apply(gate, [a], params)
        assert (info.value.code, info.value.name) == ("QE103", "gate-unsupported")
    assert all(engine.supports(g, [0.5] * len(GATES[g].params)) for g in GATES)


def test_wrong_arity_and_repeated_qubits_are_misuse():
    engine, (a, b, _) = fresh(3, seed=0)
    for gate, qubits in [
        ("cx", [a]),
        ("h", [a, b]),
        ("ccx", [a, b]),
        ("cx", [a, a]),
        ("ccz", [a, b, a]),
    ]:
        with pytest.raises(EngineError) as info:
            engine.apply(gate, qubits)
        assert info.value.name == "engine-misuse"
    assert engine.num_qubits == 3 and engine.probability(a) == 0.0


# --------------------------------------------------------------------------- snapshots, seeds


def test_restore_returns_state_qubits_and_rng_and_works_twice():
    engine, qs = fresh(4, seed=5)
    scramble(engine, qs, seed=5)
    engine.apply("h", [qs[0]])  # leave a fused gate pending in the snapshot
    snapshot = engine.snapshot()
    assert isinstance(snapshot, StatevectorSnapshot)
    before = engine.state_vector(qs)
    results = []
    for _ in range(3):
        engine.restore(snapshot)
        assert engine.num_qubits == 4
        assert_same_state(engine.state_vector(qs), before)
        run = [engine.measure(q, "X") for q in qs[:2]]
        engine.free(qs[3])
        extra = engine.allocate()
        engine.apply("h", [extra])
        run.append(engine.sample([*qs[:3], extra], 50).tolist())
        results.append((run, extra))
    assert results[0] == results[1] == results[2]
    with pytest.raises(EngineError, match="engine-misuse"):
        engine.restore({"psi": None})


def test_reseed_replaces_the_random_stream_and_keeps_the_state():
    engine, qs = fresh(3, seed=8)
    scramble(engine, qs, seed=8)
    snapshot = engine.snapshot()
    before = engine.state_vector(qs)
    draws = {}
    for seed in (1, 2, 1):
        engine.restore(snapshot)
        engine.reseed(seed)
        assert_same_state(engine.state_vector(qs), before)
        run = (engine.sample(qs, 40).tolist(), [engine.measure(q) for q in qs])
        draws.setdefault(seed, []).append(run)
    assert draws[1][0] == draws[1][1]
    assert draws[1][0] != draws[2][0]


def test_the_same_seed_and_calls_give_the_same_results():
    def run(seed: int) -> list:
        engine, qs = fresh(5, seed=seed)
        scramble(engine, qs, seed=1)
        out = [engine.measure(qs[0]), engine.apply_pauli_channel(qs[1], 0.3, 0.3, 0.3)]
        out.append(engine.sample(qs, 64).tolist())
        out.append(engine.measure(qs[2], "Y"))
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_the_registry_makes_this_engine_and_it_meets_the_protocol():
    engine = make_engine("statevector", seed=1, dtype="complex64")
    assert isinstance(engine, StatevectorEngine) and isinstance(engine, Engine)
    assert engine.name == "statevector" and engine.dtype == np.complex64


# --------------------------------------------------------------------------- sampling


def test_samples_follow_the_exact_marginals():
    # seed 31; 20000 shots of three of six qubits; chi-square over 8 outcomes
    # (7 degrees of freedom: P(chi2 > 40) < 1e-5).
    engine, qs = fresh(6, seed=31)
    scramble(engine, qs, seed=31)
    chosen = [qs[4], qs[1], qs[2]]
    probs = engine.probabilities(chosen)
    before = engine.state_vector(qs)
    shots = engine.sample(chosen, 20000)
    assert shots.shape == (20000, 3) and shots.dtype == np.uint8
    assert_same_state(engine.state_vector(qs), before)  # sampling changes nothing
    counts = np.bincount(shots[:, 0] * 4 + shots[:, 1] * 2 + shots[:, 2], minlength=8)
    expected = 20000 * probs
    chi2 = float(np.sum((counts - expected) ** 2 / np.maximum(expected, 1e-12)))
    assert chi2 < 40
    dense = np.abs(before.reshape([2] * 6)) ** 2
    want = dense.sum(axis=(0, 3, 5)).transpose(2, 0, 1).reshape(-1)  # order: q4, q1, q2
    np.testing.assert_allclose(probs, want, atol=1e-12)


def test_sampling_a_large_state_uses_blocks_and_stays_exact():
    # 19 qubits (above the flat sampling size): 17 in |+>, two copies; every shot obeys
    # the copies and each wire is a fair coin (seed 2, 5 sigma). About 61 repeats are
    # expected among 4000 draws from 2**17 outcomes (sd about 8).
    engine, qs = fresh(19, seed=2)
    for q in qs[:17]:
        engine.apply("h", [q])
    engine.apply("cx", [qs[0], qs[17]])
    engine.apply("cx", [qs[5], qs[18]])
    shots = engine.sample(qs, 4000)
    assert engine.tensor_qubits == 17
    np.testing.assert_array_equal(shots[:, 17], shots[:, 0])
    np.testing.assert_array_equal(shots[:, 18], shots[:, 5])
    bound = 5 * math.sqrt(4000 * 0.25)
    assert np.all(np.abs(shots.sum(axis=0).astype(int) - 2000) < bound)
    assert 3890 < len({row.tobytes() for row in shots}) < 3980


def test_sampling_a_large_sparse_tensor_lands_only_on_its_support():
    # Unfused, a GHZ state of 17 qubits fills a 2**17 tensor with two non-zero entries;
    # an ry on the last splits them into four. Chi-square with 3 degrees of freedom
    # (seed 13, 8000 shots, P(chi2 > 25) < 2e-5).
    engine, qs = fresh(17, seed=13, fuse=False)
    engine.apply("h", [qs[0]])
    for a, b in itertools.pairwise(qs):
        engine.apply("cx", [a, b])
    engine.apply("ry", [qs[16]], [1.0])
    assert engine.tensor_qubits == 17
    shots = engine.sample(qs, 8000)
    np.testing.assert_array_equal(shots[:, :16], np.repeat(shots[:, :1], 16, axis=1))
    pairs = shots[:, 0] * 2 + shots[:, 16]
    counts = np.bincount(pairs, minlength=4)
    probs = engine.probabilities([qs[0], qs[16]])
    c, s = math.cos(0.5) ** 2, math.sin(0.5) ** 2
    np.testing.assert_allclose(probs, [c / 2, s / 2, s / 2, c / 2], atol=1e-12)
    chi2 = float(np.sum((counts - 8000 * probs) ** 2 / (8000 * probs)))
    assert chi2 < 25


def test_sampling_a_biased_large_state_matches_its_marginal():
    # seed 6: 17 qubits, the first in ry(1.0), 20000 shots; 5 sigma.
    engine, qs = fresh(17, seed=6)
    for q in qs[1:]:
        engine.apply("h", [q])
    engine.apply("ry", [qs[0]], [1.0])
    engine.apply("cx", [qs[1], qs[0]])
    engine.apply("cx", [qs[1], qs[0]])
    p = math.sin(0.5) ** 2
    ones = int(engine.sample(qs, 20000)[:, 0].sum())
    assert abs(ones - 20000 * p) < 5 * math.sqrt(20000 * p * (1 - p))


def test_sample_columns_follow_the_order_asked_and_zero_shots_work():
    engine, (a, b, c) = fresh(3, seed=0)
    engine.apply("x", [c])
    assert engine.sample([c, a, b, c], 3).tolist() == [[1, 0, 0, 1]] * 3
    assert engine.sample([a, b], 0).shape == (0, 2)
    assert engine.sample([], 2).shape == (2, 0)
    for bad in (-1, 2.5, True):
        with pytest.raises(EngineError, match="engine-misuse"):
            engine.sample([a], bad)


def test_ghz_states_of_many_qubits_cost_one_tensor_axis():
    engine, qs = fresh(28, seed=9)
    engine.apply("h", [qs[0]])
    for a, b in itertools.pairwise(qs):
        engine.apply("cx", [a, b])
    assert engine.tensor_qubits == 1
    shots = engine.sample(qs, 500)
    assert set(shots.sum(axis=1).tolist()) == {0, 28}
    engine.apply("h", [qs[7]])  # pending until needed; then the copy gets its own variable
    probs = engine.probabilities([qs[0], qs[7]])
    assert engine.tensor_qubits == 2
    np.testing.assert_allclose(probs, [0.25] * 4, atol=1e-12)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("shots", [1, 1000, 200_000])
def test_the_block_sampler_draws_what_one_cumulative_sum_draws(dtype: str, shots: int) -> None:
    # 2**18 amplitudes of a random state (seed 21) sampled in narrow blocks (16 to 512
    # entries as the shots go) against the plain inverse CDF over every amplitude at
    # the same seed: the same random numbers pick the same indices, but for the rare
    # one within rounding of a boundary.
    from qmk.engines.sampling import FLAT_SAMPLING, block_width

    rng = np.random.default_rng(21)
    size = 1 << 18
    assert size > FLAT_SAMPLING and 16 <= block_width(size, shots) <= 512
    psi = (rng.standard_normal(size) + 1j * rng.standard_normal(size)).astype(dtype)
    psi /= np.linalg.norm(psi)
    probs = np.abs(psi.astype(np.complex128)) ** 2
    cdf = np.cumsum(probs)
    expected = np.searchsorted(cdf, np.random.default_rng(5).random(shots) * cdf[-1], "right")
    engine = StatevectorEngine(seed=5)
    got = engine._draw(psi, shots, amplitudes=True)
    assert np.mean(got != expected) <= max(1e-3, 1 / shots)
    engine.reseed(5)
    got = engine._draw(probs, shots)
    assert np.mean(got != expected) <= max(1e-3, 1 / shots)


def test_the_block_sampler_matches_exact_marginals_by_chi_square() -> None:
    # 20 qubits (a state sampled in blocks of 32 for 1000 shots, of 16 for these), a
    # random layer of ry and a CZ chain, 50000 shots (seed 8): the joint counts of
    # three qubits against probabilities(), chi-square with 7 degrees of freedom
    # (P(chi2 > 40) < 1e-5).
    engine, qs = fresh(20, seed=8)
    rng = np.random.default_rng(8)
    for q in qs:
        engine.apply("ry", [q], [float(rng.uniform(0, math.pi))])
    for a, b in itertools.pairwise(qs):
        engine.apply("cz", [a, b])
    for q in qs:
        engine.apply("h", [q])
    shots = engine.sample(qs, 50_000)
    picked = [qs[0], qs[9], qs[19]]
    counts = np.bincount(shots[:, 0] * 4 + shots[:, 9] * 2 + shots[:, 19], minlength=8)
    expected = 50_000 * engine.probabilities(picked)
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 40
