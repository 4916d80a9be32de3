"""QMK's matrix product state engine (``mps``): the engine contract, exact amplitudes
against the statevector, agreement with Qiskit Aer's MPS at 60 qubits, the coded refusal
where truncation would cost fidelity, and the router sending it wide shallow programs.

Every random circuit and every engine is seeded; statistical bounds fail a correct
engine with probability below 1e-9 (Hoeffding for a mean; for the total variation over
``K`` outcomes and ``N`` shots, ``sqrt(K/N)/2`` plus McDiarmid's ``sqrt(ln(1e9)/2N)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import qmk
from qmk import defaults
from qmk.engines import EngineError, make_engine
from qmk.engines.base import GateCall
from qmk.engines.mps import DEFAULT_MAX_BOND, MPSEngine, _blas_threads, blas_threads
from qmk.engines.registry import spec
from qmk.engines.router import route
from qmk.engines.statevector import StatevectorEngine
from qmk.testing import assert_engine_conformance
from support.workloads import WIDE_FEED_FORWARD, shallow_workload

_ROTATIONS = ("rx", "ry", "rz")
_FIXED_1Q = ("h", "s", "sdg", "t", "tdg", "x", "y", "z")


def _tvd_bound(outcomes: int, shots: int) -> float:
    return math.sqrt(outcomes / shots) / 2 + math.sqrt(math.log(1e9) / (2 * shots))


def random_circuit(n: int, gates: int, seed: int) -> list[GateCall]:
    """Gates of every arity on any qubits (neighbours or not), seeded."""
    rng = np.random.default_rng(seed)
    out: list[GateCall] = []
    for _ in range(gates):
        kind = rng.integers(5 if n >= 3 else 4)
        if kind == 0:
            out.append((str(rng.choice(_FIXED_1Q)), [int(rng.integers(n))], []))
        elif kind == 1:
            out.append((str(rng.choice(_ROTATIONS)), [int(rng.integers(n))], [rng.uniform(-7, 7)]))
        elif kind in (2, 3):
            a, b = (int(q) for q in rng.choice(n, 2, replace=False))
            out.append((str(rng.choice(("cx", "cz", "swap"))), [a, b], []))
        else:
            qs = [int(q) for q in rng.choice(n, 3, replace=False)]
            out.append((str(rng.choice(("ccx", "ccz"))), qs, []))
    return out


def brickwork(n: int, depth: int, seed: int) -> list[GateCall]:
    """``depth`` layers: rz ry rz at random angles on every qubit, then cx on alternate
    neighbour pairs (the wide shallow circuits of the bench)."""
    rng = np.random.default_rng(seed)
    out: list[GateCall] = []
    for layer in range(depth):
        for q in range(n):
            for gate in ("rz", "ry", "rz"):
                out.append((gate, [q], [float(rng.uniform(0, 2 * math.pi))]))
        out += [("cx", [q, q + 1], []) for q in range(layer % 2, n - 1, 2)]
    return out


def ghz(n: int) -> list[GateCall]:
    return [("h", [0], []), *(("cx", [q, q + 1], []) for q in range(n - 1))]


def prepared(n: int, gates: Sequence[GateCall], seed: int = 0, **options: float) -> MPSEngine:
    engine = MPSEngine(seed=seed, **options)  # type: ignore[arg-type]
    qs = [engine.allocate() for _ in range(n)]
    assert qs == list(range(n))
    engine.apply_segment(gates)
    return engine


def exact_marginal(engine: MPSEngine, qubits: Sequence[int]) -> np.ndarray:
    """P(bits of ``qubits``) by the chain rule through collapse/snapshot/restore, indexed
    with ``qubits[0]`` as the least significant bit (Aer's ``save_probabilities`` order)."""
    probs = np.zeros(2 ** len(qubits))
    start = engine.snapshot()
    for index in range(len(probs)):
        engine.restore(start)
        p = 1.0
        for k, q in enumerate(qubits):
            bit = (index >> k) & 1
            p1 = engine.probability(q)
            chance = p1 if bit else 1 - p1
            p *= chance
            if chance <= 1e-12:
                break
            engine.collapse(q, bit)
        probs[index] = p if p > 1e-12 else 0.0
    engine.restore(start)
    return probs


# --------------------------------------------------------------------------- the contract


def test_the_mps_engine_keeps_the_engine_contract() -> None:
    assert_engine_conformance(lambda seed: MPSEngine(seed=seed))


def test_the_mps_engine_keeps_the_contract_on_eight_qubit_random_circuits() -> None:
    assert_engine_conformance(lambda seed: MPSEngine(seed=seed), seed=7, qubits=8, circuits=30)


def test_make_engine_builds_it_by_name_with_its_options() -> None:
    engine = make_engine(defaults.MPS, seed=1, max_bond=8, min_fidelity=0.5)
    assert isinstance(engine, MPSEngine) and engine.max_bond == 8
    assert spec(defaults.MPS).cost.representation == "mps"


@pytest.mark.parametrize(
    "options",
    [
        {"max_bond": 0},
        {"max_bond": 2.5},
        {"min_fidelity": 0.0},
        {"min_fidelity": 1.5},
        {"threads": 0},
    ],
)
def test_a_bad_option_is_a_coded_refusal(options: dict[str, float]) -> None:
    with pytest.raises(EngineError) as info:
        MPSEngine(seed=1, **options)  # type: ignore[arg-type]
    assert info.value.code == "QE105"


def test_the_engine_runs_blas_on_one_thread_and_puts_the_count_back() -> None:
    found = _blas_threads()
    if found is None:
        pytest.skip("numpy's BLAS here is not OpenBLAS")
    get, put = found
    before = get()
    put(2)
    try:
        with blas_threads(1):
            assert get() == 1
        assert get() == 2
        engine = prepared(30, brickwork(30, 3, seed=1), seed=1)
        engine.sample(list(range(30)), 10)
        assert get() == 2
    finally:
        put(before)


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("seed", range(12))
def test_amplitudes_equal_the_statevector_engine_on_random_circuits(seed: int) -> None:
    n = 3 + seed % 8  # 3..10 qubits
    gates = random_circuit(n, 12 * n, seed)
    engine = prepared(n, gates, seed)
    reference = StatevectorEngine(seed=seed)
    for _ in range(n):
        reference.allocate()
    for gate in gates:
        reference.apply(*gate)
    order = list(range(n))
    assert np.allclose(engine.state_vector(order), reference.state_vector(order), atol=1e-10)
    assert engine.fidelity == 1.0
    # a qubit order other than the sites' (swaps moved them) comes out the same
    mixed = order[::-1]
    assert np.allclose(engine.state_vector(mixed), reference.state_vector(mixed), atol=1e-10)


def test_samples_of_a_random_circuit_follow_the_exact_distribution() -> None:
    n, shots = 7, 20_000
    gates = random_circuit(n, 80, seed=101)
    engine = prepared(n, gates, seed=5)
    exact = np.abs(engine.state_vector(list(range(n)))) ** 2
    samples = engine.sample(list(range(n)), shots)
    index = samples.astype(np.int64) @ (1 << np.arange(n - 1, -1, -1))
    observed = np.bincount(index, minlength=2**n) / shots
    tvd = 0.5 * float(np.abs(observed - exact).sum())
    assert tvd <= _tvd_bound(2**n, shots), tvd
    # a subset in another order is the marginal, columns as asked
    subset = [5, 1, 3]
    part = engine.sample(subset, shots)
    marginal = exact.reshape((2,) * n).sum(axis=tuple(q for q in range(n) if q not in subset))
    marginal = np.transpose(marginal, np.argsort(np.argsort(subset))).reshape(-1)
    index = part.astype(np.int64) @ np.array([4, 2, 1])
    tvd = 0.5 * float(np.abs(np.bincount(index, minlength=8) / shots - marginal).sum())
    assert tvd <= _tvd_bound(8, shots), tvd


def test_equal_seeds_draw_equal_samples_of_a_wide_state() -> None:
    gates = brickwork(40, 4, seed=3)
    first = prepared(40, gates, seed=9).sample(list(range(40)), 200)
    again = prepared(40, gates, seed=9).sample(list(range(40)), 200)
    other = prepared(40, gates, seed=10).sample(list(range(40)), 200)
    assert (first == again).all() and not (first == other).all()


def test_a_snapshot_written_out_and_read_back_is_the_same_state() -> None:
    engine = prepared(12, random_circuit(12, 60, seed=4), seed=2)
    engine.free(5)
    meta, arrays = MPSEngine.export_snapshot(engine.snapshot())
    twin = MPSEngine(seed=0)
    twin.restore(MPSEngine.import_snapshot(meta, arrays))
    live = [q for q in range(12) if q != 5]
    assert np.allclose(twin.state_vector(live), engine.state_vector(live), atol=1e-12)
    assert (twin.sample(live, 50) == engine.sample(live, 50)).all()


# --------------------------------------------------------------------------- wide circuits


def test_a_100_qubit_ghz_state_is_exact_with_bond_two() -> None:
    engine = prepared(100, ghz(100), seed=1)
    assert max(engine.bond_dimensions) == 2 and engine.fidelity == 1.0
    shots = engine.sample(list(range(100)), 500)
    assert set(shots.sum(axis=1).tolist()) == {0, 100}
    assert engine.probability(73, "Z") == pytest.approx(0.5, abs=1e-12)
    # a mid-circuit measurement settles every qubit
    outcome = engine.measure(50)
    assert all(engine.probability(q) == pytest.approx(outcome, abs=1e-12) for q in range(100))


def _aer_probabilities(n: int, gates: Sequence[GateCall], qubits: Sequence[int]) -> np.ndarray:
    from qiskit_aer import AerSimulator

    from qmk.engines.adapters.aer import build_circuit

    # build_circuit numbers axis a as Aer qubit n - 1 - a: hand it axes that way round
    circuit = build_circuit(
        n, [(g, tuple(n - 1 - q for q in qs), tuple(ps)) for g, qs, ps in gates]
    )
    circuit.save_probabilities(list(qubits), label="p")
    simulator = AerSimulator(method="matrix_product_state", enable_truncation=False)
    return np.asarray(simulator.run(circuit, shots=1).result().data(0)["p"])


@pytest.mark.parametrize("depth", [4, 6])
def test_a_60_qubit_brickwork_agrees_with_aer_mps(depth: int) -> None:
    pytest.importorskip("qiskit_aer")
    n, shots = 60, 4000
    gates = brickwork(n, depth, seed=depth)
    engine = prepared(n, gates, seed=depth)
    assert engine.fidelity == 1.0 and max(engine.bond_dimensions) <= 2 ** (depth // 2)
    samples = engine.sample(list(range(n)), shots)
    for triple in ([0, 1, 2], [29, 30, 31], [10, 35, 59], [58, 3, 44]):
        aer = _aer_probabilities(n, gates, triple)
        ours = exact_marginal(engine, triple)
        assert np.allclose(ours, aer, atol=1e-9), (triple, ours, aer)
        index = samples[:, triple].astype(np.int64) @ np.array([1, 2, 4])
        tvd = 0.5 * float(np.abs(np.bincount(index, minlength=8) / shots - aer).sum())
        assert tvd <= _tvd_bound(8, shots), (triple, tvd)


def test_a_60_qubit_ghz_state_agrees_with_aer_mps_samples() -> None:
    pytest.importorskip("qiskit_aer")
    from qiskit_aer import AerSimulator

    from qmk.engines.adapters.aer import build_circuit

    n, shots = 60, 4000
    circuit = build_circuit(n, [(g, tuple(n - 1 - q for q in qs), ()) for g, qs, _ in ghz(n)])
    circuit.measure_all()
    simulator = AerSimulator(method="matrix_product_state")
    counts = simulator.run(circuit, shots=shots, seed_simulator=11).result().get_counts()
    assert set(counts) == {"0" * n, "1" * n}
    ours = prepared(n, ghz(n), seed=11).sample(list(range(n)), shots).sum(axis=1)
    assert set(ours.tolist()) == {0, n}
    # both halves near 1/2 (Hoeffding: |mean - 1/2| <= sqrt(ln(2e9) / 2N) each)
    bound = math.sqrt(math.log(2e9) / (2 * shots))
    assert abs(counts["1" * n] / shots - 0.5) <= bound
    assert abs(float((ours == n).mean()) - 0.5) <= bound


# --------------------------------------------------------------------------- refusal


def _ring(n: int) -> list[GateCall]:
    """A cluster state on a ring: its last cz needs bond 4 somewhere on a line."""
    gates: list[GateCall] = [("h", [q], []) for q in range(n)]
    gates += [("cz", [q, (q + 1) % n], []) for q in range(n)]
    return gates


def test_a_gate_that_would_truncate_below_the_fidelity_floor_is_refused_naming_the_bond() -> None:
    engine = prepared(4, _ring(4)[:-1], seed=1, max_bond=2)
    before = engine.state_vector([0, 1, 2, 3])
    engine.apply("t", [0])  # waits on qubit 0, and stays when the gate is refused
    with pytest.raises(EngineError) as info:
        engine.apply("cz", [3, 0])
    engine.apply("tdg", [0])
    assert info.value.code == "QE114"
    assert "needs bond dimension 4" in str(info.value) and "max_bond=2" in str(info.value)
    assert np.allclose(engine.state_vector([0, 1, 2, 3]), before, atol=1e-12)
    assert engine.fidelity == 1.0
    # a segment refused on its way leaves the state as it was before its first gate,
    # a gate waiting on a qubit from before it included
    engine.apply("h", [2])
    waited = engine.snapshot()
    engine.apply("h", [2])
    with pytest.raises(EngineError, match="QE114"):
        engine.apply_segment([("t", [1], []), ("cz", [3, 0], [])])
    assert np.allclose(engine.state_vector([0, 1, 2, 3]), before, atol=1e-12)
    engine.restore(waited)
    engine.apply("h", [2])
    assert np.allclose(engine.state_vector([0, 1, 2, 3]), before, atol=1e-12)
    # with the bond it names, the same gate is exact
    assert prepared(4, _ring(4), seed=1, max_bond=4).fidelity == 1.0


def test_truncation_above_the_fidelity_floor_is_kept_and_reported() -> None:
    engine = prepared(4, _ring(4), seed=1, max_bond=2, min_fidelity=0.25)
    assert max(engine.bond_dimensions) == 2
    assert 0.25 <= engine.fidelity < 1.0
    exact = prepared(4, _ring(4), seed=1).state_vector([0, 1, 2, 3])
    overlap = abs(np.vdot(exact, engine.state_vector([0, 1, 2, 3]))) ** 2
    assert overlap == pytest.approx(engine.fidelity, abs=1e-9)


def test_the_default_bond_holds_a_60_qubit_depth_8_brickwork_exactly() -> None:
    engine = prepared(60, brickwork(60, 8, seed=8), seed=8)
    assert engine.fidelity == 1.0 and max(engine.bond_dimensions) <= 16 <= DEFAULT_MAX_BOND


# --------------------------------------------------------------------------- the router


WIDE_SHALLOW = shallow_workload(80)


def test_the_router_sends_an_80_qubit_shallow_circuit_to_mps() -> None:
    choice = route(WIDE_SHALLOW)
    assert choice.engine == defaults.MPS
    (statevector,) = (c for c in choice.candidates if c.engine == defaults.STATEVECTOR)
    assert statevector.refusal == "capacity"
    # an option only mps takes leaves it the one able engine
    assert route(WIDE_SHALLOW, options={"max_bond": 64}).engine == defaults.MPS


@pytest.mark.parametrize(("qubits", "layers"), [(4, 4), (12, 4), (20, 20)])
def test_the_router_keeps_small_or_deep_circuits_off_mps(qubits: int, layers: int) -> None:
    """A dense state is cheaper for few qubits, and for a deep circuit whose bond grows
    to a dense state's (a shallow 20-qubit circuit is the MPS's: see the router bench)."""
    assert route(shallow_workload(qubits, layers)).engine != defaults.MPS


def test_qmk_run_routes_an_80_qubit_non_clifford_ghz_to_mps_and_counts_it(tmp_path: Path) -> None:
    n = 80
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];", "h q[0];"]
    lines += [f"cx q[{k}],q[{k + 1}];" for k in range(n - 1)]
    lines += ["t q[40];", "measure q -> c;"]
    source = tmp_path / "ghz80.qasm"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = qmk.run(source, shots=300, seed=4, noise=False)
    assert result.engine == defaults.MPS
    assert set(result.counts) <= {"0" * n, "1" * n} and sum(result.counts.values()) == 300


# --------------------------------------------------------------------------- the executor

#: Teleportation of ry(1.0)t|0> with feed-forward, undone on the receiver: m_bob is 0.
TELEPORT = """
.caps CAP_ALLOC
alloc: ALLOC_LQ vq:msg, vq:alice, vq:bob
prepare: APPLY_RY vq:msg, theta=1.0
t: APPLY_T vq:msg
pair_h: APPLY_H vq:alice
pair_cnot: APPLY_CNOT vq:alice, vq:bob
bell_cnot: APPLY_CNOT vq:msg, vq:alice
bell_h: APPLY_H vq:msg
meas_msg: MEASURE_Z vq:msg, out:m_msg
meas_alice: MEASURE_Z vq:alice, out:m_alice
fence: FENCE_EPOCH
fix_x: COND_PAULI vq:bob, in:m_alice, mask="X"
fix_z: COND_PAULI vq:bob, in:m_msg, mask="Z"
tdg: APPLY_TDG vq:bob
unprepare: APPLY_RY vq:bob, theta=-1.0
meas_bob: MEASURE_Z vq:bob, out:m_bob
free: FREE_LQ vq:msg, vq:alice, vq:bob
"""


def test_teleportation_with_feed_forward_runs_on_mps_and_resumes_from_a_fence() -> None:
    from qmk.execution.checkpoint import ExecutionState
    from qmk.execution.runs import run
    from qmk.execution.trajectories import YIELD, Suspended
    from qmk.qvm.asm import assemble

    program = assemble(TELEPORT)
    shots = 2000
    whole = run(program, shots=shots, seed=5, engine=defaults.MPS, noise=False)
    assert whole.engine == defaults.MPS
    assert all(key.endswith("0") for key in whole.counts)  # teleportation undone
    bell = np.zeros(4)
    for key, count in whole.counts.items():
        bell[int(key[:2], 2)] += count
    assert 0.5 * float(np.abs(bell / shots - 0.25).sum()) <= _tvd_bound(4, shots)

    class StopAtFirstFence:
        urgent = False

        def __init__(self) -> None:
            self.saved: list[ExecutionState] = []

        def at_fence(self, epoch: int) -> str | None:
            return YIELD if not self.saved else None

        def at_op(self) -> str | None:
            return None

        def after_segment(self) -> str | None:
            return None

        def save(self, state: ExecutionState) -> None:
            self.saved.append(ExecutionState.from_bytes(state.to_bytes()))  # the file format

    control = StopAtFirstFence()
    with pytest.raises(Suspended):
        run(program, shots=shots, seed=5, engine=defaults.MPS, noise=False, control=control)
    (state,) = control.saved
    resumed = run(program, shots=shots, seed=5, engine=defaults.MPS, noise=False, resume=state)
    assert resumed.counts == whole.counts


def test_a_wide_ghz_with_mid_circuit_feed_forward_is_routed_to_mps() -> None:
    """60 qubits and a T gate: no dense engine holds it and it is not Clifford; a
    measurement of the middle qubit and the correction it feeds keep every shot equal."""
    from qmk.execution.runs import run
    from qmk.qvm.asm import assemble

    result = run(assemble(WIDE_FEED_FORWARD), shots=200, seed=3, noise=False)
    assert result.engine == defaults.MPS
    for key in result.counts:
        assert set(key[1:]) == {key[0]}  # the GHZ qubits agree, and q59 was corrected
    assert len(result.counts) == 2
