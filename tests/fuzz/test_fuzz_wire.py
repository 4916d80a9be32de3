"""Fuzzing the JSON-RPC core: any line gets no reply or one line of well-formed replies,
never an internal error, never an exception; and the nesting scan is exact.

A short run with fixed seeds in the normal suite; ``make fuzz`` runs many more examples
(see :mod:`support.fuzz`). Inputs a run found are kept below as regression tests.
"""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from qmk.abi.jsonrpc import nesting_exceeds
from support.fuzz import FUZZ, SEEDS, jsonrpc, mutated, raw_json, request_text, wire_line


@FUZZ
@given(wire_line())
@example(b'{"jsonrpc":"2.0","id":1e400,"method":"q_status","params":["s","j"]}')
@example(
    b'[{"jsonrpc":"2.0","id":1e400,"method":"q_status"},{"jsonrpc":"2.0","id":2,"method":"q_status","params":["s","j"]}]'
)
@example(b'{"jsonrpc":"2.0","id":1,"method":"q_wait","params":["s","j",1' + b"0" * 400 + b"]}")
@example(
    b'{"jsonrpc":"2.0","id":1,"method":"q_submit","params":{"graph":{"x":1' + b"0" * 5000 + b"}}}"
)
@example(b'{"jsonrpc":"2.0","id":{"a":1e400},"method":"q_status"}')
@example(b"[" * 100_000)
@example(b'"\\ud800"')
def test_any_line_gets_no_reply_or_well_formed_replies(line):
    jsonrpc(line)


@FUZZ
@given(st.lists(request_text(), min_size=1, max_size=8))
def test_any_batch_answers_each_request_it_owes(requests):
    jsonrpc(("[" + ",".join(requests) + "]").encode())


@FUZZ
@given(mutated(SEEDS["jsonrpc"]))
def test_mutated_requests_get_no_reply_or_well_formed_replies(line):
    jsonrpc(line)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


_brackety = st.text(alphabet='[]{}"\\ab', max_size=6)
_json = st.recursive(
    st.one_of(st.none(), st.integers(), _brackety),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_brackety, inner, max_size=3)
    ),
    max_leaves=40,
)


@FUZZ
@given(_json, st.integers(0, 12))
def test_the_nesting_scan_agrees_with_the_parsed_depth(value, limit):
    line = json.dumps(value).encode()
    assert nesting_exceeds(line, limit) == (_depth(value) > limit)


@FUZZ
@given(raw_json(), st.integers(0, 12))
def test_the_nesting_scan_never_refuses_json_within_the_limit(text, limit):
    try:  # every member counts, also one whose key repeats (the parser keeps the last)
        value = json.loads(text, object_pairs_hook=lambda pairs: [v for _, v in pairs])
    except (ValueError, RecursionError):
        return
    if _depth(value) <= limit:
        assert not nesting_exceeds(text.encode(), limit)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the same scan; one run is enough")
def test_the_nesting_scan_reads_a_16_mib_line_of_brackets():
    assert nesting_exceeds(b"[" * (8 << 20) + b"]" * (8 << 20), 64)
    assert not nesting_exceeds(b"[" + b"[]," * 5_000_000 + b"[]]", 64)
