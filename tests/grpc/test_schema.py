"""The gRPC schema: rendered from the method table, compiled by protoc to the very
descriptors the server builds at import, and converted both ways without loss."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("grpc")

from google.protobuf import descriptor_pb2

from qmk.abi import codegen
from qmk.abi.jsonrpc import encode
from qmk.abi.methods import METHODS
from qmk.abi.proto import FILE_NAME, SERVICE_NAME, rpc_name, schema
from qmk.grpc.schema import (
    build,
    json_of,
    json_size,
    messages,
    params_of,
    reply_of,
    struct_object,
    to_struct,
)

PROTO = Path(codegen.__file__).resolve().parent / "kernel.proto"


def test_the_checked_in_proto_is_the_one_the_table_renders():
    assert PROTO.read_text(encoding="utf-8") == codegen.FILES["kernel.proto"]()


def test_protoc_compiles_the_proto_to_the_descriptors_the_server_builds(tmp_path: Path):
    protoc = pytest.importorskip("grpc_tools.protoc")
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    (tmp_path / "qmk" / "v1").mkdir(parents=True)
    shutil.copy(PROTO, tmp_path / FILE_NAME)
    out = tmp_path / "set.pb"
    status = protoc.main(
        ["protoc", f"-I{tmp_path}", f"-I{include}", f"--descriptor_set_out={out}", FILE_NAME]
    )
    assert status == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    assert compiled == build(schema())


def test_every_syscall_is_one_rpc_named_without_q_in_camel_case():
    rpcs = {rpc.syscall: rpc for rpc in schema().rpcs if rpc.syscall is not None}
    assert set(rpcs) == set(METHODS)
    assert rpc_name("q_negotiate_caps") == "NegotiateCaps"
    for name, rpc in rpcs.items():
        assert rpc.name == "".join(p.capitalize() for p in name[2:].split("_"))
        assert not rpc.streaming
    names = [rpc.name for rpc in schema().rpcs]
    assert {"NegotiateCaps", "Submit", "Status", "Wait", "Cancel", "WatchJob"} <= set(names)
    assert SERVICE_NAME == "qmk.v1.Kernel"


def test_no_request_carries_the_session_and_submit_takes_program_text():
    classes = messages()
    for rpc in schema().rpcs:
        assert "session_id" not in classes[rpc.request].DESCRIPTOR.fields_by_name, rpc.name
    submit = classes["SubmitRequest"].DESCRIPTOR.fields_by_name
    assert {"program", "format", "shots", "seed"} <= set(submit) and "graph" not in submit
    assert submit["program"].type == submit["program"].TYPE_STRING


def test_wait_answers_state_and_counts_as_a_map_of_int64():
    job = messages()["Job"].DESCRIPTOR.fields_by_name
    assert job["state"].type == job["state"].TYPE_STRING
    counts = job["counts"].message_type
    assert counts.GetOptions().map_entry
    assert counts.fields_by_name["value"].type == counts.fields_by_name["value"].TYPE_INT64
    wait = next(rpc for rpc in schema().rpcs if rpc.name == "Wait")
    assert wait.reply == "Job"


def test_a_param_left_out_stays_out_so_the_tables_default_applies():
    request = messages()["WaitRequest"](job_id="j")
    assert params_of(request) == {"job_id": "j"}
    zero = messages()["SubmitRequest"](program="x", shots=0)
    assert params_of(zero) == {"program": "x", "shots": 0}  # 0 sent is 0, not "left out"


def test_a_struct_param_reads_back_as_the_json_it_was_whole_numbers_as_ints():
    policy = {"priority": 7, "noise": {"p": 0.001, "on": True}, "engine": None, "xs": [1, 2.5]}
    request = messages()["SubmitRequest"](program="x", policy=to_struct(policy))
    assert params_of(request)["policy"] == policy
    assert type(params_of(request)["policy"]["priority"]) is int


def test_a_struct_nested_past_the_limit_is_refused_with_its_code():
    from qmk.abi.errors import InvalidParams

    deep: dict = {}
    inner = deep
    for _ in range(10):
        inner["a"] = {}
        inner = inner["a"]
    with pytest.raises(InvalidParams, match="nests deeper than 5"):
        struct_object(to_struct(deep), 1, 5)


def test_a_job_reply_carries_its_typed_fields_its_counts_and_the_whole_json():
    result = {
        "job_id": "j",
        "state": "COMPLETED",
        "tenant": "alice",
        "shots": 8,
        "seed": 3,
        "created_at": 1.5,
        "started_at": None,
        "result": {"counts": {"00": 3, "11": 5}, "engine": "stabilizer"},
    }
    reply = reply_of(messages()["Job"], result)
    assert (reply.job_id, reply.state, reply.shots, reply.seed) == ("j", "COMPLETED", 8, 3)
    assert dict(reply.counts) == {"00": 3, "11": 5}
    assert not reply.HasField("started_at")
    import json

    assert json.loads(reply.json) == result


def test_a_messages_json_is_the_json_rpc_wires_text_and_an_odd_value_its_str():
    result = {"job_id": "j", "fidelity": 1.0799943300192785e-05, "counts": {"00": 3}}
    assert json_of(result).encode() == encode(result).rstrip(b"\n")  # msgspec's floats
    assert json_size(result) == len(json_of(result).encode())
    odd = {"path": Path("/a/b"), "n": 1}  # gRPC wrote any such value as its str
    assert json_of(odd) == '{"path":"/a/b","n":1}'
    assert json_size(odd) == len(json_of(odd).encode())


def test_the_status_table_has_a_row_for_every_wire_code_and_the_docs_show_it():
    import grpc

    from qmk.abi.errors import RPC_ERRORS
    from qmk.errors import SYSCALL_ERRORS
    from qmk.grpc.status import STATUS_OF
    from qmk.http.problems import STATUS_OF as HTTP_STATUS_OF
    from support.paths import DOCS

    assert set(STATUS_OF) == set(HTTP_STATUS_OF)  # one set of codes for both tables
    assert set(SYSCALL_ERRORS) | {1000} <= set(STATUS_OF)
    assert set(RPC_ERRORS) - {-32000} <= set(STATUS_OF)
    rows = {}
    for line in (DOCS / "grpc.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].lstrip("-").isdigit():
            rows[int(cells[0])] = cells
    assert {code: getattr(grpc.StatusCode, row[2]) for code, row in rows.items()} == dict(STATUS_OF)
    for code, row in rows.items():
        assert row[1].split()[0] == (f"QS{code}" if code > 0 else f"QR{-code}")


def test_a_jobs_typed_counts_stop_at_their_cap_and_json_keeps_every_outcome():
    import json

    from qmk.grpc.schema import TYPED_COUNTS_MAX

    job_message = messages()["Job"]
    small = {"job_id": "j", "state": "COMPLETED", "result": {"counts": {"00": 3, "11": 2}}}
    assert dict(reply_of(job_message, small).counts) == {"00": 3, "11": 2}
    outcomes = {format(i, "013b"): 1 for i in range(TYPED_COUNTS_MAX + 1)}
    big = {"job_id": "j", "state": "COMPLETED", "result": {"counts": outcomes}}
    answer = reply_of(job_message, big)
    assert not answer.counts  # past the cap: the counts are in json only
    assert json.loads(answer.json)["result"]["counts"] == outcomes


@pytest.mark.parametrize(
    ("message", "result"),
    [
        (
            "Job",
            {
                "job_id": "j",
                "state": "COMPLETED",
                "tenant": "alice",
                "shots": 8,
                "seed": 3,
                "created_at": 1.5,
                "started_at": None,
                "result": {"counts": {"00": 3, "11": 5}, "telemetry": {"engine": "stim"}},
                "machine": {"tiles": 9},
            },
        ),
        ("Job", {"job_id": "j", "state": "FAILED", "result": None}),
        ("Job", {"job_id": "j", "state": "COMPLETED", "result": [1, 2]}),
        ("Job", {"job_id": "j", "result": {"counts": {"0": True}}}),  # no whole numbers
        ("Session", {"session_id": "s", "tenant": "a", "granted": ["CAP_ALLOC"], "denied": []}),
        ("Reply", {"anything": [1, {"b": None}]}),
        ("Job", [1, 2]),  # a result that is no object names nothing
        ("Reply", "text"),
    ],
)
def test_a_relayed_reply_answers_what_its_decoded_json_answers(message: str, result: Any):
    from qmk.gateway.line import Relayed

    kind = messages()[message]
    relayed = reply_of(kind, Relayed(encode(result).rstrip(b"\n")))
    assert relayed == reply_of(kind, result)
