"""The run request: one frozen, typed value that decides a run, from plain JSON and back,
whose digest keys checkpoints, and which the executor runs exactly."""

from __future__ import annotations

import gc
import hashlib
import json
from typing import Any

import msgspec
import pytest

import qmk
from qmk import defaults
from qmk.engines.base import EngineError
from qmk.errors import InvalidArgument
from qmk.execution.executor import execute
from qmk.execution.request import (
    PHYSICS_FIELDS,
    MachineRun,
    Policy,
    Rewrite,
    RunRequest,
    precision_of,
    program_digest,
    run_key,
    submit_policy,
)
from qmk.execution.runs import build_request, run
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
        qubit=qubit_params("qubit_gate_ns_e4").to_json(),  # custom qubits travel as JSON
        profile="logical:surface_code(d=5)",
        noise_model="depolarizing(p=0.001)",
        calibration=Calibration(
            family="surface_code", crossing_prefactor=0.07, error_correction_threshold=0.011
        ).to_json(),
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


def test_a_run_request_and_its_values_are_never_tracked_by_the_collector() -> None:
    # a kernel keeps a request (its policy, its schedule on the machine) for each job it
    # holds queued or finished: values hold no cycle, and a collection need not walk them
    machine = MachineRun(arrival_cycle=0, start_cycle=1, end_cycle=2, tiles=1, module=0)
    request = msgspec.structs.replace(_full_request(), machine=machine)
    decoded = RunRequest.from_json(json.loads(json.dumps(request.to_json())))
    for value in (request, decoded, request.policy, request.rewrite, machine, decoded.policy):
        assert value is not None and not gc.is_tracked(value), type(value).__name__


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
        (
            "machine",
            MachineRun(
                arrival_cycle=0, start_cycle=0, end_cycle=5, tiles=4, module=0, idle={"a": 3.0}
            ),
        ),
    ]:
        assert run_key(msgspec.structs.replace(request, **{field: value})) != run_key(request)


def test_of_a_machine_schedule_only_its_idle_cycles_with_noise_on_key_the_run() -> None:
    request = _full_request()
    waited = MachineRun(
        arrival_cycle=0,
        start_cycle=9,
        end_cycle=50,
        tiles=4,
        module=0,
        wait_cycles={"queue": 9},
        idle={},
    )
    assert run_key(msgspec.structs.replace(request, machine=waited)) == run_key(request)
    idle = msgspec.structs.replace(waited, idle={"a": 3.0})
    later = msgspec.structs.replace(idle, arrival_cycle=100, start_cycle=200, end_cycle=241)
    keyed = msgspec.structs.replace(request, machine=idle)
    assert run_key(keyed) != run_key(request)
    assert run_key(keyed) == run_key(msgspec.structs.replace(request, machine=later))
    quiet = msgspec.structs.replace(request, noise=False)
    assert run_key(msgspec.structs.replace(quiet, machine=idle)) == run_key(quiet)


def test_a_request_names_its_target_and_the_logical_machines_key_is_unchanged() -> None:
    request = _full_request()
    assert request.target == "logical"
    fresh = ("target", "target_options", "machine")  # fields newer than the request's keys
    before = {k: v for k, v in request.to_json().items() if k not in fresh}
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


@pytest.mark.parametrize("angle", [0.25, 1e-05, 1.5e300, -0.0, 2.5e-07, 123456789.125])
def test_a_request_digests_the_programs_json_as_json_writes_it_sorted_and_compact(
    angle: float,
) -> None:
    # the digest names the program in stored jobs, checkpoints and seals: a faster
    # writer must give json's very text, numbers json writes with an exponent included
    program = verify(
        assemble(
            ".caps CAP_ALLOC\n"
            "a: ALLOC_LQ vq:q0\n"
            f"r: APPLY_RZ vq:q0, theta={angle!r}\n"
            "m: MEASURE_Z vq:q0, out:m\n"
            "f: FREE_LQ vq:q0\n"
        )
    )
    text = json.dumps(program.graph.to_json(), sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert build_request(program, shots=10, seed=1).program_digest == expected


def test_a_verified_program_run_again_is_digested_once_and_json_data_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qmk.execution import kept_digests

    written: list[object] = []
    canonical = kept_digests.canonical_text_of
    monkeypatch.setattr(
        kept_digests, "canonical_text_of", lambda p: written.append(p) or canonical(p)
    )
    program = verify(assemble(".caps CAP_ALLOC\na: ALLOC_LQ vq:q0\nm: MEASURE_Z vq:q0, out:m\n"))
    first = build_request(program, shots=10, seed=1).program_digest
    again = [build_request(program, shots=n, seed=2).program_digest for n in (5, 6)]
    assert len(written) == 1 and again == [first, first]
    data = program.graph.to_json()
    assert build_request(data, shots=1).program_digest == first
    data["program"]["nodes"][0]["id"] = "b"  # the caller's data may change between runs
    assert build_request(data, shots=1).program_digest != first
    assert len(written) == 3


def test_an_engine_dtype_is_the_requests_precision() -> None:
    single = build_request(T_PAIR, shots=10, seed=1, engine_options={"dtype": "complex64"})
    assert single.precision == "single" and single.engine_options == {}
    default = build_request(T_PAIR, shots=10, seed=1)
    assert default.precision is None


# ---------------------------------------------------------------- the one builder

#: A seed of 32 bits or fewer: a 63-bit draw is one with probability 2**-31.
_32_BITS = 2**32


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"shots": 0}, "shots"),
        ({"shots": defaults.MAX_SHOTS + 1}, "shots"),
        ({"shots": True}, "shots"),
        ({"shots": 10, "seed": -1}, "seed"),
        ({"shots": 10, "seed": 2**63}, "seed"),
        ({"shots": 10, "seed": 2**64 - 1}, "seed"),
        ({"shots": 10, "precision": "half"}, "precision"),
        ({"shots": 10, "engine_options": {"dtype": "float32"}}, "engine_options.dtype"),
        (
            {"shots": 10, "precision": "double", "engine_options": {"dtype": "complex64"}},
            "precision",
        ),
    ],
)
def test_every_in_process_entry_refuses_shots_seed_and_precision_out_of_the_one_range(
    options: dict[str, Any], key: str
) -> None:
    with pytest.raises(EngineError) as built:
        build_request(T_PAIR, **options)
    assert (built.value.code, built.value.details["key"]) == ("QE105", key)
    with pytest.raises(InvalidArgument) as kernels:  # the kernel's builder: its own code
        RunRequest.build(program_digest="ab" * 32, **options)
    assert kernels.value.message == built.value.message
    entries = [run] if "precision" in options else [run, qmk.run]
    for entry in entries:  # the executor and qmk.run: the same builder, the same line
        with pytest.raises(EngineError) as ran:
            entry(T_PAIR, **options)
        assert str(ran.value) == str(built.value) and str(ran.value).count("\n") == 0


def test_the_largest_seed_and_shots_are_accepted_by_every_entry() -> None:
    request = build_request(T_PAIR, shots=defaults.MAX_SHOTS, seed=defaults.SEED_BOUND - 1)
    assert (request.shots, request.seed) == (defaults.MAX_SHOTS, 2**63 - 1)
    assert RunRequest.from_json(request.to_json()) == request
    with pytest.raises(InvalidArgument):
        RunRequest.from_json({**request.to_json(), "seed": 2**63})


def test_a_seed_left_out_is_drawn_with_63_bits_by_the_executor() -> None:
    drawn = [build_request(T_PAIR, shots=10).seed for _ in range(3)]
    assert all(0 <= seed < defaults.SEED_BOUND for seed in drawn)
    assert max(drawn) >= _32_BITS  # the executor drew 32 bits before
    assert len(set(drawn)) == 3
    assert run(T_PAIR, shots=10, noise=False).seed != run(T_PAIR, shots=10, noise=False).seed


def test_one_precision_map_reads_a_name_a_dtype_name_and_a_numpy_dtype_alike() -> None:
    import numpy as np

    for single in ("single", "complex64", np.complex64, np.dtype("complex64")):
        assert precision_of(single) == "single"
    for dtype, precision in defaults.PRECISION_DTYPES.items():
        assert precision_of(precision) == dtype
    named = build_request(T_PAIR, shots=50, seed=3, precision="single")
    dtype = build_request(T_PAIR, shots=50, seed=3, engine_options={"dtype": "complex64"})
    assert named == dtype and named.precision == "single" and named.engine_options == {}
    assert execute(T_PAIR, named).counts == run(T_PAIR, shots=50, seed=3, precision="single").counts


def test_the_counts_at_a_seed_are_those_of_the_request_the_builder_makes() -> None:
    request = RunRequest.build(program_digest="ab" * 32, shots=300, seed=11)
    assert request == RunRequest(program_digest="ab" * 32, shots=300, seed=11)
    assert (
        run(T_PAIR, shots=300, seed=11).counts
        == execute(T_PAIR, build_request(T_PAIR, shots=300, seed=11)).counts
    )


def test_a_submit_policy_sends_the_keys_given_and_refuses_a_bad_one_before_the_wire() -> None:
    assert submit_policy(priority=5, engine=None, noise=False) == {"priority": 5, "noise": False}
    assert submit_policy() is None
    calibration = Calibration(
        family="surface_code", crossing_prefactor=0.07, error_correction_threshold=0.011
    )
    assert submit_policy(calibration=calibration) == {"calibration": calibration.to_json()}
    with pytest.raises(InvalidArgument) as caught:
        submit_policy(priority=10)
    assert caught.value.details["key"] == "policy.priority"


@pytest.mark.parametrize(("option", "value"), [("--seed", str(2**63)), ("--shots", "0")])
def test_qmk_run_and_submit_refuse_a_seed_or_shots_out_of_the_one_range(
    option: str, value: str
) -> None:
    from support.cli import qmk as cli
    from support.paths import EXAMPLES

    for command in ("run", "submit"):
        status, out, err = cli(command, str(EXAMPLES / "bell.qvm.json"), option, value)
        assert (status, out) == (2, "")
        assert f"argument {option}: must be in [" in err and err.count("\n") == 1


def test_a_lattice_surgery_run_draws_a_63_bit_seed() -> None:
    from support.cli import qmk as cli
    from support.paths import EXAMPLES

    seeds = []
    for _ in range(2):
        status, out, err = cli(
            "run", str(EXAMPLES / "bell.qvm.json"), "--lattice-surgery", "--shots", "4", "--json"
        )
        assert status == 0, err
        seeds.append(json.loads(out)["seed"])
    assert max(seeds) >= _32_BITS  # it drew 32 bits before


def test_a_machine_record_states_where_the_job_ran_and_reads_a_record_from_before():
    # a record of a kernel from before placements: no distance, block or own error;
    # it reads, and its whole error is its idle error, as that kernel's budget read it
    old = msgspec.json.decode(
        b'{"arrival_cycle":0,"start_cycle":5,"end_cycle":9,"tiles":4,"module":0,'
        b'"idle_logical_error":0.002,"error_budget":0.001}',
        type=MachineRun,
    )
    record = old.record()
    assert (record["code_distance"], record["block"], record["own_logical_error"]) == (0, "", 0.0)
    assert record["total_logical_error"] == record["added_logical_error"] == 0.002
    assert record["within_budget"] is False
    # a placed job: own 9e-4 and added 5e-5 make 1 - (1 - 9e-4)(1 - 5e-5), within 1e-3
    run = MachineRun(
        arrival_cycle=0, start_cycle=0, end_cycle=9, tiles=861, module=0,
        idle_logical_error=5e-5, error_budget=1e-3, code_distance=13, block="fast",
        own_logical_error=9e-4,
    )  # fmt: skip
    again = msgspec.json.decode(msgspec.json.encode(run), type=MachineRun)
    assert again == run
    record = again.record()
    assert record["total_logical_error"] == pytest.approx(1 - (1 - 9e-4) * (1 - 5e-5))
    assert (record["block"], record["code_distance"], record["within_budget"]) == ("fast", 13, True)
