"""qmk.estimate.estimator against the Azure Quantum Resource Estimator itself (qsharp, run here).

The matrix estimates three programs on every predefined qubit set with each of its
schemes, at four error budgets (three totals and a split), with each constraint kind
and as a frontier, plus custom qubits, schemes and distillation units, and requires
QRE's JSON back: every number equal, floats compared exactly (==, not approx), and
errors with QRE's code. qsharp's estimator takes a list of parameter sets per call,
so each (program, qubit, scheme) is one batched call.

Two QRE 1.31 defects are not reproduced (docs/estimation.md): a division by zero with
maxTFactories when a factory outlasts the algorithm, and a Newton iteration in its
binomial quantile that can cycle forever. Our estimate flags both in ``warnings``; such
cases are not sent to qsharp (it would panic or hang) and are counted separately.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from qmk.estimate.counts import LogicalCounts, count_graph
from qmk.estimate.estimator import estimate
from qmk.qec.errors import QECError
from qmk.qvm.graph import Graph, Node, Resources

qsharp = pytest.importorskip("qsharp", reason="qsharp (the Q# resource estimator) not installed")
from qsharp.estimator import LogicalCounts as QreCounts  # noqa: E402

PRESETS: dict[str, tuple[str, ...]] = {
    "qubit_gate_ns_e3": ("surface_code",),
    "qubit_gate_ns_e4": ("surface_code",),
    "qubit_gate_us_e3": ("surface_code",),
    "qubit_gate_us_e4": ("surface_code",),
    "qubit_maj_ns_e4": ("surface_code", "floquet_code"),
    "qubit_maj_ns_e6": ("surface_code", "floquet_code"),
}
BUDGETS: tuple[Any, ...] = (
    1e-3,
    1e-2,
    0.25,
    {"logical": 1e-4, "tStates": 5e-4, "rotations": 2e-4},
)
CONSTRAINTS: tuple[Any, ...] = (
    None,
    {"logicalDepthFactor": 2.5},
    {"maxTFactories": 4},
    {"maxDuration": "2 s"},
    {"maxDuration": "50 ms"},
    {"maxPhysicalQubits": 800_000},
    {"maxPhysicalQubits": 20_000},
    {"maxDistillationRounds": 1},
    {"maxDuration": "1 s", "maxPhysicalQubits": 10**6},
    "frontier",
)
ONE_ROTATION = {"numQubits": 1, "rotationCount": 1, "rotationDepth": 1}
LARGE = {
    "numQubits": 100,
    "tCount": 10**6,
    "rotationCount": 10**4,
    "rotationDepth": 10**3,
    "cczCount": 10**5,
    "measurementCount": 10**5,
}
QFT_SOURCE = """
import Std.Canon.*;
import Std.Convert.*;
operation QftMultiply() : Result[] {
    use x = Qubit[6];
    use y = Qubit[6];
    use z = Qubit[12];
    ApplyQFT(z);
    for i in 0..5 {
        for j in 0..5 {
            Controlled Rz([x[i], y[j]], (0.1 * IntAsDouble(i + j + 1), z[i + j]));
        }
    }
    Adjoint ApplyQFT(z);
    MResetEachZ(z + x + y)
}
"""


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    """QRE's result without its display-only sections, ours without QMK's extras."""
    out = {
        k: v
        for k, v in result.items()
        if k not in ("physicalCountsFormatted", "reportData", "decoder", "warnings")
    }
    if "frontierEntries" in out:
        out["frontierEntries"] = [
            {k: v for k, v in e.items() if k not in ("physicalCountsFormatted", "decoder")}
            for e in out["frontierEntries"]
        ]
    return out


def _ours(counts: dict[str, int], params: dict[str, Any]) -> dict[str, Any]:
    try:
        return estimate(LogicalCounts.from_json(counts), params)
    except QECError as exc:
        return {"error": exc.details.get("qre_code", exc.code), "message": str(exc)}


def _compare(counts: dict[str, int], cases: list[dict[str, Any]]) -> tuple[int, int]:
    """Estimate ``cases`` with both; assert equality. Returns (compared, skipped)."""
    ours = [_ours(counts, p) for p in cases]
    sendable = [i for i, r in enumerate(ours) if "warnings" not in r]
    if not sendable:
        return 0, len(cases)
    theirs = QreCounts(counts).estimate([cases[i] for i in sendable])
    for k, i in enumerate(sendable):
        ref = dict(theirs[k])
        if "code" in ref:  # QRE's failure entry
            assert ours[i].get("error") == ref["code"], (cases[i], ref, ours[i])
            continue
        assert "error" not in ours[i], (cases[i], ours[i])
        assert _strip(ours[i]) == _strip(ref), cases[i]
    return len(sendable), len(cases) - len(sendable)


def _matrix(counts: dict[str, int]) -> tuple[int, int]:
    compared = skipped = 0
    for qubit, schemes in PRESETS.items():
        for scheme in schemes:
            cases = []
            for budget in BUDGETS:
                for constraint in CONSTRAINTS:
                    params: dict[str, Any] = {
                        "qubitParams": {"name": qubit},
                        "qecScheme": {"name": scheme},
                        "errorBudget": budget,
                    }
                    if constraint == "frontier":
                        params["estimateType"] = "frontier"
                    elif constraint is not None:
                        params["constraints"] = constraint
                    cases.append(params)
            c, s = _compare(counts, cases)
            compared, skipped = compared + c, skipped + s
    return compared, skipped


@pytest.fixture(scope="module")
def qft_counts() -> dict[str, int]:
    qsharp.init(target_profile=qsharp.TargetProfile.Unrestricted)
    qsharp.eval(QFT_SOURCE)
    return dict(qsharp.estimate("QftMultiply()")["logicalCounts"])


def test_one_rotation_matches_qre_across_presets_budgets_constraints_and_frontier():
    compared, skipped = _matrix(ONE_ROTATION)
    assert compared >= 300 and skipped <= compared // 10


def test_large_program_matches_qre_across_presets_budgets_constraints_and_frontier():
    compared, skipped = _matrix(LARGE)
    assert compared >= 300 and skipped <= compared // 10


def test_qsharp_qft_multiplier_matches_qre_across_the_matrix(qft_counts):
    assert qft_counts["rotationCount"] > 0 and qft_counts["cczCount"] > 0
    compared, skipped = _matrix(qft_counts)
    assert compared >= 300 and skipped <= compared // 10


def test_estimate_from_counts_equals_qsharp_estimate_of_the_source(qft_counts):
    params = [
        {},
        {"qubitParams": {"name": "qubit_maj_ns_e6"}, "qecScheme": {"name": "floquet_code"}},
    ]
    theirs = qsharp.estimate("QftMultiply()", params)
    for i, p in enumerate(params):
        assert _strip(_ours(qft_counts, p)) == _strip(dict(theirs[i]))


def test_custom_qubits_schemes_and_distillation_units_match_qre():
    cases: list[dict[str, Any]] = [
        {
            "qubitParams": {
                "name": "custom_gate",
                "instructionSet": "GateBased",
                "oneQubitMeasurementTime": "120 ns",
                "oneQubitGateTime": "40 ns",
                "twoQubitGateTime": "60 ns",
                "tGateTime": "40 ns",
                "oneQubitMeasurementErrorRate": 2e-4,
                "oneQubitGateErrorRate": 1e-4,
                "twoQubitGateErrorRate": 3e-4,
                "tGateErrorRate": 5e-4,
                "idleErrorRate": 1e-4,
            }
        },
        {"qubitParams": {"name": "qubit_gate_ns_e3", "twoQubitGateErrorRate": 5e-4}},
        {
            "qubitParams": {"name": "qubit_maj_ns_e4"},
            "qecScheme": {"name": "surface_code", "crossingPrefactor": 0.1, "maxCodeDistance": 35},
        },
        {
            "qecScheme": {
                "name": "my_code",
                "errorCorrectionThreshold": 0.012,
                "crossingPrefactor": 0.04,
                "logicalCycleTime": (
                    "(4 * twoQubitGateTime + 3 * oneQubitMeasurementTime) * codeDistance"
                ),
                "physicalQubitsPerLogicalQubit": "2 * codeDistance * codeDistance + 2",
            }
        },
        {"distillationUnitSpecifications": [{"name": "15-to-1 RM prep"}]},
        {
            "distillationUnitSpecifications": [
                {"name": "15-1 space-efficient"},
                {
                    "displayName": "my 15-to-1",
                    "numInputTs": 15,
                    "numOutputTs": 1,
                    "failureProbabilityFormula": (
                        "15.0 * inputErrorRate + 356.0 * cliffordErrorRate"
                    ),
                    "outputErrorRateFormula": "35.0 * inputErrorRate ^ 3 + 7.1 * cliffordErrorRate",
                    "physicalQubitSpecification": {
                        "numUnitQubits": 40,
                        "durationInQubitCycleTime": 30,
                    },
                    "logicalQubitSpecification": {
                        "numUnitQubits": 25,
                        "durationInQubitCycleTime": 12,
                    },
                },
            ]
        },
    ]
    for counts in (LARGE, {"numQubits": 12, "tCount": 5000, "measurementCount": 40}):
        compared, skipped = _compare(counts, cases)
        assert compared == len(cases) and skipped == 0


def test_errors_are_reported_with_qres_codes():
    cases = [
        {"constraints": {"maxDuration": "1 us"}},
        {"constraints": {"maxPhysicalQubits": 1000}},
        {"constraints": {"maxDuration": "1 s", "maxPhysicalQubits": 10**7}},
        {"constraints": {"logicalDepthFactor": 0.5}},
        {"estimateType": "frontier", "constraints": {"maxTFactories": 2}},
        {"errorBudget": 1.5},
        {"errorBudget": 1e-30},
        {"qubitParams": {"name": "qubit_gate_ns_e3"}, "qecScheme": {"name": "floquet_code"}},
    ]
    _compare(LARGE, cases)
    ours = [_ours(LARGE, p) for p in cases]
    assert all("error" in r for r in ours)
    assert _ours({"numQubits": 4}, {})["error"] == "Qdk.Qsc.Estimates.AlgorithmHasNoResources"


def test_max_tfactories_one_with_one_rotation_gives_an_estimate_not_a_crash():
    result = estimate(LogicalCounts.from_json(ONE_ROTATION), {"constraints": {"maxTFactories": 1}})
    breakdown = result["physicalCounts"]["breakdown"]
    assert breakdown["numTfactories"] == 1
    assert breakdown["numTfactoryRuns"] == breakdown["numTstates"]
    assert (
        result["physicalCounts"]["runtime"]
        >= breakdown["numTfactoryRuns"] * result["tfactory"]["runtime"]
    )
    assert "warnings" in result


def _qvm_program() -> tuple[Graph, str]:
    n = [
        Node(id="a", op="ALLOC_LQ", args={"n": 3}, vqs=("q0", "q1", "q2")),
        Node(id="t", op="APPLY_T", vqs=("q0",)),
        Node(id="td", op="APPLY_TDG", vqs=("q1",)),
        Node(id="r1", op="APPLY_RZ", args={"theta": 0.3}, vqs=("q0",)),
        Node(id="s", op="APPLY_RZ", args={"theta": math.pi / 2}, vqs=("q1",)),
        Node(id="tx", op="APPLY_RX", args={"theta": math.pi / 4}, vqs=("q2",)),
        Node(id="c", op="APPLY_CCX", vqs=("q0", "q1", "q2")),
        Node(id="x", op="APPLY_CNOT", vqs=("q0", "q1")),
        Node(id="r2", op="APPLY_RZ", args={"theta": 0.2}, vqs=("q1",)),
        Node(id="r3", op="APPLY_RY", args={"theta": 0.1}, vqs=("q2",)),
        Node(id="r4", op="APPLY_RZ", args={"theta": 0.7}, vqs=("q0",)),
        Node(id="m", op="MEASURE_Z", vqs=("q0",), produces=("e0",)),
        Node(id="f", op="FREE_LQ", vqs=("q2",)),
        Node(id="b", op="ALLOC_LQ", args={"n": 1}, vqs=("q3",)),
        Node(id="r5", op="APPLY_RZ", args={"theta": 0.4}, vqs=("q3",)),
        Node(id="z", op="APPLY_CCZ", vqs=("q0", "q1", "q3")),
        Node(id="m2", op="MEASURE_X", vqs=("q3",), produces=("e1",)),
        Node(id="g", op="FREE_LQ", vqs=("q0", "q1", "q3")),
    ]
    graph = Graph(
        nodes=tuple(n),
        resources=Resources(vqs=("q0", "q1", "q2", "q3"), events=("e0", "e1")),
        caps=("CAP_ALLOC",),
    )
    source = """
    import Std.Math.*;
    operation Equivalent() : Result[] {
        use q = Qubit[2];
        mutable m0 = Zero;
        {
            use q2 = Qubit();
            T(q[0]); Adjoint T(q[1]); Rz(0.3, q[0]); Rz(PI() / 2.0, q[1]); Rx(PI() / 4.0, q2);
            CCNOT(q[0], q[1], q2); CNOT(q[0], q[1]); Rz(0.2, q[1]); Ry(0.1, q2); Rz(0.7, q[0]);
            set m0 = M(q[0]);
            Reset(q2);
        }
        use q3 = Qubit();
        Rz(0.4, q3);
        Controlled Z([q[0], q[1]], q3);
        let m1 = Measure([PauliX], [q3]);
        ResetAll(q); Reset(q3);
        [m0, m1]
    }
    """
    return graph, source


def test_logical_counts_of_a_qvm_graph_equal_qsharps_for_the_same_program(qft_counts):
    graph, source = _qvm_program()
    qsharp.eval(source)
    theirs = dict(qsharp.estimate("Equivalent()")["logicalCounts"])
    assert count_graph(graph).to_json() == theirs


def test_bacon_shor_and_shyps_estimates_meet_their_budget_with_their_formulas():
    from qmk.qec.codes import scheme_for

    for family in ("bacon_shor", "SHYPS"):
        result = estimate(
            LogicalCounts.from_json(LARGE),
            {"qubitParams": {"name": "qubit_gate_ns_e4"}, "qecScheme": {"name": family}},
        )
        scheme = scheme_for(family, "gate_based")
        lq = result["logicalQubit"]
        d = lq["codeDistance"]
        assert lq["physicalQubits"] == scheme.physical_qubits(d)
        assert lq["logicalErrorRate"] == scheme.logical_error_rate(1e-4, d)
        bd = result["physicalCounts"]["breakdown"]
        assert lq["logicalErrorRate"] <= bd["requiredLogicalQubitErrorRate"]
        assert scheme.logical_error_rate(1e-4, d - 2) > bd["requiredLogicalQubitErrorRate"]
        total = bd["algorithmicLogicalQubits"] * bd["logicalDepth"] * lq["logicalErrorRate"]
        assert total <= result["errorBudget"]["logical"]
        assert result["tfactory"]["logicalErrorRate"] <= bd["requiredLogicalTstateErrorRate"]


def test_decoder_accounting_counts_stabilizer_bits_per_round_and_rounds_per_second():
    result = estimate(LogicalCounts.from_json(LARGE), {})
    dec = result["decoder"]
    d = result["logicalQubit"]["codeDistance"]
    bd = result["physicalCounts"]["breakdown"]
    # one bit per stabilizer of the rotated surface code, as stim's memory circuit measures
    # (this was d^2, every non-data qubit, until the estimator took the physics model's count)
    assert dec["syndromeBitsPerRoundPerLogicalQubit"] == d * d - 1
    assert dec["algorithmSyndromeBitsPerRound"] == bd["algorithmicLogicalQubits"] * (d * d - 1)
    assert dec["syndromeRoundsPerSecond"] == d * 1e9 / result["logicalQubit"]["logicalCycleTime"]
    assert (
        dec["syndromeBitsPerSecond"] == dec["syndromeBitsPerRound"] * dec["syndromeRoundsPerSecond"]
    )
    assert 0 < dec["tfactorySyndromeBitsPerRound"] < bd["physicalQubitsForTfactories"]
    assert dec["decodingRounds"] == bd["logicalDepth"] * d


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"qubitParams": {"name": "qubit_gate_ns_e9"}}, "QC101"),
        (
            {"qubitParams": {"name": "qubit_gate_ns_e3", "oneQubitGateTime": 50}},
            "cannot parse time",
        ),
        ({"qecScheme": {"name": "my_code"}}, "needs errorCorrectionThreshold"),
        ({"qecScheme": {"name": "surface_code", "logicalCycleTime": "__import__('os')"}}, "QC103"),
        ({"constraints": {"maxDuration": "5 minutes"}}, "cannot parse time"),
        ({"constraints": {"maxTfactories": 3}}, "unknown field 'maxTfactories'"),
        ({"errorBudget": {"logical": 1e-3}}, "logical, tStates and rotations"),
        ({"estimateType": "pareto"}, "estimateType"),
        ({"distillationUnitSpecifications": [{"name": "7-to-1"}]}, "Invalid distillation unit"),
        (
            {"qubitParams": {"name": "qubit_gate_ns_e3"}, "qecScheme": {"name": "floquet_code"}},
            "QC105",
        ),
    ],
)
def test_bad_parameters_give_one_line_errors_with_stable_codes(params, needle):
    with pytest.raises(QECError) as caught:
        estimate(LogicalCounts.from_json(LARGE), params)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_bad_logical_counts_are_refused():
    for bad in ({"tCount": 3}, {"numQubits": -1}, {"numQubits": 2, "tcount": 3}, [1]):
        with pytest.raises(QECError):
            LogicalCounts.from_json(bad)


@pytest.mark.parametrize(
    ("family", "qubit"),
    [
        ("surface_code", "qubit_gate_ns_e3"),
        ("bacon_shor", "qubit_gate_ns_e4"),
        ("floquet_code", "qubit_maj_ns_e4"),
        ("SHYPS", "qubit_gate_ns_e4"),
    ],
)
def test_qmk_estimate_and_qmk_run_telemetry_agree_on_the_decoder_load_of_a_code(family, qubit):
    from qmk.execution.runs import run

    result = estimate(
        LogicalCounts.from_json(LARGE),
        {"qubitParams": {"name": qubit}, "qecScheme": {"name": family}},
    )
    d = result["logicalQubit"]["codeDistance"]
    program = {
        "version": "0.2",
        "program": {
            "nodes": [
                {
                    "id": "a",
                    "op": "ALLOC_LQ",
                    "args": {"n": 1, "profile": f"logical:{family}(d={d})"},
                    "vqs": ["q"],
                },
                {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["e"]},
                {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
            ]
        },
        "resources": {"vqs": ["q"], "events": ["e"]},
        "caps": ["CAP_ALLOC"],
    }
    telemetry = run(program, shots=1, seed=1, qubit=qubit).telemetry
    assert telemetry.syndrome_bits_per_round == pytest.approx(
        result["decoder"]["syndromeBitsPerRoundPerLogicalQubit"]
    )


def test_no_t_factory_for_the_budget_is_a_coded_error_not_an_endless_search() -> None:
    # T gates this bad make no factory reach 5e-7 at any distance the estimate reaches;
    # QRE 1.31 adds one cycle at a time from there, without end (qsharp hangs too)
    counts = LogicalCounts.from_json(
        {"numQubits": 10, "tCount": 1000, "measurementCount": 10, "rotationCount": 0,
         "rotationDepth": 0, "cczCount": 0}
    )  # fmt: skip
    params = {"qubitParams": {"name": "qubit_gate_ns_e3", "tGateErrorRate": 0.1}}
    with pytest.raises(QECError) as raised:
        estimate(counts, params)
    assert raised.value.code == "QC124" and raised.value.details["distance"] == 45
