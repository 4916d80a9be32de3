"""The router at any width: no cost model overflows (each estimate is found as a log),
and an engine whose own estimate is past a day is refused, never chosen (``QE118``)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from qmk import defaults
from qmk.engines import EngineError
from qmk.engines.registry import ALL_GATES, ENGINE_NAMES, SPECS, Workload, spec
from qmk.engines.router import MAX_ESTIMATE_S, assess, route
from qmk.kernel.machine.programs import HEAD, random_clifford
from support.workloads import program_workload, shallow_workload


@pytest.fixture(scope="module")
def wide() -> Workload:
    """1,000 qubits, 20 layers of one-qubit Cliffords and CX on random pairs."""
    return program_workload(random_clifford(1000, 20, seed=2026).removeprefix(HEAD), 1000)


def test_a_thousand_qubit_circuit_with_long_range_cx_has_an_exact_mps_price(
    wide: Workload,
) -> None:
    # every cut is crossed hundreds of times: the bound is half the register, and the
    # MPS's work, 8**500 chi**3 units at the middle cut alone, is past any float
    assert wide.bond == 500
    assert wide.log2_bond_work is not None and wide.log2_bond_work > 3 * 500
    for entry in SPECS:
        assert math.isfinite(entry.log2_seconds(wide)), entry.name
    assert spec(defaults.MPS).seconds(wide) == math.inf
    assert spec(defaults.MPS).log2_seconds(wide) > 1400


def test_no_cost_model_overflows_at_any_width() -> None:
    huge = Workload(
        qubits=100_000,
        gates=ALL_GATES,
        gate_count=10**9,
        clifford=False,
        shots=10**6,
        mid_circuit=True,
        segments=10**5,
        branches=10**6,
        trajectories=10**5,
        diagonal_gates=10**8,
        permutation_gates=10**8,
        wide_gates=10**7,
        linear_gates=10**8,
        blocks=10**8,
        bond=50_000,
        log2_bond_work=150_000.0,
    )
    for work in (huge, replace(huge, bond=None, log2_bond_work=None, mixed_qubits=None)):
        for entry in SPECS:
            for precision in entry.precisions:
                for compiled in (True, False):
                    log = entry.log2_seconds(work, precision, threads=16, compiled=compiled)
                    assert math.isfinite(log) and log > 0, entry.name
                    assert entry.seconds(work, precision, compiled=compiled) > 0
            assert math.isfinite(entry.cost.log2_state_size(work))


def test_the_log_estimate_is_the_sum_of_the_figures_times_their_terms() -> None:
    work = shallow_workload(12, layers=3)
    for entry in SPECS:
        cost = entry.cost
        logs = cost.log2_terms(work)
        total = sum(getattr(cost, name) * 2.0**amount for name, amount in logs.items())
        assert 2.0 ** cost.log2_seconds(work) == pytest.approx(total, rel=1e-12), entry.name


def test_a_wide_long_range_clifford_job_goes_to_the_stabilizer_by_default_and_by_name(
    wide: Workload,
) -> None:
    choice = route(wide)
    assert choice.engine == defaults.STABILIZER
    refused = {c.engine: c for c in choice.candidates if not c.able}
    for name in (defaults.MPS, defaults.AER_MPS):
        if name in refused and refused[name].refusal != "unavailable":
            assert refused[name].refusal == "too-slow"
            assert "its own estimate is 1e+" in (refused[name].reason or "")
    assert route(wide, defaults.STABILIZER).engine == defaults.STABILIZER


def _slow(seconds: float) -> Workload:
    """60 qubits, non-Clifford (no dense engine holds them): the MPS engines alone can run
    it, and its bond work makes the native MPS's estimate about ``seconds``."""
    work = shallow_workload(60, layers=2)
    mps = spec(defaults.MPS)
    figure = mps.cost.element_s
    return replace(work, log2_bond_work=math.log2(seconds / figure))


def test_an_engine_whose_own_estimate_is_past_a_day_is_refused_not_chosen() -> None:
    mps = spec(defaults.MPS)
    under, over = _slow(0.9 * MAX_ESTIMATE_S), _slow(1.1 * MAX_ESTIMATE_S)
    assert assess(mps, under, {}).able
    candidate = assess(mps, over, {})
    assert (candidate.refusal, candidate.cost_s) == ("too-slow", None)
    assert "(86,400 s, a day)" in (candidate.reason or "")


def test_a_job_every_able_engine_would_take_past_a_day_is_qe118_listing_each_reason() -> None:
    work = _slow(1e30)
    with pytest.raises(EngineError) as info:
        route(work)
    assert (info.value.code, info.value.name) == ("QE118", "engine-too-slow")
    message = str(info.value)
    assert message.count("\n") == 0 and "in reasonable time" in message
    for name in ENGINE_NAMES:
        assert f"{name}: " in message
    assert f"{defaults.MPS}: its own estimate is 1e+30 s" in message


def test_a_named_engine_whose_own_estimate_is_past_a_day_is_qe118() -> None:
    with pytest.raises(EngineError) as info:
        route(_slow(1e30), defaults.MPS)
    assert info.value.code == "QE118"
    assert f"the {defaults.MPS} engine cannot run this program: its own estimate" in str(info.value)


def test_the_day_is_the_cpu_a_kernel_worker_may_spend_on_one_job() -> None:
    assert MAX_ESTIMATE_S == defaults.WORKER_CPU_S == 86_400
