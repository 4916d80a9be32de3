"""Result caching and per-job physics against a real ``qmk serve``.

The workers sit behind a gate (:class:`support.kernel.WorkerGate`): a job that needs a
run stays QUEUED or RUNNING until the test lets one through, so a submit answered
COMPLETED in its own reply ran no worker, and nothing races the machine's speed. Replays
read the data directory with ``qmk audit replay`` after the server stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from msgspec import UNSET

from qmk.client import Client
from qmk.errors import InvalidArgument
from qmk.kernel.security.replay import attests
from qmk.qec.logical import Calibration
from support.cli import qmk
from support.kernel import TENANTS, ServerProcess, WorkerGate, ghz_graph, toml_value
from support.paths import EXAMPLES

GRAPH = ghz_graph(3)
SHOTS, SEED = 400, 13
BELL = str(EXAMPLES / "bell.qvm.asm")
MACHINE = {
    "physical_qubits": 2_000_000,
    "profile": "logical:surface_code(d=3)",
    "job_noise_models": ["depolarizing", "idle"],
    "job_max_error_rate": 0.006,
}


def start(
    tmp_path: Path, gate: WorkerGate, machine: dict[str, Any] | None = None, **kernel: Any
) -> ServerProcess:
    """A server on ``gate``'s hooks, one worker, the machine of :data:`MACHINE` (with
    ``machine``'s keys in place of its own)."""
    table = {**MACHINE, **(machine or {})}
    lines = ["[machine]", *(f"{k} = {toml_value(v)}" for k, v in table.items())]
    if kernel:
        lines += ["[kernel]", *(f"{k} = {toml_value(v)}" for k, v in kernel.items())]
    for name in ("alice", "bob"):
        lines.append(f"[tenants.{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in TENANTS[name].items()]
    config = tmp_path / "k.toml"
    config.write_text("\n".join(lines) + "\n")
    server = ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=1,
        log=tmp_path / "k.log",
    )
    return server.start(hooks=gate.hooks())


def connect(server: ServerProcess, tenant: str) -> Client:
    return Client.connect(str(server.socket), tenant=tenant, key=TENANTS[tenant]["key"])


def replayed(server: ServerProcess, job_id: str) -> dict[str, Any]:
    status, out, err = qmk("audit", "replay", str(server.data_dir), job_id, "--json")
    assert status == 0, err
    return dict(json.loads(out))


def test_an_identical_submit_is_a_cache_hit_and_other_tenants_and_opt_outs_run(
    tmp_path: Path,
) -> None:
    with WorkerGate(tmp_path) as gate:
        server = start(tmp_path, gate)
        try:
            with connect(server, "alice") as alice, connect(server, "bob") as bob:
                first = alice.q_submit(GRAPH, SHOTS, SEED)
                gate.release(1)
                first = alice.q_wait(first.job_id, 60_000)
                hit = alice.q_submit(GRAPH, SHOTS, SEED)
                telemetry = alice.q_get_telemetry(hit.job_id)
                other = bob.q_submit(GRAPH, SHOTS, SEED)
                opted_out = alice.q_submit(GRAPH, SHOTS, SEED, {"cache": False})
                assert other.state == "QUEUED" and opted_out.state == "QUEUED"
                gate.release(2)
                other = bob.q_wait(other.job_id, 60_000)
                opted_out = alice.q_wait(opted_out.job_id, 60_000)
        finally:
            assert server.stop() == 0, server.output()
    assert first.state == "COMPLETED" and hit.state == "COMPLETED"
    assert hit.cached_from == first.job_id
    assert hit.result["counts"] == first.result["counts"]
    assert hit.result["telemetry"]["cache_hit"] is True
    assert telemetry.attempts == 0
    for ran in (other, opted_out):
        assert ran.state == "COMPLETED" and ran.cached_from is UNSET
        assert ran.result["telemetry"]["cache_hit"] is False
        # the same run: the same counts, by a run of its own
        assert ran.result["counts"] == first.result["counts"]
    report = replayed(server, hit.job_id)
    assert report["same"] is True


def test_a_source_purged_by_retention_answers_no_later_submit(tmp_path: Path) -> None:
    with WorkerGate(tmp_path) as gate:
        server = start(tmp_path, gate, result_keep_s=0.5)
        try:
            with connect(server, "alice") as alice:
                first = alice.q_submit(GRAPH, SHOTS, SEED)
                gate.release(1)
                alice.q_wait(first.job_id, 60_000)
                # the kernel's retention sweep deletes the result (a state it reaches,
                # whatever the machine's speed; the limit only guards against a hang)
                end = time.monotonic() + 60
                while alice.q_status(first.job_id).result_error is UNSET:
                    assert time.monotonic() < end, "the result was never deleted"
                    time.sleep(0.05)
                assert alice.q_status(first.job_id).result_error.code == "QK306"
                again = alice.q_submit(GRAPH, SHOTS, SEED)
                assert again.state == "QUEUED"  # held at the gate: it runs
                gate.release(1)
                again = alice.q_wait(again.job_id, 60_000)
                telemetry = alice.q_get_telemetry(again.job_id)
        finally:
            assert server.stop() == 0, server.output()
    assert again.state == "COMPLETED" and again.cached_from is UNSET
    assert telemetry.attempts == 1


def test_jobs_with_their_own_noise_models_are_attested_apart_and_each_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted = Calibration(
        family="surface_code", crossing_prefactor=0.1, error_correction_threshold=0.01
    )
    calibration = tmp_path / "fit.json"
    calibration.write_text(json.dumps({**fitted.to_json(), "fit": {"points": 4}}))
    models = ("depolarizing(p=0.002)", "depolarizing(p=0.004) + idle(t1_ns=1e5, t2_ns=1e5)")
    with WorkerGate(tmp_path) as gate:
        server = start(tmp_path, gate)
        gate.open()  # every job runs
        try:
            for key, value in server.env("alice").items():
                monkeypatch.setenv(key, value)
            jobs = []
            for options in (
                ["--noise-model", models[0]],
                ["--noise-model", models[1]],
                ["--calibration", str(calibration)],
            ):
                # a Bell pair's own logical error under these models is about 1%, past the
                # default budget (QK505): a budget it keeps
                budget = ["--error-budget", "0.05"]
                status, out, err = qmk(
                    "submit",
                    BELL,
                    "--shots",
                    "3000",
                    "--seed",
                    "5",
                    "--wait",
                    "--json",
                    *budget,
                    *options,
                )
                assert status == 0, err
                jobs.append(json.loads(out))
            # beyond the operator's limits: refused at admission with its code
            status, out, err = qmk("submit", BELL, "--noise-model", "gate(two_qubit=1e-3)")
            assert status == 1 and out == "" and err.startswith("QS1007 admission-refused: ")
            status, _, err = qmk("submit", BELL, "--noise-model", "depolarizing(p=0.009)")
            assert status == 1 and "job_max_error_rate" in err
        finally:
            assert server.stop() == 0, server.output()
    telemetry = [job["result"]["telemetry"] for job in jobs]
    assert telemetry[0]["noise_model"] == "depolarizing(p=0.002)"
    assert telemetry[1]["noise_model"].startswith("depolarizing(p=0.004) + idle(")
    assert telemetry[2]["noise_model"] is None
    assert telemetry[2]["calibration"]["crossing_prefactor"] == 0.1
    records = {}
    for job in jobs:
        assert job["state"] == "COMPLETED"
        assert replayed(server, job["job_id"])["same"] is True
        lines = (server.data_dir / "audit.log").read_text().splitlines()
        (record,) = [
            r for r in map(json.loads, lines) if attests(r) and r["job_id"] == job["job_id"]
        ]
        records[job["job_id"]] = record
    noise = [records[job["job_id"]]["noise_model"] for job in jobs]
    assert noise == [t["noise_model"] for t in telemetry]
    # the same physics through qmk run, at the same seed: the same counts
    for job, options in zip(
        jobs,
        (["--noise-model", models[0]], ["--noise-model", models[1]]),
        strict=False,
    ):
        status, out, err = qmk(
            "run",
            BELL,
            "--shots",
            "3000",
            "--seed",
            "5",
            "--profile",
            MACHINE["profile"],
            "--json",
            *options,
        )
        assert status == 0, err
        assert json.loads(out)["counts"] == job["result"]["counts"]


def test_a_noise_model_above_threshold_has_the_one_code_qmk_run_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it was QC106 in qmk run and QS1012 invalid-argument from a kernel
    model = "depolarizing(p=0.05)"  # the surface code's threshold is 0.01
    status, _, local = qmk("run", BELL, "--noise-model", model, "--shots", "10")
    assert status == 2 and local.startswith("QC106 above-threshold: "), local
    with WorkerGate(tmp_path) as gate:
        server = start(tmp_path, gate, machine={"job_max_error_rate": 0.5})
        try:
            for key, value in server.env("alice").items():
                monkeypatch.setenv(key, value)
            status, out, err = qmk("submit", BELL, "--noise-model", model, "--shots", "10")
            with connect(server, "alice") as client, pytest.raises(InvalidArgument) as caught:
                client.q_submit(GRAPH, 10, 1, policy={"noise_model": model})
        finally:
            assert server.stop() == 0, server.output()
    assert status == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith("QC106 above-threshold: policy.noise_model: "), err
    assert (
        err.removeprefix("QC106 above-threshold: policy.noise_model: ") == local.split(": ", 1)[1]
    )
    refused = caught.value
    assert (refused.code, refused.name, refused.rpc_code) == ("QC106", "above-threshold", 1012)
    assert refused.details == {"key": "policy.noise_model", "code": "QC106"}
