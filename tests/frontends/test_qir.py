"""QIR front-end: QIR made here by the qsharp compiler, run on QMK, compared with Q#.

Every program is Q# source compiled in the test (``str(qsharp.compile(...))``) in the
base and/or adaptive profile; QMK runs the QIR with noise off and its counts are
compared with the Q# simulator (``qsharp.run``) on the same program, and with exact
theory where we know it.

Statistics: each comparison is a chi-square test of homogeneity between QMK's and the
Q# simulator's counts (outcomes seen fewer than 10 times in both samples together are
pooled into one bin), or a goodness-of-fit test against exact probabilities. Each test
rejects at ``ALPHA / N_TESTS`` (Bonferroni): the whole file raises a false alarm with
probability below ``ALPHA`` = 1e-3 when QMK is right. Seeds are fixed (``SEED``), so a
run is reproducible.
"""

from __future__ import annotations

import math
import random
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import cache

import pytest

pyqir = pytest.importorskip("pyqir")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    qsharp = pytest.importorskip("qsharp")
stats = pytest.importorskip("scipy.stats")

from qmk.execution.runs import run  # noqa: E402
from qmk.frontends.errors import FrontendError  # noqa: E402
from qmk.frontends.qir import from_qir, is_bitcode  # noqa: E402
from support.exact import chi2_pvalue  # noqa: E402

SEED = 20240611
SHOTS = 1000
ALPHA = 1e-3
N_TESTS = 60  # an upper bound on the statistical tests in this file
THRESHOLD = ALPHA / N_TESTS


# ------------------------------------------------------------------ the Q# programs


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """A Q# operation ``name`` (no arguments) and the profiles it compiles in."""

    name: str
    source: str
    profiles: tuple[str, ...] = ("base", "adaptive")


FIXED: list[Program] = [
    Program(
        name="Bell",
        source="""
operation Bell() : (Result, Result) {
    use q = Qubit[2];
    H(q[0]);
    CNOT(q[0], q[1]);
    (MResetZ(q[0]), MResetZ(q[1]))
}""",
    ),
    Program(
        name="Ghz",
        source="""
operation Ghz() : Result[] {
    use q = Qubit[5];
    H(q[0]);
    for i in 1..4 { CNOT(q[i - 1], q[i]); }
    MResetEachZ(q)
}""",
    ),
    Program(
        name="Grover",
        source="""
operation Grover() : Result[] {
    use q = Qubit[3];
    ApplyToEach(H, q);
    for _ in 1..2 {
        X(q[1]); Controlled Z([q[0], q[1]], q[2]); X(q[1]);
        ApplyToEach(H, q); ApplyToEach(X, q);
        Controlled Z([q[0], q[1]], q[2]);
        ApplyToEach(X, q); ApplyToEach(H, q);
    }
    MResetEachZ(q)
}""",
    ),
    Program(
        name="Qft",
        source="""
operation Qft() : Result[] {
    use q = Qubit[4];
    for j in 0..3 {
        H(q[j]);
        R1(2.0 * PI() * 0.3 * IntAsDouble(2^j), q[j]);
    }
    Adjoint ApplyQFT(q);
    MResetEachZ(q)
}""",
    ),
    Program(
        name="Adder",
        source="""
operation Maj(c : Qubit, b : Qubit, a : Qubit) : Unit {
    CNOT(a, b); CNOT(a, c); CCNOT(c, b, a);
}
operation Uma(c : Qubit, b : Qubit, a : Qubit) : Unit {
    CCNOT(c, b, a); CNOT(a, c); CNOT(c, b);
}
operation Adder() : (Result[], Result[], Result) {
    use (a, b, c, z) = (Qubit[3], Qubit[3], Qubit(), Qubit());
    // a = 5 or 7, b = 3 or 2 (little-endian), in superposition
    X(a[0]); X(a[2]); H(a[1]);
    X(b[0]); X(b[1]); H(b[0]);
    Maj(c, b[0], a[0]); Maj(a[0], b[1], a[1]); Maj(a[1], b[2], a[2]);
    CNOT(a[2], z);
    Uma(a[1], b[2], a[2]); Uma(a[0], b[1], a[1]); Uma(c, b[0], a[0]);
    Reset(c);
    (MResetEachZ(a), MResetEachZ(b), MResetZ(z))
}""",
    ),
    Program(
        name="Rotations",
        source="""
operation Rotations() : Result[] {
    use q = Qubit[3];
    Rx(0.31, q[0]); Ry(1.27, q[1]); Rz(0.5, q[2]); H(q[2]);
    Rxx(0.77, q[0], q[1]); Ryy(-1.1, q[1], q[2]); Rzz(2.2, q[0], q[2]);
    SX(q[1]); CY(q[1], q[0]); T(q[0]); Adjoint T(q[2]); Adjoint S(q[1]);
    Rx(0.9, q[0]); Ry(-0.4, q[2]); SWAP(q[0], q[2]); CZ(q[1], q[2]); H(q[1]);
    MResetEachZ(q)
}""",
    ),
    Program(
        name="KeyOrder",
        source="""
operation KeyOrder() : (Result, Result[], Result) {
    use q = Qubit[4];
    X(q[0]); X(q[3]);
    (MResetZ(q[0]), [MResetZ(q[1]), MResetZ(q[2])], MResetZ(q[3]))
}""",
    ),
    Program(
        name="Teleport",
        profiles=("adaptive",),
        source="""
operation Teleport() : (Result, Result, Result) {
    use (msg, a, b) = (Qubit(), Qubit(), Qubit());
    Ry(1.1, msg);
    H(a); CNOT(a, b);
    CNOT(msg, a); H(msg);
    let m1 = M(msg);
    let m2 = M(a);
    if m2 == One { X(b); }
    if m1 == One { Z(b); }
    Ry(-0.4, b);
    ResetAll([msg, a]);
    (m1, m2, MResetZ(b))
}""",
    ),
    Program(
        name="MidMeasureReset",
        profiles=("adaptive",),
        source="""
operation MidMeasureReset() : (Result, Result, Result) {
    use q = Qubit[2];
    H(q[0]); CNOT(q[0], q[1]);
    let r0 = M(q[0]);
    Reset(q[0]);
    Ry(0.9, q[0]);
    if r0 == One { X(q[1]); }
    let r1 = M(q[0]);
    let r2 = M(q[1]);
    ResetAll(q);
    (r0, r1, r2)
}""",
    ),
    Program(
        name="NestedMeasure",
        profiles=("adaptive",),
        source="""
operation NestedMeasure() : (Result, Result[]) {
    use q = Qubit[3];
    H(q[0]); Ry(1.9, q[1]);
    let r0 = M(q[0]);
    if r0 == One {
        let r1 = M(q[1]);
        if r1 == One { X(q[2]); } else { H(q[2]); }
    }
    (r0, MResetEachZ(q))
}""",
    ),
    Program(
        name="Branches",
        profiles=("adaptive",),
        source="""
operation Branches() : (Result, Bool, Result[]) {
    use q = Qubit[3];
    H(q[0]); H(q[1]);
    let r0 = M(q[0]);
    let r1 = M(q[1]);
    if r0 == One and r1 == One { X(q[2]); }
    elif r0 == One or r1 == Zero { H(q[2]); }
    else { Ry(0.7, q[2]); }
    let r = M(q[2]);
    ResetAll(q);
    (r0, r1 == One, [r1, r])
}""",
    ),
]

_ONE_QUBIT = ["H", "X", "Y", "Z", "S", "Adjoint S", "T", "Adjoint T", "SX"]
_ROTATIONS = ["Rx", "Ry", "Rz"]
_TWO_QUBIT = ["CNOT", "CZ", "CY", "SWAP"]
_TWO_ROTATIONS = ["Rxx", "Ryy", "Rzz"]


def _random_gates(rng: random.Random, n: int, count: int) -> list[str]:
    lines = []
    for _ in range(count):
        kind = rng.random()
        qs = rng.sample(range(n), 3)
        angle = round(rng.uniform(-math.pi, math.pi), 6)
        if kind < 0.35:
            lines.append(f"{rng.choice(_ONE_QUBIT)}(q[{qs[0]}]);")
        elif kind < 0.6:
            lines.append(f"{rng.choice(_ROTATIONS)}({angle}, q[{qs[0]}]);")
        elif kind < 0.8:
            lines.append(f"{rng.choice(_TWO_QUBIT)}(q[{qs[0]}], q[{qs[1]}]);")
        elif kind < 0.93:
            lines.append(f"{rng.choice(_TWO_ROTATIONS)}({angle}, q[{qs[0]}], q[{qs[1]}]);")
        else:
            lines.append(f"CCNOT(q[{qs[0]}], q[{qs[1]}], q[{qs[2]}]);")
    return lines


def random_static(seed: int) -> Program:
    """A random 4-qubit circuit with parameterised gates, measured at the end."""
    rng = random.Random(seed)
    body = "\n    ".join(_random_gates(rng, 4, 18))
    name = f"RandomStatic{seed}"
    source = f"""
operation {name}() : Result[] {{
    use q = Qubit[4];
    {body}
    MResetEachZ(q)
}}"""
    return Program(name=name, source=source)


def random_dynamic(seed: int) -> Program:
    """A random 3-qubit circuit with mid-circuit measurements, resets and feed-forward."""
    rng = random.Random(seed)
    lines: list[str] = []
    results: list[str] = []
    for k in range(3):
        lines += _random_gates(rng, 3, 5)
        r = f"r{k}"
        target = rng.randrange(3)
        lines.append(f"let {r} = M(q[{target}]);")
        results.append(r)
        if rng.random() < 0.5:
            lines.append(f"Reset(q[{target}]);")
        other = rng.choice([i for i in range(3) if i != target])
        fix = rng.choice(["X", "H", "S", "Y"])
        if k and rng.random() < 0.5:
            cond = f"{r} == One and {results[k - 1]} == Zero"
        else:
            cond = f"{r} == One"
        alt = rng.choice(["X", "Z", "H"])
        lines.append(f"if {cond} {{ {fix}(q[{other}]); }} else {{ {alt}(q[{target}]); }}")
    lines += _random_gates(rng, 3, 4)
    name = f"RandomDynamic{seed}"
    body = "\n    ".join(lines)
    types = ", ".join(["Result"] * len(results))
    source = f"""
operation {name}() : ({types}, Result[]) {{
    use q = Qubit[3];
    {body}
    ({", ".join(results)}, MResetEachZ(q))
}}"""
    return Program(name=name, source=source, profiles=("adaptive",))


PROGRAMS: list[Program] = (
    FIXED + [random_static(s) for s in range(8)] + [random_dynamic(100 + s) for s in range(6)]
)
CASES = [(p.name, profile) for p in PROGRAMS for profile in p.profiles]
_BY_NAME = {p.name: p for p in PROGRAMS}
_PROFILES = {"base": "Base", "adaptive": "Adaptive_RI"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Compiled:
    """A program's QIR text and the Q# simulator's counts for it."""

    qir: str
    reference: Counter[str]


def flatten(value: object) -> str:
    """One shot of ``qsharp.run`` as a QMK key: results and booleans, first leftmost."""
    if isinstance(value, tuple | list):
        return "".join(flatten(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return "1" if value == qsharp.Result.One else "0"


@cache
def compiled(profile: str) -> dict[str, Compiled]:
    """Compile every program in ``profile`` and sample it with the Q# simulator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        qsharp.init(target_profile=getattr(qsharp.TargetProfile, _PROFILES[profile]))
        qsharp.eval("import Std.Math.*;\nimport Std.Convert.*;\nimport Std.Canon.*;")
        out = {}
        for program in PROGRAMS:
            if profile not in program.profiles:
                continue
            qsharp.eval(program.source)
            qir = str(qsharp.compile(f"{program.name}()"))
            shots = qsharp.run(f"{program.name}()", shots=SHOTS, seed=SEED)
            out[program.name] = Compiled(qir=qir, reference=Counter(map(flatten, shots)))
    return out


def qmk_counts(qir: str | bytes, *, shots: int = SHOTS, name: str = "prog.ll") -> Counter[str]:
    return Counter(run(from_qir(qir, name=name), shots=shots, seed=SEED, noise=False).counts)


# ------------------------------------------------------------------ statistics


def _pooled(*samples: Counter[str]) -> list[list[int]]:
    keys = sorted(set().union(*samples))
    big = [k for k in keys if sum(s[k] for s in samples) >= 10]
    small = [k for k in keys if k not in big]
    rows = [[s[k] for k in big] + ([sum(s[k] for k in small)] if small else []) for s in samples]
    return rows


def assert_same_distribution(ours: Counter[str], theirs: Counter[str]) -> None:
    """Chi-square homogeneity test at the Bonferroni threshold; exact match if one key."""
    rows = _pooled(ours, theirs)
    if len(rows[0]) < 2:
        assert set(ours) == set(theirs), (ours, theirs)
        return
    p = stats.chi2_contingency(rows, correction=False).pvalue
    assert p > THRESHOLD, f"p={p:.2e}: QMK {dict(ours)} vs Q# {dict(theirs)}"


def assert_matches_theory(ours: Counter[str], probs: dict[str, float]) -> None:
    """Every outcome is possible, and a chi-square goodness-of-fit test passes."""
    total = sum(ours.values())
    assert set(ours) <= {k for k, v in probs.items() if v > 1e-12}, (ours, probs)
    keys = [k for k, v in probs.items() if v > 1e-12]
    if len(keys) == 1:
        return
    observed = [ours[k] for k in keys]
    expected = [probs[k] * total for k in keys]
    p = stats.chisquare(observed, expected).pvalue
    assert p > THRESHOLD, f"p={p:.2e}: QMK {dict(ours)} vs theory {probs}"


# ------------------------------------------------------------------ tests


def test_the_suite_compiles_at_least_thirty_programs_and_five_full_ones() -> None:
    assert len(CASES) >= 30
    names = {p.name for p in FIXED}
    assert {"Bell", "Teleport", "Grover", "Qft", "Ghz", "Adder", "MidMeasureReset"} <= names


@pytest.mark.parametrize(("name", "profile"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_qsharp_compiled_program_matches_the_qsharp_simulator(name: str, profile: str) -> None:
    program = compiled(profile)[name]
    assert_same_distribution(qmk_counts(program.qir), program.reference)


@pytest.mark.parametrize("profile", ["base", "adaptive"])
def test_bell_and_ghz_match_exact_theory(profile: str) -> None:
    bell = qmk_counts(compiled(profile)["Bell"].qir)
    assert_matches_theory(bell, {"00": 0.5, "11": 0.5})
    ghz = qmk_counts(compiled(profile)["Ghz"].qir)
    assert_matches_theory(ghz, {"00000": 0.5, "11111": 0.5})


def test_grover_finds_the_marked_item_with_the_textbook_probability() -> None:
    theta = math.asin(1 / math.sqrt(8))
    hit = math.sin(5 * theta) ** 2  # two iterations
    probs = {format(i, "03b"): (1 - hit) / 7 for i in range(8)}
    probs["101"] = hit  # X on q[1] marks |q0 q1 q2> = |1 0 1>
    assert_matches_theory(qmk_counts(compiled("base")["Grover"].qir), probs)


def test_ripple_carry_adder_adds_every_superposed_input() -> None:
    probs: dict[str, float] = {}
    for a in (5, 7):
        for b in (3, 2):
            total = a + b
            bits = [(a >> i) & 1 for i in range(3)] + [(total >> i) & 1 for i in range(4)]
            probs["".join(map(str, bits))] = 0.25
    assert_matches_theory(qmk_counts(compiled("adaptive")["Adder"].qir), probs)


def test_teleportation_with_feed_forward_matches_exact_theory() -> None:
    # The message Ry(1.1)|0> arrives on b; Ry(-0.4) leaves Ry(0.7)|0>.
    p1 = math.sin(0.7 / 2) ** 2
    probs = {
        f"{m1}{m2}{b}": 0.25 * (p1 if b else 1 - p1)
        for m1 in (0, 1)
        for m2 in (0, 1)
        for b in (0, 1)
    }
    assert_matches_theory(qmk_counts(compiled("adaptive")["Teleport"].qir), probs)


def test_mid_circuit_measurement_reset_and_correction_match_exact_theory() -> None:
    p1 = math.sin(0.9 / 2) ** 2
    probs = {f"{r0}{r1}0": 0.5 * (p1 if r1 else 1 - p1) for r0 in (0, 1) for r1 in (0, 1)}
    assert_matches_theory(qmk_counts(compiled("adaptive")["MidMeasureReset"].qir), probs)


def test_keys_are_recorded_results_in_recording_order_first_leftmost() -> None:
    for profile in ("base", "adaptive"):
        program = compiled(profile)["KeyOrder"]
        assert qmk_counts(program.qir, shots=20) == Counter({"1001": 20})
        assert program.reference == Counter({"1001": SHOTS})


def test_conditional_blocks_become_guarded_nodes() -> None:
    graph = from_qir(compiled("adaptive")["Teleport"].qir, name="teleport.ll")
    guarded = [n for n in graph.nodes if n.guard is not None]
    assert [n.op for n in guarded] == ["APPLY_X", "APPLY_Z"]
    assert [(t.event, t.equals) for n in guarded for t in n.guard.terms] == [("m1", 1), ("m0", 1)]


def test_bitcode_lowers_to_the_same_graph_as_text() -> None:
    text = compiled("adaptive")["Branches"].qir
    bitcode = pyqir.Module.from_ir(pyqir.Context(), text, "branches").bitcode
    assert is_bitcode(bitcode)
    from_text = from_qir(text, name="b.ll")
    from_bits = from_qir(bitcode, name="b.bc")
    assert [(n.op, n.vqs, n.args, n.guard) for n in from_text.nodes] == [
        (n.op, n.vqs, n.args, n.guard) for n in from_bits.nodes
    ]
    assert qmk_counts(bitcode, name="b.bc") == qmk_counts(text)


@pytest.mark.parametrize("profile", ["base", "adaptive"])
def test_text_read_through_llvmlite_lowers_to_the_same_graph_as_through_pyqirs_parser(
    profile: str,
) -> None:
    pytest.importorskip("llvmlite")
    for name, program in compiled(profile).items():
        assert from_qir(program.qir, name="p.ll") == from_qir(
            program.qir, name="p.ll", fast=False
        ), name


def test_nodes_name_their_source_line_in_text_and_their_position_in_bitcode() -> None:
    text = compiled("base")["Bell"].qir
    graph = from_qir(text, name="bell.ll")
    h = next(n for n in graph.nodes if n.op == "APPLY_H")
    line = int(h.metadata["source"].rsplit(":", 1)[1])
    assert "__quantum__qis__h__body" in text.splitlines()[line - 1]
    bits = pyqir.Module.from_ir(pyqir.Context(), text, "bell").bitcode
    h = next(n for n in from_qir(bits, name="bell.bc").nodes if n.op == "APPLY_H")
    assert h.metadata["source"] == "bell.bc:@ENTRYPOINT__main/block_0#1"


def test_code_profile_is_written_on_the_allocation() -> None:
    graph = from_qir(compiled("base")["Bell"].qir, profile="logical:surface_code(d=5)")
    assert graph.nodes[0].op == "ALLOC_LQ"
    assert graph.nodes[0].args == {"n": 2, "profile": "logical:surface_code(d=5)"}


# ------------------------------------------------------------------ malformed input

HEADER = """
declare void @__quantum__qis__h__body(ptr)
declare void @__quantum__qis__mz__body(ptr, ptr)
declare i1 @__quantum__rt__read_result(ptr)
declare void @__quantum__rt__result_record_output(ptr, ptr)
attributes #0 = { "entry_point" "required_num_qubits"="1" "required_num_results"="1" }
"""


def _error(source: str | bytes, name: str = "bad.ll") -> FrontendError:
    with pytest.raises(FrontendError) as info:
        from_qir(source, name=name)
    assert info.value.exit_status == 2
    assert "\n" not in str(info.value)
    return info.value


def test_syntax_error_names_its_line() -> None:
    lines = compiled("base")["Bell"].qir.splitlines()
    at = next(i for i, ln in enumerate(lines) if "__quantum__qis__h__body(" in ln)
    lines[at] = lines[at].replace("call void", "cal void")
    err = _error("\n".join(lines))
    assert err.code == "QL101"
    assert err.details["line"] == at + 1
    assert str(err).startswith(f"QL101 syntax: bad.ll:{at + 1}: ")
    with pytest.raises(FrontendError) as reference:  # pyqir's own parser says the same
        from_qir("\n".join(lines), name="bad.ll", fast=False)
    assert str(reference.value) == str(err)


def test_truncated_bitcode_is_unreadable() -> None:
    bits = pyqir.Module.from_ir(pyqir.Context(), compiled("base")["Bell"].qir).bitcode
    err = _error(bits[: len(bits) // 2], name="bell.bc")
    assert err.code == "QL105"
    assert "bitcode" in str(err)


def test_unsupported_qir_call_is_named_with_its_line() -> None:
    text = compiled("base")["Bell"].qir.replace(
        "__quantum__qis__h__body", "__quantum__qis__foo__body"
    )
    err = _error(text)
    assert err.code == "QL104"
    assert "@__quantum__qis__foo__body" in str(err)
    line = err.details["line"]
    assert "__quantum__qis__foo__body(" in text.splitlines()[line - 1]
    assert err.details["instruction"] == 1 and err.details["block"] == "block_0"


def test_backward_branch_is_refused_as_a_loop() -> None:
    text = (
        """
define void @main() #0 {
entry:
  br label %loop
loop:
  call void @__quantum__qis__h__body(ptr null)
  call void @__quantum__qis__mz__body(ptr null, ptr null)
  %r = call i1 @__quantum__rt__read_result(ptr null)
  br i1 %r, label %loop, label %done
done:
  ret void
}
"""
        + HEADER
    )
    err = _error(text)
    assert err.code == "QL104"
    assert "backward branch to block loop" in str(err)
    assert err.details["line"] == 9 and err.details["block"] == "loop"


def test_dynamic_qubit_allocation_is_refused() -> None:
    text = (
        """
define void @main() #0 {
entry:
  %q = call ptr @__quantum__rt__qubit_allocate()
  call void @__quantum__qis__h__body(ptr %q)
  ret void
}
declare ptr @__quantum__rt__qubit_allocate()
"""
        + HEADER
    )
    err = _error(text)
    assert err.code == "QL104"
    assert "__quantum__rt__qubit_allocate" in str(err) and err.details["line"] == 4


def test_other_instructions_are_refused_by_name() -> None:
    text = (
        """
define void @main() #0 {
entry:
  %p = alloca i64
  store i64 1, ptr %p
  ret void
}
"""
        + HEADER
    )
    err = _error(text)
    assert err.code == "QL104"
    assert "instruction alloca" in str(err) and err.details["line"] == 4


def test_measuring_into_a_result_again_under_a_condition_keeps_the_old_value_elsewhere() -> None:
    text = (
        """
define void @main() #0 {
entry:
  call void @__quantum__qis__h__body(ptr null)
  call void @__quantum__qis__mz__body(ptr null, ptr null)
  %r = call i1 @__quantum__rt__read_result(ptr null)
  br i1 %r, label %again, label %done
again:
  call void @__quantum__qis__h__body(ptr null)
  call void @__quantum__qis__mz__body(ptr null, ptr null)
  br label %done
done:
  call void @__quantum__rt__result_record_output(ptr null, ptr null)
  ret void
}
"""
        + HEADER
    )
    counts = run(from_qir(text), shots=4000, seed=17, noise=False).counts
    # first 0 (1/2): stays 0; first 1 (1/2): measured again after h, 0 or 1
    assert chi2_pvalue(counts, {"0": 0.75, "1": 0.25}) > 1e-6, counts


def test_missing_entry_point_and_undecodable_bytes_are_errors() -> None:
    assert _error("define void @main() {\nentry:\n  ret void\n}\n").code == "QL102"
    assert _error(b"\xff\xfe not text").code == "QL105"


def test_a_measured_result_read_later_holds_the_latest_measurement() -> None:
    text = (
        """
define void @main() #0 {
entry:
  call void @__quantum__qis__mz__body(ptr null, ptr null)
  call void @__quantum__qis__h__body(ptr null)
  call void @__quantum__qis__h__body(ptr null)
  call void @__quantum__qis__h__body(ptr null)
  call void @__quantum__qis__mz__body(ptr null, ptr null)
  call void @__quantum__rt__result_record_output(ptr null, ptr null)
  ret void
}
"""
        + HEADER
    )
    graph = from_qir(text)
    assert graph.metadata["output"] == {"groups": [["m1"]], "separator": ""}
    assert_matches_theory(qmk_counts(text), {"0": 0.5, "1": 0.5})


def test_constant_integer_and_float_computations_are_folded() -> None:
    text = (
        """
define void @main() #0 {
entry:
  %a = zext i1 true to i64
  %b = add i64 %a, 2
  %c = sitofp i64 %b to double
  %d = fmul double %c, 0.5
  %e = trunc i64 %b to i1
  br i1 %e, label %x, label %y
x:
  call void @__quantum__qis__rx__body(double %d, ptr null)
  br label %y
y:
  ret void
}
declare void @__quantum__qis__rx__body(double, ptr)
"""
        + HEADER
    )
    ops = [(n.op, n.args, n.guard) for n in from_qir(text).nodes]
    assert ops[1] == ("APPLY_RX", {"theta": 1.5}, None)
    dead = from_qir(text.replace("add i64 %a, 2", "add i64 %a, 1")).nodes
    assert [n.op for n in dead] == ["ALLOC_LQ", "FREE_LQ"]
