"""A process keeps the plan, workload and route of a program it runs again (a kernel's
worker runs one program under many seeds): what it keeps is what it would compute anew,
and a change of anything the router reads (the worker's limits, the state memory the
environment allows, the engine or options asked) is routed afresh."""

from __future__ import annotations

import msgspec
import pytest

from qmk.engines.limits import WorkerLimits
from qmk.engines.router import route
from qmk.engines.statevector import MAX_BYTES_ENV
from qmk.execution import executor
from qmk.execution.executor import build_plan, execute, route_plan, workload
from qmk.execution.request import RunRequest, program_digest
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify
from support.workloads import ghz_asm

#: 12 qubits with a T gate: no stabilizer engine; a statevector of 2**12 amplitudes.
WIDE_T = verify(assemble(ghz_asm(12, t=True)))


def _plan():
    return build_plan(
        WIDE_T, noise=False, qubit="qubit_gate_ns_e3", default_profile="logical:surface_code(d=9)"
    )


def _fresh(plan, engine=None, limits=None, shots=1):
    return route(workload(plan, shots), engine, options={}, limits=limits)


def _same(a, b):
    assert (a.engine, a.precision, dict(a.options), a.reason) == (
        b.engine,
        b.precision,
        dict(b.options),
        b.reason,
    )


CACHES = (
    executor._PLANS,
    executor._WORKLOADS,
    executor._ROUTES,
    executor._BATCHES,
    executor._FIGURES,
    executor._LAYOUTS,
)


@pytest.fixture(autouse=True)
def _empty_caches():
    for cache in CACHES:
        cache.clear()
    yield
    for cache in CACHES:
        cache.clear()


def keep_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cache of the executor keeps nothing from now on: everything made anew."""
    for cache in CACHES:
        monkeypatch.setattr(cache, "most", 0)


def test_a_kept_route_is_the_route_the_router_gives_under_each_limits_in_turn():
    plan = _plan()
    roomy = WorkerLimits(threads=2)
    # 2**12 amplitudes need far more than 64 KiB of address space: dense engines refused
    tight = WorkerLimits(address_cap=2**30, address_used=2**30 - 2**16, threads=2)
    for limits in (roomy, tight, roomy, tight):
        kept, _ = route_plan(plan, None, limits=limits)
        _same(kept, _fresh(plan, limits=limits))
        assert kept.limits == limits
    assert (
        route_plan(plan, None, limits=roomy)[0].engine
        != route_plan(plan, None, limits=tight)[0].engine
    )


def test_memory_used_without_a_cap_does_not_change_the_route_and_is_reported_as_read():
    plan = _plan()
    first = WorkerLimits(threads=2, cgroup_used=10 * 2**20, address_used=2**30)
    later = WorkerLimits(threads=2, cgroup_used=99 * 2**20, address_used=2**31)
    route_plan(plan, None, limits=first)
    kept, _ = route_plan(plan, None, limits=later)
    assert len(executor._ROUTES) == 1  # the same route: neither figure counts without a cap
    _same(kept, _fresh(plan, limits=later))
    assert kept.limits == later  # the choice carries the limits read for this run


def test_the_state_memory_the_environment_allows_is_routed_afresh(monkeypatch):
    plan = _plan()
    limits = WorkerLimits(threads=2)
    before, _ = route_plan(plan, None, limits=limits)
    monkeypatch.setenv(MAX_BYTES_ENV, str(2**10))  # no 12-qubit state fits
    after, _ = route_plan(plan, None, limits=limits)
    _same(after, _fresh(plan, limits=limits))
    assert after.engine != before.engine


def test_a_named_engine_and_other_shots_are_routed_afresh():
    plan = _plan()
    limits = WorkerLimits(threads=2)
    chosen, _ = route_plan(plan, None, limits=limits)
    named, _ = route_plan(plan, "statevector", limits=limits)
    _same(named, _fresh(plan, "statevector", limits=limits))
    assert named.named and not chosen.named
    many, _ = route_plan(plan, None, shots=100_000, limits=limits)
    _same(many, _fresh(plan, limits=limits, shots=100_000))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_runs_under_new_seeds_equal_runs_with_nothing_kept(seed, monkeypatch):
    request = RunRequest(program_digest=program_digest("x"), shots=200, seed=seed)
    kept = [execute(WIDE_T, request) for _ in range(2)][1]  # the second from the caches
    keep_nothing(monkeypatch)
    executor._PLANS.clear()
    fresh = execute(WIDE_T, request)
    assert kept.counts == fresh.counts
    assert kept.engine == fresh.engine
    assert kept.telemetry.engine_reason == fresh.telemetry.engine_reason


#: A Bell pair with logical noise: sampled in bulk (stim-batch), with error sites.
BELL = verify(
    assemble(
        ".caps CAP_ALLOC\n"
        "a: ALLOC_LQ vq:q0, vq:q1\n"
        "h: APPLY_H vq:q0\n"
        "c: APPLY_CNOT vq:q0, vq:q1\n"
        "m0: MEASURE_Z vq:q0, out:m0\n"
        "m1: MEASURE_Z vq:q1, out:m1\n"
        "f: FREE_LQ vq:q0, vq:q1\n"
    )
)


@pytest.mark.parametrize("seed", [4, 5])
def test_a_bulk_sampled_plan_is_compiled_once_and_gives_the_bits_of_a_fresh_compile(
    seed, monkeypatch
):
    struck = RunRequest(
        program_digest=program_digest("x"),
        shots=300,
        seed=seed,
        noise_model="depolarizing(p=0.004)",
        profile="logical:surface_code(d=3)",
    )
    runs = [execute(BELL, msgspec.structs.replace(struck, seed=seed + k)) for k in range(3)]
    assert len(executor._BATCHES) == 1  # one plan, one engine: lowered and compiled once
    assert runs[0].telemetry.mode == "stim-batch"
    keep_nothing(monkeypatch)
    for cache in (executor._PLANS, executor._BATCHES):
        cache.clear()
    for k, kept in enumerate(runs):
        fresh = execute(BELL, msgspec.structs.replace(struck, seed=seed + k))
        assert (kept.bits == fresh.bits).all()
        assert kept.telemetry.injected_logical_errors == fresh.telemetry.injected_logical_errors


def test_a_runs_telemetry_is_its_own_though_its_plans_figures_are_kept():
    request = RunRequest(program_digest=program_digest("x"), shots=50, seed=5)
    first = execute(BELL, request)
    first.telemetry.channel_uses["mutated"] = 1  # type: ignore[index]
    second = execute(BELL, msgspec.structs.replace(request, seed=6))
    assert len(executor._FIGURES) == 1
    assert second.telemetry.channel_uses == {}
    fresh = {k: v for k, v in second.telemetry.to_json().items() if k != "wall_time_s"}
    executor._FIGURES.clear()
    again = execute(BELL, msgspec.structs.replace(request, seed=6)).telemetry.to_json()
    assert fresh == {k: v for k, v in again.items() if k != "wall_time_s"}


def test_other_physics_make_another_plan():
    request = RunRequest(program_digest=program_digest("x"), shots=50, seed=5)
    first = execute(WIDE_T, request)
    other = RunRequest(
        program_digest=program_digest("x"),
        shots=50,
        seed=5,
        profile="logical:surface_code(d=5)",
    )
    result = execute(WIDE_T, other)
    assert len(executor._PLANS) == 2
    assert result.telemetry.profiles == ("logical:surface_code(d=5)",)
    assert result.telemetry.peak_physical_qubits < first.telemetry.peak_physical_qubits
