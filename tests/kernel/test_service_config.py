"""The kernel configuration file: defaults, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmk.abi import replies
from qmk.kernel.config import ConfigError, load_config

GOOD = """
[machine]
physical_qubits = 2_000_000
profile = "logical:surface_code(d=9)"
qubit = "qubit_gate_ns_e3"

[kernel]
session_ttl_s = 60
epoch_ms = 5

[tenants.alice]
key = "a-long-shared-secret"
caps = ["CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"]
max_logical_qubits = 64
max_concurrent_jobs = 4
max_queued_jobs = 100
max_channels = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kernel.toml"
    path.write_text(text)
    return path


def test_the_contract_example_loads_with_defaults_filled_in(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.machine.physical_qubits == 2_000_000
    assert config.session_ttl_s == 60 and config.epoch_ms == 5 and config.job_timeout_s == 600
    alice = config.tenants["alice"]
    assert alice.caps == ("CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC")
    assert "a-long-shared-secret" not in repr(alice)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("physical_qubits = 2_000_000", "physical_qubits = 0"), "machine.physical_qubits"),
        (("physical_qubits = 2_000_000", ""), "machine.physical_qubits"),
        (("epoch_ms = 5", "epoch_ms = 5\ncolour = 1"), "kernel.colour"),
        (("max_channels = 2", "max_channels = 'two'"), "tenants.alice.max_channels"),
        (('key = "a-long-shared-secret"', ""), "tenants.alice.key"),
        (('"CAP_MAGIC"]', '"CAP_WARP"]'), "tenants.alice.caps"),
        (("surface_code(d=9)", "warp_code(d=9)"), "machine.profile"),
        (
            ('qubit = "qubit_gate_ns_e3"', 'qubit = "qubit_gate_ns_e3"\nnoise_model = "hot(p=1)"'),
            "machine.noise_model",
        ),
        (
            (
                'qubit = "qubit_gate_ns_e3"',
                'qubit = "qubit_gate_ns_e3"\ncalibration = "/nonexistent"',
            ),
            "machine.calibration",
        ),
    ],
)
def test_a_bad_key_is_named_in_a_one_line_error(
    tmp_path: Path, edit: tuple[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD.replace(*edit)))
    assert err.value.details["key"] == key
    assert key in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_status == 2


def test_unreadable_and_invalid_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[machine\n"))


def test_the_machine_noise_model_and_calibration_reach_every_job(tmp_path: Path) -> None:
    import asyncio
    import json

    from qmk.kernel.service import Kernel
    from qmk.qec.logical import Calibration
    from support.kernel import BELL, login

    calibration = Calibration(
        family="surface_code", crossing_prefactor=0.05, error_correction_threshold=0.01
    )
    (tmp_path / "cal.json").write_text(json.dumps(calibration.to_json()))
    text = GOOD.replace(
        'qubit = "qubit_gate_ns_e3"',
        'qubit = "qubit_gate_ns_e3"\nnoise_model = "depolarizing(p=0.004)"\n'
        f'calibration = "{tmp_path / "cal.json"}"',
    )
    config = load_config(write(tmp_path, text.replace("a-long-shared-secret", "alice-key")))
    assert config.machine.noise_model == "depolarizing(p=0.004)"
    assert config.machine.calibration == calibration.to_json()  # checked, held as its JSON

    async def main() -> replies.Job:
        kernel = await Kernel.open(config, tmp_path / "data", workers=1)
        try:
            sid = await login(kernel, "alice")
            job = await kernel.q_submit(session_id=sid, graph=BELL, shots=200, seed=3)
            return await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        finally:
            await kernel.close()

    done = asyncio.run(main())
    telemetry = done.result["telemetry"]
    assert telemetry["noise_model"] == "depolarizing(p=0.004)"
    assert telemetry["calibration"]["profiles"] == ["logical:surface_code(d=9)"]


def test_a_machine_calibration_for_another_code_is_refused(tmp_path: Path) -> None:
    import json

    from qmk.qec.logical import Calibration

    other = Calibration(
        family="bacon_shor", crossing_prefactor=0.1, error_correction_threshold=0.01
    )
    (tmp_path / "cal.json").write_text(json.dumps(other.to_json()))
    text = GOOD.replace(
        'qubit = "qubit_gate_ns_e3"',
        f'qubit = "qubit_gate_ns_e3"\ncalibration = "{tmp_path / "cal.json"}"',
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert err.value.details["key"] == "machine.calibration"
    assert "bacon_shor" in err.value.message
