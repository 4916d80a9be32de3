"""The ``qmk`` commands of every syscall against a real ``qmk serve``, called in-process
through ``qmk.cli.main``: sessions, results in pages, checkpoint and restore of a job held
at a fence, replay, channels from both ends, device jobs, telemetry and resources, each as
text and as one JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qmk.devices.neutral_atom.emulator import run_job
from support.cli import qmk
from support.fenced import GRAPH, SEED, SHOTS, uninterrupted
from support.kernel import TENANTS, WorkerGate

DEVICE_TENANTS = {
    **TENANTS,
    "ada": {"key": "ada-secret-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"], "max_atoms": 6},
}

DEVICE_JOB = {
    "job_id": "ghz3",
    "profile": "benchmark_chain",
    "shots": 300,
    "seed": 5,
    "program": [
        {"op": "AllocArray", "n_qubits": 3},
        {"op": "ApplyGate", "name": "H", "targets": [0], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2], "param": 0.0},
        {"op": "Measure", "targets": [0, 1, 2]},
    ],
}


def as_tenant(monkeypatch: pytest.MonkeyPatch, server: Any, tenant: str) -> None:
    monkeypatch.setenv("QMK_SOCKET", str(server.socket))
    monkeypatch.setenv("QMK_TENANT", tenant)
    monkeypatch.setenv("QMK_KEY", DEVICE_TENANTS[tenant]["key"])
    monkeypatch.delenv("QMK_CAPS", raising=False)


def ok_json(*argv: str) -> Any:
    """``qmk ARGV... --json``: exit 0, one JSON document on stdout, nothing on stderr."""
    code, out, err = qmk(*argv, "--json")
    assert code == 0, err
    assert err == ""
    return json.loads(out)


def test_checkpoint_restore_result_and_replay_of_a_job_held_at_a_fence(
    serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "fenced.qvm.json"
    program.write_text(json.dumps(GRAPH))
    expected = uninterrupted()
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("fences", workers=1, hooks=pause.pause_hooks())
        as_tenant(monkeypatch, server, "alice")
        job = ok_json(
            "submit", str(program), "--shots", str(SHOTS), "--seed", str(SEED), "--no-noise"
        )
        job_id = job["job_id"]
        saved = ok_json("checkpoint", job_id)  # held at its first fence: saved there
        assert saved["job_id"] == job_id and saved["saved"] is True
        restored = ok_json("restore", job_id, "--checkpoint", saved["checkpoint_id"])
        assert restored["job_id"] == job_id and restored["state"] == "QUEUED"
        pause.open()
        done = ok_json("wait", job_id, "--timeout-ms", "120000")
    assert done["state"] == "COMPLETED" and done["result"]["counts"] == expected
    first = ok_json("result", job_id, "--limit", "1")
    assert len(first["counts"]) == 1 and first["entries"] == len(expected)
    assert first["next_cursor"]
    whole = ok_json("result", job_id, "--all", "--limit", "1")
    assert whole["counts"] == expected and whole["next_cursor"] is None
    code, text, _ = qmk("result", job_id)
    assert code == 0 and text.startswith(
        f"{job_id}  COMPLETED  {len(expected)} of {len(expected)} entries"
    )
    again = ok_json("replay", job_id, "--wait", "--timeout-ms", "120000")
    assert again["job_id"] != job_id and again["result"]["counts"] == expected
    telemetry = ok_json("telemetry", job_id)
    assert telemetry["job_id"] == job_id and telemetry["attempts"] >= 2
    code, text, _ = qmk("telemetry", job_id)  # for people: key: value lines, not JSON
    assert code == 0 and f"job_id: {job_id}" in text.splitlines()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    aggregate = ok_json("telemetry")
    assert aggregate["tenant"] == "alice" and aggregate["jobs"] == 2
    resources = ok_json("resources")
    assert resources["tenant"] == "alice" and "machine" in resources
    code, text, _ = qmk("resources")
    assert code == 0 and "tenant: alice" in text.splitlines()


def test_channels_from_both_ends_and_a_session(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve("chan", workers=1)
    as_tenant(monkeypatch, server, "alice")
    session = ok_json("session")
    assert session["tenant"] == "alice" and "CAP_LINK" in session["granted"]
    assert session["delegated"] == [] and session["session_id"].startswith("s1.")
    proposed = ok_json("channel", "open", "dave", "--fidelity", "0.9")
    channel = proposed["channel_id"]
    assert proposed["state"] == "PENDING" and proposed["tenants"] == ["alice", "dave"]
    as_tenant(monkeypatch, server, "dave")
    listed = ok_json("channel", "list", "--state", "PENDING")
    assert [c["channel_id"] for c in listed["channels"]] == [channel]
    accepted = ok_json("channel", "accept", channel)  # the proposer found by the command
    assert accepted["state"] == "OPEN" and accepted["fidelity"] == 0.9
    code, line, _ = qmk("channel", "status", channel)
    assert code == 0 and line == f"{channel}  OPEN      alice -> dave  fidelity 0.9\n"
    as_tenant(monkeypatch, server, "alice")
    assert ok_json("channel", "close", channel)["state"] == "CLOSED"
    assert ok_json("channel", "list", "--state", "OPEN")["channels"] == []
    as_tenant(monkeypatch, server, "bob")  # no CAP_LINK
    code, out, err = qmk("channel", "open", "alice")
    assert code == 1 and out == "" and err.startswith("QS1004 capability-denied: ")
    code, _, err = qmk("channel", "accept", channel)
    assert code == 1 and err.startswith("QS1005 not-found: ") and err.count("\n") == 1


def test_device_submit_queues_a_wire_job_with_the_emulators_counts(
    serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve("device", workers=1, tenants=DEVICE_TENANTS)
    job_file = tmp_path / "ghz3.json"
    job_file.write_text(json.dumps(DEVICE_JOB))
    as_tenant(monkeypatch, server, "ada")
    done = ok_json("device", "submit", str(job_file), "--wait", "--timeout-ms", "120000")
    assert done["state"] == "COMPLETED", done["error"]
    assert done["result"]["counts"] == run_job(DEVICE_JOB).counts()
    queued = ok_json("device", "submit", str(job_file), "--shots", "10", "--seed", "3")
    assert queued["shots"] == 10 and queued["seed"] == 3
    as_tenant(monkeypatch, server, "bob")
    code, out, err = qmk("device", "submit", str(job_file))
    assert code == 1 and out == "" and err.startswith("QS1004 capability-denied: ")


def test_device_submit_streams_and_device_artifacts_reads_them_back(
    serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve("device", workers=1, tenants=DEVICE_TENANTS)
    job_file = tmp_path / "ghz3.json"
    job_file.write_text(json.dumps(DEVICE_JOB))
    as_tenant(monkeypatch, server, "ada")
    done = ok_json(
        "device", "submit", str(job_file), "--stream", "measurements,pulses",
        "--snapshot", "1", "--wait", "--timeout-ms", "120000",
    )  # fmt: skip
    assert done["state"] == "COMPLETED", done["error"]
    job_id = done["job_id"]
    listing = ok_json("device", "artifacts", job_id)
    assert [(a["name"], a["records"]) for a in listing["artifacts"]] == [
        ("measurements", 300),
        ("pulses", 5),
        ("snapshots", 1),
    ]
    code, out, err = qmk("device", "artifacts", job_id)
    assert code == 0 and "measurements" in out and "300 records" in out
    code, out, err = qmk("device", "artifacts", job_id, "--name", "measurements", "--limit", "100")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["shot"] for r in lines] == list(range(100))
    assert err.startswith("... 200 more: --offset 100")
    snap = ok_json("device", "artifacts", job_id, "--name", "snapshots")["records"][0]
    assert snap["at"] == 1 and set(snap["probabilities"]) == {"000", "100"}
    code, out, err = qmk("device", "submit", str(job_file), "--stream", "logs")
    assert code != 0 and out == "" and err.startswith("QD114 stream-invalid: ")
