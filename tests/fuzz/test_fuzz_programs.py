"""Fuzzing the readers of programs: the QVM JSON loader and the verifier, the assembler,
the OpenQASM and QIR front-ends, and ``qmk validate``. Each accepts its input or refuses
it with one coded line; no other exception, no traceback.

A short run with fixed seeds in the normal suite; ``make fuzz`` runs many more examples
(see :mod:`support.fuzz`). Inputs a run found are kept as ``@example``s.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from support.fuzz import (
    FUZZ,
    SEEDS,
    cli_validate,
    mutated,
    qasm,
    qir,
    qvm_asm,
    qvm_graph,
    qvm_json,
    raw_json,
    token_soup,
)


@FUZZ
@given(st.one_of(qvm_graph(), mutated(SEEDS["qvm-json"]), raw_json().map(str.encode)))
def test_the_qvm_loader_and_verifier_accept_or_refuse_with_a_code(data):
    qvm_json(data)


@FUZZ
@given(st.one_of(mutated(SEEDS["qvm-asm"]), token_soup()))
def test_the_assembler_accepts_or_refuses_with_a_code(data):
    qvm_asm(data)


@FUZZ
@given(st.one_of(mutated(SEEDS["qasm"]), token_soup()))
def test_the_openqasm_front_end_accepts_or_refuses_with_a_code(data):
    qasm(data)


@FUZZ
@given(st.one_of(mutated(SEEDS["qir"]), token_soup(), st.binary(max_size=64)))
def test_the_qir_front_end_accepts_or_refuses_with_a_code(data):
    qir(data)


@FUZZ
@given(
    st.one_of(
        mutated(SEEDS["cli-validate"]),
        st.tuples(st.integers(0, 3), token_soup()).map(lambda t: bytes([t[0]]) + t[1]),
    )
)
def test_qmk_validate_exits_with_one_coded_line_never_a_traceback(data):
    cli_validate(data)
