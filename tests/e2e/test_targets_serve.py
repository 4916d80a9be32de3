"""Every target through one real ``qmk serve`` (JSON-RPC, REST and gRPC on one kernel): a
lattice-surgery job submitted by the CLI (``qmk submit FILE --lattice-surgery``), over
REST and over gRPC gives the in-process lattice-surgery target's counts at its seed, and a
device job submitted by the CLI (``qmk submit JOB.json --device PRESET``) the emulator's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from qmk.devices.neutral_atom.emulator import run_job
from qmk.execution.runs import build_request
from qmk.execution.surgery import SurgeryTarget
from qmk.frontends import read_program
from support.cli import qmk
from support.grpc_kernel import connect, grpc_target
from support.http import HttpServer, bearer
from support.kernel import TENANTS

TOFFOLI = Path(__file__).parents[1] / "ft" / "programs" / "toffoli.qasm"
DAVE = {"key": "dave-secret-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"], "max_atoms": 8}
JOB = {
    "program": [
        {"op": "AllocArray", "n_qubits": 3},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2]},
        {"op": "Measure", "targets": [0, 1, 2]},
    ],
    "shots": 250,
}


def surgery_counts(shots: int, seed: int) -> dict[str, int]:
    """The in-process lattice-surgery target's counts, under the kernel's defaults."""
    target = SurgeryTarget()
    program = target.read(read_program(str(TOFFOLI)))
    request = msgspec.structs.replace(
        build_request(program, shots=shots, seed=seed), target="lattice-surgery"
    )
    return dict(target.compile(program, request).run(shots, seed).counts)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    started = HttpServer(
        tmp_path_factory.mktemp("qmk-targets"),
        extra=("--grpc", "127.0.0.1:0"),
        tenants={**TENANTS, "dave": DAVE},
    ).start()
    yield started
    assert started.stop() == 0, started.output()


def cli(server: Any, monkeypatch: pytest.MonkeyPatch, *argv: str) -> Any:
    monkeypatch.setenv("QMK_SOCKET", str(server.socket))
    monkeypatch.setenv("QMK_TENANT", "dave")
    monkeypatch.setenv("QMK_KEY", DAVE["key"])
    monkeypatch.delenv("QMK_CAPS", raising=False)
    code, out, err = qmk(*argv, "--wait", "--json")
    assert code == 0, err
    return json.loads(out)


def test_qmk_submit_lattice_surgery_runs_in_the_kernel(server, monkeypatch) -> None:
    done = cli(
        server,
        monkeypatch,
        "submit",
        str(TOFFOLI),
        "--lattice-surgery",
        "--shots",
        "200",
        "--seed",
        "5",
    )
    assert done["state"] == "COMPLETED", done["error"]
    assert done["result"]["target"] == "lattice-surgery"
    assert done["result"]["counts"] == surgery_counts(200, 5)


def test_qmk_submit_a_device_job_with_its_preset(server, monkeypatch, tmp_path) -> None:
    path = tmp_path / "ghz.json"
    path.write_text(json.dumps(JOB))
    done = cli(server, monkeypatch, "submit", str(path), "--device", "benchmark_chain")
    assert done["state"] == "COMPLETED", done["error"]
    assert done["shots"] == 250  # the job's own
    seed = done["seed"]
    assert done["result"]["counts"] == run_job(JOB, seed=seed, device="benchmark_chain").counts()


def test_a_lattice_surgery_job_over_rest_and_grpc(server) -> None:
    graph = read_program(str(TOFFOLI)).to_json()
    with httpx.Client(base_url=server.url, timeout=120) as http:
        login = {"tenant": "alice", "key": TENANTS["alice"]["key"], "requested": ["CAP_ALLOC"]}
        sid = http.post("/v1/sessions", json=login).json()["session_id"]
        body = {"program": graph, "shots": 150, "seed": 8, "target": "lattice-surgery"}
        accepted = http.post("/v1/jobs", json=body, headers=bearer(sid))
        assert accepted.status_code == 201, accepted.text
        job_id = accepted.json()["job_id"]
        done = http.get(
            f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 120000}, headers=bearer(sid)
        ).json()
    assert done["state"] == "COMPLETED", done["error"]
    assert done["result"]["counts"] == surgery_counts(150, 8)
    with connect(grpc_target(server)) as client:
        accepted = client.q_submit(graph, shots=150, seed=8, target="lattice-surgery")
        done = client.q_wait(accepted.job_id, 120_000)
    assert done.state == "COMPLETED", done.error
    assert done.result["counts"] == surgery_counts(150, 8)


def device_counts(shots: int, seed: int) -> dict[str, int]:
    """The in-process device target's counts of the Bell pair on ``ideal_small_array``."""
    import qmk

    ran = qmk.run(
        str(BELL_QASM),
        target="neutral-atom",
        target_options={"preset": "ideal_small_array"},
        shots=shots,
        seed=seed,
    )
    return dict(ran.counts)


BELL_QASM = Path(__file__).parents[2] / "examples" / "bell.qasm"


def test_qmk_submit_a_program_to_the_device_runs_on_every_wire(server, monkeypatch) -> None:
    # the CLI (JSON-RPC): the program as QVM JSON
    done = cli(
        server,
        monkeypatch,
        *("submit", str(BELL_QASM), "--device", "ideal_small_array", "--shots", "200"),
        *("--seed", "5"),
    )
    assert done["state"] == "COMPLETED", done["error"]
    assert done["result"]["counts"] == device_counts(200, 5)
    text = BELL_QASM.read_text()
    policy = {"preset": "ideal_small_array"}
    with httpx.Client(base_url=server.url, timeout=120) as http:  # REST: the program's text
        login = {"tenant": "dave", "key": DAVE["key"], "requested": DAVE["caps"]}
        sid = http.post("/v1/sessions", json=login).json()["session_id"]
        body = {"program": text, "shots": 150, "seed": 8, "target": "neutral-atom"}
        accepted = http.post("/v1/jobs", json={**body, "policy": policy}, headers=bearer(sid))
        assert accepted.status_code == 201, accepted.text
        done = http.get(
            f"/v1/jobs/{accepted.json()['job_id']}/wait",
            params={"timeout_ms": 120000},
            headers=bearer(sid),
        ).json()
    assert done["state"] == "COMPLETED", done["error"]
    assert done["result"]["counts"] == device_counts(150, 8)
    from qmk.grpc.client import Client as GrpcClient

    with GrpcClient.connect(  # gRPC: the program's text
        grpc_target(server), tenant="dave", key=DAVE["key"], caps=DAVE["caps"]
    ) as client:
        accepted = client.submit(text, shots=120, seed=9, policy=policy, target="neutral-atom")
        done = client.q_wait(accepted.job_id, 120_000)
    assert done.state == "COMPLETED", done.error
    assert done.result["counts"] == device_counts(120, 9)


def test_qmk_submit_a_stim_circuit_runs_on_the_stim_target_as_qmk_run_does(
    server, monkeypatch, tmp_path
) -> None:
    import stim

    import qmk as qmk_package

    circuit = stim.Circuit.generated(
        "repetition_code:memory", distance=3, rounds=3, after_clifford_depolarization=0.02
    )
    path = tmp_path / "memory.stim"
    path.write_text(str(circuit))
    argv = ("submit", str(path), "--decode", "--shots", "2000", "--seed", "6")
    done = cli(server, monkeypatch, *argv)
    assert done["state"] == "COMPLETED", done["error"]
    here = qmk_package.run(str(path), shots=2000, seed=6, target_options={"decode": True})
    assert done["result"]["target"] == "stim"
    assert done["result"]["counts"] == dict(here.counts)
    decoded = here.details["decode"]
    assert done["result"]["decode"]["logical_errors"] == decoded["logical_errors"]


def test_qmk_submit_a_stim_circuit_with_decode_and_wait_prints_the_decoded_rate(
    server, monkeypatch, tmp_path
) -> None:
    import stim

    import qmk as qmk_package

    circuit = stim.Circuit.generated(
        "repetition_code:memory", distance=3, rounds=3, after_clifford_depolarization=0.02
    )
    path = tmp_path / "memory.stim"
    path.write_text(str(circuit))
    monkeypatch.setenv("QMK_SOCKET", str(server.socket))
    monkeypatch.setenv("QMK_TENANT", "dave")
    monkeypatch.setenv("QMK_KEY", DAVE["key"])
    monkeypatch.delenv("QMK_CAPS", raising=False)
    argv = ("submit", str(path), "--decode", "--shots", "2000", "--seed", "6", "--wait")
    code, out, err = qmk(*argv)
    assert code == 0, err
    here = qmk_package.run(str(path), shots=2000, seed=6, target_options={"decode": True})
    (errors,) = here.details["decode"]["logical_errors"]
    assert "decoded by pymatching" in out, out
    assert f"({errors} of 2000;" in out, out
    assert f"detectors: {circuit.num_detectors}, fired in" in out, out


def test_qmk_submit_of_a_stim_option_to_another_target_is_refused(server, monkeypatch) -> None:
    monkeypatch.setenv("QMK_SOCKET", str(server.socket))
    monkeypatch.setenv("QMK_TENANT", "dave")
    monkeypatch.setenv("QMK_KEY", DAVE["key"])
    code, out, err = qmk("submit", str(BELL_QASM), "--detectors", "--wait")
    assert code == 1, (out, err)  # the kernel refuses it: the logical target has no such key
    assert err.startswith("QS1012 ") and "policy.detectors" in err and err.count("\n") == 1
