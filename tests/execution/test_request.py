"""The run request: one frozen, typed value that decides a run, from plain JSON and back,
whose digest keys checkpoints, and which the executor runs exactly."""

from __future__ import annotations

import hashlib
import json

import msgspec
import pytest

from qmk.errors import InvalidArgument
from qmk.execution.executor import build_request, execute, run
from qmk.execution.request import (
    PHYSICS_FIELDS,
    Policy,
    Rewrite,
    RunRequest,
    program_digest,
    run_key,
)
from qmk.qec.logical import Calibration
from qmk.qec.params import qubit_params
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify

T_PAIR = verify(
    assemble(
        """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
t: APPLY_T vq:q0
c: APPLY_CNOT vq:q0, vq:q1
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_Z vq:q1, out:m1
f: FREE_LQ vq:q0, vq:q1
"""
    )
)


def _full_request() -> RunRequest:
    return RunRequest(
        program_digest=program_digest("{}"),
        shots=300,
        seed=2**40,
        engine="statevector",
        precision="double",
        qubit=qubit_params("qubit_gate_ns_e4"),
        profile="logical:surface_code(d=5)",
        noise_model="depolarizing(p=0.001)",
        calibration=Calibration(
            family="surface_code", crossing_prefactor=0.07, error_correction_threshold=0.011
        ),
        rewrite=Rewrite(profiles={"logical:surface_code(d=5)": "logical:surface_code(d=7)"}),
        checkpoint_every_ops=40,
        part=(1, 3),
        policy=Policy(priority=7, timeout_ms=1500, channels={"link": "ch_1"}),
        trace_context="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
    )


def test_a_run_request_round_trips_through_json_with_every_field() -> None:
    request = _full_request()
    data = json.loads(json.dumps(request.to_json()))
    assert RunRequest.from_json(data) == request
    assert data["engine_requested"] == "statevector" and "engine" not in data
    assert data["qubit"]["name"] == "qubit_gate_ns_e4"


def test_a_run_request_is_frozen_and_a_change_is_a_new_copy() -> None:
    request = _full_request()
    with pytest.raises(AttributeError):
        request.shots = 1  # type: ignore[misc]
    changed = msgspec.structs.replace(request, shots=1)
    assert changed.shots == 1 and request.shots == 300


def test_a_request_with_an_unknown_or_bad_field_is_refused_naming_its_key() -> None:
    data = _full_request().to_json()
    with pytest.raises(InvalidArgument) as caught:
        RunRequest.from_json({**data, "shotz": 3})
    assert caught.value.details["key"] == "request.shotz"
    with pytest.raises(InvalidArgument) as caught:
        RunRequest.from_json({**data, "shots": 0})
    assert caught.value.details["key"] == "request.shots"
    with pytest.raises(InvalidArgument) as caught:
        RunRequest.from_json({**data, "policy": {**data["policy"], "priority": 10}})
    assert caught.value.details["key"] == "request.policy.priority"


def test_the_run_key_ignores_what_does_not_change_a_result_and_sees_the_physics() -> None:
    request = _full_request()
    same = msgspec.structs.replace(
        request, trace_context=None, checkpoint_every_ops=0, policy=Policy()
    )
    assert run_key(request) == run_key(same)
    for field, value in [
        ("seed", 1),
        ("shots", 301),
        ("profile", "logical:surface_code(d=3)"),
        ("noise_model", None),
        ("noise", False),
        ("rewrite", None),
        ("part", (0, 3)),
        ("target", "lattice-surgery"),
        ("target_options", {"block": "compact"}),
    ]:
        assert run_key(msgspec.structs.replace(request, **{field: value})) != run_key(request)


def test_a_request_names_its_target_and_the_logical_machines_key_is_unchanged() -> None:
    request = _full_request()
    assert request.target == "logical"
    before = {k: v for k, v in request.to_json().items() if k not in ("target", "target_options")}
    assert RunRequest.from_json(before) == request  # a request stored before targets
    # the key of a logical run is what it was before targets existed
    unkeyed = ("policy", "trace_context", "checkpoint_every_ops")
    data = {k: v for k, v in before.items() if k not in unkeyed}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    assert run_key(request) == hashlib.sha256(text.encode()).hexdigest()
    surgery = msgspec.structs.replace(request, target="lattice-surgery")
    data = json.loads(json.dumps(surgery.to_json()))
    assert data["target"] == "lattice-surgery"
    assert RunRequest.from_json(data) == surgery
    assert RunRequest.from_json(request.to_json()).target == "logical"
    with pytest.raises(InvalidArgument) as caught:
        RunRequest.from_json({**data, "target": "Lattice Surgery"})
    assert caught.value.details["key"] == "request.target"


def test_the_physics_of_a_request_restores_into_another() -> None:
    request = _full_request()
    plain = RunRequest(program_digest=request.program_digest, shots=300, seed=1)
    moved = plain.with_physics(request.physics())
    assert {name: getattr(moved, name) for name in PHYSICS_FIELDS} == {
        name: getattr(request, name) for name in PHYSICS_FIELDS
    }


def test_run_is_execute_of_the_request_its_arguments_make() -> None:
    options = {"shots": 500, "seed": 11, "profile": "logical:surface_code(d=3)"}
    request = build_request(T_PAIR, **options)
    assert (request.shots, request.seed, request.profile) == (500, 11, options["profile"])
    direct = run(T_PAIR, **options)
    assert execute(T_PAIR, request).counts == direct.counts
    assert execute(T_PAIR, request).memory == direct.memory


def test_an_engine_dtype_is_the_requests_precision() -> None:
    single = build_request(T_PAIR, shots=10, seed=1, engine_options={"dtype": "complex64"})
    assert single.precision == "single" and single.engine_options == {}
    default = build_request(T_PAIR, shots=10, seed=1)
    assert default.precision is None


def test_a_rewrite_adds_idle_cycles_and_fences_and_raises_profiles() -> None:
    text = json.dumps(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {
                        "id": "a",
                        "op": "ALLOC_LQ",
                        "args": {"profile": "logical:surface_code(d=3)"},
                        "vqs": ["q"],
                    },
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["e"]},
                    {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
                ]
            },
            "resources": {"vqs": ["q"], "chs": [], "events": ["e"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    rewrite = Rewrite(
        profiles={"logical:surface_code(d=3)": "logical:surface_code(d=5)"},
        idle={"m": 2},
        fences=("a",),
    )
    nodes = json.loads(rewrite.apply(text))["program"]["nodes"]
    assert [n["op"] for n in nodes] == [
        "ALLOC_LQ",
        "FENCE_EPOCH",
        "MEASURE_Z",
        "APPLY_RZ",
        "APPLY_RZ",
        "FREE_LQ",
    ]
    assert nodes[0]["args"]["profile"] == "logical:surface_code(d=5)"
    assert Rewrite().apply(text) == text
