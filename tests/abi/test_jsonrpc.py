"""The JSON-RPC 2.0 protocol core, line in and line out, against a small in-test target."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qmk.abi.errors import InvalidParams, ParseError
from qmk.abi.jsonrpc import Caller, RpcCore, _decode, _graph_text, _may_differ
from qmk.abi.methods import METHODS, bind_params
from qmk.errors import SYSCALL_ERRORS, CapabilityError, NotFoundError
from qmk.qvm.graph import GraphText, compact_text


class Target:
    """Answers q_status and q_cancel; records calls; fails on purpose for some job ids."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def q_status(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("q_status", params))
        job = params["job_id"]
        if job == "missing":
            raise NotFoundError("no job 'missing'", job_id=job)
        if job == "caps":
            raise CapabilityError("needs CAP_LINK", missing=["CAP_LINK"])
        if job == "bug":
            raise KeyError("secret internal detail")
        if job == "unencodable":
            return {"value": object()}
        return {"job_id": job, "state": "QUEUED"}

    async def q_cancel(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("q_cancel", params))
        return {"job_id": params["job_id"], "state": "CANCELLED"}

    async def q_submit(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("q_submit", params))
        return {"job_id": "new", "state": "QUEUED"}


def answer(core: RpcCore, payload: Any) -> Any:
    line = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    reply = asyncio.run(core.handle_line(line))
    if reply is None:
        return None
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    return json.loads(reply)


def req(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        out["params"] = params
    if id is not ...:
        out["id"] = id
    return out


@pytest.fixture
def target() -> Target:
    return Target()


@pytest.fixture
def core(target: Target) -> RpcCore:
    return RpcCore(target)


def test_a_call_by_name_fills_defaults_and_returns_the_result(core, target):
    graph = {"program": {"nodes": []}}
    reply = answer(core, req("q_submit", {"session_id": "s", "graph": graph}, id="abc"))
    assert reply == {"jsonrpc": "2.0", "id": "abc", "result": {"job_id": "new", "state": "QUEUED"}}
    optional = {p.name: p.json_default for p in METHODS["q_submit"].params if not p.required}
    assert optional["shots"] == 1024 and optional["seed"] is None and optional["policy"] is None
    # a QVM graph arrives as its compact text (the kernel reads only that)
    text = GraphText('{"program":{"nodes":[]}}', 0)
    assert target.calls == [("q_submit", {"session_id": "s", "graph": text, **optional})]


def test_a_removed_method_is_method_not_found_naming_the_method_to_call(core):
    reply = answer(core, req("q_device_submit", {"session_id": "s", "job": {}}))
    error = reply["error"]
    assert error["code"] == -32601 and error["data"]["closest"] == "q_submit"
    assert "did you mean q_submit" in error["message"]


def test_a_program_that_is_no_qvm_graph_arrives_as_its_data_for_its_target(core, target):
    job = {"program": [{"op": "AllocArray", "n_qubits": 2}]}  # a device job
    answer(core, req("q_submit", {"session_id": "s", "graph": job, "target": "neutral-atom"}))
    assert target.calls[0][1]["graph"] == job and type(target.calls[0][1]["graph"]) is dict


@pytest.mark.parametrize(
    "graph, accepted",
    [
        (GraphText("{}", 0), True),
        (MappingProxyType({"version": "0.2"}), True),
        ([], False),
        ("{}", False),
        (3, False),
        (None, False),
    ],
    ids=["graph-text", "mapping", "array", "string", "number", "null"],
)
def test_an_object_param_takes_any_mapping_and_nothing_else(graph, accepted):
    spec = METHODS["q_submit"]
    params = {"session_id": "s", "graph": graph}
    if accepted:
        assert bind_params(spec, params)["graph"] is graph
        return
    with pytest.raises(InvalidParams) as refused:
        bind_params(spec, params)
    assert refused.value.message.startswith("q_submit: param 'graph' must be object, got ")
    assert refused.value.to_rpc()["data"]["param"] == "graph"


def test_positional_params_follow_table_order(core, target):
    assert answer(core, req("q_status", ["s", "j1"]))["result"]["job_id"] == "j1"
    assert target.calls == [("q_status", {"session_id": "s", "job_id": "j1"})]


@pytest.mark.parametrize("request_id", [0, -7, 2.5, "x", None])
def test_every_valid_id_type_is_echoed_back(core, request_id):
    assert answer(core, req("q_status", ["s", "j"], id=request_id))["id"] == request_id


@pytest.mark.parametrize(
    "line, code",
    [
        (b"{not json", -32700),
        (b'{"jsonrpc": "2.0", "method": "q_status", "id": 1', -32700),
        (b"\xff\xfe", -32700),
        (b'{"jsonrpc":"2.0","method":"q_status","id":1,"params":{"x":NaN}}', -32700),
        (b"[" * 60, -32700),
        (b"[" * 100000, -32600),  # deeper than the nesting limit: refused before parsing
        (b"5", -32600),
        (b'"q_status"', -32600),
        (b"[]", -32600),
        (b'{"method": "q_status", "id": 1}', -32600),
        (b'{"jsonrpc": "1.0", "method": "q_status", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": 5, "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "q_status", "params": "s", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "q_status", "id": {"a": 1}}', -32600),
        (b'{"jsonrpc": "2.0", "method": "q_status", "id": true}', -32600),
        (b'{"jsonrpc": "2.0", "method": "q_nope", "id": 1}', -32601),
        (b'{"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}', -32601),
        (b'{"jsonrpc": "2.0", "method": "q_open_chan", "id": 1}', -32601),  # target lacks it
        (
            b'{"jsonrpc": "2.0", "method": "q_status", "params": {"session_id": "s"}, "id": 1}',
            -32602,
        ),
        (b'{"jsonrpc": "2.0", "method": "q_status", "params": ["s", 5], "id": 1}', -32602),
        (b'{"jsonrpc": "2.0", "method": "q_status", "params": ["s", "j", 3], "id": 1}', -32602),
        (
            b'{"jsonrpc":"2.0","method":"q_status","params":{"session_id":"s","job_id":"j",'
            b'"extra":1},"id":1}',
            -32602,
        ),
        (
            b'{"jsonrpc":"2.0","method":"q_submit","params":{"session_id":"s","graph":{},'
            b'"shots":true},"id":1}',
            -32602,
        ),
    ],
)
def test_malformed_requests_get_the_standard_error_code_and_a_name(core, target, line, code):
    reply = answer(core, line)
    assert reply["jsonrpc"] == "2.0"
    assert reply["error"]["code"] == code
    assert isinstance(reply["error"]["data"]["name"], str)
    assert "Traceback" not in reply["error"]["message"]
    # the id is echoed when it could be read, and null when it could not
    readable = code != -32700 and (b'"id": 1}' in line or b'"id":1}' in line)
    assert reply["id"] == (1 if readable else None)
    assert target.calls == []


def test_a_syscall_error_is_sent_with_its_code_name_and_details(core):
    reply = answer(core, req("q_status", ["s", "caps"], id=9))
    assert reply["id"] == 9
    assert reply["error"]["code"] == 1004
    assert reply["error"]["data"]["name"] == "capability-denied"
    assert reply["error"]["data"]["missing"] == ["CAP_LINK"]
    assert answer(core, req("q_status", ["s", "missing"]))["error"]["code"] == 1005


def test_an_unexpected_exception_is_a_generic_internal_error_logged_server_side(core, caplog):
    with caplog.at_level(logging.ERROR, logger="qmk.abi"):
        reply = answer(core, req("q_status", ["s", "bug"]))
    error = reply["error"]
    assert error["code"] == -32603 and error["data"]["name"] == "internal-error"
    assert "secret internal detail" not in json.dumps(reply)
    assert "KeyError" not in json.dumps(reply)
    assert error["data"]["incident"] in caplog.text
    assert "secret internal detail" in caplog.text


def test_a_result_that_is_not_json_becomes_an_internal_error(core):
    reply = answer(core, req("q_status", ["s", "unencodable"], id=3))
    assert reply["id"] == 3 and reply["error"]["code"] == -32603


def test_notifications_get_no_reply_even_when_they_fail(core, target):
    assert answer(core, req("q_status", ["s", "j"], id=...)) is None
    assert answer(core, req("q_status", ["s", "missing"], id=...)) is None
    assert answer(core, req("q_nope", id=...)) is None
    assert answer(core, req("q_status", ["s", 5], id=...)) is None
    assert [name for name, _ in target.calls] == ["q_status", "q_status"]


def test_a_batch_answers_each_call_and_skips_notifications(core, target):
    batch = [
        req("q_status", ["s", "a"], id=1),
        req("q_cancel", ["s", "b"], id=...),
        {"foo": "boo"},
        req("q_nope", id="m"),
        req("q_status", ["s", "missing"], id=2),
        req("q_status", ["s", 7], id=3),
        5,
    ]
    reply = answer(core, batch)
    assert isinstance(reply, list)
    by_id = {item["id"]: item for item in reply if item["id"] is not None}
    assert by_id[1]["result"]["job_id"] == "a"
    assert by_id["m"]["error"]["code"] == -32601
    assert by_id[2]["error"]["code"] == 1005
    assert by_id[3]["error"]["code"] == -32602
    assert sorted(item["error"]["code"] for item in reply if item["id"] is None) == [-32600] * 2
    assert len(reply) == 6
    assert ("q_cancel", {"session_id": "s", "job_id": "b"}) in target.calls


def test_a_batch_of_notifications_gets_no_reply_at_all(core, target):
    batch = [req("q_status", ["s", "a"], id=...), req("q_cancel", ["s", "b"], id=...)]
    assert answer(core, batch) is None
    assert len(target.calls) == 2


def test_an_oversized_batch_is_one_invalid_request(target):
    core = RpcCore(target, max_batch=3)
    reply = answer(core, [req("q_status", ["s", "a"], id=i) for i in range(4)])
    assert reply["error"]["code"] == -32600 and target.calls == []


def test_blank_lines_are_ignored(core):
    assert answer(core, b"  \r\n") is None


def request_line(params: str, request_id: str = "1", method: str = "q_status") -> bytes:
    """A request written by hand, so that numbers JSON cannot hold in a double stay literal."""
    return (
        f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "{method}", "params": {params}}}'
    ).encode()


@pytest.mark.parametrize("request_id", ["1e400", "-1e400", "1" + "0" * 400, "18446744073709551616"])
def test_an_id_that_is_not_a_finite_number_gets_an_invalid_request_with_id_null(
    core, target, request_id
):
    reply = answer(core, request_line('["s", "j"]', request_id))
    assert reply["id"] is None and reply["error"]["code"] == -32600
    assert target.calls == []


def test_an_infinite_id_in_a_batch_loses_none_of_the_other_replies(core, target):
    line = b"[" + request_line('["s", "a"]', "1e400") + b"," + request_line('["s", "b"]', "2")
    line += b"," + request_line('["s", "c"]', '"three"', method="q_cancel") + b"]"
    reply = answer(core, line)
    by_id = {item["id"]: item for item in reply}
    assert by_id[None]["error"]["code"] == -32600
    assert by_id[2]["result"]["job_id"] == "b" and by_id["three"]["result"]["job_id"] == "c"
    assert [name for name, _ in target.calls] == ["q_status", "q_cancel"]


@pytest.mark.parametrize(
    "params, param",
    [
        ('{"session_id": "s", "graph": {}, "shots": 1' + "0" * 400 + "}", "shots"),
        ('{"session_id": "s", "graph": {}, "seed": -1' + "0" * 5000 + "}", "seed"),
        ('{"session_id": "s", "graph": {}, "policy": {"timeout_ms": 1e400}}', "policy"),
        ('{"session_id": "s", "graph": {"nodes": [{"args": {"theta": -1e999}}]}}', "graph"),
        ('["s", {}, 18446744073709551616]', "shots"),
    ],
)
def test_numbers_out_of_range_in_params_are_invalid_arguments_naming_the_param(
    core, target, params, param
):
    reply = answer(core, request_line(params, method="q_submit"))
    assert reply["id"] == 1
    assert reply["error"]["code"] == 1012 and reply["error"]["data"]["param"] == param
    assert target.calls == []


def test_the_largest_64_bit_numbers_and_doubles_pass_the_wire(core, target):
    reply = answer(
        core,
        request_line(
            '{"session_id": "s", "graph": {"x": [-18446744073709551615, 1.7e308]}, '
            '"seed": 18446744073709551615}',
            method="q_submit",
        ),
    )
    assert "result" in reply
    assert target.calls[0][1]["seed"] == 2**64 - 1


def test_a_line_nested_deeper_than_the_limit_is_refused_before_it_is_parsed(target):
    core = RpcCore(target, max_depth=8)
    params = '{"session_id": "s", "graph": {"a": [[[[[[1]]]]]]}}'  # the request nests 9 deep
    reply = answer(core, request_line(params, method="q_submit"))
    assert reply["id"] is None and reply["error"]["code"] == -32600
    assert reply["error"]["data"]["limit"] == 8 and target.calls == []
    shallower = '{"session_id": "s", "graph": {"a": [[[[["[[[[[[[[["]]]]]}}'
    assert "result" in answer(core, request_line(shallower, method="q_submit"))


def test_a_connection_is_authenticated_by_its_first_request_that_succeeds(core):
    caller = Caller()
    for job in ("missing", "caps", "bug"):
        asyncio.run(core.handle_line(request_line(f'["s", "{job}"]'), caller))
        assert not caller.authenticated
    asyncio.run(core.handle_line(request_line('["s", 5]'), caller))
    asyncio.run(core.handle_line(b"{oops", caller))
    assert not caller.authenticated
    asyncio.run(core.handle_line(request_line('["s", "j"]'), caller))
    assert caller.authenticated


def test_a_batch_with_a_reply_that_cannot_be_encoded_keeps_the_others(core):
    line = b"[" + request_line('["s", "unencodable"]', "1") + b","
    line += request_line('["s", "fine"]', "2") + b"]"
    reply = answer(core, line)
    by_id = {item["id"]: item for item in reply}
    assert by_id[1]["error"]["code"] == -32603 and by_id[2]["result"]["job_id"] == "fine"


def test_every_syscall_error_class_round_trips_through_the_wire_format():
    from qmk.client import ClientCore

    for code, cls in SYSCALL_ERRORS.items():
        error = cls("because", job_id="j")
        rebuilt = ClientCore.error(error.to_rpc())
        assert type(rebuilt) is cls and rebuilt.rpc_code == code
        assert rebuilt.message == "because" and rebuilt.details == {"job_id": "j"}


def test_the_method_table_matches_the_service_contract():
    from qmk.kernel.service import Kernel

    assert all(callable(getattr(Kernel, name, None)) for name in METHODS)
    for spec in METHODS.values():
        assert spec.needs_session == (spec.name != "q_negotiate_caps")
        names = [p.name for p in spec.params]
        assert len(names) == len(set(names))
        required = [p.required for p in spec.params]
        assert required == sorted(required, reverse=True), spec.name  # required ones first


class _Recorder:
    """A target whose q_status notes how often the loop's other task ran before it."""

    def __init__(self) -> None:
        self.turns = 0
        self.seen: int | None = None

    async def q_status(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        self.seen = self.turns
        return {"job_id": job_id[:8]}


def _status_line(pad: int) -> bytes:
    params = {"session_id": "s", "job_id": "j" * pad}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "q_status", "params": params}).encode()


@pytest.mark.parametrize(("pad", "others_ran"), [(100, False), (2 << 20, True)])
def test_a_big_line_is_decoded_while_the_loop_serves_others(pad: int, others_ran: bool) -> None:
    """A line of THREAD_BYTES or more is decoded in a thread; a small one at once."""
    target = _Recorder()

    async def main() -> bytes | None:
        stop = False

        async def other() -> None:
            while not stop:
                target.turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        start = target.turns
        reply = await RpcCore(target).handle_line(_status_line(pad))
        stop = True
        await task
        assert target.seen is not None
        assert (target.seen > start) is others_ran
        return reply

    reply = asyncio.run(main())
    assert reply is not None and json.loads(reply)["result"] == {"job_id": "jjjjjjjj"}


@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_a_big_line_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    import gc

    from qmk.abi.jsonrpc import NO_GC_BYTES, decode

    line = json.dumps({"k": ["x"] * NO_GC_BYTES}).encode()
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        assert len(decode(line)["k"]) == NO_GC_BYTES
        assert gc.isenabled() is enabled
        with pytest.raises(Exception, match="invalid JSON"):
            decode(line[:-1])
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_decode_soon_reads_big_and_small_lines_as_decode_does() -> None:
    from qmk.abi.jsonrpc import THREAD_BYTES, decode, decode_soon

    for line in (_status_line(10), _status_line(THREAD_BYTES)):
        assert asyncio.run(decode_soon(line, max_depth=8)) == decode(line, max_depth=8)


def _reference(line: bytes) -> Any:
    """What the line decodes to by ``json.loads`` alone (the parser the fast one stands in
    for): numbers out of range as infinities, as the core's hooks give them."""
    big = 2**64

    def integer(text: str) -> Any:
        value = int(text)
        return value if -big < value < big else (math.inf if value > 0 else -math.inf)

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(line.decode("utf-8"), parse_int=integer, parse_constant=constant)


def _json_values(bound: int, size: int, leaves: int) -> st.SearchStrategy[Any]:
    """Decoded JSON values: integers to ``bound`` in magnitude, finite floats, strings,
    lists and objects of at most ``size`` members, ``leaves`` leaves at most."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-bound, max_value=bound)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: (
            st.lists(inner, max_size=size) | st.dictionaries(st.text(), inner, max_size=size)
        ),
        max_leaves=leaves,
    )


_JSON = _json_values(2**70, 4, 20)


@settings(max_examples=400, deadline=None)
@given(_JSON, st.booleans())
def test_a_decoded_line_is_the_value_json_loads_gives(value: Any, ascii_only: bool) -> None:
    line = json.dumps(value, ensure_ascii=ascii_only).encode() + b"\n"
    decoded, out_of_range = _decode(line, None)
    assert decoded == _reference(line)
    # a line holding an integer out of range says so (its params are then searched)
    assert out_of_range == _holds_big(value)


def _holds_big(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) >= 2**64
    if isinstance(value, list):
        return any(_holds_big(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_big(item) for item in value.values())
    return False


@pytest.mark.parametrize(
    "line",
    [
        b'{"a": 1e400}',
        b"[18446744073709551616]",
        b"[NaN]",
        b'"\\ud800"',
        b'{"a":1,"a":2}',
        b"\xef\xbb\xbf{}",
        b'{"\x80jsonrpc": "2.0"}',
        b'"\xed\xa0\x80"',
        b"[1, 2",
        b'{"x": -0, "y": -0.0}',
    ],
)
def test_edge_lines_decode_or_fail_as_the_parser_says(line: bytes) -> None:
    expected = _outcome(_reference, line, ValueError)
    got = _outcome(lambda text: _decode(text, None)[0], line, ParseError)
    assert repr(got) == repr(expected)


def _outcome(decode: Any, line: bytes, error: type[Exception]) -> tuple[str, Any]:
    """``("value", decode(line))``, or ``("error", None)`` where it raises ``error``."""
    try:
        return ("value", decode(line))
    except error:
        return ("error", None)


_GRAPH_VALUE = _json_values(2**63, 3, 12)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.dictionaries(st.text(), _GRAPH_VALUE, max_size=4), max_size=5))
@example([{"theta": 1e-05, "phi": 1e16, "x": 0.0001, "y": 1.5e-7, "z": 123456789.125}])
@example([{"": 1.0000001, "id": "0.00001e5"}])
def test_a_submitted_graph_arrives_as_the_compact_text_the_kernel_writes(nodes: Any) -> None:
    graph = {"version": "0.2", "program": {"nodes": nodes}}
    line = json.dumps(req("q_submit", {"session_id": "s", "graph": graph})).encode() + b"\n"
    message, _ = _decode(line, None)
    got = message["params"]["graph"]
    if isinstance(got, GraphText):  # else the kernel writes it (a float with an exponent)
        assert got.text == compact_text(graph) and got.nodes == len(nodes)
    else:
        assert got == graph


def _submit_reference(line: bytes) -> Any:
    """What a line decodes to by ``json.loads``, a ``q_submit``'s graph then made its
    text as the general decoder's path makes it (:func:`_graph_text`)."""
    value = _reference(line)
    _graph_text(value)
    return value


_SUBMIT_PARAM = st.sampled_from([p.name for p in METHODS["q_submit"].params] + ["extra"])
_SUBMIT_GRAPH = st.one_of(
    st.dictionaries(st.text(max_size=3), _GRAPH_VALUE, max_size=3),
    st.fixed_dictionaries({"program": st.fixed_dictionaries({"nodes": st.lists(_GRAPH_VALUE)})}),
    _GRAPH_VALUE,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.dictionaries(_SUBMIT_PARAM, _GRAPH_VALUE, max_size=4),
    _SUBMIT_GRAPH,
    st.booleans(),
    st.sampled_from(["q_submit", "q_status"]),
    st.dictionaries(st.sampled_from(["id", "jsonrpc", "other"]), _GRAPH_VALUE, max_size=2),
    st.booleans(),
)
@example({}, {"a": 1.5e-7}, True, "q_submit", {}, False)
@example({"seed": 7}, {"a": 1}, False, "q_submit", {"id": 3}, True)
@example({}, {"program": {"nodes": []}}, True, "q_submit", {"id": {"0" * 20: None}}, False)
def test_a_submit_line_decodes_as_the_parser_and_the_graph_text_make_it(
    params: dict[str, Any],
    graph: Any,
    with_graph: bool,
    method: str,
    members: dict[str, Any],
    spaced: bool,
) -> None:
    if with_graph:
        params = {**params, "graph": graph}
    message = {**members, "method": method, "params": params}
    separators = (", ", ": ") if spaced else (",", ":")
    line = json.dumps(message, separators=separators).encode() + b"\n"
    for _ in range(2):  # the second time, a graph's text is the one kept by its bytes
        expected = _outcome(_submit_reference, line, ValueError)
        assert _outcome(lambda text: _decode(text, None)[0], line, ParseError) == expected


def test_a_graph_sent_again_is_the_text_made_of_it_before() -> None:
    graph = {"version": "0.2", "program": {"nodes": [{"id": "a", "op": "APPLY_H"}]}}

    def sent(seed: int, spaced: bool = False) -> GraphText:
        params = {"session_id": "s", "graph": graph, "shots": 10, "seed": seed}
        separators = (", ", ": ") if spaced else (",", ":")
        line = json.dumps(req("q_submit", params), separators=separators).encode() + b"\n"
        got = _decode(line, None)[0]
        assert got["params"]["seed"] == seed and got["params"]["shots"] == 10
        text = got["params"]["graph"]
        assert text == GraphText(compact_text(graph), 1)
        return text

    first = sent(1)
    assert sent(2) is first  # the same bytes: the same text, not made again
    assert sent(3, spaced=True) is not first  # other bytes: made of them


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=12) | st.text(alphabet="0123456789eE.-+,[]{}:ax ", max_size=12))
@example("1E5")
@example("0.00001")
@example("e0 0.000")
def test_the_float_check_of_a_graph_text_finds_what_its_regular_expression_finds(
    text: bytes | str,
) -> None:
    data = text.encode() if isinstance(text, str) else text
    assert _may_differ(data) == bool(re.search(rb"[0-9][eE]|0\.0000", data))


# A request whose members and params are flat (scalars, or arrays and objects of scalars)
# is decoded without the line's scans (``_flat_message``): the same value and the same
# "out of range" answer as the general decoder, every number of any size included.
_FLAT_INT = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -(2**64)]),
)
_FLAT_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    _FLAT_INT,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["\ud800", "a\x00b", '"q_submit"', "[[{", "9" * 24]),
)
_FLAT_VALUE = st.one_of(
    _FLAT_SCALAR,
    st.lists(_FLAT_SCALAR, max_size=3),
    st.dictionaries(st.text(max_size=4), _FLAT_SCALAR, max_size=3),
    st.lists(st.lists(_FLAT_SCALAR, max_size=2), min_size=1, max_size=2),  # not flat
)
_FLAT_NAMES = st.sampled_from(
    ["session_id", "job_id", "timeout_ms", "shots", "seed", "policy", "target", "wait_ms", "x"]
)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    st.sampled_from(["q_wait", "q_status", "q_submit", "q_list_jobs", "nope"]),
    st.one_of(
        st.dictionaries(_FLAT_NAMES, _FLAT_VALUE, max_size=5),
        st.lists(_FLAT_VALUE, max_size=3),
        _FLAT_SCALAR,
    ),
    st.one_of(st.just(...), _FLAT_SCALAR),
    st.sampled_from(["2.0", 2, ...]),
    st.one_of(st.none(), st.just({"version": "0.2", "program": {"nodes": []}}), _FLAT_VALUE),
    st.booleans(),
)
@example("q_wait", {"job_id": "j", "timeout_ms": 2**64}, 1, "2.0", None, False)
@example("q_status", {"job_id": "j"}, 2**63, "2.0", None, False)
@example("q_submit", {"seed": 2**64 - 1}, 7, "2.0", {"a": [1]}, False)
@example("q_submit", {"policy": {"priority": 2**64}}, 7, "2.0", {"a": [1]}, True)
def test_a_flat_request_line_decodes_as_the_general_decoder_does(
    method: str, params: Any, request_id: Any, version: Any, graph: Any, spaced: bool
) -> None:
    message: dict[str, Any] = {"method": method, "params": params}
    if version is not ...:
        message = {"jsonrpc": version, **message}
    if request_id is not ...:
        message = {"id": request_id, **message}
    if graph is not None and isinstance(params, dict):
        params["graph"] = graph
    separators = (", ", ": ") if spaced else (",", ":")
    line = json.dumps(message, separators=separators).encode() + b"\n"
    for _ in range(2):  # the second time, a graph's text is the one kept by its bytes
        expected = _outcome(_submit_reference, line, ValueError)
        got = _outcome(lambda text: _decode(text, 64), line, ParseError)
        assert got[0] == expected[0]
        if got[0] == "value":
            value, out_of_range = got[1]
            _graph_text(value)  # a graph the decoder left as JSON (a line it had to parse)
            assert value == expected[1]
            assert out_of_range == _holds_big(message)


def test_a_graph_kept_by_its_bytes_is_held_to_each_line_s_nesting_limit(target):
    # the same graph's bytes, kept by a core with the default limit, then sent to one of
    # a limit it passes only when its brackets inside strings are not counted, and to
    # one of a limit it does not pass
    graph = '{"a": [[[[["[[[[[[[[["]]]]]}'  # nests 6 deep; 15 brackets
    answer(
        RpcCore(target), request_line(f'{{"session_id": "s", "graph": {graph}}}', "1", "q_submit")
    )
    fits, over = RpcCore(target, max_depth=8), RpcCore(target, max_depth=7)
    line = request_line(f'{{"session_id": "s", "graph": {graph}}}', "2", "q_submit")
    assert answer(fits, line)["result"]["job_id"] == "new"
    reply = answer(over, line)
    assert reply["id"] is None and reply["error"]["code"] == -32600
    assert reply["error"]["data"]["limit"] == 7 and len(target.calls) == 2


@pytest.mark.parametrize("big", ["18446744073709551616", "-18446744073709551616", "1e400"])
def test_a_number_out_of_range_in_a_graph_is_found_the_first_and_every_time(core, target, big):
    line = request_line(f'{{"session_id": "s", "graph": {{"x": [1, {big}]}}}}', method="q_submit")
    for _ in range(2):
        reply = answer(core, line)
        assert reply["error"]["code"] == 1012 and reply["error"]["data"]["param"] == "graph"
    assert target.calls == []
