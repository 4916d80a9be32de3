"""The ISA table: versions, ops, gates, program parsing, and the generated schema."""

from __future__ import annotations

import math

import jsonschema
import numpy as np
import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom import schema
from qmk.devices.neutral_atom.isa import (
    CURRENT,
    GATES,
    OPS,
    VERSIONS,
    gates_of,
    ops_of,
    parse_program,
    parse_version,
)
from qmk.engines.gates import GATES as ENGINE_GATES


def test_three_versions_are_offered_and_a_job_without_one_reads_as_the_last_digital_one():
    assert [str(v) for v in VERSIONS] == ["1.0", "1.1", "1.2"]
    assert str(CURRENT) == "1.1"
    assert {s.name for s in ops_of(VERSIONS[0])} < {s.name for s in ops_of(CURRENT)}
    # 1.2 adds the analog Evolve and nothing else.
    assert {s.name for s in ops_of(VERSIONS[2])} - {s.name for s in ops_of(CURRENT)} == {"Evolve"}


@pytest.mark.parametrize("value", [{"major": 1, "minor": 0}, "1.1", None])
def test_a_supported_version_is_read_in_either_form(value):
    assert parse_version(value) in VERSIONS


@pytest.mark.parametrize("value", [{"major": 2, "minor": 0}, "1.7", {"major": 0, "minor": 9}])
def test_an_unsupported_version_is_refused_with_the_list(value):
    with pytest.raises(DeviceError) as caught:
        parse_version(value)
    assert caught.value.code == "QD102"
    assert "supported: 1.0, 1.1" in caught.value.message


def test_the_issue_gate_set_is_in_the_table_with_params():
    wanted = ["X", "Y", "Z", "H", "S", "SDG", "T", "TDG", "RX", "RY", "RZ", "U3", "CZ", "CX"]
    assert set(wanted) <= set(GATES)
    assert GATES["RX"].params == ("theta",) and len(GATES["U3"].params) == 3
    assert {g.name for g in gates_of(VERSIONS[0])} == set(wanted) - {"U3"}


@pytest.mark.parametrize("name", sorted(GATES))
def test_every_gate_lowers_to_engine_gates_with_the_right_unitary(name):
    spec = GATES[name]
    params = tuple(0.3 + 0.4 * i for i in range(len(spec.params)))
    matrix = np.eye(2**spec.arity, dtype=complex)
    for gate, values in spec.engine_gates(params):
        matrix = ENGINE_GATES[gate].matrix(values) @ matrix
    if name == "U3":
        theta, phi, lam = params
        expected = np.array(
            [
                [math.cos(theta / 2), -np.exp(1j * lam) * math.sin(theta / 2)],
                [
                    np.exp(1j * phi) * math.sin(theta / 2),
                    np.exp(1j * (phi + lam)) * math.cos(theta / 2),
                ],
            ]
        )
        phase = expected[0, 0] / matrix[0, 0]
        assert abs(abs(phase) - 1) < 1e-12
        np.testing.assert_allclose(matrix * phase, expected, atol=1e-12)
    else:
        assert np.allclose(matrix.conj().T @ matrix, np.eye(len(matrix)))


def test_clifford_ness_follows_the_angle():
    assert GATES["RZ"].is_clifford((math.pi / 2,)) and not GATES["RZ"].is_clifford((0.1,))
    assert GATES["CZ"].is_clifford() and not GATES["T"].is_clifford()


def test_a_prototype_program_parses_and_writes_back():
    program = [
        {"op": "AllocArray", "n_qubits": 2},
        {"op": "ApplyGate", "name": "X", "targets": [1], "param": 0.0},
        {"op": "ApplyGate", "name": "RX", "targets": [0], "param": 0.125},
        {"op": "MoveAtom", "atom": 0, "position": 2.0},
        {"op": "Wait", "duration": 1.0},
        {"op": "Pulse", "target": 0, "detuning": 1.5, "duration": 100.0},
        {"op": "Measure", "targets": [0, 1]},
    ]
    parsed = parse_program(program, version=VERSIONS[0])
    assert [i.index for i in parsed] == list(range(7))
    assert parsed[3].position == (2.0, 0.0, 0.0)
    assert parsed[2].to_json() == {"op": "ApplyGate", "name": "RX", "targets": [0], "param": 0.125}


@pytest.mark.parametrize(
    ("item", "code"),
    [
        ({"op": "Teleport"}, "QD106"),
        ({"op": "ApplyGate", "name": "CCX", "targets": [0, 1, 2]}, "QD106"),
        ({"op": "ApplyGate", "name": "CZ", "targets": [0]}, "QD101"),
        ({"op": "ApplyGate", "name": "RX", "targets": [0]}, "QD101"),
        ({"op": "ApplyGate", "name": "X", "targets": [0], "param": 0.5}, "QD101"),
        ({"op": "Wait", "duration": -1.0}, "QD101"),
        ({"op": "Measure", "targets": [0], "basis": "X"}, "QD106"),
        ({"op": "MoveAtom", "atom": 0}, "QD101"),
        ("AllocArray", "QD101"),
    ],
)
def test_a_bad_instruction_is_a_coded_error_naming_its_index(item, code):
    with pytest.raises(DeviceError) as caught:
        parse_program([{"op": "AllocArray", "n_qubits": 3}, item])
    assert caught.value.code == code
    assert "instruction #1" in caught.value.message


def test_the_shipped_schema_is_the_generated_one():
    assert schema.main(["--check"]) == 0
    assert schema.load_schema() == schema.build_schema()


def test_the_schema_accepts_a_wire_job_and_lists_every_op():
    job = {
        "job_id": "j",
        "device_id": "state-vector",
        "profile": None,
        "shots": 10,
        "isa_version": {"major": 1, "minor": 1},
        "program": [
            {"op": "AllocArray", "n_qubits": 2},
            {"op": "ApplyGate", "name": "U3", "targets": [0], "params": [0.1, 0.2, 0.3]},
            {"op": "Measure", "targets": [0, 1]},
        ],
        "noise": {"p_loss": 0.1, "readout": {"p_flip0_to_1": 0.01}},
    }
    jsonschema.validate(job, schema.build_schema())
    assert set(OPS) <= set(schema.build_schema()["$defs"])
