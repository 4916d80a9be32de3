"""The adapters to the field's simulators: each keeps the engine contract
(:func:`qmk.testing.assert_engine_conformance`), and agrees with exact theory and with
QMK's statevector when the executor runs programs on it.

Each test needs its simulator's package (the ``test`` extra installs them) and skips
without it; the GPU engines' tests skip where no CUDA GPU is present. Seeds are fixed;
statistical checks state their bounds (failure probability below 1e-9 each).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from qmk.engines import EngineError, make_engine
from qmk.engines.registry import gpu_present, spec
from qmk.engines.statevector import StatevectorEngine
from qmk.execution.runs import run
from qmk.qvm.asm import assemble
from qmk.testing import assert_engine_conformance
from support.workloads import WIDE_FEED_FORWARD


@dataclass(frozen=True)
class Adapter:
    """One adapter under test: its engine name, the module it needs, its options and the
    tolerance its precision allows."""

    engine: str
    module: str
    options: tuple[tuple[str, Any], ...] = ()
    atol: float = 1e-7
    gpu: bool = False

    def __str__(self) -> str:
        shown = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.engine}[{shown}]" if shown else self.engine

    def make(self, seed: int) -> Any:
        if self.gpu and not gpu_present():
            pytest.skip("no CUDA GPU here")
        pytest.importorskip(self.module)
        return make_engine(self.engine, seed=seed, **dict(self.options))


SINGLE = 2e-5  # complex64 amplitudes: probabilities to about 1e-6 after a few dozen gates

#: Every segment adapter, at each precision it computes in.
SEGMENT_ADAPTERS = (
    Adapter("qsim", "qsimcirq", atol=SINGLE),
    Adapter("aer-statevector", "qiskit_aer"),
    Adapter("aer-statevector", "qiskit_aer", (("dtype", "complex64"),), atol=SINGLE),
    Adapter("aer-density-matrix", "qiskit_aer"),
    Adapter("cirq", "cirq", atol=SINGLE),
    Adapter("cirq", "cirq", (("dtype", "complex128"),)),
    Adapter("qutip", "qutip"),
    Adapter("lightning", "pennylane_lightning"),
    Adapter("lightning", "pennylane_lightning", (("dtype", "complex64"),), atol=SINGLE),
    Adapter("braket", "braket.default_simulator"),
    Adapter("custatevec", "cuquantum", gpu=True),
    Adapter("custatevec", "cuquantum", (("dtype", "complex64"),), atol=SINGLE, gpu=True),
    Adapter("qsim-gpu", "qsimcirq", atol=SINGLE, gpu=True),
    Adapter("aer-mps", "qiskit_aer"),
)


@pytest.mark.parametrize("adapter", SEGMENT_ADAPTERS, ids=str)
def test_every_segment_adapter_passes_the_whole_conformance_suite(adapter: Adapter) -> None:
    adapter.make(0)  # skips without the package (or the GPU)
    assert_engine_conformance(
        lambda seed: adapter.make(seed), seed=404, circuits=10, shots=1500, atol=adapter.atol
    )


def _random_program(n: int, depth: int, seed: int, *, measure: bool = True) -> str:
    """A QVM program: ``depth`` layers of random one-qubit gates and a CZ/CNOT brickwork on
    ``n`` qubits, then a Z measurement of each (events m0..m{n-1})."""
    rng = np.random.default_rng(seed)
    names = " ".join(f"vq:q{i}," for i in range(n)).rstrip(",")
    lines = [".caps CAP_ALLOC", f"a: ALLOC_LQ {names}"]
    k = 0
    for layer in range(depth):
        for q in range(n):
            op = ["APPLY_RX", "APPLY_RY", "APPLY_RZ", "APPLY_T", "APPLY_H", "APPLY_S"][
                int(rng.integers(6))
            ]
            angle = f", theta={float(rng.uniform(-math.pi, math.pi)):.6f}" if "_R" in op else ""
            lines.append(f"g{k}: {op} vq:q{q}{angle}")
            k += 1
        for q in range(layer % 2, n - 1, 2):
            op = "APPLY_CZ" if rng.integers(2) else "APPLY_CNOT"
            lines.append(f"g{k}: {op} vq:q{q}, vq:q{q + 1}")
            k += 1
    if measure:
        lines += [f"m{q}: MEASURE_Z vq:q{q}, out:m{q}" for q in range(n)]
    lines.append(f"f: FREE_LQ {names}")
    return "\n".join(lines) + "\n"


def _exact(n: int, depth: int, seed: int) -> np.ndarray:
    """The program's outcome distribution from QMK's statevector (index: m0 most significant)."""
    text = _random_program(n, depth, seed, measure=False)
    engine = StatevectorEngine(seed=0)
    qs = [engine.allocate() for _ in range(n)]
    from qmk.execution.plan import GATE_OF
    from qmk.qvm.graph import Graph

    graph: Graph = assemble(text)
    for node in graph.nodes:
        if node.op in GATE_OF:
            params = [float(v) for v in node.args.values()]
            engine.apply(GATE_OF[node.op], [qs[int(v[1:])] for v in node.vqs], params)
    return np.abs(engine.state_vector(qs)) ** 2


def _tvd_bound(support: int, shots: int) -> float:
    """A total variation a correct empirical distribution stays below (see qmk.testing)."""
    return 0.5 * math.sqrt(support / shots) + math.sqrt(math.log(1e9) / (2 * shots))


def _distribution(counts: dict[str, int], n: int, shots: int) -> np.ndarray:
    out = np.zeros(2**n)
    for key, value in counts.items():
        out[int(key, 2)] = value / shots
    return out


EXECUTOR_ADAPTERS = tuple(a for a in SEGMENT_ADAPTERS if not a.options)


@pytest.mark.parametrize("adapter", EXECUTOR_ADAPTERS, ids=str)
def test_random_circuits_run_by_the_executor_agree_with_exact_theory(adapter: Adapter) -> None:
    adapter.make(0)
    n, depth, shots = 5, 6, 4000
    for seed in (11, 12):
        result = run(
            assemble(_random_program(n, depth, seed)),
            shots=shots,
            seed=seed,
            engine=adapter.engine,
            noise=False,
        )
        assert result.engine == adapter.engine
        want = _exact(n, depth, seed)
        got = _distribution(dict(result.counts), n, shots)
        tvd = 0.5 * float(np.abs(got - want).sum())
        assert tvd <= _tvd_bound(int((want > 1e-12).sum()), shots), (seed, tvd)


MID_CIRCUIT = """
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
fix_x: COND_PAULI vq:bob, in:m_alice, mask="X"
fix_z: COND_PAULI vq:bob, in:m_msg, mask="Z"
tdg: APPLY_TDG vq:bob
unprepare: APPLY_RY vq:bob, theta=-1.0
meas_bob: MEASURE_Z vq:bob, out:m_bob
free: FREE_LQ vq:msg, vq:alice, vq:bob
"""


@pytest.mark.parametrize("adapter", EXECUTOR_ADAPTERS, ids=str)
def test_teleportation_with_feed_forward_runs_on_every_segment_adapter(adapter: Adapter) -> None:
    adapter.make(0)
    shots = 2000
    result = run(assemble(MID_CIRCUIT), shots=shots, seed=5, engine=adapter.engine, noise=False)
    # Teleportation undone: m_bob is always 0, and the Bell outcomes are uniform.
    assert all(key.endswith("0") for key in result.counts)
    got = _distribution({k[:2]: v for k, v in result.counts.items()}, 2, shots)
    tvd = 0.5 * float(np.abs(got - 0.25).sum())
    assert tvd <= _tvd_bound(4, shots)
    assert result.telemetry.simulations > 1  # the shots split at the Bell measurement


def test_the_mps_adapter_runs_a_wide_ghz_state_with_mid_circuit_feed_forward() -> None:
    """60 qubits, which no dense engine holds, named on aer-mps (the router picks QMK's
    own mps: tests/engines/test_mps.py); a mid-circuit measurement of the middle qubit
    and a correction it feeds keep every shot's outcomes equal."""
    pytest.importorskip("qiskit_aer")
    program = assemble(WIDE_FEED_FORWARD)
    result = run(program, shots=200, seed=3, noise=False, engine="aer-mps")
    assert result.engine == "aer-mps"
    for key in result.counts:
        mid, rest = key[0], key[1:]
        assert set(rest) == {mid}  # the GHZ qubits agree, and q59 was corrected to them
    assert len(result.counts) == 2


# --------------------------------------------------------------------------- density matrices


@pytest.mark.parametrize("engine", ["aer-density-matrix", "qutip"])
def test_amplitude_damping_as_kraus_operators_is_exact_on_density_matrix_engines(
    engine: str,
) -> None:
    pytest.importorskip("qiskit_aer" if engine.startswith("aer") else "qutip")
    gamma = 0.3
    kraus = [
        np.array([[1, 0], [0, math.sqrt(1 - gamma)]]),
        np.array([[0, math.sqrt(gamma)], [0, 0]]),
    ]
    sim = make_engine(engine, seed=0)
    q = sim.allocate()
    sim.apply("h", [q])
    sim.apply_kraus(q, kraus)  # type: ignore[attr-defined]
    # |+> damped: P(1) = (1 - gamma) / 2, <X> = sqrt(1 - gamma) (coherence shrinks).
    assert sim.probability(q) == pytest.approx((1 - gamma) / 2, abs=1e-12)
    assert sim.probability(q, "X") == pytest.approx((1 - math.sqrt(1 - gamma)) / 2, abs=1e-12)


def test_a_kraus_channel_on_a_state_vector_engine_is_refused_with_a_code() -> None:
    pytest.importorskip("cirq")
    sim = make_engine("cirq", seed=0)
    q = sim.allocate()
    with pytest.raises(EngineError, match="QE110"):
        sim.apply_kraus(q, [np.eye(2)])  # type: ignore[attr-defined]


def test_open_system_evolution_matches_rabi_and_decay_theory() -> None:
    pytest.importorskip("qutip")
    from qmk.engines.adapters.qutip import evolve_open

    x = np.array([[0, 1], [1, 0]], dtype=complex)
    lower = np.array([[0, 1], [0, 0]], dtype=complex)
    zero = np.diag([1.0, 0.0]).astype(complex)
    omega, gamma = 2.0, 0.5
    for t in (0.3, 1.0, 2.2):
        # Rabi: H = omega/2 X from |0>: P(1) = sin^2(omega t / 2).
        rabi = evolve_open(zero, omega / 2 * x, duration=t)
        assert rabi[1, 1].real == pytest.approx(math.sin(omega * t / 2) ** 2, abs=1e-7)
        # Decay: C = sqrt(gamma) sigma- from |1>: P(1) = exp(-gamma t).
        decay = evolve_open(
            np.diag([0.0, 1.0]).astype(complex), 0 * x, [math.sqrt(gamma) * lower], duration=t
        )
        assert decay[1, 1].real == pytest.approx(math.exp(-gamma * t), abs=1e-7)
    with pytest.raises(EngineError, match="QE105"):
        evolve_open(zero, np.eye(4), duration=1.0)


def test_the_qutip_engine_evolves_one_qubit_of_an_entangled_pair_under_decay() -> None:
    pytest.importorskip("qutip")
    lower = np.array([[0, 1], [0, 0]], dtype=complex)
    sim = make_engine("qutip", seed=0)
    a, b = sim.allocate(), sim.allocate()
    sim.apply("x", [a])
    sim.apply("h", [b])
    gamma, t = 0.4, 1.5
    sim.evolve([a], np.zeros((2, 2)), [math.sqrt(gamma) * lower], duration=t)  # type: ignore[attr-defined]
    assert sim.probability(a) == pytest.approx(math.exp(-gamma * t), abs=1e-7)
    assert sim.probability(b, "X") == pytest.approx(0.0, abs=1e-7)  # the other qubit idles


# --------------------------------------------------------------------------- registration


def test_each_adapter_class_carries_its_registry_name_and_imports_no_simulator() -> None:
    for name in ("qsim", "aer-statevector", "cirq", "qutip", "lightning", "braket", "custatevec"):
        assert make_engine.__module__ == "qmk.engines"
        assert spec(name).module.startswith("qmk.engines.adapters.")
    code = (
        "import sys, qmk.engines.registry as r\n"
        "[r.load(n) for n in r.ENGINE_NAMES]\n"
        "heavy = {'qsimcirq', 'qiskit_aer', 'qutip', 'pennylane', 'braket', 'cuquantum', 'cupy'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    assert _fresh_python(code) == ["[]"]


def _fresh_python(code: str) -> list[str]:
    """The lines ``code`` prints in a fresh interpreter (nothing imported before it)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()


def test_asking_whether_qsim_gpu_can_run_imports_neither_qsimcirq_nor_cirq() -> None:
    """Its own check runs wherever a GPU is (each run the router weighs it for): it finds
    the CUDA module by qsimcirq's files; a CPU-only qsimcirq has none."""
    pytest.importorskip("qsimcirq")
    code = (
        "import sys\n"
        "from dataclasses import replace\n"
        "from qmk.engines.registry import check, spec\n"
        "print(check(replace(spec('qsim-gpu'), gpu=False)).reason)\n"
        "print(sorted({'qsimcirq', 'cirq', 'qmk.engines.adapters.qsim'} & set(sys.modules)))\n"
    )
    reason, imported = _fresh_python(code)
    assert imported == "[]"
    import qsimcirq

    if qsimcirq.qsim_gpu is None:  # the wheels: built without CUDA
        assert reason == (
            "this qsimcirq was built without GPU support (it has no qsim_cuda or qsim_hip module)"
        )
    else:
        assert reason == "None"


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("engine", ["cirq", "aer-density-matrix", "qutip"])
def test_a_run_on_an_adapter_stopped_at_a_fence_resumes_to_the_same_counts(engine: str) -> None:
    from qmk.execution.checkpoint import ExecutionState
    from qmk.execution.trajectories import YIELD, Suspended

    pytest.importorskip({"cirq": "cirq", "qutip": "qutip"}.get(engine, "qiskit_aer"))
    program = assemble(MID_CIRCUIT.replace("fix_x:", "fence: FENCE_EPOCH\nfix_x:"))

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

    options: dict[str, Any] = {"shots": 300, "seed": 8, "engine": engine, "noise": False}
    whole = run(program, **options)
    control = StopAtFirstFence()
    with pytest.raises(Suspended):
        run(program, control=control, **options)
    (state,) = control.saved
    resumed = run(program, resume=state, **options)
    assert resumed.counts == whole.counts


def test_a_segment_snapshot_survives_its_file_format() -> None:
    pytest.importorskip("cirq")
    from qmk.engines.adapters.cirq import CirqEngine

    engine = CirqEngine(seed=3, dtype="complex128")
    a, b = engine.allocate(), engine.allocate()
    engine.apply("ry", [a], [0.7])
    engine.apply("cx", [a, b])
    engine.apply("t", [b])  # still pending: the snapshot keeps the segment
    meta, arrays = CirqEngine.export_snapshot(engine.snapshot())
    other = CirqEngine(seed=0, dtype="complex128")
    other.restore(CirqEngine.import_snapshot(meta, arrays))
    assert other.probability(b, "X") == pytest.approx(engine.probability(b, "X"), abs=1e-12)
    assert other.measure(a) == engine.measure(a)  # the RNG came back too


@pytest.mark.parametrize("engine", ["cirq", "aer-mps"])
def test_a_segment_with_a_bad_gate_leaves_an_adapter_as_it_was(engine: str) -> None:
    from qmk.engines.base import apply_segment

    pytest.importorskip("cirq" if engine == "cirq" else "qiskit_aer")
    sim = make_engine(engine, seed=0)
    a, b = sim.allocate(), sim.allocate()
    apply_segment(sim, [("h", [a], []), ("cx", [a, b], [])])
    with pytest.raises(EngineError, match="QE103"):
        apply_segment(sim, [("x", [a], []), ("warp", [b], [])])
    assert sim.probability(b) == pytest.approx(0.5, abs=1e-6)
    assert sim.probability(a, "X") == pytest.approx(0.5, abs=1e-6)  # no x was kept
    assert sorted({tuple(r) for r in sim.sample([a, b], 100).tolist()}) == [(0, 0), (1, 1)]


@pytest.mark.parametrize("adapter", SEGMENT_ADAPTERS, ids=str)
def test_samples_after_a_mid_circuit_collapse_follow_the_collapsed_state(adapter: Adapter) -> None:
    """The conformance suite samples states made by gates; here the state was collapsed
    first (the path a mid-circuit measurement takes before the terminal sample)."""
    sim = adapter.make(17)
    reference = StatevectorEngine(seed=17)
    rng = np.random.default_rng(17)
    n, shots = 4, 3000
    qs = [sim.allocate() for _ in range(n)]
    rs = [reference.allocate() for _ in range(n)]
    for _ in range(10):
        a, b = (int(x) for x in rng.permutation(n)[:2])
        theta = float(rng.uniform(-3, 3))
        for engine, handles in ((sim, qs), (reference, rs)):
            engine.apply("ry", [handles[a]], [theta])
            engine.apply("cx", [handles[a], handles[b]])
    outcome = int(reference.probability(rs[0]) > 0.5)
    sim.collapse(qs[0], outcome)
    reference.collapse(rs[0], outcome)
    sim.apply("h", [qs[1]])
    reference.apply("h", [rs[1]])
    drawn = sim.sample(qs, shots)
    bound = math.sqrt(math.log(2e9) / (2 * shots))  # Hoeffding, per column
    for column in range(n):
        want = reference.probability(rs[column])
        assert abs(float(drawn[:, column].mean()) - want) <= bound + 1e-6, column


VECTOR_ADAPTERS = [a for a in SEGMENT_ADAPTERS if a.engine in ("qsim", "cirq", "aer-statevector")]


@pytest.mark.parametrize("adapter", VECTOR_ADAPTERS, ids=str)
def test_a_wide_state_samples_its_exact_marginals_with_idle_qubits_left_in_zero(
    adapter: Adapter,
) -> None:
    # 18 qubits (2**18 amplitudes: sampled in blocks, not one cumulative sum): RY on the
    # even ones, CX from each even qubit to the next, the last two never touched (still
    # |0>, never written out before the segment runs). Every qubit's mean outcome and the
    # 16-outcome joint of qubits 0-3 against theory (chi-square, p > 1e-9), seed 3.
    from scipy import stats

    n, shots = 18, 20_000
    engine = adapter.make(seed=3)
    qubits = [engine.allocate() for _ in range(n)]
    angles = {q: 0.4 + 0.15 * q for q in range(0, n - 2, 2)}
    for q, theta in angles.items():
        engine.apply("ry", [qubits[q]], [theta])
        engine.apply("cx", [qubits[q], qubits[q + 1]])
    bits = engine.sample(qubits, shots)
    assert bits.shape == (shots, n)
    one = {q: math.sin(theta / 2) ** 2 for q, theta in angles.items()}
    for q in range(n):
        p = one.get(q, one.get(q - 1, 0.0) if q % 2 else 0.0)
        if p == 0.0:
            assert not bits[:, q].any(), q
        else:
            ones = int(bits[:, q].sum())
            assert stats.binomtest(ones, shots, p).pvalue > 1e-9, (q, ones, p)
    # qubits 0-3: pairs (0,1) and (2,3) each |00> or |11>
    index = bits[:, 0] * 8 + bits[:, 1] * 4 + bits[:, 2] * 2 + bits[:, 3]
    observed = np.bincount(index, minlength=16)
    expected = np.zeros(16)
    for a in (0, 1):
        for b in (0, 1):
            pa = one[0] if a else 1 - one[0]
            pb = one[2] if b else 1 - one[2]
            expected[a * 12 + b * 3] = pa * pb * shots
    assert observed[expected == 0].sum() == 0
    kept = expected > 0
    assert stats.chisquare(observed[kept], expected[kept]).pvalue > 1e-9


def test_a_custatevec_whose_packages_do_not_load_is_refused_in_one_line() -> None:
    """Its packages found by their files but not loading (here: not installed) is
    ``QE108 engine-unavailable`` at the engine's making, in one line, never an
    internal error."""
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    from qmk.engines.adapters import custatevec

    with pytest.raises(EngineError) as caught:
        custatevec.loaded()
    said = str(caught.value)
    assert caught.value.code == "QE108" and "\n" not in said
    assert said.startswith("QE108 engine-unavailable: the custatevec engine cannot run here")
    assert "ModuleNotFoundError: No module named 'cupy'" in said
