"""A neutral-atom device job through a real ``qmk serve``, as a user meets it: ``qmk
submit JOB.json --device PRESET --wait`` says what ran it, and ``qmk restore`` (and REST's
restore) runs the job again to the same counts.

Both were broken: the wait printed ``engine None; outcomes (events (no events))``, and a
restore was refused (``QS1000 syscall-error: QF007 unknown-key ... 'job'``, REST 422)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from qmk.devices.neutral_atom.emulator import run_job
from support.cli import qmk
from support.http import HttpServer, bearer
from support.kernel import TENANTS

DAVE = {"key": "dave-secret-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"], "max_atoms": 8}
JOB = {
    "program": [
        {"op": "AllocArray", "n_qubits": 3},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2]},
        {"op": "Measure", "targets": [0, 1, 2]},
    ],
    "shots": 300,
    "seed": 11,
}
PRESET = "benchmark_chain"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    started = HttpServer(
        tmp_path_factory.mktemp("qmk-device-cli"), tenants={**TENANTS, "dave": DAVE}
    ).start()
    yield started
    assert started.stop() == 0, started.output()


@pytest.fixture
def as_dave(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMK_SOCKET", str(server.socket))
    monkeypatch.setenv("QMK_TENANT", "dave")
    monkeypatch.setenv("QMK_KEY", DAVE["key"])
    monkeypatch.delenv("QMK_CAPS", raising=False)


def _submitted(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "ghz.json"
    path.write_text(json.dumps(JOB), encoding="utf-8")
    argv = ("submit", str(path), "--device", PRESET, "--seed", "11", "--wait", "--json")
    code, out, err = qmk(*argv)
    assert code == 0, err
    done = json.loads(out)
    assert done["state"] == "COMPLETED", done["error"]
    return dict(done)


def test_the_wait_of_a_device_job_says_its_preset_and_backend(as_dave, tmp_path) -> None:
    path = tmp_path / "ghz.json"
    path.write_text(json.dumps(JOB), encoding="utf-8")
    code, out, err = qmk("submit", str(path), "--device", PRESET, "--seed", "11", "--wait")
    assert code == 0, err
    assert f"  device {PRESET} on " in out and "L: a lost atom" in out
    assert "engine None" not in out and "(no events)" not in out
    counts = run_job(JOB, seed=11, device=PRESET).counts()
    top = max(counts, key=lambda key: (counts[key], key))
    assert any(line.split()[:2] == [top, str(counts[top])] for line in out.splitlines())


def test_qmk_restore_of_a_device_job_runs_it_again_to_the_same_counts(as_dave, tmp_path) -> None:
    done = _submitted(tmp_path)
    assert done["result"]["counts"] == run_job(JOB, seed=11, device=PRESET).counts()
    code, _, err = qmk("checkpoint", done["job_id"])  # a finished job's: its start
    assert code == 0, err
    code, out, err = qmk("restore", done["job_id"], "--wait", "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["state"] == "COMPLETED" and again["result"]["counts"] == done["result"]["counts"]


def test_a_rest_restore_of_a_device_job_runs_it_again(server, as_dave, tmp_path) -> None:
    done = _submitted(tmp_path)
    with httpx.Client(base_url=server.url, timeout=120) as http:
        login = {"tenant": "dave", "key": DAVE["key"], "requested": ["CAP_DEVICE_NA"]}
        sid = http.post("/v1/sessions", json=login).json()["session_id"]
        path = f"/v1/jobs/{done['job_id']}"
        saved = http.post(f"{path}/checkpoints", json={}, headers=bearer(sid))
        assert saved.status_code < 300, saved.text
        restored = http.post(f"{path}/restore", json={}, headers=bearer(sid))
        assert restored.status_code < 300, restored.text
        again = http.get(
            f"/v1/jobs/{done['job_id']}/wait", params={"timeout_ms": 120000}, headers=bearer(sid)
        ).json()
    assert again["state"] == "COMPLETED" and again["result"]["counts"] == done["result"]["counts"]
