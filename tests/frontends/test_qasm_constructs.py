"""OpenQASM constructs real programs use: casts in conditions, constant integers and their
bits, more than six controls, inlined ``def`` subroutines, stretches in delays, inputs,
scalar bits keyed as Qiskit keys them, and the specification's own examples.

Expectations are exact (derived by hand in each test's docstring, so a single shot that
breaks them fails) or Aer's distribution for the same circuit built in Qiskit (chi-square
homogeneity at the stated seeds, see :mod:`support.frontends`), since Qiskit's OpenQASM 3
importer reads neither casts nor ``uint`` nor ``def``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qmk.execution.runs import run
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.qvm.fold import calls_bound
from support.cli import qmk

SPEC = Path(__file__).parent / "fixtures" / "openqasm-spec"
SHOTS = 2000
SEED = 11


def counts(source: str, *, shots: int = SHOTS, seed: int = SEED, **options) -> dict[str, int]:
    return run(from_qasm(source, **options), shots=shots, seed=seed, noise=False).counts


def error(source: str, **options) -> FrontendError:
    with pytest.raises(FrontendError) as info:
        from_qasm(source, name="p.qasm", **options)
    return info.value


# ------------------------------------------------------------------ the specification's examples


def test_the_specs_adder_adds_one_and_fifteen():
    """a = 1, b = 15: b becomes 1 + 15 = 16 mod 16 = 0 and the carry cout = 1, so
    ans[0:3] = 0000 and ans[4] = 1: every shot reads "10000"."""
    assert counts((SPEC / "adder.qasm").read_text(), shots=200) == {"10000": 200}


def test_the_specs_inverse_qft_of_the_uniform_state_reads_zero():
    """``reset q; h q;`` is the Fourier state of 0; each step's H turns |+> back into
    |0>, every measurement reads 0 and no conditional rotation fires: "0000" always."""
    assert counts((SPEC / "inverseqft1.qasm").read_text(), shots=200) == {"0000": 200}


def _fourier_state_phases(k: int) -> list[float]:
    """Phases that make the spec's semiclassical inverse QFT read ``k``.

    Qubit j is measured after H, once the rotations ``rz(c0*pi/2^j + c1*pi/2^(j-1) + ...)``
    its conditions select from the bits read so far have acted: with qubit j prepared in
    (|0> + e^{i phi_j}|1>)/sqrt 2, it reads c_j for sure when
    phi_j = c_j*pi - sum_{i<j} c_i*pi/2^(j-i).
    """
    bits = [(k >> j) & 1 for j in range(4)]
    return [
        bits[j] * math.pi - sum(bits[i] * math.pi / 2 ** (j - i) for i in range(j))
        for j in range(4)
    ]


@pytest.mark.parametrize("k", range(16))
def test_the_specs_inverse_qft_reads_k_from_the_fourier_state_of_k(k):
    source = (SPEC / "inverseqft1.qasm").read_text()
    prepare = "".join(f"rz({phi!r}) q[{j}];\n" for j, phi in enumerate(_fourier_state_phases(k)))
    source = source.replace("h q;\n", "h q;\n" + prepare, 1)
    assert counts(source, shots=50, seed=k) == {format(k, "04b"): 50}


def _rus_exit_zero() -> float:
    """The probability that the spec's repeat-until-success circuit (rus.qasm) reads 0,
    from its gates: segment's Kraus operator K_b on psi for each outcome b of the two
    ancillas (|00> in; H H, CCX, S, CCX, Z, H H, measured), the loop's state
    rho -> sum_{b != 00} K_b rho K_b^+ from |+><+|, each exit K_00 rho K_00^+ then
    rz(pi - arccos(3/5)), H and a measurement read 0, summed over 200 rounds."""
    import numpy as np

    eye, h = np.eye(2), np.array([[1, 1], [1, -1]]) / math.sqrt(2)
    s, z = np.diag([1, 1j]), np.diag([1, -1])

    def on(a0, a1, p):  # (ancilla 0, ancilla 1, psi), ancilla 0 the most significant
        return np.kron(np.kron(a0, a1), p)

    ccx = np.eye(8)
    ccx[6:, 6:] = [[0, 1], [1, 0]]
    u = on(h, h, eye) @ on(eye, eye, z) @ ccx @ on(eye, eye, s) @ ccx @ on(h, h, eye)
    kraus = {b: u[2 * b : 2 * b + 2, 0:2] for b in range(4)}  # <b| U |00>, a 2x2 on psi
    phi = math.pi - math.acos(3 / 5)
    rz = np.diag([np.exp(-1j * phi / 2), np.exp(1j * phi / 2)])
    read0 = (h @ rz)[0]  # <0| H rz
    plus = np.array([1, 1]) / math.sqrt(2)
    rho, zero = np.outer(plus, plus.conj()), 0.0
    for _ in range(200):
        out = kraus[0] @ rho @ kraus[0].conj().T
        zero += float(np.real(read0 @ out @ read0.conj()))
        rho = sum(kraus[b] @ rho @ kraus[b].conj().T for b in (1, 2, 3))
    return zero


def test_the_specs_repeat_until_success_reads_zero():
    """rus.qasm (``flags = segment(ancilla, input_qubit);`` in a while loop) was refused
    (QL104: a def's bits assigned under a condition QMK cannot track statically): the
    loop's flags, which already hold "11", now take the def's bits where the loop runs
    and keep theirs elsewhere. Its model reads 0 with probability 1 (its comment:
    "should get zero"), flags 00 once the loop ends."""
    assert _rus_exit_zero() == pytest.approx(1.0, abs=1e-12)
    assert counts((SPEC / "rus.qasm").read_text(), shots=200) == {"0 00": 200}


def test_a_defs_bits_assigned_under_a_condition_keep_their_value_where_it_fails():
    """``if (c) { r = f(q[1]); }`` into bits that hold "11": r is f's "01" where c is 1
    and stays "11" where it is 0 (half the shots each), both lanes."""
    source = """OPENQASM 3.0;
include "stdgates.inc";
def f(qubit a) -> bit[2] { bit[2] b; x a; b[0] = measure a; return b; }
qubit[2] q;
bit c;
bit[2] r = "11";
h q[0];
c = measure q[0];
if (c) { r = f(q[1]); }
"""
    for fast in (True, False):
        got = counts(source, shots=400, fast=fast)
        assert set(got) == {"1 01", "0 11"}, got  # c, then r
        assert 150 < got["1 01"] < 250, got  # binomial(400, 1/2): 5 sigma either side


# ------------------------------------------------------------------ casts and constant integers


def test_cast_comparisons_match_register_conditions_in_aer():
    qiskit = pytest.importorskip("qiskit")
    pytest.importorskip("qiskit_aer")
    from support.frontends import aer_counts, assert_same_distribution

    source = """OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[2] c;
bit[1] r;
h q[0]; h q[1];
c[0] = measure q[0];
c[1] = measure q[1];
if (int[2](c) == 1) { rx(0.7) q[2]; }
if (uint[2](c) == 2) { rx(1.9) q[2]; }
if (int[2](c) == -1) { x q[2]; }
if (bool(c[1]) && !bool(c[0])) { rz(0.3) q[2]; }
r[0] = measure q[2];
"""
    qc = qiskit.QuantumCircuit(qiskit.QuantumRegister(3, "q"))
    c, r = qiskit.ClassicalRegister(2, "c"), qiskit.ClassicalRegister(1, "r")
    qc.add_register(c)
    qc.add_register(r)
    qc.h([0, 1])
    qc.measure([0, 1], [c[0], c[1]])
    with qc.if_test((c, 1)):
        qc.rx(0.7, 2)
    with qc.if_test((c, 2)):
        qc.rx(1.9, 2)
    with qc.if_test((c, 3)):
        qc.x(2)
    qc.measure(2, r[0])
    assert_same_distribution(counts(source), aer_counts(qc, SHOTS, SEED), "casts")


def test_a_narrower_cast_reads_the_low_bits_and_a_signed_one_twos_complement():
    """c = 110 (x on q1, q2): int[2](c) reads the low bits 10 = -2 signed; uint(c) = 6."""
    source = """OPENQASM 3.0;
qubit[4] q;
bit[3] c;
bit[1] r;
U(pi, 0, pi) q[1]; U(pi, 0, pi) q[2];
c = measure q[0:2];
if (int[2](c) == -2) { U(pi, 0, pi) q[3]; }
if (uint(c) == 6) { U(pi, 0, pi) q[3]; }
if (uint[2](c) == 2) { U(pi, 0, pi) q[3]; }
r[0] = measure q[3];
"""
    assert counts(source, shots=100) == {"1 110": 100}  # three flips


def test_conditions_on_constant_integers_and_their_bits_are_decided_at_lowering():
    """a = 5 = 0b0101: a == 5 holds, bits 0 and 2 are set, bit -1 (bit 3) is not."""
    source = """OPENQASM 3.0;
include "stdgates.inc";
const uint[4] a = 5;
uint[4] b = 1;
qubit[4] q;
bit[4] c;
if (a == 5) x q[0];
if (a != 5) x q[1];
for uint i in [0:3] { if (bool(a[i])) x q[3 - i]; }
if (bool(a[-1])) x q[1];
if (b == 1 && bool(b[0])) x q[0];
c = measure q;
"""
    assert counts(source, shots=100) == {"1010": 100}  # q0 twice; q3 by a[0], q1 by a[2]


@pytest.mark.parametrize(
    ("source", "code", "fragment"),
    [
        ("const uint[2] a = 7;", "QL107", "does not fit a, a uint[2]"),
        ("const uint[2] a = 1;\nqubit q;\nif (bool(a[2])) U(0,0,0) q;", "QL107", "out of range"),
        ("qubit q;\nbit c;\nint t = c;\nU(t,0,0) q;", "QL104", "known only at run time"),
        ("qubit q;\nif (nothere == 1) U(0,0,0) q;", "QL102", "nothere is not defined"),
    ],
)
def test_conditions_qmk_cannot_decide_are_coded_errors(source, code, fragment):
    err = error("OPENQASM 3.0;\n" + source)
    assert err.code == code and fragment in str(err), str(err)


# ------------------------------------------------------------------ many controls


def test_seven_and_eight_controls_flip_the_target_exactly_when_all_are_one():
    """H on every control, then ctrl(7) @ x: the target reads the AND of the controls
    in every shot, and each of the 2^7 control patterns is equally likely."""
    source = """OPENQASM 3.0;
include "stdgates.inc";
qubit[9] q;
bit[9] c;
h q[0:6];
ctrl(7) @ x q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7];
x q[0:6];
negctrl(7) @ ctrl @ x q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8];
x q[0:6];
c = measure q;
"""
    result = counts(source, shots=4000, seed=3)
    for key in result:
        controls = key[-7:]
        target, second = key[1], key[0]
        assert target == ("1" if controls == "1111111" else "0"), key
        assert second == target, key  # negated controls on flipped qubits: the same AND
    assert len(result) > 100  # the controls really are in superposition


def test_a_controlled_rotation_with_seven_controls_matches_aer():
    qiskit = pytest.importorskip("qiskit")
    pytest.importorskip("qiskit_aer")
    from qiskit.circuit.library import RYGate

    from support.frontends import aer_counts, assert_same_distribution

    source = """OPENQASM 3.0;
include "stdgates.inc";
qubit[8] q;
bit[8] c;
x q[0:6];
ry(0.4) q[3];
ctrl(7) @ ry(1.3) q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7];
c = measure q;
"""
    qc = qiskit.QuantumCircuit(8, 8)
    qc.x(range(7))
    qc.ry(0.4, 3)
    qc.append(RYGate(1.3).control(7, annotated=False), range(8))
    qc.measure(range(8), range(8))
    assert_same_distribution(counts(source), aer_counts(qc, SHOTS, SEED), "ctrl(7)")


def test_qiskits_mcx_with_eight_controls_runs_on_qmk():
    qiskit = pytest.importorskip("qiskit")
    from qmk.qiskit import QMKBackend

    qc = qiskit.QuantumCircuit(9, 1)
    qc.x(range(8))
    qc.mcx(list(range(8)), 8)
    qc.measure(8, 0)
    result = QMKBackend().run(qc, shots=50, seed_simulator=1).result().get_counts()
    assert result == {"1": 50}


# ------------------------------------------------------------------ def subroutines

DEFS = """OPENQASM 3.0;
include "stdgates.inc";
const float half = 0.5;
def flip_and_read(qubit a, qubit[2] b, float t) -> bit {
    rx(t) a;
    cx a, b[0];
    bit r;
    r = measure b[0];
    return r;
}
def twice(float x) -> float { return 2 * x + half; }
def bell(qubit a, qubit b) { h a; cx a, b; }
def read(qubit a) -> bit { return measure a; }
qubit[4] q;
bit[2] c;
bit d;
c[0] = flip_and_read(q[0], q[1:2], pi);
rz(twice(0.25)) q[3];
bell(q[2], q[3]);
bit e = read(q[2]);
d = read(q[3]);
"""

INLINED = """OPENQASM 3.0;
include "stdgates.inc";
qubit[4] q;
bit[2] c;
bit d;
rx(pi) q[0];
cx q[0], q[1];
c[0] = measure q[1];
rz(1.0) q[3];
h q[2];
cx q[2], q[3];
bit e = measure q[2];
d = measure q[3];
"""


def test_a_def_is_inlined_into_the_same_nodes_as_the_program_written_out():
    def shape(graph):
        return [(n.op, n.vqs, dict(n.args), n.produces, n.guard) for n in graph.nodes]

    # (a def of gates only, called unconditioned, is a CALL row of its block: bound here)
    inlined, by_hand = calls_bound(from_qasm(DEFS)), from_qasm(INLINED)
    assert inlined.version == "0.3" and by_hand.version == "0.2"
    assert shape(inlined) == shape(by_hand)
    assert inlined.metadata == by_hand.metadata


def test_defs_give_the_exact_distribution():
    """rx(pi) then cx: the returned bit c[0] is 1; e and d read a Bell pair: "00" or "11"
    (scalars d, e as one group, d rightmost), each about half the time."""
    result = counts(DEFS, shots=1000)
    assert set(result) == {"00 01", "11 01"}
    assert abs(result["00 01"] - 500) < 5 * math.sqrt(250)


def test_a_def_under_a_condition_measures_into_fresh_bits_only():
    source = """OPENQASM 3.0;
include "stdgates.inc";
def read(qubit a) -> bit { return measure a; }
qubit[2] q;
bit[1] c;
bit[1] r;
x q[0]; x q[1];
c[0] = measure q[0];
if (c[0]) { r[0] = read(q[1]); }
"""
    assert counts(source, shots=100) == {"1 1": 100}


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ("def f() { f(); }\nf();", "QL104", "calls itself"),
        ("def f(qubit a) { }\nqubit[2] q;\nf(q);", "QL103", "takes 1 qubit(s), got 2"),
        ("def f(qubit a) { }\nf();", "QL103", "takes 1 argument(s), got 0"),
        (
            "def f(qubit a) -> bit { bit r; if (r) { return r; } return r; }\nqubit q;\nf(q);",
            "QL104",
            "a return inside a branch",
        ),
        ("def f(qubit a) { U(0,0,0) q; }\nqubit q;\nf(q);", "QL102", "q is not declared"),
        ("def f(qubit a) -> bit { U(0,0,0) a; }\nqubit q;\nf(q);", "QL107", "without returning"),
        (
            "def f(qubit a) -> bit { return measure a; }\nqubit q;\nU(f(q), 0, 0) q;",
            "QL104",
            "inside an expression",
        ),
        (  # the specification's msd.qasm calls a def so: it said only "is not defined"
            "def f(int[32] n, qubit a) { }\nqubit q;\nf(3) q;",
            "QL102",
            "gate f is not defined (f is a def: call it as f(...), qubits too in the",
        ),
    ],
)
def test_defs_qmk_cannot_inline_are_coded_errors(body, code, fragment):
    err = error("OPENQASM 3.0;\n" + body + "\n")
    assert err.code == code and fragment in str(err), str(err)


# ------------------------------------------------------------------ stretch, inputs, scalar bits


def test_a_stretch_used_only_in_delays_is_ignored_like_the_delay():
    source = """OPENQASM 3.0;
include "stdgates.inc";
stretch s;
qubit[2] q;
bit[2] c;
x q[0];
delay[s] q[0];
delay[2 * s] q;
c = measure q;
"""
    assert counts(source, shots=100) == {"01": 100}
    err = error("OPENQASM 3.0;\nstretch s;\nqubit q;\nU(s, 0, 0) q;\n")
    assert err.code == "QL104" and "only in delay" in str(err)


INPUTS = """OPENQASM 3.0;
include "stdgates.inc";
input float theta;
input int[8] reps;
qubit q;
bit c;
for int i in [1:reps] { rx(theta) q; }
c = measure q;
"""


def test_inputs_take_their_values_by_name_and_unknown_names_are_refused():
    assert counts(INPUTS, shots=100, params={"theta": math.pi / 2, "reps": 2}) == {"1": 100}
    assert error(INPUTS, params={"theta": 1.0}).code == "QL102"  # reps has no value
    err = error(INPUTS, params={"theta": 1.0, "reps": 1, "zeta": 2})
    assert "input zeta is not declared" in str(err)
    assert "does not fit" in str(error(INPUTS, params={"theta": 1.0, "reps": 300}))


def test_qmk_run_takes_input_values(tmp_path):
    path = tmp_path / "inputs.qasm"
    path.write_text(INPUTS)
    args = ("run", str(path), "--no-noise", "--seed", "1", "--shots", "64", "--json")
    status, out, err = qmk(*args, "--input", "theta=pi/2", "--input", "reps=2")
    assert status == 0, err
    assert '"1": 64' in out
    status, out, err = qmk(*args, "--input", "theta=pi/2")
    assert status == 2 and err.startswith("QL102 undefined:") and err.count("\n") == 1
    status, out, err = qmk("run", str(tmp_path / "x.qvm.json"), "--input", "a=1")
    assert status == 2


def test_scalar_bits_are_keyed_as_qiskit_keys_loose_clbits():
    """Only scalar bits: one group, the first declared rightmost, as Aer keys the loose
    clbits Qiskit's importer makes of them."""
    pytest.importorskip("qiskit")
    pytest.importorskip("qiskit_aer")
    import qiskit.qasm3

    from support.frontends import aer_counts, assert_same_distribution

    source = """OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit b;
bit d;
bit f;
x q[0];
h q[2];
b = measure q[0];
d = measure q[1];
f = measure q[2];
"""
    ours = counts(source)
    assert set(ours) == {"001", "101"}
    assert_same_distribution(ours, aer_counts(qiskit.qasm3.loads(source), SHOTS, SEED), "bits")
