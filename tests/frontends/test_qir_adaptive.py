"""QIR's adaptive profile as Q# emits it: classical values computed from measurements.

Q# operations whose results are integers and booleans computed from measurement results
(``int_record_output``, ``bool_record_output`` of a computed condition), that branch on
integers computed from results (``icmp`` of a ``phi``), compare floats computed from
results (``fcmp``, the ``Adaptive_RIF`` profile) and measure in blocks reached along
several paths are compiled by ``qsharp.compile`` and lowered by QMK. Each is checked
against ``qsharp.run`` of the same operation: Q# runs a wrapper that repeats it
:data:`SHOTS` times in one seeded shot (``qsharp.set_quantum_seed`` seeds every shot
alike, so repetitions inside one shot are Q#'s independent samples), and a chi-square
test of homogeneity compares the two at p > 1e-4 / 40 (:mod:`support.frontends`). The
popcount program is checked against exact theory too.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("pyqir")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    qsharp = pytest.importorskip("qsharp")

from qmk.execution.runs import run
from qmk.frontends.qir import from_qir
from support.exact import chi2_pvalue
from support.frontends import ALPHA, COMPARISONS, assert_same_distribution

SHOTS = 2000
SEED = 41

#: (operation, its return type, Q# source) for the Adaptive_RI profile.
RI_PROGRAMS: dict[str, tuple[str, str]] = {
    "CountOnes": (
        "Int",
        """
operation CountOnes() : Int {
    use qs = Qubit[3];
    ApplyToEach(H, qs);
    mutable n = 0;
    for q in qs {
        if MResetZ(q) == One { set n += 1; }
    }
    n
}""",
    ),
    "Flags": (
        "(Bool, Int)",
        """
operation Flags() : (Bool, Int) {
    use (a, b) = (Qubit(), Qubit());
    H(a); H(b);
    let ra = MResetZ(a) == One;
    let rb = MResetZ(b) == One;
    let both = ra and rb;
    mutable k = 0;
    if ra or rb { set k = 2; } else { set k = 5; }
    if k == 2 { X(a); }
    let r = MResetZ(a) == One;
    (both or r, k)
}""",
    ),
    "Arithmetic": (
        "(Int, Int, Bool)",
        """
operation Arithmetic() : (Int, Int, Bool) {
    use qs = Qubit[3];
    ApplyToEach(H, qs);
    Ry(0.7, qs[2]);
    mutable v = 0;
    for i in 0..2 {
        if MResetZ(qs[i]) == One { set v += 1 <<< i; }
    }
    let w = (3 * v - 11) / 2;
    let m = (v * v) % 5;
    use t = Qubit();
    if w < 0 and m != 1 { H(t); }
    let r = MResetZ(t) == One;
    (w, m, r)
}""",
    ),
    "RepeatUntilSuccess": (
        "(Int, Result)",
        """
operation RepeatUntilSuccess() : (Int, Result) {
    use (q, target) = (Qubit(), Qubit());
    mutable tries = 0;
    mutable done = false;
    for _ in 1..6 {
        if not done {
            Ry(1.1, q);
            set done = MResetZ(q) == One;
            set tries += 1;
        }
    }
    if tries > 2 { X(target); }
    (tries, MResetZ(target))
}""",
    ),
    "MeasureAfterJoin": (
        "(Result, Bool)",
        """
operation MeasureAfterJoin() : (Result, Bool) {
    use (a, b, c) = (Qubit(), Qubit(), Qubit());
    H(a); H(b);
    let ra = MResetZ(a);
    let rb = MResetZ(b);
    mutable r = false;
    if ra == One or rb == One {
        Ry(2.0, c);
        set r = MResetZ(c) == One;
    }
    (ra, r)
}""",
    ),
}

#: The same for Adaptive_RIF: floats computed from results, compared (``fcmp``).
RIF_PROGRAMS: dict[str, tuple[str, str]] = {
    "FloatCompare": (
        "(Result, Bool, Bool)",
        """
operation FloatCompare() : (Result, Bool, Bool) {
    use (a, b, c) = (Qubit(), Qubit(), Qubit());
    H(a); H(b);
    mutable theta = 0.5;
    if MResetZ(a) == One { set theta = 2.0; }
    if MResetZ(b) == One { set theta = theta * 1.5 - 0.25; }
    Ry(1.0, c);
    let big = theta > 1.0;
    let d = theta - 0.5;
    let near = d <= 0.3 and d >= -0.3;
    (MResetZ(c), big, near)
}""",
    ),
}


def _key(value: Any, spaced: bool) -> str:
    """A Q# result as QMK keys it: the recorded values in order, one group each when
    an integer is among them (else one run of characters)."""
    if isinstance(value, tuple | list):
        return (" " if spaced else "").join(_key(item, spaced) for item in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return "1" if str(value) == "One" else "0"


def _both(profile: str, programs: dict[str, tuple[str, str]], name: str) -> tuple[dict, dict]:
    """(QMK's counts, Q#'s counts) of operation ``name`` under ``profile``."""
    kind, source = programs[name]
    qsharp.init(target_profile=getattr(qsharp.TargetProfile, profile))
    repeat = (
        f"operation Many{name}(k : Int) : {kind}[] {{\n"
        f"    mutable out = [];\n    for _ in 1..k {{ set out += [{name}()]; }}\n    out\n}}"
    )
    qsharp.eval(source + "\n" + repeat)
    qir = str(qsharp.compile(f"{name}()"))
    ours = dict(run(from_qir(qir, name=f"{name}.ll"), shots=SHOTS, seed=SEED, noise=False).counts)
    qsharp.set_quantum_seed(SEED)
    (samples,) = qsharp.run(f"Many{name}({SHOTS})", shots=1)
    return ours, dict(Counter(_key(v, "Int" in kind) for v in samples))


@pytest.mark.parametrize("name", list(RI_PROGRAMS))
def test_adaptive_ri_programs_computing_on_results_match_qsharp(name):
    ours, theirs = _both("Adaptive_RI", RI_PROGRAMS, name)
    assert_same_distribution(ours, theirs, name)


@pytest.mark.parametrize("name", list(RIF_PROGRAMS))
def test_adaptive_rif_programs_comparing_floats_match_qsharp(name):
    ours, theirs = _both("Adaptive_RIF", RIF_PROGRAMS, name)
    assert_same_distribution(ours, theirs, name)


def test_an_integer_recorded_from_measurements_matches_exact_theory():
    ours, _ = _both("Adaptive_RI", RI_PROGRAMS, "CountOnes")
    expected = {str(k): math.comb(3, k) / 8 for k in range(4)}
    assert chi2_pvalue(ours, expected) > ALPHA / COMPARISONS, ours


def test_the_qir_keeps_its_classical_computation_in_calc_nodes():
    qsharp.init(target_profile=qsharp.TargetProfile.Adaptive_RI)
    qsharp.eval(RI_PROGRAMS["CountOnes"][1])
    graph = from_qir(str(qsharp.compile("CountOnes()")), name="count.ll")
    assert any(n.op == "CALC" and n.args["type"] == "int[64]" for n in graph.nodes)
    assert graph.metadata is not None
    assert graph.metadata["output"]["groups"][0]["signed"] is True
