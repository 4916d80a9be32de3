"""Neutral-atom device jobs through a real in-process kernel (``q_submit`` to the target
``neutral-atom``): the
capability, the quotas in atoms and device time, validation at admission with the device's
own codes, and results equal to the in-process emulator's at the same seed."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pytest

from qmk.devices.neutral_atom.compile import compile_program
from qmk.devices.neutral_atom.emulator import run_job
from qmk.errors import CapabilityError, ProgramError, QuotaError
from qmk.kernel.config import config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.qvm.asm import assemble
from support.kernel import BELL, run_kernel
from support.neutral_atom import device_submit
from support.offloop import Gate, held_while_other_answered

KEYS = {"dave": "dave-key", "erin": "erin-key"}


def device_config() -> Any:
    """dave may run device jobs (8 atoms, 0.5 s of device time per job); erin may not."""
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {
                "dave": {
                    "key": KEYS["dave"],
                    "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"],
                    "max_atoms": 8,
                    "max_device_time_s": 0.5,
                },
                "erin": {"key": KEYS["erin"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


async def session(kernel: Any, tenant: str) -> str:
    reply = await kernel.q_negotiate_caps(
        tenant=tenant, key=KEYS[tenant], requested=["CAP_ALLOC", "CAP_DEVICE_NA"]
    )
    return str(reply.session_id)


def ghz_job(n: int, *, shots: int = 500, seed: int = 7) -> dict[str, Any]:
    program: list[dict[str, Any]] = [
        {"op": "AllocArray", "n_qubits": n},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
    ]
    program += [{"op": "ApplyGate", "name": "CX", "targets": [k, k + 1]} for k in range(n - 1)]
    program.append({"op": "Measure", "targets": list(range(n))})
    return {"profile": "benchmark_chain", "shots": shots, "seed": seed, "program": program}


def test_a_device_job_completes_with_the_counts_of_the_in_process_emulator(tmp_path):
    job = ghz_job(5)
    expected = run_job(job).counts()

    async def body(kernel):
        sid = await session(kernel, "dave")
        accepted = await device_submit(kernel.q_submit, session_id=sid, job=job)
        done = await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)
        telemetry = await kernel.q_get_telemetry(session_id=sid, job_id=accepted.job_id)
        return done, telemetry

    done, telemetry = run_kernel(tmp_path, body, config=device_config())
    assert done.state == "COMPLETED", done.error
    assert done.result["counts"] == expected
    assert done.result["target"] == "neutral-atom"
    assert done.result["device"]["profile"] == "benchmark_chain" and done.seed == 7
    assert telemetry.telemetry["atoms"] == 5
    assert telemetry.telemetry["backend"] == done.result["engine"]


def test_shots_seed_and_device_given_at_submit_replace_the_jobs_own(tmp_path):
    job = ghz_job(3, shots=10, seed=1)
    job.pop("profile")
    expected = run_job(job, shots=300, seed=99, device="ideal_small_array").counts()

    async def body(kernel):
        sid = await session(kernel, "dave")
        accepted = await device_submit(
            kernel.q_submit, session_id=sid, job=job, device="ideal_small_array", shots=300, seed=99
        )
        first = await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)
        again = await kernel.q_replay(session_id=sid, job_id=accepted.job_id)
        second = await kernel.q_wait(session_id=sid, job_id=again.job_id, timeout_ms=60_000)
        return first, second

    first, second = run_kernel(tmp_path, body, config=device_config())
    assert first.state == "COMPLETED" and first.shots == 300
    assert first.result["counts"] == expected == second.result["counts"]


def test_a_compiled_program_runs_as_a_device_job(tmp_path):
    program = assemble(
        """
        .caps CAP_ALLOC
        a: ALLOC_LQ vq:q0, vq:q1, vq:q2
        h: APPLY_H vq:q0
        c1: APPLY_CNOT vq:q0, vq:q2
        c2: APPLY_CNOT vq:q0, vq:q1
        m0: MEASURE_Z vq:q0, out:m0
        m1: MEASURE_Z vq:q1, out:m1
        m2: MEASURE_Z vq:q2, out:m2
        """
    )
    job, _ = compile_program(program, "ideal_small_array", shots=200, seed=4)

    async def body(kernel):
        sid = await session(kernel, "dave")
        accepted = await device_submit(kernel.q_submit, session_id=sid, job=job)
        return await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)

    done = run_kernel(tmp_path, body, config=device_config())
    assert done.state == "COMPLETED"
    assert done.result["counts"] == run_job(job).counts()
    assert set(done.result["counts"]) == {"000", "111"}


def test_without_the_device_capability_a_job_is_refused_and_the_refusal_audited(tmp_path):
    async def body(kernel):
        sid = await session(kernel, "erin")
        with pytest.raises(CapabilityError) as caught:
            await device_submit(kernel.q_submit, session_id=sid, job=ghz_job(3))
        return caught.value

    error = run_kernel(tmp_path, body, config=device_config())
    assert error.code == "QS1004" and error.details["missing"] == ["CAP_DEVICE_NA"]
    audit = (tmp_path / "data" / "audit.log").read_text()
    # one admission path: the target's program asks the capability at submit
    assert '"where":"submit"' in audit and '"decision":"deny"' in audit
    assert '"missing":["CAP_DEVICE_NA"]' in audit


@pytest.mark.parametrize(
    ("job", "limit"),
    [
        (ghz_job(10, shots=10), "max_atoms"),
        (ghz_job(5, shots=100_000), "max_device_time_s"),
    ],
)
def test_quotas_in_atoms_and_device_time_refuse_with_their_limit(tmp_path, job, limit):
    async def body(kernel):
        sid = await session(kernel, "dave")
        with pytest.raises(QuotaError) as caught:
            await device_submit(kernel.q_submit, session_id=sid, job=job)
        return caught.value

    error = run_kernel(tmp_path, body, config=device_config())
    assert error.code == "QS1006" and error.details["limit"] == limit
    assert error.details["needed"] > error.details["value"]


@pytest.mark.parametrize(
    ("job", "device", "code"),
    [
        (
            {
                "profile": "benchmark_chain",
                "program": [
                    {"op": "AllocArray", "n_qubits": 3},
                    {"op": "ApplyGate", "name": "CZ", "targets": [0, 2]},
                ],
            },
            None,
            "QD203",
        ),
        (ghz_job(3), "/etc/passwd.toml", "QD104"),
        ({"program": [{"op": "Teleport"}]}, None, "QD106"),
    ],
)
def test_a_job_the_device_would_refuse_is_refused_at_submit_with_its_code(
    tmp_path, job, device, code
):
    async def body(kernel):
        sid = await session(kernel, "dave")
        with pytest.raises(ProgramError) as caught:
            await device_submit(kernel.q_submit, session_id=sid, job=job, device=device)
        return caught.value

    error = run_kernel(tmp_path, body, config=device_config())
    assert (error.code, error.rpc_code, error.details["code"]) == (code, 1008, code)


def test_a_device_job_naming_an_engine_is_refused_by_its_target(tmp_path):
    async def body(kernel):
        sid = await session(kernel, "dave")
        with pytest.raises(ProgramError) as caught:
            await device_submit(
                kernel.q_submit, session_id=sid, job=ghz_job(3), policy={"engine": "x"}
            )
        return caught.value

    error = run_kernel(tmp_path, body, config=device_config())
    assert (error.code, error.details["option"]) == ("QM102", "engine")
    assert "the device's preset sets its physics" in error.message


def test_the_tenant_quota_lists_the_device_limits(tmp_path):
    async def body(kernel):
        sid = await session(kernel, "dave")
        return await kernel.q_resource_query(session_id=sid)

    reply = run_kernel(tmp_path, body, config=device_config())
    assert reply.quota["max_atoms"] == 8 and reply.quota["max_device_time_s"] == 0.5


def submitted(kernel: Any, sid: str, job: Any, **more: Any) -> Any:
    """``q_submit`` of a device job to the neutral-atom target, at its own shots."""
    shots = job.get("shots", 1) if isinstance(job, dict) else 1
    return kernel.q_submit(session_id=sid, graph=job, shots=shots, target="neutral-atom", **more)


def spread(n: int) -> dict[str, Any]:
    """A job of 3 atoms on hardware of ``n`` positions (a chain, 1 um apart)."""
    return {**ghz_job(3), "hardware": {"positions": [[1.0 * k, 0.0] for k in range(n)]}}


@pytest.mark.parametrize(
    "job",
    [spread(5000), {"program": [{"op": "AllocArray", "n_qubits": 10**6}]}],
    ids=["positions", "atoms-allocated"],
)
def test_a_device_job_past_the_graph_cap_is_refused_before_any_of_it_is_built(tmp_path, job):
    config = msgspec.structs.replace(device_config(), max_graph_nodes=1000)

    async def body(kernel):
        sid = await session(kernel, "dave")
        with pytest.raises(QuotaError) as caught:
            await submitted(kernel, sid, job)
        small = await submitted(kernel, sid, spread(8))  # within the cap: read as always
        return caught.value, small

    error, small = run_kernel(tmp_path, body, config=config)
    assert error.code == "QS1006" and error.details["limit"] == "max_graph_nodes"
    assert error.details["value"] == 1000 and error.details["needed"] > 1000
    assert "nothing was built" in error.message
    assert small.state == "QUEUED"


def test_a_device_job_is_read_and_checked_off_the_loop_while_another_tenant_is_answered(
    tmp_path, monkeypatch
):
    import qmk.devices.neutral_atom.validate as validate_module

    async def body(kernel):
        gate = Gate(threading.get_ident())
        monkeypatch.setattr(
            validate_module, "validate_job", gate.wrap(validate_module.validate_job)
        )
        dave, erin = await session(kernel, "dave"), await session(kernel, "erin")
        erins = await kernel.q_submit(session_id=erin, graph=BELL, shots=1, seed=1)
        status, accepted = await held_while_other_answered(
            gate,
            submitted(kernel, dave, ghz_job(4)),
            lambda: kernel.q_status(session_id=erin, job_id=erins.job_id),
        )
        assert status.job_id == erins.job_id
        assert accepted.state == "QUEUED", accepted
        assert gate.on_loop == 0

    run_kernel(tmp_path, body, workers=1, config=device_config())


def test_a_device_job_is_read_on_its_tenants_cpu_budget_and_not_past_it(tmp_path):
    clock = ManualClock(start=1000.0)
    config = device_config()
    dave = msgspec.structs.replace(config.tenants["dave"], cpu_burst_s=1e-9, cpu_s_per_s=1.0)
    config = msgspec.structs.replace(config, tenants={**config.tenants, "dave": dave})

    async def body(kernel):
        sid = await session(kernel, "dave")
        first = await submitted(kernel, sid, ghz_job(4))  # it spends past the nanosecond
        with pytest.raises(QuotaError) as caught:
            await submitted(kernel, sid, ghz_job(5))
        clock.advance(caught.value.details["retry_after_s"])
        again = await submitted(kernel, sid, ghz_job(5))
        return first, caught.value, again

    first, refusal, again = run_kernel(tmp_path, body, config=config, clock=clock)
    assert first.state == again.state == "QUEUED"
    assert refusal.details["limit"] == "cpu_s_per_s" and refusal.details["retry_after_s"] > 0
