"""Runs from and to quantum states: ``run(initial_state=..., final_state=...)`` and
``qmk run --initial-state/--state``.

Exported amplitudes are checked against Aer's statevector of the same circuit (the
file's little-endian order is Qiskit's), exported stabilizers against stim, and runs
from an initial state against the exact distribution (chi-square goodness of fit at
the stated seeds, each at p > 1e-6).
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from qmk.engines import EngineError
from qmk.engines.state_io import Amplitudes, Stabilizers, read
from qmk.execution.checkpoint import ExecutionState
from qmk.execution.runs import run
from qmk.execution.trajectories import Suspended
from qmk.frontends import to_qasm3
from qmk.frontends.qiskit import from_qiskit
from qmk.qvm.asm import assemble
from support.cli import qmk
from support.frontends import random_circuit

SEED = 31
SHOTS = 4000


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)))


def _unmeasured(seed: int, n: int = 4, depth: int = 16):
    """A random Qiskit circuit of table gates (non-Clifford), without its measurements."""
    return random_circuit(seed, n=n, depth=depth).remove_final_measurements(inplace=False)


def _aer_statevector(circuit) -> np.ndarray:
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="statevector")
    saved = circuit.copy()
    saved.save_statevector()
    compiled = transpile(saved, sim, optimization_level=0)
    return np.asarray(sim.run(compiled).result().get_statevector(), dtype=complex)


def _goodness_of_fit(counts: Counter[str], probs: dict[str, float], shots: int) -> float:
    """p-value of "counts were drawn from probs" (bins under 5 expected shots pooled)."""
    keys = sorted(set(probs) | set(counts))
    expected = np.array([probs.get(k, 0.0) * shots for k in keys])
    observed = np.array([counts.get(k, 0) for k in keys], dtype=float)
    assert observed[expected == 0].sum() == 0, "an outcome of probability 0 occurred"
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    return float(stats.chisquare(obs[keep], exp[keep]).pvalue)


def _measure_all(n: int, body: str = "") -> str:
    names = ", ".join(f"vq:q{k}" for k in range(n))
    lines = [".caps CAP_ALLOC", f"a: ALLOC_LQ {names}", body]
    lines += [f"m{k}: MEASURE_Z vq:q{k}, out:m{k}" for k in range(n)]
    lines.append(f"f: FREE_LQ {names}")
    return "\n".join(lines) + "\n"


BELL = """.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
c: APPLY_CNOT vq:q0, vq:q1
f: FREE_LQ vq:q0, vq:q1
"""


# ----------------------------------------------------------------------------- export


def test_a_bell_program_exports_its_stabilizer_tableau():
    result = run(assemble(BELL), shots=10, seed=SEED, noise=False, final_state=True)
    assert result.engine == "stabilizer" and result.telemetry.mode == "final-state"
    assert result.final_state == Stabilizers(qubits=("q0", "q1"), stabilizers=("+XX", "+ZZ"))
    assert result.counts == {"": 10}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exported_amplitudes_are_aers_statevector_of_the_same_circuit(seed):
    pytest.importorskip("qiskit_aer")
    circuit = _unmeasured(seed)
    result = run(from_qiskit(circuit), shots=1, seed=seed, noise=False, final_state=True)
    state = result.final_state
    assert isinstance(state, Amplitudes) and state.qubits == ("q0", "q1", "q2", "q3")
    assert _overlap(state.amplitudes, _aer_statevector(circuit)) == pytest.approx(1, abs=1e-9)


def test_the_openqasm_3_of_a_program_has_the_state_it_exports():
    import qiskit.qasm3

    pytest.importorskip("qiskit_qasm3_import")
    graph = from_qiskit(_unmeasured(7))
    state = run(graph, shots=1, seed=7, noise=False, final_state="amplitudes").final_state
    reloaded = qiskit.qasm3.loads(to_qasm3(graph))
    assert _overlap(state.amplitudes, _aer_statevector(reloaded)) == pytest.approx(1, abs=1e-9)


def test_a_clifford_program_exports_amplitudes_when_asked_and_they_agree_with_its_tableau():
    import stim

    program = assemble(BELL.replace("f: FREE_LQ", "s: APPLY_S vq:q1\nf: FREE_LQ"))
    stabilizers = run(program, shots=1, seed=SEED, noise=False, final_state=True).final_state
    amplitudes = run(program, shots=1, seed=SEED, noise=False, final_state="amplitudes")
    assert amplitudes.engine == "stabilizer"
    tableau = stim.Tableau.from_stabilizers([stim.PauliString(s) for s in stabilizers.stabilizers])
    expected = tableau.to_state_vector(endian="little")
    assert _overlap(amplitudes.final_state.amplitudes, expected) == pytest.approx(1, abs=1e-6)
    assert np.allclose(
        amplitudes.final_state.amplitudes, [math.sqrt(0.5), 0, 0, 1j * math.sqrt(0.5)]
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # the highest qubits touched by no gate (stim's simulator never grew to them)
        ("h: APPLY_H vq:q0", ("+XII", "+IZI", "+IIZ")),
        ("h: APPLY_H vq:q2", ("+ZII", "+IZI", "+IIX")),
        # no gate at all, and a gate that is the identity on the stabilizer engine
        ("", ("+ZII", "+IZI", "+IIZ")),
        ("r: APPLY_RY vq:q1, theta=0.0", ("+ZII", "+IZI", "+IIZ")),
    ],
    ids=["high-untouched", "low-untouched", "empty", "ry0"],
)
@pytest.mark.parametrize("kind", ["stabilizers", "amplitudes"])
def test_qubits_no_gate_touches_are_exported_in_zero(body, expected, kind):
    import stim

    program = assemble(
        f".caps CAP_ALLOC\na: ALLOC_LQ vq:q0, vq:q1, vq:q2\n{body}\n"
        "f: FREE_LQ vq:q0, vq:q1, vq:q2\n"
    )
    result = run(program, shots=1, seed=SEED, noise=False, engine="stabilizer", final_state=kind)
    state = result.final_state
    tableau = stim.Tableau.from_stabilizers([stim.PauliString(s) for s in expected])
    if kind == "stabilizers":
        assert state == Stabilizers(qubits=("q0", "q1", "q2"), stabilizers=expected)
    else:
        vector = tableau.to_state_vector(endian="little")  # stim's, in float32
        assert _overlap(state.amplitudes, vector) == pytest.approx(1, abs=1e-6)


def test_qubits_freed_in_a_product_state_leave_the_others_pure():
    program = assemble(
        """.caps CAP_ALLOC CAP_MAGIC
a: ALLOC_LQ vq:a, vq:b, vq:c
h: APPLY_H vq:a
ry: APPLY_RY vq:b, theta=0.7
f: FREE_LQ vq:b
r: RESET vq:a
t: INJECT_T_STATE vq:c
end: FREE_LQ vq:a, vq:c
"""
    )
    state = run(program, shots=1, seed=SEED, noise=False, final_state=True).final_state
    assert state.qubits == ("a", "c")
    t_plus = np.array([1, np.exp(1j * math.pi / 4)]) / math.sqrt(2)
    assert _overlap(state.amplitudes, np.kron(t_plus, [1, 0])) == pytest.approx(1)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("m: MEASURE_X vq:q1, out:m", "node #3 'm' (MEASURE_X): it measures"),
        ("m: MEASURE_BELL vq:q0, vq:q1, out:x, out:z", "node #3 'm' (MEASURE_BELL)"),
        ("r: RESET vq:q1", "qubit 'q1' is entangled with others"),
        ("f0: FREE_LQ vq:q0\nh1: APPLY_H vq:q1", "qubit 'q0' is entangled with others"),
    ],
)
def test_a_final_state_that_is_not_one_pure_state_is_refused_naming_its_cause(extra, message):
    end = "f: FREE_LQ vq:q1" if "f0:" in extra else "f: FREE_LQ vq:q0, vq:q1"
    program = assemble(BELL.replace("f: FREE_LQ vq:q0, vq:q1", f"{extra}\n{end}"))
    with pytest.raises(EngineError) as info:
        run(program, shots=1, seed=SEED, noise=False, final_state=True)
    assert info.value.code == "QE113" and message in str(info.value)


def test_a_noisy_run_or_a_werner_channel_has_no_final_state():
    with pytest.raises(EngineError, match="QE113 state-unavailable: logical noise is on"):
        run(assemble(BELL), shots=1, seed=SEED, final_state=True)
    channel = """.caps CAP_ALLOC CAP_LINK
a: ALLOC_LQ vq:q0, vq:q1
o: OPEN_CHAN vq:q0, vq:q1, ch:c, opts={"fidelity": 0.9}
x: CLOSE_CHAN ch:c
f: FREE_LQ vq:q0, vq:q1
"""
    with pytest.raises(EngineError, match=r"QE113.*node #1 'o' \(OPEN_CHAN\).*fidelity 0.9"):
        run(assemble(channel), shots=1, seed=SEED, noise=False, final_state=True)
    perfect = channel.replace('opts={"fidelity": 0.9}', 'opts={"fidelity": 1.0}')
    state = run(assemble(perfect), shots=1, seed=SEED, noise=False, final_state=True)
    assert state.final_state.stabilizers == ("+XX", "+ZZ")


# ----------------------------------------------------------------------------- import


@pytest.mark.parametrize("seed", [4, 5])
def test_export_then_import_gives_back_the_state(seed):
    state = run(from_qiskit(_unmeasured(seed)), shots=1, seed=seed, noise=False, final_state=True)
    identity = assemble(
        ".caps CAP_ALLOC\na: ALLOC_LQ vq:a, vq:b, vq:c, vq:d\nf: FREE_LQ vq:a, vq:b, vq:c, vq:d\n"
    )
    again = run(
        identity,
        shots=1,
        seed=seed,
        noise=False,
        initial_state=state.final_state,
        final_state=True,
    )
    assert again.final_state.qubits == ("a", "b", "c", "d")
    assert _overlap(again.final_state.amplitudes, state.final_state.amplitudes) == pytest.approx(1)


def test_a_stabilizer_state_goes_round_trip_exactly_on_the_stabilizer_engine():
    program = assemble(BELL.replace("f: FREE_LQ", "x: APPLY_SDG vq:q0\nf: FREE_LQ"))
    first = run(program, shots=1, seed=SEED, noise=False, final_state=True).final_state
    identity = assemble(".caps CAP_ALLOC\na: ALLOC_LQ vq:x, vq:y\nf: FREE_LQ vq:x, vq:y\n")
    again = run(identity, shots=1, seed=SEED, noise=False, initial_state=first, final_state=True)
    assert again.engine == "stabilizer"
    assert again.final_state.stabilizers == first.stabilizers


def test_an_initial_state_then_the_program_gives_the_exact_distribution():
    """psi = a random 3-qubit state, then H on q0 and CNOT(q1, q2), then Z measurements."""
    rng = np.random.default_rng(SEED)
    psi = rng.normal(size=8) + 1j * rng.normal(size=8)
    psi /= np.linalg.norm(psi)
    program = assemble(_measure_all(3, "h: APPLY_H vq:q0\nc: APPLY_CNOT vq:q1, vq:q2"))
    state = Amplitudes(qubits=("x", "y", "z"), amplitudes=psi)
    result = run(program, shots=SHOTS, seed=SEED, noise=False, initial_state=state)
    assert result.engine == "statevector"  # a Clifford program: amplitudes need rotations
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(1, 2)
    final = Statevector(psi).evolve(circuit)
    # QMK's keys list events m0 m1 m2 (q0 leftmost); Qiskit's dict keys put qubit 0 rightmost
    probs = {key[::-1]: p for key, p in final.probabilities_dict().items()}
    counts = Counter("".join(map(str, row)) for row in result.bits.tolist())
    assert _goodness_of_fit(counts, probs, SHOTS) > 1e-6


def test_a_stabilizer_initial_state_runs_on_the_stabilizer_engine_with_mid_circuit_measurement():
    """|Phi+> on (q0, q1), measure q0 in X mid-circuit, correct q1 by Z, measure q1 in X: 0."""
    program = assemble(
        """.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
mx: MEASURE_X vq:q0, out:m0
z: APPLY_Z vq:q1 when ev:m0 == 1
m1: MEASURE_X vq:q1, out:m1
f: FREE_LQ vq:q0, vq:q1
"""
    )
    state = Stabilizers(qubits=("a", "b"), stabilizers=("+XX", "+ZZ"))
    result = run(program, shots=SHOTS, seed=SEED, noise=False, initial_state=state)
    assert result.engine == "stabilizer"
    assert set(result.counts) == {"00", "10"}
    assert stats.binomtest(result.counts["10"], SHOTS, 0.5).pvalue > 1e-6


def test_a_run_from_an_initial_state_resumes_with_the_counts_of_one_that_never_stopped():
    class AtFirstFence:
        urgent = False
        saved = None

        def at_fence(self, epoch):
            return "yield" if self.saved is None else None

        def at_op(self):
            return None

        def after_segment(self):
            return None

        def save(self, state):
            self.saved = state

    body = "m: MEASURE_Z vq:q0, out:mid\nfence: FENCE_EPOCH\nt: APPLY_RY vq:q1, theta=0.4"
    program = assemble(_measure_all(2, body))
    state = Amplitudes(qubits=("a", "b"), amplitudes=np.array([0.6, 0, 0, 0.8]))
    control = AtFirstFence()
    with pytest.raises(Suspended):
        run(program, shots=500, seed=SEED, noise=False, initial_state=state, control=control)
    saved = ExecutionState.from_bytes(control.saved.to_bytes())
    resumed = run(program, shots=500, seed=SEED, noise=False, initial_state=state, resume=saved)
    whole = run(program, shots=500, seed=SEED, noise=False, initial_state=state)
    assert resumed.counts == whole.counts


@pytest.mark.parametrize(
    ("program", "message"),
    [
        (_measure_all(3), "the initial state has 2 qubit(s) (a, b) but the program's opening"),
        (
            ".caps CAP_ALLOC\na: ALLOC_LQ vq:q0\nh: APPLY_H vq:q0\nb: ALLOC_LQ vq:q1\n"
            "f: FREE_LQ vq:q0, vq:q1\n",
            "opening ALLOC_LQ nodes allocate 1 (q0)",
        ),
    ],
)
def test_an_initial_state_of_another_size_is_refused(program, message):
    state = Stabilizers(qubits=("a", "b"), stabilizers=("+ZI", "+IZ"))
    with pytest.raises(EngineError) as info:
        run(assemble(program), shots=1, seed=SEED, noise=False, initial_state=state)
    assert info.value.code == "QE112" and message in str(info.value)


def test_amplitudes_on_the_named_stabilizer_engine_are_refused():
    state = Amplitudes(qubits=("a", "b"), amplitudes=np.array([0.6, 0, 0, 0.8]))
    with pytest.raises(EngineError, match="QE112 state-mismatch: the stabilizer engine cannot"):
        run(assemble(_measure_all(2)), shots=1, seed=SEED, engine="stabilizer", initial_state=state)


# ----------------------------------------------------------------------------- command line


def test_qmk_run_state_writes_a_file_and_initial_state_reads_it(tmp_path):
    source = tmp_path / "bell.qvm.asm"
    source.write_text(BELL, encoding="utf-8")
    out = tmp_path / "bell.state.json"
    status, stdout, stderr = qmk(
        "run", str(source), "--no-noise", "--seed", "3", "--state", str(out)
    )
    assert status == 0 and stderr == ""
    assert f"final state: 2 qubits (q0, q1) as stabilizers, written to {out}" in stdout
    assert read(out).stabilizers == ("+XX", "+ZZ")
    assert json.loads(out.read_text())["metadata"]["engine"] == "stabilizer"

    measure = tmp_path / "measure.qvm.asm"
    measure.write_text(_measure_all(2), encoding="utf-8")
    status, stdout, _ = qmk(
        "run", str(measure), "--no-noise", "--seed", "3", "--initial-state", str(out), "--json"
    )
    assert status == 0 and set(json.loads(stdout)["counts"]) == {"00", "11"}


@pytest.mark.parametrize(
    ("program", "stabilizers"),
    [
        ("qubit[3] q;\nh q[0];\n", ["+XII", "+IZI", "+IIZ"]),
        ("qubit[2] q;\n", ["+ZI", "+IZ"]),
        ("qubit[1] q;\nry(0) q[0];\n", ["+Z"]),
    ],
    ids=["untouched-high-qubits", "empty", "ry0"],
)
def test_qmk_run_state_of_a_clifford_circuit_with_idle_qubits(tmp_path, program, stabilizers):
    # were an internal error (IndexError) and QE111 '... need 1 stabilizers, got 0'
    source = tmp_path / "idle.qasm"
    source.write_text(f'OPENQASM 3;\ninclude "stdgates.inc";\n{program}', encoding="utf-8")
    out = tmp_path / "idle.state.json"
    status, _, stderr = qmk("run", str(source), "--no-noise", "--seed", "3", "--state", str(out))
    assert (status, stderr) == (0, "")
    assert list(read(out).stabilizers) == stabilizers


def test_qmk_run_writes_amplitudes_when_asked(tmp_path):
    source = tmp_path / "bell.qvm.asm"
    source.write_text(BELL, encoding="utf-8")
    out = tmp_path / "amp.json"
    args = ("--no-noise", "--state", str(out), "--state-kind", "amplitudes", "--json")
    status, stdout, _ = qmk("run", str(source), *args)
    assert status == 0 and json.loads(stdout)["state_file"] == str(out)
    assert np.allclose(read(out).amplitudes, [math.sqrt(0.5), 0, 0, math.sqrt(0.5)])


@pytest.mark.parametrize(
    ("content", "start"),
    [
        ("{not json", "QE111 state-file: {path}: not JSON"),
        ('{"format": "qmk-state", "version": 9}', "QE111 state-file: {path}: kind: missing"),
        (
            '{"format": "qmk-state", "version": 1, "kind": "stabilizers", "qubits": ["a"], '
            '"order": "left-to-right", "stabilizers": ["+X", "+Z"]}',
            "QE111 state-file: {path}: stabilizers: 1 qubits need 1 stabilizers, got 2",
        ),
        (
            '{"format": "qmk-state", "version": 1, "kind": "stabilizers", "qubits": ["a"], '
            '"order": "left-to-right", "stabilizers": ["+Z"]}',
            "QE112 state-mismatch: the initial state has 1 qubit(s)",
        ),
    ],
    ids=["not-json", "missing-kind", "too-many-strings", "wrong-size"],
)
def test_bad_initial_state_files_are_one_coded_line_with_exit_status_2(tmp_path, content, start):
    program = tmp_path / "p.qvm.asm"
    program.write_text(_measure_all(2), encoding="utf-8")
    path = tmp_path / "in.json"
    path.write_text(content, encoding="utf-8")
    status, stdout, stderr = qmk("run", str(program), "--initial-state", str(path))
    assert (status, stdout) == (2, "")
    assert stderr.startswith(start.format(path=path)) and stderr.count("\n") == 1


def test_state_export_refusals_are_one_coded_line_with_exit_status_2(tmp_path):
    program = tmp_path / "p.qvm.asm"
    program.write_text(_measure_all(2), encoding="utf-8")
    status, stdout, stderr = qmk("run", str(program), "--no-noise", "--state", "out.json")
    assert (status, stdout) == (2, "")
    assert stderr.startswith("QE113 state-unavailable: node #1 'm0' (MEASURE_Z): it measures")
    assert stderr.count("\n") == 1
    bell = tmp_path / "bell.qvm.asm"
    bell.write_text(BELL, encoding="utf-8")
    missing = tmp_path / "no" / "such" / "dir" / "out.json"
    status, _, stderr = qmk("run", str(bell), "--no-noise", "--state", str(missing))
    assert status == 2 and stderr.startswith(f"QE111 state-file: {missing}: cannot write")
