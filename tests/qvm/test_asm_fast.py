"""The assembler's plain-line fast lane reads a line exactly as the general reader does.

A plain node line (``LABEL: OP vq:NAME, key=NUMBER meta {"source": "..."}``) is read
by one regular expression; the general reader takes any line that uses anything more.
Each case below writes one node twice: once plainly, and once with the same names and
numbers spelled as expressions (``vq:{'q0'}``, ``theta=(0.5)``), which only the general
reader reads; the two graphs must be equal, types of numbers included.
"""

from __future__ import annotations

import random
import re

import pytest

from qmk.qvm.asm import assemble
from qmk.qvm.errors import AsmError

PLAIN = [
    "APPLY_H vq:q0",
    "h1: APPLY_H vq:q0",
    "  h1 :APPLY_H   vq:q0 ",
    "n3: APPLY_CNOT vq:q0, vq:q1",
    "n3: APPLY_CNOT vq:q0 ,vq:q1",
    "r: APPLY_RZ vq:q0, theta=0.5",
    "r: APPLY_RZ vq:q0, theta = -0.0",
    "r: APPLY_RZ vq:q0, theta=7",
    "r: APPLY_RZ vq:q0, theta=-7",
    "r: APPLY_RZ vq:q0, theta=1e-3",
    "r: APPLY_RZ vq:q0, theta=2.5E+2",
    "r: APPLY_RZ vq:q0, theta=0.7853981633974483",
    'm: MEASURE_Z vq:q0, out:m0 meta {"source": "p.qasm:7"}',
    'm: MEASURE_Z vq:q0, out:m0 meta {"source":"p.qasm:7"}',
    'x.y: APPLY_X vq:q.0 meta {"source": "é"}',
    "c: USE_CHAN ch:c0, vq:q0, in:e1, n=2, k=3",
    "APPLY_H",
    "vq: APPLY_H vq:q0",
]


def _spelled_as_expressions(line: str) -> str:
    """The same line with its first operand name and every number as expressions."""
    line = re.sub(r"(vq|ch|in|out):([A-Za-z_][A-Za-z0-9_.]*)", r"\1:{'\2'}", line, count=1)
    return re.sub(r"=\s*(-?[0-9][0-9.eE+-]*)", r"=(\1)", line)


@pytest.mark.parametrize("line", PLAIN)
def test_a_plain_line_reads_as_the_general_reader_reads_it(line):
    fast = assemble(line)
    slow = assemble(_spelled_as_expressions(line))
    if line != _spelled_as_expressions(line):
        assert fast == slow
        assert [type(v) for v in fast.nodes[0].args.values()] == [
            type(v) for v in slow.nodes[0].args.values()
        ]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("r: APPLY_RZ vq:q0, theta=007", "QA"),  # not a Python number: refused
        ("r: APPLY_RZ vq:q0, theta=1e999", "QA"),  # not finite: refused
        ("r: APPLY_RZ vq:q0, theta=1, theta=2", "given twice"),
    ],
)
def test_lines_the_fast_lane_leaves_to_the_general_reader_are_refused_there(line, fragment):
    with pytest.raises(AsmError, match=fragment):
        assemble(line)


def test_a_macro_call_is_not_read_as_a_node():
    text = ".macro flip vq:x\nAPPLY_X vq:{x}\n.endmacro\nflip vq:q0\n"
    assert [n.op for n in assemble(text).nodes] == ["APPLY_X"]


def test_random_plain_programs_read_the_same_as_spelled_out_ones():
    rng = random.Random(41)
    plain, spelled = [], []
    for k in range(300):
        a, b = rng.sample(range(6), 2)
        line = rng.choice(
            [
                f"n{k}: APPLY_CNOT vq:q{a}, vq:q{b}",
                f"APPLY_RZ vq:q{a}, theta={rng.uniform(-4, 4)!r}",
                f'g{k}: APPLY_H vq:q{a} meta {{"source": "f.qasm:{k}"}}',
            ]
        )
        plain.append(line)
        spelled.append(_spelled_as_expressions(line))
    assert assemble("\n".join(plain)) == assemble("\n".join(spelled))
