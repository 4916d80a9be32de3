"""The kernel configuration file: defaults, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

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
