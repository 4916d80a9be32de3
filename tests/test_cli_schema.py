"""``qmk schema``: each kind's JSON Schema is shipped, equal to what its schema generates,
and accepts the examples that the readers of those files accept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest

from qmk.commands import schema
from qmk.kernel import config
from qmk.kernel.config import ConfigError, config_from_dict, load_config
from qmk.workflows.spec import load
from support.paths import EXAMPLES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _schema(kind: str) -> dict:
    data: dict = json.loads(schema.KINDS[kind].path.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("kind", sorted(schema.KINDS))
def test_every_shipped_schema_is_the_generated_one(kind: str):
    assert schema.KINDS[kind].path.read_text(encoding="utf-8") == schema.KINDS[kind].text()
    assert schema.main(["--kind", kind, "--check"]) == 0


@pytest.mark.parametrize("kind", sorted(schema.KINDS))
def test_schema_prints_each_kind_as_a_json_schema(kind: str, capsys):
    assert schema.main(["--kind", kind]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == _schema(kind)
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_without_a_kind_it_prints_the_qvm_schema(capsys):
    assert schema.main([]) == 0
    assert json.loads(capsys.readouterr().out) == _schema("qvm")


def test_a_drifted_copy_fails_the_check_until_written(tmp_path: Path, monkeypatch, capsys):
    stale = tmp_path / "config.schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(config, "SCHEMA_PATH", stale)
    assert schema.main(["--kind", "config", "--check"]) == 1
    assert "qmk schema --kind config --write" in capsys.readouterr().err
    assert schema.main(["--kind", "config", "--write"]) == 0
    assert stale.read_text(encoding="utf-8") == config.schema_text()
    assert schema.main(["--kind", "config", "--check"]) == 0


def test_the_example_kernel_config_meets_its_schema():
    data = tomllib.loads((EXAMPLES / "kernel.toml").read_text(encoding="utf-8"))
    jsonschema.validate(data, _schema("config"))
    assert load_config(EXAMPLES / "kernel.toml").tenants["bob"].caps == ("CAP_ALLOC",)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_workflow_meets_its_schema(path: Path):
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if "steps" not in data:  # the kernel config
        return
    jsonschema.validate(data, _schema("workflow"))
    assert load(path).steps


GOOD = {
    "machine": {"physical_qubits": 1000},
    "kernel": {"epoch_ms": 5},
    "tenants": {"alice": {"key": "k", "caps": ["CAP_ALLOC"]}},
    "faults": {"module_failures": [{"module": 0, "epoch": 3}]},
}


@pytest.mark.parametrize(
    ("table", "edit", "key"),
    [
        ("machine", {"physical_qubits": 0}, "machine.physical_qubits"),
        ("kernel", {"synchronous": "sometimes"}, "kernel.synchronous"),
        ("kernel", {"worker_user": True}, "kernel.worker_user"),
        ("kernel", {"colour": 1}, "kernel.colour"),
        ("faults", {"link_fidelity": 1.5}, "faults.link_fidelity"),
        ("faults", {"module_failures": [{"module": 0}]}, "faults.module_failures[0].epoch"),
    ],
)
def test_the_schema_and_the_reader_refuse_the_same_bad_config(table: str, edit: dict, key: str):
    jsonschema.validate(GOOD, _schema("config"))
    bad = {**GOOD, table: {**GOOD[table], **edit}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema("config"))
    with pytest.raises(ConfigError) as caught:
        config_from_dict(bad)
    assert caught.value.code == "QK101" and caught.value.details["key"] == key


@pytest.mark.parametrize(
    "tenants",
    [{"bad name": {"key": "k"}}, {"alice": {"key": "k", "caps": ["CAP_WARP"]}}, {"alice": {}}],
)
def test_a_bad_tenant_is_refused_by_the_schema_and_the_reader(tenants: dict):
    bad = {**GOOD, "tenants": tenants}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema("config"))
    with pytest.raises(ConfigError):
        config_from_dict(bad)


def test_qmk_schema_is_the_command_line_of_the_same(capsys):
    from qmk.cli import main

    assert main(["schema", "--kind", "device-job"]) == 0
    assert json.loads(capsys.readouterr().out) == _schema("device-job")
    assert main(["schema", "--check"]) == 0
