"""Per-job physics: a job's ``policy.noise_model`` and ``policy.calibration`` replace the
machine's for that job only, within the operator's ``[machine] job_*`` limits; the
counts follow exact theory (binomial bounds at stated seeds) and equal ``qmk run``'s with
the same physics and seed; telemetry and the attestation record them and replay uses
them. Real in-process kernels with real workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qmk.errors import AdmissionError, InvalidArgument
from qmk.execution.runs import run
from qmk.kernel.config import ConfigError, KernelConfig, config_from_dict
from qmk.kernel.records.jobs import parse_policy
from qmk.kernel.records.programs import verified
from qmk.kernel.security.replay import find_attestation, replay
from qmk.kernel.service import Kernel
from qmk.qec.logical import Calibration, logical_model
from qmk.qec.noise import parse_noise_model
from support.kernel import KEYS, login, run_kernel

PROFILE = "logical:surface_code(d=3)"
MACHINE_NOISE = "depolarizing(p=0.001)"
SHOTS, SEED = 40_000, 17
SIGMAS = 5.0  # a false alarm is below 1e-6 per check
FITTED = Calibration(
    family="surface_code",
    crossing_prefactor=0.1,
    error_correction_threshold=0.01,
    source="a test fit",
)


def config(**machine: Any) -> KernelConfig:
    return config_from_dict(
        {
            "machine": {
                "physical_qubits": 2_000_000,
                "profile": PROFILE,
                "noise_model": MACHINE_NOISE,
                **machine,
            },
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"]}},
        }
    )


def measured() -> dict[str, Any]:
    """|0> measured in Z: it reads 1 when an odd number of the logical flips of its two
    logical cycles (the allocation's and the measurement's) hit it."""
    nodes: list[dict[str, Any]] = [
        {"id": "a", "op": "ALLOC_LQ", "args": {"n": 1}, "vqs": ["q"]},
        {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["m"]},
        {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
    ]
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": ["q"], "chs": [], "events": ["m"]},
        "caps": ["CAP_ALLOC"],
    }


def ones(counts: dict[str, int]) -> int:
    return counts.get("1", 0)


def expected_p(noise: str, calibration: Calibration | None = None) -> float:
    """P(the measurement reads 1): an odd number of two flips, each 2/3 of the logical
    error per cycle (X and Y of the depolarizing logical channel flip Z)."""
    rate = logical_model(
        PROFILE, noise=parse_noise_model(noise), calibration=calibration
    ).logical_error_per_cycle
    q = 2 * rate / 3
    return (1 - (1 - 2 * q) ** 2) / 2


def assert_binomial(count: int, shots: int, p: float) -> None:
    sigma = (shots * p * (1 - p)) ** 0.5
    assert abs(count - shots * p) <= SIGMAS * sigma + 1, (count, shots * p, sigma)


async def finished(kernel: Kernel, sid: str, policy: dict[str, Any] | None) -> dict[str, Any]:
    job = await kernel.q_submit(
        session_id=sid, graph=measured(), shots=SHOTS, seed=SEED, policy=policy
    )
    done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=120_000)
    assert done.state == "COMPLETED", done.error
    return done.to_json()


def test_each_job_runs_with_its_own_noise_model_and_the_counts_follow_it(tmp_path: Path) -> None:
    models = ("depolarizing(p=3e-3)", "depolarizing(p=0.005) + idle(t1_ns=1e5, t2_ns=1e5)")

    async def body(kernel: Kernel) -> list[dict[str, Any]]:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        jobs = [await finished(kernel, sid, None)]
        for model in models:
            jobs.append(await finished(kernel, sid, {"noise_model": model}))
        return jobs

    jobs = run_kernel(tmp_path, body, workers=1, config=config())
    canonical = [MACHINE_NOISE, *(str(_canonical(m)) for m in models)]
    assert canonical[1] == "depolarizing(p=0.003)"
    graph = verified_text()
    for job, noise, asked in zip(jobs, canonical, (None, *models), strict=True):
        telemetry = job["result"]["telemetry"]
        assert telemetry["noise_model"] == noise and telemetry["cache_hit"] is False
        assert_binomial(ones(job["result"]["counts"]), SHOTS, expected_p(noise))
        record = find_attestation(tmp_path / "data", job["job_id"])
        # the run request holds the model as the kernel read it; the policy, as asked
        assert record is not None and record["noise_model"] == noise
        assert record["policy"].get("noise_model") == asked
        assert replay(graph, record, job["job_id"]).same
    # the three jobs' counts differ: the noise models reached the runs
    assert len({ones(job["result"]["counts"]) for job in jobs}) == 3
    # a per-job model is qmk run --noise-model: the same counts at the same seed
    alone = run(
        measured(), shots=SHOTS, seed=SEED, noise=parse_noise_model(models[0]), profile=PROFILE
    )
    assert jobs[1]["result"]["counts"] == dict(alone.counts)


def _canonical(text: str) -> str:
    from qmk.qec.noise import describe_noise_model

    return describe_noise_model(parse_noise_model(text))


def verified_text() -> str:
    """The graph text the kernel stores for :func:`measured` (compact JSON)."""
    import json

    text = json.dumps(measured(), separators=(",", ":"), ensure_ascii=False)
    verified(text)
    return text


def test_a_jobs_calibration_replaces_the_machines_and_is_attested(tmp_path: Path) -> None:
    document = {**FITTED.to_json(), "fit": {"points": 5}}  # as qmk qec calibrate writes it

    async def body(kernel: Kernel) -> dict[str, Any]:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        return await finished(kernel, sid, {"calibration": document})

    done = run_kernel(tmp_path, body, workers=1, config=config())
    calibration = done["result"]["telemetry"]["calibration"]
    assert calibration["crossing_prefactor"] == 0.1 and calibration["source"] == "a test fit"
    assert calibration["profiles"] == [PROFILE]
    assert_binomial(ones(done["result"]["counts"]), SHOTS, expected_p(MACHINE_NOISE, FITTED))
    alone = run(
        measured(),
        shots=SHOTS,
        seed=SEED,
        noise=parse_noise_model(MACHINE_NOISE),
        profile=PROFILE,
        calibration=FITTED,
    )
    assert done["result"]["counts"] == dict(alone.counts)
    record = find_attestation(tmp_path / "data", done["job_id"])
    assert record is not None and record["calibration"]["crossing_prefactor"] == 0.1
    assert record["require_calibration"] is True
    assert replay(verified_text(), record, done["job_id"]).same


def test_physics_beyond_the_operators_limits_is_refused_at_admission(tmp_path: Path) -> None:
    limited = config(
        job_noise_models=["depolarizing", "idle"],
        job_max_error_rate=0.004,
        job_calibration=False,
    )

    async def body(kernel: Kernel) -> list[AdmissionError]:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        refused = []
        for policy in (
            {"noise_model": "gate(two_qubit=1e-3)"},
            {"noise_model": "depolarizing(p=1e-3) + drift(factor=2)"},
            {"noise_model": "depolarizing(p=0.005)"},
            {"calibration": FITTED.to_json()},
        ):
            with pytest.raises(AdmissionError) as caught:
                await kernel.q_submit(
                    session_id=sid, graph=measured(), shots=10, seed=1, policy=policy
                )
            refused.append(caught.value)
        # within the limits it is admitted
        fine = await kernel.q_submit(
            session_id=sid,
            graph=measured(),
            shots=10,
            seed=1,
            policy={"noise_model": "depolarizing(p=0.004)"},
        )
        assert fine.state in ("QUEUED", "RUNNING", "COMPLETED")
        assert len((await kernel.q_list_jobs(session_id=sid)).jobs) == 1
        return refused

    refused = run_kernel(tmp_path, body, workers=1, config=limited)
    assert {error.code for error in refused} == {"QS1007"}
    limits = [error.details["limit"] for error in refused]
    assert limits == [
        "machine.job_noise_models",
        "machine.job_noise_models",
        "machine.job_max_error_rate",
        "machine.job_calibration",
    ]
    assert refused[0].details["refused"] == ["gate"]
    assert refused[1].details["refused"] == ["drift"]
    assert "0.005" in refused[2].message and "job_max_error_rate" in refused[2].message


def test_a_bad_noise_model_or_calibration_is_an_invalid_argument_naming_its_key(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> list[InvalidArgument]:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        refused = []
        for policy in (
            {"noise_model": "thermal(p=0.1)"},
            {"noise_model": "depolarizing(p=2)"},
            {"noise_model": "depolarizing(p=1e-3)", "noise": False},
            {"calibration": {"kind": "something else"}},
            {"calibration": {**FITTED.to_json(), "crossing_prefactor": 3}},
            # a calibration for another code family fits none of the program's qubits
            {"calibration": {**FITTED.to_json(), "family": "floquet_code"}},
        ):
            with pytest.raises(InvalidArgument) as caught:
                await kernel.q_submit(
                    session_id=sid, graph=measured(), shots=10, seed=1, policy=policy
                )
            refused.append(caught.value)
        return refused

    refused = run_kernel(tmp_path, body, workers=1, config=config())
    keys = [error.details["key"] for error in refused]
    assert keys == ["policy.noise_model"] * 3 + ["policy.calibration"] * 3
    assert "unknown model 'thermal'" in refused[0].message
    assert "no qubit of this program" in refused[5].message
    assert all(error.code == "QS1012" for error in refused)


def test_a_noise_model_above_threshold_is_an_invalid_argument_with_the_local_code(
    tmp_path: Path,
) -> None:
    # qmk run --noise-model 'depolarizing(p=0.05)' is QC106: in the kernel the same value
    # of the policy is the same code, an InvalidArgument (1012) naming its key
    async def body(kernel: Kernel) -> InvalidArgument:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        with pytest.raises(InvalidArgument) as caught:
            await kernel.q_submit(
                session_id=sid,
                graph=measured(),
                shots=10,
                seed=1,
                policy={"noise_model": "depolarizing(p=0.05)"},
            )
        return caught.value

    refused = run_kernel(tmp_path, body, workers=1, config=config())
    assert (refused.code, refused.name, refused.rpc_code) == ("QC106", "above-threshold", 1012)
    assert refused.details == {"key": "policy.noise_model", "code": "QC106"}
    assert refused.message.startswith("policy.noise_model: ") and "threshold" in refused.message


def test_a_policys_physics_round_trips_and_unset_keys_stay_out_of_its_json() -> None:
    policy = parse_policy(
        {"noise_model": "depolarizing(p=1e-3)", "calibration": FITTED.to_json(), "cache": False},
        default_timeout_s=60,
    )
    assert policy.calibration == FITTED.to_json() and policy.cache is False  # its JSON
    again = parse_policy(policy.to_json(), default_timeout_s=60)
    assert again == policy
    plain = parse_policy(None, default_timeout_s=60).to_json()
    assert "noise_model" not in plain and "calibration" not in plain and plain["cache"] is True


def test_the_limits_name_only_noise_models_that_exist() -> None:
    with pytest.raises(ConfigError) as caught:
        config(job_noise_models=["thermal"])
    assert caught.value.details["key"] == "machine.job_noise_models"
    with pytest.raises(ConfigError):
        config(job_max_error_rate=0)
    assert config().machine.job_noise_models == (
        "depolarizing",
        "gate",
        "measurement",
        "idle",
        "drift",
    )
