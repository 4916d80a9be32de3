"""A job larger than any module, through a real ``qmk serve``: ``qmk submit`` gets it
admitted over two modules with its cross-module gates teleported, ``qmk telemetry``
says what was teleported, and a tenant without CAP_LINK is refused with its code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import qmk
from support.kernel import TENANTS, ServerProcess, ghz_graph, toml_value


def start(tmp_path: Path) -> ServerProcess:
    lines = [
        "[machine]",
        "physical_qubits = 2000",  # two modules of 1000: 6 logical qubits of d=9 each
        "modules = 2",
        "[faults]",
        "link_latency_ns = 1500.0",
    ]
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
    return server.start()


def test_a_job_over_two_modules_runs_teleported_and_reports_its_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "ghz8.qvm.json"
    program.write_text(json.dumps(ghz_graph(8)))  # 8 x 162 physical: more than a module
    server = start(tmp_path)
    try:
        for key, value in server.env("alice").items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("QMK_CAPS", raising=False)
        code, out, err = qmk(
            "submit", str(program), "--shots", "2000", "--seed", "8", "--no-noise", "--wait",
            "--json",
        )  # fmt: skip
        assert code == 0, err
        job = json.loads(out)
        assert job["state"] == "COMPLETED"
        assert set(job["result"]["counts"]) == {"0" * 8, "1" * 8}
        code, out, err = qmk("telemetry", job["job_id"], "--json")
        assert code == 0, err
        teleported = json.loads(out)["teleportation"]
        assert teleported["teleported_gates"] == teleported["epr_pairs"] == 1
        assert teleported["latency_added_ns"] == 1500.0

        for key, value in server.env("bob").items():  # bob has no CAP_LINK
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("QMK_CAPS", raising=False)
        code, out, err = qmk("submit", str(program), "--shots", "10")
        assert (code, out) == (1, "")
        assert err.startswith("QS1004 capability-denied:") and "CAP_LINK" in err
    finally:
        assert server.stop() == 0, server.output()
