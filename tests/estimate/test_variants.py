"""Code variants and the choice among them (``qmk plan``, ``--profile auto``)."""

from __future__ import annotations

import json

import pytest

from qmk.estimate.counts import LogicalCounts, count_graph
from qmk.estimate.estimator import estimate
from qmk.estimate.variants import OBJECTIVES, plan_variants
from qmk.qec.errors import QECError
from support.cli import qmk
from support.paths import EXAMPLES

COUNTS = LogicalCounts(num_qubits=20, t_count=10_000, rotation_count=50, measurement_count=100)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_chosen_variant_has_the_least_cost_of_every_feasible_variant(objective):
    plan = plan_variants(COUNTS, "qubit_gate_ns_e3", objective=objective)
    feasible = [v for v in plan.variants if v.feasible]
    assert plan.chosen in feasible
    assert all(plan.chosen.cost(objective) <= v.cost(objective) for v in feasible)
    assert {v.family for v in feasible} == {"surface_code", "SHYPS"}
    # Bacon-Shor's law (fitted to its circuits: no threshold) bottoms out at 3.4e-3 per
    # cycle at p = 1e-3 (d = 7), far above what 10,000 T gates need: refused, saying so
    (bacon_shor,) = [v for v in plan.variants if v.family == "bacon_shor"]
    assert not bacon_shor.feasible


def test_each_variant_is_an_estimate_of_its_family_and_meets_the_budget():
    plan = plan_variants(COUNTS, "qubit_maj_ns_e4", error_budget=1e-4)
    assert {v.family for v in plan.variants} == {"surface_code", "floquet_code"}
    for family in ("surface_code", "floquet_code"):
        report = estimate(
            COUNTS,
            {
                "qubitParams": {"name": "qubit_maj_ns_e4"},
                "qecScheme": {"name": family},
                "errorBudget": 1e-4,
                "estimateType": "frontier",
            },
        )
        entries = report["frontierEntries"]
        ours = [v for v in plan.variants if v.family == family]
        assert [v.physical_qubits for v in ours] == [
            e["physicalCounts"]["physicalQubits"] for e in entries
        ]
        assert [v.distance for v in ours] == [e["logicalQubit"]["codeDistance"] for e in entries]


def test_a_family_that_cannot_meet_the_budget_is_listed_infeasible_with_the_reason():
    plan = plan_variants(COUNTS, "qubit_gate_us_e3", error_budget=1e-12)
    infeasible = [v for v in plan.variants if not v.feasible]
    assert infeasible, "some family needs a distance beyond its maximum at this budget"
    assert all(v.why and v.distance is None for v in infeasible)
    assert plan.chosen.feasible


def test_an_unknown_objective_is_a_coded_error():
    with pytest.raises(QECError) as err:
        plan_variants(COUNTS, "qubit_gate_ns_e3", objective="cheapest")
    assert err.value.code == "QC103"


def test_qmk_plan_prints_the_variants_and_run_profile_auto_runs_the_chosen_one():
    program = str(EXAMPLES / "bell.qasm")
    status, out, err = qmk("plan", program, "--json")
    assert status == 0, err
    chosen = json.loads(out)["chosen"]["profile"]
    status, out, err = qmk("plan", program)
    assert status == 0 and f"chosen: {chosen}" in out
    status, out, err = qmk("run", program, "--profile", "auto", "--seed", "2", "--json")
    assert status == 0, err
    assert json.loads(out)["telemetry"]["profiles"] == [chosen]
    status, _, err = qmk("plan", program, "--objective", "cheapest")
    assert status == 2


def test_a_kernel_job_with_profile_auto_runs_the_chosen_variant(tmp_path):
    from qmk.frontends import read_program
    from support.kernel import login, run_kernel

    graph = read_program(str(EXAMPLES / "bell.qasm"))
    chosen = plan_variants(count_graph(graph), "qubit_gate_ns_e3").chosen.profile

    async def body(kernel):
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=sid, graph=graph.to_json(), shots=20, seed=1, policy={"profile": "auto"}
        )
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        return done.result["telemetry"]["profiles"]

    assert run_kernel(tmp_path, body) == [chosen]
