"""The service commands (``qmk submit/status/wait/cancel/jobs/telemetry/serve``) against a real
``qmk serve``, called in-process through ``qmk.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import qmk

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BELL = str(EXAMPLES / "bell.qvm.asm")


@pytest.fixture
def as_alice(shared_server, monkeypatch):
    for name, value in shared_server.env("alice").items():
        if name.startswith("QMK_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("QMK_CAPS", raising=False)
    return shared_server


def test_submit_wait_json_gives_the_counts_of_qmk_run_json(as_alice):
    code, out, err = qmk("submit", BELL, "--shots", "300", "--seed", "11", "--wait", "--json")
    assert code == 0, err
    job = json.loads(out)
    code, out, _ = qmk("run", BELL, "--shots", "300", "--seed", "11", "--json")
    assert code == 0
    assert job["state"] == "COMPLETED"
    assert job["result"]["counts"] == json.loads(out)["counts"]


def test_submit_profile_auto_on_qubits_that_name_their_profile_warns_and_still_runs(as_alice):
    code, out, err = qmk(
        "submit", BELL, "--shots", "50", "--seed", "2", "--profile", "auto", "--wait", "--json"
    )
    assert code == 0, err
    assert err.startswith(f"{BELL}: warning: QC130 profile-auto-unused: ")
    job = json.loads(out)
    assert job["state"] == "COMPLETED" and job["warnings"][0]["code"] == "QC130"
    assert job["result"]["telemetry"]["profiles"] == ["logical:surface_code(d=9)"]
    code, out, err = qmk("submit", str(EXAMPLES / "bell.qasm"), "--profile", "auto", "--json")
    assert code == 0 and err == "" and "warnings" not in json.loads(out)


def test_status_wait_jobs_telemetry_and_cancel_of_a_submitted_job(as_alice):
    code, out, err = qmk("submit", BELL, "--shots", "50", "--seed", "3", "--priority", "7")
    assert code == 0, err
    job_id = out.split()[0]
    assert job_id.startswith("job_")
    code, out, _ = qmk("wait", job_id, "--timeout-ms", "30000")
    assert code == 0 and "COMPLETED" in out and "priority 7" in out
    code, out, _ = qmk("status", job_id, "--json")
    assert code == 0 and json.loads(out)["result"]["shots"] == 50
    code, out, _ = qmk("jobs", "--state", "COMPLETED")
    assert code == 0 and job_id in out
    code, out, _ = qmk("telemetry", job_id, "--json")
    assert code == 0 and json.loads(out)["job_id"] == job_id
    code, out, _ = qmk("telemetry", job_id)  # for people: key: value lines
    assert code == 0 and f"job_id: {job_id}" in out.splitlines()
    code, out, _ = qmk("telemetry", "--json")
    assert code == 0 and json.loads(out)["tenant"] == "alice"
    code, out, _ = qmk("resources", "--json")
    assert code == 0 and "machine" in json.loads(out)
    code, out, _ = qmk("resources")
    assert code == 0 and "machine:" in out.splitlines()
    code, out, err = qmk("cancel", job_id)  # a finished job cannot be cancelled
    assert code == 1 and out == ""
    assert err.startswith("QS1009 invalid-state: ") and err.count("\n") == 1


def test_refused_requests_are_one_line_with_their_code_and_exit_1(shared_server, monkeypatch):
    for name, value in shared_server.env("bob").items():
        if name.startswith("QMK_"):
            monkeypatch.setenv(name, value)
    code, out, err = qmk("submit", str(EXAMPLES / "linked_modules.qvm.asm"))
    assert code == 1 and out == ""
    assert err.startswith("QS1004 capability-denied: ") and "CAP_LINK" in err
    code, _, err = qmk("status", "job_does_not_exist")
    assert code == 1 and err.startswith("QS1005 not-found: ")
    monkeypatch.setenv("QMK_KEY", "wrong")
    code, _, err = qmk("jobs")
    assert code == 1 and err.startswith("QS1001 auth-failed: ")


def test_usage_errors_exit_2(as_alice, monkeypatch, tmp_path):
    assert qmk("submit", BELL, "--priority", "12")[0] == 2
    assert qmk("submit")[0] == 2
    code, _, err = qmk("submit", str(tmp_path / "missing.qvm.json"))
    assert code == 2 and err.startswith("QF")
    monkeypatch.delenv("QMK_TENANT")
    code, _, err = qmk("jobs")
    assert code == 2 and err.startswith("QW011 bad-option: ")
    monkeypatch.setenv("QMK_TENANT", "alice")
    monkeypatch.delenv("QMK_SOCKET")
    code, _, err = qmk("jobs")
    assert code == 2 and err.startswith("QW011 bad-option: ")


def test_an_unreachable_kernel_is_one_line_and_exit_1(as_alice, tmp_path):
    code, _, err = qmk("jobs", "--socket", str(tmp_path / "nobody.sock"))
    assert code == 1 and err.startswith("QT001 connect-failed: ") and err.count("\n") == 1


def test_serve_refuses_a_bad_config_and_a_socket_in_use(shared_server, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[machine]\nphysical_qubits = -1\n")
    code, _, err = qmk(
        "serve",
        "--socket",
        str(tmp_path / "s"),
        "--data-dir",
        str(tmp_path / "d"),
        "--config",
        str(config),
    )
    assert code == 2 and err.startswith("QK101 bad-config: ")
    code, _, err = qmk(
        "serve",
        "--socket",
        str(shared_server.socket),
        "--data-dir",
        str(tmp_path / "d"),
        "--config",
        str(shared_server.config),
    )
    assert code == 2 and "QW002 socket-in-use: " in err
    assert shared_server.socket.exists()
