"""OpenQASM 3 angles, shifts and bit functions, and the specification's phase estimation.

The specification's iterative phase estimation (``examples/ipe.qasm``, a fixture copied
unchanged) shifts an ``angle[n]`` left (``c <<= 1``) and applies it as a gate's
parameter (``inv @ phase(c)``); it was refused (QL107: ``<<`` of an angle). Checked:

- the specification's program against an exact model of it (its measurement branches
  enumerated on two qubits), chi-square at seed :data:`SEED`; the textbook order (right
  shifts) on phases ``k/8`` reads ``k`` in every shot;
- a run-time parameter of each gate that takes one, with modifiers, against Qiskit's
  matrices (``qiskit.quantum_info.Statevector``) for every value of an angle or an int
  made by coin flips: chi-square;
- every operator on angles, integers and bits (shifts and their assignments, ``& | ^ ~``,
  angle ``+ - * /`` and negation, ``rotl rotr popcount``, casts between an angle and bits,
  comparisons) computed at run time and known before it, against the specification's
  rules written apart (:mod:`support.qasm_spec`) on seeded random values: both give the
  reference's bits;
- what QMK cannot apply is a coded error naming it.

Statistics as in ``test_qasm_classical.py``: p > 1e-4 / 40 (Bonferroni over the file).
"""

from __future__ import annotations

import importlib.util
import math
import random
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2

from qmk.engines import EngineError
from qmk.execution.runs import run
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.qvm.fold import calls_bound
from support import qasm_spec as spec
from support.frontends import ALPHA, COMPARISONS

SEED = 31
SHOTS = 2000
HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
SPEC = Path(__file__).parent / "fixtures" / "openqasm-spec"
_HAS_QISKIT = importlib.util.find_spec("qiskit") is not None


def _counts(source: str, shots: int = SHOTS, seed: int = SEED) -> dict[str, int]:
    return dict(run(from_qasm(source), shots=shots, seed=seed, noise=False).counts)


def _assert_fits(counts: Mapping[str, int], expected: Mapping[str, float], label: str) -> None:
    """Chi-square goodness of fit, cells expected under 5 shots pooled into one."""
    assert math.isclose(sum(expected.values()), 1.0, abs_tol=1e-9), label
    outside = {k for k in counts if expected.get(k, 0.0) <= 1e-12}
    assert not outside, f"{label}: outcomes theory forbids: {sorted(outside)[:5]}"
    shots = sum(counts.values())
    cells, rest = [], [0, 0.0]
    for key, p in expected.items():
        if p * shots >= 5:
            cells.append((counts.get(key, 0), p * shots))
        else:
            rest[0] += counts.get(key, 0)
            rest[1] += p * shots
    if rest[1] > 0:
        cells.append((rest[0], rest[1]))
    stat = sum((o - e) ** 2 / e for o, e in cells)
    p_value = float(chi2.sf(stat, max(1, len(cells) - 1)))
    assert p_value > ALPHA / COMPARISONS, f"{label}: p={p_value:.2e} counts={counts}"


# ----------------------------------------------------------------------------- phase estimation


def _spec_ipe(n: int, theta: float) -> dict[str, float]:
    """The specification's ipe.qasm, exactly: q estimates the phase of phase(theta) on r,
    which starts in |+> (an equal mixture of the eigenvalues 1 and e^{i theta}); iteration
    i applies ctrl @ pow(2^i) @ phase(theta), then phase(-c), measures q into c[0] and
    shifts c (an angle[n], 2 pi k / 2^n) left. The branches of its n measurements."""
    h = np.array([[1, 1], [1, -1]]) / math.sqrt(2)
    on_q, on_r = (lambda u: np.kron(np.eye(2), u)), (lambda u: np.kron(u, np.eye(2)))
    out: dict[str, float] = {}

    def branch(state: np.ndarray, prob: float, i: int, k: int) -> None:
        if i == n:
            key = format(k, f"0{n}b")
            out[key] = out.get(key, 0.0) + prob
            return
        if abs(state[1]) ** 2 + abs(state[3]) ** 2 > 0.5:  # reset q: it holds the last 1
            state = on_q(np.array([[0, 1], [1, 0]])) @ state
        state = on_q(h) @ state
        state = state * np.array([1, 1, 1, np.exp(1j * (2**i) * theta)])  # index q + 2 r
        c = spec.float_of_angle(n, k)
        state = on_q(h) @ (state * np.array([1, np.exp(-1j * c), 1, np.exp(-1j * c)]))
        for m in (0, 1):
            part = state * np.array([1 - m, m, 1 - m, m])
            p = float(np.vdot(part, part).real)
            if p > 1e-15:
                shifted = spec.shl(n, (k & ~1) | m, 1)
                branch(part / math.sqrt(p), prob * p, i + 1, shifted)

    branch(on_r(h) @ np.array([1, 0, 0, 0], dtype=complex), 1.0, 0, 0)
    return out


def test_the_specifications_iterative_phase_estimation_matches_its_exact_model():
    """Was QL107 (``<<`` of angle[10] and int is not defined). The program as the
    specification writes it, and a line reading its estimate ``c`` as bits."""
    source = (SPEC / "ipe.qasm").read_text() + "bit[10] estimate = c;\n"
    theta = float(np.float32(3 * math.pi / 8))  # const float[32] theta = 3 * pi / 8
    _assert_fits(_counts(source), _spec_ipe(10, theta), "ipe.qasm")


TEXTBOOK_IPE = """
const uint n = 3;
const float theta = 2 * pi * {k} / 8;
qubit q;
qubit r;
angle[n] c;
uint[n] power = 4;
bit[n] estimate;
x r;
for uint i in [0 : n - 1] {{
  reset q;
  h q;
  ctrl @ pow(power) @ phase(theta) q, r;
  c >>= 1;
  inv @ phase(c) q;
  h q;
  measure q -> c[n - 1];
  power >>= 1;
}}
estimate = c;
"""


@pytest.mark.parametrize("k", range(8))
def test_phase_estimation_in_the_textbook_order_reads_every_phase_of_three_bits_exactly(k):
    """The least significant bit first (power 4, 2, 1), each correction the bits measured
    so far shifted right: a phase of k/8 of a turn reads k in every shot."""
    counts = _counts(HEAD + TEXTBOOK_IPE.format(k=k), shots=50, seed=SEED + k)
    assert counts == {format(k, "03b"): 50}


# ----------------------------------------------------------------------------- run-time gate
# parameters: each gate that takes one, on every value of an angle[3] (or an int[3]) made
# by three coin flips, against Qiskit's matrices


def _minus(theta: float) -> float:
    """The angle[3] -c of the angle c of ``theta`` radians: 2 pi - theta, 0 for 0."""
    return spec.float_of_angle(3, spec.angle_neg(3, spec.angle_of_float(3, theta)))


def _forms() -> dict[str, tuple[str, str, Callable[..., None]]]:
    """name -> (the kind of c, the statement, how Qiskit applies it for c of theta)."""
    from qiskit.circuit import library as lib

    def on(gate: Callable[[float], object], *qubits: int) -> Callable[..., None]:
        return lambda qc, theta: qc.append(gate(theta), list(qubits))

    return {
        "rz": ("angle", "rz(c) t;", on(lib.RZGate, 1)),
        "phase of -c": ("angle", "phase(-c) t;", on(lambda t: lib.PhaseGate(_minus(t)), 1)),
        "inv @ phase": ("angle", "inv @ phase(c) t;", on(lambda t: lib.PhaseGate(t).inverse(), 1)),
        "ctrl @ rz": ("angle", "ctrl @ rz(c) k, t;", on(lambda t: lib.RZGate(t).control(1), 0, 1)),
        "crz of -c": ("angle", "crz(-c) k, t;", on(lambda t: lib.CRZGate(_minus(t)), 0, 1)),
        "negctrl @ rx": (
            "angle",
            "negctrl @ rx(c) k, t;",
            on(lambda t: lib.RXGate(t).control(1, ctrl_state=0), 0, 1),
        ),
        "pow(2) @ ry": ("angle", "pow(2) @ ry(c) t;", on(lambda t: lib.RYGate(2 * t), 1)),
        "cry": ("angle", "cry(c) k, t;", on(lib.CRYGate, 0, 1)),
        "cp": ("angle", "cp(c) k, t;", on(lib.CPhaseGate, 0, 1)),
        "cphase": ("angle", "cphase(c) k, t;", on(lib.CPhaseGate, 0, 1)),
        "ctrl @ inv @ rx": (
            "angle",
            "ctrl @ inv @ rx(c) k, t;",
            on(lambda t: lib.RXGate(-t).control(1), 0, 1),
        ),
        "ctrl @ gphase": (
            "angle",
            "ctrl @ gphase(c) k;",
            on(lambda t: lib.GlobalPhaseGate(t).control(1), 0),
        ),
        "rx of an int": ("int", "rx(c) t;", on(lib.RXGate, 1)),
        "crx of an int": ("int", "crx(c) k, t;", on(lib.CRXGate, 0, 1)),
    }


GATE_FORM = """
qubit[3] a;
qubit k;
qubit t;
{kind}[3] c;
h a;
c[0] = measure a[0];
c[1] = measure a[1];
c[2] = measure a[2];
h k;
h t;
{form}
h k;
h t;
bit[3] cb = bit[3](c);
bit[2] m;
m[0] = measure k;
m[1] = measure t;
"""


def _form_distribution(kind: str, apply: Callable[..., None]) -> dict[str, float]:
    """k and t start in |+>, the gate acts, both are read in the X basis: the relative
    phases the gate gives (a control's too) show in the counts."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    out: dict[str, float] = {}
    for raw in range(8):
        theta = float(spec.signed(3, raw)) if kind == "int" else spec.float_of_angle(3, raw)
        qc = QuantumCircuit(2)
        qc.h([0, 1])
        apply(qc, theta)
        qc.h([0, 1])
        # m, cb and, for an int (it holds results: measured into), c itself
        bits = f" {raw:03b}" * (2 if kind == "int" else 1)
        for key, p in Statevector(qc).probabilities_dict().items():
            if p > 1e-12:
                out[f"{key}{bits}"] = out.get(f"{key}{bits}", 0.0) + p / 8
    return out


@pytest.mark.parametrize("name", list(_forms()) if _HAS_QISKIT else [])
def test_a_run_time_gate_parameter_applies_as_qiskits_matrix_for_every_value(name):
    kind, form, apply = _forms()[name]
    counts = _counts(HEAD + GATE_FORM.format(kind=kind, form=form))
    _assert_fits(counts, _form_distribution(kind, apply), name)


# ----------------------------------------------------------------------------- operators: each
# computed at run time (its operands measured into their bits) and known before the run
# (declared with values), against the specification's rule


def _ref_shr(kind: str) -> Callable[[int, int, int], int]:
    return lambda n, x, y: spec.shr(kind, n, x, y)


#: name -> (x's type, y's type or None, the expression or statement, result width, rule of
#: the bit patterns (width, x, y) -> the result's pattern)
OPERATORS: dict[str, tuple[str, str | None, str, int, Callable[[int, int, int], int]]] = {
    "angle << uint": ("angle[4]", "uint[3]", "x << y", 4, spec.shl),
    "angle >> uint": ("angle[4]", "uint[3]", "x >> y", 4, _ref_shr("angle")),
    "angle <<= uint": ("angle[4]", "uint[3]", "x <<= y;", 4, spec.shl),
    "angle >>= uint": ("angle[4]", "uint[3]", "x >>= y;", 4, _ref_shr("angle")),
    "uint << uint": ("uint[5]", "uint[3]", "x << y", 5, spec.shl),
    "uint >>= uint": ("uint[5]", "uint[3]", "x >>= y;", 5, _ref_shr("uint")),
    "int << uint": ("int[5]", "uint[3]", "x << y", 5, spec.shl),
    "int >> uint": ("int[5]", "uint[3]", "x >> y", 5, _ref_shr("int")),
    "int >>= uint": ("int[5]", "uint[3]", "x >>= y;", 5, _ref_shr("int")),
    "bit << uint": ("bit[6]", "uint[3]", "x << y", 6, spec.shl),
    "bit >> uint": ("bit[6]", "uint[3]", "x >> y", 6, _ref_shr("bit")),
    "bit <<= uint": ("bit[6]", "uint[3]", "x <<= y;", 6, spec.shl),
    "angle & angle": ("angle[4]", "angle[4]", "x & y", 4, lambda n, x, y: x & y),
    "angle | angle": ("angle[4]", "angle[4]", "x | y", 4, lambda n, x, y: x | y),
    "angle ^= angle": ("angle[4]", "angle[4]", "x ^= y;", 4, lambda n, x, y: x ^ y),
    "~angle": ("angle[4]", None, "~x", 4, lambda n, x, y: spec.bitwise("~", n, x)),
    "bit & bit": ("bit[5]", "bit[5]", "x & y", 5, lambda n, x, y: x & y),
    "bit ^ bit": ("bit[5]", "bit[5]", "x ^ y", 5, lambda n, x, y: x ^ y),
    "~bit": ("bit[5]", None, "~x", 5, lambda n, x, y: spec.bitwise("~", n, x)),
    "angle + angle": ("angle[5]", "angle[5]", "x + y", 5, lambda n, x, y: (x + y) % 32),
    "angle -= angle": ("angle[5]", "angle[5]", "x -= y;", 5, lambda n, x, y: (x - y) % 32),
    "-angle": ("angle[5]", None, "-x", 5, lambda n, x, y: spec.angle_neg(n, x)),
    "angle * uint": ("angle[5]", "uint[5]", "x * y", 5, lambda n, x, y: (x * y) % 32),
    "uint * angle": ("angle[5]", "uint[5]", "y * x", 5, lambda n, x, y: (x * y) % 32),
    "angle / uint": ("angle[5]", "uint[5]", "x / y", 5, lambda n, x, y: x // y),
    "angle / angle": ("angle[5]", "angle[5]", "uint[5](x / y)", 5, lambda n, x, y: x // y),
    "rotl of bits": ("bit[6]", "uint[3]", "rotl(x, y)", 6, spec.rotl),
    "rotr of a uint": ("uint[6]", "uint[3]", "rotr(x, y)", 6, spec.rotr),
    "rotl of an angle": ("angle[6]", "uint[3]", "rotl(x, y)", 6, spec.rotl),
    "popcount": ("angle[6]", None, "uint[6](popcount(x))", 6, lambda n, x, y: spec.popcount(x)),
    "bits of an angle": ("angle[4]", None, "bit[4](x)", 4, lambda n, x, y: x),
    "angle of bits": ("bit[4]", None, "angle[4](x)", 4, lambda n, x, y: x),
    "angle < angle": ("angle[4]", "angle[4]", "x < y", 1, lambda n, x, y: int(x < y)),
    "angle == pi": ("angle[4]", None, "x == pi", 1, lambda n, x, y: int(x == 8)),
    "angle >= pi / 2": ("angle[4]", None, "x >= pi / 2", 1, lambda n, x, y: int(x >= 4)),
}


def _literal(t: str, raw: int) -> str:
    kind, n = t.split("[")[0], int(t.split("[")[1].rstrip("]"))
    if kind == "angle":
        return f"2 * pi * {raw} / {2**n}"
    if kind == "int":
        return str(spec.signed(n, raw))
    if kind == "bit":
        return '"' + format(raw, f"0{n}b") + '"'
    return str(raw)


def _operator_program(name: str, draws: list[tuple[int, int]], runtime: bool) -> str:
    """``x op y`` for each draw, into ``bit[w] o<d>``; the operands measured into their
    bits (run time) or declared with their values (known before the run)."""
    tx, ty, expr, width, _ = OPERATORS[name]
    lines = [HEAD, "qubit q;"]
    for d, (x, y) in enumerate(draws):
        for var, t, raw in ((f"x{d}", tx, x), (f"y{d}", ty, y)):
            if t is None:
                continue
            if not runtime:
                lines.append(f"{t} {var} = {_literal(t, raw)};")
                continue
            lines.append(f"{t} {var};")
            for k in range(int(t.split("[")[1].rstrip("]"))):
                lines += [
                    "reset q;",
                    *(["x q;"] if raw >> k & 1 else []),
                    f"{var}[{k}] = measure q;",
                ]
        here = re.sub(r"\b([xy])\b", rf"\g<1>{d}", expr)
        if here.endswith(";"):
            lines += [here, f"bit[{width}] o{d} = bit[{width}](x{d});"]
        else:
            lines.append(f"bit[{width}] o{d} = {here};")
    return "\n".join(lines) + "\n"


def _outputs(source: str, key: str) -> dict[str, int]:
    """The values of the registers a key shows (in reverse declaration order): the bit
    registers, and the ints and uints measured into."""
    declared = re.findall(r"^(bit|u?int)\[\d+\] (\w+)", source, flags=re.MULTILINE)
    names = [
        name
        for kind, name in declared
        if kind == "bit" or re.search(rf"^{name}\[\d+\] = measure", source, flags=re.MULTILINE)
    ]
    return {n: int(bits, 2) for n, bits in zip(names, reversed(key.split(" ")), strict=True)}


@pytest.mark.parametrize("when", ["run time", "before the run"])
@pytest.mark.parametrize("name", list(OPERATORS))
def test_each_operator_gives_the_specifications_bits_at_run_time_and_before_it(name, when):
    tx, ty, _, width, rule = OPERATORS[name]
    rng = random.Random(f"{SEED} {name}")
    nx = int(tx.split("[")[1].rstrip("]"))
    ny = int(ty.split("[")[1].rstrip("]")) if ty else 1
    low = 1 if "/" in OPERATORS[name][2] else 0  # no division by zero
    draws = [(rng.randrange(1 << nx), rng.randrange(low, 1 << ny)) for _ in range(3)]
    source = _operator_program(name, draws, runtime=when == "run time")
    graph = from_qasm(source)
    assert ("CALC" in {n.op for n in graph.nodes}) or when != "run time"
    (key,) = run(graph, shots=1, seed=SEED, noise=False).counts
    got = _outputs(source, key)
    for d, (x, y) in enumerate(draws):
        assert got[f"o{d}"] == rule(nx, x, y) & ((1 << width) - 1), (name, when, x, y, key)


# ----------------------------------------------------------------------------- what QMK cannot
# apply: coded errors that name it

MEASURED_C = (
    "qubit[3] a;\nqubit t;\nangle[3] c;\nh a;\nc[0] = measure a[0];\nc[1] = measure a[1];\n"
)


@pytest.mark.parametrize(
    ("statement", "code", "words"),
    [
        ("gate g(x) q { rz(x) q; }\ng(c) t;", "QL104", "gate g with a parameter known only"),
        ("U(c, 0, 0) t;", "QL104", "gate U with a parameter known only at run time"),
        ("pow(0.5) @ rz(c) t;", "QL104", r"pow\(0.5\) @ rz with a parameter known only"),
        ("float f = float(c);\nrz(f) t;", "QL104", r"float\[64\] known only at run time"),
        ("nope(c) t;", "QL102", "gate nope is not defined"),
        ("rz(c, c) t;", "QL103", "takes 1 parameter"),
        ("int[3] i = 1;\ni = rotl(i, 1);", "QL107", r"rotl\(\) of int\[3\]"),
        ("bit[2] b = c;", "QL107", r"angle\[3\] cannot be cast to bit\[2\]"),
    ],
)
def test_what_qmk_cannot_apply_is_a_coded_error_naming_it(statement, code, words):
    with pytest.raises(FrontendError) as caught:
        from_qasm(HEAD + MEASURED_C + statement + "\n")
    assert caught.value.code == code
    assert re.search(words, str(caught.value)), str(caught.value)


def test_a_shift_by_a_negative_count_stops_the_run_with_a_classical_fault():
    source = HEAD + MEASURED_C + "int[3] s = -1;\ns[0] = measure a[2];\nc = c << s;\n"
    source += "bit[3] o = c;\n"
    with pytest.raises(EngineError, match=r"QE116 classical-fault: .*negative count"):
        _counts(source, shots=20)


def test_a_gate_line_reading_a_variable_follows_its_value_in_the_fast_lane_too():
    """The fast lane kept a gate line's nodes by its text: after ``a = 0.7`` the same line
    ``rz(a) q[0];`` was still written with 0.5."""
    source = HEAD + "qubit[1] q;\nfloat a = 0.5;\nrz(a) q[0];\na = 0.7;\nrz(a) q[0];\n"
    for fast in (True, False):
        graph = from_qasm(source, fast=fast)
        assert [n.args["theta"] for n in graph.nodes if n.op == "APPLY_RZ"] == [0.5, 0.7]


def test_a_run_time_parameter_on_a_gate_line_reads_the_same_in_both_lanes():
    source = HEAD + MEASURED_C + "rz(c) t;\nphase(-c) t;\n"
    assert from_qasm(source).nodes == from_qasm(source, fast=False).nodes


def test_an_angle_known_before_the_run_is_held_as_its_type_holds_it():
    """angle[4] a = 3 pi is pi (modulo a turn), angle[2] b = 1 is pi/2 (the nearest of
    its four values), and they combine by their types' rules as at run time."""
    source = HEAD + "qubit q;\nangle[4] a = 3 * pi;\nangle[2] b = 1;\n"
    source += "rz(a) q;\nrz(b) q;\nrz(a + a) q;\nrz(-a) q;\nrz(a >> 1) q;\nrz(float(b)) q;\n"
    thetas = [n.args["theta"] for n in from_qasm(source).nodes if n.op == "APPLY_RZ"]
    assert thetas == pytest.approx([math.pi, math.pi / 2, math.pi, math.pi / 2, math.pi / 2])


HOLDERS = {
    # how a program gets an angle[n] a of x radians, and reads rz(a), rz(a << 1), rz(-a)
    "input": ("input angle[{n}] a;\n{body}", "a"),
    "const": ("const angle[{n}] a = {x!r};\n{body}", "a"),
    "def argument": ("def f(angle[{n}] t, qubit r) {{\n{body}}}\nf({x!r}, q);\n", "t"),
}


@pytest.mark.parametrize("holder", list(HOLDERS))
def test_an_input_const_or_def_argument_angle_is_held_as_its_type_holds_it(holder):
    """An ``input angle[n]``, a def's ``angle[n]`` argument by value and a ``const``
    read in an expression were held as the number given: ``input angle[2] a`` of 1.0
    was rz(1.0), not pi/2 (the nearest of its four values), and ``a << 1`` of an
    ``angle[4]`` argument of 3 pi/4 was int(2.36) << 1 = 4 radians, not 3 pi/2. Each is
    now the specification's angle (:mod:`support.qasm_spec`): seeded values of widths
    1..8, in both lanes."""
    template, name = HOLDERS[holder]
    rng = random.Random(f"{SEED} {holder}")
    for _ in range(12):
        n, x = rng.randrange(1, 9), rng.uniform(-10.0, 10.0)
        gates = "".join(
            f"rz({e}) {'r' if holder == 'def argument' else 'q'};\n"
            for e in (name, f"{name} << 1", f"-{name}")
        )
        source = HEAD + "qubit q;\n" + template.format(n=n, x=x, body=gates)
        raw = spec.angle_of_float(n, x)
        patterns = (raw, spec.shl(n, raw, 1), spec.angle_neg(n, raw))
        expected = [spec.float_of_angle(n, p) for p in patterns if p]  # rz(0) writes nothing
        for fast in (True, False):
            params = {"a": x} if holder == "input" else None
            graph = calls_bound(from_qasm(source, params=params, fast=fast))  # (a def's block)
            thetas = [nd.args["theta"] for nd in graph.nodes if nd.op == "APPLY_RZ"]
            assert thetas == pytest.approx(expected, abs=1e-12), (holder, n, x, fast)


def test_an_input_angle_rotates_by_the_angle_it_holds_when_the_program_runs():
    """``input angle[1] a`` given 2.0 holds pi (its nearest value): rx(a) flips the qubit
    in every shot; it was rx(2.0) (1 in 71% of shots)."""
    source = HEAD + "input angle[1] a;\nqubit q;\nbit c;\nrx(a) q;\nc = measure q;\n"
    counts = run(from_qasm(source, params={"a": 2.0}), shots=200, seed=SEED, noise=False).counts
    assert dict(counts) == {"1": 200}


def test_the_bits_of_a_const_angle_are_its_patterns_bits():
    """``a[k]`` of a ``const angle[4]`` was QL104 (indexing a, which is not an integer):
    the specification's 9 pi/8 is "1001"."""
    source = HEAD + "const angle[4] a = 9 * (pi / 8);\nbit[4] o;\n"
    source += "".join(f"o[{k}] = a[{k}];\n" for k in range(4))
    assert dict(_counts(source, shots=3)) == {"1001": 3}


def test_a_cast_known_before_the_run_is_a_value_of_its_type():
    """``angle[2](1.0)`` was 1.0 (a constant cast kept the number), and so ``a +
    angle[4](pi / 2)``, the form QL107's hint gives for ``a + pi / 2``, was refused too
    (``+ of angle[4] and float[64]``), before the run and at run time."""
    source = HEAD + "input angle[4] a;\nqubit q;\nangle[4] c;\nh q;\nc[0] = measure q;\n"
    source += "rz(angle[2](1.0)) q;\nrz(uint[4](20)) q;\nrz(a + angle[4](pi / 2)) q;\n"
    quarter = spec.float_of_angle(4, spec.angle_of_float(4, 1.0) + 4)  # a + pi/2 on 16 values
    for fast in (True, False):
        graph = from_qasm(source + "rz(c + angle[4](pi / 2)) q;\n", params={"a": 1.0}, fast=fast)
        thetas = [n.args["theta"] for n in graph.nodes if n.op == "APPLY_RZ"]
        assert thetas[:3] == pytest.approx([math.pi / 2, 4.0, quarter]), fast
    with pytest.raises(FrontendError, match=r"QL107 .*cast the number to an angle"):
        from_qasm(source + "rz(a + pi / 2) q;\n", params={"a": 1.0})


def test_the_openqasm3_writer_keeps_every_argument_of_a_bit_function():
    """``qmk qasm`` wrote ``rotl(x)`` for ``rotl(x, 1)`` (one argument per call), which
    does not read back."""
    from qmk.frontends.qasm3_out import to_qasm3

    source = HEAD + "qubit q;\nuint[3] u;\nx q;\nu[0] = measure q;\nu[2] = measure q;\n"
    source += "bit[3] r = rotl(u, 1);\nbit[3] p = bit[3](popcount(u));\nbit[3] s = u >> 2;\n"
    written = to_qasm3(from_qasm(source))
    assert "rotl(" in written and ", 1)" in written
    (key,) = _counts(written, shots=5)
    assert key.split(" ")[:3] == ["001", "010", "011"]  # s, p, r: u = 101
