"""The state file format, and states read from and prepared on engines.

Checked against exact amplitudes, Qiskit's ``Statevector`` (its little-endian order is
the format's) and stim's tableaux; the JSON Schema is checked with ``jsonschema``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qmk.engines import EngineError
from qmk.engines.stabilizer import StabilizerEngine
from qmk.engines.state_io import (
    STATE_SCHEMA,
    Amplitudes,
    Stabilizers,
    capture,
    dumps,
    loads,
    preparation,
    prepare,
    read,
    write,
)
from qmk.engines.statevector import StatevectorEngine

SEED = 2024


def _random_state(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=1 << n) + 1j * rng.normal(size=1 << n)
    return vector / np.linalg.norm(vector)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)))


def _names(n: int) -> tuple[str, ...]:
    return tuple(f"q{k}" for k in range(n))


# ----------------------------------------------------------------------------- the format


def test_amplitudes_round_trip_through_json_exactly():
    state = Amplitudes(qubits=_names(3), amplitudes=_random_state(3, SEED))
    again = loads(dumps(state))
    assert again == state and again.amplitudes.dtype == np.complex128


def test_stabilizers_round_trip_through_json():
    state = Stabilizers(qubits=("a", "b", "c"), stabilizers=("+XXI", "-ZZI", "+IIY"))
    assert loads(dumps(state)) == state


def test_written_files_meet_the_json_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    for state in (
        Amplitudes(qubits=_names(2), amplitudes=_random_state(2, SEED)),
        Stabilizers(qubits=("a", "b"), stabilizers=("+XX", "+ZZ")),
    ):
        path = tmp_path / f"{state.kind}.json"
        write(path, state)
        jsonschema.validate(json.loads(path.read_text()), STATE_SCHEMA)
        assert read(path) == state


def test_the_schema_refuses_what_the_reader_refuses():
    jsonschema = pytest.importorskip("jsonschema")
    bad = {"format": "qmk-state", "version": 1, "kind": "stabilizers", "qubits": ["a"]}
    bad |= {"order": "left-to-right", "amplitudes": [[1, 0], [0, 0]]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, STATE_SCHEMA)
    with pytest.raises(EngineError, match="QE111"):
        loads(json.dumps(bad))


def test_big_endian_amplitudes_are_read_in_the_other_bit_order():
    # |q0 q1> = |1 0>: little-endian index 1, big-endian index 2
    data = {"format": "qmk-state", "version": 1, "kind": "amplitudes", "qubits": ["q0", "q1"]}
    data |= {"order": "big-endian", "amplitudes": [[0, 0], [0, 0], [1, 0], [0, 0]]}
    assert loads(json.dumps(data)).amplitudes.tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "qiskit"}, "format"),
        ({"version": 2}, "version"),
        ({"kind": "density"}, "kind"),
        ({"qubits": []}, "qubits"),
        ({"qubits": ["a", "a"]}, "qubits"),
        ({"order": "middle-endian"}, "order"),
        ({"amplitudes": [[1, 0], [0, 0], [0, 0]]}, "amplitudes"),
        ({"amplitudes": [[1, 0], [0, 0], [0, 0], [0, "x"]]}, "amplitudes[3]"),
        ({"amplitudes": [[1, 0], [0, 0], [0, 0], [1, 0]]}, "amplitudes"),  # norm sqrt(2)
        ({"extra": 1}, "extra"),
        ({"stabilizers": ["+XX", "+ZZ"]}, "stabilizers"),
    ],
)
def test_a_bad_file_is_a_coded_error_naming_the_field(change, field):
    data = {"format": "qmk-state", "version": 1, "kind": "amplitudes", "qubits": ["a", "b"]}
    data |= {"order": "little-endian", "amplitudes": [[1, 0], [0, 0], [0, 0], [0, 0]]}
    data |= change
    with pytest.raises(EngineError) as info:
        loads(json.dumps(data), source="in.json")
    assert info.value.code == "QE111"
    assert str(info.value).startswith(f"QE111 state-file: in.json: {field}")


@pytest.mark.parametrize(
    "stabilizers",
    [("+XX", "+XX"), ("+XI", "+ZI"), ("+XX",), ("+XQ", "+ZZ"), ("XX", "+ZZ")],
    ids=["dependent", "anticommuting", "too-few", "not-a-pauli", "no-sign"],
)
def test_strings_that_are_not_the_stabilizers_of_one_state_are_refused(stabilizers):
    data = {"format": "qmk-state", "version": 1, "kind": "stabilizers", "qubits": ["a", "b"]}
    data |= {"order": "left-to-right", "stabilizers": list(stabilizers)}
    with pytest.raises(EngineError, match="QE111 state-file: stabilizers"):
        loads(json.dumps(data))


def test_not_json_and_unreadable_files_are_coded_errors(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(EngineError, match=r"^QE111 state-file: .*s\.json: not JSON"):
        read(path)
    with pytest.raises(EngineError, match=r"QE111 state-file: .*cannot read"):
        read(tmp_path / "missing.json")


# ----------------------------------------------------------------------------- engines


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_random_amplitudes_are_prepared_exactly_on_the_statevector_engine(n):
    vector = _random_state(n, SEED + n)
    engine = StatevectorEngine(seed=1)
    qubits = [engine.allocate() for _ in range(n)]
    prepare(engine, qubits, Amplitudes(qubits=_names(n), amplitudes=vector))
    got = capture(engine, qubits, _names(n))
    assert got.kind == "amplitudes" and got.qubits == _names(n)
    assert _overlap(got.amplitudes, vector) == pytest.approx(1, abs=1e-12)


def test_prepared_amplitudes_are_qiskits_statevector_with_qubit_k_as_bit_k():
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    vector = _random_state(4, SEED)
    circuit = QuantumCircuit(4)
    for gate, local, params in preparation(Amplitudes(qubits=_names(4), amplitudes=vector)):
        getattr(circuit, gate)(*params, *local)
    assert _overlap(Statevector(circuit).data, vector) == pytest.approx(1, abs=1e-12)


def test_a_sparse_state_takes_few_gates():
    ghz = np.zeros(1 << 6, dtype=complex)
    ghz[0] = ghz[-1] = math.sqrt(0.5)
    assert len(preparation(Amplitudes(qubits=_names(6), amplitudes=ghz))) < 200


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_stabilizer_states_are_prepared_on_both_engines(seed):
    import stim

    n = 6
    rng = np.random.default_rng(seed)
    sim = stim.TableauSimulator()
    for _ in range(60):
        gate = rng.choice(["h", "s", "x", "cx"])
        qubits = rng.choice(n, size=2 if gate == "cx" else 1, replace=False).tolist()
        getattr(sim, gate)(*qubits)
    tableau = sim.current_inverse_tableau().inverse()
    strings = tuple(str(tableau.z_output(k)).replace("_", "I") for k in range(n))
    state = Stabilizers(qubits=_names(n), stabilizers=strings)
    expected = sim.state_vector(endian="little")
    for engine in (StabilizerEngine(seed=seed), StatevectorEngine(seed=seed)):
        qubits = [engine.allocate() for _ in range(n)]
        prepare(engine, qubits, state)
        got = capture(engine, qubits, _names(n), kind="amplitudes").amplitudes
        assert _overlap(got, expected) == pytest.approx(1, abs=1e-6), engine.name


def test_the_stabilizer_engine_exports_canonical_stabilizers_of_its_live_qubits():
    engine = StabilizerEngine(seed=5)
    a, b, c, d = (engine.allocate() for _ in range(4))
    engine.apply("h", [a])
    engine.apply("cx", [a, c])
    engine.apply("x", [d])
    engine.free(b)
    state = capture(engine, [a, c, d], ("a", "c", "d"))
    assert state == Stabilizers(qubits=("a", "c", "d"), stabilizers=("+XXI", "+ZZI", "-IIZ"))
    amplitudes = capture(engine, [a, c, d], ("a", "c", "d"), kind="amplitudes").amplitudes
    expected = np.zeros(8, dtype=complex)
    expected[0b100] = expected[0b111] = math.sqrt(0.5)  # d = 1 (bit 2), a = c
    assert np.allclose(amplitudes, expected, atol=1e-15)


def test_the_statevector_engine_cannot_export_a_tableau():
    engine = StatevectorEngine(seed=0)
    q = engine.allocate()
    with pytest.raises(EngineError, match="QE112 state-mismatch"):
        capture(engine, [q], ("q",), kind="stabilizers")


def test_the_stabilizer_engine_cannot_prepare_amplitudes():
    engine = StabilizerEngine(seed=0)
    q = engine.allocate()
    state = Amplitudes(qubits=("q",), amplitudes=[math.cos(0.3), math.sin(0.3)])
    with pytest.raises(EngineError, match=r"QE112 state-mismatch.*statevector"):
        prepare(engine, [q], state)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_loaded_amplitudes_act_like_the_gate_prepared_state_beside_other_qubits(n):
    """The statevector engine loads amplitudes as new tensor axes; gates that follow
    (entangling the state with a qubit prepared before it) see the same state as after
    the gate preparation."""
    vector = _random_state(n, SEED + 10 * n)
    state = Amplitudes(qubits=_names(n), amplitudes=vector)
    finals = []
    for load in (True, False):
        engine = StatevectorEngine(seed=1)
        spare = engine.allocate()
        engine.apply("h", [spare])
        qubits = [engine.allocate() for _ in range(n)]
        if load:
            prepare(engine, qubits, state)
        else:
            for gate, local, params in preparation(state):
                engine.apply(gate, [qubits[i] for i in local], params)
        engine.apply("cx", [qubits[0], spare])
        engine.apply("ry", [qubits[-1]], [0.3])
        finals.append(engine.state_vector([spare, *qubits]))
    assert _overlap(*finals) == pytest.approx(1, abs=1e-12)


def test_amplitudes_load_only_onto_fresh_qubits():
    engine = StatevectorEngine(seed=1)
    a, b = engine.allocate(), engine.allocate()
    engine.apply("x", [a])
    with pytest.raises(EngineError, match="QE105 engine-misuse: load_amplitudes needs fresh"):
        engine.load_amplitudes([a, b], np.array([1, 0, 0, 0]))
    with pytest.raises(EngineError, match="needs 2\\*\\*1 finite amplitudes"):
        engine.load_amplitudes([b], np.array([1, 0, 0, 0]))


def test_a_sixteen_qubit_initial_state_loads_without_a_preparation_circuit():
    """16 qubits took about 4 * 2**16 gates (141 s) before the engine loaded amplitudes."""
    vector = _random_state(16, SEED)
    engine = StatevectorEngine(seed=1)
    qubits = [engine.allocate() for _ in range(16)]
    prepare(engine, qubits, Amplitudes(qubits=_names(16), amplitudes=vector))
    assert _overlap(capture(engine, qubits, _names(16)).amplitudes, vector) == pytest.approx(
        1, abs=1e-9
    )
