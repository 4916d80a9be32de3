"""Failure handling and the device interface against a real ``qmk serve`` with a
``[faults]`` table: a new user reads the device with ``qmk device info``, ingests a
calibration with ``qmk device calibrate``, and runs a Bell pair over a degraded link that
the kernel purifies (the correlation the purified Werner fidelity predicts)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from qmk.client import Client
from qmk.devices.purification import purify
from qmk.qec.logical import Calibration
from support.cli import qmk
from support.kernel import TENANTS, ServerProcess, toml_value

ALICE = {**TENANTS["alice"], "operator": True}
BOB = TENANTS["bob"]


def start(tmp_path: Path) -> ServerProcess:
    lines = [
        "[machine]",
        "physical_qubits = 2000000",
        "modules = 2",
        'profile = "logical:surface_code(d=3)"',
        "[faults]",
        "link_fidelity = 0.9",  # constant: no drop, so the epoch does not matter
        "link_target = 0.95",
        "max_purification_rounds = 3",
    ]
    for name, table in (("alice", ALICE), ("bob", BOB)):
        lines.append(f"[tenants.{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    config = tmp_path / "k.toml"
    config.write_text("\n".join(lines) + "\n")
    server = ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=1,
        log=tmp_path / "k.log",
    )
    return server.start()


def bell_over_channel() -> dict[str, object]:
    nodes = [
        {"id": "a", "op": "ALLOC_LQ", "args": {"n": 2}, "vqs": ["x", "y"]},
        {"id": "open", "op": "OPEN_CHAN", "args": {"opts": {"fidelity": 1.0}},
         "vqs": ["x", "y"], "chs": ["link"]},
        {"id": "mx", "op": "MEASURE_Z", "vqs": ["x"], "produces": ["mx"]},
        {"id": "my", "op": "MEASURE_Z", "vqs": ["y"], "produces": ["my"]},
        {"id": "close", "op": "CLOSE_CHAN", "chs": ["link"]},
        {"id": "f", "op": "FREE_LQ", "vqs": ["x", "y"]},
    ]  # fmt: skip
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": ["x", "y"], "chs": ["link"], "events": ["mx", "my"]},
        "caps": ["CAP_ALLOC", "CAP_LINK"],
    }


def test_a_new_user_reads_the_device_ingests_a_calibration_and_runs_over_a_purified_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start(tmp_path)
    patch = monkeypatch
    try:
        for key, value in server.env("alice").items():
            patch.setenv(key, value)
        patch.setenv("QMK_KEY", ALICE["key"])
        code, out, err = qmk("device", "info", "--json")
        assert code == 0, err
        device = json.loads(out)
        assert [m["physical_qubits"] for m in device["inventory"]["modules"]] == [1_000_000] * 2
        assert device["health"]["link_fidelity"] == 0.9
        assert device["faults"]["link_target"] == 0.95
        code, out, err = qmk("device", "info")  # for people
        assert code == 0, err
        assert out.startswith(f"device {device['kind']} at epoch ") and "1000000 up" in out
        assert device["health"]["decoder_capacity_bits_per_second"] is None
        assert "capacity no limit, backlog 0 bits/s" in out  # was 'capacity None'

        fitted = Calibration(
            family="surface_code", crossing_prefactor=0.1, error_correction_threshold=0.01
        )
        path = tmp_path / "cal.json"
        path.write_text(json.dumps(fitted.to_json()))
        code, out, err = qmk("device", "calibrate", str(path))
        assert code == 0, err
        assert "ingested calibration" in out and "calibrations ingested 1" in out

        patch.setenv("QMK_TENANT", "bob")
        patch.setenv("QMK_KEY", BOB["key"])
        code, out, err = qmk("device", "calibrate", str(path))
        assert code == 1 and "operator" in err  # only operators calibrate

        shots, seed = 100_000, 7
        with Client.connect(str(server.socket), tenant="alice", key=ALICE["key"]) as client:
            job = client.q_submit(bell_over_channel(), shots, seed, {"noise": False})
            done = client.q_wait(job.job_id, 120_000)
            assert done.state == "COMPLETED", done
            telemetry = client.q_get_telemetry(job.job_id)
            assert telemetry.telemetry["calibration"]["crossing_prefactor"] == 0.1
        (action,) = telemetry.faults
        purified = purify(0.9, target=0.95, max_rounds=3)
        assert action["action"] == "purify" and action["delivered_fidelity"] == purified.fidelity
        counts = done.result["counts"]
        unequal = counts.get("01", 0) + counts.get("10", 0)
        p = 2 * (1 - purified.fidelity) / 3
        assert abs(unequal - shots * p) <= 5 * math.sqrt(shots * p * (1 - p)) + 1

        code, out, err = qmk("audit", "replay", str(server.data_dir), job.job_id)
        assert code == 0, err  # the attestation holds the rewrite: replay agrees
    finally:
        assert server.stop() == 0, server.output()
