"""OpenQASM 3 run-time classical computation: exact theory, Aer, and the writer's round trip.

Programs compute on measured values (typed variables, arithmetic, casts, comparisons,
``if``/``else``, ``switch``, ``while`` under an iteration cap, ``for`` with ``break`` and
``continue``). Each is checked three ways at stated seeds:

- against exact theory: a small Python model of the program enumerates its coin flips
  and gives every key's probability; a chi-square goodness-of-fit test at
  p > 1e-4 / 40 (:data:`support.frontends.ALPHA`, Bonferroni over the file);
- against Aer's dynamic circuits: Qiskit circuits with ``while_loop``, ``for_loop``,
  ``break_loop``, ``continue_loop``, ``switch`` and ``if_test`` on expressions, run by
  Aer and, exported by ``qiskit.qasm3.dumps``, read and run by QMK (a chi-square test
  of homogeneity);
- through the OpenQASM 3 writer (``qmk qasm``): the written program parses with the
  reference parser and, read back by QMK, gives the same distribution of events.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping

import pytest

from qmk.engines import EngineError
from qmk.execution.runs import run
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.frontends.qasm3_out import to_qasm3
from qmk.qvm.graph import Graph
from support.exact import chi2_pvalue
from support.frontends import ALPHA, COMPARISONS, aer_counts, assert_same_distribution, tvd

SHOTS = 3000
SEED = 29
HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


def _counts(source: str, seed: int = SEED, shots: int = SHOTS) -> dict[str, int]:
    return dict(run(from_qasm(HEAD + source), shots=shots, seed=seed, noise=False).counts)


def _assert_fits(counts: Mapping[str, int], expected: Mapping[str, float], label: str) -> None:
    assert math.isclose(sum(expected.values()), 1.0), expected
    assert set(counts) <= {k for k, p in expected.items() if p > 0}, (label, counts)
    p = chi2_pvalue(counts, expected)
    assert p > ALPHA / COMPARISONS, f"{label}: p={p:.2e} counts={counts} expected={expected}"


def _flips(n: int) -> list[tuple[tuple[int, ...], float]]:
    """Every sequence of ``n`` fair coin flips with its probability."""
    return [(bits, 0.5**n) for bits in itertools.product((0, 1), repeat=n)]


def _bits(value: int, width: int) -> str:
    return format(value & ((1 << width) - 1), f"0{width}b")


# ----------------------------------------------------------------------------- programs

POPCOUNT = """
qubit[3] q; bit[3] c; bit[2] r;
int n = 0;
h q;
c = measure q;
for int i in [0:2] { n += int(c[i]); }
if (n == 3) { x q[0]; }
if (n >= 2) { r[1] = 1; } else { r[1] = 0; }
r[0] = n == 1;
"""


def _popcount() -> dict[str, float]:
    out: Counter[str] = Counter()
    for bits, p in _flips(3):
        n = sum(bits)
        c = "".join(map(str, reversed(bits)))
        out[f"{int(n >= 2)}{int(n == 1)} {c}"] += p
    return dict(out)


#: Repeat until success: P(success) = sin(0.6)^2 per try, at most 20 tries.
RUS = """
qubit a; bit b; bit[5] t;
int tries = 0;
bool ok = false;
while (!ok && tries < 20) {
  reset a;
  ry(1.2) a;
  b = measure a;
  ok = b;
  tries += 1;
}
t = tries;
"""


def _rus() -> dict[str, float]:
    p = math.sin(0.6) ** 2
    # a scalar bit is the leftmost group; registers follow in reverse declaration order
    out = {f"1 {_bits(k, 5)}": (1 - p) ** (k - 1) * p for k in range(1, 21)}
    out[f"0 {_bits(20, 5)}"] = (1 - p) ** 20
    return out


SWITCH = """
qubit[2] q; bit[2] c; bit[2] o;
h q;
c = measure q;
uint[2] i = c;
switch (i) {
  case 0 { o = 1; }
  case 1, 2 { o = 2; }
  default { o = 3; }
}
"""


def _switch() -> dict[str, float]:
    return {f"{_bits({0: 1, 1: 2, 2: 2, 3: 3}[k], 2)} {_bits(k, 2)}": 0.25 for k in range(4)}


#: ``continue`` skips the count of a 1; ``break`` ends the loop at the third 0.
BREAK_CONTINUE = """
qubit q; bit b; bit[3] zeros; bit[4] steps;
int n = 0;
uint[4] seen = 0;
for int i in [0:7] {
  reset q;
  h q;
  b = measure q;
  seen += 1;
  if (b) { continue; }
  n += 1;
  if (n == 3) { break; }
}
zeros = n;
steps = seen;
"""


def _break_continue() -> dict[str, float]:
    out: Counter[str] = Counter()
    for flips, p in _flips(8):
        n = seen = 0
        last = 0
        for b in flips:
            seen += 1
            last = b
            if b:
                continue
            n += 1
            if n == 3:
                break
        out[f"{last} {_bits(seen, 4)} {_bits(n, 3)}"] += p
    return dict(out)


#: Wrapping unsigned arithmetic, C division, angles and floats, casts between them.
TYPES = """
qubit[2] q; bit[2] c;
h q;
c = measure q;
uint[4] u = 14;
u += uint[4](c);
int[8] d = -7;
d = d / (int[8](c) + 1);
angle[4] a = pi;
a = a + a * uint[4](c);
float[64] f = 0.5 * float[64](int[8](c));
bool big = f > 0.75;
bit[4] ou = u;
bit[8] od = d;
bit[4] oa = a;
bit ob = big;
"""


def _types() -> dict[str, float]:
    out = {}
    for k in range(4):
        u = (14 + k) % 16
        d = int(-7 / (k + 1))  # C division truncates toward zero
        a = (8 + 8 * k) % 16  # pi is 8/16 of a turn
        big = 0.5 * k > 0.75
        out[f"{int(big)} {_bits(a, 4)} {_bits(d, 8)} {_bits(u, 4)} {_bits(k, 2)}"] = 0.25
    return out


PROGRAMS: dict[str, tuple[str, Callable[[], dict[str, float]]]] = {
    "popcount": (POPCOUNT, _popcount),
    "repeat-until-success": (RUS, _rus),
    "switch": (SWITCH, _switch),
    "break-continue": (BREAK_CONTINUE, _break_continue),
    "types": (TYPES, _types),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_run_time_classical_programs_match_exact_theory(name):
    source, theory = PROGRAMS[name]
    _assert_fits(_counts(source), theory(), name)


def test_the_same_seed_gives_the_same_counts():
    assert _counts(RUS, seed=5, shots=500) == _counts(RUS, seed=5, shots=500)


# ----------------------------------------------------------------------------- the cap


def test_a_shot_past_the_loop_cap_stops_the_run_with_a_coded_error():
    source = """
qubit q; bit b;
pragma qmk loop_cap 3
while (!b) { reset q; h q; b = measure q; }
"""
    # 3 failures in a row have probability 1/8: among 400 shots some do, at this seed
    with pytest.raises(EngineError, match=r"QE115 halted: .*ran past its iteration cap of 3"):
        _counts(source, shots=400)


def test_a_loop_that_ends_within_its_cap_never_halts():
    source = """
qubit q; bit b; bit[2] t;
uint[2] tries = 0;
pragma qmk loop_cap 3
while (!b && tries < 3) { reset q; h q; b = measure q; tries += 1; }
t = tries;
"""
    expected = {"1 01": 0.5, "1 10": 0.25, "1 11": 0.125, "0 11": 0.125}
    _assert_fits(_counts(source), expected, "bounded by its condition")


def test_a_loop_bounded_by_its_counter_is_written_only_as_far_as_the_counter_goes():
    # along the path where the loop runs, tries is a constant: the loop stops at 20
    graph = from_qasm(HEAD + RUS)
    assert sum(n.op == "MEASURE_Z" for n in graph.nodes) == 20
    assert not any(n.op == "HALT" for n in graph.nodes)


def test_a_loop_cap_pragma_out_of_range_is_a_coded_error():
    with pytest.raises(FrontendError, match=r"QL107 bad-value: .*loop_cap takes one integer"):
        from_qasm(HEAD + "pragma qmk loop_cap 0\n")


def test_a_constant_loop_past_its_cap_is_refused_before_running():
    source = "int i = 0;\npragma qmk loop_cap 5\nwhile (i < 10) { i += 1; }\n"
    with pytest.raises(FrontendError, match=r"QL110 loop-cap: .*cap of 5 in every run"):
        from_qasm(HEAD + source)


def test_a_constant_loop_within_its_cap_is_unrolled_without_classical_nodes():
    graph = from_qasm(HEAD + "qubit q;\nint i = 0;\nwhile (i < 3) { x q; i += 1; }\n")
    assert [n.op for n in graph.nodes].count("APPLY_X") == 3
    assert "CALC" not in {n.op for n in graph.nodes}


def test_a_run_time_float_as_a_gate_parameter_is_a_coded_error_naming_the_cast():
    source = "qubit q; bit c;\nc = measure q;\nfloat t = float(int(c));\nrx(t) q;\n"
    with pytest.raises(FrontendError, match=r"QL104 unsupported: .*known only at run time.*angle"):
        from_qasm(HEAD + source)


def test_a_run_time_value_that_does_not_type_is_a_coded_error_at_its_line():
    source = "qubit[2] q; bit[2] c;\nc = measure q;\nangle[8] a = c;\n"
    with pytest.raises(FrontendError, match=r"QL107 bad-value: <qasm>:5: .*cannot be cast"):
        from_qasm(HEAD + source)


def test_division_by_zero_at_run_time_is_a_coded_error():
    source = "qubit q; bit c; bit[4] o;\nc = measure q;\nint[4] k = 3 / int[4](c);\no = k;\n"
    with pytest.raises(EngineError, match=r"QE116 classical-fault: .*division by zero"):
        _counts(source, shots=50)


# ----------------------------------------------------------------------------- Aer


def _aer_programs() -> dict[str, Callable[[], object]]:
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
    from qiskit.circuit.classical import expr

    def registers() -> tuple[QuantumCircuit, ClassicalRegister, ClassicalRegister]:
        c, o = ClassicalRegister(3, "c"), ClassicalRegister(2, "o")
        return QuantumCircuit(QuantumRegister(3, "q"), c, o), c, o

    def rus_break() -> QuantumCircuit:
        qc, c, o = registers()
        with qc.while_loop(expr.logic_not(c[0])):
            qc.reset(0)
            qc.ry(1.2, 0)
            qc.measure(0, 0)
            qc.h(1)
            qc.measure(1, 1)
            with qc.if_test(expr.logic_and(c[1], expr.logic_not(c[0]))):
                qc.break_loop()
        qc.measure(0, o[0])
        return qc

    def for_continue() -> QuantumCircuit:
        qc, c, o = registers()
        with qc.for_loop(range(3)):
            qc.h(0)
            qc.measure(0, 0)
            with qc.if_test((c[0], 1)):
                qc.continue_loop()
            qc.rx(0.7, 1)
        qc.measure(1, o[0])
        return qc

    def switch_register() -> QuantumCircuit:
        qc, c, o = registers()
        qc.h(0)
        qc.ry(1.1, 1)
        qc.measure(0, 0)
        qc.measure(1, 1)
        with qc.switch(c) as case:
            with case(0):
                qc.x(2)
            with case(1, 2):
                qc.h(2)
            with case(case.DEFAULT):
                qc.ry(0.4, 2)
        qc.measure(2, o[1])
        return qc

    def comparisons() -> QuantumCircuit:
        qc, c, o = registers()
        qc.h([0, 1, 2])
        qc.measure([0, 1, 2], [0, 1, 2])
        with qc.if_test(expr.less(c, 3)) as else_:
            qc.x(0)
        with else_, qc.if_test(expr.equal(expr.bit_and(c, 5), 5)):
            qc.h(0)
        qc.measure(0, o[0])
        with qc.if_test(expr.logic_or(expr.greater_equal(c, 6), expr.bit_xor(c[0], c[1]))):
            qc.x(1)
        qc.measure(1, o[1])
        return qc

    def nested_loops() -> QuantumCircuit:
        qc, c, o = registers()
        with qc.for_loop(range(2)):
            qc.reset(2)
            with qc.while_loop((c[2], 0)):
                qc.ry(0.9, 2)
                qc.measure(2, 2)
            qc.cx(2, 0)
            qc.reset(2)
            qc.measure(2, 2)
        qc.measure(0, o[0])
        qc.measure(2, o[1])
        return qc

    return {
        "while with break": rus_break,
        "for with continue": for_continue,
        "switch on a register": switch_register,
        "comparisons and else": comparisons,
        "while inside for": nested_loops,
    }


@pytest.mark.parametrize("name", list(_aer_programs()))
def test_qiskit_dynamic_circuits_exported_as_openqasm3_match_aer(name):
    from qiskit import qasm3

    circuit = _aer_programs()[name]()
    text = qasm3.dumps(circuit)
    ours = dict(run(from_qasm(text), shots=SHOTS, seed=SEED, noise=False).counts)
    # Aer 0.18 drops idle qubits wrongly around control flow: keep them (see test_qasm3_out)
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="statevector", enable_truncation=False)
    compiled = transpile(circuit, sim, optimization_level=0, seed_transpiler=SEED)
    theirs = dict(sim.run(compiled, shots=SHOTS, seed_simulator=SEED).result().get_counts())
    assert_same_distribution(ours, theirs, name)


def test_aer_counts_helper_agrees_on_a_plain_circuit():
    # the two-sample test can fail: two different circuits are told apart at these shots
    from qiskit import QuantumCircuit

    a, b = QuantumCircuit(1, 1), QuantumCircuit(1, 1)
    a.h(0)
    b.ry(1.2, 0)
    a.measure(0, 0)
    b.measure(0, 0)
    assert tvd(aer_counts(a, SHOTS, SEED), aer_counts(b, SHOTS, SEED)) > 0.1


# ----------------------------------------------------------------------------- round trip


def _event_rows(graph: Graph, seed: int) -> dict[str, int]:
    """Counts keyed by every event but the bits of float values (the writer keeps a
    float in its variable only), in resources order."""
    floats = set()
    for node in graph.nodes:
        if node.op == "CALC" and str(node.args["type"]).startswith("float"):
            floats.update(node.produces)
    keep = [k for k, e in enumerate(graph.resources.events) if e not in floats]
    result = run(graph, shots=SHOTS, seed=seed, noise=False)
    return dict(Counter("".join(str(row[k]) for k in keep) for row in result.bits.tolist()))


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_the_openqasm3_writer_round_trips_run_time_classical_programs(name):
    import openqasm3

    graph = from_qasm(HEAD + PROGRAMS[name][0])
    text = to_qasm3(graph)
    openqasm3.parse(text)
    again = from_qasm(text)
    floats = {
        e
        for n in graph.nodes
        if n.op == "CALC" and str(n.args["type"]).startswith("float")
        for e in n.produces
    }
    keep = [k for k, e in enumerate(graph.resources.events) if e not in floats]
    counts = dict(run(again, shots=SHOTS, seed=SEED + 1, noise=False).counts)
    reread: Counter[str] = Counter()
    for key, n in counts.items():
        bits = key.replace(" ", "")[::-1]  # register m, bit 0 rightmost: event order
        reread["".join(bits[k] for k in keep)] += n
    assert_same_distribution(_event_rows(graph, SEED), dict(reread), name)


# ----------------------------------------------------------------------------- measurement
# into the bits of int, uint and angle variables (the specification's iterative phase
# estimation writes `measure q -> c[0]` into an angle[n]); was QL102 "bit register c is
# not declared"


def _into_variables() -> dict[str, float]:
    # c = 5 (0101); c[1] <- 1 (x), c[3] <- a coin: 0111 or 1111. a[3] <- a coin: 0000 or
    # 1000 as bits, pi as an angle; r flips where it is pi; u[0:1] <- 11; the bit d[2]
    # of an int is set only where the coin is 1 (it keeps its old value, 0, elsewhere)
    out: dict[str, float] = {}
    for (k, m, g), p in _flips(3):
        c = 0b0101 | 0b0010 | (k << 3)
        a = m << 3
        d = g << 2 if k else 0
        # out, ab, ub and db copy c, a, u and d; the ints measured into (c, u, d) are
        # registers of the key too, in declaration order (the angle a is not)
        copies = f"{_bits(d, 3)} {_bits(3, 2)} {_bits(a, 4)} {_bits(c, 4)}"
        key = f"{m} {copies} {_bits(d, 3)} {_bits(3, 2)} {_bits(c, 4)}"
        out[key] = out.get(key, 0.0) + p
    return out


INTO_VARIABLES = """
qubit[4] q;
qubit r;
int[4] c = 5;
angle[4] a;
uint[2] u;
int[3] d;
bit[4] out;
bit[4] ab;
bit[2] ub;
bit[3] db;
bit flag;
x q[0];
h q[1];
h q[2];
h q[3];
measure q[0] -> c[1];
c[3] = measure q[1];
out = bit[4](c);
a[3] = measure q[2];
ab = bit[4](a);
if (ab[3]) { x r; }
flag = measure r;
reset q[0];
x q[0];
u[0] = measure q[0];
u[1] = measure q[0];
ub = bit[2](u);
if (out[3]) { d[2] = measure q[3]; }
db = bit[3](d);
"""


def test_measurement_into_the_bits_of_int_and_angle_variables_matches_exact_theory():
    _assert_fits(_counts(INTO_VARIABLES), _into_variables(), "measure into variables")


def test_a_range_of_an_int_takes_a_register_measured_bit_by_bit():
    source = "qubit[3] q;\nuint[3] u = 0;\nbit[3] b;\nx q[0];\nx q[2];\n"
    source += "u[0:2] = measure q;\nb = bit[3](u);\n"
    assert _counts(source, shots=20) == {"101 101": 20}  # b, then u: it holds results too


def test_the_fast_lanes_arrow_measurement_into_an_int_bit_is_the_same_program():
    fast = from_qasm(HEAD + "qubit q;\nint[4] c;\nmeasure q -> c[2];\n")
    slow = from_qasm(HEAD + "qubit q;\nint[4] c;\nmeasure q -> c[2];\n", fast=False)
    assert fast.nodes == slow.nodes


@pytest.mark.parametrize(
    ("declaration", "statement", "code"),
    [
        ("angle[2] a;", "a = measure q;", "QL107"),  # a whole angle is not bits
        ("uint[3] u;", "u = measure q;", "QL103"),  # three bits, two qubits
        ("float[64] f;", "f[0] = measure q[0];", "QL104"),
        ("int[2] c;", "c[0:1] = measure q[0];", "QL103"),
        ("int[2] c;", "c[2] = measure q[0];", "QL107"),
    ],
)
def test_measurement_into_a_variable_that_holds_no_such_bits_is_a_coded_error(
    declaration, statement, code
):
    with pytest.raises(FrontendError) as caught:
        from_qasm(HEAD + f"qubit[2] q;\n{declaration}\n{statement}\n")
    assert caught.value.code == code


def test_measuring_into_a_whole_angle_says_to_measure_into_its_bits():
    with pytest.raises(FrontendError, match=r"QL107 .*the whole of a \(angle\[2\]\): an angl"):
        from_qasm(HEAD + "qubit[2] q;\nangle[2] a;\na = measure q;\n")


@pytest.mark.parametrize(
    "measured",
    [
        "int[3] c = measure q;",
        "uint[3] c = measure q;",
        "int[3] c;\nc = measure q;",
        "uint[3] c;\nmeasure q -> c;",
        "int[3] c;\nc[0] = measure q[0];\nc[1] = measure q[1];\nc[2] = measure q[2];",
        "output int[3] c;\nc = measure q;",
    ],
)
def test_an_int_measured_into_is_a_register_of_the_keys(measured: str):
    # it gave counts {'': 3000}, or QL104 "measure expression in a constant expression"
    source = f"qubit[3] q;\nbit[2] b;\nh q[0];\ncx q[0], q[1];\nx q[2];\n{measured}\n"
    source += "b[1] = measure q[1];\n"
    # c (declared after b) leftmost, bit 0 rightmost: q2 = 1, q1 = q0 = a coin; b[1] = q1
    expected = {"100 00": 0.5, "111 10": 0.5}
    _assert_fits(_counts(source), expected, measured)


@pytest.mark.parametrize(
    "measured",
    ["int[4] c = measure q;", "uint[4] c;\nc = measure q;", "int[4] c = 3;\nc = measure q;"],
)
def test_an_int_wholly_measured_into_lists_only_its_measurements_as_events(measured: str):
    # it listed 8 events for 4-bit keys: the int's zeros, written by a CALC first, too
    result = run(from_qasm(HEAD + f"qubit[4] q;\nx q[0];\nx q[2];\n{measured}\n"), shots=5, seed=1)
    assert len(result.events) == 4, result.events
    assert dict(result.counts) == {"0101": 5}


def test_an_int_measured_into_under_a_condition_keeps_its_old_bits_where_it_did_not_run():
    source = "qubit[2] q;\nbit b;\nuint[2] c = 2;\nx q[0];\nb = measure q[0];\n"
    source += "if (!b) { c = measure q; }\n"  # b is 1: c keeps 2
    assert dict(run(from_qasm(HEAD + source), shots=5, seed=1).counts) == {"1 10": 5}


def test_an_int_output_nothing_measured_into_is_its_value():
    source = "output uint[3] u;\nqubit q;\nbit b;\nh q;\nb = measure q;\nu = 5;\n"
    source += "if (b) { u = 2; }\n"
    _assert_fits(_counts(source), {"0 101": 0.5, "1 010": 0.5}, "output uint[3]")
