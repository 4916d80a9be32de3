"""``qmk serve --dask``: a real server whose jobs run on a Dask LocalCluster."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support.cli import qmk
from support.kernel import TENANTS, ServerProcess, config_toml
from support.paths import EXAMPLES

pytest.importorskip("distributed")

BELL = str(EXAMPLES / "bell.qvm.asm")


def test_serve_with_a_local_dask_cluster_runs_jobs_with_the_counts_of_qmk_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml(physical_qubits=2_000_000))
    server = ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=2,
        log=tmp_path / "serve.log",
        extra=("--dask", "local:2"),
    )
    sock = server.socket
    server.start(timeout_s=120)  # a LocalCluster takes seconds to start; a hang guard
    try:
        monkeypatch.setenv("QMK_SOCKET", str(sock))
        monkeypatch.setenv("QMK_TENANT", "alice")
        monkeypatch.setenv("QMK_KEY", TENANTS["alice"]["key"])
        code, out, err = qmk("submit", BELL, "--shots", "300", "--seed", "11", "--wait", "--json")
        assert code == 0, err
        served = json.loads(out)["result"]["counts"]
        code, out, _ = qmk("run", BELL, "--shots", "300", "--seed", "11", "--json")
        assert served == json.loads(out)["counts"]
        code, out, _ = qmk("resources", "--json")
        assert code == 0
    finally:
        status = server.stop()
    assert status == 0, server.output()
    assert not sock.exists()


def test_a_bad_dask_address_is_one_line_with_its_code_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(config_toml(physical_qubits=2_000_000))
    for bad in ("nowhere", "local:0", "local:x"):
        code, out, err = qmk(
            "serve",
            "--socket",
            str(tmp_path / "s.sock"),
            "--data-dir",
            str(tmp_path / "data"),
            "--config",
            str(config),
            "--dask",
            bad,
        )
        assert code == 2 and out == ""
        assert err.startswith("QK101 bad-config: --dask takes local:N") and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "data")  # stopped before the kernel started
